"""hiericd_promote: the promotion gate between ``hiericd-pipeline@challenger`` and ``@champion``.

Runs when the training DAG emits ``hiericd_challenger``, or by hand. The
gate (:func:`hiericd_core.registry.promote`) scores challenger and champion on
the same held-out reports of a data set: the one the triggering event names,
else the ``dataset_dir`` param, else the newest data set of the catalog. Its
rules and the decision file are in the registry's docs. A refused challenger
fails ``gate`` with the rules it broke (no retry); a promoted one lets
``announce`` emit ``hiericd_champion`` with the new champion's key metrics.

With the ``require_approval`` param (default: env ``HIERICD_REQUIRE_APPROVAL``)
a person signs off: ``gate`` records its decision and the challenger's model
card without moving ``champion``; ``approve`` (Airflow's human-in-the-loop
:class:`ApprovalOperator`) waits under *Browse → Required Actions* showing both
sides' micro F1, each rule and the card; on *Approve*, ``apply`` moves
``champion`` in the approver's name (tags ``hiericd.approved_by`` /
``hiericd.approved_at`` and the decision file). *Reject* is recorded the same
way and skips ``apply`` and ``announce``: no champion event. Without it,
``approve`` skips itself and ``apply`` passes the gate's decision on.

Thin wiring only: tasks call :mod:`hiericd_core.registry` (imported inside the
task: it imports MLflow) and pass paths and small dicts through XCom.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Context, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

HOME = os.path.abspath(os.environ.get("HIERICD_HOME", "var"))
CHALLENGER = Asset(name="hiericd_challenger", uri=f"file://{HOME}/mlflow")  # as dags/hiericd_train.py emits it
CHAMPION = Asset(name="hiericd_champion", uri=f"file://{HOME}/mlflow/champion")
REQUIRE_APPROVAL = os.environ.get("HIERICD_REQUIRE_APPROVAL", "").strip().lower() in ("1", "true", "yes", "on")
AWAITING = "awaiting-approval"  # hiericd_core.registry.AWAITING (not imported here: it imports MLflow)


class GateApproval(ApprovalOperator):
    """Asks a person to approve the gate's decision; skips itself when the gate did not ask for one.

    It reads the gate's XCom rather than the ``require_approval`` param: the
    human-in-the-loop operators keep only task-level params, and the gate's
    outcome is what says whether a decision waits.
    """

    def execute(self, context: Context):
        decided = context["ti"].xcom_pull(task_ids="gate") or {}
        if decided.get("outcome") != AWAITING:
            raise AirflowSkipException(f"no approval asked for: the gate's outcome is {decided.get('outcome')!r}")
        self.subject = f"Promote hiericd-pipeline v{decided['challenger']} to champion?"
        self.body = decided["summary"]
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict):
        # recorded first: on a rejection the parent skips apply by raising (DownstreamTasksSkipped)
        if "error" not in event and event.get("chosen_options") == [self.REJECT]:
            from hiericd_core import registry

            decided = context["ti"].xcom_pull(task_ids="gate")
            registry.reject_decision(decided["decision_file"], rejected_by=_responder(event),
                                     rejected_at=_when(event))
        return super().execute_complete(context, event)


@dag(
    dag_id="hiericd_promote",
    schedule=CHALLENGER,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["hiericd"],
    params={
        "dataset_dir": Param("", type="string", description="data set whose held-out split the gate scores on; "
                             "empty: the one the triggering event names, else the newest in the catalog"),
        "gate_file": Param("", type="string", description="a TOML file of gate rules (optional)"),
        "require_approval": Param(REQUIRE_APPROVAL, type="boolean",
                                  description="a person approves a passed challenger before it becomes champion "
                                              "(Browse -> Required Actions); default: env HIERICD_REQUIRE_APPROVAL"),
    },
    default_args={"retries": 0},
    doc_md=__doc__,
)
def hiericd_promote():
    @task(execution_timeout=timedelta(minutes=5))
    def locate(params=None, triggering_asset_events=None) -> str:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog

        events = list(triggering_asset_events[CHALLENGER]) if triggering_asset_events else []
        dataset = pipeline.choose_dataset(params["dataset_dir"], [e.extra or {} for e in events], Catalog.from_env())
        if dataset is None:
            raise AirflowFailException("no data set in the catalog to score the challenger on; "
                                       "trigger with params {'dataset_dir': '/path/to/dataset'}")
        return str(dataset)

    @task(retries=1, retry_delay=timedelta(minutes=1), execution_timeout=timedelta(hours=2))
    def gate(dataset: str, params=None) -> dict:
        from hiericd_core import registry

        try:
            rules = registry.GateConfig.from_toml(params["gate_file"]) if params["gate_file"] else None
            decision = registry.promote(dataset_dir=dataset, gate=rules,
                                        await_approval=bool(params["require_approval"]))
        except registry.RegistryError as exc:  # no challenger, no data set, a bad gate file: a retry won't help
            raise AirflowFailException(str(exc)) from exc
        if not decision["passed"]:
            raise AirflowFailException(_refusal(decision))
        return {"outcome": decision["outcome"], "decision_file": decision.get("decision_file"),
                "challenger": decision["challenger"]["version"],
                "summary": _summary(decision) if decision["outcome"] == AWAITING else None}

    @task(trigger_rule="none_failed", execution_timeout=timedelta(minutes=10))
    def apply(decided: dict, ti=None) -> dict:
        """Move champion in the approver's name when the decision waited for one; else the gate has decided."""
        if decided["outcome"] != AWAITING:
            return decided
        from hiericd_core import registry

        answer = ti.xcom_pull(task_ids="approve")
        try:
            done = registry.apply_decision(decided["decision_file"], approved_by=_responder(answer),
                                           approved_at=_when(answer))
        except registry.RegistryError as exc:  # e.g. champion moved while the request waited: gate again
            raise AirflowFailException(str(exc)) from exc
        return {**decided, "outcome": done["outcome"], "approved_by": done["approval"]["by"]}

    @task(outlets=[CHAMPION], execution_timeout=timedelta(minutes=10))
    def announce(decided: dict, outlet_events=None) -> dict:
        from hiericd_core import registry

        champion = registry.status()["champion"] or {}
        outlet_events[CHAMPION].extra = {"version": champion.get("version"), "run_id": champion.get("run_id")}
        return {"version": champion.get("version"), "run_id": champion.get("run_id"),
                "metrics": champion.get("metrics"), "decision_file": decided["decision_file"]}

    decided = gate(locate())
    # no response_timeout: a forgotten request only holds this DAG (max_active_runs=1), not a worker slot
    approve = GateApproval(task_id="approve", subject="Promote the challenger to champion?")
    applied = apply(decided)
    decided >> approve >> applied
    announce(applied)


def _responder(answer: dict) -> str:
    """Who answered a human-in-the-loop request: the Airflow user's name, else id."""
    user = answer.get("responded_by_user") or {}
    return str(user.get("name") or user.get("id") or "")


def _when(answer: dict) -> str | None:
    """When it was answered (ISO 8601): a datetime from the operator, a string once through XCom JSON."""
    at = answer.get("responded_at")
    return at.isoformat(timespec="seconds") if hasattr(at, "isoformat") else (str(at) if at else None)


def _summary(decision: dict) -> str:
    """What the approver reads (Markdown): both sides' micro F1, each rule's outcome, the model card."""
    challenger, champion = decision["challenger"], decision.get("champion")
    lines = [f"The promotion gate passed **hiericd-pipeline v{challenger['version']}** "
             f"on the `{decision['split']}` split of `{decision['dataset']}`.", "",
             "| | version | micro F1 | micro P | micro R |", "|---|---|---|---|---|"]
    for side, found in (("challenger", challenger), ("champion", champion)):
        if found:
            lines.append(f"| {side} | v{found['version']} | {found['micro_f1']:.4f} | "
                         f"{found['micro_precision']:.4f} | {found['micro_recall']:.4f} |")
        else:
            lines.append(f"| {side} | none yet | | | |")
    lines += ["", "| rule | value | threshold | outcome |", "|---|---|---|---|"]
    for rule in decision["rules"]:
        outcome = {True: "passed", False: "failed", None: "not applicable"}[rule["passed"]]
        lines.append(f"| {rule['rule']} | {_number(rule['value'])} | {_number(rule['threshold'])} | {outcome} |")
    card = decision.get("model_card")
    if card:
        name = "/".join(card.split("/")[-2:])  # <decision>-card/model_card.html under the decisions folder
        lines += ["", f"Model card: [{name}](/hiericd/decisions/{name}) (`{card}`)."]
    lines += ["", f"Decision: `{decision['decision_file']}`.", "",
              "*Approve* moves `champion` to this version in your name; *Reject* keeps "
              + (f"v{champion['version']}." if champion else "the registry without a champion.")]
    return "\n".join(lines)


def _number(value: object) -> str:
    return "–" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _refusal(decision: dict) -> str:
    """One readable message: which challenger was refused, and each rule it broke with its numbers."""
    challenger = (decision.get("challenger") or {}).get("version")
    champion = (decision.get("champion") or {}).get("version")
    lines = [f"promotion gate refused hiericd-pipeline v{challenger}"
             + (f" (champion stays v{champion})" if champion else " (there is no champion yet)")]
    for rule in decision.get("rules") or []:
        if rule.get("passed") is False:  # None: the rule did not apply
            lines.append(f"  - {rule['rule']}: {rule.get('value')} against {rule.get('threshold')}"
                         + (f" ({rule['detail']})" if rule.get("detail") else ""))
    if decision.get("decision_file"):
        lines.append(f"decision: {decision['decision_file']}")
    return "\n".join(lines)


hiericd_promote()
