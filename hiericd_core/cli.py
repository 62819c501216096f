"""The ``hiericd`` command: one sub-command per pipeline step, no logic of its own.

Exit codes: 0 done; 1 the promotion gate refused, or ``validate --strict``
found problems; 2 a mistake the user can fix or a fault of the environment
(a full or read-only disk, no permission), printed as one message naming the
file; 3 a bug in hiericd, printed as one line (``-vv`` shows the traceback).
Never a traceback otherwise: :func:`user_errors` is the one place that maps
exceptions to messages and exit codes.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="hiericd: from medical coders' BRAT rounds to hierarchical ICD-10 coding models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err = Console(stderr=True)
logger = logging.getLogger("hiericd_core")

LINE_LIMIT = 500  # characters of one line of a message: a 2 MB report line must not flood the terminal
LINES_LIMIT = 40  # lines of one message
EXIT_REFUSED, EXIT_USER, EXIT_BUG = 1, 2, 3

# errno of an OSError → what it means for the user (the path is named before it)
_ENVIRONMENT = {
    errno.ENOSPC: "no space left on the disk; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.EACCES: "permission denied; choose a place you may write to (or read) and run again",
    errno.EPERM: "operation not permitted; choose a place you may write to and run again",
    errno.EROFS: "read-only file system; write somewhere else",
    errno.EISDIR: "is a folder; give a file",
    errno.ENOTDIR: "a file where a folder was expected",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists and is not a folder (a folder is needed there)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run again",
}


class UserError(Exception):
    """A mistake the user can fix; printed as one message, no traceback."""


def clip(text: str, line_limit: int = LINE_LIMIT, lines_limit: int = LINES_LIMIT) -> str:
    """``text`` with each line cut to ``line_limit`` characters and at most ``lines_limit`` lines, saying so."""
    lines = text.splitlines() or [""]
    out = [line if len(line) <= line_limit else f"{line[:line_limit]}… ({len(line) - line_limit:,} characters cut)"
           for line in lines[:lines_limit]]
    if len(lines) > lines_limit:
        out.append(f"… ({len(lines) - lines_limit:,} more lines)")
    return "\n".join(out)


def say(console_: Console, markup: str, text: str) -> None:
    """Print Rich ``markup`` (ours) followed by ``text`` (anyone's: file names, messages) clipped and escaped.

    Escaping keeps bracketed text such as ``[codes]`` from being read as Rich markup and vanishing.
    """
    console_.print(f"{markup}{escape(clip(text))}", highlight=False, soft_wrap=True)


# the library's exceptions that mean the user's input (or a file they gave) cannot be used: (module, class)
_USER_ERRORS = (("hiericd_core.brat", "BratError"), ("hiericd_core.rounds", "RoundError"),
                ("hiericd_core.gate", "GateError"), ("hiericd_core.registry_store", "RegistryError"),
                ("hiericd_core.models", "ModelFileError"), ("hiericd_core.model_ref", "ModelRefError"),
                ("hiericd_core.infer", "InputError"), ("hiericd_core.segment", "SegmenterError"),
                ("hiericd_core.datasets", "DatasetError"), ("hiericd_core.train", "TrainError"),
                ("hiericd_core.ablation", "AblationError"), ("hiericd_core.catalog", "UnsafeIdError"))


def _user_error_types() -> tuple[type[BaseException], ...]:
    """:class:`UserError` and the classes of :data:`_USER_ERRORS` (imported only when something went wrong)."""
    import importlib

    found: list[type[BaseException]] = [UserError]
    for module, name in _USER_ERRORS:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # the error printer itself must not fail
            continue
    return tuple(found)


def environment_message(exc: OSError) -> str:
    """One line for an OSError: the path(s) and what the fault means (or our own message when it has no errno)."""
    if exc.errno is None:  # raised by hiericd with a message of its own
        return str(exc)
    meaning = _ENVIRONMENT.get(exc.errno, exc.strerror or str(exc))
    paths = " → ".join(_written(p) for p in (exc.filename, exc.filename2) if p is not None)
    return f"{paths}: {meaning}" if paths else meaning


def _written(path) -> str:
    """A path as the user named it: the temp file of an atomic write (hiericd_core.files) stands for its target."""
    found = re.fullmatch(r"\.(.+)\.[^.]{8}\.tmp", Path(str(path)).name)
    return str(Path(str(path)).with_name(found.group(1))) if found else str(path)


def user_errors(func):
    """The one mapping from exceptions to messages and exit codes (see the module docstring)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        import click

        try:
            return func(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - every exception ends here as one message
            if isinstance(exc, _user_error_types()):
                say(err, "[bold red]error:[/] ", str(exc))
            elif isinstance(exc, OSError):
                say(err, "[bold red]error:[/] ", environment_message(exc))
            elif logger.isEnabledFor(logging.DEBUG):
                raise
            else:
                logger.debug("internal error", exc_info=True)
                say(err, "[bold red]internal error[/] (a bug in hiericd; please report it with the output of "
                         "the same command run with -vv): ", f"{type(exc).__name__}: {exc}")
                raise typer.Exit(EXIT_BUG) from None
            raise typer.Exit(EXIT_USER) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"hiericd {version('hiericd')}")
        except PackageNotFoundError:
            print("hiericd (version unknown: not installed as a package)")
        raise typer.Exit()


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print hiericd's version and exit")] = False,
    log_level: Annotated[str, typer.Option(help=f"log level: {' | '.join(LOG_LEVELS)}")] = "warning",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="more log output: -v info, -vv debug (and tracebacks of bugs)")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="errors only in the log output")] = False,
):
    """hiericd: from medical coders' BRAT rounds to hierarchical ICD-10 coding models."""
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r}: use one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    level = getattr(logging, log_level.upper())
    if verbose:
        level = logging.INFO if verbose == 1 else logging.DEBUG
    if quiet:
        level = logging.ERROR
    logger.setLevel(level)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)


@app.command()
@user_errors
def paths(home: Annotated[Path | None, typer.Option(help="catalog root (default $HIERICD_HOME or ./var)")] = None):
    """Print where hiericd keeps rounds, data sets, reports, models and stores (every folder of the catalog)."""
    from hiericd_core.catalog import Catalog

    cat = Catalog.from_env(home)
    # every property of the catalog that is a path or a store URI, in the class's order: new ones show up here
    places = [("root", cat.root)] + [(name, getattr(cat, name)) for name, attr in vars(Catalog).items()
                                     if isinstance(attr, property)]
    places = [(name, value) for name, value in places if isinstance(value, (Path, str))]
    width = max(len(name) for name, _ in places) + 2
    for name, value in places:
        print(f"{name:<{width}}{value}")


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
    strict: Annotated[bool, typer.Option("--strict", help="exit 1 when anything was quarantined")] = False,
):
    """Load a round, check its layout, BRAT files, codes and metadata; list what is quarantined."""
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path, language=language, progress=not as_json and sys.stderr.isatty())
    data = loaded.summary()
    problems = data["problems"]
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        data.pop("problems")
        _print_mapping(f"round {loaded.id}", data)
        _print_problems([{"file": m, "line": None, "reason": ""} for m in problems])
    if strict and problems:
        raise typer.Exit(EXIT_REFUSED)


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
    from hiericd_core.datasets import DatasetError

    try:
        info = pipeline.merge(round_path, Catalog.from_env(), out=out)
    except DatasetError as exc:  # an --out folder that is not a merged round: it would be replaced
        raise UserError(str(exc)) from exc
    target, summary, pending, queue = info["merged"], info["summary"], info["pending"], info["queue"]
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
                  highlight=False, markup=False)
    if info["pending_reports"]:
        console.print(f"open {out} in brat; put the senior's .ann files in {round_path}/senior/ "
                      f"and run hiericd merge {round_path} again (see {out}/README.txt)", highlight=False, markup=False)


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
            console.print(f"[bold]{name}[/]: {escape(unit['status'])}")
        for row in unit["pairs"] + unit["senior"]:
            ci = row.get("ci95")
            table.add_row(row["a"], row["b"], str(row["n_reports"]), _num(row["kappa"]),
                          f"{_num(ci[0])}–{_num(ci[1])}" if ci else "–", _num(row["observed"]),
                          _num(row["pabak"]), _num(row["ac1"]))
        if unit["pairs"] or unit["senior"]:
            console.print(table)
        console.print(f"  Fleiss' kappa {_num(unit['fleiss']['value'])}, "
                      f"Krippendorff's alpha {_num(unit['alpha']['value'])}", highlight=False, markup=False)
    for warning in data["warnings"]:
        say(console, "[yellow]warning:[/] ", warning)


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
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="segment every report, neither reading nor writing the catalog's cache/segments")] = False,
):
    """Build the sentence- and report-level Parquet data sets (+ label space, manifest)."""
    from hiericd_core import pipeline
    from hiericd_core.catalog import Catalog
    from hiericd_core.datasets import DatasetError, parse_round_splits
    from hiericd_core.validation import ValidationError

    catalog = Catalog.from_env()
    try:
        round_splits = parse_round_splits(split_by_round or [])
        merged_dirs = [_merged_dir(path, catalog) for path in rounds]
        built = pipeline.datasets(merged_dirs, catalog, min_count=min_count, seed=seed, backend=backend,
                                  progress=sys.stderr.isatty(), round_splits=dict(round_splits), out=out,
                                  cache=not no_cache)
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    except ValidationError as exc:
        raise UserError(f"the data set failed its Great Expectations gate:\n{exc}") from exc
    manifest = json.loads(Path(built["manifest"]).read_text(encoding="utf-8"))
    _print_mapping(f"data set {manifest['version']} → {built['path']}", {
        "source_rounds": manifest["source_rounds"], "segmenter": manifest["segmenter"],
        "split_mode": manifest["split_mode"], "splits": manifest["splits"],
        "label_space_size": manifest["label_space_size"],
        "left_out_reports": manifest["left_out_reports"], "alignment": manifest["alignment"],
        "segment_cache": built["segment_cache"] or "off (--no-cache)",
        "great_expectations": f"passed; Data Docs: {built['data_docs']}"})


def _merged_dir(path: Path, catalog) -> Path:
    """A merged round folder as it is; a round folder is merged into the catalog first (with its queue)."""
    from hiericd_core import pipeline

    merged, pending = pipeline.merged_round(path, catalog)
    if pending:
        err.print(f"{merged.name}: {pending} report(s) pending adjudication are left out", highlight=False)
    return merged


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
    console.print(f"data-quality report: {info['report']}", highlight=False, markup=False, soft_wrap=True)
    if info["headline_kappa"] is not None:
        console.print(f"mean pairwise kappa (report × code): {info['headline_kappa']:.3f}; "
                      f"{info['warnings']} warning(s)", highlight=False, markup=False)


@app.command()
@user_errors
def train(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="data set folder (hiericd datasets)")],
    out: Annotated[Path, typer.Option("--out", help="model folder to write")],
    config: Annotated[Path | None, typer.Option(help="TOML file with training settings (TrainConfig)")] = None,
):
    """Train the sentence tagger and the phrase-attention ICD classifier."""
    from hiericd_core import pipeline
    from hiericd_core.datasets import DatasetError
    from hiericd_core.train import TrainError

    try:  # pipeline.train takes only a data set whose Great Expectations gate passed
        info = pipeline.train(dataset, out, config, progress=sys.stderr.isatty())
    except (DatasetError, TrainError) as exc:
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
def tune(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="model folder (hiericd train)")],
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="the data set it was trained on")],
    folds: Annotated[int, typer.Option(min=2, help="cross-validation folds over the training split")] = 5,
):
    """Choose the model's inference rule and phrase memory by k-fold cross-validation on the training split.

    Trains one model per fold with the model's own settings, codes each
    held-out fold with every rule of the grid, and writes the rule with the
    best pooled micro F1 into MODEL (inference.json), with the training
    split's phrase memory (phrases.json) and the table (tuning.json).
    Neither the dev nor the test split is looked at.
    """
    from hiericd_core import pipeline

    info = pipeline.tune(model, dataset, folds=folds, progress=sys.stderr.isatty())
    tuning = info["tuning"]
    say(console, "", f"{model}: rule {info['rule']!r} (cross-validated micro F1 {info['cv_micro_f1']:.3f} over "
                     f"{tuning['reports']} training reports, {tuning['folds']} folds); phrase memory of "
                     f"{info['phrases']} phrases; epochs by fold: tagger {tuning['epochs']['tagger']['per_fold']}, "
                     f"classifier {tuning['epochs']['classifier']['per_fold']} → {model / 'tuning.json'}")


@app.command()
@user_errors
def predict(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="model folder (hiericd train), or a registered "
                                         "pipeline: champion, challenger, models:/hiericd-pipeline@ALIAS, "
                                         "models:/hiericd-pipeline/VERSION")],
    input_dir: Annotated[Path, typer.Argument(metavar="INPUT", help="folder of .txt reports (+ metadata.csv), "
                                              "or a round folder (its texts/ and metadata.csv)")],
    out: Annotated[Path, typer.Option("--out", help="predictions.tsv (report_id<TAB>code)")],
    evidence: Annotated[Path | None, typer.Option(help="evidence JSON lines (codes, sentences, tokens, "
                                                       "warnings)")] = None,
    scores: Annotated[bool, typer.Option("--scores", help="a third column: the code's probability")] = False,
    ranked: Annotated[int | None, typer.Option(
        "--ranked", min=1, metavar="K", help="up to K codes per report, best first, candidates below the cut "
        "included (CodiEsp's ranked format)")] = None,
    workers: Annotated[int, typer.Option(min=0, help="worker processes (0: one per CPU for folders of 512+ "
                                                       "reports, else none)")] = 0,
):
    """Code a folder of reports; one report_id<TAB>code line per predicted code.

    With --ranked K, up to K lines per report in rank order: the predicted
    codes first, then the classifier's candidates below the cut.

    Warns (one line each) when the codes may be nonsense: reports in another
    language than the model's, mostly words the model does not know, or no
    reasons for visit for a model trained with them.
    """
    from hiericd_core.infer import WORKER_CHUNK, Predictor, report_folder
    from hiericd_core.model_ref import model_folder
    from hiericd_core.parallel import usable_cpus

    for option, path in (("--out", out), ("--evidence", evidence)):
        if path is not None and path.is_dir():
            raise UserError(f"{option} {path} is a folder; give a file name, e.g. {path / 'predictions.tsv'}")
    texts, _, _ = report_folder(input_dir)  # a wrong INPUT is said before a model is loaded or downloaded
    if not workers:
        # starting a worker costs a few seconds: worth it from two chunks of reports on
        many = sum(1 for _ in texts.glob("*.txt")) >= 2 * WORKER_CHUNK
        workers = usable_cpus() if many else 1
    with model_folder(model) as model_dir, Predictor.load(model_dir, threads=usable_cpus(),
                                                          workers=workers) as predictor:
        summary = predictor.predict_folder(input_dir, out, evidence, progress=True, scores=scores,
                                           ranked=ranked or 0)
    console.print(f"{summary['coded']} report(s) coded, {summary['codes']} code(s) → {escape(str(out))}",
                  highlight=False)
    for problem in summary["problems"]:
        say(err, "[yellow]skipped[/] ", f"{problem['file']}: {problem['problem']}")
    for warning in summary["warnings"]:
        say(err, "[yellow]warning:[/] ", warning)


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
    for part in ("tagger", "classifier", "evidence"):
        console.print(f"{part}: {json.dumps(result[part], sort_keys=True)}", highlight=False, markup=False,
                      soft_wrap=True)
    print(result["table"])
    console.print(f"written: {model / f'evaluation-{split}.json'}", highlight=False, markup=False)


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

    run_id = registry.log_training_run(model, dataset, round_ids=round_ids, experiment=experiment)
    info = registry.register(run_id)
    console.print(f"MLflow run {run_id} in {registry.tracking_uri()}", highlight=False, markup=False, soft_wrap=True)
    for artifact in registry.MODELS:
        v = info[artifact]
        console.print(f"{v['name']} version {v['version']}{'' if v['created'] else ' (already registered)'} "
                      f"@{registry.CHALLENGER}", highlight=False, markup=False)


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

    config = registry.GateConfig.from_toml(gate) if gate else registry.GateConfig()
    if not config.reference_set and not (dataset / "manifest.json").is_file():
        # said before the store is opened (opening a new one creates it)
        raise UserError(f"{dataset}: not a data set folder (no manifest.json); give the data set to score on")
    decision = registry.promote(dataset_dir=dataset, gate=config, out_dir=out)
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
            console.print(f"decision: {decision['decision_file']}", highlight=False, markup=False, soft_wrap=True)
    if not decision["passed"]:
        raise typer.Exit(1)


@app.command()
@user_errors
def rollback():
    """Move hiericd-pipeline@champion back to the champion before it."""
    from hiericd_core import registry

    decision = registry.rollback()
    console.print(f"champion: v{decision['from']} → v{decision['to']} (decision: {decision['decision_file']})",
                  highlight=False, markup=False, soft_wrap=True)


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
            console.print(f"{alias}: none", highlight=False, markup=False)
            continue
        m = v["metrics"]
        console.print(f"{alias}: v{v['version']} (run {v['run_id']}, data set {v['dataset_version']}, "
                      f"gate {v['gate'] or '–'}): micro F1 {_num(m['micro_f1'])}, LR {_num(m['lr_micro_f1'])}",
                      highlight=False, markup=False, soft_wrap=True)


@app.command("model-card")
@user_errors
def model_card(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="hiericd-pipeline version (3 or v3), "
                                                                   "champion, challenger, or a run id")],
    out: Annotated[Path, typer.Option("--out", help="folder for model_card.html and model_card.md")],
):
    """Write the model card (HTML + Markdown) of a pipeline version and log it with its run."""
    from hiericd_core.modelcard import write_model_card

    info = write_model_card(version, out)
    console.print(f"model card of run {info['run_id']}: {info['html']}, {info['markdown']}", highlight=False,
                  markup=False, soft_wrap=True)


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _print_mapping(title: str, data: dict) -> None:
    table = Table(title=escape(title), show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(escape(str(key)), escape(clip(str(value))))
    console.print(table)


def _print_problems(problems: list[dict]) -> None:
    if not problems:
        console.print("[green]no problems[/]")
        return
    console.print(f"[yellow]{len(problems)} problem(s), quarantined:[/]")
    for p in problems:
        line = f":{p['line']}" if p.get("line") else ""
        reason = f": {p['reason']}" if p.get("reason") else ""
        say(console, "  ", f"{p['file']}{line}{reason}")


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
    from hiericd_core.ablation import run_ablation
    from hiericd_core.models.classifier import VARIANTS

    if not (dataset / "manifest.json").is_file():
        raise UserError(f"{dataset}: not a data set folder (no manifest.json); build one with hiericd datasets")
    settings = pipeline.train_config(config)
    result = run_ablation(dataset, out, settings, tuple(variant or VARIANTS), split, progress=sys.stderr.isatty(),
                          log=lambda line: err.print(line, highlight=False, markup=False), jobs=jobs)
    print(result["table"])
    console.print(f"written: {out / 'ablation.json'}, {out / 'ablation.md'}, {out / 'ablation.png'}",
                  highlight=False, markup=False, soft_wrap=True)


if __name__ == "__main__":  # python -m hiericd_core.cli …
    app(prog_name="hiericd")
