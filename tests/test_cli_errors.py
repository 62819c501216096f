"""Bad input and environment faults at the command line: one message, exit 2 (1: refused; 3: a bug), no traceback."""

import errno
import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiericd_core.cli import app, clip

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def one_line(output: str) -> str:
    """The output as one line (Rich wraps long lines at the terminal width)."""
    return re.sub(r"\s*\n\s*", " ", output).strip()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


@pytest.fixture
def reports(tmp_path) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.txt").write_text("Tubular adenoma of the sigmoid colon.\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------- messages


def test_bracketed_text_in_a_message_is_printed_as_it_is(tmp_path, home):
    from hiericd_core.synth import generate_round

    generate_round(tmp_path / "round", 3, seed=1)
    toml = tmp_path / "round" / "round.toml"
    toml.write_text(toml.read_text().replace('language = "en"', 'language = "en"\nlanguag = "es"'))
    code, output = invoke("validate", tmp_path / "round")
    assert code == 2
    assert "[round] languag: unknown key" in one_line(output)  # Rich markup would eat "[round]"


def test_a_huge_line_in_a_message_is_cut(tmp_path, home):
    gate = tmp_path / "gate.toml"
    gate.write_text(f"[gate]\n{'x' * 2_000_000} = 1\n")
    code, output = invoke("promote", tmp_path, "--gate", gate)
    assert code == 2
    assert "unknown gate setting(s) xxx" in output and "characters cut)" in one_line(output)
    assert len(output) < 2_000
    assert clip("a" * 10 + "\nb", line_limit=4) == "aaaa… (6 characters cut)\nb"
    assert clip("\n".join("abc"), lines_limit=2) == "a\nb\n… (1 more lines)"


# ---------------------------------------------------------------- the environment


@pytest.mark.parametrize(("number", "meaning"), [
    (errno.ENOSPC, "no space left on the disk"), (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"), (errno.EDQUOT, "disk quota exceeded")])
def test_a_full_read_only_or_forbidden_disk_is_one_line_naming_the_path(tmp_path, monkeypatch, number, meaning):
    import hiericd_core.synth

    target = tmp_path / "round" / "texts" / "R000001.txt"

    def fail(*args, **kwargs):
        raise OSError(number, "as the kernel says it", str(target))

    monkeypatch.setattr(hiericd_core.synth, "generate_round", fail)
    code, output = invoke("synth", "--out", tmp_path / "round", "--reports", 2)
    assert code == 2
    assert one_line(output) == f"error: {target}: {meaning}" + one_line(output).split(meaning, 1)[1]
    assert len(output.strip().splitlines()) <= 2


def test_a_file_in_the_way_of_an_output_folder_is_named(tmp_path):
    from hiericd_core.cli import environment_message

    (tmp_path / "f").write_text("x")
    code, output = invoke("synth", "--out", tmp_path / "f" / "round", "--reports", 2)
    assert code == 2 and f"error: {tmp_path / 'f'}: already exists and is not a folder" in one_line(output)
    # the temp file of an atomic write is named as the file the user asked for
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".p.tsv.k2j_x9ab.tmp"))
    assert environment_message(full) == f"{tmp_path / 'p.tsv'}: no space left on the disk; free some space and run " \
        "again"


def test_a_bug_is_one_line_with_exit_3_and_vv_shows_the_traceback(tmp_path, monkeypatch):
    import hiericd_core.synth

    def bug(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(hiericd_core.synth, "generate_round", bug)
    code, output = invoke("synth", "--out", tmp_path / "round", "--reports", 2)
    assert code == 3 and "internal error" in output and "TypeError: unsupported operand" in output
    try:
        result = runner.invoke(app, ["-vv", "synth", "--out", str(tmp_path / "round2"), "--reports", "2"])
        assert isinstance(result.exception, TypeError)  # re-raised: python shows the traceback
    finally:
        logging.getLogger("hiericd_core").setLevel(logging.WARNING)


# ---------------------------------------------------------------- predict


def test_predict_out_pointing_at_a_folder_is_a_user_error(tmp_path, reports):
    code, output = invoke("predict", tmp_path / "no-model", reports, "--out", tmp_path)
    assert code == 2 and f"--out {tmp_path} is a folder; give a file name" in one_line(output)
    code, output = invoke("predict", tmp_path / "no-model", reports, "--out", tmp_path / "p.tsv",
                          "--evidence", reports)
    assert code == 2 and "--evidence" in output and "is a folder" in output


def test_predict_input_without_reports_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    code, output = invoke("predict", tmp_path / "no-model", tmp_path / "empty", "--out", tmp_path / "p.tsv")
    assert code == 2 and "no .txt report in it" in output
    round_dir = tmp_path / "round"
    (round_dir / "texts").mkdir(parents=True)
    code, output = invoke("predict", tmp_path / "no-model", round_dir, "--out", tmp_path / "p.tsv")
    assert code == 2 and f"{round_dir / 'texts'}: no .txt report" in one_line(output)
    code, output = invoke("predict", tmp_path / "no-model", tmp_path / "missing", "--out", tmp_path / "p.tsv")
    assert code == 2 and "no such folder" in output


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "json"])
def test_a_damaged_model_file_is_named_with_what_to_do(tmp_path, reports, damage):
    import torch

    model = tmp_path / "model"
    model.mkdir()
    (model / "vocab.json").write_text('{"tokens": ["<pad>", "<unk>"], "min_freq": 1}')
    for name in ("tagger.pt", "classifier.pt"):
        torch.save({"format": 1, "kind": "nothing"}, model / name)
    broken = model / "tagger.pt"
    if damage == "garbage":
        broken.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    elif damage == "truncated":
        broken.write_bytes(broken.read_bytes()[:40])
    elif damage == "empty":
        broken.write_bytes(b"")
    else:
        torch.save([1, 2, 3], broken)  # readable, but not a checkpoint of ours
    for command in (["predict", model, reports, "--out", tmp_path / "p.tsv"],
                    ["evaluate", model, tmp_path, "--no-baselines"]):
        code, output = invoke(*command)
        assert code == 2, output
        assert f"error: {broken}: not a readable model file (" in one_line(output)
        assert one_line(output).endswith("retrain or copy it again")
    assert not (tmp_path / "p.tsv").exists()


def test_a_registry_reference_without_a_store_writes_nothing(tmp_path, home, reports):
    for reference in ("champion", "models:/hiericd-pipeline/3", "models:/hiericd-pipeline@challenger"):
        code, output = invoke("predict", reference, reports, "--out", tmp_path / "p.tsv")
        assert code == 2 and f"{reference}: no MLflow store at" in one_line(output)
    assert not home.exists()
    code, output = invoke("predict", "models:/what?", reports, "--out", tmp_path / "p.tsv")
    assert code == 2 and "not a model reference" in output


# ---------------------------------------------------------------- config files and languages


@pytest.mark.parametrize(("toml", "message"), [
    ('[gate]\nmin_micro_f1 = "high"\n', "gate setting min_micro_f1 = 'high' should be float"),
    ("[gate]\nmin_micro_f1 = 1.5\n", "gate setting min_micro_f1 = 1.5: give a number from 0 to 1"),
    ('[gate]\nsplit = "train"\n', "gate setting split = 'train': use dev or test"),
    ('[gate]\nbeat_baseline = "bert"\n', "gate setting beat_baseline = 'bert': use one of lr"),
    ("[gate]\nmin_code_support = -1\n", "gate setting min_code_support = -1"),
    ("[gate]\nmin_kapa = 0.2\n", "unknown gate setting(s) min_kapa"),
    ("[gate\n", "cannot read the gate config"),
    ("gate = 3\n", "gate must be a table"),
])
def test_a_bad_gate_file_is_exit_2_naming_file_and_key_not_a_refusal(tmp_path, home, toml, message):
    gate = tmp_path / "gate.toml"
    gate.write_text(toml)
    code, output = invoke("promote", tmp_path, "--gate", gate)
    assert code == 2  # 1 means the gate refused a challenger
    assert f"error: {gate}: {message}" in one_line(output)
    assert not home.exists()  # refused before the store is opened


def test_datasets_with_an_unknown_language_is_a_user_error(tmp_path, home):
    from hiericd_core.synth import generate_round

    generate_round(tmp_path / "round", 5, seed=2)
    toml = tmp_path / "round" / "round.toml"
    toml.write_text(toml.read_text().replace('language = "en"', 'language = "zz"'))
    code, output = invoke("datasets", tmp_path / "round", "--out", tmp_path / "ds")
    assert code == 2 and "'zz'" in output
    code, output = invoke("validate", tmp_path / "round", "--language", "zz")
    assert code == 2 and "'zz'" in output


# ---------------------------------------------------------------- global options, paths, validate --strict


def test_version_and_log_level_options():
    from importlib.metadata import version

    code, output = invoke("--version")
    assert code == 0 and output.strip() == f"hiericd {version('hiericd')}"
    logger = logging.getLogger("hiericd_core")
    try:
        for options, level in ((["-v"], logging.INFO), (["-vv"], logging.DEBUG), (["-q"], logging.ERROR),
                               (["--log-level", "error"], logging.ERROR), ([], logging.WARNING)):
            code, _ = invoke(*options, "paths")
            assert code == 0 and logger.level == level, options
        code, output = invoke("--log-level", "loud", "paths")
        assert code == 2 and "'loud': use one of debug" in one_line(output)
    finally:
        logger.setLevel(logging.WARNING)


def test_paths_lists_every_catalog_path(tmp_path):
    from hiericd_core.catalog import Catalog

    code, output = invoke("paths", "--home", tmp_path)
    assert code == 0
    listed = dict(line.split(None, 1) for line in output.splitlines())
    catalog = Catalog.from_env(tmp_path)
    expected = {name: str(getattr(catalog, name)) for name, attr in vars(Catalog).items()
                if isinstance(attr, property) and isinstance(getattr(catalog, name), (Path, str))}
    assert {"incoming", "rounds", "datasets", "models", "mlflow", "mlflow_artifacts", "decisions",
            "mlflow_tracking_uri", "airflow_home"} <= set(expected)
    assert listed == {"root": str(tmp_path), **expected}


def test_validate_strict_exits_1_when_anything_is_quarantined(tmp_path):
    from hiericd_core.synth import generate_round

    sample = FIXTURES / "codiesp-sample" / "dev"
    for extra in ([], ["--json"]):
        code, _ = invoke("validate", sample, "--language", "es", "--strict", *extra)
        assert code == 1
        code, _ = invoke("validate", sample, "--language", "es", *extra)
        assert code == 0
    generate_round(tmp_path / "round", 5, seed=2)
    code, output = invoke("validate", tmp_path / "round", "--strict")
    assert code == 0 and "no problems" in output
