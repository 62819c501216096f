"""Pipeline steps: paths in, paths out, re-runnable; the demo end to end on a small round."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hiericd_core import demo, pipeline
from hiericd_core.catalog import Catalog
from hiericd_core.synth import generate_round

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_round(root / "export", 300, seed=5)
    return root / "export"


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_steps_write_into_the_catalog_and_rerun_identically(tmp_path, synthetic):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    round_path = pipeline.ingest(synthetic, catalog)
    assert round_path == catalog.round("synth-5-300")
    assert tree(round_path) == tree(synthetic)  # an exact copy
    assert pipeline.ingest(round_path, catalog) == round_path  # already in the catalog

    merged = pipeline.merge(round_path, catalog)
    assert merged["merged"] == str(catalog.merged("synth-5-300"))
    first = tree(Path(merged["merged"]))
    assessed = pipeline.assess(round_path, catalog, bootstrap=50)
    figures = json.loads(Path(assessed["agreement"]).read_text())
    pairs = figures["units"]["report_code"]["pairs"]
    assert assessed["headline_kappa"] == pytest.approx(sum(p["kappa"] for p in pairs) / len(pairs), abs=1e-6)
    assert Path(assessed["report"]).is_file()
    built = pipeline.datasets([merged["merged"]], catalog, min_count=3)
    assert Path(built["path"]) == catalog.dataset(built["version"])
    reports = pq.read_table(Path(built["path"]) / "reports.parquet")
    assert reports.num_rows == merged["summary"]["reports"]["final"] + merged["summary"]["reports"]["single-coder"]

    # every step again: same files, same version
    assert pipeline.merge(round_path, catalog)["summary"] == merged["summary"]
    assert tree(Path(merged["merged"])) == first
    assert pipeline.datasets([merged["merged"]], catalog, min_count=3)["version"] == built["version"]


def test_pending_reports_get_an_adjudication_queue(tmp_path, synthetic):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    round_path = pipeline.ingest(synthetic, catalog)
    seniors = sorted((round_path / "senior").glob("*.ann"))
    for ann in seniors[:4]:
        ann.unlink()
    merged = pipeline.merge(round_path, catalog)
    assert merged["pending"] == 4
    queue = Path(merged["queue"])
    assert sorted(p.stem for p in queue.glob("*.ann")) == sorted(p.stem for p in seniors[:4])
    assert (queue / "annotation.conf").is_file()
    # the senior catches up: the queue goes away
    for ann in seniors[:4]:
        (round_path / "senior" / ann.name).write_bytes((synthetic / "senior" / ann.name).read_bytes())
    again = pipeline.merge(round_path, catalog)
    assert again["pending"] == 0 and again["queue"] is None and not queue.exists()


def test_demo_runs_end_to_end_and_prints_where_things_are(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    assert demo.main(["--reports", "300", "--seed", "3", "--min-count", "3", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "data-quality report" in out and "mean pairwise kappa" in out
    assert "| lr |" in out  # the model's evaluation beside the baselines
    assert len(list((tmp_path / "home" / "models").glob("demo-*/classifier.pt"))) == 1
    assert (tmp_path / "home" / "reports" / "synth-3-300" / "index.html").is_file()
    assert len(list((tmp_path / "home" / "datasets").glob("*/manifest.json"))) == 1


def test_demo_on_a_single_coder_round(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    assert demo.main(["--round", str(FIXTURES / "codiesp-sample" / "train"), "--min-count", "2", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "needs two coders per report" in out


def test_demo_on_a_missing_round_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    assert demo.main(["--round", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().out


def test_merge_agreement_and_report_on_the_shared_two_annotator_fixture(tmp_path):
    import shutil

    dst = tmp_path / "agree-2"
    shutil.copytree(FIXTURES / "bratiaa" / "data" / "agreement" / "agree-2", dst)
    (dst / "round.toml").write_text('[round]\nid = "agree-2"\nlanguage = "es"\ncode_system = "none"\n'
                                    '[codes]\nsource = "label"\n')
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    round_path = pipeline.ingest(dst, catalog)
    merged = pipeline.merge(round_path, catalog)
    # no senior folder: both documents have disputes, so both wait in the adjudication queue
    assert merged["pending"] == 2 and Path(merged["queue"]).is_dir()
    assessed = pipeline.assess(round_path, catalog, bootstrap=50)
    figures = json.loads(Path(assessed["agreement"]).read_text())
    pair = figures["units"]["report_code"]["pairs"][0]
    assert (pair["a"], pair["b"], pair["n_reports"]) == ("ann1", "ann2", 2)
    # bratiaa's reference for this pair: instance-level F1 0.787879 (see tests/test_spanagree.py)
    assert figures["span_f1"]["instance"]["mean"] == pytest.approx(0.787879, abs=1e-6)
    html = Path(assessed["report"]).read_text()
    assert "agree-2" in html and "ann1" in html
