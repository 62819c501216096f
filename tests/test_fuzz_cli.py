"""Random bytes through the file readers and the command line: an exit code of 0, 1 or 2, never a traceback.

Exit 1 only where it means something (``validate --strict`` found problems,
the gate refused); nothing is written outside the temporary catalog. Each
property runs a few dozen examples, so the file stays within a few seconds
besides the tiny model it trains once.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hiericd_core.cli import app

runner = CliRunner()
FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
REPO = Path(__file__).resolve().parent.parent

# bytes that look like the files they replace now and then: BRAT lines, CSV rows, TOML tables, odd bytes
_PIECES = [b"T1\tDiagnosis 0 5\tTumor\n", b"#1\tAnnotatorNotes T1\tC18.7\n", b"T2\tDiagnosis 9 3;4 1\tx\n",
           b"report_id,reason_for_visit\n", b'R1,"fever\n', b"[round]\n", b'id = "r"\n', b'language = "zz"\n',
           b"[codes]\n", b"source = 3\n", b"[gate]\n", b"min_micro_f1 = 2\n", b'split = "x"\n', b"\xff\xfe",
           b"\x00", b"\r\n", b"\xed\xa0\x80", "é".encode(), b"[", b"]", b"=", b'"', b"\n", b"\t"]
noise = st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=40)), max_size=12).map(b"".join)


def _repo_snapshot() -> set[str]:
    return set(os.listdir(REPO)) | {f"var/{n}" for n in (os.listdir(REPO / "var") if (REPO / "var").is_dir() else [])}


@pytest.fixture(autouse=True)
def catalog(tmp_path, monkeypatch) -> Path:
    """Every command runs against a catalog in tmp_path; the repository must look the same afterwards."""
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = _repo_snapshot()
    yield tmp_path / "home"
    assert _repo_snapshot() == before


def check(args: list, allowed: frozenset[int] = frozenset({0, 2})) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code in allowed, (args, result.exit_code, result.output[-2000:], result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "error" in result.output


@pytest.fixture(scope="module")
def small_round(tmp_path_factory) -> Path:
    from hiericd_core.synth import generate_round

    path = tmp_path_factory.mktemp("fuzz") / "round"
    generate_round(path, 4, seed=11)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A model trained for one epoch on 40 synthetic reports (seconds): only its input handling is tested."""
    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import generate_round
    from hiericd_core.train import TrainConfig, train_model

    tmp = tmp_path_factory.mktemp("fuzz-model")
    generate_round(tmp / "round", 40, seed=5)
    loaded = load_round(tmp / "round")
    write_merge(merge_round(loaded), loaded, tmp / "merged")
    write_dataset(build_dataset([tmp / "merged"], DatasetConfig(min_count=1, workers=1, backend="pysbd")), tmp / "ds")
    train_model(tmp / "ds", tmp / "model", TrainConfig(
        emb_dim=8, min_freq=1, w2v_epochs=1, tagger_hidden=8, classifier_hidden=8, attention_size=4, tagger_epochs=1,
        classifier_epochs=1, patience=1, threads=1, batch_size=16))
    return tmp / "model"


@FUZZ
@given(txt=noise, ann=noise)
def test_random_brat_files(txt, ann):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "doc.txt").write_bytes(txt)
        (folder / "doc.ann").write_bytes(ann)
        check(["brat-stats", folder])
        check(["brat-stats", folder, "--json"])
        check(["validate", folder, "--strict"], frozenset({0, 1, 2}))


@FUZZ
@given(metadata=noise, toml=noise, ann=noise)
def test_random_round_files(small_round, metadata, toml, ann):
    with tempfile.TemporaryDirectory() as tmp:
        round_dir = Path(tmp) / "round"
        shutil.copytree(small_round, round_dir)
        (round_dir / "metadata.csv").write_bytes(metadata)
        (round_dir / "round.toml").write_bytes(toml)
        coder = sorted((round_dir / "coders").iterdir())[0]
        sorted(coder.glob("*.ann"))[0].write_bytes(ann)
        check(["validate", round_dir, "--strict"], frozenset({0, 1, 2}))


@settings(FUZZ, max_examples=10)  # a readable file reaches the MLflow store: slower
@given(toml=noise)
def test_random_gate_files(tmp_path, toml):
    gate = tmp_path / "gate.toml"
    gate.write_bytes(toml)
    # no store in the catalog: a readable gate gets as far as "no challenger", exit 2 too
    check(["promote", tmp_path, "--gate", gate], frozenset({2}))


@FUZZ
@given(toml=noise)
def test_random_training_config_files(tmp_path, toml):
    from hiericd_core.pipeline import train_config
    from hiericd_core.train import TrainError

    config = tmp_path / "train.toml"
    config.write_bytes(toml)
    try:  # what `hiericd train --config` and `hiericd ablation --config` read (training would take minutes)
        train_config(config)
    except TrainError as exc:
        assert str(config) in str(exc)


@FUZZ
@given(texts=st.lists(noise, min_size=1, max_size=3), metadata=noise)
def test_random_reports_to_predict(tiny_model, texts, metadata):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, text in enumerate(texts):
            (folder / f"r{i}.txt").write_bytes(text)
        (folder / "metadata.csv").write_bytes(metadata)
        check(["predict", tiny_model, folder, "--out", Path(tmp) / "p.tsv", "--evidence", Path(tmp) / "e.jsonl",
               "--scores"])
        assert (Path(tmp) / "p.tsv").is_file()  # every file is coded or skipped with a message, never all lost


def _absent(text: str) -> bool:
    """Not an existing path (an argument naming the repository would scan it, slowly)."""
    return bool(text.strip()) and not os.path.lexists(text)


# argv cannot hold a NUL byte
arguments = st.text(st.characters(blacklist_characters="\x00"), max_size=300).filter(_absent)


@FUZZ
@given(text=arguments)
def test_random_arguments(tmp_path, text):
    for args in (["validate", text], ["brat-stats", text], ["predict", text, text, "--out", tmp_path / "p.tsv"],
                 ["predict", tmp_path, tmp_path, "--out", text], ["datasets", text, "--out", tmp_path / "d"],
                 ["adjudication-queue", text, "--out", tmp_path / "q"], ["paths", "--home", tmp_path / text[:50]]):
        check(args)
