"""Airflow DAGs: integrity (DagBag, task ids, dependencies, no heavy imports) and a real run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"
HEAVY = ("torch", "mlflow", "great_expectations", "spacy", "scispacy", "gensim", "sklearn", "pandas", "pyarrow")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """A fresh sqlite Airflow under a temp AIRFLOW_HOME; airflow is imported only after this."""
    home = tmp_path_factory.mktemp("airflow")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "HIERICD_HOME": str(home / "hiericd"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   capture_output=True, env={**os.environ, **env})
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports(dagbag):
    assert dagbag.import_errors == {}
    assert "hiericd_round" in dagbag.dags


def test_round_dag_tasks_and_dependencies(dagbag):
    dag = dagbag.dags["hiericd_round"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "ingest": [],
        "validate": ["ingest"],
        "merge": ["ingest", "validate"],
        "assess": ["ingest", "validate"],
        "datasets": ["assess", "merge"],
    }
    assert [a.name for a in dag.get_task("datasets").outlets] == ["hiericd_datasets"]


def test_dag_files_import_nothing_heavy():
    for path in sorted(DAGS.glob("*.py")):
        code = (
            "import sys, runpy; runpy.run_path(sys.argv[1]); "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(','.join(heavy))"
        )
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"{path.name} imports {out.stdout.strip()}"


@pytest.mark.integration
def test_round_dag_runs_on_a_small_round(dagbag, airflow_env, tmp_path):
    from hiericd_core.synth import generate_round

    generate_round(tmp_path / "round", 150, seed=9)
    run = dagbag.dags["hiericd_round"].test(run_conf={"round_path": str(tmp_path / "round"), "min_count": 2})
    assert run.state == "success"
    home = Path(airflow_env["HIERICD_HOME"])
    assert (home / "reports" / "synth-9-150" / "index.html").is_file()
    assert len(list((home / "datasets").glob("*/manifest.json"))) == 1


@pytest.mark.integration
def test_round_dag_without_a_round_fails_before_any_work(dagbag, airflow_env):
    run = dagbag.dags["hiericd_round"].test(run_conf={"round_path": ""})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["ingest"] == "failed"
    assert all(states[t] in ("upstream_failed", None) for t in ("validate", "merge", "assess", "datasets"))
