"""A person signs off a promotion: the registry's held decision, its apply/reject, and the DAG's approval pieces.

A whole human-in-the-loop run cannot happen in ``dag.test()`` (the task waits
for a person in the API server), so the pieces are tested here: the gate that
holds the decision, the ``approve`` operator's skip and rejection, and the
``apply`` task on a real sqlite store.
"""

import json
import runpy
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_registry import GATE, new_catalog, registry_models, store_client

from hiericd_core import registry
from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_json

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "hiericd_promote.py"
LOOSE = registry.GateConfig(beat_baseline=None, micro_f1_tolerance=1.0, max_code_f1_drop=1.0, min_code_support=5)


@pytest.fixture(scope="module")
def dag_module() -> dict:
    """The DAG file's names (GateApproval, _summary, the DAG factory), as Airflow's parser runs it."""
    return runpy.run_path(str(DAG_FILE))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A catalog with the good run registered (v1, challenger) and the weak run logged; built once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        models = registry_models(tmp_path_factory)
        catalog = new_catalog(tmp_path_factory.mktemp("approval") / "home", models, tmp_path_factory)
        registry.register(registry.log_training_run(models["good"], models["dataset"], catalog=catalog),
                          catalog=catalog)
        weak = registry.log_training_run(models["weak"], models["dataset"], catalog=catalog)
        atomic_write_json(catalog.root / "prepared.json", {"weak_run": weak, "dataset": str(models["dataset"])})
        return catalog.root


class Held:
    """A test's catalog: v1's decision waits for a person (``first``); v2 (the weak model) is the challenger."""

    def __init__(self, root: Path):
        self.catalog = Catalog.from_env(root)
        prepared = json.loads((root / "prepared.json").read_text())
        self.dataset = Path(prepared["dataset"])
        self.first = registry.promote(dataset_dir=self.dataset, gate=GATE, catalog=self.catalog, await_approval=True)
        registry.register(prepared["weak_run"], catalog=self.catalog)

    def promote(self, **kwargs) -> dict:
        return registry.promote(dataset_dir=self.dataset, catalog=self.catalog, **kwargs)


@pytest.fixture
def held(prepared, tmp_path, monkeypatch) -> Held:
    """A copy of the prepared catalog (its runs' artifacts stay where they were logged)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(prepared, tmp_path / "home")
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    return Held(tmp_path / "home")


class FakeTI:
    """What the tasks read from the task instance: the XCom of gate and approve."""

    map_index = -1

    def __init__(self, **xcoms):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str):
        return self.xcoms.get(task_ids)

    def xcom_push(self, key: str, value) -> None:
        self.xcoms[key] = value


def answer(option: str, name: str = "dr.lopez") -> dict:
    """A human-in-the-loop response as the operator's execute_complete receives it."""
    return {"chosen_options": [option], "params_input": {}, "responded_by_user": {"id": "17", "name": name},
            "responded_at": datetime(2026, 12, 7, 23, 30, tzinfo=UTC)}


def test_a_held_decision_moves_nothing_until_approved_then_records_the_approver(held):
    catalog, first = held.catalog, held.first
    client = store_client(catalog)
    assert first["outcome"] == registry.AWAITING and first["passed"] and first["approval"] == {"required": True}
    assert registry.status(catalog=catalog)["champion"] is None  # the gate alone does not crown it
    assert client.get_model_version("hiericd-pipeline", "1").tags["hiericd.gate"] == registry.AWAITING
    card = Path(first["model_card"])  # what the approver reads, beside the decision
    assert card.name == "model_card.html" and card.parent.parent == catalog.decisions
    assert "hiericd-pipeline version 1" in card.read_text()

    at = "2026-12-07T23:30:00+00:00"
    done = registry.apply_decision(first["decision_file"], approved_by="dr.lopez", approved_at=at, catalog=catalog)
    assert done["outcome"] == "promoted"
    status = registry.status(catalog=catalog)
    assert status["champion"]["version"] == 1 and status["history"] == [1]
    for name in registry.MODELS.values():
        assert client.get_model_version_by_alias(name, "champion").run_id == first["challenger"]["run_id"]
    tags = client.get_model_version("hiericd-pipeline", "1").tags
    assert (tags["hiericd.gate"], tags["hiericd.approved_by"], tags["hiericd.approved_at"]) == (
        "promoted", "dr.lopez", at)
    saved = json.loads(Path(first["decision_file"]).read_text())
    assert saved["outcome"] == "promoted" and saved["rules"] == first["rules"]
    assert saved["approval"] == {"required": True, "outcome": "approved", "by": "dr.lopez", "at": at}
    with pytest.raises(registry.RegistryError, match="not 'awaiting-approval'"):  # signed once only
        registry.apply_decision(first["decision_file"], approved_by="someone else", catalog=catalog)


def test_a_rejected_decision_keeps_the_champion(held):
    catalog = held.catalog
    registry.apply_decision(held.first["decision_file"], approved_by="dr.lopez", catalog=catalog)
    second = held.promote(gate=LOOSE, await_approval=True)
    assert second["outcome"] == registry.AWAITING and second["previous_champion"] == 1
    with pytest.raises(registry.RegistryError, match="name of the person"):
        registry.reject_decision(second["decision_file"], rejected_by=" ", catalog=catalog)
    done = registry.reject_decision(second["decision_file"], rejected_by="dr.ruiz", catalog=catalog)
    assert done["outcome"] == "rejected" and done["approval"]["by"] == "dr.ruiz"
    status = registry.status(catalog=catalog)
    assert (status["champion"]["version"], status["challenger"]["version"], status["history"]) == (1, 2, [1])
    tags = store_client(catalog).get_model_version("hiericd-pipeline", "2").tags
    assert tags["hiericd.gate"] == "rejected" and tags["hiericd.rejected_by"] == "dr.ruiz"
    assert "hiericd.approved_by" not in tags


def test_an_approval_given_after_the_champion_moved_is_refused(held):
    # v1's decision compared it with no champion; meanwhile the gate alone crowned v2
    assert held.promote(gate=LOOSE)["outcome"] == "promoted"
    with pytest.raises(registry.RegistryError, match="is v2 now, not none.*run the gate again"):
        registry.apply_decision(held.first["decision_file"], approved_by="dr.lopez", catalog=held.catalog)
    assert registry.status(catalog=held.catalog)["champion"]["version"] == 2


def test_without_approval_the_gate_decides_alone_as_before(held):
    registry.apply_decision(held.first["decision_file"], approved_by="dr.lopez", catalog=held.catalog)
    decided = held.promote(gate=LOOSE)
    assert decided["outcome"] == "promoted" and decided["approval"] == {"required": False}
    assert "model_card" not in decided
    assert registry.status(catalog=held.catalog)["champion"]["version"] == 2
    assert registry.status(catalog=held.catalog)["history"] == [1, 2]


# ---------------------------------------------------------------- the DAG's pieces


def test_the_dag_holds_approve_between_gate_and_apply(dag_module, monkeypatch):
    dag = dag_module["hiericd_promote"]()
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {"locate": [], "gate": ["locate"], "approve": ["gate"], "apply": ["approve", "gate"],
                        "announce": ["apply"]}
    approve = dag.get_task("approve")
    assert type(approve).__mro__[1].__name__ == "ApprovalOperator" and not approve.fail_on_reject
    assert dag.get_task("apply").trigger_rule == "none_failed"  # runs when approve skipped itself
    assert dag.params["require_approval"] is False
    assert dag_module["AWAITING"] == registry.AWAITING  # the DAG file does not import the registry (MLflow)
    assert not approve.params  # the DAG's params are not asked again in the approval form
    monkeypatch.setenv("HIERICD_REQUIRE_APPROVAL", "true")  # the param's default, read when the file is parsed
    assert runpy.run_path(str(DAG_FILE))["hiericd_promote"]().params["require_approval"] is True


def test_approve_skips_itself_unless_the_gate_held_its_decision(dag_module, monkeypatch):
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk.exceptions import AirflowSkipException

    operator = dag_module["GateApproval"](task_id="approve", subject="?")
    for decided in ({"outcome": "promoted"}, {"outcome": "already-champion"}):
        with pytest.raises(AirflowSkipException, match=decided["outcome"]):
            operator.execute({"ti": FakeTI(gate=decided)})
    asked = {}
    monkeypatch.setattr(ApprovalOperator, "execute", lambda self, context: asked.update(s=self.subject, b=self.body))
    operator.execute({"ti": FakeTI(gate={"outcome": "awaiting-approval", "challenger": 3, "summary": "numbers"})})
    assert asked == {"s": "Promote hiericd-pipeline v3 to champion?", "b": "numbers"}


def test_the_approvers_answer_reaches_the_registry(held, dag_module):
    catalog, first = held.catalog, held.first
    decided = {"outcome": first["outcome"], "decision_file": first["decision_file"], "challenger": 1, "summary": ""}
    # a rejection is recorded by approve itself, which then skips apply (and so announce)
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    dag = dag_module["hiericd_promote"]()
    approve = dag.get_task("approve")
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        approve.execute_complete({"ti": FakeTI(gate=decided), "task": approve}, answer("Reject"))
    assert skipped.value.tasks == ["apply"]
    saved = json.loads(Path(first["decision_file"]).read_text())
    assert saved["outcome"] == "rejected" and saved["approval"]["by"] == "dr.lopez"
    assert registry.status(catalog=catalog)["champion"] is None

    # an approval: apply moves champion in the approver's name
    second = held.promote(gate=GATE, await_approval=True)
    decided = {"outcome": second["outcome"], "decision_file": second["decision_file"], "challenger": 2,
               "summary": ""}
    apply = dag.get_task("apply").python_callable
    done = apply(decided, ti=FakeTI(approve=answer("Approve", name="dr.ruiz")))
    assert done["outcome"] == "promoted" and done["approved_by"] == "dr.ruiz"
    tags = store_client(catalog).get_model_version("hiericd-pipeline", "2").tags
    assert (tags["hiericd.approved_by"], tags["hiericd.approved_at"]) == ("dr.ruiz", "2026-12-07T23:30:00+00:00")
    assert registry.status(catalog=catalog)["champion"]["version"] == 2
    # without approval apply passes the gate's decision on
    assert apply({"outcome": "promoted", "decision_file": "x"}, ti=FakeTI()) == {"outcome": "promoted",
                                                                                "decision_file": "x"}


def test_the_approver_reads_both_sides_each_rule_and_the_card(held, dag_module):
    registry.apply_decision(held.first["decision_file"], approved_by="dr.lopez", catalog=held.catalog)
    second = held.promote(gate=LOOSE, await_approval=True)
    text = dag_module["_summary"](second)
    assert f"| challenger | v2 | {second['challenger']['micro_f1']:.4f} |" in text
    assert f"| champion | v1 | {second['champion']['micro_f1']:.4f} |" in text
    for rule in second["rules"]:
        outcome = {True: "passed", False: "failed", None: "not applicable"}[rule["passed"]]
        assert f"| {rule['rule']} | " in text and text.split(f"| {rule['rule']} | ")[1].split("\n")[0].endswith(
            f"| {outcome} |")
    card = Path(second["model_card"])
    assert f"(/hiericd/decisions/{card.parent.name}/model_card.html)" in text and second["decision_file"] in text
    assert "*Reject* keeps v1." in text
