"""The tables the expectation suites check, as pandas frames with the derived columns added.

Checks across columns or tables run on columns derived here with vectorised
Arrow/pandas code (``n_tokens``, ``mask_len``, ``mask_sum``,
``codes_in_label_space``, ``report_splits``, ``report_split``,
``in_<split>``, ``sentence_rows``, and the per-split counts of ``splits``),
so the suites can use GX's built-in expectations only. The sentence table comes as :class:`SentenceChunks`:
chunks of whole reports (``SENTENCE_CHUNK`` rows or a little more), or the
whole table as one chunk when a report's rows are not consecutive.
"""

from __future__ import annotations

import json
from pathlib import Path

from hiericd_core.datasets import SPLITS

SENTENCE_CHUNK = 200_000  # sentence rows validated at a time (whole reports)


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


def chunk_sizes(runs: dict, chunk: int) -> list[int]:
    """Cut consecutive report runs into chunks of at least ``chunk`` rows (the last may be smaller)."""
    sizes, size = [], 0
    for n in runs.values():
        size += n
        if size >= chunk:
            sizes.append(size)
            size = 0
    return sizes + [size] if size or not sizes else sizes


def dataset_frames(folder: Path, label_space: dict) -> dict:
    """The tables the suites validate, keyed by file name, with the derived columns added: the report table
    and label space whole, the sentence table as :class:`SentenceChunks`."""
    from collections import Counter

    import pyarrow.parquet as pq

    for name in ("sentences.parquet", "reports.parquet"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: build the data set with `hiericd datasets`")
    path = folder / "sentences.parquet"
    reports = _report_frame(pq.read_table(folder / "reports.parquet"), round_splits(folder))
    runs = _report_runs(path)
    if runs is not None:
        sizes = chunk_sizes(runs, SENTENCE_CHUNK)
    else:  # scattered reports (or no report_id): one chunk, the whole table
        with pq.ParquetFile(path) as handle:
            sizes, names = [handle.metadata.num_rows], handle.schema_arrow.names
        if "report_id" in names:
            runs = Counter(pq.read_table(path, columns=["report_id"]).column(0).to_pylist())
    if runs is not None and "report_id" in reports:
        reports["sentence_rows"] = reports["report_id"].map(runs).fillna(0)
    return {"sentences.parquet": SentenceChunks(path, sizes, reports, label_space["codes"]),
            "reports.parquet": reports, "label_space.json": _label_space_frame(label_space),
            "splits": _splits_frame(path, reports, round_splits(folder))}


def _splits_frame(sentences: Path, reports, placed: dict[str, str]):
    """One row per split: ``reports``, ``sentences``, ``focus_sentences``, ``classifier_rows`` counted in the
    tables, ``needs_reports`` and ``for_training`` (see ``expectations/README.md``).

    Train and dev always need reports (training learns on train and selects on dev); test needs them only when
    the hash made every split: a round that places its reports (CodiEsp's train and dev rounds) may leave test
    empty. The sentence counts come from one pass over three columns, so the check holds for a data set larger
    than memory and does not depend on how the sentence table is cut into chunks.
    """
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts = {split: {"sentences": 0, "focus_sentences": 0, "classifier_rows": 0} for split in SPLITS}
    with pq.ParquetFile(sentences) as handle:
        columns = [c for c in ("split", "is_focus", "classifier_row") if c in handle.schema_arrow.names]
        for batch in handle.iter_batches(batch_size=65_536, columns=columns) if "split" in columns else ():
            split = batch.column("split")
            for name in SPLITS:
                rows = pc.fill_null(pc.equal(split, name), False)
                counts[name]["sentences"] += pc.sum(rows).as_py() or 0
                for column, key in (("is_focus", "focus_sentences"), ("classifier_row", "classifier_rows")):
                    if column in columns:
                        hits = pc.and_(rows, pc.fill_null(batch.column(column), False))
                        counts[name][key] += pc.sum(hits).as_py() or 0
    n_reports = reports["split"].value_counts().to_dict() if "split" in reports else {}
    by_hash = not placed or "round_id" not in reports or not reports["round_id"].isin(list(placed)).any()
    return pd.DataFrame({
        "split": pd.Series(SPLITS, dtype="str"),
        "reports": pd.Series([int(n_reports.get(split, 0)) for split in SPLITS], dtype="Int64"),
        **{key: pd.Series([counts[split][key] for split in SPLITS], dtype="Int64")
           for key in ("sentences", "focus_sentences", "classifier_rows")},
        "needs_reports": pd.Series([split != "test" or by_hash for split in SPLITS], dtype="boolean"),
        "for_training": pd.Series([split != "test" for split in SPLITS], dtype="boolean"),
    })


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


def round_splits(folder: Path) -> dict[str, str]:
    """Round id -> split for rounds that placed their reports themselves (the manifest's ``config.round_splits``)."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return dict(json.loads(manifest.read_text(encoding="utf-8")).get("config", {}).get("round_splits") or {})
    return {}
