"""The one parser of ``.ann`` text: lines to records and problems.

:func:`parse_ann` parses a whole file; :func:`_parse_lines` is the line-by-line
parser (one ``_parse_*`` per line kind, then references resolved once all are
read) and :func:`_fast_lines` the one-regex fast path for the usual files (see
"Speed" in :mod:`hiericd_core.brat`, which re-exports the public names here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hiericd_core.brat_records import (
    Attribute,
    Equivalence,
    Event,
    Normalization,
    Note,
    Problem,
    Record,
    Relation,
    Span,
    TextBound,
)

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
