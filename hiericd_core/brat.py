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
annotator notes in the canonical form. :func:`~hiericd_core.brat_parse._fast_lines` takes such a
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

Modules
-------
This module holds :class:`Document` and the reading API (:func:`read_text`,
:func:`read_spans`, :func:`read_ann`, :func:`read_document`,
:func:`iter_documents`) and re-exports the rest: the records from
:mod:`hiericd_core.brat_records`, the parser from :mod:`hiericd_core.brat_parse`
and the writer from :mod:`hiericd_core.brat_write`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hiericd_core.brat_parse import _fast_records, _fast_spans, _has_breaks, _parse_lines, parse_ann, references
from hiericd_core.brat_records import (
    Attribute,
    BratError,
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
from hiericd_core.brat_write import format_ann, format_record, write_ann, write_document

__all__ = [
    "Attribute",
    "BratError",
    "Document",
    "Equivalence",
    "Event",
    "Normalization",
    "Note",
    "Problem",
    "Record",
    "Relation",
    "Span",
    "TextBound",
    "format_ann",
    "format_record",
    "iter_documents",
    "parse_ann",
    "read_ann",
    "read_document",
    "read_spans",
    "read_text",
    "references",
    "write_ann",
    "write_document",
]


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
