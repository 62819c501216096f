"""Choosing how a model codes reports without looking at the split that is reported.

The inference rule (:class:`~hiericd_core.infer.InferenceConfig`: focus
threshold, classifier cut, phrase memory and its reliability cut) and the
number of training epochs are chosen by k-fold cross-validation over the
training split, folds by report:

1. :func:`~hiericd_core.datasets.assign_folds` puts each training report in one of k folds by a
   stable hash of its id;
2. for each fold, :func:`derive_dataset` writes a data set whose training
   split is the other k − 1 folds and whose dev split is the fold;
   a model is trained on it with the model's own settings (early stopping
   on the held-out fold), given the phrase memory of those k − 1 folds, and
   every rule of the grid codes the held-out fold;
3. each rule is scored on the pooled out-of-fold codes of all training
   reports (micro F1; ties go to the earlier rule of the grid, the paper's
   rule first), and the epochs are the median of the folds' best epochs.

:func:`tune_model` (``hiericd tune MODEL DATASET``) writes the chosen rule
into a trained model folder (``inference.json``), with the phrase memory of
the whole training split (``phrases.json``) and the cross-validation table
(``tuning.json``), so ``hiericd predict``, ``evaluate`` and the registered
pipeline use them. :func:`fit_final` trains a model on given splits (e.g.
train + dev) for exactly the chosen epochs, with no split left to stop on,
and gives it the chosen rule and the phrase memory of the same splits.

The label space stays the data set's: a code seen only in the held-out fold
has no training rows in that fold's model, as a code new to a later round has
none in the final one.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from hiericd_core.datasets import assign_folds
from hiericd_core.infer import InferenceConfig
from hiericd_core.trainsets import TrainError

logger = logging.getLogger(__name__)

TUNING_FILE = "tuning.json"
DEFAULT_FOLDS = 5
_CUTS = (0.0, 0.3, 0.5, 0.7, 0.9)
_NEVER = 1.01  # a classifier cut no probability reaches: phrase memory only (the paper's fallback stays)


def default_grid() -> list[tuple[str, bool, InferenceConfig]]:
    """The rules cross-validation chooses from: ``(name, folded phrase memory?, rule)``, the paper's rule first.

    Nothing in it is corpus-specific: classifier cuts, the phrase memory
    (every phrase, or only phrases that meant their code at least 30% / 50%
    of the time in training; words folded or as written), and the classifier
    everywhere or only where no phrase was found.
    """
    grid: list[tuple[str, bool, InferenceConfig]] = [("paper: best code per focus sentence", True, InferenceConfig())]
    grid += [(f"classifier p >= {cut}", True, InferenceConfig(min_probability=cut)) for cut in _CUTS[1:]]
    grid.append(("classifier, up to 3 codes per sentence (2nd, 3rd p >= 0.3)", True,
                 InferenceConfig(max_codes_per_sentence=3, extra_probability=0.3)))
    for fold in (True, False):
        words = "folded" if fold else "as written"
        for reliability in (0.0, 0.3, 0.5):
            memory = f"phrase memory ({words}, reliability >= {reliability})"
            for cut in (*_CUTS, _NEVER):
                classifier = "no classifier" if cut == _NEVER else f"classifier p >= {cut}"
                grid.append((f"{memory}; {classifier}", fold,
                             InferenceConfig(phrase_memory="report", phrase_min_reliability=reliability,
                                             min_probability=cut)))
            grid.append((f"{memory}; classifier where no phrase", fold,
                         InferenceConfig(phrase_memory="report", phrase_min_reliability=reliability,
                                         classifier_where="unmatched")))
            # without the networks' fallback: the phrase memory alone, and with the tagger's focus sentences
            grid.append((f"{memory} alone", fold,
                         InferenceConfig(phrase_memory="report", phrase_min_reliability=reliability,
                                         min_probability=_NEVER, fallback=False)))
            grid.append((f"{memory} in focus sentences only", fold,
                         InferenceConfig(phrase_memory="focus", phrase_min_reliability=reliability,
                                         min_probability=_NEVER, fallback=False)))
            if reliability < 0.5:
                grid.append((f"{memory}, phrases below reliability 0.5 only in focus sentences", fold,
                             InferenceConfig(phrase_memory="report", phrase_min_reliability=reliability,
                                             phrase_focus_below=0.5, min_probability=_NEVER, fallback=False)))
    # loose matches too (a known phrase's content words in any order), folded words
    for reliability in (0.3, 0.5, 0.7):
        memory = f"phrase memory + loose matches (folded, reliability >= {reliability})"
        grid.append((f"{memory} alone", True, InferenceConfig(
            phrase_memory="report", phrase_loose=True, phrase_min_reliability=reliability, min_probability=_NEVER,
            fallback=False)))
        grid.append((f"{memory} in focus sentences only", True, InferenceConfig(
            phrase_memory="focus", phrase_loose=True, phrase_min_reliability=reliability, min_probability=_NEVER,
            fallback=False)))
        for cut in (0.5, 0.9):
            grid.append((f"{memory}; classifier p >= {cut}", True, InferenceConfig(
                phrase_memory="report", phrase_loose=True, phrase_min_reliability=reliability, min_probability=cut)))
    return grid


def derive_dataset(dataset_dir: str | Path, out: str | Path, splits: Callable[[str, str], str], note: dict) -> Path:
    """Copy a data set to ``out`` with each report's split replaced by ``splits(report_id, split)``.

    Rows keep their order and every other column; the manifest records
    ``derived_from`` (the source version and ``note``). The result is for
    training only: it is not validated and never enters the catalog.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, out = Path(dataset_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sentences.parquet", "reports.parquet"):
        table = pq.read_table(source / name)
        column = table.schema.get_field_index("split")
        new = pa.array([splits(r, s) for r, s in zip(table.column("report_id").to_pylist(),
                                                       table.column("split").to_pylist(), strict=True)],
                       pa.string())
        pq.write_table(table.set_column(column, "split", new), out / name)
    shutil.copyfile(source / "label_space.json", out / "label_space.json")
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest["derived_from"] = {"version": manifest.get("version"), **note}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return out


def _training_ids(dataset_dir: Path, split: str = "train") -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(dataset_dir / "reports.parquet", columns=["report_id"], filters=[("split", "=", split)])
    return sorted(table.column("report_id").to_pylist())


class NetworkMemo:
    """Memoises a predictor's network passes, so every rule of a grid reuses the same tagger and classifier
    outputs (the rules differ only in what they make of them). :meth:`attach` gives another predictor of the
    same model folder (e.g. with another phrase memory) the same memo."""

    def __init__(self, predictor):
        self.focus, self.codes = {}, {}
        self._focus, self._classify = predictor.focus_probabilities, predictor.classify
        self.attach(predictor)

    def attach(self, predictor):
        predictor.focus_probabilities, predictor.classify = self.focus_probabilities, self.classify
        return predictor

    def focus_probabilities(self, docs, batch_size: int = 64):
        key = tuple(d.report_id for d in docs)
        if key not in self.focus:
            self.focus[key] = self._focus(docs, batch_size)
        return self.focus[key]

    def classify(self, tokens, r4v, batch_size: int = 64):
        key = (tuple(map(tuple, tokens)), tuple(map(tuple, r4v)))
        if key not in self.codes:
            self.codes[key] = self._classify(tokens, r4v, batch_size)
        return self.codes[key]


def _memo_find(phrases):
    """``phrases`` with its ``find`` memoised by text (a sentence's matches do not depend on the rule)."""
    found: dict[tuple[str, bool], list] = {}
    plain = phrases.find

    def find(text: str, loose: bool = False):
        if (text, loose) not in found:
            found[(text, loose)] = plain(text, loose=loose)
        return found[(text, loose)]

    phrases.find = find
    return phrases


def cross_validate(dataset_dir: str | Path, work_dir: str | Path, config=None, *, folds: int = DEFAULT_FOLDS,
                   seed: int = 13, merged_dirs: Sequence[str | Path] | None = None,
                   grid: Sequence[tuple[str, bool, InferenceConfig]] | None = None, progress: bool = False) -> dict:
    """k-fold cross-validation of the inference rules and the epochs over a data set's training split.

    Args:
        dataset_dir: a data set folder.
        work_dir: where the fold data sets and models go (kept: each fold's
            model is there to inspect).
        config: the :class:`~hiericd_core.train.TrainConfig` every fold model trains with.
        merged_dirs: when given, each fold's phrase memory comes from these
            merged rounds' annotations (raw text) instead of the data set's masks.
        grid: the rules (default :func:`default_grid`).

    Returns:
        The tuning record (``tuning.json``): ``folds``, ``seed``, ``rules`` (each rule's name, settings and
        pooled out-of-fold micro P/R/F1), ``best`` (one of them), ``epochs`` (``tagger``/``classifier``:
        per-fold best epochs and their median), ``reports`` and ``seconds``.
    """
    from hiericd_core.evaluate import end_to_end_scores
    from hiericd_core.infer import Predictor
    from hiericd_core.infer_dataset import add_phrase_memory, split_documents
    from hiericd_core.train import TrainConfig

    dataset_dir, work_dir = Path(dataset_dir).resolve(), Path(work_dir)
    config = config or TrainConfig()
    grid = list(grid or default_grid())
    if not grid:
        raise TrainError("the grid of inference rules is empty")
    clock = time.perf_counter()
    try:
        fold_of = assign_folds(_training_ids(dataset_dir), folds, seed)
    except ValueError as exc:
        raise TrainError(f"{dataset_dir}: {exc}") from exc
    gold: dict[str, set[str]] = {}
    coded: list[dict[str, set[str]]] = [{} for _ in grid]
    epochs: dict[str, list[int]] = {"tagger": [], "classifier": []}
    for f in range(folds):
        logger.info("fold %d/%d: training on %d reports, coding %d", f + 1, folds,
                    sum(v != f for v in fold_of.values()), sum(v == f for v in fold_of.values()))

        def split(rid: str, current: str, f: int = f) -> str:
            if current != "train":
                return "test"  # never trained on, never scored here
            return "dev" if fold_of[rid] == f else "train"

        fold_set = derive_dataset(dataset_dir, work_dir / f"fold-{f + 1}" / "dataset", split,
                                  {"fold": f + 1, "folds": folds, "seed": seed})
        model_dir = work_dir / f"fold-{f + 1}" / "model"
        key = {"dataset_version": _version(dataset_dir), "fold": f + 1, "folds": folds, "seed": seed}
        metrics = _train_once(fold_set, model_dir, config, key, progress)
        epochs["tagger"].append(int(metrics["tagger"]["best_epoch"]))
        epochs["classifier"].append(int(metrics["classifier"]["best_epoch"]))
        docs, fold_gold = split_documents(fold_set, "dev")
        gold.update(fold_gold)
        memo = None
        for folded in (True, False):
            rules = [(i, rule) for i, (_, fold, rule) in enumerate(grid) if fold == folded]
            if not rules:
                continue
            add_phrase_memory(model_dir, fold_set, InferenceConfig(), merged_dirs=merged_dirs, fold=folded)
            loaded = Predictor.load(model_dir, threads=config.threads,
                                    config=InferenceConfig(phrase_memory="report"))
            memo = memo or NetworkMemo(loaded)  # the networks are the same for both memories: reuse their outputs
            pruned: dict[float, object] = {}
            for i, rule in rules:
                predictor = memo.attach(loaded.reconfigured(rule))
                if predictor.phrases is not None:  # one pruned memory per cut, its matches found once per sentence
                    if rule.phrase_min_reliability not in pruned:
                        pruned[rule.phrase_min_reliability] = _memo_find(predictor.phrases)
                    predictor.phrases = pruned[rule.phrase_min_reliability]
                results, _ = predictor.code_segmented(docs, 64)  # a report left out scores as coded empty
                coded[i].update({res.report_id: {c.code for c in res.codes} for res in results})
    rows = []
    for (name, folded, rule), codes in zip(grid, coded, strict=True):
        s = end_to_end_scores(gold, codes)
        rows.append({"rule": name, "fold": folded, "config": asdict(rule), "micro_precision": s.micro.precision,
                     "micro_recall": s.micro.recall, "micro_f1": s.micro.f1, "instance_f1": s.instance.f1})
    best = max(rows, key=lambda r: r["micro_f1"])  # max keeps the first of equal rows: grid order
    median = {k: max(1, round(statistics.median(v))) for k, v in epochs.items()}
    return {"folds": folds, "seed": seed, "reports": len(gold), "rules": rows, "best": best,
            "epochs": {k: {"per_fold": v, "median": median[k]} for k, v in epochs.items()},
            "train_config": asdict(config), "dataset_version": _version(dataset_dir),
            "seconds": round(time.perf_counter() - clock, 1)}


def _train_once(dataset_dir: Path, model_dir: Path, config, key: dict, progress: bool) -> dict:
    """``train_model``, unless ``model_dir`` already holds a finished run of the same settings on the same data
    (``stages/fit.json`` records ``key`` and the config): a re-run of the cross-validation or of a final fit
    then reuses it. Training is deterministic, so the reused model is the one a new run would train."""
    from hiericd_core.files import atomic_write_json
    from hiericd_core.train import STAGES_DIR, train_model

    record = {"key": key, "config": asdict(config)}
    marker = model_dir / STAGES_DIR / "fit.json"
    if marker.is_file() and (model_dir / "metrics.json").is_file() and \
            json.loads(marker.read_text(encoding="utf-8")) == json.loads(json.dumps(record)):
        logger.info("%s: trained before with the same settings on the same data; reused", model_dir)
        return json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    marker.unlink(missing_ok=True)
    metrics = train_model(dataset_dir, model_dir, config, progress=progress)
    atomic_write_json(marker, record)
    return metrics


def _version(dataset_dir: Path) -> str | None:
    return json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8")).get("version")


def apply_tuning(model_dir: str | Path, dataset_dir: str | Path, tuning: dict,
                 merged_dirs: Sequence[str | Path] | None = None) -> dict:
    """Write the chosen rule (``inference.json``), the phrase memory of ``dataset_dir``'s training split
    (``phrases.json``) and ``tuning`` (``tuning.json``) into a model folder."""
    from hiericd_core.files import atomic_write_json
    from hiericd_core.infer_dataset import add_phrase_memory

    best = tuning["best"]
    rule = InferenceConfig.from_dict(best["config"])
    memory = add_phrase_memory(model_dir, dataset_dir, rule, merged_dirs=merged_dirs, fold=bool(best["fold"]))
    atomic_write_json(Path(model_dir) / TUNING_FILE, tuning)
    return {"rule": best["rule"], "config": asdict(rule), "phrases": memory["phrases"],
            "cv_micro_f1": best["micro_f1"]}


def tune_model(model_dir: str | Path, dataset_dir: str | Path, *, folds: int = DEFAULT_FOLDS, seed: int = 13,
               merged_dirs: Sequence[str | Path] | None = None, work_dir: str | Path | None = None,
               progress: bool = False) -> dict:
    """Choose a trained model's inference rule by cross-validation on the training split (``hiericd tune``).

    The folds train with the model's own ``train_config.json``. The model
    folder gets ``inference.json``, ``phrases.json`` (the whole training
    split's phrase memory) and ``tuning.json``; its networks are not touched.
    The fold models are trained in ``work_dir`` (default: a scratch folder
    inside the model folder, removed afterwards).

    Returns:
        ``{"rule", "config", "phrases", "cv_micro_f1", "tuning"}``.
    """
    from hiericd_core.files import staging_dir
    from hiericd_core.train import TrainConfig, check_dataset

    model_dir, dataset_dir = Path(model_dir), Path(dataset_dir)
    check_dataset(dataset_dir)
    path = model_dir / "train_config.json"
    if not path.is_file():
        raise TrainError(f"{model_dir}: no train_config.json; give a model folder written by `hiericd train`")
    config = TrainConfig(**json.loads(path.read_text(encoding="utf-8")))
    if work_dir is not None:
        tuning = cross_validate(dataset_dir, work_dir, config, folds=folds, seed=seed, merged_dirs=merged_dirs,
                                progress=progress)
    else:
        with staging_dir(model_dir, "tune") as scratch:
            tuning = cross_validate(dataset_dir, scratch, config, folds=folds, seed=seed, merged_dirs=merged_dirs,
                                    progress=progress)
    return {**apply_tuning(model_dir, dataset_dir, tuning, merged_dirs), "tuning": tuning}


def fit_final(dataset_dir: str | Path, out: str | Path, config, tuning: dict, *,
              splits: Sequence[str] = ("train", "dev"), merged_dirs: Sequence[str | Path] | None = None,
              progress: bool = False) -> dict:
    """Train on ``splits`` of a data set for the tuned epochs (no early stopping) and apply the tuned rule.

    The model folder ``out`` gets the networks, the chosen rule and the phrase
    memory of the same reports: ready for ``hiericd predict``. Its
    ``metrics.json`` has no dev figures (nothing was held out).

    Returns:
        ``train_model``'s result with ``tuning`` (what :func:`apply_tuning` returned) added.
    """
    from hiericd_core.files import staging_dir

    dataset_dir, out = Path(dataset_dir).resolve(), Path(out)
    chosen = set(splits)
    config = replace(config, early_stopping=False, tagger_epochs=tuning["epochs"]["tagger"]["median"],
                     classifier_epochs=tuning["epochs"]["classifier"]["median"])
    out.mkdir(parents=True, exist_ok=True)
    with staging_dir(out, "final") as scratch:
        merged = derive_dataset(dataset_dir, scratch / "dataset", lambda _r, s: "train" if s in chosen else "test",
                                {"final_fit": sorted(chosen)})
        result = _train_once(merged, out, config, {"dataset_version": _version(dataset_dir),
                                                   "final_fit": sorted(chosen)}, progress)
        applied = apply_tuning(out, merged, tuning, merged_dirs)
    # the model folder must not point at the scratch data set that is now gone
    return {**result, "tuning": applied, "trained_on": sorted(chosen), "dataset_dir": str(dataset_dir)}
