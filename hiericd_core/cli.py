"""The ``hiericd`` command: one sub-command per pipeline step, no logic of its own."""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="hiericd: from medical coders' BRAT rounds to hierarchical ICD-10 coding models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err = Console(stderr=True)


class UserError(Exception):
    """A mistake the user can fix; printed as one message, no traceback."""


def user_errors(func):
    """Turn the library's user-facing errors into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        from hiericd_core.brat import BratError
        from hiericd_core.rounds import RoundError

        try:
            return func(*args, **kwargs)
        except (UserError, RoundError, BratError, FileNotFoundError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def paths(home: Annotated[Path | None, typer.Option(help="catalog root (default $HIERICD_HOME or ./var)")] = None):
    """Print where hiericd keeps rounds, data sets, reports, models and stores."""
    from hiericd_core.catalog import Catalog

    cat = Catalog.from_env(home)
    for name, value in [("root", cat.root), ("rounds", cat.rounds), ("datasets", cat.datasets),
                        ("models", cat.models), ("mlflow", cat.mlflow_tracking_uri),
                        ("airflow", cat.airflow_home)]:
        print(f"{name:<9}{value}")


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Option("--out", help="folder to write the round into")],
    reports: Annotated[int, typer.Option("--reports", min=1, help="number of reports")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same bytes)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
):
    """Generate a realistic synthetic coding round (2 of 3 coders per report, senior, truth)."""
    from hiericd_core.synth import generate_round

    summary = generate_round(out, reports, seed, progress=sys.stderr.isatty())
    data = summary.to_dict()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    _print_mapping(f"synthetic round in {out}", data)


@app.command("brat-stats")
@user_errors
def brat_stats(
    folder: Annotated[Path, typer.Argument(help="folder tree of BRAT documents (.txt + .ann)")],
    as_json: Annotated[bool, typer.Option("--json", help="print counts and problems as JSON")] = False,
):
    """Count documents, entities, notes, … in a BRAT folder tree and list every problem."""
    from hiericd_core.bratstats import brat_stats as compute

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    stats = compute(folder, progress=not as_json and sys.stderr.isatty())
    data = stats.to_dict()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return
    problems = data.pop("problems")
    _print_mapping(f"BRAT documents under {folder}", data)
    _print_problems(problems)


@app.command()
@user_errors
def validate(
    round_path: Annotated[Path, typer.Argument(metavar="ROUND", help="round folder or plain BRAT folder")],
    language: Annotated[str | None, typer.Option(help="override round.toml's language")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
):
    """Load a round, check its layout, BRAT files, codes and metadata; list what is quarantined."""
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path, language=language, progress=not as_json and sys.stderr.isatty())
    data = loaded.summary()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return
    problems = data.pop("problems")
    _print_mapping(f"round {loaded.id}", data)
    _print_problems([{"file": m, "line": None, "reason": ""} for m in problems])


def _print_mapping(title: str, data: dict) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(str(key), str(value))
    console.print(table)


def _print_problems(problems: list[dict]) -> None:
    if not problems:
        console.print("[green]no problems[/]")
        return
    console.print(f"[yellow]{len(problems)} problem(s), quarantined:[/]")
    for p in problems:
        line = f":{p['line']}" if p.get("line") else ""
        reason = f": {p['reason']}" if p.get("reason") else ""
        console.print(f"  {p['file']}{line}{reason}", highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - console entry point
    app()
