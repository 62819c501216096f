"""hiericd_round: a coding round arrives → validate → merge → agreement + report → data sets → GX gate.

A round arrives in one of two ways: trigger the DAG with the ``round_path``
param, or move a round folder into ``$HIERICD_HOME/incoming/`` (a move, so
the folder appears whole; names starting with ``.`` are ignored). The hourly
run's ``wait_for_round`` sensor picks the oldest folder there (it gives up,
skipped, after 55 minutes), and ``ingest`` moves it to
``incoming/.ingested/`` once the catalog has its copy.

Thin wiring only: every task calls :mod:`hiericd_core.pipeline` (imported inside
the task; Airflow parses this file often) and passes paths and small dicts
through XCom. The data set is built from every merged round of the catalog
with the round's language and code system, oldest first (a later round wins
for a re-coded report; param ``all_rounds`` false: this round alone), so each
retraining learns from all the coders' work so far. The data-set task emits the ``hiericd_datasets`` asset (its
extra names the data set folder) that the training DAG is scheduled on; when
the Great Expectations gate fails, the task fails with the expectation and the
failing rows, nothing is put in ``datasets/`` (the data set is kept in
``rejected/datasets/<version>/``), and no asset event is emitted, so training
does not run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, Param, PokeReturnValue, dag, task
from airflow.sdk.exceptions import AirflowFailException

HOME = os.path.abspath(os.environ.get("HIERICD_HOME", "var"))
DATASETS = Asset(name="hiericd_datasets", uri=f"file://{HOME}/datasets")
INCOMING = Path(HOME) / "incoming"  # Catalog.incoming, without importing hiericd_core at parse time


@dag(
    dag_id="hiericd_round",
    schedule="@hourly",  # each run waits for a round in incoming/ unless given round_path
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hiericd"],
    params={
        "round_path": Param("", type="string", description="the round folder (BRAT export) to process; "
                            "empty: wait for a folder moved into $HIERICD_HOME/incoming/"),
        "min_count": Param(10, type="integer", minimum=1, description="label space: codes seen this often"),
        "all_rounds": Param(True, type="boolean",
                            description="build the data set from every merged round of the catalog with this "
                                        "round's language and code system (false: this round alone)"),
    },
    default_args={"retries": 0},
    doc_md=__doc__,
)
def hiericd_round():
    @task.sensor(poke_interval=60, timeout=55 * 60, mode="reschedule", soft_fail=True)
    def wait_for_round(params=None) -> PokeReturnValue:
        if params["round_path"]:
            return PokeReturnValue(is_done=True, xcom_value=params["round_path"])
        waiting = sorted((p for p in INCOMING.glob("*") if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: (p.stat().st_mtime_ns, p.name))
        return PokeReturnValue(is_done=bool(waiting), xcom_value=str(waiting[0]) if waiting else None)

    @task(execution_timeout=timedelta(minutes=30))
    def ingest(source: str) -> str:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog
        from hiericd_core.files import replace_dir
        from hiericd_core.rounds import RoundError

        try:
            copied = str(pipeline.ingest(source, Catalog.from_env().ensure()))
        except RoundError as exc:  # a user mistake: no retry, one readable message
            raise AirflowFailException(str(exc)) from exc
        arrived = Path(source).resolve()
        if arrived.parent == INCOMING.resolve():  # claimed: the next run's sensor must not pick it again
            # by renames: killed halfway, the folder is still in incoming/ (and ingested again), never lost
            replace_dir(arrived, INCOMING / ".ingested" / arrived.name)
        return copied

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
    def datasets(merged: dict, assessed: dict, params=None, outlet_events=None) -> dict:
        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog
        from hiericd_core.datasets import DatasetError
        from hiericd_core.validation import ValidationError

        try:
            catalog = Catalog.from_env()
            # a retraining learns from every round so far (a later round wins for a re-coded report)
            rounds = (pipeline.merged_rounds(catalog, like=merged["merged"]) if params["all_rounds"]
                      else [merged["merged"]])
            built = pipeline.datasets(rounds, catalog, min_count=params["min_count"])
        except ValidationError as exc:  # nothing was put in datasets/; the message says where the data set is kept
            raise AirflowFailException(f"data-quality gate failed:\n{exc}") from exc
        except DatasetError as exc:  # nothing usable in the rounds: retrying will not help
            raise AirflowFailException(str(exc)) from exc
        # the training DAG trains on the data set this event names
        outlet_events[DATASETS].extra = {"dataset_dir": built["path"], "version": built["version"],
                                         "round_id": merged["round_id"]}
        return built

    round_path = ingest(wait_for_round())
    checked = validate(round_path)
    merged = merge(round_path, checked)
    datasets(merged, assess(round_path, checked))


hiericd_round()
