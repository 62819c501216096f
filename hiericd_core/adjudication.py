"""The adjudication queue: a brat project in which the senior decides the pending disputes.

For every pending report (see :mod:`hiericd_core.merge`) the queue holds the
report text and an ``.ann`` showing every coder's annotations side by side
(entity label = the coder, note = the code) plus a red ``Dispute`` entity over
each disputed region, with a ``Kind`` attribute (conflict or unmatched) and a
note saying who coded what. The senior marks each decision as a
``Diagnosis`` entity (the round's first coded label, when ``round.toml``
restricts labels) with the code in its note, and copies the ``.ann`` files
into the round's ``senior/`` folder; the merge ignores the queue's own
coder-labelled and ``Dispute`` entities there, so nothing needs deleting.
"""

from __future__ import annotations

from pathlib import Path

from hiericd_core.annotation import Annotation
from hiericd_core.brat import Attribute, Note, Record, TextBound, format_ann
from hiericd_core.files import atomic_write_text
from hiericd_core.merge import (
    DECISION_LABEL,
    DISPUTE_LABEL,
    Dispute,
    MergeResult,
    covered_text,
    fragments_overlap,
)
from hiericd_core.rounds import Report, Round

KIND_ATTRIBUTE = "Kind"
# distinct, light enough to read black text on; red is kept for Dispute, green for the decision
CODER_COLORS = ("#8fb2ff", "#ffc266", "#c9a0ff", "#7fe2ff", "#f5a3c7", "#d9d97a", "#b8b8b8", "#ffe680")
DISPUTE_COLOR = "#ff4d4d"
DECISION_COLOR = "#66dd66"


def decision_label(round: Round) -> str:
    """The entity label the senior's decisions carry: ``Diagnosis``, or the round's first coded label."""
    labels = round.config.codes.labels
    return DECISION_LABEL if not labels or DECISION_LABEL in labels else labels[0]


def queue_coders(round: Round) -> list[str]:
    """Every coder of the round, sorted (one entity type each)."""
    return sorted(set(round.coders) | {c for r in round.reports.values() for c in r.coders})


def annotation_conf(coders: list[str], decision: str) -> str:
    """``annotation.conf``: one entity type per coder, ``Dispute`` and the decision label."""
    entities = "\n".join([*coders, DISPUTE_LABEL, decision])
    return (
        "# hiericd adjudication queue: coders' phrases, disputed regions, the senior's decisions\n"
        f"[entities]\n{entities}\n\n"
        "[relations]\n"
        "# coders' phrases overlap by design, and decisions go on top of them\n"
        "<OVERLAP>\tArg1:<ENTITY>, Arg2:<ENTITY>, <OVL-TYPE>:<ANY>\n\n"
        "[events]\n\n"
        "[attributes]\n"
        f"{KIND_ATTRIBUTE}\tArg:{DISPUTE_LABEL}, Value:conflict|unmatched\n"
    )


def visual_conf(coders: list[str], decision: str) -> str:
    """``visual.conf``: a distinct colour per coder, red for ``Dispute``, green for the decision."""
    labels = [f"{c} | {c}" for c in coders] + [f"{DISPUTE_LABEL} | {DISPUTE_LABEL} | D", f"{decision} | {decision}"]
    colors = [f"{c}\tbgColor:{CODER_COLORS[i % len(CODER_COLORS)]}" for i, c in enumerate(coders)]
    colors += [f"{DISPUTE_LABEL}\tbgColor:{DISPUTE_COLOR}", f"{decision}\tbgColor:{DECISION_COLOR}"]
    return (
        "[labels]\n" + "\n".join(labels) + "\n\n"
        "[drawing]\n"
        "SPAN_DEFAULT\tfgColor:black, bgColor:lightgreen, borderColor:darken\n"
        "ARC_DEFAULT\tcolor:black, arrowHead:triangle-5\n"
        + "\n".join(colors) + "\n"
    )


def describe_dispute(dispute: Dispute, report: Report) -> str:
    """The note on a ``Dispute`` entity, e.g. ``"conflict: coder1 C50.911 vs coder2 C50.912"``.

    A conflict lists, per coder, every code the coder put on the region (an
    agreed annotation overlapping it included); an unmatched region is one
    coder's.
    """
    if dispute.kind == "unmatched":
        coder = dispute.annotations[0].source
        return f"unmatched: only {coder} coded {_codes(dispute.annotations)}"
    by_coder = {coder: [a for a in anns if fragments_overlap(a.fragments, dispute.region)]
                for coder, anns in sorted(report.coders.items())}
    return "conflict: " + " vs ".join(f"{c} {_codes(anns)}" for c, anns in by_coder.items() if anns)


def queue_ann(report: Report, disputes: list[Dispute]) -> str:
    """The ``.ann`` text of one pending report: coders' annotations, then one ``Dispute`` per region."""
    shown = sorted((a for anns in report.coders.values() for a in anns),
                   key=lambda a: (a.start, a.source, a.end, a.code, a.id))
    # (label, fragments, note, kind): coders' phrases first, then the regions
    entities = [(a.source, a.fragments, a.code, None) for a in shown]
    entities += [(DISPUTE_LABEL, d.region, describe_dispute(d, report), d.kind) for d in disputes]
    records: list[Record] = []
    attributes: list[Record] = []
    for number, (label, fragments, note, kind) in enumerate(entities, 1):
        records += [TextBound(f"T{number}", label, fragments, covered_text(report.text, fragments)),
                    Note(f"#{number}", "AnnotatorNotes", f"T{number}", note)]
        if kind is not None:
            attributes.append(Attribute(f"A{len(attributes) + 1}", KIND_ATTRIBUTE, f"T{number}", kind))
    return format_ann(records + attributes)


def write_adjudication_queue(result: MergeResult, round: Round, out: str | Path) -> dict:
    """Write the brat project for the senior: every pending report with its disputes marked.

    Writes under ``out``: ``annotation.conf``, ``visual.conf``, ``README.txt``
    and ``<report_id>.txt`` + ``.ann`` per pending report; report files of an
    earlier queue that are no longer pending are removed. The same input
    gives the same bytes.

    Returns:
        ``{"round_id", "path", "pending_reports", "disputes", "report_ids"}``.
    """
    out = Path(out)
    coders = queue_coders(round)
    decision = decision_label(round)
    pending = result.pending
    written: set[str] = set()
    for rid in pending:
        report = round.reports[rid]
        atomic_write_text(out / f"{rid}.txt", report.text)
        atomic_write_text(out / f"{rid}.ann", queue_ann(report, result.reports[rid].disputes))
        written |= {f"{rid}.txt", f"{rid}.ann"}
    if out.is_dir():  # a report the senior has since decided must not stay in the queue
        for stale in out.iterdir():
            if stale.suffix in (".txt", ".ann") and stale.name not in written:
                stale.unlink()
    atomic_write_text(out / "annotation.conf", annotation_conf(coders, decision))
    atomic_write_text(out / "visual.conf", visual_conf(coders, decision))
    atomic_write_text(out / "README.txt", readme(result, round, decision))
    return {
        "round_id": result.round_id,
        "path": str(out),
        "pending_reports": len(pending),
        "disputes": sum(len(result.reports[rid].disputes) for rid in pending),
        "report_ids": pending,
    }


def readme(result: MergeResult, round: Round, decision: str) -> str:
    """What the senior does with the queue, and the reports waiting."""
    where = _where_codes_go(round)
    lines = [
        f"Adjudication queue of round {result.round_id}",
        "",
        f"{len(result.pending)} report(s) wait for your decision. Each report shows every coder's",
        "phrases side by side (entity type = the coder, note = the ICD-10 code) and a red",
        "Dispute box over each region the coders did not agree on. Its Kind says why:",
        "  conflict  - the coders put different codes on overlapping phrases;",
        "  unmatched - only one coder marked the phrase.",
        "Its note says who coded what.",
        "",
        "What to do:",
        "1. Copy this folder into brat's data/ folder and open it in brat.",
        f"2. For each Dispute you keep, mark the phrase as a {decision} entity with the code",
        f"   {where}. Your span and your code are what the data sets get.",
        "   A Dispute with no decision over it is dropped. A decision elsewhere adds a code",
        "   both coders missed (the same code on an agreed phrase just confirms it).",
        f"3. Copy every <report_id>.ann of this folder into {round.path / 'senior'}/",
        "   (the coders' and Dispute entities may stay: the merge ignores them).",
        "4. Run the merge again: reports with a senior file are final.",
        "",
        "Reports waiting (report id, disputes):",
    ]
    lines += [f"  {rid}\t{len(result.reports[rid].disputes)}" for rid in result.pending]
    return "\n".join(lines) + "\n"


def _where_codes_go(round: Round) -> str:
    codes = round.config.codes
    if codes.kind == "attribute":
        return f"in its {codes.attribute} attribute (this round's round.toml reads codes there)"
    if codes.kind == "normalization":
        return f"as a {codes.resource} normalization (this round's round.toml reads codes there)"
    if codes.kind == "label":
        return "as its entity type (this round's round.toml reads the label as the code)"
    return "in its note (AnnotatorNotes)"


def _codes(annotations: tuple[Annotation, ...] | list[Annotation]) -> str:
    return ", ".join(sorted({a.code for a in annotations}))
