"""``make demo``: the DAGs run through an embedded Airflow under the catalog; user mistakes are one message.

The whole chain (round → train → promote, twice) is what tests/test_dags.py runs with dag.test(); here the
demo's own wiring: ``airflow dags test`` in the catalog's Airflow home, what it prints, its exit status.
"""

import shutil
from pathlib import Path

import pytest

from hiericd_core import demo
from hiericd_core.synth import generate_round


def test_a_missing_round_is_a_clear_error_before_airflow_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    assert demo.main(["--round", str(tmp_path / "nope")]) == 2
    out = capsys.readouterr().out
    assert "no such folder" in out and "Traceback" not in out
    assert not (tmp_path / "home" / "airflow" / "airflow.db").exists()


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_round_dag_runs_in_the_catalogs_airflow(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("HIERICD_HOME", str(home))
    # a plain single-coder BRAT folder, as a team without a second coder exports it: one coder's files of a
    # synthetic round, large enough that every split of its data set passes the gate
    generate_round(tmp_path / "synth", 150, seed=4)
    plain = tmp_path / "plain"
    plain.mkdir()
    for ann in sorted((tmp_path / "synth" / "coders" / "coder1").glob("*.ann")):
        shutil.copy(ann, plain / ann.name)
        shutil.copy(tmp_path / "synth" / "texts" / f"{ann.stem}.txt", plain / f"{ann.stem}.txt")
    (plain / "round.toml").write_text('[round]\nid = "plain-single-coder"\n')
    assert demo.main(["--round", str(plain), "--min-count", "2", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "✓ hiericd_round" in out and "needs two coders per report" in out
    assert (home / "airflow" / "airflow.db").is_file()
    log = next((home / "airflow" / "demo-logs").glob("*-hiericd_round.log")).read_text()
    assert "hiericd_round" in log and "DagRun Finished" in log and "state=success" in log
    (manifest,) = (home / "datasets").glob("*/manifest.json")
    assert "GX Data Docs" in out and (manifest.parent / "data_docs" / "index.html").is_file()
    assert not (home / "demo-gate.toml").exists()  # the demo's models face the registry's default gate


def test_a_failed_dag_run_names_the_reason(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("\n".join([
        "2026-11-27T07:00:00Z [info ] starting",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "airflow.sdk.exceptions.AirflowFailException: data-quality gate failed:",
        "  reports: expect_column_values_to_not_be_null(text): 2 rows",
        "2026-11-27T07:00:01Z [info ] DagRun Finished: state=failed",
    ]))
    assert demo._failure(log) == ("airflow.sdk.exceptions.AirflowFailException: data-quality gate failed:\n"
                                  "  reports: expect_column_values_to_not_be_null(text): 2 rows")


def test_the_demo_trains_with_its_shipped_settings_and_faces_the_default_gate(tmp_path, monkeypatch):
    """The train DAG run gets configs/demo.toml (the shipped vectors included); the promote run no gate file."""
    from hiericd_core.catalog import Catalog
    from hiericd_core.embeddings import Vocabulary, load_vectors
    from hiericd_core.train import TrainConfig

    config = TrainConfig.from_toml(demo.TRAIN_CONFIG)
    vectors = Path(config.vectors_path)
    assert vectors.is_file() and vectors.stat().st_size < 5 * 2**20
    matrix, info = load_vectors(vectors, Vocabulary(["<pad>", "<unk>", "carcinoma", "colon"]))
    assert info["found"] == 2 and matrix.shape == (4, config.emb_dim) and not matrix[0].any()

    monkeypatch.setenv("HIERICD_HOME", str(tmp_path))
    runs: list = []
    d = demo.Demo(Catalog.from_env().ensure(), None)
    d.dag = lambda dag_id, conf, what: runs.append((dag_id, conf))
    with pytest.raises(ValueError):  # no model appears: only the DAG run's settings are looked at here
        d.train({"dataset": tmp_path / "ds"}, {})
    assert d.promote({"dataset": tmp_path / "ds"})["outcome"] == "already-champion"  # no decision file written
    assert runs == [("hiericd_train", {"dataset_dir": str(tmp_path / "ds"), "config_file": str(demo.TRAIN_CONFIG),
                                       "config": {}}),
                    ("hiericd_promote", {"dataset_dir": str(tmp_path / "ds")})]
