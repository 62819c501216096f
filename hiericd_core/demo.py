"""``make demo``: run hiericd's three Airflow DAGs on embedded defaults and say where everything is.

Generates a synthetic coding round (or takes ``--round PATH``) and runs it
through Airflow as the scheduler would chain the DAGs: ``hiericd_round``
(ingest, validate, merge, agreement + data-quality report, data sets behind
the Great Expectations gate), ``hiericd_train`` (word vectors, tagger and
classifier, evaluation beside the baselines, MLflow run registered as
``challenger``) and ``hiericd_promote`` (the promotion gate). Then a second
round arrives (``--second-round PATH``, or a second synthetic round when the
first was synthetic) and the demo shows the retraining and the gate's decision.

Airflow runs embedded: sqlite metadata DB under ``$HIERICD_HOME/airflow``, each
DAG run by ``airflow dags test`` in its own process (its log goes to
``$HIERICD_HOME/airflow/demo-logs/``), MLflow in ``$HIERICD_HOME/mlflow``. A
DAG run records the assets it emits but does not start the DAGs scheduled on
them (those start paused), so the demo starts each one with the data set the
previous one built. The models train with ``configs/demo.toml`` (early
stopping on the dev split, word vectors from ``data/demo/vectors.bin``, made by
``scripts/demo_vectors.py`` from a synthetic round the demo never sees; a
round of yours trains its own) and face the registry's default gate, the rule
that they beat the LR baseline included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hiericd_core.catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
# the demo's training settings; the DAG run reads the file (a relative vectors_path is taken from its folder)
TRAIN_CONFIG = REPO / "configs" / "demo.toml"


ROUND = "ingest → validate → merge ∥ agreement + report → data sets (GX gate)"
TRAIN = ("word vectors → tagger ∥ classifier → inference rule by cross-validation → evaluation beside the "
         "baselines → MLflow challenger")


class DemoError(Exception):
    """A step of the demo failed; the message says which and where its log is."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hiericd_core.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=2000, help="size of the synthetic round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--round", type=Path, default=None, help="run on this round instead of a synthetic one")
    parser.add_argument("--second-round", type=Path, default=None,
                        help="the round that arrives next (default: a synthetic one after a synthetic first round)")
    parser.add_argument("--second-reports", type=int, default=None,
                        help="size of the second synthetic round (default: a quarter of the first)")
    parser.add_argument("--one-round", action="store_true", help="stop after the first round's promotion")
    # 3, not the data sets' default 10: at 2,000 reports codes seen 10 times are a quarter of those seen
    # 3 times and cover 57% of the dev split's codes, against 72% (README, "make demo")
    parser.add_argument("--min-count", type=int, default=3, help="label space: codes seen this often in training")
    parser.add_argument("--no-train", action="store_true", help="stop after the round DAG (data sets)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epoch cap of each model (default: {TRAIN_CONFIG.relative_to(REPO)}'s)")
    args = parser.parse_args(argv)

    console = Console()
    catalog = Catalog.from_env().ensure()
    started = time.perf_counter()
    demo = Demo(catalog, console)
    config: dict = {} if args.epochs is None else {"tagger_epochs": args.epochs, "classifier_epochs": args.epochs}
    if args.round is not None:  # the shipped vectors know the synthetic rounds' words: a round of yours trains its own
        config["vectors_path"] = None
    try:
        if args.round is not None:
            _check_round(args.round)
        if args.second_round is not None:
            _check_round(args.second_round)
        demo.start_airflow()
        first = demo.round(args.round, args.reports, args.seed, args.min_count, "first")
        if args.no_train:
            demo.print_round(first)
            console.print(f"done in {time.perf_counter() - started:.1f} s")
            return 0
        trained = demo.train(first, config)
        decision = demo.promote(first)
        demo.print_round(first, trained, decision)
        second = None
        if not args.one_round and (args.second_round is not None or args.round is None):
            n = args.second_reports or max(args.reports // 4, 100)
            console.rule("[bold]a second round arrives")
            # new reports, numbered after the first round's: the data set then holds both rounds
            second = demo.round(args.second_round, n, args.seed + 1, args.min_count, "second",
                                first_report=args.reports + 1)
            trained2 = demo.train(second, config)
            decision2 = demo.promote(second)
            demo.print_round(second, trained2, decision2)
    except DemoError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    demo.print_registry()
    console.print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _check_round(path: Path) -> None:
    """Fail early, with the reader's message, on a folder that is not a round."""
    from hiericd_core.rounds import RoundError, load_round

    try:
        load_round(path)
    except RoundError as exc:
        raise DemoError(str(exc)) from exc


class Demo:
    """Runs the DAGs with ``airflow dags test`` against the catalog's embedded Airflow."""

    def __init__(self, catalog: Catalog, console: Console) -> None:
        self.catalog = catalog
        self.console = console
        self.logs = catalog.airflow_home / "demo-logs"
        self.runs = 0
        self.env = {
            **os.environ,
            "HIERICD_HOME": str(catalog.root),
            "AIRFLOW_HOME": str(catalog.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": catalog.airflow_sql_alchemy_conn,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }

    # ------------------------------------------------------------ running DAGs

    def start_airflow(self) -> None:
        if not (DAGS / "hiericd_round.py").is_file():
            raise DemoError(f"{DAGS}: no hiericd DAGs there; run the demo from a checkout of the repository")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.console.print(f"[bold]Airflow[/] (embedded, sqlite): AIRFLOW_HOME={self.catalog.airflow_home}, "
                           f"DAG logs in {self.logs}", highlight=False, soft_wrap=True)
        self._airflow(["db", "migrate"], "airflow db migrate", "the metadata database", self.logs / "db.log")

    def _airflow(self, argv: list[str], name: str, what: str, log: Path) -> float:
        """Run the ``airflow`` CLI, its output into ``log``; a spinner shows the time it takes."""
        airflow = Path(sys.executable).parent / "airflow"
        self.console.print(f"  [bold]{name}[/]: {what}", highlight=False)
        clock = time.perf_counter()
        with log.open("w", encoding="utf-8") as out, self.console.status(f"{name} …"):
            code = subprocess.run([str(airflow), *argv], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=self.catalog.root).returncode
        seconds = time.perf_counter() - clock
        if code != 0:
            raise DemoError(f"{name} failed after {seconds:.0f} s:\n{_failure(log)}\nfull log: {log}")
        self.console.print(f"  [green]✓[/] {name} {seconds:.0f} s [dim](log {log.name})[/]", highlight=False)
        return seconds

    def dag(self, dag_id: str, conf: dict, what: str) -> None:
        self.runs += 1
        log = self.logs / f"{self.runs:02d}-{dag_id}.log"
        self._airflow(["dags", "test", dag_id, "-c", json.dumps(conf)], dag_id, what, log)

    # ------------------------------------------------------------ the chain

    def round(self, path: Path | None, reports: int, seed: int, min_count: int, which: str,
              first_report: int = 1) -> dict:
        """Run ``hiericd_round`` on ``path`` or on a new synthetic round; return what it left in the catalog."""
        if path is None:
            from hiericd_core.synth import SynthConfig, generate_round

            self.console.print(f"[bold]the {which} round[/]: a synthetic round of {reports} reports (seed {seed})")
            with tempfile.TemporaryDirectory(dir=self.catalog.root) as tmp:
                # a few disputed reports still wait for the senior, so the adjudication queue shows
                generate_round(Path(tmp) / "round", reports, seed,
                               SynthConfig(senior_backlog_rate=0.01, first_report=first_report), progress=True)
                round_id = tomllib.loads((Path(tmp) / "round" / "round.toml").read_text("utf-8"))["round"]["id"]
                self.dag("hiericd_round", {"round_path": str(Path(tmp) / "round"), "min_count": min_count}, ROUND)
        else:
            from hiericd_core.rounds import load_round

            round_id = load_round(path).id
            self.console.print(f"[bold]the {which} round[/]: {path} ({round_id})")
            self.dag("hiericd_round", {"round_path": str(Path(path).resolve()), "min_count": min_count}, ROUND)
        dataset = _newest_dataset_of(self.catalog, round_id)
        if dataset is None:
            raise DemoError(f"hiericd_round left no data set of round {round_id} in {self.catalog.datasets}")
        return {"round_id": round_id, "dataset": dataset}

    def train(self, built: dict, config: dict) -> dict:
        """Run ``hiericd_train`` with the demo's training settings (``config`` overriding some of them)."""
        before = set(self.catalog.models.glob("*"))
        self.dag("hiericd_train", {"dataset_dir": str(built["dataset"]), "config_file": str(TRAIN_CONFIG),
                                   "config": config}, TRAIN)
        (model,) = set(self.catalog.models.glob("*")) - before
        return {"model": model, "evaluation": json.loads((model / "evaluation-test.json").read_text("utf-8"))}

    def promote(self, built: dict) -> dict:
        """Run the gate; a refusal fails the DAG run, which is the gate's answer here, not an error."""
        before = set(self.catalog.decisions.glob("*.json"))
        try:
            self.dag("hiericd_promote", {"dataset_dir": str(built["dataset"])},
                     "the promotion gate, challenger against champion")
        except DemoError:
            if not set(self.catalog.decisions.glob("*.json")) - before:
                raise
            self.console.print("  [yellow]✗[/] the gate refused the challenger: hiericd_promote failed at "
                               "[bold]gate[/], so nothing downstream ran", highlight=False)
        new = sorted(set(self.catalog.decisions.glob("*.json")) - before)
        if not new:  # the challenger already is the champion: no new decision file
            return {"outcome": "already-champion", "rules": []}
        return json.loads(new[-1].read_text(encoding="utf-8"))

    # ------------------------------------------------------------ output

    def print_round(self, built: dict, trained: dict | None = None, decision: dict | None = None) -> None:
        catalog, round_id = self.catalog, built["round_id"]
        summary = _read(catalog.report(round_id) / "summary.json")
        merged = _read(catalog.merged(round_id) / "merge_summary.json")
        manifest = _read(built["dataset"] / "manifest.json")
        docs = built["dataset"] / "data_docs" / "index.html"
        queue = catalog.merged(round_id) / "adjudication"
        where = {
            "round": catalog.round(round_id),
            "merged annotations": catalog.merged(round_id),
            "adjudication queue": queue if queue.is_dir() else "none (nothing pending)",
            "data-quality report": catalog.report(round_id) / "index.html",
            "data set": f"{built['dataset']} (version {manifest['version']})",
            "GX Data Docs": docs if docs.is_file() else "–",
        }
        if trained:
            where["model"] = trained["model"]
            where["evaluation"] = trained["model"] / "evaluation-test.md"
        where["MLflow store"] = catalog.mlflow_tracking_uri
        where["Airflow home"] = catalog.airflow_home
        _table(self.console, f"round {round_id}: where things are", where)
        kappa = summary.get("mean_pairwise_kappa")
        numbers = {
            "mean pairwise kappa (report × code)": "needs two coders per report" if kappa is None else f"{kappa:.3f}",
            "pending reports": merged["reports"]["pending"],
            "final annotations": merged["final_annotations"]["total"],
            "train/dev/test reports": "/".join(str(manifest["splits"][s]["reports"]) for s in ("train", "dev", "test")),
            "label space (codes)": manifest["label_space_size"],
        }
        _table(self.console, "headline numbers", numbers)
        if trained:
            tuning = trained["model"] / "tuning.json"
            if tuning.is_file():
                t = _read(tuning)
                self.console.print(escape(f"inference rule: {t['best']['rule']} (chosen by {t['folds']}-fold "
                                          f"cross-validation over the training split, micro F1 "
                                          f"{t['best']['micro_f1']:.3f}; every rule in {tuning})"), highlight=False)
            self.console.print("end to end on the test split (all gold codes):")
            print(trained["evaluation"]["table"])
        if decision:
            self._print_decision(decision)

    def _print_decision(self, decision: dict) -> None:
        outcome = decision.get("outcome")
        colour = {"promoted": "green", "refused": "yellow"}.get(outcome, "cyan")
        version = (decision.get("challenger") or {}).get("version")
        self.console.print(f"[bold]promotion gate[/]: challenger v{version} [bold {colour}]{outcome}[/]"
                           + (f" (decision: {decision['decision_file']})" if decision.get("decision_file") else ""),
                           highlight=False, soft_wrap=True)
        table = Table(show_header=True, title_justify="left")
        for column in ("rule", "value", "threshold", "passed", "detail"):
            table.add_column(column, overflow="fold")
        for rule in decision.get("rules") or []:
            passed = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a"}[rule.get("passed")]
            table.add_row(rule["rule"], _fmt(rule.get("value")), _fmt(rule.get("threshold")), passed,
                          str(rule.get("detail") or ""))
        self.console.print(table)

    def print_registry(self) -> None:
        from hiericd_core import registry

        status = registry.status(catalog=self.catalog)
        sides = [status.get("champion"), status.get("challenger")]
        table = Table(title="MLflow registry: hiericd-pipeline", title_justify="left")
        table.add_column("")
        table.add_column("champion")
        table.add_column("challenger")
        table.add_row("version", *[f"v{s['version']}" if s else "none" for s in sides])
        table.add_row("data set", *[(s.get("dataset_version") or "–")[:12] if s else "–" for s in sides])
        names = [n for s in sides if s for n in s.get("metrics") or {}]
        for name in dict.fromkeys(names):
            table.add_row(name, *[_fmt((s.get("metrics") or {}).get(name)) if s else "–" for s in sides])
        self.console.print(table)
        self.console.print(f"MLflow store: {status.get('tracking_uri')}; the rounds page: `make airflow`, then "
                           "Browse → hiericd rounds", highlight=False, soft_wrap=True)


def _newest_dataset_of(catalog: Catalog, round_id: str) -> Path | None:
    found = [m for m in catalog.datasets.glob("*/manifest.json")
             if round_id in _read(m).get("source_rounds", [])]
    return max(found, key=lambda m: m.stat().st_mtime_ns).parent if found else None


def _failure(log: Path) -> str:
    """The lines of an ``airflow dags test`` log that say why a task failed."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    picked = [line for i, line in enumerate(lines)
              if "AirflowFailException" in line or ("Error:" in line and not line.startswith(" "))
              or (i and "AirflowFailException" in lines[i - 1] and line.startswith("  "))]
    return "\n".join(dict.fromkeys(picked)) or "\n".join(lines[-15:])


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(console: Console, title: str, rows: dict) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(str(key), str(value))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
