"""MLflow tracking, the model registry and the champion/challenger promotion gate.

This is the one module that talks to MLflow (besides the pyfunc wrapper in
:mod:`hiericd_core.pyfunc`). The store is the catalog's sqlite database and
artifact folder (``HIERICD_HOME/mlflow/``) unless ``MLFLOW_TRACKING_URI`` says
otherwise (e.g. ``http://127.0.0.1:5000`` for ``make mlflow``).

One training run (:func:`log_training_run`) holds the resolved config as
params, the per-epoch history and the paper's Tables 3–5 (model and baselines)
as metrics, the data set as an MLflow dataset input, the rounds with their
agreement, plots, and three logged models: the sentence tagger, the ICD
classifier and the whole pipeline (:class:`~hiericd_core.pyfunc.HiericdPipeline`).

:func:`register` files the three models as versions of
``hiericd-sentence-tagger``, ``hiericd-icd-classifier`` and
``hiericd-pipeline`` and points the ``challenger`` alias at them.
:func:`promote` scores the challenger and the champion pipeline on the same
held-out reports, applies the :class:`GateConfig` rules and moves
``champion`` only when every rule passes; :func:`rollback` moves it back.
Aliases are used throughout, never the deprecated stages. Every decision is
a JSON file in ``HIERICD_HOME/mlflow/decisions/`` and tags on the versions.

Re-running a step is safe: logging a model folder already logged returns
the earlier run, registering a run already registered returns its versions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_json
from hiericd_core.gate import GateConfig, GateError, apply_rules, code_f1

__all__ = ["GateConfig", "GateError", "RegistryError", "log_training_run", "promote", "register", "rollback",
           "status"]

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


def _client(catalog: Catalog | None):
    """An MlflowClient on the store; the fluent API is pointed there too (model logging uses it)."""
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    catalog = catalog or Catalog.from_env()
    uri = tracking_uri(catalog)
    if _embedded(uri):
        catalog.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    # MLflow's setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which would then outrank the
    # catalog of every later call in this process (an Airflow worker serves many catalogs): put them back
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
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


# ---------------------------------------------------------------- small pure helpers


def model_digest(model_dir: str | Path) -> str:
    """SHA-256 over the model folder's checkpoints, vocabulary, vectors, config, metrics (and ablation, if any)."""
    digest = hashlib.sha256()
    paths = [Path(model_dir) / name for name in MODEL_FILES] + [p for p in [ablation_file(model_dir)] if p]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ablation_file(model_dir: str | Path) -> Path | None:
    """``ablation.json`` in the model folder, or in its parent when the model is one of the ablation's variants."""
    model_dir = Path(model_dir)
    for path in (model_dir / "ablation.json", model_dir.parent / "ablation.json"):
        if path.is_file():
            return path
    return None


def flatten(prefix: str, data: Mapping) -> dict[str, float]:
    """Numeric leaves of a nested dict as ``prefix_key_subkey`` -> value (booleans, strings, None left out)."""
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(name, value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def metric_name(name: str) -> str:
    """``name`` with characters MLflow metric names refuse replaced by ``_``."""
    return re.sub(r"[^\w\-.]", "_", name)


def system_key(name: str) -> str:
    """Metric-name form of an evaluation system: ``hiericd (supervised_r4v)`` -> ``hiericd``, ``lr`` -> ``lr``."""
    return OURS if name.startswith(OURS) else metric_name(name)


def headline_kappa(agreement: Mapping) -> float | None:
    """The mean pairwise Cohen's kappa of the report × code unit (as :func:`hiericd_core.pipeline.assess`)."""
    kappas = [p["kappa"] for p in agreement["units"]["report_code"]["pairs"] if p.get("kappa") is not None]
    return sum(kappas) / len(kappas) if kappas else None


def round_agreement(round_ids: Iterable[str], catalog: Catalog) -> dict[str, dict]:
    """Per round, its headline kappa and other agreement figures from ``reports/<id>/agreement.json``.

    A round without an agreement report gets ``{"headline_kappa": None}``.
    """
    out = {}
    for rid in round_ids:
        path = catalog.report(rid) / "agreement.json"
        if not path.is_file():
            out[rid] = {"headline_kappa": None, "agreement": None}
            continue
        figures = json.loads(path.read_text(encoding="utf-8"))
        unit = figures["units"]["report_code"]
        out[rid] = {"headline_kappa": headline_kappa(figures), "fleiss": unit["fleiss"]["value"],
                    "alpha": unit["alpha"]["value"], "n_reports": figures.get("n_reports"), "agreement": str(path)}
    return out


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, timeout=10,
                              capture_output=True, text=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pip_requirements() -> list[str]:
    """Pinned from the running environment, so MLflow need not infer them (slow)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for name in ("torch", "numpy", "pandas", "pyarrow", "mlflow", "pysbd", "scispacy", "spacy"):
        try:
            reqs.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return reqs


# ---------------------------------------------------------------- a training run


def _find_logged_run(client, experiment_id: str, digest: str) -> str | None:
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`hiericd.model_digest` = '{digest}' and tags.`hiericd.logged` = 'true'"), max_results=1)
    return runs[0].info.run_id if runs else None


def _params(config: Mapping, metrics: Mapping, manifest: Mapping, model_dir: Path, dataset_dir: Path) -> dict:
    params = {f"train.{k}": v for k, v in config.items()}
    params.update({f"dataset.{k}": v for k, v in (manifest.get("config") or {}).items()})
    params.update({
        "dataset.version": manifest.get("version"), "dataset.path": str(dataset_dir),
        "dataset.label_space_size": manifest.get("label_space_size"), "dataset.segmenter": manifest.get("segmenter"),
        "dataset.language": manifest.get("language"), "model.dir": str(model_dir),
        "model.variant": metrics.get("variant"), "model.variant_requested": metrics.get("variant_requested"),
        "model.vocab_size": metrics.get("vocab_size"), "model.r4v_available": metrics.get("r4v_available"),
        "model.tagger_uses_r4v": metrics.get("tagger_uses_r4v"),
    })
    # MLflow params are strings of at most a few thousand characters
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:6000] for k, v in params.items()}


def epoch_metrics(metrics: Mapping) -> list[tuple[str, float, int]]:
    """``(name, value, epoch)`` for every number in the tagger's and classifier's per-epoch history."""
    out = []
    for stage in ("tagger", "classifier"):
        for record in metrics.get(stage, {}).get("history", []):
            epoch = int(record["epoch"])
            for name, value in flatten(stage, {k: v for k, v in record.items() if k != "epoch"}).items():
                out.append((name, value, epoch))
    return out


def final_metrics(evaluation: Mapping, metrics: Mapping) -> dict[str, float]:
    """The paper's Tables 3–5 (model and baselines) and evidence metrics of one split, plus the best dev scores."""
    split = evaluation.get("split", "test")
    out = flatten(f"{split}_tagger", evaluation.get("tagger", {}))
    out.update(flatten(f"{split}_classifier", evaluation.get("classifier", {})))
    out.update(flatten(f"{split}_evidence", evaluation.get("evidence", {})))
    for name, scores in evaluation.get("end_to_end", {}).items():
        out.update(flatten(f"{split}_{system_key(name)}", scores))
    for stage in ("tagger", "classifier"):
        out.update(flatten(f"{stage}_best_dev", metrics.get(stage, {}).get("best_dev", {})))
        if metrics.get(stage, {}).get("best_epoch") is not None:
            out[f"{stage}_best_epoch"] = float(metrics[stage]["best_epoch"])
    return out


def log_training_run(model_dir: str | Path, dataset_dir: str | Path, *, evaluation: dict | None = None,
                     round_ids: list[str] | None = None, catalog: Catalog | None = None, experiment: str = EXPERIMENT,
                     run_name: str | None = None, examples: int = 5, force: bool = False) -> str:
    """Log a trained model folder as one MLflow run; return its run id.

    Args:
        model_dir: a folder written by :func:`hiericd_core.train.train_model`.
        dataset_dir: the data set it was trained on.
        evaluation: :func:`hiericd_core.pipeline.evaluate_model`'s result; default the folder's
            ``evaluation-test.json``, else it is computed (baselines included).
        round_ids: the coding rounds behind the data set (default: the manifest's ``source_rounds``);
            their agreement is read from the catalog's ``reports/<id>/agreement.json`` when present.
        catalog: where the store and agreement reports are (default ``$HIERICD_HOME``).
        experiment: MLflow experiment name.
        run_name: the run's name (default ``<data set version>-<variant>``).
        examples: test reports shown with their attention in ``evidence/attention_examples.html``.
        force: log a new run even when this model folder was logged already.

    Returns:
        the run id; the earlier run's when the same model folder (same bytes) was logged before.

    Raises:
        RegistryError: ``model_dir`` or ``dataset_dir`` is not what it should be.
    """
    import mlflow
    import mlflow.pyfunc
    import mlflow.pytorch
    from mlflow.entities import Metric

    from hiericd_core import modelcard
    from hiericd_core.pyfunc import HiericdPipeline, signature

    model_dir, dataset_dir = Path(model_dir).resolve(), Path(dataset_dir).resolve()
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise RegistryError(f"{model_dir}: no {name}; give a model folder written by `hiericd train`")
    if not (dataset_dir / "manifest.json").is_file():
        raise RegistryError(f"{dataset_dir}: no manifest.json; give the data set folder the model was trained on")
    catalog = catalog or Catalog.from_env()
    client = _client(catalog)
    experiment_id = _experiment_id(client, experiment, catalog)
    digest = model_digest(model_dir)
    if not force and (earlier := _find_logged_run(client, experiment_id, digest)):
        return earlier

    config = json.loads((model_dir / "train_config.json").read_text(encoding="utf-8"))
    metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    if evaluation is None:
        saved = model_dir / "evaluation-test.json"
        if saved.is_file():
            evaluation = json.loads(saved.read_text(encoding="utf-8"))
        else:
            from hiericd_core.pipeline import evaluate_model

            evaluation = evaluate_model(model_dir, dataset_dir, "test")
    round_ids = list(round_ids if round_ids is not None else manifest.get("source_rounds") or [])
    rounds = round_agreement(round_ids, catalog)
    kappas = [r["headline_kappa"] for r in rounds.values() if r["headline_kappa"] is not None]
    version = manifest.get("version") or "unknown"
    split = evaluation.get("split", "test")

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or f"{version}-{metrics.get('variant')}"
                          ) as run:
        run_id = run.info.run_id
        tags = {"hiericd.model_digest": digest, "hiericd.dataset_version": version,
                "hiericd.variant": str(metrics.get("variant")), "hiericd.rounds": ",".join(round_ids),
                "hiericd.evaluation_split": split, "hiericd.model_dir": str(model_dir)}
        if commit := _git_commit():
            tags["mlflow.source.git.commit"] = commit
        mlflow.set_tags(tags)
        mlflow.log_params(_params(config, metrics, manifest, model_dir, dataset_dir))
        now = int(time.time() * 1000)
        history = [Metric(name, value, now, step) for name, value, step in epoch_metrics(metrics)]
        for start in range(0, len(history), 1000):  # log_batch takes at most 1000 metrics
            client.log_batch(run_id, metrics=history[start: start + 1000])

        # the data set as an MLflow dataset input (the report table; its version names it)
        import pandas as pd

        reports = pd.read_parquet(dataset_dir / "reports.parquet",
                                  columns=["report_id", "split", "round_id", "codes", "n_codes", "n_sentences"])
        reports["codes"] = reports["codes"].map(lambda c: " ".join(c))
        with warnings.catch_warnings():  # a local path matches two equivalent source types; integer columns
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(reports, source=str(dataset_dir / "reports.parquet"),
                                              name=f"hiericd-dataset-{version}", digest=version[:36])
            mlflow.log_input(dataset, context="training")
        for name in ("manifest.json", "label_space.json"):
            mlflow.log_artifact(str(dataset_dir / name), "data")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            atomic_write_json(tmp / "rounds.json", rounds)
            mlflow.log_artifact(str(tmp / "rounds.json"), "data")
            atomic_write_json(tmp / f"evaluation-{split}.json", evaluation)
            mlflow.log_artifact(str(tmp / f"evaluation-{split}.json"), "evaluation")
            if ablation := ablation_file(model_dir):
                mlflow.log_artifact(str(ablation), "evaluation")
                if ablation.with_suffix(".png").is_file():
                    mlflow.log_artifact(str(ablation.with_suffix(".png")), "plots")

            # figures and evidence: per-code F1 on the split, systems' P/R, attention examples
            figures = modelcard.run_figures(model_dir, dataset_dir, evaluation, examples=examples)
            for name, data in figures["files"].items():
                (tmp / name).write_bytes(data)
                mlflow.log_artifact(str(tmp / name), "evidence" if name.endswith((".html", ".jsonl")) else
                                    "plots" if name.endswith(".png") else "evaluation")

        # the three models; the pipeline carries the whole model folder
        from hiericd_core.models import load_checkpoint

        requirements = _pip_requirements()
        for artifact in ("tagger", "classifier"):
            module, _ = load_checkpoint(model_dir / f"{artifact}.pt")
            logged = mlflow.pytorch.log_model(module, name=artifact, serialization_format="pickle",
                                              pip_requirements=requirements)
            mlflow.set_tag(f"hiericd.model_id.{artifact}", logged.model_id)
        info = mlflow.pyfunc.log_model(name="pipeline", python_model=HiericdPipeline(),
                                       artifacts={"model_dir": str(model_dir)}, signature=signature(),
                                       input_example=figures["input_example"], pip_requirements=requirements)
        mlflow.set_tag("hiericd.model_id.pipeline", info.model_id)
        final = final_metrics(evaluation, metrics)
        if kappas:
            final["rounds_min_kappa"] = min(kappas)
            final["rounds_mean_kappa"] = sum(kappas) / len(kappas)
        for rid, figures_of_round in rounds.items():
            if figures_of_round["headline_kappa"] is not None:
                final[f"round_kappa.{metric_name(rid)}"] = figures_of_round["headline_kappa"]
        # on the run and on the pipeline's logged model, so the model page shows them too
        mlflow.log_metrics(final, model_id=info.model_id)
        mlflow.set_tag("hiericd.logged", "true")  # last: marks a complete run for the re-run check
    return run_id


# ---------------------------------------------------------------- the registry


def _version_of_run(client, name: str, run_id: str):
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def _alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(run_id: str, *, catalog: Catalog | None = None) -> dict:
    """Register the run's three models and point ``challenger`` at their versions.

    A run registered before keeps its versions (none is added); ``challenger``
    is set again unless that version is the champion.

    Returns:
        ``{"run_id", "pipeline" | "tagger" | "classifier": {"name", "version", "created"}}``.

    Raises:
        RegistryError: no such run, or it is not a complete hiericd training run.
    """
    from mlflow.exceptions import MlflowException

    client = _client(catalog)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"no MLflow run {run_id} in {tracking_uri(catalog)}; "
                            "log one with `hiericd register MODEL_DIR DATASET`") from exc
    if run.data.tags.get("hiericd.logged") != "true" or any(f"hiericd.model_id.{a}" not in run.data.tags
                                                             for a in MODELS):
        raise RegistryError(f"run {run_id} is not a complete hiericd training run (no hiericd.logged tag); "
                            "log the model folder again")
    out: dict = {"run_id": run_id}
    for artifact, name in MODELS.items():
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description=_DESCRIPTIONS[artifact])
        existing = _version_of_run(client, name, run_id)
        if existing is None:
            import mlflow

            # the logged model itself (MLflow 3 keeps models apart from the run's artifacts)
            version = mlflow.register_model(f"models:/{run.data.tags[f'hiericd.model_id.{artifact}']}", name, tags={
                "hiericd.run_id": run_id, "hiericd.dataset_version": run.data.tags.get("hiericd.dataset_version", ""),
                "hiericd.variant": run.data.tags.get("hiericd.variant", "")})
        else:
            version = existing
        champion = _alias(client, name, CHAMPION)
        if champion is None or int(champion.version) != int(version.version):
            client.set_registered_model_alias(name, CHALLENGER, version.version)
        out[artifact] = {"name": name, "version": int(version.version), "created": existing is None}
    return out


_DESCRIPTIONS = {
    "tagger": "hiericd sentence tagger: marks the focus sentences of a pathology report (paper Table 3).",
    "classifier": "hiericd phrase-attention ICD-10 classifier of one focus sentence (paper Table 4).",
    "pipeline": "hiericd pipeline: report text (+ reason for visit) -> ICD-10 codes with evidence "
                "(focus sentence, attention tokens). Input columns report_id, text, reason_for_visit.",
}


# ---------------------------------------------------------------- the gate


def _score(model_dir: Path, dataset_dir: Path, split: str) -> dict:
    """End-to-end scores and per-code F1 of a model folder on a data set split."""
    from hiericd_core.evaluate import as_dict, end_to_end_scores
    from hiericd_core.infer import predict_dataset

    predictions = predict_dataset(model_dir, dataset_dir, split)
    scores = as_dict(end_to_end_scores(predictions.gold, predictions.codes, predictions.labels))
    return {"micro_f1": scores["micro"]["f1"], "end_to_end": scores,
            "per_code": code_f1(predictions.gold, predictions.codes)}


def _version_folder(client, version, dst: Path) -> Path:
    """The model folder inside a registered pipeline version (downloaded and loaded through pyfunc)."""
    import mlflow.pyfunc

    dst.mkdir(parents=True, exist_ok=True)
    model = mlflow.pyfunc.load_model(f"models:/{PIPELINE}/{version.version}", dst_path=str(dst))
    return Path(model.unwrap_python_model().model_dir)


def _baseline(gate: GateConfig, run, eval_dir: Path) -> dict | None:
    """The baseline's micro F1 on the gate's reports: from the run when it was scored on them, else fitted now.

    The baselines are deterministic, so the figure the challenger's run logged
    for the same data set version and split is the one a refit would give.
    """
    manifest = json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))
    logged = run.data.metrics.get(f"{gate.split}_{metric_name(gate.beat_baseline)}_micro_f1")
    if (logged is not None and run.data.tags.get("hiericd.dataset_version") == manifest.get("version")
            and run.data.tags.get("hiericd.evaluation_split") == gate.split):
        return {"name": gate.beat_baseline, "micro_f1": logged, "source": f"run {run.info.run_id}"}
    from hiericd_core.baselines import run_baselines

    results = run_baselines(eval_dir, gate.split)
    if gate.beat_baseline not in results:
        return None
    return {"name": gate.beat_baseline, "micro_f1": results[gate.beat_baseline]["metrics"]["micro"]["f1"],
            "source": f"fitted on {eval_dir}"}


def _history(client) -> list[int]:
    tags = client.get_registered_model(PIPELINE).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def _move_champion(client, run_id: str, pipeline_version: str) -> None:
    """Point ``champion`` of the three registered models at the versions of one run."""
    for artifact, name in MODELS.items():
        version = pipeline_version if artifact == "pipeline" else getattr(_version_of_run(client, name, run_id),
                                                                          "version", None)
        if version is not None:
            client.set_registered_model_alias(name, CHAMPION, version)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def promote(*, dataset_dir: str | Path, gate: GateConfig | None = None, catalog: Catalog | None = None,
            out_dir: str | Path | None = None) -> dict:
    """Score challenger and champion on the same held-out reports; move ``champion`` when every rule passes.

    The reports are the ``gate.split`` split of ``gate.reference_set`` when
    set, else of ``dataset_dir``. The first model (no champion yet) faces the
    absolute rules only. The decision goes to
    ``<out_dir or HIERICD_HOME/mlflow/decisions>/<time>-v<version>.json`` and
    onto the challenger version's tags.

    Returns:
        the decision: ``{"outcome": "promoted" | "refused" | "already-champion", "passed", "challenger",
        "champion", "previous_champion", "baseline", "rules", "dataset", "split", "gate", "decided_at",
        "decision_file"}``; the file also holds each side's per-code scores.

    Raises:
        RegistryError: no challenger registered, or the data set folder is missing.
    """
    catalog = catalog or Catalog.from_env()
    gate = gate or GateConfig()
    client = _client(catalog)
    challenger = _alias(client, PIPELINE, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"no {PIPELINE}@{CHALLENGER} in {tracking_uri(catalog)}; register a run first "
                            "(hiericd register)")
    champion = _alias(client, PIPELINE, CHAMPION)
    if champion is not None and int(champion.version) == int(challenger.version):
        return {"outcome": "already-champion", "passed": True, "challenger": _describe(client, challenger),
                "champion": _describe(client, champion), "rules": []}
    eval_dir = Path(gate.reference_set or dataset_dir).resolve()
    if not (eval_dir / "manifest.json").is_file():
        raise RegistryError(f"{eval_dir}: not a data set folder (no manifest.json); give the data set to score on")

    with tempfile.TemporaryDirectory(prefix="hiericd-gate-") as tmp:
        sides = {"challenger": challenger} | ({"champion": champion} if champion is not None else {})
        scores = {side: _score(_version_folder(client, v, Path(tmp) / side), eval_dir, gate.split)
                  for side, v in sides.items()}
    run = client.get_run(challenger.run_id)
    baseline = _baseline(gate, run, eval_dir) if gate.beat_baseline else None
    kappa = run.data.metrics.get("rounds_min_kappa")
    rules = apply_rules(gate, scores["challenger"], scores.get("champion"), baseline, kappa)
    passed = all(r["passed"] is not False for r in rules)
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    history = _history(client)
    decision = {
        "outcome": "promoted" if passed else "refused", "passed": passed, "decided_at": decided_at,
        "dataset": str(eval_dir), "split": gate.split, "gate": asdict(gate),
        "challenger": {**_describe(client, challenger), **_summary(scores["challenger"])},
        "champion": ({**_describe(client, champion), **_summary(scores["champion"])} if champion is not None
                     else None),
        "previous_champion": int(champion.version) if champion is not None else None,
        "baseline": baseline, "rules": rules,
    }
    folder = Path(out_dir) if out_dir is not None else catalog.decisions
    path = folder / f"{_stamp()}-v{challenger.version}.json"
    decision["decision_file"] = str(path)
    atomic_write_json(path, decision)
    if passed:
        _move_champion(client, challenger.run_id, challenger.version)
        if champion is not None:
            client.set_model_version_tag(PIPELINE, challenger.version, "hiericd.previous_champion",
                                         str(champion.version))
        client.set_registered_model_tag(PIPELINE, HISTORY_TAG, json.dumps([*history, int(challenger.version)]))
    for key, value in {"hiericd.gate": decision["outcome"], "hiericd.gate_decided_at": decided_at,
                       "hiericd.gate_decision_file": str(path),
                       "hiericd.gate_micro_f1": f"{scores['challenger']['micro_f1']:.6f}",
                       "hiericd.gate_failed_rules": ",".join(r["rule"] for r in rules if r["passed"] is False)
                       }.items():
        client.set_model_version_tag(PIPELINE, challenger.version, key, value)
    return _without_per_code(decision)


def _without_per_code(decision: dict) -> dict:
    """The decision less its per-code tables (kept in the file), small enough to pass along (e.g. Airflow XCom)."""
    return {**decision, **{side: {k: v for k, v in decision[side].items() if k != "per_code"}
                           for side in ("challenger", "champion") if decision.get(side)}}


def _summary(score: Mapping) -> dict:
    e2e = score["end_to_end"]
    return {"micro_f1": score["micro_f1"], "micro_precision": e2e["micro"]["precision"],
            "micro_recall": e2e["micro"]["recall"], "subset_accuracy": e2e["subset_accuracy"],
            "per_code": score["per_code"]}


def rollback(*, catalog: Catalog | None = None) -> dict:
    """Move ``champion`` back to the champion before the current one and record it.

    The champion history (a tag of ``hiericd-pipeline``) loses its last entry,
    so a second rollback goes one further back.

    Returns:
        ``{"outcome": "rolled-back", "from", "to", "decided_at", "decision_file"}``.

    Raises:
        RegistryError: no champion, or none before it.
    """
    catalog = catalog or Catalog.from_env()
    client = _client(catalog)
    champion = _alias(client, PIPELINE, CHAMPION)
    if champion is None:
        raise RegistryError(f"no {PIPELINE}@{CHAMPION} in {tracking_uri(catalog)}: nothing to roll back")
    history = _history(client)
    if history and history[-1] == int(champion.version):
        history = history[:-1]
    if not history:
        raise RegistryError(f"{PIPELINE} version {champion.version} is the first champion: no earlier one to roll "
                            "back to")
    target = client.get_model_version(PIPELINE, str(history[-1]))
    _move_champion(client, target.run_id, target.version)
    client.set_registered_model_tag(PIPELINE, HISTORY_TAG, json.dumps(history))
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    path = catalog.decisions / f"{_stamp()}-rollback-v{champion.version}-to-v{target.version}.json"
    decision = {"outcome": "rolled-back", "from": int(champion.version), "to": int(target.version),
                "decided_at": decided_at,
                "history": history, "decision_file": str(path)}
    atomic_write_json(path, decision)
    client.set_model_version_tag(PIPELINE, champion.version, "hiericd.rolled_back_at", decided_at)
    client.set_model_version_tag(PIPELINE, target.version, "hiericd.restored_at", decided_at)
    return decision


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
