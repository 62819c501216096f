"""Airflow DAGs: integrity (DagBag, task ids, dependencies, no heavy imports) and real runs, chained."""

import json
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
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   capture_output=True, env={**os.environ, **env})
    if "airflow.settings" in sys.modules:
        # Airflow was imported earlier in this session (another test file) and connected to another database:
        # point it at this one (configuration reads the environment on each lookup, settings do not)
        from airflow import settings

        settings.dispose_orm(do_log=False)
        settings.configure_vars()
        settings.configure_orm()
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
    assert set(dagbag.dags) == {"hiericd_round", "hiericd_train", "hiericd_promote"}


def upstream_of(dag) -> dict[str, list[str]]:
    return {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}


def test_round_dag_tasks_and_dependencies(dagbag):
    dag = dagbag.dags["hiericd_round"]
    assert upstream_of(dag) == {
        "wait_for_round": [],
        "ingest": ["wait_for_round"],
        "validate": ["ingest"],
        "merge": ["ingest", "validate"],
        "assess": ["ingest", "validate"],
        "datasets": ["assess", "merge"],
    }
    assert [a.name for a in dag.get_task("datasets").outlets] == ["hiericd_datasets"]
    sensor = dag.get_task("wait_for_round")
    assert (sensor.mode, sensor.soft_fail, sensor.timeout, sensor.poke_interval) == ("reschedule", True, 3300, 60)
    assert dag.timetable.expression == "0 * * * *"


def test_train_dag_trains_both_models_side_by_side(dagbag):
    dag = dagbag.dags["hiericd_train"]
    assert upstream_of(dag) == {
        "locate": [],
        "prepare": ["locate"],
        "train_tagger": ["locate", "prepare"],
        "train_classifier": ["locate", "prepare"],
        "finish": ["locate", "train_classifier", "train_tagger"],
        "tune": ["finish", "locate"],
        "evaluate": ["locate", "tune"],
        "register": ["evaluate", "locate"],
    }
    # on the round DAG's asset or a weekly cron, whichever comes first
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.asset_condition.name == "hiericd_datasets"
    assert dag.timetable.timetable.expression == "0 3 * * 1"
    assert [a.name for a in dag.get_task("register").outlets] == ["hiericd_challenger"]
    for task_id in ("prepare", "train_tagger", "train_classifier", "tune", "evaluate", "register"):
        task = dag.get_task(task_id)
        assert task.retries >= 1 and task.execution_timeout is not None, task_id
    assert set(dag.params) == {"dataset_dir", "config", "config_file", "tune_folds"}


def test_promote_dag_runs_on_the_challenger(dagbag):
    dag = dagbag.dags["hiericd_promote"]
    # approve: a person signs off when the require_approval param is on, else it skips itself (tests/test_approval.py)
    assert upstream_of(dag) == {"locate": [], "gate": ["locate"], "approve": ["gate"], "apply": ["approve", "gate"],
                                "announce": ["apply"]}
    assert dag.timetable.asset_condition.name == "hiericd_challenger"
    assert [a.name for a in dag.get_task("announce").outlets] == ["hiericd_champion"]
    assert set(dag.params) == {"dataset_dir", "gate_file", "require_approval"}


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")) + [ROOT / "plugins" / "hiericd_airflow"],
                         ids=lambda p: p.name)
def test_dag_and_plugin_files_import_nothing_heavy(path):
    load = ("runpy.run_path(sys.argv[1])" if path.suffix == ".py"
            else "import importlib; importlib.import_module(sys.argv[1].rsplit('/', 1)[-1])")
    code = (
        f"import sys, runpy; {load}; "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print('HEAVY:' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    assert out.returncode == 0, out.stderr[-2000:]
    (heavy,) = [line for line in out.stdout.splitlines() if line.startswith("HEAVY:")]
    assert heavy == "HEAVY:", f"{path.name} imports {heavy[6:]}"


# classifier_hidden 32: 16 units each way in the bidirectional classifier; with 8 a 10-epoch model on 300
# reports still predicts the majority code, and the worse challenger below would tie it instead of losing
TINY = {"emb_dim": 16, "min_freq": 1, "w2v_epochs": 2, "tagger_hidden": 16, "classifier_hidden": 32,
        "attention_size": 8, "tagger_epochs": 6, "classifier_epochs": 10, "patience": 10, "threads": 1,
        "batch_size": 16}


def asset_events(name: str) -> list[dict]:
    """The extras of the events Airflow recorded for the asset ``name``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.name == name).order_by(AssetEvent.id))
        return [dict(e.extra or {}) for e in rows]


def states(run) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_round_train_promote_chain_makes_a_champion_and_refuses_a_worse_challenger(dagbag, airflow_env, tmp_path):
    """A round moved into incoming/ → data set → two models in parallel → MLflow challenger → gate → champion;
    then a challenger trained for one epoch only is refused, and no champion event follows. dag.test() records
    asset events but does not start the consumers, so the test chains the DAGs as the scheduler would, with the
    data set each event names."""
    from hiericd_airflow.page import collect

    from hiericd_core import registry
    from hiericd_core.catalog import Catalog
    from hiericd_core.synth import generate_round

    home = Catalog.from_env(airflow_env["HIERICD_HOME"])
    generate_round(home.root / "incoming" / "export-2026-11", 300, seed=9)
    run = dagbag.dags["hiericd_round"].test(run_conf={"round_path": "", "min_count": 3})
    assert run.state == "success"
    assert (home.root / "incoming" / ".ingested" / "export-2026-11" / "round.toml").is_file()
    assert not (home.root / "incoming" / "export-2026-11").exists()
    assert (home.report("synth-9-300") / "index.html").is_file()
    (built,) = asset_events("hiericd_datasets")
    assert (Path(built["dataset_dir"]) / "manifest.json").is_file() and built["round_id"] == "synth-9-300"

    # the demo-sized model does not beat the LR baseline; this test is about the wiring, not the model
    gate = tmp_path / "gate.toml"
    gate.write_text('[gate]\nbeat_baseline = "none"\n')
    run = dagbag.dags["hiericd_train"].test(run_conf={"dataset_dir": built["dataset_dir"], "config": TINY,
                                                      "tune_folds": 2})
    assert run.state == "success", states(run)
    (challenger,) = asset_events("hiericd_challenger")
    model = Path(challenger["model_dir"])
    assert json.loads((model / "train_config.json").read_text())["tagger_epochs"] == 6
    tuning = json.loads((model / "tuning.json").read_text())  # the rule chosen by 2-fold CV is the one used
    assert tuning["folds"] == 2 and json.loads((model / "inference.json").read_text()) == tuning["best"]["config"]
    assert (model / "metrics.json").is_file() and (model / "evaluation-test.json").is_file()
    run = dagbag.dags["hiericd_promote"].test(run_conf={"dataset_dir": challenger["dataset_dir"],
                                                          "gate_file": str(gate)})
    assert run.state == "success", states(run)
    assert (states(run)["approve"], states(run)["apply"]) == ("skipped", "success")  # no approval asked: gate decides
    status = registry.status()
    assert str(status["champion"]["version"]) == str(challenger["version"]) == "1"
    assert [str(e["version"]) for e in asset_events("hiericd_champion")] == ["1"]

    worse = {**TINY, "tagger_epochs": 1, "classifier_epochs": 1}
    run = dagbag.dags["hiericd_train"].test(run_conf={"dataset_dir": built["dataset_dir"], "config": worse,
                                                      "tune_folds": 0})
    assert run.state == "success", states(run)
    second = asset_events("hiericd_challenger")[-1]
    assert str(second["version"]) == "2"
    run = dagbag.dags["hiericd_promote"].test(run_conf={"dataset_dir": second["dataset_dir"],
                                                          "gate_file": str(gate)})
    assert run.state == "failed"
    assert states(run) == {"locate": "success", "gate": "failed", "approve": "upstream_failed",
                           "apply": "upstream_failed", "announce": "upstream_failed"}
    assert len(asset_events("hiericd_champion")) == 1  # the refused challenger starts nothing downstream
    status = registry.status()
    assert (str(status["champion"]["version"]), str(status["challenger"]["version"])) == ("1", "2")
    decision = json.loads(max(home.decisions.glob("*-v2.json")).read_text())
    assert decision["outcome"] == "refused"
    assert "micro_f1_tolerance" in [r["rule"] for r in decision["rules"] if r["passed"] is False]

    shown = collect(home)  # the UI page: the round, and champion beside challenger
    assert [r["round_id"] for r in shown["rounds"]] == ["synth-9-300"]
    assert (str(shown["models"]["champion"]["version"]), str(shown["models"]["challenger"]["version"])) == ("1", "2")


@pytest.mark.integration
def test_round_dag_on_a_folder_that_is_not_a_round_stops_at_ingest(dagbag, tmp_path):
    run = dagbag.dags["hiericd_round"].test(run_conf={"round_path": str(tmp_path / "missing")})
    assert run.state == "failed"
    assert states(run)["wait_for_round"] == "success" and states(run)["ingest"] == "failed"
    assert all(states(run)[t] in ("upstream_failed", None) for t in ("validate", "merge", "assess", "datasets"))


@pytest.mark.integration
def test_round_dag_gate_failure_puts_no_data_set_in_place_and_emits_nothing(dagbag, airflow_env, tmp_path):
    from hiericd_core.catalog import Catalog
    from hiericd_core.synth import generate_round

    home = Catalog.from_env(airflow_env["HIERICD_HOME"])
    generate_round(tmp_path / "round", 40, seed=21)
    before = sorted(p.name for p in home.datasets.iterdir()) if home.datasets.is_dir() else []
    events = len(asset_events("hiericd_datasets"))
    # no code occurs 10,000 times: the label space is empty and the gate fails
    run = dagbag.dags["hiericd_round"].test(run_conf={"round_path": str(tmp_path / "round"), "min_count": 10_000,
                                                      "all_rounds": False})
    assert run.state == "failed"
    assert states(run)["merge"] == "success" and states(run)["datasets"] == "failed"
    assert sorted(p.name for p in home.datasets.iterdir()) == before  # nothing new, no scratch left
    assert len(asset_events("hiericd_datasets")) == events  # training is not triggered
    rejected = [p for p in (home.rejected / "datasets").iterdir()
                if json.loads((p / "validation.json").read_text())["success"] is False]
    assert rejected and (rejected[0] / "manifest.json").is_file()


@pytest.mark.integration
def test_train_dag_refuses_a_data_set_that_did_not_pass_its_gate(dagbag, tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"version": "0123456789abcdef", "source_rounds": []}')
    (folder / "validation.json").write_text('{"success": false, "results": []}')
    run = dagbag.dags["hiericd_train"].test(run_conf={"dataset_dir": str(folder)})
    assert run.state == "failed"
    assert states(run)["locate"] == "failed" and states(run)["prepare"] == "upstream_failed"
    (folder / "validation.json").unlink()
    run = dagbag.dags["hiericd_train"].test(run_conf={"dataset_dir": str(folder)})
    assert run.state == "failed" and states(run)["locate"] == "failed"
