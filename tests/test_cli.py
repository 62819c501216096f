"""The hiericd command: outputs and clear errors (exit 2, no traceback) for user mistakes."""

import json
from pathlib import Path

from typer.testing import CliRunner

from hiericd_core.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_brat_stats_json_on_fixtures():
    result = runner.invoke(app, ["brat-stats", str(FIXTURES / "brat" / "brat-examples"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # grep counts of the fixture .ann files (see test_bratstats.py)
    assert (data["documents"], data["entities"], data["events"], data["problems"]) == (7, 84, 21, [])


def test_brat_stats_lists_problems_with_file_and_line(tmp_path):
    (tmp_path / "a.txt").write_text("Tumor.\n")
    (tmp_path / "a.ann").write_text("T1\tDiagnosis 0 5\tTumor\nT2\tDiagnosis 4 2\tx\n")
    result = runner.invoke(app, ["brat-stats", str(tmp_path)])
    assert result.exit_code == 0
    assert "1 problem(s)" in result.stdout
    assert f"{tmp_path / 'a.ann'}:2" in result.stdout.replace("\n", "")


def test_missing_folder_is_a_message_not_a_traceback(tmp_path):
    for command in (["brat-stats", str(tmp_path / "nope")], ["validate", str(tmp_path / "nope")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        assert "error:" in result.output and "no such folder" in result.output
        assert "Traceback" not in result.output


def test_validate_json_on_codiesp_sample():
    result = runner.invoke(app, ["validate", str(FIXTURES / "codiesp-sample" / "dev"), "--json", "--language", "es"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["layout"] == "plain" and data["language"] == "es"
    assert data["reports"] == len(list((FIXTURES / "codiesp-sample" / "dev").glob("*.ann")))
    assert data["coders"] == ["coder1"]
    # every quarantined item is listed with its file and line
    assert sum(data["quarantined"].values()) == len(data["problems"])
    assert all(".ann:" in message for message in data["problems"])


def test_paths_honours_hiericd_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["paths"])
    assert result.exit_code == 0
    assert str(tmp_path / "home" / "rounds") in result.stdout.replace("\n", "")


def test_merge_into_the_catalog_writes_the_queue_for_pending_reports(tmp_path, monkeypatch):
    from hiericd_core.synth import SynthConfig, generate_round

    generate_round(tmp_path / "round", 120, seed=6, config=SynthConfig(senior_backlog_rate=0.1))
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["merge", str(tmp_path / "round"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    pending = summary["reports"]["pending"]
    assert pending > 0
    queue = tmp_path / "home" / "merged" / "synth-6-120" / "adjudication"
    assert len(list(queue.glob("*.ann"))) == pending
    result = runner.invoke(app, ["merge", str(tmp_path / "round"), "--out", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0 and "adjudication-queue" in result.output.replace("\n", "")


def test_synth_focus_negation_option_reaches_the_generator(tmp_path):
    from hiericd_core.synth import SynthConfig, generate_round

    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "cli"), "--reports", "30", "--seed", "4",
                                 "--focus-negation", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    generate_round(tmp_path / "api", 30, 4, SynthConfig(focus_negation_rate=0.5))
    for name in ("R000001.txt", "R000030.txt"):
        assert (tmp_path / "cli" / "texts" / name).read_bytes() == (tmp_path / "api" / "texts" / name).read_bytes()
    refused = runner.invoke(app, ["synth", "--out", str(tmp_path / "bad"), "--focus-negation", "1.5"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
