"""``make demo``: the DAGs run through an embedded Airflow under the catalog; user mistakes are one message.

The whole chain (round → train → promote, twice) is what tests/test_dags.py runs with dag.test(); here the
demo's own wiring: ``airflow dags test`` in the catalog's Airflow home, what it prints, its exit status.
"""

from pathlib import Path

import pytest

from hiericd_core import demo

FIXTURES = Path(__file__).parent / "fixtures"


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
    assert demo.main(["--round", str(FIXTURES / "codiesp-sample" / "train"), "--min-count", "2", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "✓ hiericd_round" in out and "needs two coders per report" in out
    assert (home / "airflow" / "airflow.db").is_file()
    log = next((home / "airflow" / "demo-logs").glob("*-hiericd_round.log")).read_text()
    assert "hiericd_round" in log and "DagRun Finished" in log and "state=success" in log
    (manifest,) = (home / "datasets").glob("*/manifest.json")
    assert "GX Data Docs" in out and (manifest.parent / "data_docs" / "index.html").is_file()
    assert (home / "demo-gate.toml").read_text().count('beat_baseline = "none"') == 1


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
