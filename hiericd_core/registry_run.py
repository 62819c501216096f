"""One training run in MLflow: :func:`log_training_run` and the helpers it logs with.

Params from the resolved config and the data set manifest, per-epoch and final
metrics (the paper's Tables 3–5), round agreement, the data set input, plots
and the three logged models. A model folder already logged (same bytes, see
:func:`model_digest`) gives the earlier run back.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_json
from hiericd_core.registry_store import EXPERIMENT, MODEL_FILES, OURS, RegistryError, _client, _experiment_id

# ---------------------------------------------------------------- small pure helpers


def model_digest(model_dir: str | Path) -> str:
    """SHA-256 over the model folder's checkpoints, vocabulary, vectors, config, metrics and, when there, its
    inference rule, phrase memory and ablation (all change what the model is or codes)."""
    digest = hashlib.sha256()
    optional = [Path(model_dir) / name for name in ("inference.json", "phrases.json")]
    paths = [Path(model_dir) / name for name in MODEL_FILES] + [p for p in optional if p.is_file()] + \
        [p for p in [ablation_file(model_dir)] if p]
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
    params.update(_inference_params(model_dir))
    # MLflow params are strings of at most a few thousand characters
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:6000] for k, v in params.items()}


def _inference_params(model_dir: Path) -> dict:
    """The inference rule the model folder codes with, and how it was chosen (``inference.*`` params)."""
    rule_file, tuning_file = model_dir / "inference.json", model_dir / "tuning.json"
    rule = json.loads(rule_file.read_text(encoding="utf-8")) if rule_file.is_file() else None
    if rule is None:
        return {"inference.rule": "the paper's rule (best classifier code per focus sentence)",
                "inference.chosen_by": "default"}
    params = {f"inference.{k}": v for k, v in rule.items()}
    if tuning_file.is_file():
        tuning = json.loads(tuning_file.read_text(encoding="utf-8"))
        params.update({"inference.rule": tuning["best"]["rule"],
                       "inference.chosen_by": f"{tuning['folds']}-fold cross-validation over the training split "
                                              f"({tuning['reports']} reports)",
                       "inference.cv_micro_f1": round(tuning["best"]["micro_f1"], 4)})
    else:
        params["inference.chosen_by"] = "inference.json written by hand or by a script"
    return params


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
