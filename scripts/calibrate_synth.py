#!/usr/bin/env python
"""Check that a synthetic round looks like the paper's data.

Generates a round with :func:`hiericd_core.synth.generate_round` into a
temporary folder and prints:

* pairwise Cohen's kappa of the coders (report × code presence, flattened,
  with ``sklearn.metrics.cohen_kappa_score``; and the per-code average);
* code statistics (distinct codes, codes with ≥ 10 reports in a 70% split,
  share of one-code reports, most codes in a report, share of focus
  sentences with two codes, share of discontinuous evidence);
* a report-level baseline: TF-IDF (1–3-grams) + one-vs-rest logistic
  regression on the report text, labels from ``truth/`` (codes with ≥ 10
  training reports), subset accuracy on a 15% test split counting the test
  reports' full truth code sets (a report whose rare code is outside the
  label space cannot be right, as in the paper).

Every figure is compared with the target ranges of :class:`SynthConfig`;
the exit status is 1 when one misses. ``--results`` writes the numbers as JSON.

Usage::

    python scripts/calibrate_synth.py --reports 39000 --seed 0 --results scripts/calibration_results.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hiericd_core import synth  # noqa: E402


def read_round(round_dir: Path) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Return report ids, texts and truth codes (distinct, file order) of a round."""
    ids = sorted(p.stem for p in (round_dir / "texts").glob("*.txt"))
    texts = {rid: (round_dir / "texts" / f"{rid}.txt").read_text(encoding="utf-8") for rid in ids}
    truth = {rid: list(dict.fromkeys(synth.read_ann_codes(round_dir / "truth" / f"{rid}.ann"))) for rid in ids}
    return ids, texts, truth


def sklearn_kappas(round_dir: Path) -> dict[str, float]:
    """Flattened report × code kappa per coder pair, computed with scikit-learn."""
    from sklearn.metrics import cohen_kappa_score

    coders = sorted(p.name for p in (round_dir / "coders").iterdir() if p.is_dir())
    sets = {c: {p.stem: set(synth.read_ann_codes(p)) for p in (round_dir / "coders" / c).glob("*.ann")}
            for c in coders}
    vocab = sorted({code for c in coders for s in sets[c].values() for code in s})
    index = {code: i for i, code in enumerate(vocab)}
    out = {}
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            shared = sorted(set(sets[a]) & set(sets[b]))
            ma = np.zeros((len(shared), len(vocab)), dtype=np.int8)
            mb = np.zeros_like(ma)
            for r, rid in enumerate(shared):
                ma[r, [index[c] for c in sets[a][rid]]] = 1
                mb[r, [index[c] for c in sets[b][rid]]] = 1
            out[f"{a}-{b}"] = float(cohen_kappa_score(ma.ravel(), mb.ravel()))
    return out


def split(ids: list[str], seed: int) -> tuple[list[str], list[str], list[str]]:
    """70/15/15 split of the report ids (seeded permutation)."""
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val = int(0.7 * len(ids)), int(0.15 * len(ids))
    pick = [ids[i] for i in order]
    return pick[:n_train], pick[n_train:n_train + n_val], pick[n_train + n_val:]


def lr_baseline(texts: dict[str, str], truth: dict[str, list[str]], train: list[str], test: list[str],
                min_count: int, c_value: float, jobs: int) -> dict[str, float]:
    """Train TF-IDF + one-vs-rest LR on ``train`` and return subset accuracy on ``test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    counts = Counter(code for rid in train for code in truth[rid])
    labels = sorted(code for code, n in counts.items() if n >= min_count)
    label_set = set(labels)
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 3), min_df=3, max_df=0.3, max_features=300_000,
                                 sublinear_tf=True, dtype=np.float32)
    x_train = vectorizer.fit_transform([texts[r] for r in train])
    x_test = vectorizer.transform([texts[r] for r in test])
    binarizer = MultiLabelBinarizer(classes=labels)
    y_train = binarizer.fit_transform([[c for c in truth[r] if c in label_set] for r in train])
    x_train = x_train.astype(np.float64)  # the solver's dtype: converted once, not once per label
    x_train.sort_indices()  # joblib hands the workers read-only copies; they must not sort
    # lbfgs: same objective as liblinear, about 3x faster here (about 0.3 s per label)
    model = OneVsRestClassifier(LogisticRegression(solver="lbfgs", C=c_value, max_iter=300), n_jobs=jobs)
    model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    predicted = proba >= 0.5
    empty = ~predicted.any(axis=1)
    predicted[empty, proba[empty].argmax(axis=1)] = True  # every report gets at least one code
    classes = np.array(labels)
    hits = sum(set(classes[row]) == set(truth[rid]) for row, rid in zip(predicted, test, strict=True))
    coverable = sum(set(truth[rid]) <= label_set for rid in test)
    return {
        "subset_accuracy": hits / len(test),
        "label_space": len(labels),
        "test_reports": len(test),
        "test_reports_within_label_space": coverable / len(test),
        "features": x_train.shape[1],
        "seconds": round(time.perf_counter() - started, 1),
    }


def within(value: float, bounds) -> bool:
    return bounds[0] <= value <= bounds[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=39000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the round here instead of a temporary folder")
    parser.add_argument("--results", type=Path, help="write the numbers to this JSON file")
    parser.add_argument("--no-lr", action="store_true", help="skip the logistic-regression baseline")
    parser.add_argument("--lr-c", type=float, default=4.0, help="inverse regularisation of the baseline")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    config = synth.SynthConfig()

    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        out = args.out or Path(tmp) / "round"
        summary = synth.generate_round(out, args.reports, args.seed, config, progress=True)
        rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"generated {summary.reports} reports in {summary.seconds:.1f} s "
              f"(peak RSS {rss_self:.0f} MiB, largest worker {rss_children:.0f} MiB)")

        flat = sklearn_kappas(out)
        ours = synth.coder_kappas(out)
        print("\ncoder agreement (Cohen's kappa, report x code presence)")
        for pair, value in flat.items():
            print(f"  {pair}: flattened {value:.3f}   per-code mean {ours[pair]['per_code']:.3f}   "
                  f"({int(ours[pair]['reports'])} shared reports)")

        ids, texts, truth = read_round(out)
        train, val, test = split(ids, args.seed)
        train_counts = Counter(code for rid in train for code in truth[rid])
        per_report = [len(truth[rid]) for rid in ids]
        stats = {
            "reports": len(ids),
            "distinct_codes": len({c for codes in truth.values() for c in codes}),
            "codes_ge10_in_70pct_split": sum(1 for n in train_counts.values() if n >= 10),
            "one_code_report_share": sum(1 for n in per_report if n == 1) / len(ids),
            "max_codes_per_report": max(per_report),
            "two_code_focus_sentence_share": summary.two_code_focus_sentences / summary.focus_sentences,
            "discontinuous_share": summary.discontinuous_annotations / summary.truth_annotations,
            "rfv_dependent_share": summary.rfv_dependent_annotations / summary.truth_annotations,
            "senior_report_share": summary.senior_reports / summary.reports,
            "sentences_per_report": [summary.sentences_min, summary.sentences_max],
        }
        print("\ncode statistics")
        for key, value in stats.items():
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")

        lr = None
        if not args.no_lr:
            lr = lr_baseline(texts, truth, train, test, 10, args.lr_c, args.jobs)
            print("\nbaseline: TF-IDF 1-3-grams + one-vs-rest logistic regression (report text)")
            for key, value in lr.items():
                print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")

    checks = {
        "kappa_flat_all_pairs": all(within(v, config.kappa_target) for v in flat.values()),
        "distinct_codes": within(stats["distinct_codes"], config.distinct_codes_target),
        "codes_ge10": within(stats["codes_ge10_in_70pct_split"], config.frequent_codes_target),
        "one_code_share": within(stats["one_code_report_share"], config.one_code_share_target),
        "max_codes_8": stats["max_codes_per_report"] <= len(config.codes_per_report),
        "two_code_sentences_present": stats["two_code_focus_sentence_share"] > 0,
        "discontinuous_present": stats["discontinuous_share"] > 0,
        "sentences_5_30": config.min_sentences <= summary.sentences_min
        and summary.sentences_max <= config.max_sentences,
    }
    if lr is not None:
        checks["lr_subset_accuracy"] = within(lr["subset_accuracy"], config.lr_accuracy_target)
    print("\ntargets")
    for key, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {key}")

    if args.results:
        results = {
            "command": f"python scripts/calibrate_synth.py --reports {args.reports} --seed {args.seed}",
            "generation": {"reports": summary.reports, "seconds": summary.seconds,
                           "peak_rss_mib": round(max(rss_self, rss_children)),
                           "senior_reports": summary.senior_reports,
                           "annotations_per_coder": summary.annotations_per_coder},
            "kappa_flattened": {k: round(v, 4) for k, v in flat.items()},
            "kappa_per_code_mean": {k: round(v["per_code"], 4) for k, v in ours.items()},
            "code_statistics": {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()},
            "lr_baseline": None if lr is None else {k: round(v, 4) if isinstance(v, float) else v
                                                     for k, v in lr.items()},
            "targets": {"kappa": list(config.kappa_target), "lr_subset_accuracy": list(config.lr_accuracy_target),
                        "distinct_codes": list(config.distinct_codes_target),
                        "codes_ge10_in_70pct_split": list(config.frequent_codes_target),
                        "one_code_report_share": list(config.one_code_share_target)},
            "checks": checks,
        }
        args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.results}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
