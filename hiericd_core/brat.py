"""BRAT standoff records, the one parser and the one writer of ``.ann`` text.

Every line type of the brat standoff format has a small frozen record:

====  =====================  ==============================================
kind  record                 example line
====  =====================  ==============================================
T     :class:`TextBound`     ``T1<TAB>Diagnosis 0 5;9 12<TAB>tumor mass``
#     :class:`Note`          ``#1<TAB>AnnotatorNotes T1<TAB>C50.911``
A/M   :class:`Attribute`     ``A1<TAB>Negated T1`` / ``A2<TAB>Side T1 Left``
N     :class:`Normalization` ``N1<TAB>Reference T1 ICD10:C50.9<TAB>...``
R     :class:`Relation`      ``R1<TAB>Located Arg1:T1 Arg2:T2``
E     :class:`Event`         ``E1<TAB>Biopsy:T3 Site:T1 Theme2:T4``
\\*   :class:`Equivalence`   ``*<TAB>Equiv T1 T2``
====  =====================  ==============================================

A document is ``X.txt`` plus ``X.ann`` in the same folder; a ``.txt`` without
``.ann`` is a document without annotations, an ``.ann`` without ``.txt`` is a
problem. Bad input never raises in the default (lenient) mode: every bad line
becomes one :class:`Problem` (file, 1-based line, reason) and its record is
left out (quarantined); records that refer to a missing or quarantined id are
quarantined too, with their own problem. ``strict=True`` raises one
:class:`BratError` listing every problem instead.

Text and offsets, as brat counts them
-------------------------------------
brat's server (``server/src/annotation.py``, ``open_textfile``) reads both the
``.txt`` and the ``.ann`` with ``codecs.open(path, 'rU', encoding='utf8',
errors='strict')``. ``codecs.open`` opens the file in *binary* mode and drops
the ``U`` flag ("No automatic conversion of '\\n' is done on reading and
writing", CPython 2.7 ``Lib/codecs.py``); ``document.py`` sends that string to
the client unchanged. brat's Python 3 port keeps the same ``open_textfile``
(``codecs.open`` adds ``b`` there too; Python 3.11+ rejects the ``'rUb'`` mode
outright). Hence, and so here:

* offsets are Unicode code points of the strictly decoded UTF-8 text;
* there is no newline translation: a CR of a CRLF file is a character and
  counts (``open(..., newline=None)`` would shift every later offset);
* the ``utf8`` codec (not ``utf-8-sig``) keeps a byte-order mark as U+FEFF at
  offset 0, so it counts as one character;
* bytes that are not UTF-8 make brat refuse the file; here a ``.txt`` gives a
  problem and no document, an ``.ann`` a problem on each undecodable line;
* a BOM at the start of an ``.ann`` becomes part of the first id, so brat
  cannot parse that line, and neither does this module.

(brat's browser client counts UTF-16 code units; for text outside the Basic
Multilingual Plane its offsets and these differ. CodiEsp has no such text.)

brat splits ``.ann`` lines with ``str.splitlines``, i.e. also at a lone CR,
VT, FF, U+001C-U+001E, U+0085, U+2028 and U+2029. Here lines end at LF only
(a CR before it is kept in the record's ``tail``), and a line holding one of
those other breaks is a problem, because brat would cut it in two.

Round trip
----------
brat writes a few bytes that carry no meaning: a TAB after every relation, a
space after an event without arguments, CRs in files edited on Windows. Each
record keeps them in ``tail`` (not part of equality) and :func:`format_record`
writes them back, so ``format_ann(parse_ann(s))`` is ``s`` byte for byte for
files brat wrote; a file without a final newline keeps that through
:attr:`Document.final_newline`. Blank lines are skipped (brat reports them as
unparsable and keeps them; they carry nothing) and so do not round-trip.

Speed
-----
Most files a coding tool writes hold only one-fragment ``T`` lines and
annotator notes in the canonical form. :func:`_fast_lines` takes such a
file with one regex pass and the few checks those lines can fail; any other
file, or a failed check, goes through the line-by-line parser, so both give
the same records and problems (``tests/test_brat.py`` fuzzes the two against
each other). Files are read with ``os.open``/``os.read``;
:func:`read_ann` and :func:`read_spans` take a text already read, so the
coders of one report share one read of its ``.txt``, and :func:`read_spans`
builds no record objects.

Where brat is lenient and this module is not
--------------------------------------------
The part before the text TAB must be in the single-space form brat writes
(``A1<TAB>Negated  T1`` with two spaces is a problem); offsets are canonical
ASCII integers (``007`` is a problem); after a ``T`` text only whitespace may
follow; an equivalence needs two members; a relation exactly two arguments
with different roles. Fragments that overlap or touch an earlier fragment and
events whose trigger is not a ``T`` of the event's type are problems, as they
are errors in brat too.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Span = tuple[int, int]

# ids as brat's is_valid_id accepts them (suffix restricted to id-like characters)
_ID = re.compile(r"(?:[A-Za-z]+|#[A-Za-z]*)[0-9]+[A-Za-z0-9_.\-]*")
# line breaks of str.splitlines other than LF (a CR directly before LF is fine)
_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_BREAK_IN_LINE = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_BLANK_TAIL = " \t\r"


def _has_breaks(text: str) -> bool:
    """Whether ``text`` holds a line break brat sees but a split at LF does not."""
    for char in _BREAKS:
        if char in text:
            return True
    return "\r" in text and text.count("\r") != text.count("\r\n")


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


@dataclass
class Document:
    """A ``.txt`` and its ``.ann``: the text and the records that survived.

    ``doc_id`` is the file name without extension (the same in every coder's
    folder); ``lines`` gives the 1-based ``.ann`` line of each record, and
    ``ann_path`` is ``None`` when the ``.txt`` has no ``.ann``.
    """

    doc_id: str
    text: str
    records: tuple[Record, ...]
    txt_path: Path | None
    ann_path: Path | None
    lines: tuple[int, ...] = ()
    final_newline: bool = True
    _line_by_id: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def line_of(self, record_id: str) -> int | None:
        """Return the ``.ann`` line of the (first) record with ``record_id``."""
        if self._line_by_id is None:
            index: dict[str, int] = {}
            for record, line in zip(self.records, self.lines, strict=False):
                index.setdefault(record.id, line)
            self._line_by_id = index
        return self._line_by_id.get(record_id)


# --------------------------------------------------------------------- writer


def format_record(record: Record) -> str:
    """Return the standoff line for ``record`` (without the newline).

    Raises:
        ValueError: a field holds a line break, so the line could not be read back.
    """
    if isinstance(record, TextBound):
        spans = ";".join(f"{s} {e}" for s, e in record.fragments)
        line = f"{record.id}\t{record.label} {spans}\t{record.text}"
    elif isinstance(record, Note):
        text = f"\t{record.text}" if record.text else ""
        line = f"{record.id}\t{record.type} {record.target}{text}"
    elif isinstance(record, Attribute):
        value = "" if record.value is None else f" {record.value}"
        line = f"{record.id}\t{record.name} {record.target}{value}"
    elif isinstance(record, Normalization):
        text = f"\t{record.text}" if record.text else ""
        line = f"{record.id}\t{record.type} {record.target} {record.resource}:{record.entry}{text}"
    elif isinstance(record, Relation):
        args = " ".join(f"{role}:{ref}" for role, ref in record.args)
        line = f"{record.id}\t{record.type} {args}"
    elif isinstance(record, Event):
        args = "".join(f" {role}:{ref}" for role, ref in record.args)
        line = f"{record.id}\t{record.type}:{record.trigger}{args}"
    elif isinstance(record, Equivalence):
        line = f"{record.id}\t{record.type} {' '.join(record.members)}"
    else:
        raise TypeError(f"not a brat record: {record!r}")
    line += record.tail
    body = line[:-1] if line.endswith("\r") else line
    if "\n" in line or _BREAK_IN_LINE.search(body):
        raise ValueError(f"{record.id}: a field holds a line break; brat could not read {line!r}")
    return line


def format_ann(records: Iterable[Record], *, final_newline: bool = True) -> str:
    """Return the text of an ``.ann`` file holding ``records`` in order."""
    text = "\n".join(format_record(r) for r in records)
    return text + "\n" if text and final_newline else text


def _checked(path: Path, records: Sequence[Record], final_newline: bool, doc_text: str | None) -> str:
    """Return the ``.ann`` text of ``records`` after checking it reads back equal."""
    text = format_ann(records, final_newline=final_newline)
    back, problems = parse_ann(text, doc_text, file=str(path))
    if problems or back != list(records) or [r.tail for r in back] != [r.tail for r in records]:
        detail = "; ".join(str(p) for p in problems) or "the records read back differently"
        raise ValueError(f"{path}: refusing to write records that do not read back: {detail}")
    return text


def write_ann(path: str | os.PathLike, records: Sequence[Record], *, final_newline: bool = True,
              doc_text: str | None = None) -> Path:
    """Write ``records`` to the ``.ann`` file ``path`` atomically.

    The text is parsed back first; records that would not read back equal
    (a bad token, a reference to a missing id, a ``T`` not matching
    ``doc_text``) raise and leave the file untouched.

    Args:
        path: the ``.ann`` file to write (replaced if it exists).
        records: the records, in file order.
        final_newline: end the file with a newline (brat does).
        doc_text: the document text to check ``T`` records against, if known.

    Returns:
        ``path``.

    Raises:
        ValueError: the records would not read back as written.
    """
    path = Path(path)
    _atomic_write(path, _checked(path, records, final_newline, doc_text).encode("utf-8"))
    return path


def write_document(path: str | os.PathLike, records: Sequence[Record], *, text: str | None = None,
                   final_newline: bool = True) -> Path:
    """Write ``records`` to ``<stem>.ann`` (and ``text`` to ``<stem>.txt`` if given).

    Args:
        path: the document stem (``folder/doc``) or its ``.ann`` path.
        records: the records, in file order.
        text: the document text; when given, every ``T`` is checked against
            it and the ``.txt`` is written too (UTF-8, no newline translation).
        final_newline: end the ``.ann`` with a newline (brat does).

    Returns:
        The path of the ``.ann`` file.

    Raises:
        ValueError: the records would not read back as written.
    """
    stem = os.fspath(path)
    stem = stem[:-4] if stem.endswith(".ann") else stem
    ann = Path(stem + ".ann")
    content = _checked(ann, records, final_newline, text)
    if text is not None:
        _atomic_write(Path(stem + ".txt"), text.encode("utf-8"))
    _atomic_write(ann, content.encode("utf-8"))
    return ann


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------- parser


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _offset_problem(token: str) -> str:
    """Return why ``token`` is not an offset (canonical non-negative integer), or ``""``."""
    if token.isascii() and token.isdigit() and (token[0] != "0" or token == "0"):
        return ""
    if token[:1] == "-" and token[1:].isdigit():
        return f"negative offset {token}"
    return f"offset {_short(token)} is not a non-negative integer"


def _strip_tail(rest: str) -> tuple[str, str]:
    data = rest.rstrip(_BLANK_TAIL)
    return data, rest[len(data):]


def _arg(token: str) -> tuple[str, str] | None:
    role, colon, ref = token.partition(":")
    return (role, ref) if role and ref and ":" not in ref else None


def _parse_textbound(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tab, tail = rest.partition("\t")
    label, _, offsets = data.partition(" ")
    if not label or not offsets:
        return "malformed T line: expected 'T<n><TAB>LABEL START END<TAB>TEXT'"
    fragments: list[Span] = []
    size = -1  # covered characters, plus one separating space per extra fragment
    ascii_only = offsets.isascii()  # str.isdigit alone accepts other scripts' digits
    for fragment in offsets.split(";"):
        start_token, _, end_token = fragment.partition(" ")
        if not (ascii_only and start_token.isdigit() and end_token.isdigit()
                and (start_token[0] != "0" or len(start_token) == 1)
                and (end_token[0] != "0" or len(end_token) == 1)):
            return f"fragment {_short(fragment)}: {_offset_problem(start_token) or _offset_problem(end_token)}"
        start, end = int(start_token), int(end_token)
        if end < start:
            return f"fragment {fragment}: end < start"
        if doc_text is not None and end > len(doc_text):
            return f"fragment {fragment} runs past the end of the text ({len(doc_text)} characters)"
        for s0, e0 in fragments:  # brat's own overlap rule (annotation.py)
            if end >= s0 and start < e0:
                return f"fragment {fragment} overlaps or touches the earlier fragment {s0} {e0}"
        fragments.append((start, end))
        size += end - start + 1
    if not tab:
        return "T line has no TAB before its text"
    text, extra = tail[:size], tail[size:]
    if extra and extra.strip(_BLANK_TAIL):
        text, extra = tail.rstrip(_BLANK_TAIL), ""
    if doc_text is not None:
        if len(fragments) == 1:
            expected = doc_text[fragments[0][0]:fragments[0][1]]
        else:
            expected = " ".join([doc_text[s:e] for s, e in fragments])
        if text != expected:
            return f"text {_short(text)} does not match the document text {_short(expected)} at {offsets}"
    elif len(text) != size:
        return f"text {_short(text)} is not {size} characters long, as its fragments are"
    return TextBound(ident, label, tuple(fragments), text, extra)


def _text_field(rest: str) -> tuple[str, str, str]:
    """Split ``DATA<TAB>TEXT`` into data, raw text and tail (CR, or TAB of an empty text)."""
    data, tab, text = rest.partition("\t")
    if not tab:
        data, tail = _strip_tail(data)
        return data, "", tail
    tail = ""
    if text.endswith("\r"):
        text, tail = text[:-1], "\r"
    return data, text, tail if text else "\t" + tail


def _parse_note(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tab, text = rest.partition("\t")
    if tab and text and text[-1] != "\r" and data.count(" ") == 1:  # the usual form, fast
        kind, _, target = data.partition(" ")
        if kind and target:
            return Note(ident, kind, target, text)
    data, text, tail = _text_field(rest)
    parts = data.split(" ")
    if len(parts) != 2 or not all(parts):
        return "malformed note: expected '#<n><TAB>TYPE TARGET<TAB>TEXT'"
    return Note(ident, parts[0], parts[1], text, tail)


def _parse_normalization(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, text, tail = _text_field(rest)
    parts = data.split(" ")
    resource, _, entry = parts[-1].partition(":")
    if len(parts) != 3 or not parts[0] or not parts[1] or not resource or not entry:
        return "malformed normalization: expected 'N<n><TAB>TYPE TARGET RESOURCE:ENTRY<TAB>TEXT'"
    return Normalization(ident, parts[0], parts[1], resource, entry, text, tail)


def _parse_attribute(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tail = _strip_tail(rest)
    parts = data.split(" ", 2)
    if "\t" in data or len(parts) < 2 or not parts[0] or not parts[1]:
        return "malformed attribute: expected 'A<n><TAB>NAME TARGET [VALUE]'"
    return Attribute(ident, parts[0], parts[1], parts[2] if len(parts) == 3 else None, tail)


def _parse_relation(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tail = _strip_tail(rest)
    parts = data.split(" ")
    args = [_arg(token) for token in parts[1:]]
    if "\t" in data or len(parts) != 3 or not parts[0] or None in args:
        return "malformed relation: expected 'R<n><TAB>TYPE ROLE1:ID1 ROLE2:ID2'"
    if args[0][0] == args[1][0]:
        return f"relation arguments have the same role {args[0][0]!r}"
    return Relation(ident, parts[0], tuple(args), tail)


def _parse_event(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tail = _strip_tail(rest)
    parts = data.split(" ")
    head = _arg(parts[0])
    args = [_arg(token) for token in parts[1:]]
    if "\t" in data or head is None or None in args:
        return "malformed event: expected 'E<n><TAB>TYPE:TRIGGER [ROLE:ID ...]'"
    return Event(ident, head[0], head[1], tuple(args), tail)


def _parse_equivalence(ident: str, rest: str, doc_text: str | None) -> Record | str:
    data, tail = _strip_tail(rest)
    parts = data.split(" ")
    if ident != "*" or "\t" in data or len(parts) < 3 or not all(parts):
        return "malformed equivalence: expected '*<TAB>TYPE ID1 ID2 [...]'"
    return Equivalence(ident, parts[0], tuple(parts[1:]), tail)


_PARSERS = {
    "T": _parse_textbound, "#": _parse_note, "A": _parse_attribute, "M": _parse_attribute,
    "N": _parse_normalization, "R": _parse_relation, "E": _parse_event, "*": _parse_equivalence,
}


_REFERENCES = {
    TextBound: lambda r: (),
    Note: lambda r: (r.target,),
    Attribute: lambda r: (r.target,),
    Normalization: lambda r: (r.target,),
    Relation: lambda r: tuple(ref for _, ref in r.args),
    Event: lambda r: (r.trigger, *(ref for _, ref in r.args)),
    Equivalence: lambda r: r.members,
}


def references(record: Record) -> tuple[str, ...]:
    """Return the ids ``record`` refers to (targets, arguments, trigger, members)."""
    return _REFERENCES[type(record)](record)


def _parse_lines(numbered: Iterable[tuple[int, str]], doc_text: str | None, file: str,
                 check_breaks: bool) -> tuple[list[Record], list[int], list[Problem]]:
    """Parse ``(line number, line)`` pairs; resolve references once all are read."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}  # every id met, good or quarantined -> first line ("*" excluded)
    kept: list[tuple[int, str, Record]] = []
    parsers, valid_id = _PARSERS, _ID.fullmatch
    for number, line in numbered:
        ident, tab, rest = line.partition("\t")
        parser = parsers.get(ident[:1]) if tab else None
        if parser is not None and not check_breaks and ident not in seen and (ident == "*" or valid_id(ident)):
            if ident != "*":
                seen[ident] = number
            result = parser(ident, rest, doc_text)
        else:
            if not line.strip():
                continue  # blank line
            result = _line_problem(line, ident, tab, rest, seen, number, doc_text)
        if type(result) is str:
            problems.append(Problem(file, number, result, line))
        else:
            kept.append((number, line, result))

    good = {record.id: record for _, _, record in kept}
    good.pop("*", None)
    alive = [True] * len(kept)
    changed = True
    while changed:  # quarantining a record can orphan the records that refer to it
        changed = False
        for i, (number, line, record) in enumerate(kept):
            kind = type(record)
            if kind is TextBound or not alive[i]:
                continue
            if (kind is Note or kind is Attribute) and record.target in good:
                continue
            reason = _reference_problem(record, good, seen)
            if reason:
                alive[i], changed = False, True
                problems.append(Problem(file, number, reason, line))
                good.pop(record.id, None)
    if not problems:
        return [record for _, _, record in kept], [number for number, _, _ in kept], problems
    problems.sort(key=lambda p: p.line or 0)
    survivors = [entry for entry, ok in zip(kept, alive, strict=True) if ok]
    return [record for _, _, record in survivors], [number for number, _, _ in survivors], problems


def _line_problem(line: str, ident: str, tab: str, rest: str, seen: dict[str, int], number: int,
                  doc_text: str | None) -> Record | str:
    """Slow path of :func:`_parse_lines`: say what is wrong, or parse if nothing is."""
    odd = _BREAK_IN_LINE.search(line[:-1] if line.endswith("\r") else line)
    if odd:
        return f"holds U+{ord(odd.group()):04X}, which brat reads as a line break"
    if not tab:
        return "malformed line: no TAB after the id"
    if ident[:1] not in _PARSERS:
        if ident.startswith("\ufeff"):
            return "starts with a byte-order mark (U+FEFF), which brat reads as part of the id"
        return f"unknown line type (id {_short(ident, 20)})"
    if ident != "*" and not _ID.fullmatch(ident):
        return f"invalid id {_short(ident, 20)}"
    if ident in seen:
        return f"duplicate id {ident} (first on line {seen[ident]})"
    if ident != "*":
        seen[ident] = number
    return _PARSERS[ident[0]](ident, rest, doc_text)


def _reference_problem(record: Record, good: dict[str, Record], seen: dict[str, int]) -> str:
    for ref in _REFERENCES[type(record)](record):
        if ref not in good:
            if ref in seen:
                return f"refers to {ref}, which is quarantined (line {seen[ref]})"
            return f"refers to unknown id {_short(ref, 20)}"
    if isinstance(record, Event):
        trigger = good[record.trigger]
        if not isinstance(trigger, TextBound):
            return f"event trigger {record.trigger} is not a text-bound annotation"
        if trigger.label != record.type:
            return f"event type {record.type!r} differs from its trigger's label {trigger.label!r}"
    return ""


# The two line forms coding tools write nearly always, a ``T`` and an annotator
# note, in the canonical form; fields hold no line break brat would see.
_NUM = "(?:0|[1-9][0-9]*)"
_FIELD = "[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
_FAST_LINE = re.compile(
    rf"^(?:(T[0-9]+)\t(\S+) ({_NUM} {_NUM}(?:;{_NUM} {_NUM})*)\t({_FIELD}*)"
    rf"|(#[0-9]+)\t(\S+) (\S+)\t({_FIELD}+))\n", re.M)


def _fast_lines(text: str, doc_text: str | None) -> list[tuple[str, ...] | TextBound] | None:
    """Fast path of :func:`_parse_lines` for a file of well-formed ``T`` and note lines only.

    One regex pass finds the lines; only the checks such lines can fail follow
    (end before start, past the text, text differs, duplicate id, note on an
    unknown id; a ``T`` of several fragments goes through the full line parser).
    Any other file, or any failed check, gives ``None`` and the full parser
    takes over, so what is accepted here the full parser accepts with the same
    records.

    Returns:
        Per line, in order: a ``T`` as ``(id, label, start, end, text)`` (ints)
        or, with several fragments, its :class:`TextBound`; a note as its
        regex groups ``("", "", "", "", id, type, target, text)``. ``None``
        when the full parser is needed.
    """
    rows = _FAST_LINE.findall(text)
    if len(rows) != text.count("\n") or (text and text[-1] != "\n"):
        return None  # a line of another kind or form (or no final newline): full parser
    out: list[tuple[str, ...] | TextBound] = []
    ids = set()
    size = 0 if doc_text is None else len(doc_text)
    for row in rows:
        t_id, label, offsets, covered = row[0], row[1], row[2], row[3]
        if not t_id:
            out.append(row)
            ids.add(row[4])
            continue
        ids.add(t_id)
        if ";" in offsets:  # several fragments: rare, and the overlap rules are the full parser's
            record = _parse_textbound(t_id, f"{label} {offsets}\t{covered}", doc_text)
            if type(record) is str:
                return None
            out.append(record)
            continue
        start_token, _, end_token = offsets.partition(" ")
        start, end = int(start_token), int(end_token)
        if end < start:
            return None
        if doc_text is None:
            if len(covered) != end - start:
                return None
        elif end > size or covered != doc_text[start:end]:
            return None
        out.append((t_id, label, start, end, covered))
    if len(ids) != len(rows):
        return None  # a duplicate id
    for row in rows:
        if row[4] and row[6] not in ids:
            return None  # a note on a missing id
    return out


def _fast_spans(text: str, doc_text: str) -> list[tuple[str, tuple[Span, ...]]] | None:
    """The ``(label, fragments)`` of the ``T`` lines, with :func:`_fast_lines`'s checks, or ``None``.

    The same pass as :func:`_fast_lines` that keeps only what a span needs.
    """
    rows = _FAST_LINE.findall(text)
    if len(rows) != text.count("\n") or (text and text[-1] != "\n"):
        return None
    spans: list[tuple[str, tuple[Span, ...]]] = []
    ids = set()
    targets = []
    size = len(doc_text)
    for t_id, label, offsets, covered, note_id, _, target, _ in rows:
        if not t_id:
            ids.add(note_id)
            targets.append(target)
        elif ";" in offsets:  # several fragments: the full line parser's rules
            ids.add(t_id)
            record = _parse_textbound(t_id, f"{label} {offsets}\t{covered}", doc_text)
            if type(record) is str:
                return None
            spans.append((label, record.fragments))
        else:
            ids.add(t_id)
            start_token, _, end_token = offsets.partition(" ")
            start, end = int(start_token), int(end_token)
            if end < start or end > size or covered != doc_text[start:end]:
                return None
            spans.append((label, ((start, end),)))
    if len(ids) != len(rows) or not ids.issuperset(targets):
        return None  # a duplicate id, or a note on a missing id
    return spans


def _fast_records(text: str, doc_text: str | None) -> list[Record] | None:
    """The records of :func:`_fast_lines`, or ``None`` when the full parser is needed."""
    found = _fast_lines(text, doc_text)
    if found is None:
        return None
    return [row if type(row) is TextBound
            else TextBound(row[0], row[1], ((row[2], row[3]),), row[4]) if len(row) == 5
            else Note(row[4], row[5], row[6], row[7]) for row in found]


def parse_ann(text: str, doc_text: str | None, *, file: str = "<string>") -> tuple[list[Record], list[Problem]]:
    """Parse the text of an ``.ann`` file.

    Args:
        text: the ``.ann`` content.
        doc_text: the document text to check ``T`` lines against, or ``None``
            to check only their form.
        file: the name to put in problems.

    Returns:
        ``(records, problems)``: the good records in file order, one problem
        per bad line, sorted by line.
    """
    records = _fast_records(text, doc_text)
    if records is not None:
        return records, []
    records, _, problems = _parse_lines(enumerate(text.split("\n"), 1), doc_text, file,
                                        _has_breaks(text))
    return records, problems


# ------------------------------------------------------------------ documents


def _decode(data: bytes, file: str, line: int | None = None) -> tuple[str | None, Problem | None]:
    """Decode strict UTF-8 (a BOM stays U+FEFF); on failure name the line of the bad byte."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        if line is None:
            line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        reason = f"not UTF-8: byte 0x{data[exc.start]:02x} at byte {column + 1} of the line"
        return None, Problem(file, line, reason, data.decode("utf-8", "replace"))


def _read_bytes(path: str | os.PathLike) -> bytes:
    """Return the bytes of the file ``path``.

    Plain ``os.open``/``os.read``: for the small files of a round this halves
    the time of ``open(path, "rb").read()``, which builds two file objects.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        parts = []
        while chunk := os.read(fd, 1 << 16):  # below malloc's mmap threshold
            parts.append(chunk)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_text(path: str | os.PathLike) -> str:
    """Return the text of a UTF-8 file as brat reads it: BOM and CRs kept.

    Raises:
        BratError: the file is not valid UTF-8.
        OSError: the file cannot be read.
    """
    text, problem = _decode(_read_bytes(path), os.fspath(path))
    if problem is not None:
        raise BratError([problem])
    return text


def _parse_ann_bytes(data: bytes, doc_text: str | None, file: str
                     ) -> tuple[list[Record], list[int], list[Problem], bool]:
    """Parse the bytes of an ``.ann``: records, their lines, problems, final newline."""
    text, bad = _decode(data, file)
    if text is not None:
        records = _fast_records(text, doc_text)
        if records is not None:
            return records, list(range(1, len(records) + 1)), [], True
        numbered: Iterable[tuple[int, str]] = enumerate(text.split("\n"), 1)
        check = _has_breaks(text)
        final_newline = not text or text.endswith("\n")
    else:  # decode line by line, so only the bad lines are lost
        problems, good_lines = [], []
        for number, raw in enumerate(data.split(b"\n"), 1):
            line, bad = _decode(raw, file, number)
            if line is None:
                problems.append(bad)
            else:
                good_lines.append((number, line))
        records, lines, more = _parse_lines(good_lines, doc_text, file, True)
        return records, lines, sorted(problems + more, key=lambda p: p.line or 0), data.endswith(b"\n")
    records, lines, problems = _parse_lines(numbered, doc_text, file, check)
    return records, lines, problems, final_newline


def _read_ann(path: Path, doc_text: str) -> tuple[list[Record], list[int], list[Problem], bool]:
    return _parse_ann_bytes(_read_bytes(path), doc_text, str(path))


def read_spans(ann_path: str | os.PathLike, doc_text: str) -> tuple[list[tuple[str, tuple[Span, ...]]], list[Problem]]:
    """Read the ``T`` spans of an ``.ann`` whose text has been read already.

    The whole file is checked as :func:`read_document` checks it (every line,
    references, ``T`` texts against ``doc_text``) and bad lines are left out
    the same way; only no record objects are built for well-formed files.

    Args:
        ann_path: the ``.ann`` file.
        doc_text: the document text (e.g. from :func:`read_text`).

    Returns:
        ``([(label, fragments), ...], problems)`` in file order.

    Raises:
        OSError: the file cannot be read.
    """
    data = _read_bytes(ann_path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        spans = _fast_spans(text, doc_text)
        if spans is not None:
            return spans, []
    records, _, problems, _ = _parse_ann_bytes(data, doc_text, os.fspath(ann_path))
    return [(r.label, r.fragments) for r in records if type(r) is TextBound], problems


def read_ann(ann_path: str | os.PathLike, text: str, txt_path: str | os.PathLike | None = None
             ) -> tuple[Document | None, list[Problem]]:
    """Read an ``.ann`` whose text has been read already (one text, several coders' files).

    Args:
        ann_path: the ``.ann`` file.
        text: the document text, as :func:`read_text` returns it.
        txt_path: where ``text`` came from, kept in the document.

    Returns:
        ``(document, problems)`` as :func:`read_document` returns them;
        ``document`` is ``None`` when the ``.ann`` cannot be read.
    """
    ann = Path(ann_path)
    try:
        records, lines, problems, final_newline = _read_ann(ann, text)
    except OSError as exc:
        return None, [Problem(exc.filename or str(ann), None, f"cannot read: {exc.strerror or exc}")]
    txt = None if txt_path is None else Path(txt_path)
    return Document(ann.stem, text, tuple(records), txt, ann, tuple(lines), final_newline), problems


def _load(ann: Path | None, txt: Path | None, doc_id: str) -> tuple[Document | None, list[Problem]]:
    if txt is None:
        return None, [Problem(str(ann), None, f"annotation file without text: {doc_id}.txt is missing")]
    try:
        text, problem = _decode(_read_bytes(txt), str(txt))
        if problem is not None:
            return None, [problem]
        if ann is None:
            return Document(doc_id, text, (), txt, None), []
        records, lines, problems, final_newline = _read_ann(ann, text)
    except OSError as exc:
        return None, [Problem(exc.filename or str(txt), None, f"cannot read: {exc.strerror or exc}")]
    return Document(doc_id, text, tuple(records), txt, ann, tuple(lines), final_newline), problems


def read_document(ann_path: str | os.PathLike, txt_path: str | os.PathLike | None = None, *,
                  strict: bool = False) -> tuple[Document | None, list[Problem]]:
    """Read one document: ``X.ann`` and its text ``X.txt``.

    Args:
        ann_path: the ``.ann`` path (a ``.txt`` path is accepted too).
        txt_path: the text; by default the ``.txt`` beside ``ann_path``.
        strict: raise :class:`BratError` instead of returning problems.

    Returns:
        ``(document, problems)``; ``document`` is ``None`` when the text is
        missing or unreadable. A missing ``.ann`` gives a document without records.

    Raises:
        FileNotFoundError: neither file exists.
        BratError: ``strict`` and there is a problem.
    """
    ann = Path(ann_path)
    if ann.suffix == ".txt" and txt_path is None:
        ann, txt_path = ann.with_suffix(".ann"), ann
    txt = Path(txt_path) if txt_path is not None else ann.with_suffix(".txt")
    has_ann, has_txt = ann.is_file(), txt.is_file()
    if not has_ann and not has_txt:
        raise FileNotFoundError(f"{ann}: no such .ann nor {txt.name}")
    document, problems = _load(ann if has_ann else None, txt if has_txt else None, ann.stem)
    if strict and problems:
        raise BratError(problems)
    return document, problems


def _walk(root: Path) -> Iterator[tuple[str, str, bool, bool] | Problem]:
    """Yield ``(folder, doc_id, has_ann, has_txt)`` per document under ``root``, or a folder problem."""
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append):
        while errors:
            exc = errors.pop()
            yield Problem(exc.filename or folder, None, f"cannot list folder: {exc.strerror or exc}")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        anns, txts = set(), set()
        for name in files:
            if name[0] == ".":
                continue
            if name.endswith(".ann"):
                anns.add(name[:-4])
            elif name.endswith(".txt"):
                txts.add(name[:-4])
        for stem in sorted(anns | txts):
            yield folder, stem, stem in anns, stem in txts
    for exc in errors:
        yield Problem(exc.filename or str(root), None, f"cannot list folder: {exc.strerror or exc}")


def _load_item(folder: str, stem: str, has_ann: bool, has_txt: bool) -> tuple[Document | None, list[Problem]]:
    base = Path(folder)
    return _load(base / f"{stem}.ann" if has_ann else None, base / f"{stem}.txt" if has_txt else None, stem)


def iter_documents(root: str | os.PathLike, *, strict: bool = False) -> Iterator[tuple[Document | None, list[Problem]]]:
    """Yield ``(document, problems)`` for every document under ``root``, in sorted order.

    Folders are walked depth first, names sorted; ``X.ann`` pairs with ``X.txt``
    in the same folder. Files and folders whose name starts with ``.`` are
    skipped (brat hides them too, and so are the writer's temporary files).
    Only one document is held in memory at a time.

    Args:
        root: the folder to walk.
        strict: raise :class:`BratError` at the first document with a problem.

    Yields:
        ``(document, problems)``; ``document`` is ``None`` for an ``.ann``
        without ``.txt``, an unreadable text, or a folder that cannot be listed.

    Raises:
        NotADirectoryError: ``root`` is not a folder.
        BratError: ``strict`` and a document has a problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    for item in _walk(root):
        document, problems = (None, [item]) if isinstance(item, Problem) else _load_item(*item)
        if strict and problems:
            raise BratError(problems)
        yield document, problems
