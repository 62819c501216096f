"""Writing a merged round: a BRAT folder that loads back as a round, Parquet and CSV tables, a summary.

The same input gives the same bytes: rows are sorted, Parquet carries a fixed
schema and no pandas metadata, and the folder is built aside and swapped in
whole.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from hiericd_core.adjudication import write_adjudication_queue
from hiericd_core.brat import Note, TextBound, format_ann
from hiericd_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text, replace_dir, staging_dir
from hiericd_core.merge import (
    ANNOTATION_COLUMNS,
    DECISION_LABEL,
    DISPUTE_COLUMNS,
    REPORT_COLUMNS,
    MergedReport,
    MergeResult,
    assert_accounted,
    covered_text,
    format_fragments,
    merge_quality,
    ordered_sources,
    source_id,
)
from hiericd_core.rounds import Round

ADJUDICATION_DIR = "adjudication"  # the queue's folder inside a merged round written with queue=True
_INT_COLUMNS = frozenset({"start", "end", "n_final", "quarantined"})  # Parquet int64; the rest strings


def merged_ann(report: MergedReport) -> str:
    """The ``.ann`` text of a merged report: a ``Diagnosis`` entity and a code note per final annotation.

    The note holds the code only, so that the merged folder reads back as a
    (single-coder) round; provenance lives in ``annotations.csv``.
    """
    records: list[TextBound | Note] = []
    for i, a in enumerate(report.annotations, 1):
        records.append(TextBound(a.id, DECISION_LABEL, a.fragments, a.text))
        records.append(Note(f"#{i}", "AnnotatorNotes", a.id, a.code))
    return format_ann(records)


def annotation_rows(result: MergeResult) -> list[dict]:
    """One row per final annotation of the reports that are not pending (columns ``ANNOTATION_COLUMNS``)."""
    rows = []
    for rid, merged in result.reports.items():  # sorted by report id; annotations by T number
        if merged.status == "pending":
            continue
        for a in merged.annotations:
            rows.append({"round_id": result.round_id, "report_id": rid, "id": a.id, "code": a.code,
                         "start": a.start, "end": a.end, "fragments": format_fragments(a.fragments),
                         "text": a.text, "sources": "+".join(a.sources), "rule": a.rule,
                         "source_ids": "+".join(a.source_ids)})
    return rows


def report_rows(result: MergeResult, round: Round) -> list[dict]:
    """One row per report (columns ``REPORT_COLUMNS``): status, reason for visit, text.

    ``quarantined`` counts the items of the report left out while loading the
    round (bad BRAT lines, invalid codes): its annotations may be incomplete.
    """
    bad = Counter(q.report_id for q in round.quarantined if q.report_id is not None)
    rows = []
    for rid, merged in result.reports.items():
        report = round.reports[rid]
        rows.append({"round_id": result.round_id, "report_id": rid, "status": merged.status,
                     "coders": "+".join(sorted(report.coders)), "n_final": len(merged.annotations),
                     "quarantined": bad[rid], "reason_for_visit": report.reason_for_visit, "text": report.text})
    return rows


def dispute_rows(result: MergeResult, round: Round) -> list[dict]:
    """One row per dispute with its outcome (columns ``DISPUTE_COLUMNS``)."""
    rows = []
    for rid, merged in result.reports.items():
        text = round.reports[rid].text
        for d in merged.disputes:
            rows.append({"round_id": result.round_id, "report_id": rid, "region_start": d.start,
                         "region_end": d.end, "region": format_fragments(d.region),
                         "region_text": covered_text(text, d.region), "kind": d.kind, "outcome": d.outcome,
                         "senior_codes": "+".join(d.senior_codes),
                         "coders": "+".join(ordered_sources(a.source for a in d.annotations)),
                         "codes": "+".join(f"{a.source}:{a.code}" for a in d.annotations),
                         "source_ids": "+".join(source_id(a) for a in d.annotations)})
    return rows


def write_merge(result: MergeResult, round: Round, out_dir: str | Path, *, queue: bool = False) -> dict:
    """Write the merged round into ``out_dir``, replacing it whole; the same input gives the same bytes.

    Writes under ``out_dir``:

    * ``brat/<report_id>.txt`` + ``.ann`` for every report not pending, and
      ``brat/round.toml`` (language and round id of ``round``; codes in
      notes), so that ``brat/`` loads as a single-coder round;
    * ``annotations.parquet`` and ``annotations.csv``: one row per final
      annotation (:data:`ANNOTATION_COLUMNS`), sorted by report id then id;
    * ``reports.parquet``: one row per report, pending ones included
      (:data:`REPORT_COLUMNS`): status, reason for visit and text;
    * ``disputes.csv``: one row per dispute (:data:`DISPUTE_COLUMNS`);
    * ``pending.txt``: the pending report ids, one a line;
    * ``merge_summary.json``: the counts, plus ``quality`` when reports carry truth;
    * with ``queue``, when reports are pending: the adjudication queue in
      ``adjudication/`` (:data:`ADJUDICATION_DIR`).

    The folder is built in a scratch folder beside ``out_dir`` and swapped in
    with renames (:func:`~hiericd_core.files.replace_dir`): a merge killed
    halfway leaves the previous merge whole, never ``brat/`` files that
    disagree with the summary, and nothing of an earlier merge lingers (a
    report merged before and pending now, a queue the senior has emptied).

    Returns:
        The summary written to ``merge_summary.json``.
    """
    out_dir = Path(out_dir)
    assert_accounted(result, round)
    with staging_dir(out_dir.parent, out_dir.name) as scratch:
        folder = scratch / out_dir.name
        summary = _write_files(result, round, folder)
        if queue and result.pending:
            write_adjudication_queue(result, round, folder / ADJUDICATION_DIR)
        replace_dir(folder, out_dir)
    return summary


def _write_files(result: MergeResult, round: Round, out_dir: Path) -> dict:
    """The files of :func:`write_merge`, into a new folder; the summary last."""
    brat = out_dir / "brat"
    for rid, merged in result.reports.items():
        if merged.status == "pending":
            continue
        atomic_write_text(brat / f"{rid}.txt", round.reports[rid].text)
        atomic_write_text(brat / f"{rid}.ann", merged_ann(merged))
    atomic_write_text(brat / "round.toml", _round_toml(round))

    rows = annotation_rows(result)
    atomic_write_text(out_dir / "annotations.csv", _csv(ANNOTATION_COLUMNS, rows))
    atomic_write_bytes(out_dir / "annotations.parquet", _parquet(ANNOTATION_COLUMNS, rows))
    atomic_write_bytes(out_dir / "reports.parquet", _parquet(REPORT_COLUMNS, report_rows(result, round)))
    atomic_write_text(out_dir / "disputes.csv", _csv(DISPUTE_COLUMNS, dispute_rows(result, round)))
    atomic_write_text(out_dir / "pending.txt", "".join(f"{rid}\n" for rid in result.pending))

    summary = merge_summary(result, round)
    atomic_write_json(out_dir / "merge_summary.json", summary)
    return summary


def merge_summary(result: MergeResult, round: Round) -> dict:
    """The counts of a merge, plus ``quality`` against the truth when reports carry one."""
    summary = {"round_id": result.round_id, **result.counts}
    if any(r.truth is not None for r in round.reports.values()):
        summary["quality"] = merge_quality(result, round)
    return summary


def _round_toml(round: Round) -> str:
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ("# merged annotations of a round: codes in the AnnotatorNotes of Diagnosis entities\n"
            f"[round]\nid = {quoted(round.id)}\n"
            + (f"date = {quoted(round.config.date)}\n" if round.config.date else "")
            + f"language = {quoted(round.config.language)}\n"
            f"code_system = {quoted(round.config.code_system)}\n"
            f"\n[codes]\nsource = \"note\"\nlabels = [{quoted(DECISION_LABEL)}]\n"
            f"accept = [{', '.join(quoted(s) for s in round.config.codes.accept)}]\n")


def _csv(columns: Sequence[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _parquet(columns: Sequence[str], rows: list[dict]) -> bytes:
    """Parquet bytes with a fixed schema; no pandas metadata, so nothing varies between runs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.string()) for c in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()
