"""``make demo``: run hiericd on embedded defaults and say where everything is.

Today the demo generates a synthetic coding round into the catalog (or takes
the round given with ``--round``), loads and validates it, and prints its
summary. Later pipeline steps extend it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hiericd_core.catalog import Catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hiericd_core.demo", description=__doc__)
    parser.add_argument("--reports", type=int, default=400, help="size of the synthetic round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--round", type=Path, default=None, help="run on this round instead of a synthetic one")
    args = parser.parse_args(argv)

    console = Console()
    catalog = Catalog.from_env().ensure()
    started = time.perf_counter()

    from hiericd_core.rounds import RoundError, load_round

    if args.round is None:
        from hiericd_core.synth import generate_round

        target = catalog.round(f"synth-{args.seed}-{args.reports}")
        if target.exists():
            shutil.rmtree(target)
        console.print(f"[bold]1.[/] generating a synthetic round of {args.reports} reports → {target}")
        generate_round(target, args.reports, args.seed, progress=True)
        round_path = target
    else:
        round_path = args.round
        console.print(f"[bold]1.[/] using the round at {round_path}")

    console.print("[bold]2.[/] loading and validating the round")
    try:
        loaded = load_round(round_path, progress=True)
    except RoundError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    summary = loaded.summary()
    table = Table(title=f"round {loaded.id}", show_header=False)
    for key in ("path", "layout", "language", "reports", "coders", "reports_by_coder_count",
                "annotations_per_coder", "distinct_codes", "senior_adjudicated_reports",
                "has_reason_for_visit", "quarantined"):
        table.add_row(key, str(summary[key]))
    console.print(table)
    for message in summary["problems"][:20]:
        console.print(f"  [yellow]quarantined[/] {message}", highlight=False)
    if len(summary["problems"]) > 20:
        console.print(f"  … and {len(summary['problems']) - 20} more (hiericd validate {round_path})")

    console.print(f"\ncatalog root: {catalog.root}")
    console.print(f"round:        {round_path}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
