"""The BRAT standoff records: one small frozen record per ``.ann`` line type.

:class:`TextBound`, :class:`Note`, :class:`Attribute`, :class:`Normalization`,
:class:`Relation`, :class:`Event` and :class:`Equivalence` (together
:data:`Record`), and :class:`Problem` / :class:`BratError` for bad input.
:mod:`hiericd_core.brat` describes the format and re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Span = tuple[int, int]


def _tail():
    return field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class TextBound:
    """A text-bound annotation (``T``): a label over one or more fragments.

    ``fragments`` keeps the order written in the file (brat accepts fragments
    out of ascending order); ``text`` is the covered text, fragments joined by
    one space. ``tail`` is trailing whitespace after the text, kept verbatim.
    """

    id: str
    label: str
    fragments: tuple[Span, ...]
    text: str
    tail: str = _tail()

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
    """An annotator note (``#``) on any annotation id; ``text`` is kept raw."""

    id: str
    type: str
    target: str
    text: str
    tail: str = _tail()


@dataclass(frozen=True)
class Attribute:
    """A binary (``value is None``) or valued attribute (``A`` or legacy ``M``)."""

    id: str
    name: str
    target: str
    value: str | None = None
    tail: str = _tail()


@dataclass(frozen=True)
class Normalization:
    """A normalization (``N``): ``target`` linked to ``resource:entry``."""

    id: str
    type: str
    target: str
    resource: str
    entry: str
    text: str = ""
    tail: str = _tail()


@dataclass(frozen=True)
class Relation:
    """A binary relation (``R``); ``args`` are ``(role, id)`` pairs in file order."""

    id: str
    type: str
    args: tuple[tuple[str, str], ...]
    tail: str = _tail()


@dataclass(frozen=True)
class Event:
    """An event (``E``): a trigger ``T`` id and ``(role, id)`` arguments."""

    id: str
    type: str
    trigger: str
    args: tuple[tuple[str, str], ...]
    tail: str = _tail()


@dataclass(frozen=True)
class Equivalence:
    """An equivalence (``*``) over two or more ids; brat writes its id as ``*``."""

    id: str
    type: str
    members: tuple[str, ...]
    tail: str = _tail()


Record = TextBound | Note | Attribute | Normalization | Relation | Event | Equivalence


@dataclass(frozen=True)
class Problem:
    """Something wrong in a file: ``line`` is 1-based, ``None`` for the whole file."""

    file: str
    line: int | None
    reason: str
    content: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"


class BratError(ValueError):
    """Raised in strict mode (and by :func:`read_text`); lists every problem."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} BRAT problem(s):\n{lines}")
