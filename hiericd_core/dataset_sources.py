"""Where a data set's reports come from: the winning version of each report over merged rounds.

:func:`choose` decides, from the rounds' small columns only, which round's
version of each report a data set takes (the last adjudicated one; pending
reports and reports with quarantined items are left out and counted);
:func:`fetch` then reads the texts, reasons for visit and final annotations
of a few thousand of those reports at a time, so memory stays flat.
:func:`collect` does both for every report at once.
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Choice", "DatasetError", "MergedRound", "SourceReport", "choose", "collect", "fetch", "parquet_batches"]


class DatasetError(Exception):
    """Input that cannot make a data set (the message says what to do)."""


@dataclass
class SourceReport:
    """A report as a merged round gives it."""

    report_id: str
    round_id: str
    text: str
    reason_for_visit: str
    annotations: list[tuple[str, tuple[tuple[int, int], ...]]]  # (code, fragments)


@dataclass(frozen=True)
class MergedRound:
    """A merged round folder, its round id and language."""

    path: Path
    round_id: str
    language: str


@dataclass
class Choice:
    """Which version of each report a data set takes (see :func:`choose`); no texts, so it stays small."""

    rounds: list[MergedRound]
    winners: dict[str, tuple[int, int]]  # report id -> (index into rounds, row of that round's reports.parquet)
    seen_in: dict[str, list[str]]  # report id -> the rounds it appears in, in the order given
    info: dict  # "left_out" (reason -> count) and "superseded"
    language: str


def parquet_batches(path: Path, columns: list[str], batch_size: int = 65_536):
    """Arrow record batches of ``columns`` of a Parquet file, in file order (the file is never read whole)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as handle:
        yield from handle.iter_batches(batch_size=batch_size, columns=columns)


def _merged_round(merged_dir: Path) -> MergedRound:
    import pyarrow.parquet as pq

    reports_file = merged_dir / "reports.parquet"
    if not reports_file.is_file():
        raise DatasetError(f"{merged_dir}: no reports.parquet; run `hiericd merge` on the round first")
    language = "en"
    toml = merged_dir / "brat" / "round.toml"
    if toml.is_file():
        language = tomllib.loads(toml.read_text(encoding="utf-8")).get("round", {}).get("language", "en")
    with pq.ParquetFile(reports_file) as handle:
        round_ids = next(handle.iter_batches(batch_size=1, columns=["round_id"]), None)
    round_id = round_ids.column(0)[0].as_py() if round_ids is not None and round_ids.num_rows else merged_dir.name
    return MergedRound(merged_dir, round_id, language)


def choose(merged_dirs: Sequence[Path]) -> Choice:
    """Pick each report's winning version over the rounds (the last adjudicated one), reading only the
    small columns of each round's ``reports.parquet`` in batches.

    Raises:
        DatasetError: a folder is not a merged round, or the rounds are in different languages.
    """
    rounds = [_merged_round(Path(d)) for d in merged_dirs]
    winners: dict[str, tuple[int, int]] = {}
    seen_in: dict[str, list[str]] = defaultdict(list)
    superseded: list[dict] = []
    left_out: dict[str, str] = {}
    for index, merged in enumerate(rounds):
        row = 0
        for batch in parquet_batches(merged.path / "reports.parquet", ["report_id", "status", "quarantined"]):
            for rid, status, quarantined in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True):
                seen_in[rid].append(merged.round_id)
                if status == "pending":
                    left_out.setdefault(rid, "pending adjudication")
                elif quarantined:
                    left_out.setdefault(rid, "quarantined items")
                else:
                    if rid in winners:
                        superseded.append({"report_id": rid, "was": rounds[winners[rid][0]].round_id,
                                           "now": merged.round_id})
                    left_out.pop(rid, None)
                    winners[rid] = (index, row)
                row += 1
    drops = Counter(reason for rid, reason in left_out.items() if rid not in winners)
    languages = {r.language for r in rounds}
    if len(languages) > 1:
        raise DatasetError(f"rounds in different languages ({', '.join(sorted(languages))}); build them apart")
    info = {"left_out": dict(sorted(drops.items())), "superseded": superseded}
    return Choice(rounds, winners, dict(seen_in), info, languages.pop() if languages else "en")


def fetch(choice: Choice, report_ids: Sequence[str]) -> dict[str, SourceReport]:
    """The winning versions of ``report_ids`` (text, reason for visit, final annotations), read in batches.

    Each round's files are scanned once per call; call it with a few thousand
    reports at a time to keep the memory flat.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted: dict[int, dict[int, str]] = defaultdict(dict)  # round -> row -> report id
    for rid in report_ids:
        index, row = choice.winners[rid]
        wanted[index][row] = rid
    out: dict[str, SourceReport] = {}
    for index, rows in wanted.items():
        merged = choice.rounds[index]
        start = 0
        for batch in parquet_batches(merged.path / "reports.parquet", ["text", "reason_for_visit"]):
            picked = [r - start for r in rows if start <= r < start + batch.num_rows]
            if picked:
                texts = batch.column(0).take(picked).to_pylist()
                reasons = batch.column(1).take(picked).to_pylist()
                for r, text, reason in zip(picked, texts, reasons, strict=True):
                    rid = rows[r + start]
                    out[rid] = SourceReport(rid, merged.round_id, text, reason or "", [])
            start += batch.num_rows
        ids = pa.array(sorted(rows.values()), pa.string())
        for batch in parquet_batches(merged.path / "annotations.parquet", ["report_id", "code", "fragments"]):
            keep = np.flatnonzero(pc.is_in(batch.column(0), value_set=ids).to_numpy(zero_copy_only=False))
            if not len(keep):
                continue
            for rid, code, fragments in zip(*(batch.column(i).take(keep).to_pylist() for i in range(3)),
                                            strict=True):
                out[rid].annotations.append(
                    (code, tuple(tuple(int(x) for x in f.split()) for f in fragments.split(";"))))
    return out


def collect(merged_dirs: Sequence[Path]) -> tuple[dict[str, SourceReport], dict[str, list[str]], dict, str]:
    """Pick each report's winning version over the rounds (last adjudicated wins), texts included.

    Holds every report in memory; :func:`build_dataset` uses :func:`choose`
    and :func:`fetch` a chunk at a time instead.

    Returns:
        ``(reports, rounds_per_report, drops, language)``.
    """
    choice = choose(merged_dirs)
    return fetch(choice, sorted(choice.winners)), choice.seen_in, choice.info, choice.language
