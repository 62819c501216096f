"""Pipeline steps: paths in, paths out, re-runnable."""

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hiericd_core import pipeline
from hiericd_core.catalog import Catalog
from hiericd_core.datasets import DatasetError
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
    assert os.listdir(catalog.datasets) == [built["version"]]  # the scratch folder is gone
    assert json.loads((Path(built["path"]) / "validation.json").read_text())["success"] is True
    reports = pq.read_table(Path(built["path"]) / "reports.parquet")
    assert reports.num_rows == merged["summary"]["reports"]["final"] + merged["summary"]["reports"]["single-coder"]

    # every step again: same files, same version
    assert pipeline.merge(round_path, catalog)["summary"] == merged["summary"]
    assert tree(Path(merged["merged"])) == first
    first_dataset = tree(Path(built["path"]))
    assert pipeline.datasets([merged["merged"]], catalog, min_count=3)["version"] == built["version"]
    assert tree(Path(built["path"])) == first_dataset  # Data Docs and validation.json included


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


def test_merged_rounds_are_oldest_first_and_of_one_language_and_code_system(tmp_path):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    rounds = {  # folder name -> round.toml body; folder names sort otherwise than dates
        "a-late": 'id = "a-late"\ndate = "2026-03-01"\nlanguage = "en"\ncode_system = "icd-10-cm"',
        "b-early": 'id = "b-early"\ndate = "2025-12-01"\nlanguage = "en"\ncode_system = "icd-10-cm"',
        "c-mid": 'id = "c-mid"\ndate = 2026-01-15\nlanguage = "en"\ncode_system = "icd-10-cm"',  # a TOML date
        "d-spanish": 'id = "d-spanish"\ndate = "2026-02-01"\nlanguage = "es"\ncode_system = "icd-10-cm"',
    }
    for name, body in rounds.items():
        (catalog.root / "merged" / name / "brat").mkdir(parents=True)
        (catalog.root / "merged" / name / "brat" / "round.toml").write_text(f"[round]\n{body}\n")
    (catalog.root / "merged" / "e-broken").mkdir()  # no round.toml: not a merged round
    merged = catalog.root / "merged"
    assert [p.name for p in pipeline.merged_rounds(catalog)] == ["b-early", "c-mid", "d-spanish", "a-late"]
    assert [p.name for p in pipeline.merged_rounds(catalog, like=merged / "a-late")] == ["b-early", "c-mid", "a-late"]
    assert [p.name for p in pipeline.merged_rounds(catalog, like=merged / "d-spanish")] == ["d-spanish"]


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


def test_choose_dataset_given_then_event_then_newest(tmp_path):
    import os
    import time

    catalog = Catalog.from_env(tmp_path / "home").ensure()
    assert pipeline.choose_dataset("", [], catalog) is None
    for name in ("old", "new"):
        (catalog.datasets / name).mkdir(parents=True)
        (catalog.datasets / name / "manifest.json").write_text("{}")
        time.sleep(0.01)
    os.utime(catalog.datasets / "old" / "manifest.json", ns=(1, 1))  # written long ago
    assert pipeline.choose_dataset("", [], catalog) == catalog.datasets / "new"
    assert pipeline.choose_dataset("", [{"dataset_dir": "/x/a"}, {"dataset_dir": "/x/b"}], catalog) == Path("/x/b")
    assert pipeline.choose_dataset("/given", [{"dataset_dir": "/x/b"}], catalog) == Path("/given")


def visible(folder: Path) -> list[str]:
    """The entries a reader of ``folder`` takes for outputs (scratch folders are hidden)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def test_a_data_set_that_fails_its_gate_is_kept_aside_and_never_put_in_place(tmp_path, synthetic):
    from hiericd_core.validation import ValidationError

    catalog = Catalog.from_env(tmp_path / "home").ensure()
    merged = pipeline.merge(synthetic, catalog)
    with pytest.raises(ValidationError) as caught:  # no code is seen 10,000 times: an empty label space
        pipeline.datasets([merged["merged"]], catalog, min_count=10_000)
    assert list(catalog.datasets.iterdir()) == []  # no data set, no scratch left over
    (rejected,) = (catalog.rejected / "datasets").iterdir()
    assert caught.value.kept == rejected
    message = str(caught.value)
    assert "The label space has at least one code" in message
    assert f"kept for inspection in {rejected}" in message and f"Data set {rejected} failed validation" in message
    assert json.loads((rejected / "validation.json").read_text())["success"] is False
    assert (rejected / "data_docs" / "index.html").is_file() and (rejected / "manifest.json").is_file()
    # training refuses the rejected folder
    with pytest.raises(DatasetError, match="failed its Great Expectations gate"):
        pipeline.train(rejected, tmp_path / "model")


def test_training_takes_only_a_data_set_that_passed_its_gate(tmp_path):
    from typer.testing import CliRunner

    from hiericd_core.cli import app

    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"version": "x"}')
    with pytest.raises(DatasetError, match=r"no validation\.json: this data set has not passed its Great"):
        pipeline.train(folder, tmp_path / "model")
    result = CliRunner().invoke(app, ["train", str(folder), "--out", str(tmp_path / "model")])
    assert result.exit_code == 2 and "no validation.json" in result.output and "Traceback" not in result.output
    (folder / "validation.json").write_text(json.dumps({"success": False, "results": [
        {"name": "expect_table_row_count_to_be_between(min_value=1)", "success": False}]}))
    result = CliRunner().invoke(app, ["train", str(folder), "--out", str(tmp_path / "model")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = result.output.replace("\n", "")
    assert "failed its Great Expectations gate" in text and "expect_table_row_count_to_be_between" in text
    assert not (tmp_path / "model").exists()


def test_datasets_with_out_builds_beside_it_and_refuses_a_folder_it_would_destroy(tmp_path, synthetic):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    merged = pipeline.merge(synthetic, catalog)
    out = tmp_path / "mine" / "ds"
    built = pipeline.datasets([merged["merged"]], catalog, min_count=3, out=out)
    assert Path(built["path"]) == out and json.loads((out / "validation.json").read_text())["success"] is True
    assert built["data_docs"] == str(out / "data_docs" / "index.html")
    assert visible(catalog.datasets) == [] and os.listdir(out.parent) == ["ds"]
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "thesis.tex").write_text("months of work")
    with pytest.raises(DatasetError, match="is not a data set folder .* give a new or empty folder"):
        pipeline.datasets([merged["merged"]], catalog, min_count=3, out=tmp_path / "papers")
    with pytest.raises(DatasetError, match="is not a merged round folder"):
        pipeline.merge(synthetic, catalog, out=tmp_path / "papers")
    assert (tmp_path / "papers" / "thesis.tex").read_text() == "months of work"


def test_a_merge_that_dies_halfway_leaves_the_previous_merge_whole(tmp_path, synthetic, monkeypatch):
    from hiericd_core import merge_write

    catalog = Catalog.from_env(tmp_path / "home").ensure()
    round_path = pipeline.ingest(synthetic, catalog)
    before = tree(Path(pipeline.merge(round_path, catalog)["merged"]))
    (round_path / "senior" / sorted(p.name for p in (round_path / "senior").glob("*.ann"))[0]).unlink()

    def die(*args, **kwargs):  # the summary is written last: everything else of the new merge exists by now
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_write, "atomic_write_json", die)
    with pytest.raises(KeyboardInterrupt):
        pipeline.merge(round_path, catalog)
    assert tree(catalog.merged("synth-5-300")) == before
    assert os.listdir(catalog.root / "merged") == ["synth-5-300"]


def test_latest_dataset_ignores_scratch_folders(tmp_path):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    (catalog.datasets / "v1").mkdir()
    (catalog.datasets / "v1" / "manifest.json").write_text("{}")
    (catalog.datasets / ".tmp-hiericd-dataset-x").mkdir()
    (catalog.datasets / ".tmp-hiericd-dataset-x" / "manifest.json").write_text("{}")  # newer, but being built
    assert pipeline.latest_dataset(catalog) == catalog.datasets / "v1"
