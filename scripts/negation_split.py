"""Classifier accuracy on focus sentences with and without a negated disease, per model.

    python scripts/negation_split.py DATASET --model NAME=MODEL_DIR [--model ...] [--split test] [--out FILE.json]

For a round made with ``hiericd synth --focus-negation R``: the data set's
classifier rows (single-code focus sentences) are split by whether the
sentence holds one of the generator's negation clauses after its phrase
("; negative for ...", "; no evidence of ...", ", without ...", "; no ...
identified", "; ... is not identified"); for each model it gives the accuracy
on both groups and the mean attention weight after the coders' phrase on the
sentences with a negation (where the negated disease is).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: the clause ends the sentence, and the negated name has no comma (a coded phrase such as
#: "gastroduodenitis, unspecified, without bleeding, moderate." does not match)
NEGATION = re.compile(r"(?:; negative for |, negative for |; no evidence of |, without |; no |; )[^;,]+?"
                      r"(?<!identified)(?: identified| is not identified)?\.$")


def split_scores(dataset: Path, models: dict[str, Path], split: str = "test") -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from hiericd_core.infer import Predictor

    rows = pq.read_table(dataset / "sentences.parquet", filters=[("split", "=", split), ("classifier_row", "=", True)],
                         columns=["report_id", "text", "tokens", "codes", "attention_mask"]).to_pydict()
    reports = pq.read_table(dataset / "reports.parquet", filters=[("split", "=", split)],
                            columns=["report_id", "r4v_tokens"]).to_pydict()
    r4v = dict(zip(reports["report_id"], reports["r4v_tokens"], strict=True))
    negated = np.array([bool(NEGATION.search(text)) for text in rows["text"]])
    gold = np.array([codes[0] for codes in rows["codes"]])
    reasons = [r4v.get(rid) or [] for rid in rows["report_id"]]
    # where each sentence's phrase ends (past its last mask token); None: no phrase token
    phrase_end = [int(np.flatnonzero(mask).max()) + 1 if any(mask) else None for mask in rows["attention_mask"]]
    out: dict = {"rows": len(gold), "with_negation": int(negated.sum()), "models": {}}
    for name, folder in models.items():
        predictor = Predictor.load(folder, threads=1)
        probs, alphas = predictor.classify(rows["tokens"], reasons, 128)
        right = np.array([predictor.labels[k] for k in probs.argmax(1)]) == gold
        # a phrase cut off by the model's token cap leaves nothing after it (alpha[end:] is empty)
        after = np.array([float(np.asarray(alpha)[end:].sum()) if end is not None else 0.0
                          for alpha, end in zip(alphas, phrase_end, strict=True)])
        out["models"][name] = {
            "accuracy_with_negation": float(right[negated].mean()) if negated.any() else None,
            "accuracy_without": float(right[~negated].mean()) if (~negated).any() else None,
            "attention_after_phrase_with_negation": float(after[negated].mean()) if negated.any() else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    models = {}
    for item in args.model:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            print(f"error: --model {item!r}: give NAME=DIR with an existing model folder", file=sys.stderr)
            return 2
        models[name] = Path(folder)
    if not (args.dataset / "sentences.parquet").is_file():
        print(f"error: {args.dataset}: no sentences.parquet (not a data set folder)", file=sys.stderr)
        return 2
    result = split_scores(args.dataset, models, args.split)
    text = json.dumps(result, indent=1)
    if args.out:
        from hiericd_core.files import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
