"""Data-quality checks on a built data set, run with Great Expectations (GX 1.x).

The expectation suites are GX suite JSON in ``expectations/`` at the repository
root (one file per suite; ``expectations/README.md`` lists what each checks).
A suite's ``meta.hiericd`` names the table it checks (``sentences.parquet``,
``reports.parquet`` or ``label_space.json``) and the columns that identify a
row in messages. Checks across columns or tables run on columns derived here
first, with vectorised Arrow/pandas code (``mask_len``, ``mask_sum``,
``report_splits``, ...), so the suites can use GX's built-in expectations only.
Suite parameters (``{"$PARAMETER": name}``) are filled in at validation time:
``<split>_share_min``/``_max`` from the number of reports (see
:func:`split_share_bounds`) and ``min_count`` from ``label_space.json``.
Split proportions are checked only where a hash made the split: reports that
a round's split placed (``manifest.json``'s ``config.round_splits``) get a
null ``in_<split>``, and when no report was placed by the hash the bounds are
[0, 1] (the rounds, not chance, fix the shares).

The sentence table is validated in chunks of whole reports
(``SENTENCE_CHUNK`` rows or a little more), so a data set larger than memory
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
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hiericd_core.datasets import SPLITS

SUITES_DIR = Path(__file__).resolve().parent.parent / "expectations"
DOCS_SITE = "hiericd"
MAX_FAILING_ROWS = 10
SENTENCE_CHUNK = 200_000  # sentence rows validated at a time (whole reports)
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
        return {"folder": self.folder, "success": self.success, "docs_index": self.docs_index,
                "suites": counts, "results": [asdict(outcome) for outcome in self.results]}


class ValidationError(Exception):
    """A data set failed validation; ``report`` holds every result."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.message())
        self.report = report


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
    (``docs_dir/index.html``; the previous site's pages are replaced).

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
    frames = _chunked_frames(folder, label_space)
    parameters = {"min_count": label_space["min_count"]}
    reports, round_splits = frames["reports.parquet"], _round_splits(folder)
    n_hash = len(reports)
    if round_splits and "round_id" in reports:
        n_hash -= int(reports["round_id"].isin(list(round_splits)).sum())
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
    atomic_write_json(folder / "validation.json", report.to_dict())
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


class SentenceChunks:
    """The sentence table's frames (derived columns added), a chunk of whole reports at a time; re-iterable."""

    def __init__(self, path: Path, sizes: list[int], reports, label_codes: list[str]):
        self.path, self.sizes, self.reports, self.label_codes = path, sizes, reports, label_codes

    def __iter__(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path) as handle:
            schema = handle.schema_arrow
            batches = handle.iter_batches(batch_size=65_536)
            held, rows = [], 0
            for size in self.sizes:
                while rows < size:
                    batch = next(batches)
                    held.append(batch)
                    rows += batch.num_rows
                table = pa.Table.from_batches(held, schema=schema)
                yield _sentence_frame(table.slice(0, size), self.reports, self.label_codes)
                rest = table.slice(size)
                held, rows = rest.to_batches(), rest.num_rows


def _report_runs(path: Path) -> dict | None:
    """Rows per report id, in file order, when each report's rows are consecutive; else None."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as handle:
        if "report_id" not in handle.schema_arrow.names:
            return None
        runs: dict = {}
        last = object()
        for batch in handle.iter_batches(batch_size=65_536, columns=["report_id"]):
            for rid in batch.column(0).to_pylist():
                if rid != last:
                    if rid in runs:
                        return None
                    runs[rid], last = 0, rid
                runs[rid] += 1
    return runs


def _chunk_sizes(runs: dict, chunk: int) -> list[int]:
    """Cut consecutive report runs into chunks of at least ``chunk`` rows (the last may be smaller)."""
    sizes, size = [], 0
    for n in runs.values():
        size += n
        if size >= chunk:
            sizes.append(size)
            size = 0
    return sizes + [size] if size or not sizes else sizes


def _chunked_frames(folder: Path, label_space: dict) -> dict:
    """The tables the suites validate, keyed by file name, with the derived columns added: the report table
    and label space whole, the sentence table as :class:`SentenceChunks`."""
    from collections import Counter

    import pyarrow.parquet as pq

    for name in ("sentences.parquet", "reports.parquet"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: build the data set with `hiericd datasets`")
    path = folder / "sentences.parquet"
    reports = _report_frame(pq.read_table(folder / "reports.parquet"), _round_splits(folder))
    runs = _report_runs(path)
    if runs is not None:
        sizes = _chunk_sizes(runs, SENTENCE_CHUNK)
    else:  # scattered reports (or no report_id): one chunk, the whole table
        with pq.ParquetFile(path) as handle:
            sizes, names = [handle.metadata.num_rows], handle.schema_arrow.names
        if "report_id" in names:
            runs = Counter(pq.read_table(path, columns=["report_id"]).column(0).to_pylist())
    if runs is not None and "report_id" in reports:
        reports["sentence_rows"] = reports["report_id"].map(runs).fillna(0)
    return {"sentences.parquet": SentenceChunks(path, sizes, reports, label_space["codes"]),
            "reports.parquet": reports, "label_space.json": _label_space_frame(label_space)}


def _sentence_frame(table, reports, label_codes: list[str]):
    import pyarrow.compute as pc

    derived = {}
    if _is_list_column(table, "tokens"):
        derived["n_tokens"] = pc.list_value_length(table["tokens"]).to_pandas()
    if _is_list_column(table, "attention_mask"):
        derived["mask_len"] = pc.list_value_length(table["attention_mask"]).to_pandas()
        derived["mask_sum"] = _list_sums(table["attention_mask"])
    if _is_list_column(table, "codes"):
        derived["codes_in_label_space"] = _all_in(table["codes"], label_codes)
    frame = _to_pandas(table)
    for name, values in derived.items():
        frame[name] = values
    if {"report_id", "split"} <= set(frame.columns):
        frame["report_splits"] = frame.groupby("report_id", sort=False)["split"].transform("nunique")
    if "report_id" in frame and {"report_id", "split"} <= set(reports.columns):
        split_of = reports.drop_duplicates("report_id").set_index("report_id")["split"]
        frame["report_split"] = frame["report_id"].map(split_of)
    return frame


def _report_frame(table, round_splits: dict[str, str] | None = None):
    """Reports plus ``in_<split>``; null for reports a round's split placed, unless every report is such."""
    frame = _to_pandas(table)
    by_round = None
    if round_splits and "round_id" in frame:
        by_round = frame["round_id"].isin(list(round_splits)).to_numpy(dtype=bool)
        if by_round.all():
            by_round = None
    if "split" in frame:
        for split in SPLITS:
            values = (frame["split"] == split).astype("float64")
            if by_round is not None:
                values[by_round] = float("nan")
            frame[f"in_{split}"] = values
    return frame


def _label_space_frame(label_space: dict):
    import pandas as pd

    codes = list(label_space["codes"])
    counts = label_space.get("train_counts", {})
    return pd.DataFrame({"code": pd.Series(codes, dtype="str"),
                         "train_count": pd.Series([counts.get(code) for code in codes], dtype="Int64")})


def _to_pandas(table):
    """Arrow → pandas: lists stay Arrow-backed (no million numpy arrays), ints and bools nullable."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}

    def mapper(arrow_type):
        if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
            return pd.ArrowDtype(arrow_type)
        return nullable.get(arrow_type)

    return table.to_pandas(types_mapper=mapper)


def _is_list_column(table, name: str) -> bool:
    import pyarrow as pa

    if name not in table.column_names:
        return False
    arrow_type = table.schema.field(name).type
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


def _list_sums(column):
    """Per-row sum of a list<int> column (0 for an empty or null list)."""
    import numpy as np
    import pyarrow.compute as pc

    lists = column.combine_chunks()
    values = pc.fill_null(pc.list_flatten(lists), 0).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return np.bincount(parents, weights=values, minlength=len(lists)).astype("int64")


def _all_in(column, allowed: list[str]):
    """Per row: every element of a list<str> column is in ``allowed`` (True for an empty list)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = column.combine_chunks()
    inside = pc.is_in(pc.list_flatten(lists), value_set=pa.array(allowed, pa.string()))
    outside = pc.invert(pc.fill_null(inside, False)).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return np.bincount(parents, weights=outside, minlength=len(lists)) == 0


def _read_suite(path: Path) -> dict:
    suite = json.loads(path.read_text(encoding="utf-8"))
    table = suite.get("meta", {}).get("hiericd", {}).get("table")
    if table not in ("sentences.parquet", "reports.parquet", "label_space.json"):
        raise ValueError(f"{path}: meta.hiericd.table must name sentences.parquet, reports.parquet or "
                         f"label_space.json, not {table!r}")
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


def _round_splits(folder: Path) -> dict[str, str]:
    """Round id -> split for rounds that placed their reports themselves (the manifest's ``config.round_splits``)."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return dict(json.loads(manifest.read_text(encoding="utf-8")).get("config", {}).get("round_splits") or {})
    return {}


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
    context = _context(gx, docs_dir)
    source = context.data_sources.add_pandas("hiericd")
    outcomes = []
    for path, suite in suites.items():
        meta = suite["meta"]["hiericd"]
        table = frames[meta["table"]]
        batch = source.add_dataframe_asset(name=suite["name"]).add_batch_definition_whole_dataframe("table")
        gx_suite = context.suites.add(_gx_suite(gx, suite, path))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite["name"], data=batch, suite=gx_suite))
        order = {expectation.id: index for index, expectation in enumerate(gx_suite.expectations)}
        per_chunk = []
        for frame in (table if isinstance(table, SentenceChunks) else [table]):
            row_id = [column for column in meta.get("row_id", []) if column in frame]
            result = definition.run(
                batch_parameters={"dataframe": frame}, expectation_parameters=parameters,
                # no unexpected_index_column_names: GX then looks up every failing row cell by cell (minutes when
                # a whole column fails); it returns frame index labels instead, and _outcome reads the rows
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_FAILING_ROWS,
                               "return_unexpected_index_query": False})
            ordered = sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
            per_chunk.append([_outcome(suite["name"], r, frame, row_id) for r in ordered])
        outcomes += [_combine(chunks) for chunks in zip(*per_chunk, strict=True)]
    if docs_dir is not None:
        for stale in ("validations", "expectations"):  # pages of earlier runs (GX names them by run time)
            shutil.rmtree(Path(docs_dir) / stale, ignore_errors=True)
        context.build_data_docs(site_names=[DOCS_SITE])
    return outcomes


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
