"""hiericd_round: a coding round arrives → validate → merge → agreement + report → data sets → GX gate.

Thin wiring only: every task calls :mod:`hiericd_core.pipeline` (imported inside
the task; Airflow parses this file often) and passes paths and small dicts
through XCom. The data-set task emits the ``hiericd_datasets`` asset that
the training DAG is scheduled on; when the Great Expectations gate fails, the
task fails with the expectation and the failing rows, and no asset event is
emitted, so training does not run.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

HOME = os.path.abspath(os.environ.get("HIERICD_HOME", "var"))
DATASETS = Asset(name="hiericd_datasets", uri=f"file://{HOME}/datasets")


@dag(
    dag_id="hiericd_round",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hiericd"],
    params={
        "round_path": Param("", type="string", description="the round folder (BRAT export) to process"),
        "min_count": Param(10, type="integer", minimum=1, description="label space: codes seen this often"),
    },
    default_args={"retries": 0},
    doc_md=__doc__,
)
def hiericd_round():
    @task(execution_timeout=timedelta(minutes=30))
    def ingest(params=None) -> str:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog
        from hiericd_core.rounds import RoundError

        if not params["round_path"]:
            raise AirflowFailException("give the round folder: trigger with params {'round_path': '/path/to/round'}")
        try:
            return str(pipeline.ingest(params["round_path"], Catalog.from_env().ensure()))
        except RoundError as exc:  # a user mistake: no retry, one readable message
            raise AirflowFailException(str(exc)) from exc

    @task(execution_timeout=timedelta(minutes=30))
    def validate(round_path: str) -> dict:
        from hiericd_core.rounds import load_round

        summary = load_round(round_path).summary()
        if not summary["reports"]:
            raise AirflowFailException(f"{round_path}: no report could be read; see the problems: "
                                       + "; ".join(summary["problems"][:20]))
        return {k: summary[k] for k in ("round_id", "reports", "coders", "quarantined")}

    @task(execution_timeout=timedelta(minutes=30))
    def merge(round_path: str, checked: dict) -> dict:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog

        result = pipeline.merge(round_path, Catalog.from_env())
        return {k: result[k] for k in ("round_id", "merged", "pending", "queue")}

    @task(execution_timeout=timedelta(minutes=30))
    def assess(round_path: str, checked: dict) -> dict:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog

        return pipeline.assess(round_path, Catalog.from_env())

    @task(outlets=[DATASETS], execution_timeout=timedelta(hours=2))
    def datasets(merged: dict, assessed: dict, params=None) -> dict:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog
        from hiericd_core.validation import ValidationError

        try:
            return pipeline.datasets([merged["merged"]], Catalog.from_env(), min_count=params["min_count"])
        except ValidationError as exc:
            raise AirflowFailException(f"data-quality gate failed:\n{exc}") from exc

    round_path = ingest()
    checked = validate(round_path)
    merged = merge(round_path, checked)
    datasets(merged, assess(round_path, checked))


hiericd_round()
