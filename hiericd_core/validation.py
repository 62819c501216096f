"""Data-quality checks on a built data set, run with Great Expectations (GX 1.x).

The expectation suites are GX suite JSON in ``expectations/`` at the repository
root (one file per suite; ``expectations/README.md`` lists what each checks).
A suite's ``meta.hiericd`` names the table it checks (``sentences.parquet``,
``reports.parquet``, ``label_space.json``, or ``splits``: per-split counts of
reports, focus sentences and classifier rows, which fail a degenerate data
set) and the columns that identify a row in messages. Checks across columns or tables run on columns derived here
first (:mod:`hiericd_core.validation_frames`: ``mask_len``, ``mask_sum``,
``report_splits``, ...), so the suites can use GX's built-in expectations only.
Suite parameters (``{"$PARAMETER": name}``) are filled in at validation time:
``<split>_share_min``/``_max`` from the number of reports (see
:func:`split_share_bounds`) and ``min_count`` from ``label_space.json``.
Split proportions are checked only where a hash made the split: reports that
a round's split placed (``manifest.json``'s ``config.round_splits``) get a
null ``in_<split>``, and when no report was placed by the hash the bounds are
[0, 1] (the rounds, not chance, fix the shares).

The sentence table is validated in chunks of whole reports
(``validation_frames.SENTENCE_CHUNK`` rows or a little more), so a data set larger than memory
validates: every expectation runs on every row, chunk by chunk, and the
outcomes are summed (rows checked, rows failing, the first failing rows). The
checks that span rows stay exact because a report never straddles two
chunks: one pass over the ``report_id`` column first makes sure each report's
rows are consecutive (the builder writes them so) and counts them for
``reports.parquet``'s ``sentence_rows``; a file whose reports are scattered
is validated whole, as one chunk. The report table and the label space (a
row per report or code) are validated whole. The Data Docs show one
validation run per chunk.

GX runs in an in-memory context: no files besides the Data Docs site (when a
folder is given), no progress bars, no analytics, and its INFO logging muted.
The site is made to work offline and to be byte-stable (:func:`_offline_docs`);
``validation.json`` holds no absolute path. :func:`require_passed` is what
training asks before it takes a data set.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hiericd_core.datasets import SPLITS, DatasetError
from hiericd_core.validation_frames import SentenceChunks, dataset_frames, round_splits

SUITES_DIR = Path(__file__).resolve().parent.parent / "expectations"
VALIDATION_FILE = "validation.json"  # in the data set folder: the gate's outcome, which training asks for
DOCS_DIR = "data_docs"  # in the data set folder: the Data Docs site
DOCS_SITE = "hiericd"
TABLES = ("sentences.parquet", "reports.parquet", "label_space.json", "splits")
# Data Docs pages carry the run time in their text and paths; a fixed one keeps two builds' pages byte-identical
# (validation.json and the file times say when a data set was validated)
RUN_TIME = "1970-01-01T00:00:00Z"
MAX_FAILING_ROWS = 10
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass
class ExpectationOutcome:
    """One expectation's result, small enough for a log line and ``validation.json``."""

    suite: str
    name: str  # expectation type and its arguments, e.g. "expect_column_pair_values_to_be_equal(...)"
    success: bool
    description: str = ""  # the suite's note: what the expectation means for the data set
    element_count: int | None = None
    unexpected_count: int | None = None
    failing_rows: list[dict[str, Any]] = field(default_factory=list)  # row ids, at most MAX_FAILING_ROWS
    failing_values: list[dict[str, Any]] = field(default_factory=list)  # the checked values of those rows
    observed: Any = None  # for expectations on a whole column or table
    error: str | None = None  # GX could not evaluate the expectation (e.g. a missing column)

    def describe(self) -> str:
        """A few indented lines saying what failed and where."""
        lines = [f"[{self.suite}] {self.name}"]
        if self.description:
            lines.append(f"    {self.description}")
        if self.error:
            lines.append(f"    could not be evaluated: {self.error}")
        if self.unexpected_count:
            lines.append(f"    {self.unexpected_count} of {self.element_count} rows fail"
                         + (", e.g.:" if self.failing_rows else ""))
            for row, values in zip(self.failing_rows, self.failing_values, strict=True):
                where = " ".join(f"{key}={value}" for key, value in row.items())
                checked = ", ".join(f"{key}={value!r}" for key, value in values.items())
                lines.append(f"      {where}" + (f": {checked}" if checked else ""))
        elif self.observed is not None:
            lines.append(f"    observed: {self.observed}")
        return "\n".join(lines)


@dataclass
class ValidationReport:
    """Every expectation of every suite, validated against one data set folder."""

    folder: str
    results: list[ExpectationOutcome]
    docs_index: str | None = None  # the Data Docs index.html, when written

    @property
    def success(self) -> bool:
        return all(outcome.success for outcome in self.results)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.results if not outcome.success]

    def message(self) -> str:
        """Readable text: each failed expectation with its failing rows (or a one-line pass)."""
        failures = self.failures
        if not failures:
            head = f"Data set {self.folder} passed validation: {len(self.results)} expectations."
            return head + (f"\nData Docs: {self.docs_index}" if self.docs_index else "")
        lines = [f"Data set {self.folder} failed validation: {len(failures)} of {len(self.results)} "
                 "expectations failed."]
        lines += [outcome.describe() for outcome in failures]
        if self.docs_index:
            lines.append(f"Data Docs: {self.docs_index}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for outcome in self.results:
            suite = counts.setdefault(outcome.suite, {"expectations": 0, "failed": 0})
            suite["expectations"] += 1
            suite["failed"] += not outcome.success
        # no absolute paths: the file stays true when the folder moves (it is built aside, then renamed) and two
        # builds of the same data set write the same bytes
        return {"success": self.success, "docs_index": f"{DOCS_DIR}/index.html" if self.docs_index else None,
                "suites": counts, "results": [asdict(outcome) for outcome in self.results]}

    def moved(self, folder: Path) -> ValidationReport:
        """This report with its paths pointing into ``folder``, where the data set now lies."""
        docs = str(folder / DOCS_DIR / "index.html") if self.docs_index else None
        return ValidationReport(str(folder), self.results, docs)


class ValidationError(Exception):
    """A data set failed validation; ``report`` holds every result, ``kept`` where the failed folder was put."""

    def __init__(self, report: ValidationReport, kept: Path | None = None, target: Path | None = None):
        message = report.message()
        if kept is not None:
            message += (f"\nNothing was written to {target or 'the data sets'}; the rejected data set is kept for "
                        f"inspection in {kept} ({VALIDATION_FILE}, {DOCS_DIR}/).")
        super().__init__(message)
        self.report, self.kept = report, kept


def require_passed(folder: str | Path) -> dict:
    """The manifest of the data set in ``folder``, when its Great Expectations gate passed.

    Training takes only such a data set: ``hiericd datasets`` puts a folder
    in place after its gate passed, and ``validation.json`` records it.

    Raises:
        DatasetError: not a data set folder, never validated, or failed its gate (the message says what to do).
    """
    folder = Path(folder)
    manifest, verdict = folder / "manifest.json", folder / VALIDATION_FILE
    if not manifest.is_file():
        raise DatasetError(f"{folder}: not a data set folder (no manifest.json); build one with `hiericd datasets`")
    if not verdict.is_file():
        raise DatasetError(f"{folder}: no {VALIDATION_FILE}: this data set has not passed its Great Expectations "
                           "gate; rebuild it with `hiericd datasets`, which validates it before putting it in place")
    try:
        saved = json.loads(verdict.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DatasetError(f"{verdict}: unreadable ({exc}); rebuild the data set with `hiericd datasets`") from exc
    if saved.get("success") is not True:
        failed = [r["name"] for r in saved.get("results", []) if not r.get("success")]
        raise DatasetError(f"{folder}: the data set failed its Great Expectations gate ({len(failed)} expectation(s), "
                           f"e.g. {'; '.join(failed[:3]) or 'see the file'}; details in {verdict}); fix the rounds "
                           "and rebuild it with `hiericd datasets`")
    return json.loads(manifest.read_text(encoding="utf-8"))


def check_dataset(folder: str | Path, docs_dir: str | Path | None = None) -> ValidationReport:
    """Validate the data set in ``folder``; raise :class:`ValidationError` when any expectation fails."""
    report = validate_dataset(Path(folder), Path(docs_dir) if docs_dir is not None else None)
    if not report.success:
        raise ValidationError(report)
    return report


def validate_dataset(folder: Path, docs_dir: Path | None = None, *, suites_dir: Path = SUITES_DIR
                     ) -> ValidationReport:
    """Validate the data set in ``folder`` against every suite in ``suites_dir``.

    Writes ``validation.json`` (the report's :meth:`ValidationReport.to_dict`)
    into ``folder`` and, when ``docs_dir`` is given, a Data Docs site there
    (``docs_dir/index.html``; the previous site's pages are replaced). The
    site works offline (no CDN or S3 assets) and two validations of the same
    data set write the same bytes (see :func:`_offline_docs`).

    Args:
        folder: a data set folder written by :func:`hiericd_core.datasets.write_dataset`.
        docs_dir: where to write the Data Docs HTML, e.g. ``<catalog>/datasets/<version>/data_docs``.
        suites_dir: the folder of suite JSON files.

    Returns:
        The report; ``report.success`` is False when any expectation failed.
    """
    from hiericd_core.files import atomic_write_json

    folder = Path(folder)
    docs_dir = Path(docs_dir) if docs_dir is not None else None
    suites = {path: _read_suite(path) for path in sorted(Path(suites_dir).glob("*.json"))}
    if not suites:
        raise FileNotFoundError(f"no expectation suites (*.json) in {suites_dir}")
    label_space = _read_label_space(folder / "label_space.json")
    frames = dataset_frames(folder, label_space)
    parameters = {"min_count": label_space["min_count"]}
    reports, placed = frames["reports.parquet"], round_splits(folder)
    n_hash = len(reports)
    if placed and "round_id" in reports:
        n_hash -= int(reports["round_id"].isin(list(placed)).sum())
    for suite in suites.values():
        band = suite["meta"]["hiericd"].get("split_share_band")
        if band and n_hash:
            parameters |= split_share_bounds(n_hash, _fractions(folder), **band)
        elif band:  # every report's split comes from its round: no proportion to hold it to
            parameters |= {f"{split}_share_{end}": value for split in SPLITS
                           for end, value in (("min", 0.0), ("max", 1.0))}
    results = _run_suites(suites, frames, parameters, docs_dir)
    report = ValidationReport(str(folder), results,
                              str(docs_dir / "index.html") if docs_dir is not None else None)
    atomic_write_json(folder / VALIDATION_FILE, report.to_dict())
    return report


def split_share_bounds(n_reports: int, fractions=DEFAULT_FRACTIONS, z: float = 3.29, floor: float = 0.02
                       ) -> dict[str, float]:
    """Bounds on each split's share of reports: target fraction ± a binomial band.

    A report's split comes from a hash, so a split's count is Binomial(n, f);
    ``z`` = 3.29 keeps 99.9% of honest data sets inside (two-sided), and
    ``floor`` keeps large data sets from failing on a fraction of a percent.
    """
    n = max(n_reports, 1)
    bounds = {}
    for split, fraction in zip(SPLITS, fractions, strict=True):
        half = max(floor, z * math.sqrt(fraction * (1 - fraction) / n))
        bounds[f"{split}_share_min"] = max(0.0, fraction - half)
        bounds[f"{split}_share_max"] = min(1.0, fraction + half)
    return bounds


def _read_suite(path: Path) -> dict:
    suite = json.loads(path.read_text(encoding="utf-8"))
    table = suite.get("meta", {}).get("hiericd", {}).get("table")
    if table not in TABLES:
        raise ValueError(f"{path}: meta.hiericd.table must name one of {', '.join(TABLES)}, not {table!r}")
    return suite


def _read_label_space(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the data set with `hiericd datasets`")
    label_space = json.loads(path.read_text(encoding="utf-8"))
    missing = {"min_count", "codes", "train_counts"} - set(label_space)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}: rebuild the data set with `hiericd datasets`")
    return label_space


def _fractions(folder: Path) -> tuple[float, ...]:
    """The split fractions the data set was built with (its manifest), else 70/15/15."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        fractions = json.loads(manifest.read_text(encoding="utf-8")).get("config", {}).get("fractions")
        if fractions:
            return tuple(fractions)
    return DEFAULT_FRACTIONS


def _import_gx():
    """Import GX quietly: no analytics, no INFO lines, no deprecation noise from its imports."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx
    # this module sets its own logger to INFO when imported
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    return gx


def _context(gx, docs_dir: Path | None):
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites, analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    return gx.get_context(project_config=config, mode="ephemeral")


def _gx_suite(gx, suite: dict, path: Path):
    """GX suite from our JSON; unlike ``ExpectationSuite(**json)``, a bad expectation raises (GX only logs)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for index, spec in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(**spec).to_domain_obj())
        except Exception as exc:
            raise ValueError(f"{path}: expectation {index} ({spec.get('type')}) is not valid: {exc}") from exc
    return gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta"),
                               notes=suite.get("notes"))


def _run_suites(suites: dict[Path, dict], frames: dict, parameters: dict, docs_dir: Path | None
                ) -> list[ExpectationOutcome]:
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    context = _context(gx, docs_dir)
    source = context.data_sources.add_pandas("hiericd")
    outcomes = []
    runs: list[tuple[str, str, bool]] = []  # (suite, run name, success) per validation run: the index lists them
    for path, suite in suites.items():
        meta = suite["meta"]["hiericd"]
        table = frames[meta["table"]]
        batch = source.add_dataframe_asset(name=suite["name"]).add_batch_definition_whole_dataframe("table")
        gx_suite = context.suites.add(_gx_suite(gx, suite, path))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite["name"], data=batch, suite=gx_suite))
        order = {expectation.id: index for index, expectation in enumerate(gx_suite.expectations)}
        per_chunk = []
        frames_of_table = table if isinstance(table, SentenceChunks) else [table]
        for chunk, frame in enumerate(frames_of_table, 1):
            run_name = f"chunk-{chunk:04d}" if isinstance(table, SentenceChunks) else "whole"
            row_id = [column for column in meta.get("row_id", []) if column in frame]
            result = definition.run(
                batch_parameters={"dataframe": frame}, expectation_parameters=parameters,
                # no unexpected_index_column_names: GX then looks up every failing row cell by cell (minutes when
                # a whole column fails); it returns frame index labels instead, and _outcome reads the rows
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_FAILING_ROWS,
                               "return_unexpected_index_query": False},
                # a fixed run id: the Data Docs pages are named and dated by it (see RUN_TIME)
                run_id=RunIdentifier(run_name=run_name, run_time=RUN_TIME))
            runs.append((suite["name"], run_name, bool(result.success)))
            ordered = sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
            per_chunk.append([_outcome(suite["name"], r, frame, row_id) for r in ordered])
        outcomes += [_combine(chunks) for chunks in zip(*per_chunk, strict=True)]
    if docs_dir is not None:
        for stale in ("validations", "expectations"):  # pages of earlier runs (GX names them by run time)
            shutil.rmtree(Path(docs_dir) / stale, ignore_errors=True)
        context.build_data_docs(site_names=[DOCS_SITE])
        _offline_docs(Path(docs_dir), runs)
    return outcomes


# GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from CDNs and its logo from S3: a
# machine without internet (a hospital's) shows them broken, and a page that fetches assets tells a third party
# that someone opened it. The pages' content is static HTML, so the remote assets and the scripts that need them
# are dropped and a little local CSS keeps the tables readable.
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>\s*", re.I)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>\s*", re.I | re.S)
_REMOTE_IMG = re.compile(r"(<img\b[^>]*\bsrc=)[\"']https?://[^\"']*[\"']", re.I)
_REMOTE_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)", re.I)
# GX's element ids (a uuid4 per page); only these, so a report id that is a uuid shows as it is
_UUID = re.compile(r"(?<=collapse-body-)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GX_TIME = re.compile(r"\b\d{8}T\d{6}\.\d{6}Z\b")  # e.g. the batch's ge_load_time
# GX hashes the frame it validated; for Arrow-backed list columns it pickles them, and the pickle's bytes vary
_FINGERPRINT = re.compile(r"(pandas_data_fingerprint.{0,400}?)\b[0-9a-f]{32}\b", re.S)
_OFFLINE_CSS = """<style>/* hiericd: offline Data Docs, no CDN styles */
body { font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; vertical-align: top; text-align: left; }
.collapse, .tab-pane, .fade { display: block !important; opacity: 1 !important; }
.text-success, .ge-success-icon { color: #1a7f37; } .text-danger, .ge-failed-icon { color: #c62828; }
.navbar img { height: 32px !important; }
</style>
"""


def _offline_docs(docs_dir: Path, runs: list[tuple[str, str, bool]]) -> None:
    """Make the Data Docs site work offline and byte-stable; write its index page.

    Every page loses its remote stylesheets and scripts (see above), its logo
    comes from the site's own ``static/images``, and what GX makes up anew on
    each build is fixed: random element ids (uuid4) become numbers in order of
    appearance, load times become :data:`RUN_TIME`, and the frame fingerprint
    (not stable, see ``_FINGERPRINT``) is left out. GX's index page fills
    its tables with JavaScript from a CDN, so it is replaced by a static list
    of the suites and validation runs.
    """
    from hiericd_core.files import atomic_write_text

    fixed_time = RUN_TIME.replace("-", "").replace(":", "").replace("Z", ".000000Z")
    for page in sorted(docs_dir.rglob("*.html")):
        logo = "../" * (len(page.relative_to(docs_dir).parts) - 1) + "static/images/logo-long.png"
        text = page.read_text(encoding="utf-8")
        text = _REMOTE_URL.sub("none", _SCRIPT.sub("", _REMOTE_LINK.sub("", text)))
        text = _REMOTE_IMG.sub(lambda m, logo=logo: f'{m.group(1)}"{logo}"', text)
        text = _UUID.sub(_numbered_ids(), text)
        text = _FINGERPRINT.sub(r"\1not recorded", _GX_TIME.sub(fixed_time, text))
        text = text.replace("</head>", _OFFLINE_CSS + "</head>", 1)
        atomic_write_text(page, text)
    for sheet in sorted(docs_dir.rglob("*.css")):
        atomic_write_text(sheet, _REMOTE_URL.sub("none", sheet.read_text(encoding="utf-8")))
    atomic_write_text(docs_dir / "index.html", _docs_index(docs_dir, runs))


def _numbered_ids():
    """A ``re.sub`` replacement giving each distinct match a number, in order of appearance."""
    ids: dict[str, str] = {}
    return lambda m: ids.setdefault(m.group(0), f"id{len(ids) + 1:04d}")


def _docs_index(docs_dir: Path, runs: list[tuple[str, str, bool]]) -> str:
    """The site's index page: a link per expectation suite and per validation run, with the run's outcome."""
    from html import escape

    rows = []
    for suite, run_name, success in runs:
        pages = sorted((docs_dir / "validations" / suite / run_name).rglob("*.html"))
        links = " ".join(f'<a href="{escape(p.relative_to(docs_dir).as_posix())}">{escape(run_name)}</a>'
                         for p in pages) or escape(run_name)
        status = '<span class="text-success">passed</span>' if success else '<span class="text-danger">failed</span>'
        rows.append(f"<tr><td>{escape(suite)}</td><td>{links}</td><td>{status}</td></tr>")
    suites = "".join(f'<li><a href="expectations/{escape(p.name)}">{escape(p.stem)}</a></li>'
                     for p in sorted((docs_dir / "expectations").glob("*.html")))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hiericd data set validation</title>\n"
            '<link rel="shortcut icon" href="static/images/favicon.ico" type="image/x-icon"/>\n'
            + _OFFLINE_CSS + "</head><body>\n<h1>Data set validation (Great Expectations)</h1>\n"
            "<h2>Validation runs</h2>\n<table><tr><th>suite</th><th>run</th><th>outcome</th></tr>\n"
            + "\n".join(rows) + "\n</table>\n"
            f"<h2>Expectation suites</h2>\n<ul>{suites}</ul>\n</body></html>\n")


def _outcome(suite: str, result, frame, row_id: list[str]) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    outcome = ExpectationOutcome(suite=suite, name=_expectation_name(config), success=bool(result.success),
                                 description=_text(config.notes))
    outcome.error = _exception_message(result.exception_info)
    if "unexpected_count" in details:
        outcome.element_count = _plain(details.get("element_count"))
        outcome.unexpected_count = _plain(details.get("unexpected_count"))
        labels = details.get("partial_unexpected_index_list") or []
        checked = [column for column in _domain_columns(config.kwargs) if column in frame and column not in row_id]
        for label in labels[:MAX_FAILING_ROWS]:
            outcome.failing_rows.append({key: _plain(frame.at[label, key]) for key in row_id})
            outcome.failing_values.append({key: _plain(frame.at[label, key]) for key in checked})
    mismatched = (details.get("details") or {}).get("mismatched")
    outcome.observed = _plain(mismatched if mismatched else details.get("observed_value"))
    return outcome


def _combine(chunks: tuple[ExpectationOutcome, ...]) -> ExpectationOutcome:
    """One expectation's outcome over all chunks: counts summed, the first failing rows, the first failure's
    observed value and error."""
    failed = [c for c in chunks if not c.success]
    first = failed[0] if failed else chunks[0]
    if len(chunks) == 1:
        return first
    combined = ExpectationOutcome(suite=first.suite, name=first.name, success=not failed,
                                  description=first.description, observed=first.observed, error=first.error)
    if first.element_count is not None:
        combined.element_count = sum(c.element_count or 0 for c in chunks)
        combined.unexpected_count = sum(c.unexpected_count or 0 for c in chunks)
    for chunk in chunks:
        room = MAX_FAILING_ROWS - len(combined.failing_rows)
        combined.failing_rows += chunk.failing_rows[:room]
        combined.failing_values += chunk.failing_values[:room]
    return combined


def _domain_columns(kwargs: dict) -> list[str]:
    """The columns an expectation checks, in its argument order."""
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list", []))


def _expectation_name(config) -> str:
    kwargs = dict(config.kwargs)
    condition = kwargs.pop("row_condition", None)
    arguments = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items()
                          if key not in ("batch_id", "result_format", "condition_parser"))
    name = f"{config.type}({arguments})"
    if condition:
        name += f" where {_condition_text(condition)}"
    return name


def _condition_text(condition) -> str:
    data = condition.dict() if hasattr(condition, "dict") else condition
    if isinstance(data, dict) and {"column", "operator"} <= set(data):
        column = data["column"]["name"] if isinstance(data["column"], dict) else data["column"]
        return f"{column} {data['operator']} {data.get('parameter')}"
    return str(condition)


def _short(value) -> str:
    if isinstance(value, (list, tuple, set)) and len(value) > 4:
        return f"[{len(value)} values]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text(notes) -> str:
    if isinstance(notes, list):
        return " ".join(str(note) for note in notes)
    return str(notes) if notes else ""


def _exception_message(info) -> str | None:
    """GX nests exception info by metric; return the first message raised."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        message = _exception_message(value)
        if message:
            return message
    return None


def _plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN/NA to None, containers recursively."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
