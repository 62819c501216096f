"""The one writer of ``.ann`` text: records to standoff lines, written atomically.

:func:`format_ann` gives the text, :func:`write_ann` and :func:`write_document`
write it only after it reads back equal; :mod:`hiericd_core.brat` re-exports
every public name here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from hiericd_core.brat_parse import _BREAK_IN_LINE, parse_ann
from hiericd_core.brat_records import (
    Attribute,
    Equivalence,
    Event,
    Normalization,
    Note,
    Record,
    Relation,
    TextBound,
)
from hiericd_core.files import atomic_write_bytes


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
    atomic_write_bytes(path, _checked(path, records, final_newline, doc_text).encode("utf-8"), durable=True)
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
        atomic_write_bytes(Path(stem + ".txt"), text.encode("utf-8"), durable=True)
    atomic_write_bytes(ann, content.encode("utf-8"), durable=True)
    return ann
