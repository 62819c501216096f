"""The MLflow store behind :mod:`hiericd_core.registry`: its names, the client, versions read back.

The registered-model names and aliases, :func:`tracking_uri` and the client on
the catalog's store (or ``MLFLOW_TRACKING_URI``), the version, alias and
champion-history look-ups, :func:`status` (champion and challenger with their
key metrics), and :func:`card_bundle` (what a model card shows) with
:func:`log_files`.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from hiericd_core.catalog import Catalog

TAGGER, CLASSIFIER, PIPELINE = "hiericd-sentence-tagger", "hiericd-icd-classifier", "hiericd-pipeline"
MODELS = {"tagger": TAGGER, "classifier": CLASSIFIER, "pipeline": PIPELINE}  # artifact name -> registered name
CHAMPION, CHALLENGER = "champion", "challenger"
EXPERIMENT = "hiericd"
MODEL_FILES = ("tagger.pt", "classifier.pt", "vocab.json", "vectors.npy", "train_config.json", "metrics.json")
HISTORY_TAG = "hiericd.champion_history"  # registered-model tag: JSON list of champion versions, oldest first
OURS = "hiericd"  # the model's system name in metric names (evaluation calls it "hiericd (<variant>)")


class RegistryError(Exception):
    """A registry step that cannot go on (the message says what to do)."""


# ---------------------------------------------------------------- the store


def tracking_uri(catalog: Catalog | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the catalog's sqlite store (an absolute ``sqlite:////`` URI)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (catalog or Catalog.from_env()).mlflow_tracking_uri


def _embedded(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:")


def point_fluent_api(uri: str) -> None:
    """Point MLflow's fluent API (tracking and registry) at ``uri`` without leaking it into the environment.

    MLflow's setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which would then outrank the
    catalog of every later call in this process (an Airflow worker serves many catalogs): they are put back.
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _client(catalog: Catalog | None):
    """An MlflowClient on the store; the fluent API is pointed there too (model logging uses it)."""
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    catalog = catalog or Catalog.from_env()
    uri = tracking_uri(catalog)
    if _embedded(uri):
        catalog.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    point_fluent_api(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client, name: str, catalog: Catalog | None) -> str:
    """Get or create the experiment; on the embedded store its artifacts live in the catalog."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    catalog = catalog or Catalog.from_env()
    location = None
    if _embedded(tracking_uri(catalog)):
        location = (catalog.mlflow_artifacts / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


# ---------------------------------------------------------------- versions and aliases


def _version_of_run(client, name: str, run_id: str):
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def _alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _history(client) -> list[int]:
    tags = client.get_registered_model(PIPELINE).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


# ---------------------------------------------------------------- status


KEY_METRICS = ("micro_f1", "micro_precision", "micro_recall", "instance_f1", "subset_accuracy")


def _describe(client, version) -> dict:
    """A pipeline version with its run's key metrics (model and LR baseline) and the gate's tags."""
    run = client.get_run(version.run_id)
    split = run.data.tags.get("hiericd.evaluation_split", "test")
    m = run.data.metrics
    metrics = {k: m.get(f"{split}_{OURS}_{k}") for k in KEY_METRICS}
    metrics["lr_micro_f1"] = m.get(f"{split}_lr_micro_f1")
    metrics["rounds_min_kappa"] = m.get("rounds_min_kappa")
    metrics = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in metrics.items()}
    return {"name": PIPELINE, "version": int(version.version), "run_id": version.run_id,
            "dataset_version": run.data.tags.get("hiericd.dataset_version"), "variant": run.data.tags.get(
                "hiericd.variant"), "aliases": list(getattr(version, "aliases", []) or []),
            "gate": version.tags.get("hiericd.gate"), "registered_at": datetime.fromtimestamp(
                version.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"), "metrics": metrics}


def status(*, catalog: Catalog | None = None) -> dict:
    """Champion and challenger pipeline versions with their key metrics (None where unset)."""
    from mlflow.exceptions import MlflowException

    client = _client(catalog)
    try:
        client.get_registered_model(PIPELINE)
    except MlflowException:
        return {"tracking_uri": tracking_uri(catalog), "champion": None, "challenger": None, "history": []}
    out = {"tracking_uri": tracking_uri(catalog), "history": _history(client)}
    for alias in (CHAMPION, CHALLENGER):
        version = _alias(client, PIPELINE, alias)
        out[alias] = _describe(client, version) if version is not None else None
    return out


# ---------------------------------------------------------------- model cards


def _resolve(client, version_or_run: str | int):
    """``(run_id, pipeline version or None)`` of a version number, an alias or a run id."""
    from mlflow.exceptions import MlflowException

    key = str(version_or_run).strip()
    try:
        if key in (CHAMPION, CHALLENGER):
            version = _alias(client, PIPELINE, key)
            if version is None:
                raise RegistryError(f"no {PIPELINE}@{key} yet")
            return version.run_id, version
        if re.fullmatch(r"v?\d+", key):
            version = client.get_model_version(PIPELINE, key.lstrip("v"))
            return version.run_id, version
        client.get_run(key)
    except MlflowException as exc:
        raise RegistryError(f"no {PIPELINE} version or run {key!r} in the MLflow store; "
                            "see `hiericd registry-status`") from exc
    return key, _version_of_run(client, PIPELINE, key)


def card_bundle(version_or_run: str | int, *, catalog: Catalog | None = None) -> dict:
    """What a model card shows, read from the run's params, tags and artifacts.

    Returns:
        ``{"name", "version", "aliases", "run_id", "tags", "params", "manifest", "rounds", "evaluation",
        "ablation", "per_code", "examples", "images"}`` (None where the run lacks the artifact).
    """
    client = _client(catalog)
    run_id, version = _resolve(client, version_or_run)
    if version is not None:  # aliases are only filled in by get_model_version(_by_alias)
        version = client.get_model_version(PIPELINE, version.version)
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="hiericd-card-") as tmp:
        root = Path(tmp)
        for folder in ("data", "evaluation", "evidence", "plots"):
            try:
                client.download_artifacts(run_id, folder, str(root))
            except Exception:  # noqa: BLE001 - a run logged without that folder: the card leaves it out
                continue

        def read_json(name: str):
            path = root / name
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

        evaluations = sorted((root / "evaluation").glob("evaluation-*.json"))
        examples = root / "evidence" / "evidence_examples.jsonl"
        return {
            "name": PIPELINE, "version": int(version.version) if version is not None else None,
            "aliases": list(version.aliases) if version is not None else [], "run_id": run_id,
            "tags": {k: v for k, v in run.data.tags.items() if k.startswith("hiericd.")},
            "params": dict(run.data.params), "manifest": read_json("data/manifest.json"),
            "rounds": read_json("data/rounds.json"),
            "evaluation": json.loads(evaluations[0].read_text(encoding="utf-8")) if evaluations else None,
            "ablation": read_json("evaluation/ablation.json"), "per_code": read_json("evaluation/per_code_f1.json"),
            "examples": [json.loads(line) for line in examples.read_text(encoding="utf-8").splitlines()]
            if examples.is_file() else [],
            "images": {p.name: p.read_bytes() for p in sorted((root / "plots").glob("*.png"))},
        }


def log_files(run_id: str, paths: Iterable[str | Path], folder: str, *, catalog: Catalog | None = None) -> None:
    """Log files as artifacts of a finished run (under ``folder``)."""
    client = _client(catalog)
    for path in paths:
        client.log_artifact(run_id, str(path), folder)
