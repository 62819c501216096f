"""hiericd_train: data set → word vectors → tagger ∥ classifier → metrics → tuning → evaluation → MLflow
``challenger``.

Runs when the round DAG emits ``hiericd_datasets`` (on the data set that
event names) and every Monday at 03:00 UTC (on the newest data set of the
catalog), on a data set whose Great Expectations gate passed only (``locate``
fails on one whose ``validation.json`` is missing or says failed), or by
hand with params: ``dataset_dir`` (a data set folder),
``config`` (training settings overriding the defaults, e.g.
``{"tagger_epochs": 1}``) and ``config_file`` (a TOML file, see
``hiericd train --config``).

The two models train as parallel tasks: ``prepare`` writes the vocabulary,
the word vectors and the resolved config into the model folder
(``$HIERICD_HOME/models/<data set version>-<run>/``), ``train_tagger`` and
``train_classifier`` each read them and write their checkpoint, ``finish``
writes ``metrics.json``. ``tune`` chooses the inference rule and the phrase
memory by ``tune_folds``-fold cross-validation over the training split
(``hiericd tune``; 0 keeps the paper's rule), so neither dev nor test is
looked at. ``evaluate`` scores the model end to end on the test
split beside the baselines; ``register`` logs the run to MLflow, registers it
as ``hiericd-pipeline@challenger`` and emits ``hiericd_challenger``, which the
promotion DAG is scheduled on. A failed task emits nothing, so promotion does
not run.

Thin wiring only: tasks call :mod:`hiericd_core` (imported inside the task;
Airflow parses this file often) and pass paths and small dicts through XCom.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

HOME = os.path.abspath(os.environ.get("HIERICD_HOME", "var"))
DATASETS = Asset(name="hiericd_datasets", uri=f"file://{HOME}/datasets")  # as dags/hiericd_round.py emits it
CHALLENGER = Asset(name="hiericd_challenger", uri=f"file://{HOME}/mlflow")
TRAINING = {"retries": 1, "retry_delay": timedelta(minutes=2), "execution_timeout": timedelta(hours=6)}


@dag(
    dag_id="hiericd_train",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=DATASETS),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["hiericd"],
    params={
        "dataset_dir": Param("", type="string", description="data set folder; empty: the one the triggering "
                             "hiericd_datasets event names, else the newest in the catalog"),
        "config": Param({}, type="object", description="training settings over the defaults, "
                        "e.g. {\"tagger_epochs\": 1}"),
        "config_file": Param("", type="string", description="a TOML training config (optional)"),
        "tune_folds": Param(5, type="integer", minimum=0, description="folds of the cross-validation that "
                            "chooses the inference rule and phrase memory on the training split; 0: keep the "
                            "paper's rule"),
    },
    default_args={"retries": 0},
    doc_md=__doc__,
)
def hiericd_train():
    @task(execution_timeout=timedelta(minutes=5))
    def locate(params=None, triggering_asset_events=None, run_id=None) -> dict:
        from pathlib import Path

        from hiericd_core import pipeline
        from hiericd_core.catalog import Catalog
        from hiericd_core.datasets import DatasetError
        from hiericd_core.validation import require_passed

        catalog = Catalog.from_env().ensure()
        events = list(triggering_asset_events[DATASETS]) if triggering_asset_events else []
        chosen = pipeline.choose_dataset(params["dataset_dir"], [e.extra or {} for e in events], catalog)
        if chosen is None:
            raise AirflowFailException(f"no data set in {catalog.datasets}; run hiericd_round first or "
                                       "trigger with params {'dataset_dir': '/path/to/dataset'}")
        dataset = str(chosen)
        try:  # only a data set whose Great Expectations gate passed is trained on
            manifest = require_passed(dataset)
        except DatasetError as exc:
            raise AirflowFailException(str(exc)) from exc
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
        return {"dataset": str(Path(dataset).resolve()), "version": manifest["version"],
                "rounds": list(manifest.get("source_rounds", [])),
                "model": str(catalog.model(f"{manifest['version']}-{slug}"))}

    @task(**TRAINING)
    def prepare(plan: dict, params=None) -> dict:
        from hiericd_core import pipeline
        from hiericd_core.train import TrainError, prepare_stage

        try:
            config = pipeline.train_config(params["config_file"] or None, params["config"])
            prepared = prepare_stage(plan["dataset"], plan["model"], config)
        except TrainError as exc:  # a data set or config that cannot train: retrying will not help
            raise AirflowFailException(str(exc)) from exc
        return {"variant": prepared["variant"], "vocab_size": prepared["vocab_size"],
                "labels": len(prepared["labels"]), "train": prepared["train"]}

    @task(**TRAINING)
    def train_tagger(plan: dict, prepared: dict) -> dict:
        from hiericd_core.train import tagger_stage

        result = tagger_stage(plan["model"])
        return {"best_epoch": result["result"]["best_epoch"], "dev": result["result"]["best_dev"],
                "seconds": round(result["seconds"], 1)}

    @task(**TRAINING)
    def train_classifier(plan: dict, prepared: dict) -> dict:
        from hiericd_core.train import classifier_stage

        result = classifier_stage(plan["model"])
        return {"best_epoch": result["result"]["best_epoch"], "dev": result["result"]["best_dev"],
                "seconds": round(result["seconds"], 1)}

    @task(execution_timeout=timedelta(minutes=5))
    def finish(plan: dict, tagger: dict, classifier: dict) -> str:
        from hiericd_core.train import finish_stage

        return finish_stage(plan["model"])["out_dir"]

    @task(**TRAINING)
    def tune(plan: dict, model: str, params=None) -> str:
        from hiericd_core import pipeline

        folds = int(params["tune_folds"])
        if folds == 1:
            raise AirflowFailException("tune_folds = 1: give 0 (no tuning) or at least 2 folds")
        if folds:
            pipeline.tune(model, plan["dataset"], folds=folds)
        return model

    @task(retries=1, retry_delay=timedelta(minutes=2), execution_timeout=timedelta(hours=2))
    def evaluate(plan: dict, model: str) -> dict:
        from hiericd_core import pipeline

        result = pipeline.evaluate_model(model, plan["dataset"], "test", baselines=True)
        return {"evaluation": f"{model}/evaluation-test.json",
                "micro_f1": {system: scores["micro"]["f1"] for system, scores in result["end_to_end"].items()}}

    @task(outlets=[CHALLENGER], retries=2, retry_delay=timedelta(minutes=1),
          execution_timeout=timedelta(minutes=30))
    def register(plan: dict, evaluated: dict, outlet_events=None) -> dict:
        import json
        from pathlib import Path

        from hiericd_core import registry
        from hiericd_core.catalog import Catalog

        catalog = Catalog.from_env()
        evaluation = json.loads(Path(evaluated["evaluation"]).read_text(encoding="utf-8"))
        run = registry.log_training_run(plan["model"], plan["dataset"], evaluation=evaluation,
                                        round_ids=plan["rounds"] or None, catalog=catalog)
        registered = registry.register(run, catalog=catalog)
        version = (registered.get("pipeline") or {}).get("version")
        # the promotion DAG gates this challenger on the same data set
        outlet_events[CHALLENGER].extra = {"run_id": run, "version": version, "dataset_dir": plan["dataset"],
                                           "model_dir": plan["model"]}
        return {"run_id": run, "version": version}

    plan = locate()
    prepared = prepare(plan)
    model = tune(plan, finish(plan, train_tagger(plan, prepared), train_classifier(plan, prepared)))
    register(plan, evaluate(plan, model))


hiericd_train()
