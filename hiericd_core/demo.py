"""``make demo``: run hiericd on embedded defaults and say where everything is.

Generates a synthetic coding round (or takes ``--round PATH``), copies it into
the catalog, validates it, merges the coders' annotations, measures agreement,
writes the data-quality report, builds the data sets, trains the two-level
model (few epochs: a demo, not a benchmark) and evaluates it beside the
baselines, then prints where each output is with the headline numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hiericd_core.catalog import Catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hiericd_core.demo", description=__doc__)
    parser.add_argument("--reports", type=int, default=2000, help="size of the synthetic round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--round", type=Path, default=None, help="run on this round instead of a synthetic one")
    parser.add_argument("--min-count", type=int, default=10, help="label space: codes seen this often in training")
    parser.add_argument("--no-train", action="store_true", help="stop after the data sets")
    parser.add_argument("--epochs", type=int, default=12, help="epoch cap of each model in the demo")
    args = parser.parse_args(argv)

    from hiericd_core import pipeline
    from hiericd_core.datasets import DatasetError
    from hiericd_core.rounds import RoundError, load_round
    from hiericd_core.validation import ValidationError

    console = Console()
    catalog = Catalog.from_env().ensure()
    started = time.perf_counter()
    try:
        if args.round is None:
            from hiericd_core.synth import SynthConfig, generate_round

            console.print(f"[bold]1. generate[/] a synthetic round of {args.reports} reports (seed {args.seed})")
            with tempfile.TemporaryDirectory(dir=catalog.root) as tmp:
                source = Path(tmp) / "round"
                # a few disputed reports still wait for the senior, so the adjudication queue shows
                generate_round(source, args.reports, args.seed, SynthConfig(senior_backlog_rate=0.01),
                               progress=True)
                round_path = pipeline.ingest(source, catalog)
        else:
            console.print(f"[bold]1. ingest[/] the round at {args.round}")
            round_path = pipeline.ingest(args.round, catalog)

        console.print("[bold]2. validate[/] layout, BRAT files, codes, metadata")
        summary = load_round(round_path).summary()
        _table(console, f"round {summary['round_id']}", {k: summary[k] for k in (
            "path", "layout", "language", "reports", "coders", "annotations_per_coder", "distinct_codes",
            "senior_adjudicated_reports", "has_reason_for_visit", "quarantined")})
        for message in summary["problems"][:10]:
            console.print(f"  [yellow]quarantined[/] {message}", highlight=False, soft_wrap=True)

        console.print("[bold]3. merge[/] coders' annotations, senior decides disputes")
        merged = pipeline.merge(round_path, catalog)
        console.print("[bold]4. agreement[/] and data-quality report")
        assessed = pipeline.assess(round_path, catalog)
        console.print("[bold]5. data sets[/] sentence- and report-level Parquet")
        built = pipeline.datasets([merged["merged"]], catalog, min_count=args.min_count, progress=True)
        model = evaluation = None
        if not args.no_train:
            from hiericd_core.train import TrainConfig, TrainError

            console.print(f"[bold]6. train[/] sentence tagger + ICD classifier (≤ {args.epochs} epochs each)")
            model_dir = catalog.model(f"demo-{built['version']}")
            try:
                model = pipeline.train(built["path"], model_dir, progress=True, config=TrainConfig(
                    tagger_epochs=args.epochs, classifier_epochs=args.epochs, patience=3))
            except TrainError as exc:
                console.print(f"[yellow]no model:[/] {exc}", highlight=False, soft_wrap=True)
            if model is not None:
                console.print("[bold]7. evaluate[/] on the test split, baselines side by side")
                evaluation = pipeline.evaluate_model(model_dir, built["path"], "test")
    except (RoundError, DatasetError, ValidationError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2

    import json

    manifest = json.loads(Path(built["manifest"]).read_text())
    kappa = assessed["headline_kappa"]
    _table(console, "where things are", {
        "catalog (HIERICD_HOME)": catalog.root,
        "round": round_path,
        "merged annotations": merged["merged"],
        "adjudication queue": merged["queue"] or "none (nothing pending)",
        "data-quality report": assessed["report"],
        "data set": f"{built['path']} (version {built['version']})",
        "GX Data Docs": built["data_docs"],
        "model": model["model"] if model else "not trained",
        "evaluation": f"{model['model']}/evaluation-test.md" if evaluation else "–",
    })
    _table(console, "headline numbers", {
        "mean pairwise kappa (report × code)": "needs two coders per report" if kappa is None else f"{kappa:.3f}",
        "pending reports": merged["pending"],
        "final annotations": merged["summary"]["final_annotations"]["total"],
        "train/dev/test reports": "/".join(str(manifest["splits"][s]["reports"]) for s in ("train", "dev", "test")),
        "label space (codes)": manifest["label_space_size"],
    })
    if evaluation:
        console.print("end to end on the test split (all gold codes):")
        print(evaluation["table"])
    console.print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _table(console: Console, title: str, rows: dict) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(str(key), str(value))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
