"""CodiEsp: the hierarchical model against the three baselines (train on train, select on dev, report on dev).

    python scripts/codiesp_experiment.py --out var/codiesp [--config train.toml] [--model NAME=MODEL_DIR ...]

1. builds the data set from ``data/codiesp/{train,dev}`` split by round (the
   ``train`` round is the train split, ``dev`` the dev split; no test split),
   ``--min-count`` setting the label space, in the catalog ``<out>/home``;
2. trains the model (``--config``, a TrainConfig TOML), unless ``--model``
   names trained model folders on that data set;
3. gives each model a phrase memory (the training reports' coder phrases,
   from the merged round) and scores a grid of inference rules
   (:class:`hiericd_core.infer.InferenceConfig`) on dev, over every gold
   diagnosis code; the best rule by dev micro F1 is written to the model's
   ``inference.json``;
4. fits the baselines on train, the LR/SVM decision cuts chosen on dev, and
   scores them on dev.

Writes ``<out>/codiesp.json`` and ``<out>/codiesp.md`` (one table row per
system and rule). Selecting the rule and the cuts on the split reported
makes those rows optimistic; every row of the grid is in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hiericd_core.infer import InferenceConfig  # noqa: E402

ROUND_SPLITS = {"codiesp-train": "train", "codiesp-dev": "dev"}

# name -> (phrase memory folded?, rule); "paper" is the paper's rule
GRID: dict[str, tuple[bool, InferenceConfig]] = {
    "paper: best code per focus sentence": (True, InferenceConfig()),
    "classifier, p >= 0.3": (True, InferenceConfig(min_probability=0.3)),
    "classifier, 3 codes per sentence (2nd, 3rd p >= 0.2)": (True, InferenceConfig(max_codes_per_sentence=3,
                                                                                 extra_probability=0.2)),
    "+ phrase memory in focus sentences": (True, InferenceConfig(phrase_memory="focus")),
    "+ phrase memory in focus sentences (focus p >= 0.3)": (True, InferenceConfig(phrase_memory="focus",
                                                                                  focus_threshold=0.3)),
    "+ phrase memory anywhere": (True, InferenceConfig(phrase_memory="report")),
    "+ phrase memory anywhere, unfolded": (False, InferenceConfig(phrase_memory="report")),
    "+ phrase memory; classifier only where no phrase": (True, InferenceConfig(phrase_memory="report",
                                                                               classifier_where="unmatched")),
    "+ phrase memory; classifier p >= 0.3": (True, InferenceConfig(phrase_memory="report", min_probability=0.3)),
    "+ phrase memory; classifier p >= 0.5": (True, InferenceConfig(phrase_memory="report", min_probability=0.5)),
    "+ phrase memory; classifier p >= 0.7": (True, InferenceConfig(phrase_memory="report", min_probability=0.7)),
    "+ phrase memory; classifier p >= 0.5, ICD category rule": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.5, same_category=True)),
    "+ phrase memory (reliability >= 0.3); classifier p >= 0.5": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.5, phrase_min_reliability=0.3)),
    "+ phrase memory (reliability >= 0.5); classifier p >= 0.5": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.5, phrase_min_reliability=0.5)),
    "+ phrase memory (reliability >= 0.5); classifier p >= 0.3": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.3, phrase_min_reliability=0.5)),
    "+ phrase memory (reliability >= 0.5); no classifier": (
        True, InferenceConfig(phrase_memory="report", min_probability=1.01, phrase_min_reliability=0.5)),
    "+ phrase memory (reliability >= 0.5); classifier p >= 0.7": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.7, phrase_min_reliability=0.5)),
    "+ phrase memory (reliability >= 0.5); classifier p >= 0.9": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.9, phrase_min_reliability=0.5)),
    "+ phrase memory (reliability >= 0.5) in focus sentences (p >= 0.3); classifier p >= 0.5": (
        True, InferenceConfig(phrase_memory="focus", focus_threshold=0.3, min_probability=0.5,
                              phrase_min_reliability=0.5)),
    "+ phrase memory, phrases of reliability < 0.5 only in focus sentences; no classifier": (
        True, InferenceConfig(phrase_memory="report", min_probability=1.01, phrase_focus_below=0.5)),
    "+ phrase memory (reliability >= 0.2, < 0.6 only in focus sentences); classifier p >= 0.8": (
        True, InferenceConfig(phrase_memory="report", min_probability=0.8, phrase_min_reliability=0.2,
                              phrase_focus_below=0.6)),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def row(system: str, scores, extra: dict | None = None) -> dict:
    return {"system": system, "micro_precision": scores.micro.precision, "micro_recall": scores.micro.recall,
            "micro_f1": scores.micro.f1, "instance_f1": scores.instance.f1, "predicted_codes": scores.predicted_codes,
            **(extra or {})}


def _model_arg(text: str) -> tuple[str, str]:
    """``NAME=DIR`` with DIR a trained model folder (it holds ``classifier.pt``)."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not (Path(folder) / "classifier.pt").is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=DIR with DIR a trained model folder")
    return name, folder


def main() -> int:
    from hiericd_core import pipeline
    from hiericd_core.baselines import run_baselines
    from hiericd_core.catalog import Catalog
    from hiericd_core.evaluate import end_to_end_scores, markdown_table
    from hiericd_core.files import atomic_write_json, atomic_write_text
    from hiericd_core.infer_dataset import add_phrase_memory, predict_dataset
    from hiericd_core.train import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-round", type=Path, default=ROOT / "data" / "codiesp" / "train")
    parser.add_argument("--dev-round", type=Path, default=ROOT / "data" / "codiesp" / "dev")
    parser.add_argument("--min-count", type=int, default=1, help="label space: codes seen this often in training")
    parser.add_argument("--config", type=Path, help="TrainConfig TOML for the model trained here")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", type=_model_arg,
                        help="score these trained model folders instead of training one (repeatable)")
    parser.add_argument("--dataset", type=Path, help="use this data set folder (split by round) instead of building")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--rules", default="", help="only the grid rules whose name contains one of these "
                                                    "comma-separated words (default: all)")
    args = parser.parse_args()

    catalog = Catalog.from_env(args.out / "home")
    merged = [pipeline.merge(path, catalog)["merged"] for path in (args.train_round, args.dev_round)]
    if args.dataset:
        dataset = args.dataset
    else:
        info = pipeline.datasets(merged, catalog, min_count=args.min_count, round_splits=ROUND_SPLITS)
        dataset = Path(info["path"])
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("split_mode") != "round":
        raise SystemExit(f"{dataset}: not split by round; build it with --split-by-round (see the README)")
    log(f"data set {dataset}: label space {manifest['label_space_size']} codes (min_count "
        f"{manifest['config']['min_count']})")

    models = dict(args.model)
    if not models:
        config = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
        started = time.perf_counter()
        pipeline.train(dataset, args.out / "model", config=config)
        log(f"trained in {time.perf_counter() - started:.0f} s")
        models = {"model": str(args.out / "model")}

    rows, results = [], {"dataset": str(dataset), "dataset_version": manifest["version"],
                         "label_space_size": manifest["label_space_size"], "models": {}}
    for name, model_dir in models.items():
        metrics = json.loads((Path(model_dir) / "metrics.json").read_text(encoding="utf-8"))
        grid_rows = []
        for fold in (True, False):
            memory = add_phrase_memory(model_dir, dataset, InferenceConfig(), merged_dirs=[merged[0]], fold=fold)
            for rule, (rule_fold, config) in GRID.items():
                wanted = [w for w in args.rules.split(",") if w]
                if rule_fold != fold or (wanted and not any(w in rule for w in wanted)):
                    continue
                started = time.perf_counter()
                predictions = predict_dataset(model_dir, dataset, "dev", threads=2, config=config)
                scores = end_to_end_scores(predictions.gold, predictions.codes, predictions.labels)
                grid_rows.append(row(f"{name}: {rule}", scores, {"rule": asdict(config), "fold": fold,
                                                                 "phrases": memory["phrases"],
                                                                 "seconds": time.perf_counter() - started}))
                log(f"{grid_rows[-1]['system']}: micro F1 {scores.micro.f1:.3f}")
        if not grid_rows:
            raise SystemExit(f"no rule of the grid matches --rules {args.rules!r}")
        best = max(grid_rows, key=lambda r: r["micro_f1"])
        add_phrase_memory(model_dir, dataset, InferenceConfig(**best["rule"]), merged_dirs=[merged[0]],
                          fold=best["fold"])
        results["models"][name] = {"dir": str(model_dir), "variant": metrics["variant"],
                                   "label_space_size": metrics["label_space_size"],
                                   "tagger_dev": metrics["tagger"]["best_dev"],
                                   "classifier_dev": metrics["classifier"]["best_dev"],
                                   "best_rule": best["system"], "grid": grid_rows}
        rows += grid_rows
    if not args.no_baselines:
        for system, result in run_baselines(dataset, "dev", merged_dirs=[merged[0]], tune_split="dev").items():
            m = result["metrics"]
            label = {"lr": "TF-IDF LR (cut tuned on dev)", "svm": "TF-IDF linear SVM (cut tuned on dev)",
                     "phrase_dictionary": "phrase dictionary", "majority": "majority code"}[system]
            rows.append({"system": label, "micro_precision": m["micro"]["precision"],
                         "micro_recall": m["micro"]["recall"], "micro_f1": m["micro"]["f1"],
                         "instance_f1": m["instance"]["f1"], "predicted_codes": m["predicted_codes"],
                         "cut": result.get("cut")})
    columns = ["system", "micro_precision", "micro_recall", "micro_f1", "instance_f1", "predicted_codes"]
    table = markdown_table([{c: r[c] for c in columns} for r in rows])
    results["rows"] = rows
    results["table"] = table
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "codiesp.md", table)
    atomic_write_json(args.out / "codiesp.json", results)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
