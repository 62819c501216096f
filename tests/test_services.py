"""The production shape on real services: Airflow's CeleryExecutor on PostgreSQL + Redis, MLflow on PostgreSQL.

Starts, on 127.0.0.1 and free ports, a PostgreSQL server (Airflow metadata,
Celery results, MLflow backend store), a Redis broker, and then Airflow's
api-server (the execution API the tasks talk to), scheduler, dag-processor and
one Celery worker, all as subprocesses with AIRFLOW_HOME and HIERICD_HOME in
temp folders and the repo's dags/ as the DAGs folder. A tiny synthetic round
goes through ``hiericd_round`` triggered from the CLI; the task-instance
states are then read straight from PostgreSQL. A second server, ``mlflow
server`` on the same PostgreSQL, registers a model, gets the ``champion``
alias and serves it back. Every process is stopped at the end, also when a
test fails (each fixture stops its process groups in ``finally``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import servicekit as sk
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAG_ID = "hiericd_round"
AFTER_INGEST = ("validate", "merge", "assess", "datasets")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="module")
def postgres(workdir):
    """A PostgreSQL server set up by the compose stack's init script: roles and databases airflow and mlflow.

    ``postgres.logins`` maps each role to its password; the servers below log in as those roles, so the
    script's grants are what they run on.
    """
    with sk.Services() as services:
        pg = sk.Postgres(services, workdir)
        try:
            pg.logins = {"airflow": secrets.token_urlsafe(16), "mlflow": secrets.token_urlsafe(16)}
            pg.run_init_script(ROOT / "docker" / "postgres" / "init-databases.sh",
                               {"AIRFLOW_DB_PASSWORD": pg.logins["airflow"], "MLFLOW_DB_PASSWORD": pg.logins["mlflow"]})
            yield pg
        finally:
            services.stop_all()
            pg.cleanup()


@pytest.fixture(scope="module")
def redis_server(workdir):
    with sk.Services() as services:
        yield sk.Redis(services, workdir)


class Airflow:
    """The running Airflow components and what the tests need to drive and inspect them."""

    def __init__(self, env: dict[str, str], home: Path, logs: dict[str, sk.Service]):
        self.env, self.home, self.logs = env, home, logs

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``airflow ARGS`` against this deployment; fail with its output when it fails."""
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done

    def diagnostics(self) -> str:
        """Log tails of every component and of the task logs, for failure messages."""
        parts = [f"--- {name} ---\n{service.log_tail(3000)}" for name, service in self.logs.items()]
        for log in sorted((self.home / "logs").rglob("*.log"))[-5:]:
            parts.append(f"--- {log.relative_to(self.home)} ---\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def airflow(workdir, postgres, redis_server):
    """api-server + scheduler + dag-processor + one Celery worker on the PostgreSQL and Redis above."""
    home = workdir / "airflow"
    api_port = sk.free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "HIERICD_HOME": str(workdir / "hiericd"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: name the installed driver.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url("airflow", "postgresql+psycopg2", "airflow",
                                                            postgres.logins["airflow"]),
        "AIRFLOW__CELERY__BROKER_URL": redis_server.url(0),
        "AIRFLOW__CELERY__RESULT_BACKEND": postgres.url("airflow", "db+postgresql+psycopg2", "airflow",
                                                        postgres.logins["airflow"]),
        # Airflow 3 workers run tasks through the api-server's execution API, authenticated by JWTs that the
        # scheduler signs: every component needs the same secret and the api-server's address.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(sk.free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # Only the runs the tests trigger: an unpaused hiericd_round would also start its hourly run (which waits
        # for a round in incoming/ and, with max_active_runs=1, would hold the triggered runs back).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    with sk.Services() as services:
        airflow_bin = str(BIN / "airflow")
        logs = {
            "api-server": services.start("api-server", [airflow_bin, "api-server", "--host", "127.0.0.1",
                                                        "--port", str(api_port)], workdir / "api-server.log", env=env),
            "scheduler": services.start("scheduler", [airflow_bin, "scheduler"], workdir / "scheduler.log", env=env),
            "dag-processor": services.start("dag-processor", [airflow_bin, "dag-processor"],
                                            workdir / "dag-processor.log", env=env),
            "worker": services.start("worker", [airflow_bin, "celery", "worker", "--concurrency", "1",
                                                "--skip-serve-logs"], workdir / "worker.log", env=env),
        }
        sk.wait_for(lambda: sk.port_open(api_port), 180, "the api-server to listen", logs["api-server"])
        sk.wait_for(lambda: postgres.query("airflow", "SELECT 1 FROM serialized_dag WHERE dag_id = %s", (DAG_ID,)),
                    180, f"the dag-processor to store {DAG_ID}", logs["dag-processor"])
        sk.wait_for(lambda: b"ready" in logs["worker"].log.read_bytes(), 180, "the Celery worker", logs["worker"])
        stack = Airflow(env, home, logs)
        stack.cli("dags", "unpause", DAG_ID)
        assert postgres.query("airflow", "SELECT is_paused FROM dag WHERE dag_id = %s", (DAG_ID,)) == [(False,)]
        yield stack


def test_init_script_gives_airflow_and_mlflow_their_own_database_and_login(postgres):
    import psycopg2

    owners = postgres.query("postgres", "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                                        "WHERE datname IN ('airflow', 'mlflow') ORDER BY datname")
    assert owners == [("airflow", "airflow"), ("mlflow", "mlflow")]
    postgres.connect("mlflow", "mlflow", postgres.logins["mlflow"]).close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        postgres.connect("airflow", "airflow", postgres.logins["mlflow"])


def run_round(airflow: Airflow, postgres: sk.Postgres, run_id: str, conf: dict, timeout: float = 300) -> str:
    """Trigger ``hiericd_round`` from the CLI and wait until the run finishes; its final state."""
    airflow.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
    final: list[str] = []

    def finished() -> bool:
        rows = postgres.query("airflow", "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s",
                              (DAG_ID, run_id))
        if rows and rows[0][0] in ("success", "failed"):
            final.append(rows[0][0])
            return True
        return False

    try:
        sk.wait_for(finished, timeout, f"run {run_id} to finish", airflow.logs["scheduler"], every=2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{airflow.diagnostics()}") from None
    return final[0]


def task_states(postgres: sk.Postgres, run_id: str) -> dict[str, str | None]:
    rows = postgres.query("airflow", "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
                          (DAG_ID, run_id))
    return dict(rows)


def test_round_dag_runs_on_celery_workers(airflow, postgres, redis_server, workdir):
    from hiericd_core.synth import generate_round

    generate_round(workdir / "round", 60, seed=3)
    state = run_round(airflow, postgres, "it-round", {"round_path": str(workdir / "round"), "min_count": 2})
    assert state == "success", airflow.diagnostics()
    states = task_states(postgres, "it-round")
    assert {"ingest", *AFTER_INGEST} <= set(states)
    assert set(states.values()) == {"success"}, states

    # The work went through Celery: the broker holds the default queue's binding, and each task instance left
    # a SUCCESS result in the PostgreSQL result backend (the last one is written just after the task's state,
    # hence the short wait).
    import redis

    assert redis.Redis(host="127.0.0.1", port=redis_server.port).keys("_kombu.binding.default")

    def all_results() -> bool:
        return postgres.query("airflow", "SELECT status, count(*) FROM celery_taskmeta GROUP BY status") == [
            ("SUCCESS", len(states))]

    sk.wait_for(all_results, 30, f"{len(states)} SUCCESS results in celery_taskmeta")

    # The tasks wrote into the worker's HIERICD_HOME: the round's report and one data set.
    home = Path(airflow.env["HIERICD_HOME"])
    assert (home / "reports" / "synth-3-60" / "index.html").is_file()
    assert len(list((home / "datasets").glob("*/manifest.json"))) == 1


def test_round_dag_with_a_missing_round_fails_at_ingest(airflow, postgres, workdir):
    state = run_round(airflow, postgres, "it-missing-round", {"round_path": str(workdir / "no-such-round")})
    assert state == "failed"
    states = task_states(postgres, "it-missing-round")
    assert states["ingest"] == "failed"
    assert {states[t] for t in AFTER_INGEST} == {"upstream_failed"}


@pytest.fixture(scope="module")
def mlflow_server(workdir, postgres):
    """``mlflow server`` with the PostgreSQL backend store and a proxied local artifact destination."""
    port = sk.free_port()
    artifacts = workdir / "mlflow-artifacts"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with sk.Services() as services:
        server = services.start(
            "mlflow",
            [str(BIN / "mlflow"), "server", "--backend-store-uri",
             postgres.url("mlflow", "postgresql+psycopg2", "mlflow", postgres.logins["mlflow"]),
             "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            workdir / "mlflow.log", env=env,
        )
        url = f"http://127.0.0.1:{port}"
        sk.wait_for(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200, 180,
                    "the MLflow server's /health", server)
        yield url, artifacts


@pytest.fixture
def mlflow_at(mlflow_server, monkeypatch):
    """Point this process's MLflow client at the server for one test, and back afterwards."""
    import mlflow

    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        yield url
    finally:
        # set_tracking_uri(None) drops the global (and the env var, which monkeypatch then restores).
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def test_mlflow_server_registers_and_serves_the_champion(mlflow_at, mlflow_server, postgres):
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    client = MlflowClient()
    model = LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))  # y = 2x + 1
    experiment = client.create_experiment(f"services-{time.time_ns()}")
    with mlflow.start_run(experiment_id=experiment):
        logged = mlflow.sklearn.log_model(model, name="model", registered_model_name="hiericd-services-test",
                                          pip_requirements=["scikit-learn"])
    version = logged.registered_model_version
    client.set_registered_model_alias("hiericd-services-test", "champion", version)

    served = mlflow.pyfunc.load_model("models:/hiericd-services-test@champion")
    np.testing.assert_allclose(served.predict(np.array([[3.0], [10.0]])), [7.0, 21.0])

    # The registry lives in PostgreSQL and the model files in the server's artifact destination.
    assert postgres.query("mlflow", "SELECT name, alias, version FROM registered_model_aliases") == [
        ("hiericd-services-test", "champion", int(version))]
    _, artifacts = mlflow_server
    [mlmodel] = artifacts.rglob("MLmodel")
    flavor = yaml.safe_load(mlmodel.read_text())["flavors"]["sklearn"]
    assert (mlmodel.parent / flavor["pickled_model"]).is_file()
