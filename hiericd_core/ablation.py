"""The paper's Table 4 ablation: the five classifier variants trained and judged side by side.

:func:`run_ablation` trains one model folder per variant (``<out>/<variant>/``)
with the training stages of :mod:`hiericd_core.train`. What does not depend on
the variant is done once: the sentence tagger is trained for the first
variant and copied into the others (its checkpoint and stage result), after
checking that their vocabulary and word vectors came out byte for byte the
same (seeded, one-thread word2vec); otherwise a variant trains its own. On a
data set without reasons for visit the ``*_r4v`` variants fall back to their
counterparts (see :func:`hiericd_core.models.classifier.without_r4v`); a
variant that falls back onto one already trained is not trained again and
its row says which it is.

Each variant is scored on one split (default ``test``):

* classifier (Table 4): accuracy, macro F1, weighted F1 on the classifier rows;
* end to end (Table 5): micro P/R/F1 over every gold code of the split's reports;
* evidence plausibility: token P/R/F1 of the top-``k`` attention tokens and
  AUPRC of the attention weights against the coders' phrase mask
  (:func:`hiericd_core.evaluate.evidence_scores`; for ``pooling``, which has
  no attention, the weights the model reports).

It writes ``ablation.json`` (every figure, the config, timings),
``ablation.md`` (the table) and ``ablation.png`` (grouped bars), atomically.

For experiments on the classifier alone (another λ, seed or encoder),
:func:`retrain_classifier` copies a trained folder and trains only its
classifier again with changed settings, keeping the words and the tagger, and
:func:`gather_runs` puts such folders into the same table and plot
(``scripts/classifier_runs.py`` runs both).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from hiericd_core.models.classifier import VARIANTS
from hiericd_core.train import TrainConfig

LABELS = {
    "pooling": "pooling",
    "attention": "vanilla attention",
    "supervised": "supervised attention",
    "attention_r4v": "attention + reason for visit",
    "supervised_r4v": "supervised attention + reason for visit",
}
PLOTTED = (("classifier_accuracy", "classifier accuracy"), ("classifier_macro_f1", "classifier macro F1"),
           ("classifier_weighted_f1", "classifier weighted F1"), ("micro_f1", "end-to-end micro F1"),
           ("evidence_f1", "evidence token F1"), ("evidence_auprc", "evidence AUPRC"))
COLUMNS = ("variant", "trained_as", "classifier_accuracy", "classifier_macro_f1", "classifier_weighted_f1",
           "micro_precision", "micro_recall", "micro_f1", "evidence_precision", "evidence_recall", "evidence_f1",
           "evidence_auprc", "best_epoch", "stopped", "train_seconds")


#: settings :func:`retrain_classifier` may change: they reach the classifier stage only
CLASSIFIER_SETTINGS = frozenset({"seed", "threads", "device", "lr", "batch_size", "classifier_epochs", "patience",
                                 "min_delta", "classifier_hidden", "classifier_bidirectional", "attention_size",
                                 "lambda_att", "attention_to_encoder", "dropout", "freeze_embeddings",
                                 "classifier_examples"})


class AblationError(Exception):
    """An ablation that cannot run (the message says what to do)."""


def _same_files(a: Path, b: Path, names: Sequence[str]) -> bool:
    return all((a / n).is_file() and (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes()
               for n in names)


def _train_variant(dataset_dir: Path, out_dir: Path, config: TrainConfig, variant: str, first: Path | None,
                   progress: bool) -> dict:
    """Train one variant's folder (sharing ``first``'s tagger when its words came out the same)."""
    from hiericd_core.train import STAGES_DIR, classifier_stage, finish_stage, prepare_stage, tagger_stage

    folder = out_dir / variant
    clock = time.perf_counter()
    prepared = prepare_stage(dataset_dir, folder, replace(config, variant=variant))
    shared = (first is not None and _same_files(first, folder, ("vocab.json", "vectors.npy"))
              and prepared["tagger_uses_r4v"] == json.loads(
                  (first / STAGES_DIR / "prepare.json").read_text(encoding="utf-8"))["tagger_uses_r4v"])
    if shared:
        assert first is not None
        for name in ("tagger.pt", f"{STAGES_DIR}/tagger.json"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first / name, folder / name)
    else:
        tagger_stage(folder, progress=progress)
    classifier_stage(folder, progress=progress)
    metrics = finish_stage(folder)
    return {"folder": str(folder), "requested": variant, "trained_as": prepared["variant"], "shared_tagger": shared,
            "metrics": metrics, "seconds": time.perf_counter() - clock}


def train_variants(dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
                   variants: Sequence[str] = VARIANTS, share_tagger: bool = True, progress: bool = False,
                   log: Callable[[str], None] | None = None, jobs: int = 1) -> dict[str, dict]:
    """Train one model folder per variant under ``out_dir``; see the module docstring.

    With ``jobs`` > 1, the variants after the first train in that many worker
    processes (each with ``config.threads`` threads, on ``config.device``)
    once the first variant's tagger is there to share: on a machine with many
    cores or a GPU the ablation takes about as long as one variant. On the CPU
    the workers share ``config.threads`` out between them (at least one each).

    Returns:
        variant -> ``{"folder", "trained_as", "shared_tagger", "metrics", "seconds"}``
        (``metrics`` as :func:`hiericd_core.train.finish_stage` returns it).
    """
    from hiericd_core.models.classifier import without_r4v

    config = config or TrainConfig()
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise AblationError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not variants:
        return {}
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    done: dict[str, dict] = {}

    def record(variant: str, info: dict) -> None:
        done[variant] = info
        if log:
            log(f"{variant}: trained as {info['trained_as']} in {info['seconds']:.0f} s"
                + (" (tagger shared)" if info["shared_tagger"] else ""))

    record(variants[0], _train_variant(dataset_dir, out_dir, config, variants[0], None, progress))
    first = out_dir / variants[0] if share_tagger else None
    from hiericd_core.train import STAGES_DIR, torch_device

    r4v = json.loads((out_dir / variants[0] / STAGES_DIR / "prepare.json").read_text(encoding="utf-8"))["r4v_available"]
    # without reasons for visit an *_r4v variant is the same model as its counterpart: trained once, copied
    effective = {v: v if r4v else without_r4v(v) for v in variants}
    by_effective = {effective[variants[0]]: variants[0]}
    todo = []
    for variant in variants[1:]:
        if effective[variant] in by_effective:
            continue
        by_effective[effective[variant]] = variant
        todo.append(variant)
    if jobs > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from itertools import repeat

        workers = min(jobs, len(todo))
        # the CPU threads are shared out between the workers (more threads than cores slows these LSTMs down)
        on_cpu = torch_device(config).type == "cpu"
        worker_config = replace(config, threads=max(1, config.threads // workers)) if on_cpu else config
        # spawn: torch (and CUDA) must not be forked after initialisation
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = pool.map(_train_variant, repeat(dataset_dir), repeat(out_dir), repeat(worker_config), todo,
                               repeat(first), repeat(False))
            for variant, info in zip(todo, results, strict=True):
                record(variant, info)
    else:
        for variant in todo:
            record(variant, _train_variant(dataset_dir, out_dir, config, variant, first, progress))
    for variant in variants:
        if variant not in done:
            source = by_effective[effective[variant]]
            folder = out_dir / variant
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(out_dir / source, folder)
            done[variant] = {**done[source], "folder": str(folder), "requested": variant, "seconds": 0.0}
            if log:
                log(f"{variant}: trained as {effective[variant]}, the same model as {source}")
    return {v: done[v] for v in variants}


def score_variant(model_dir: str | Path, dataset_dir: str | Path, split: str = "test", top_k: int = 5) -> dict:
    """Classifier, end-to-end and evidence figures of one model folder on ``split`` (a flat dict)."""
    import numpy as np

    from hiericd_core.evaluate import classifier_scores, end_to_end_scores, evidence_scores
    from hiericd_core.infer import InferenceConfig
    from hiericd_core.infer_dataset import predict_dataset

    # the paper's rule (no phrase memory), whatever the folder's inference.json says
    predictions = predict_dataset(model_dir, dataset_dir, split, config=InferenceConfig())
    rows = predictions.classifier_rows
    classifier = classifier_scores(rows["code"], rows["predicted"])
    end_to_end = end_to_end_scores(predictions.gold, predictions.codes, predictions.labels)
    evidence = evidence_scores([(np.asarray(a), np.asarray(m)) for a, m in
                                zip(rows["attention"], rows["attention_mask"], strict=True)], k=top_k)
    return {
        "classifier_accuracy": classifier.accuracy, "classifier_macro_f1": classifier.macro_f1,
        "classifier_weighted_f1": classifier.weighted_f1, "classifier_rows": classifier.rows,
        "micro_precision": end_to_end.micro.precision, "micro_recall": end_to_end.micro.recall,
        "micro_f1": end_to_end.micro.f1, "reports": end_to_end.reports,
        "evidence_precision": evidence.micro.precision, "evidence_recall": evidence.micro.recall,
        "evidence_f1": evidence.micro.f1, "evidence_macro_f1": evidence.macro.f1,
        "evidence_auprc": evidence.auprc_macro, "evidence_auprc_micro": evidence.auprc_micro,
        "evidence_selection": evidence.selection,
    }


def _row(variant: str, trained_as: str, score: dict, classifier: dict, shared_tagger: bool, seconds: float) -> dict:
    """One table row: the variant, its figures (:func:`score_variant`) and how its classifier stopped."""
    return {"variant": variant, "trained_as": trained_as, **score, "best_epoch": classifier["best_epoch"],
            "stopped": classifier["stopped"], "shared_tagger": shared_tagger, "train_seconds": round(seconds, 1)}


def run_ablation(dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
                 variants: Sequence[str] = VARIANTS, split: str = "test", share_tagger: bool = True,
                 progress: bool = False, log: Callable[[str], None] | None = None, jobs: int = 1) -> dict:
    """Train and score the variants; write ``ablation.json``, ``ablation.md`` and ``ablation.png`` into ``out_dir``.

    Returns:
        The contents of ``ablation.json``: ``{"dataset", "split", "config", "rows": [...], "table"}``.

    Raises:
        AblationError: an unknown variant or a split without reports.
        hiericd_core.train.TrainError: a data set that cannot be trained on.
    """
    config = config or TrainConfig()
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8")) \
        if (dataset_dir / "manifest.json").is_file() else {}
    if manifest and not manifest.get("splits", {}).get(split, {}).get("reports"):
        raise AblationError(f"{dataset_dir}: the {split} split has no report; pass --split dev "
                            "(e.g. for a data set split by round)")
    trained = train_variants(dataset_dir, out_dir, config, variants, share_tagger, progress, log, jobs)
    rows = []
    scored: dict[str, dict] = {}
    for variant, info in trained.items():
        trained_as = info["trained_as"]
        if trained_as not in scored:
            scored[trained_as] = score_variant(info["folder"], dataset_dir, split)
        rows.append(_row(variant, trained_as, scored[trained_as], info["metrics"]["classifier"],
                         info["shared_tagger"], info["seconds"]))
    result = {"dataset": str(dataset_dir), "dataset_version": manifest.get("version"), "split": split,
              "config": asdict(config), "variants": list(variants), "rows": rows}
    return write_ablation(result, out_dir)


def write_ablation(result: dict, out_dir: str | Path) -> dict:
    """Write ``ablation.md``, ``ablation.png`` and (last, so a folder holding it is complete) ``ablation.json``.

    ``result`` as :func:`run_ablation` builds it, without ``table``; also for
    rows gathered from variants trained apart (``hiericd ablation --variant V``
    on several machines), concatenated in the order to show.
    """
    from hiericd_core.evaluate import markdown_table
    from hiericd_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text

    rows, split, out_dir = result["rows"], result["split"], Path(out_dir)
    table = markdown_table([{c: (LABELS[r[c]] if c in ("variant", "trained_as") else r[c]) for c in COLUMNS}
                            for r in rows])
    result = {**result, "table": table}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "ablation.png", ablation_plot(rows, f"{split} split, {rows[0]['reports']} reports"))
    atomic_write_text(out_dir / "ablation.md", f"# Ablation (paper Table 4) on the {split} split\n\n{table}")
    atomic_write_json(out_dir / "ablation.json", result)
    return result


def ablation_plot(rows: Sequence[dict], subtitle: str = "") -> bytes:
    """Grouped bars: one group per figure of :data:`PLOTTED`, one bar per variant (PNG bytes)."""
    import numpy as np
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hiericd_core.plots import DPI, STYLE

    with rc_context(STYLE):
        fig = Figure(figsize=(10, 4.8), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = np.arange(len(PLOTTED))
        width = 0.8 / max(len(rows), 1)
        colours = ("#9e9e9e", "#80b1d3", "#1f78b4", "#b2df8a", "#33a02c")
        for i, row in enumerate(rows):
            values = [float(row[key]) if row[key] == row[key] else 0.0 for key, _ in PLOTTED]  # NaN -> 0
            bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=LABELS[row["variant"]],
                          color=colours[VARIANTS.index(row["variant"]) % len(colours)])
            ax.bar_label(bars, fmt="%.3f", fontsize=5, rotation=90, padding=2)  # the gaps are often small
        ax.set_xticks(x, [name for _, name in PLOTTED], fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("score")
        ax.set_title("Classifier variants (paper Table 4)" + (f": {subtitle}" if subtitle else ""))
        # below the axes, where it covers no bar
        ax.legend(fontsize=7, ncols=min(len(rows), 5), loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  frameon=False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def retrain_classifier(source: str | Path, out_dir: str | Path, changes: dict, split: str = "test") -> dict:
    """Copy the model folder ``source`` to ``out_dir``, train its classifier again with ``changes`` applied
    to its training settings, and score it on ``split`` of the data set it was trained on.

    The vocabulary, word vectors and sentence tagger stay those of ``source``, so the classifier is the only
    difference. Writes ``score.json`` (:func:`score_variant`'s figures) beside the model's own files.

    A classifier setting that ``source``'s ``train_config.json`` does not record (a folder trained before the
    setting existed) takes today's default; ``defaulted`` names those with the value used, so a caller can
    pass the old behaviour in ``changes`` instead.

    Returns:
        ``{"folder", "variant", "changes", "defaulted", "score", "best_epoch", "stopped", "seconds"}``.

    Raises:
        AblationError: a setting outside :data:`CLASSIFIER_SETTINGS`, or ``source`` not a trained folder.
    """
    from hiericd_core.files import atomic_write_json
    from hiericd_core.train import STAGES_DIR, classifier_stage, finish_stage

    source, out_dir = Path(source), Path(out_dir)
    outside = sorted(set(changes) - CLASSIFIER_SETTINGS)
    if outside:
        known = ", ".join(sorted(CLASSIFIER_SETTINGS))
        raise AblationError(f"{', '.join(outside)}: not a classifier setting (these reach the words or the tagger; "
                            f"train a new folder instead). Classifier settings: {known}")
    if not (source / "train_config.json").is_file() or not (source / STAGES_DIR / "tagger.json").is_file():
        raise AblationError(f"{source}: not a trained model folder (no train_config.json or {STAGES_DIR}/tagger.json)")
    if out_dir.resolve() == source.resolve():
        raise AblationError(f"{out_dir}: the copy must go to another folder than {source}")
    # checks the values before anything is copied
    saved = json.loads((source / "train_config.json").read_text(encoding="utf-8"))
    config = TrainConfig(**{**saved, **changes})
    defaulted = {name: getattr(config, name) for name in sorted(CLASSIFIER_SETTINGS - set(saved) - set(changes))}
    shutil.rmtree(out_dir, ignore_errors=True)
    # what the classifier's retraining makes stale stays behind: its checkpoint, results and evaluations
    shutil.copytree(source, out_dir, ignore=shutil.ignore_patterns(
        "classifier.pt", "classifier.json", "metrics.json", "score.json", "inference.json", "evaluation-*"))
    atomic_write_json(out_dir / "train_config.json", asdict(config))
    stage = classifier_stage(out_dir)
    metrics = finish_stage(out_dir)
    prepared = json.loads((out_dir / STAGES_DIR / "prepare.json").read_text(encoding="utf-8"))
    score = score_variant(out_dir, prepared["dataset_dir"], split)
    atomic_write_json(out_dir / "score.json", {"split": split, **score})
    return {"folder": str(out_dir), "variant": metrics["variant"], "changes": changes, "defaulted": defaulted,
            "score": score,
            "best_epoch": stage["result"]["best_epoch"], "stopped": stage["result"]["stopped"],
            "seconds": stage["seconds"]}


def gather_runs(folders: Sequence[str | Path], out_dir: str | Path) -> dict:
    """The ablation table and plot of model folders scored apart (each with a ``score.json`` from
    :func:`retrain_classifier`), in the order given; written as :func:`write_ablation` writes them."""
    from hiericd_core.train import STAGES_DIR

    rows, splits, configs = [], set(), []
    for folder in map(Path, folders):
        if not (folder / "score.json").is_file():
            raise AblationError(f"{folder}: no score.json; run retrain_classifier (scripts/classifier_runs.py) on it")
        score = json.loads((folder / "score.json").read_text(encoding="utf-8"))
        splits.add(score.pop("split"))
        seconds = json.loads((folder / STAGES_DIR / "classifier.json").read_text(encoding="utf-8"))["seconds"]
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        configs.append(json.loads((folder / "train_config.json").read_text(encoding="utf-8")))
        rows.append(_row(metrics["variant"], metrics["variant"], score, metrics["classifier"], True, seconds))
    if len(splits) != 1:
        raise AblationError(f"the folders were scored on different splits ({', '.join(sorted(splits))})")
    prepared = json.loads((Path(folders[0]) / STAGES_DIR / "prepare.json").read_text(encoding="utf-8"))
    version = prepared["data"].get("dataset_version")
    return write_ablation({"dataset": prepared["dataset_dir"], "dataset_version": version,
                           "split": splits.pop(), "config": configs[0], "configs": configs,
                           "variants": [r["variant"] for r in rows], "folders": [str(f) for f in folders],
                           "rows": rows}, out_dir)
