"""BRAT standoff records, the one parser and the one writer of ``.ann`` text.

Every line type of the brat standoff format has a small frozen record:

====  ===================  ==============================================
kind  record               example line
====  ===================  ==============================================
T     :class:`TextBound`   ``T1<TAB>Diagnosis 0 5;9 12<TAB>tumor mass``
#     :class:`Note`        ``#1<TAB>AnnotatorNotes T1<TAB>C50.911``
A/M   :class:`Attribute`   ``A1<TAB>Negated T1`` / ``A2<TAB>Side T1 Left``
N     :class:`Normalization`  ``N1<TAB>Reference T1 ICD10:C50.9<TAB>...``
R     :class:`Relation`    ``R1<TAB>Located Arg1:T1 Arg2:T2``
E     :class:`Event`       ``E1<TAB>Biopsy:T3 Site:T1``
\\*   :class:`Equivalence` ``*<TAB>Equiv T1 T2``
====  ===================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Span = tuple[int, int]


@dataclass(frozen=True)
class TextBound:
    """A text-bound annotation (``T``): a label over one or more fragments.

    ``fragments`` keeps the order written in the file (brat accepts fragments
    out of ascending order); ``text`` is the covered text, fragments joined by
    one space.
    """

    id: str
    label: str
    fragments: tuple[Span, ...]
    text: str

    @property
    def start(self) -> int:
        return min(s for s, _ in self.fragments)

    @property
    def end(self) -> int:
        return max(e for _, e in self.fragments)

    @property
    def is_discontinuous(self) -> bool:
        return len(self.fragments) > 1


@dataclass(frozen=True)
class Note:
    """An annotator note (``#``) on any annotation id."""

    id: str
    type: str
    target: str
    text: str


@dataclass(frozen=True)
class Attribute:
    """A binary (``value is None``) or valued attribute (``A`` or legacy ``M``)."""

    id: str
    name: str
    target: str
    value: str | None = None


@dataclass(frozen=True)
class Normalization:
    """A normalization (``N``): ``target`` linked to ``resource:entry``."""

    id: str
    type: str
    target: str
    resource: str
    entry: str
    text: str = ""


@dataclass(frozen=True)
class Relation:
    """A binary relation (``R``); ``args`` are ``(role, id)`` pairs in file order."""

    id: str
    type: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Event:
    """An event (``E``): a trigger ``T`` id and ``(role, id)`` arguments."""

    id: str
    type: str
    trigger: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Equivalence:
    """An equivalence (``*``) over two or more ids; brat writes its id as ``*``."""

    id: str
    type: str
    members: tuple[str, ...]


Record = Union[TextBound, Note, Attribute, Normalization, Relation, Event, Equivalence]


def format_record(record: Record) -> str:
    """Return the standoff line for ``record`` (without the newline)."""
    if isinstance(record, TextBound):
        spans = ";".join(f"{s} {e}" for s, e in record.fragments)
        return f"{record.id}\t{record.label} {spans}\t{record.text}"
    if isinstance(record, Note):
        return f"{record.id}\t{record.type} {record.target}\t{record.text}"
    if isinstance(record, Attribute):
        value = "" if record.value is None else f" {record.value}"
        return f"{record.id}\t{record.name} {record.target}{value}"
    if isinstance(record, Normalization):
        return (
            f"{record.id}\t{record.type} {record.target} "
            f"{record.resource}:{record.entry}\t{record.text}"
        )
    if isinstance(record, Relation):
        args = " ".join(f"{role}:{ref}" for role, ref in record.args)
        return f"{record.id}\t{record.type} {args}"
    if isinstance(record, Event):
        args = "".join(f" {role}:{ref}" for role, ref in record.args)
        return f"{record.id}\t{record.type}:{record.trigger}{args}"
    if isinstance(record, Equivalence):
        return f"{record.id}\t{record.type} {' '.join(record.members)}"
    raise TypeError(f"not a brat record: {record!r}")


def format_ann(records: list[Record] | tuple[Record, ...]) -> str:
    """Return the text of an ``.ann`` file holding ``records`` in order."""
    return "".join(format_record(r) + "\n" for r in records)
