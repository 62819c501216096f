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
    senior_backlog: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="share of disputed reports the senior has not adjudicated yet")] = 0.0,
    focus_negation: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="share of one-code diagnosis sentences that also name another disease of "
                               "their organ, negated (\"...; negative for adenocarcinoma.\"), not coded")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
):
    """Generate a realistic synthetic coding round (2 of 3 coders per report, senior, truth)."""
    from hiericd_core.synth import SynthConfig, generate_round

    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; give a new folder")
    summary = generate_round(out, reports, seed, SynthConfig(senior_backlog_rate=senior_backlog,
                                                          focus_negation_rate=focus_negation),
                             progress=sys.stderr.isatty())
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


@app.command()
@user_errors
def merge(
    round_path: Annotated[Path, typer.Argument(metavar="ROUND", help="round folder")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: the catalog's merged/<round id>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the merge summary as JSON")] = False,
):
    """Merge the coders' annotations (overlap + same code → union; disputes → the senior).

    Into the catalog (the default), pending reports also get their adjudication
    queue in merged/<round id>/adjudication/.
    """
    from hiericd_core import pipeline
    from hiericd_core.catalog import Catalog
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round

    if out is None:
        info = pipeline.merge(round_path, Catalog.from_env())
        target, summary, pending, queue = info["merged"], info["summary"], info["pending"], info["queue"]
    else:
        loaded = load_round(round_path)
        result = merge_round(loaded)
        target, summary, pending, queue = out, write_merge(result, loaded, out), len(result.pending), None
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    _print_mapping(f"merged round {summary['round_id']} → {target}", summary)
    if pending:
        where = queue or f"(hiericd adjudication-queue {round_path} --out DIR)"
        console.print(f"[yellow]{pending} report(s) wait for the senior:[/] adjudication queue {where}",
                      highlight=False, soft_wrap=True)


@app.command("adjudication-queue")
@user_errors
def adjudication_queue(
    round_path: Annotated[Path, typer.Argument(metavar="ROUND", help="round folder")],
    out: Annotated[Path, typer.Option("--out", help="folder for the BRAT project the senior opens")],
):
    """Write the pending reports as a BRAT project for the senior coder (coders side by side)."""
    from hiericd_core.adjudication import write_adjudication_queue
    from hiericd_core.merge import merge_round
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path)
    info = write_adjudication_queue(merge_round(loaded), loaded, out)
    console.print(f"{info['pending_reports']} pending report(s), {info['disputes']} dispute(s) → {out}",
                  highlight=False)
    if info["pending_reports"]:
        console.print(f"open {out} in brat; put the senior's .ann files in {round_path}/senior/ "
                      f"and run hiericd merge {round_path} again (see {out}/README.txt)", highlight=False)


@app.command()
@user_errors
def agreement(
    round_path: Annotated[Path, typer.Argument(metavar="ROUND", help="round folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print every figure as JSON (structure: README)")] = False,
    bootstrap: Annotated[int, typer.Option(help="bootstrap replicates for the 95% CIs")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
):
    """Inter-annotator agreement; every figure names its unit (report × code is the headline)."""
    from hiericd_core.agreement import AgreementConfig
    from hiericd_core.agreement import agreement as compute
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path, progress=not as_json and sys.stderr.isatty())
    data = compute(loaded, AgreementConfig(bootstrap=bootstrap, seed=seed))
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return
    for name, unit in data["units"].items():
        table = Table(title=f"{name}: {unit['unit']}", title_justify="left")
        for col in ("a", "b", "reports", "kappa", "95% CI", "observed", "PABAK", "AC1"):
            table.add_column(col)
        if unit["status"] != "ok":
            console.print(f"[bold]{name}[/]: {unit['status']}")
        for row in unit["pairs"] + unit["senior"]:
            ci = row.get("ci95")
            table.add_row(row["a"], row["b"], str(row["n_reports"]), _num(row["kappa"]),
                          f"{_num(ci[0])}–{_num(ci[1])}" if ci else "–", _num(row["observed"]),
                          _num(row["pabak"]), _num(row["ac1"]))
        if unit["pairs"] or unit["senior"]:
            console.print(table)
        console.print(f"  Fleiss' kappa {_num(unit['fleiss']['value'])}, "
                      f"Krippendorff's alpha {_num(unit['alpha']['value'])}", highlight=False)
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command()
@user_errors
def datasets(
    rounds: Annotated[list[Path], typer.Argument(metavar="ROUND...", help="rounds (or merged rounds), oldest first")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: the catalog's datasets/<version>)")] = None,
    min_count: Annotated[int, typer.Option(help="label space: codes seen at least this often in training")] = 10,
    seed: Annotated[int, typer.Option(help="split seed")] = 13,
    backend: Annotated[str, typer.Option(help="segmenter: auto | scispacy | pysbd | rule")] = "auto",
    split_by_round: Annotated[list[str] | None, typer.Option(
        "--split-by-round", metavar="ROUND_ID=SPLIT",
        help="put every report of a round (its round.toml id) in one split instead of the 70/15/15 hash, "
             "e.g. --split-by-round codiesp-train=train --split-by-round codiesp-dev=dev; repeatable")] = None,
):
    """Build the sentence- and report-level Parquet data sets (+ label space, manifest)."""
    from hiericd_core.catalog import Catalog
    from hiericd_core.datasets import DatasetConfig, DatasetError, build_dataset, parse_round_splits, write_dataset
    from hiericd_core.validation import ValidationError, check_dataset

    catalog = Catalog.from_env()
    try:
        round_splits = parse_round_splits(split_by_round or [])
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    merged_dirs = [_merged_dir(path, catalog) for path in rounds]
    try:
        dataset = build_dataset(merged_dirs, DatasetConfig(seed=seed, min_count=min_count, backend=backend,
                                                           round_splits=round_splits),
                                progress=sys.stderr.isatty())
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    folder = write_dataset(dataset, out, datasets_root=catalog.datasets)
    try:
        gate = check_dataset(folder, folder / "data_docs")
    except ValidationError as exc:
        raise UserError(f"data set {folder} failed its Great Expectations gate "
                        f"(details: {folder / 'validation.json'}):\n{exc}") from exc
    manifest = dataset.manifest
    _print_mapping(f"data set {manifest['version']} → {folder}", {
        "source_rounds": manifest["source_rounds"], "segmenter": manifest["segmenter"],
        "split_mode": manifest["split_mode"], "splits": manifest["splits"],
        "label_space_size": manifest["label_space_size"],
        "left_out_reports": manifest["left_out_reports"], "alignment": manifest["alignment"],
        "great_expectations": f"passed; Data Docs: {gate.docs_index}"})


def _merged_dir(path: Path, catalog) -> Path:
    """A merged round folder as it is; a round folder is merged into the catalog first."""
    if (path / "reports.parquet").is_file() and (path / "merge_summary.json").is_file():
        return path
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round

    loaded = load_round(path)
    target = catalog.merged(loaded.id)
    result = merge_round(loaded)
    write_merge(result, loaded, target)
    if result.pending:
        err.print(f"{loaded.id}: {len(result.pending)} report(s) pending adjudication are left out", highlight=False)
    return target


@app.command()
@user_errors
def report(
    round_path: Annotated[Path, typer.Argument(metavar="ROUND", help="round folder")],
    bootstrap: Annotated[int, typer.Option(help="bootstrap replicates for the 95% CIs")] = 1000,
):
    """Write the data-quality report (HTML + PNG) of a round into the catalog's reports/<round id>/."""
    from hiericd_core import pipeline
    from hiericd_core.catalog import Catalog

    info = pipeline.assess(round_path, Catalog.from_env(), bootstrap=bootstrap)
    console.print(f"data-quality report: {info['report']}", highlight=False, soft_wrap=True)
    if info["headline_kappa"] is not None:
        console.print(f"mean pairwise kappa (report × code): {info['headline_kappa']:.3f}; "
                      f"{info['warnings']} warning(s)", highlight=False)


@app.command()
@user_errors
def train(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="data set folder (hiericd datasets)")],
    out: Annotated[Path, typer.Option("--out", help="model folder to write")],
    config: Annotated[Path | None, typer.Option(help="TOML file with training settings (TrainConfig)")] = None,
):
    """Train the sentence tagger and the phrase-attention ICD classifier."""
    from hiericd_core import pipeline
    from hiericd_core.train import TrainError

    if not (dataset / "manifest.json").is_file():
        raise UserError(f"{dataset}: not a data set folder (no manifest.json); build one with hiericd datasets")
    try:
        info = pipeline.train(dataset, out, config, progress=sys.stderr.isatty())
    except TrainError as exc:
        raise UserError(str(exc)) from exc
    metrics = info["metrics"]
    console.print(f"model → {out} (variant {metrics['variant']}, requested {metrics['variant_requested']})",
                  highlight=False)
    for stage in ("tagger", "classifier"):
        result = metrics[stage]
        console.print(f"{stage}: best dev {json.dumps(result['best_dev'], sort_keys=True)} at epoch "
                      f"{result['best_epoch']} ({result['stopped']})", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def predict(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="model folder (hiericd train)")],
    input_dir: Annotated[Path, typer.Argument(metavar="INPUT", help="folder of .txt reports (+ metadata.csv)")],
    out: Annotated[Path, typer.Option("--out", help="predictions.tsv (report_id<TAB>code)")],
    evidence: Annotated[Path | None, typer.Option(help="evidence JSON lines (codes, sentences, tokens)")] = None,
    workers: Annotated[int, typer.Option(min=0, help="worker processes (0: one per CPU for folders of 512+ "
                                                       "reports, else none)")] = 0,
):
    """Code a folder of reports; one report_id<TAB>code line per predicted code."""
    from hiericd_core.infer import WORKER_CHUNK, Predictor
    from hiericd_core.parallel import usable_cpus

    if not input_dir.is_dir():
        raise UserError(f"{input_dir}: no such folder")
    if not workers:
        # starting a worker costs a few seconds: worth it from two chunks of reports on
        many = sum(1 for _ in input_dir.glob("*.txt")) >= 2 * WORKER_CHUNK
        workers = usable_cpus() if many else 1
    with Predictor.load(model, threads=usable_cpus(), workers=workers) as predictor:
        summary = predictor.predict_folder(input_dir, out, evidence, progress=True)
    console.print(f"{summary['coded']} report(s) coded, {summary['codes']} code(s) → {out}", highlight=False)
    for problem in summary["problems"]:
        err.print(f"[yellow]skipped[/] {problem['file']}: {problem['problem']}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def evaluate(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="model folder")],
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="data set folder")],
    split: Annotated[str, typer.Option(help="dev or test")] = "test",
    baselines: Annotated[bool, typer.Option(help="fit and score the baselines side by side")] = True,
):
    """Paper Tables 3-5 (tagger, classifier, end to end) and evidence plausibility, baselines side by side."""
    from hiericd_core import pipeline

    result = pipeline.evaluate_model(model, dataset, split, baselines=baselines)
    console.print(f"tagger: {json.dumps(result['tagger'], sort_keys=True)}", highlight=False, soft_wrap=True)
    console.print(f"classifier: {json.dumps(result['classifier'], sort_keys=True)}", highlight=False, soft_wrap=True)
    console.print(f"evidence: {json.dumps(result['evidence'], sort_keys=True)}", highlight=False, soft_wrap=True)
    print(result["table"])
    console.print(f"written: {model / f'evaluation-{split}.json'}", highlight=False)


@app.command()
@user_errors
def register(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="model folder (hiericd train)")],
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="the data set it was trained on")],
    round_ids: Annotated[list[str] | None, typer.Option(
        "--round", help="round id behind the data set (default: the manifest's source rounds); repeatable")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "hiericd",
):
    """Log a model folder as an MLflow run and register its three models (alias challenger)."""
    from hiericd_core import registry

    try:
        run_id = registry.log_training_run(model, dataset, round_ids=round_ids, experiment=experiment)
        info = registry.register(run_id)
    except (registry.RegistryError, registry.GateError) as exc:
        raise UserError(str(exc)) from exc
    console.print(f"MLflow run {run_id} in {registry.tracking_uri()}", highlight=False, soft_wrap=True)
    for artifact in registry.MODELS:
        v = info[artifact]
        console.print(f"{v['name']} version {v['version']}{'' if v['created'] else ' (already registered)'} "
                      f"@{registry.CHALLENGER}", highlight=False)


@app.command()
@user_errors
def promote(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="data set whose held-out split both sides "
                                                                      "are scored on")],
    gate: Annotated[Path | None, typer.Option(help="TOML file with the gate's rules (GateConfig)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the decision JSON (default: the catalog's "
                                                  "mlflow/decisions)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
):
    """Champion/challenger gate: move hiericd-pipeline@champion to the challenger if every rule passes.

    Exits 0 when promoted (or already champion), 1 when the gate refused.
    """
    from hiericd_core import registry

    try:
        config = registry.GateConfig.from_toml(gate) if gate else registry.GateConfig()
        decision = registry.promote(dataset_dir=dataset, gate=config, out_dir=out)
    except (registry.RegistryError, registry.GateError) as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        print(json.dumps(decision, indent=2, sort_keys=True, default=str))
    else:
        champion = decision.get("champion")
        console.print(f"challenger v{decision['challenger']['version']} vs "
                      f"{'champion v' + str(champion['version']) if champion else 'no champion (first model)'}: "
                      f"[bold]{decision['outcome']}[/]", highlight=False)
        table = Table(title="rules", title_justify="left")
        for col in ("rule", "value", "threshold", "passed", "detail"):
            table.add_column(col, overflow="fold")
        for rule in decision["rules"]:
            table.add_row(rule["rule"], _num(rule["value"]), _num(rule["threshold"]),
                          {True: "yes", False: "[red]no[/]", None: "skipped"}[rule["passed"]], rule["detail"])
        if decision["rules"]:
            console.print(table)
        if decision.get("decision_file"):
            console.print(f"decision: {decision['decision_file']}", highlight=False, soft_wrap=True)
    if not decision["passed"]:
        raise typer.Exit(1)


@app.command()
@user_errors
def rollback():
    """Move hiericd-pipeline@champion back to the champion before it."""
    from hiericd_core import registry

    try:
        decision = registry.rollback()
    except (registry.RegistryError, registry.GateError) as exc:
        raise UserError(str(exc)) from exc
    console.print(f"champion: v{decision['from']} → v{decision['to']} (decision: {decision['decision_file']})",
                  highlight=False, soft_wrap=True)


@app.command("registry-status")
@user_errors
def registry_status(as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False):
    """Champion and challenger pipeline versions with their key metrics."""
    from hiericd_core import registry

    data = registry.status()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        v = data[alias]
        if v is None:
            console.print(f"{alias}: none", highlight=False)
            continue
        m = v["metrics"]
        console.print(f"{alias}: v{v['version']} (run {v['run_id']}, data set {v['dataset_version']}, "
                      f"gate {v['gate'] or '–'}): micro F1 {_num(m['micro_f1'])}, LR {_num(m['lr_micro_f1'])}",
                      highlight=False, soft_wrap=True)


@app.command("model-card")
@user_errors
def model_card(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="hiericd-pipeline version (3 or v3), "
                                                                   "champion, challenger, or a run id")],
    out: Annotated[Path, typer.Option("--out", help="folder for model_card.html and model_card.md")],
):
    """Write the model card (HTML + Markdown) of a pipeline version and log it with its run."""
    from hiericd_core import registry
    from hiericd_core.modelcard import write_model_card

    try:
        info = write_model_card(version, out)
    except (registry.RegistryError, registry.GateError) as exc:
        raise UserError(str(exc)) from exc
    console.print(f"model card of run {info['run_id']}: {info['html']}, {info['markdown']}", highlight=False,
                  soft_wrap=True)


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


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


@app.command()
@user_errors
def ablation(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="data set folder (hiericd datasets)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the variants' models and ablation.json/.md/.png")],
    config: Annotated[Path | None, typer.Option(help="TOML file with training settings (TrainConfig)")] = None,
    split: Annotated[str, typer.Option(help="split the variants are scored on (dev or test)")] = "test",
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="train only these variants (repeatable; default all five)")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="variants trained at once after the first (worker processes)")] = 1,
):
    """Train the five classifier variants of the paper's Table 4 and compare them (table + plot)."""
    from hiericd_core import pipeline
    from hiericd_core.ablation import AblationError, run_ablation
    from hiericd_core.models.classifier import VARIANTS
    from hiericd_core.train import TrainError

    if not (dataset / "manifest.json").is_file():
        raise UserError(f"{dataset}: not a data set folder (no manifest.json); build one with hiericd datasets")
    try:
        settings = pipeline.train_config(config)
        result = run_ablation(dataset, out, settings, tuple(variant or VARIANTS), split,
                              progress=sys.stderr.isatty(), log=lambda line: err.print(line, highlight=False),
                              jobs=jobs)
    except (AblationError, TrainError) as exc:
        raise UserError(str(exc)) from exc
    print(result["table"])
    console.print(f"written: {out / 'ablation.json'}, {out / 'ablation.md'}, {out / 'ablation.png'}",
                  highlight=False, soft_wrap=True)


if __name__ == "__main__":  # python -m hiericd_core.cli …
    app(prog_name="hiericd")
