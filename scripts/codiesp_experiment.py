"""CodiEsp: everything chosen on the training round, dev reported once; an ablation; a final fit for use.

    python scripts/codiesp_experiment.py --out OUT --config configs/codiesp.toml [--final] [--seeds 13,14,15]

1. Builds the data set from ``data/codiesp/{train,dev}`` split by round (the
   ``train`` round is the train split, ``dev`` the dev split), in the catalog
   ``OUT/home``.
2. For each training setting of the ablation (the config as given, and the
   same with ``classifier_examples`` = ``"single"`` and ``"phrases"``):
   5-fold cross-validation over the training reports
   (:func:`hiericd_core.tune.cross_validate`) chooses the inference rule and
   the epochs; dev is not looked at. Then one model per seed is trained on
   the whole training split for those epochs (no early stopping) and
   scored on dev, once, with the chosen rule.
3. Ablation rows, each rule chosen by the same cross-validation from a part
   of the grid: phrase memory alone (exact matches); + loose matches (a
   known phrase's content words in any order); + sentence tagger (phrase
   matches limited by the tagger's focus sentences); + classifier (the
   paper's training rows); + every coded phrase as a classifier row.
4. The baselines, the LR/SVM cuts chosen by 5-fold cross-validation on train.
5. ``--final``: the kept setting (the ablation's setting with the best
   cross-validated micro F1, not the best on dev) trained on train + dev for the chosen
   epochs, with the chosen rule and the phrase memory of train + dev, left
   at ``OUT/final`` for ``hiericd predict OUT/final FOLDER --out predictions.tsv``.

Writes ``OUT/codiesp.json`` and ``OUT/codiesp.md`` (mean ± sd over the seeds,
micro P/R/F1, MAP and the CodiEsp script's MAP on dev).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUND_SPLITS = {"codiesp-train": "train", "codiesp-dev": "dev"}
NEVER = 1.0  # a rule whose classifier cut is above this uses no classifier codes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def memory_alone(rule: dict) -> bool:
    """Phrase memory only, exact matches: no classifier code, no fallback, the tagger not consulted."""
    return memory_loose(rule) and not rule["phrase_loose"]


def memory_loose(rule: dict) -> bool:
    """Phrase memory only, loose matches allowed: no classifier code, no fallback, the tagger not consulted."""
    return (rule["phrase_memory"] == "report" and rule["min_probability"] > NEVER and not rule["fallback"]
            and rule["phrase_focus_below"] == 0.0)


def memory_and_tagger(rule: dict) -> bool:
    """Phrase memory, possibly limited by the tagger's focus sentences; no classifier code."""
    return rule["phrase_memory"] != "off" and rule["min_probability"] > NEVER and not rule["fallback"]


def best(tuning: dict, keep=lambda rule: True) -> dict:
    rows = [r for r in tuning["rules"] if keep(r["config"])]
    return max(rows, key=lambda r: r["micro_f1"])  # the first of equal rows: grid order


def score(model_dir: Path, dataset: Path, rule: dict, fold: bool, merged_train: Path, memo=None) -> dict:
    """Dev scores of a model folder under one rule (its phrase memory rebuilt with ``fold``).

    ``memo`` (a dict) carries the networks' outputs from one rule to the next of the same model folder.
    """
    from hiericd_core.evaluate import end_to_end_scores
    from hiericd_core.infer import InferenceConfig, Predictor
    from hiericd_core.infer_dataset import add_phrase_memory, predict_dataset
    from hiericd_core.tune import NetworkMemo

    config = InferenceConfig.from_dict(rule)
    add_phrase_memory(model_dir, dataset, config, merged_dirs=[merged_train], fold=fold)
    predictor = Predictor.load(model_dir, threads=2, config=config)
    if memo is not None:
        if "memo" in memo:
            memo["memo"].attach(predictor)
        else:
            memo["memo"] = NetworkMemo(predictor)
    p = predict_dataset(model_dir, dataset, "dev", predictor=predictor)
    s = end_to_end_scores(p.gold, p.codes, p.labels, ranked=p.ranked)
    return {"micro_precision": s.micro.precision, "micro_recall": s.micro.recall, "micro_f1": s.micro.f1,
            "map": s.map, "map_codiesp": s.map_codiesp}


METRICS = ("micro_precision", "micro_recall", "micro_f1", "map", "map_codiesp")


def summarise(system: str, runs: list[dict], extra: dict | None = None) -> dict:
    row = {"system": system, "seeds": len(runs), **(extra or {})}
    for key in METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        row[key] = statistics.mean(values) if values else None
        row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return row


def cell(row: dict, key: str) -> str:
    if row.get(key) is None:
        return "–"
    return f"{row[key]:.3f} ± {row[f'{key}_sd']:.3f}" if row["seeds"] > 1 else f"{row[key]:.3f}"


def main() -> int:
    from hiericd_core import pipeline
    from hiericd_core.baselines import run_baselines
    from hiericd_core.catalog import Catalog
    from hiericd_core.files import atomic_write_json, atomic_write_text
    from hiericd_core.train import TrainConfig
    from hiericd_core.tune import cross_validate, fit_final

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-round", type=Path, default=ROOT / "data" / "codiesp" / "train")
    parser.add_argument("--dev-round", type=Path, default=ROOT / "data" / "codiesp" / "dev")
    parser.add_argument("--min-count", type=int, default=1, help="label space: codes seen this often in training")
    parser.add_argument("--config", type=Path, help="TrainConfig TOML (the kept setting)")
    parser.add_argument("--seeds", default="13,14,15", help="comma-separated training seeds")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-ablation", action="store_true", help="only the config as given (no single/phrases "
                                                                   "comparison)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--final", action="store_true", help="also fit the kept setting on train + dev → OUT/final")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    catalog = Catalog.from_env(args.out / "home")
    merged = [Path(pipeline.merge(path, catalog)["merged"]) for path in (args.train_round, args.dev_round)]
    info = pipeline.datasets(merged, catalog, min_count=args.min_count, round_splits=ROUND_SPLITS)
    dataset = Path(info["path"])
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    log(f"data set {dataset}: label space {manifest['label_space_size']} codes")

    kept = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    settings = {kept.classifier_examples: kept}
    if not args.no_ablation:
        for examples in ("single", "phrases"):
            settings.setdefault(examples, replace(kept, classifier_examples=examples))
    results: dict = {"dataset": str(dataset), "dataset_version": manifest["version"], "seeds": seeds,
                     "folds": args.folds, "settings": {}}
    rows: list[dict] = []
    for examples, config in sorted(settings.items(), key=lambda kv: kv[0] != "single"):
        clock = time.perf_counter()
        tuning = cross_validate(dataset, args.out / f"cv-{examples}", config, folds=args.folds,
                                merged_dirs=[merged[0]], progress=False)
        atomic_write_json(args.out / f"cv-{examples}" / "tuning.json", tuning)
        log(f"{examples}: cross-validated rule {tuning['best']['rule']!r} (micro F1 {tuning['best']['micro_f1']:.3f}), "
            f"epochs {tuning['epochs']} in {time.perf_counter() - clock:.0f} s")
        picks = {"full": tuning["best"]}
        if examples == "single":
            picks["memory"] = best(tuning, memory_alone)
            picks["loose"] = best(tuning, memory_loose)
            picks["tagger"] = best(tuning, memory_and_tagger)
        runs: dict[str, list[dict]] = {k: [] for k in picks}
        for seed in seeds:
            model_dir = args.out / f"model-{examples}-{seed}"
            fit_final(dataset, model_dir, replace(config, seed=seed), tuning, splits=("train",),
                      merged_dirs=[merged[0]])
            memo: dict = {}
            for key, pick in sorted(picks.items(), key=lambda kv: kv[0] == "full"):  # the kept rule last
                runs[key].append(score(model_dir, dataset, pick["config"], pick["fold"], merged[0], memo))
                log(f"{examples} seed {seed} {key}: {runs[key][-1]}")
        results["settings"][examples] = {"tuning_best": tuning["best"], "epochs": tuning["epochs"],
                                         "picks": {k: v["rule"] for k, v in picks.items()}, "runs": runs}
        names = {"memory": "phrase memory alone (exact matches)", "loose": "+ loose matches (content words, any order)",
                 "tagger": "+ sentence tagger",
                 "full": "+ classifier (paper's rows: single-code sentences)" if examples == "single"
                 else "+ classifier trained on every coded phrase"}
        for key in ("memory", "loose", "tagger", "full"):
            if key in runs:
                rows.append(summarise(names[key], runs[key], {"rule": picks[key]["rule"],
                                                              "cv_micro_f1": picks[key]["micro_f1"]}))
    if not args.no_baselines:
        for system, result in run_baselines(dataset, "dev", merged_dirs=[merged[0]], tune_split="cv").items():
            m = result["metrics"]
            label = {"lr": "TF-IDF LR (cut by CV on train)", "svm": "TF-IDF linear SVM (cut by CV on train)",
                     "phrase_dictionary": "phrase dictionary baseline", "majority": "majority code"}[system]
            rows.append(summarise(label, [{"micro_precision": m["micro"]["precision"],
                                           "micro_recall": m["micro"]["recall"], "micro_f1": m["micro"]["f1"],
                                           "map": m.get("map"), "map_codiesp": m.get("map_codiesp")}],
                                  {"rule": f"cut {result.get('cut')}" if result.get("cut") is not None else ""}))
    header = ("| system (dev, chosen without dev) | rule chosen by CV | micro P | micro R | micro F1 | MAP | "
              "MAP (CodiEsp script) |\n|---|---|---:|---:|---:|---:|---:|\n")
    table = header + "".join(f"| {r['system']} | {r.get('rule', '')} | " + " | ".join(cell(r, k) for k in METRICS)
                             + " |\n" for r in rows)
    results["rows"] = rows
    results["table"] = table
    # the setting kept for use: the best cross-validated one (train only), not the best on dev
    kept_examples = max(results["settings"], key=lambda k: results["settings"][k]["tuning_best"]["micro_f1"])
    results["kept"] = kept_examples
    log(f"kept: classifier_examples = {kept_examples!r} (best cross-validated micro F1)")
    if args.final:
        chosen = json.loads((args.out / f"cv-{kept_examples}" / "tuning.json").read_text(encoding="utf-8"))
        final = fit_final(dataset, args.out / "final", settings[kept_examples], chosen, splits=("train", "dev"),
                          merged_dirs=merged)
        results["final"] = {"dir": str(args.out / "final"), "rule": final["tuning"]["rule"],
                            "phrases": final["tuning"]["phrases"], "trained_on": final["trained_on"]}
        log(f"final model → {args.out / 'final'} (train + dev, rule {final['tuning']['rule']!r})")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "codiesp.md", table)
    atomic_write_json(args.out / "codiesp.json", results)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
