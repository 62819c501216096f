"""hiericd_promote: the promotion gate between ``hiericd-pipeline@challenger`` and ``@champion``.

Runs when the training DAG emits ``hiericd_challenger``, or by hand. The
gate (:func:`hiericd_core.registry.promote`) scores challenger and champion on
the same held-out reports of a data set: the one the triggering event names,
else the ``dataset_dir`` param, else the newest data set of the catalog. Its
rules and the decision file are in the registry's docs. A refused challenger
fails ``gate`` with the rules it broke (no retry); a promoted one lets
``announce`` emit ``hiericd_champion`` with the new champion's key metrics.

Thin wiring only: tasks call :mod:`hiericd_core.registry` (imported inside the
task: it imports MLflow) and pass paths and small dicts through XCom.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

HOME = os.path.abspath(os.environ.get("HIERICD_HOME", "var"))
CHALLENGER = Asset(name="hiericd_challenger", uri=f"file://{HOME}/mlflow")  # as dags/hiericd_train.py emits it
CHAMPION = Asset(name="hiericd_champion", uri=f"file://{HOME}/mlflow/champion")


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
            decision = registry.promote(dataset_dir=dataset, gate=rules)
        except registry.RegistryError as exc:  # no challenger, no data set, a bad gate file: a retry won't help
            raise AirflowFailException(str(exc)) from exc
        if not decision.get("passed", decision.get("accepted")):
            raise AirflowFailException(_refusal(decision))
        return {"outcome": decision.get("outcome"), "decision_file": decision.get("decision_file"),
                "champion": (decision.get("challenger") or {}).get("version")}

    @task(outlets=[CHAMPION], execution_timeout=timedelta(minutes=10))
    def announce(decided: dict, outlet_events=None) -> dict:
        from hiericd_core import registry

        champion = registry.status()["champion"] or {}
        outlet_events[CHAMPION].extra = {"version": champion.get("version"), "run_id": champion.get("run_id")}
        return {"version": champion.get("version"), "run_id": champion.get("run_id"),
                "metrics": champion.get("metrics"), "decision_file": decided["decision_file"]}

    announce(gate(locate()))


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
