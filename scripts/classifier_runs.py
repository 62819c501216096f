"""Train only the ICD classifier of a model folder again, with changed settings; gather such runs in a table.

    python scripts/classifier_runs.py retrain SOURCE OUT [--set KEY=VALUE ...] [--split test]
    python scripts/classifier_runs.py gather OUT FOLDER [FOLDER ...]

``retrain`` copies the model folder SOURCE (from ``hiericd train`` or
``hiericd ablation``) to OUT, applies the settings (values in JSON:
``--set lambda_att=10 --set seed=2 --set classifier_bidirectional=false``),
trains the classifier stage again on the data set SOURCE was trained on —
same vocabulary, word vectors and sentence tagger — and writes
``OUT/score.json`` (classifier, end-to-end and evidence figures on the split).
A classifier setting SOURCE's ``train_config.json`` does not record (a folder
trained before it existed) takes today's default, and a note says so.
``gather`` writes ``ablation.json``/``.md``/``.png`` into OUT from such
folders, in the order given. ``docs/experiments.md`` made its λ, seed and
encoder comparisons this way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hiericd_core.ablation import AblationError, gather_runs, retrain_classifier  # noqa: E402
from hiericd_core.train import TrainError  # noqa: E402


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE, e.g. lambda_att=10")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value  # a bare string such as device=cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    retrain = sub.add_parser("retrain", help="copy a model folder and train its classifier again")
    retrain.add_argument("source", type=Path)
    retrain.add_argument("out", type=Path)
    retrain.add_argument("--set", dest="changes", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    retrain.add_argument("--split", default="test")
    gather = sub.add_parser("gather", help="one ablation table and plot from retrained folders")
    gather.add_argument("out", type=Path)
    gather.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "retrain":
            result = retrain_classifier(args.source, args.out, dict(args.changes), args.split)
            for name, value in result["defaulted"].items():
                print(f"note: {args.source} does not record {name}; today's default {json.dumps(value)} was used "
                      f"(--set {name}=... to train as that folder was)", file=sys.stderr)
            print(json.dumps({k: v for k, v in result.items() if k != "score"}, indent=1))
            print(json.dumps(result["score"], indent=1))
        else:
            print(gather_runs(args.folders, args.out)["table"])
    except (AblationError, TrainError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
