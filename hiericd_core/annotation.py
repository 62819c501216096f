"""Coded annotations: a coder's highlighted phrase and the ICD-10 code it carries.

Where a BRAT annotation carries its code is a round setting
(:class:`CodeSource`):

* ``note`` (default) — the ``#`` AnnotatorNotes text of the ``T`` line, as
  CodiEsp and Cantemist write it (``#1<TAB>AnnotatorNotes T1<TAB>C50.911``);
* ``label`` — the entity label itself is the code (``T1<TAB>C50.911 0 9<TAB>…``);
* ``attribute`` — a valued attribute, e.g. ``A1<TAB>ICD T1 C50.911``;
* ``normalization`` — an ``N`` line's entry in a named resource,
  e.g. ``N1<TAB>Reference T1 ICD10CM:C50.911``.

Only entities whose label is in ``CodeSource.labels`` carry codes (all
entities when the list is empty). A coded entity whose code is missing,
invalid, or ambiguous (two codes in one note, a code cut by a space; see
:func:`~hiericd_core.icd.read_code`) becomes a
:class:`~hiericd_core.brat.Problem` naming the file and line; it is
quarantined and the rest of the file is kept. A round whose code system is
``none`` (e.g. a named-entity project) takes the code text as it is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from hiericd_core import icd
from hiericd_core.brat import Attribute, Document, Normalization, Note, Problem, TextBound

SourceKind = Literal["note", "label", "attribute", "normalization"]


@dataclass(frozen=True)
class CodeSource:
    """Where codes live in the ``.ann`` files of a round, and which are accepted."""

    kind: SourceKind = "note"
    labels: tuple[str, ...] = ()
    attribute: str = ""
    resource: str = ""
    accept: tuple[icd.Status, ...] = ("billable", "category")
    validate: bool = True  # False when the round's code system is "none": labels are taken as they are

    def carries_code(self, label: str) -> bool:
        return not self.labels or label in self.labels


@dataclass(frozen=True)
class Annotation:
    """One coded phrase: who marked it, where, and with which code.

    ``fragments`` are character offsets into the report text (end exclusive),
    in the order the ``.ann`` file gives them.
    """

    report_id: str
    source: str
    id: str
    label: str
    fragments: tuple[tuple[int, int], ...]
    text: str
    code: str
    line: int | None = field(default=None, compare=False)

    @property
    def start(self) -> int:
        return min(s for s, _ in self.fragments)

    @property
    def end(self) -> int:
        return max(e for _, e in self.fragments)


def coded_annotations(
    document: Document, source: CodeSource, *, report_id: str, who: str, display: Collection[str] = ()
) -> tuple[list[Annotation], list[Problem]]:
    """Return the coded annotations of ``document`` and the problems found.

    Args:
        document: a parsed BRAT document.
        source: where codes live and which code statuses are accepted.
        report_id: the report the document belongs to.
        who: the coder (or ``"senior"``) who wrote the document.
        display: labels of entities shown for context, not coded by ``who``
            (the adjudication queue's coder and ``Dispute`` entities in the
            senior's file): their note may list several codes; the first is taken.

    Returns:
        ``(annotations, problems)``: one annotation per coded entity with a
        valid code, in file order; one problem per coded entity whose code is
        missing, unreadable or not accepted.
    """
    file = str(document.ann_path)
    by_target: dict[str, list] = {}
    for record in document.records:
        target = getattr(record, "target", None)
        if target is not None:
            by_target.setdefault(target, []).append(record)

    annotations: list[Annotation] = []
    problems: list[Problem] = []
    for record in document.records:
        if not isinstance(record, TextBound) or not source.carries_code(record.label):
            continue
        line = document.line_of(record.id)
        raw, where = _raw_code(record, by_target.get(record.id, []), source)
        if raw is None:
            problems.append(Problem(file, line, f"{record.id} ({record.label!r}) carries no code in its {where}",
                                    record.text))
            continue
        code_line = document.line_of(where) if where.startswith(("#", "A", "M", "N")) else line
        if not source.validate:
            annotations.append(Annotation(report_id, who, record.id, record.label, record.fragments,
                                          record.text, raw.strip(), line))
            continue
        try:
            code = icd.read_code(raw, first=record.label in display)
        except icd.CodeError as exc:  # two codes, or one cut in pieces: which one was meant is not ours to guess
            problems.append(Problem(file, code_line, f"{record.id}: {exc}", raw))
            continue
        kind = icd.status(code) if code else "unknown"
        if kind not in source.accept:
            reason = (f"{record.id}: {raw.strip()!r} is not an ICD-10-CM code" if kind == "unknown"
                      else f"{record.id}: {code} is {kind}; accepted here: {', '.join(source.accept)}")
            problems.append(Problem(file, code_line, reason, raw))
            continue
        annotations.append(Annotation(report_id, who, record.id, record.label, record.fragments,
                                      record.text, code, line))
    return annotations, problems


def _raw_code(record: TextBound, linked: list, source: CodeSource) -> tuple[str | None, str]:
    """Return the code text for ``record`` and the id (or place) it came from."""
    if source.kind == "label":
        return record.label, "label"
    if source.kind == "note":
        notes = [r for r in linked if isinstance(r, Note) and r.text.strip()]
        return (notes[0].text, notes[0].id) if notes else (None, "AnnotatorNotes")
    if source.kind == "attribute":
        attrs = [r for r in linked if isinstance(r, Attribute) and r.name == source.attribute and r.value]
        return (attrs[0].value, attrs[0].id) if attrs else (None, f"attribute {source.attribute!r}")
    norms = [r for r in linked if isinstance(r, Normalization) and r.resource == source.resource]
    return (norms[0].entry, norms[0].id) if norms else (None, f"normalization in {source.resource!r}")
