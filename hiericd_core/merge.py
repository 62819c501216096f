"""Merging the coders' annotations of a round into final annotations with provenance.

The rules (the paper's, made precise):

* Two annotations **overlap** when any fragment of one shares at least one
  character with any fragment of the other (discontinuous fragments count
  piecewise; fragments that only touch do not overlap).
* An annotation is **agreed** when an annotation of *another* coder overlaps
  it and carries the same code. Agreed annotations that share a code and
  overlap are unioned transitively into one final annotation (rule
  ``agreed``): fragments merged where they touch or overlap, text = the report
  text under them joined by one space (the brat convention).
* Every other coder annotation is **disputed**. Transitively overlapping
  disputed annotations form one disputed region; the region is a
  ``conflict`` when one of them overlaps another coder's annotation (which
  then has a different code), else ``unmatched``.
* The senior's file decides each region: **kept** when a senior decision
  overlaps it (the decision becomes a final annotation with the senior's code
  and span, rule ``senior-kept``), **dropped** otherwise. A report with
  disputes and no senior file is **pending**: its disputes stay ``pending``
  and the report is left out of the written data.
* A senior decision that overlaps no disputed region is a code both coders
  missed (rule ``senior-added``).
* Final annotations that share a code and overlap are joined like agreed
  ones (union span, both provenances, the rule first in
  :data:`JOIN_PRIORITY`): a senior decision that re-marks an agreed phrase
  confirms it (``senior`` joins its sources) instead of doubling it.
* A report coded by one coder is taken as it is (rule and status
  ``single-coder``).

Every coder annotation ends up in exactly one place: the ``source_ids`` of a
final annotation, or a dispute (whose ``outcome`` says what became of it).
In the senior's file, entities labelled with a coder's name or ``Dispute``
are the adjudication queue's display (see :mod:`hiericd_core.adjudication`),
not decisions, and are ignored.

Writing a merged round (BRAT, Parquet, CSV) is :mod:`hiericd_core.merge_write`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from hiericd_core.annotation import Annotation
from hiericd_core.rounds import DISPUTE_LABEL, SENIOR, Report, Round

Span = tuple[int, int]
Fragments = tuple[Span, ...]
Status = Literal["final", "pending", "single-coder"]
Rule = Literal["agreed", "senior-kept", "senior-added", "single-coder"]
DisputeKind = Literal["conflict", "unmatched"]
Outcome = Literal["kept", "dropped", "pending"]

STATUSES: tuple[Status, ...] = ("final", "pending", "single-coder")
RULES: tuple[Rule, ...] = ("agreed", "senior-kept", "senior-added", "single-coder")
DISPUTE_KINDS: tuple[DisputeKind, ...] = ("conflict", "unmatched")
OUTCOMES: tuple[Outcome, ...] = ("kept", "dropped", "pending")
# the rule a joined annotation keeps: where the phrase came from first
JOIN_PRIORITY: tuple[Rule, ...] = ("agreed", "single-coder", "senior-kept", "senior-added")

DECISION_LABEL = "Diagnosis"  # what the senior annotates; also the label of merged entities

ANNOTATION_COLUMNS = ("round_id", "report_id", "id", "code", "start", "end", "fragments", "text",
                      "sources", "rule", "source_ids")
# One row per report of the round, pending ones included: what data sets are built from.
REPORT_COLUMNS = ("round_id", "report_id", "status", "coders", "n_final", "quarantined", "reason_for_visit",
                  "text")
DISPUTE_COLUMNS = ("round_id", "report_id", "region_start", "region_end", "region", "region_text", "kind",
                   "outcome", "senior_codes", "coders", "codes", "source_ids")


@dataclass(frozen=True)
class FinalAnnotation:
    """A merged annotation and where it came from.

    ``fragments`` are sorted and merged where they touch or overlap;
    ``source_ids`` name the annotations it came from as ``"coder1:T3"``.
    """

    report_id: str
    id: str
    code: str
    fragments: Fragments
    text: str
    sources: tuple[str, ...]
    rule: Rule
    source_ids: tuple[str, ...]

    @property
    def start(self) -> int:
        return self.fragments[0][0]

    @property
    def end(self) -> int:
        return self.fragments[-1][1]


@dataclass(frozen=True)
class Dispute:
    """A disputed region, the coder annotations in it and what the senior decided."""

    report_id: str
    kind: DisputeKind
    region: Fragments
    annotations: tuple[Annotation, ...]
    outcome: Outcome
    senior_codes: tuple[str, ...] = ()

    @property
    def start(self) -> int:
        return self.region[0][0]

    @property
    def end(self) -> int:
        return self.region[-1][1]


@dataclass
class MergedReport:
    """One report after merging: its final annotations and its disputes."""

    report_id: str
    status: Status
    annotations: list[FinalAnnotation] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)


@dataclass
class MergeResult:
    """A merged round: one :class:`MergedReport` per report id (sorted) and the counts."""

    round_id: str
    reports: dict[str, MergedReport]
    counts: dict

    @property
    def pending(self) -> list[str]:
        return [rid for rid, r in self.reports.items() if r.status == "pending"]


# ---------------------------------------------------------------- fragments


def normalize_fragments(fragments: Iterable[Span]) -> Fragments:
    """Return ``fragments`` sorted, with overlapping or touching ones merged."""
    merged: list[list[int]] = []
    for start, end in sorted(fragments):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def fragments_overlap(a: Iterable[Span], b: Iterable[Span]) -> bool:
    """True when a fragment of ``a`` and one of ``b`` share at least one character."""
    b = tuple(b)
    return any(max(s1, s2) < min(e1, e2) for s1, e1 in a for s2, e2 in b)


def covered_text(text: str, fragments: Fragments) -> str:
    """The text under ``fragments``, joined by one space (the brat convention)."""
    return " ".join(text[s:e] for s, e in fragments)


def format_fragments(fragments: Fragments) -> str:
    """``((0, 5), (9, 12))`` → ``"0 5;9 12"`` (brat's span syntax)."""
    return ";".join(f"{s} {e}" for s, e in fragments)


# ---------------------------------------------------------------- merging


def merge_report(report: Report) -> MergedReport:
    """Merge the coders' annotations of one report, applying the senior's decisions.

    Args:
        report: a report with one or more coders' annotations and, when the
            senior adjudicated it, ``report.senior`` (``None`` otherwise).

    Returns:
        The report's status, its final annotations (ids ``T1``… in order of
        start offset, then code) and its disputes with their outcomes.
    """
    coders = sorted(report.coders)
    decisions = _decisions(report)
    if len(coders) == 1:
        members = sorted(report.coders[coders[0]], key=_position)
        finals = [_final(report, a.code, [a], "single-coder") for a in members]
        finals += [_final(report, d.code, [d], "senior-added") for d in decisions or ()]
        return MergedReport(report.report_id, "single-coder", _numbered(_join(report, finals)), [])

    annotations = [a for c in coders for a in sorted(report.coders[c], key=_position)]
    for coder in coders:
        assert all(a.source == coder for a in report.coders[coder]), f"{report.report_id}: source != {coder}"

    is_agreed = [any(_agree(a, b) for b in annotations) for a in annotations]
    agreed = [a for a, ok in zip(annotations, is_agreed, strict=True) if ok]
    disputed = [a for a, ok in zip(annotations, is_agreed, strict=True) if not ok]

    finals = [_final(report, group[0].code, group, "agreed")
              for group in _components(agreed, lambda a, b: a.code == b.code and _overlap(a, b))]
    groups = _components(disputed, _overlap)
    pending = decisions is None and bool(groups)

    disputes: list[Dispute] = []
    deciding: set[int] = set()  # indices into decisions that decide some region
    for group in groups:
        region = normalize_fragments(f for a in group for f in a.fragments)
        conflict = any(b.source != a.source and _overlap(a, b) for a in group for b in annotations)
        kind: DisputeKind = "conflict" if conflict else "unmatched"
        if pending:
            disputes.append(Dispute(report.report_id, kind, region, tuple(group), "pending"))
            continue
        deciders = [i for i, d in enumerate(decisions or []) if fragments_overlap(d.fragments, region)]
        deciding.update(deciders)
        codes = tuple(sorted({decisions[i].code for i in deciders}))
        disputes.append(Dispute(report.report_id, kind, region, tuple(group),
                                "kept" if deciders else "dropped", codes))

    finals += [_final(report, d.code, [d], "senior-kept" if i in deciding else "senior-added")
               for i, d in enumerate(decisions or ())]
    disputes.sort(key=lambda d: (d.region, d.kind))
    status: Status = "pending" if pending else "final"
    return MergedReport(report.report_id, status, _numbered(_join(report, finals)), disputes)


def merge_round(round: Round, progress: bool = False) -> MergeResult:
    """Merge every report of ``round``; check that every coder annotation is accounted for.

    Args:
        round: a loaded round.
        progress: show a progress bar over reports.

    Returns:
        The merged reports (sorted by report id) and their counts (see
        :func:`merge_counts`).
    """
    items = sorted(round.reports.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="merging", unit="report")
    merged = {rid: merge_report(report) for rid, report in items}
    counts = merge_counts(merged, round)
    result = MergeResult(round.id, merged, counts)
    assert_accounted(result, round)
    return result


def merge_counts(merged: dict[str, MergedReport], round: Round) -> dict:
    """Counts of a merge, every key present even when zero.

    ``final_annotations`` count the annotations written (reports not
    pending); the agreed annotations of pending reports are counted apart,
    so that ``coder_annotations.accounted_for`` adds up to the total.
    """
    written = [r for r in merged.values() if r.status != "pending"]
    by_rule = Counter(a.rule for r in written for a in r.annotations)
    disputes = Counter((d.kind, d.outcome) for r in merged.values() for d in r.disputes)

    def coder_ids(reports: Iterable[MergedReport]) -> int:
        return sum(1 for r in reports for a in r.annotations for s in a.source_ids if not s.startswith(f"{SENIOR}:"))

    in_final = coder_ids(written)
    in_pending = coder_ids(r for r in merged.values() if r.status == "pending")
    in_disputes = sum(len(d.annotations) for r in merged.values() for d in r.disputes)
    total = sum(len(anns) for report in round.reports.values() for anns in report.coders.values())
    senior_total = sum(len(r.senior) for r in round.reports.values() if r.senior is not None)
    fates: Counter[str] = Counter()  # what became of each senior decision
    for rid, report in merged.items():
        added = {s for a in report.annotations if a.rule == "senior-added" for s in a.source_ids}
        for decision in _decisions(round.reports[rid]) or ():
            if any(fragments_overlap(decision.fragments, d.region) for d in report.disputes):
                fates["deciding_disputes"] += 1
            elif source_id(decision) in added:
                fates["added"] += 1
            else:
                fates["confirming_final_annotations"] += 1
    return {
        "reports": {"total": len(merged), **{s: sum(r.status == s for r in merged.values()) for s in STATUSES}},
        "final_annotations": {"total": sum(by_rule.values()), **{rule: by_rule[rule] for rule in RULES}},
        "disputes": {
            "total": sum(disputes.values()),
            **{kind: {o: disputes[(kind, o)] for o in OUTCOMES} for kind in DISPUTE_KINDS},
            **{o: sum(disputes[(k, o)] for k in DISPUTE_KINDS) for o in OUTCOMES},
        },
        "coder_annotations": {
            "total": total,
            "in_final_annotations": in_final,
            "agreed_in_pending_reports": in_pending,
            "in_disputes": in_disputes,
            "accounted_for": in_final + in_pending + in_disputes,
        },
        "senior_annotations": {
            "total": senior_total,
            "decisions": sum(fates.values()),
            **{fate: fates[fate] for fate in ("deciding_disputes", "added", "confirming_final_annotations")},
            "queue_display_ignored": senior_total - sum(fates.values()),
        },
    }


def assert_accounted(result: MergeResult, round: Round) -> None:
    """Assert that every coder annotation is in exactly one final annotation or dispute."""
    seen: Counter[tuple[str, str]] = Counter()
    for rid, merged in result.reports.items():
        for a in merged.annotations:
            seen.update((rid, s) for s in a.source_ids if not s.startswith(f"{SENIOR}:"))
        for d in merged.disputes:
            seen.update((rid, f"{a.source}:{a.id}") for a in d.annotations)
    expected = Counter((rid, f"{a.source}:{a.id}") for rid, report in round.reports.items()
                       for anns in report.coders.values() for a in anns)
    missing, extra = expected - seen, seen - expected
    assert not missing and not extra, f"coder annotations not accounted for exactly once: {missing or extra}"
    counts = result.counts["coder_annotations"]
    assert counts["accounted_for"] == counts["total"], counts


def _decisions(report: Report) -> list[Annotation] | None:
    """The senior's decisions (``None``: no senior file), without the queue's display entities."""
    if report.senior is None:
        return None
    display = set(report.coders) | {DISPUTE_LABEL}
    return sorted((a for a in report.senior if a.label not in display), key=_position)


def _join(report: Report, finals: list[FinalAnnotation]) -> list[FinalAnnotation]:
    """Join final annotations that share a code and overlap, as the coders' agreed ones are.

    This is where a senior decision meets an agreed (or single-coder) phrase
    with the same code: one annotation, the union span, both provenances, the
    rule of the first in :data:`JOIN_PRIORITY`. Two single-coder annotations
    are never joined with each other (such reports are taken as they are).
    """
    def linked(a: FinalAnnotation, b: FinalAnnotation) -> bool:
        return (a.code == b.code and not a.rule == b.rule == "single-coder"
                and fragments_overlap(a.fragments, b.fragments))

    joined = []
    for group in _components(finals, linked):
        if len(group) == 1:
            joined.append(group[0])
            continue
        fragments = normalize_fragments(f for a in group for f in a.fragments)
        ids = sorted((s for a in group for s in a.source_ids),
                     key=lambda s: (_source_rank(s.split(":")[0]), s.split(":")[0]))
        joined.append(FinalAnnotation(report.report_id, "", group[0].code, fragments,
                                      covered_text(report.text, fragments),
                                      ordered_sources(s for a in group for s in a.sources),
                                      min((a.rule for a in group), key=JOIN_PRIORITY.index), tuple(ids)))
    return joined


def _final(report: Report, code: str, members: Sequence[Annotation], rule: Rule) -> FinalAnnotation:
    fragments = normalize_fragments(f for a in members for f in a.fragments)
    ordered = sorted(members, key=lambda a: (_source_rank(a.source), a.source, _position(a)))
    return FinalAnnotation(report.report_id, "", code, fragments, covered_text(report.text, fragments),
                           ordered_sources(a.source for a in members), rule,
                           tuple(source_id(a) for a in ordered))


def _numbered(finals: list[FinalAnnotation]) -> list[FinalAnnotation]:
    ordered = sorted(finals, key=lambda f: (f.start, f.code, f.end, f.fragments, f.source_ids))
    return [replace(f, id=f"T{i}") for i, f in enumerate(ordered, 1)]


def ordered_sources(sources: Iterable[str]) -> tuple[str, ...]:
    """Distinct sources, the coders by name and the senior last."""
    return tuple(sorted(set(sources), key=lambda s: (_source_rank(s), s)))


def _source_rank(source: str) -> int:
    return 1 if source == SENIOR else 0  # coders by name, the senior last


def source_id(a: Annotation) -> str:
    """``source:id``, how provenance names a coder's or the senior's annotation."""
    return f"{a.source}:{a.id}"


def _position(a: Annotation) -> tuple:
    return (a.start, a.end, normalize_fragments(a.fragments), a.code, a.id)


def _overlap(a: Annotation, b: Annotation) -> bool:
    return fragments_overlap(a.fragments, b.fragments)


def _agree(a: Annotation, b: Annotation) -> bool:
    return a.source != b.source and a.code == b.code and _overlap(a, b)


T = TypeVar("T")


def _components(items: Sequence[T], linked: Callable[[T, T], bool]) -> list[list[T]]:
    """Connected components of ``items`` under ``linked``, each in input order, by first member."""
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if linked(items[i], items[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[T]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item)
    return list(groups.values())


# ---------------------------------------------------------------- quality


def merge_quality(result: MergeResult, round: Round) -> dict:
    """Compare the final annotations with the generating truth (synthetic rounds).

    Only reports that carry ``truth`` and are not pending are compared.

    Returns:
        ``code``: micro precision/recall/F1 of (report, code) pairs, final vs
        truth; ``exact_span`` / ``overlap``: the share of truth annotations
        matched by a final annotation with the same code and the same
        (normalised) fragments / an overlapping span (``truth_matched``), and
        the share of final annotations matched by a truth annotation the same
        way (``final_matched``); ``pending_reports``: reports with truth left
        out because they are pending.
    """
    with_truth = [rid for rid, r in sorted(round.reports.items()) if r.truth is not None]
    evaluated = [rid for rid in with_truth if result.reports[rid].status != "pending"]
    predicted: set[tuple[str, str]] = set()
    gold: set[tuple[str, str]] = set()
    exact_truth = overlap_truth = exact_final = overlap_final = n_truth = n_final = 0
    for rid in evaluated:
        finals = result.reports[rid].annotations
        truth = [(a.code, normalize_fragments(a.fragments)) for a in round.reports[rid].truth or ()]
        predicted |= {(rid, a.code) for a in finals}
        gold |= {(rid, code) for code, _ in truth}
        n_truth += len(truth)
        n_final += len(finals)
        exact_truth += sum(any(f.code == c and f.fragments == frags for f in finals) for c, frags in truth)
        overlap_truth += sum(any(f.code == c and fragments_overlap(f.fragments, frags) for f in finals)
                             for c, frags in truth)
        exact_final += sum(any(f.code == c and f.fragments == frags for c, frags in truth) for f in finals)
        overlap_final += sum(any(f.code == c and fragments_overlap(f.fragments, frags) for c, frags in truth)
                             for f in finals)
    tp = len(predicted & gold)
    precision, recall = _ratio(tp, len(predicted)), _ratio(tp, len(gold))
    return {
        "reports_with_truth": len(with_truth),
        "reports_evaluated": len(evaluated),
        "pending_reports": len(with_truth) - len(evaluated),
        "truth_annotations": n_truth,
        "final_annotations": n_final,
        "code": {
            "true_positives": tp,
            "false_positives": len(predicted) - tp,
            "false_negatives": len(gold) - tp,
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
        },
        "exact_span": {"truth_matched": _ratio(exact_truth, n_truth), "final_matched": _ratio(exact_final, n_final)},
        "overlap": {"truth_matched": _ratio(overlap_truth, n_truth), "final_matched": _ratio(overlap_final, n_final)},
    }


def _ratio(num: float, den: float) -> float:
    return round(num / den, 6) if den else 0.0
