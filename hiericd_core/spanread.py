"""Reading a bratiaa-style project (one sub-folder per annotator) into a :class:`~hiericd_core.spanagree.SpanTable`.

Each distinct ``.txt`` is read once, every annotator's ``.ann`` checked
against it with :func:`hiericd_core.brat.read_spans` (every line checked, no
record objects); large projects are read on every CPU. Bad lines and missing
files become :class:`~hiericd_core.brat.Problem` entries, and the rest is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from hiericd_core.brat import BratError, Problem, read_spans, read_text
from hiericd_core.spanagree import Fragments, SpanDocument, SpanTable

_PARALLEL_FROM = 2000  # documents; below this, reading in-process is faster than starting workers
_TASKS_PER_WORKER = 1  # tasks per worker: more even out uneven workers, at some cost each

# one document of a project: its id and, per annotator folder holding its .ann (in folder order):
# (annotator index, .ann path, .txt path or None, (device, inode) of the .txt or None)
_Job = tuple[str, list[tuple[int, str, str | None, tuple[int, int] | None]]]
# what a worker returns for a run of documents: per document its text (None: nothing could be read),
# (document, annotator) pairs read, label names, fragment rows (see SpanTable), problems
_Chunk = tuple[list[str | None], list[int], list[str], np.ndarray, list[Problem]]


def _scan(top: str) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """The ``.ann`` files (relative path -> path) and ``.txt`` files (relative stem -> device, inode) under ``top``.

    Like ``Path.rglob``: hidden names count, symbolic links to folders are not followed.
    """
    anns: dict[str, str] = {}
    txts: dict[str, tuple[int, int]] = {}
    stack = [("", top)]
    while stack:
        prefix, folder = stack.pop()
        device = os.stat(folder).st_dev
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{name}/", entry.path))
                elif name.endswith(".ann"):
                    anns[prefix + name] = entry.path
                elif name.endswith(".txt"):
                    txts[prefix + name[:-4]] = (device, entry.inode())
    return anns, txts


def _project_jobs(root: Path) -> tuple[tuple[str, ...], list[_Job]]:
    """The annotator folders of a project (sorted) and its documents (sorted by id)."""
    with os.scandir(root) as entries:
        names = sorted(entry.name for entry in entries if entry.is_dir())
    scans = [(name, *_scan(os.path.join(root, name))) for name in names]
    scans = [scan for scan in scans if scan[1]]
    if len(scans) < 2:
        raise ValueError(f"{root}: agreement needs at least two annotator sub-folders with .ann files")
    jobs: dict[str, list] = {}
    for index, (_, anns, txts) in enumerate(scans):
        for doc_id, ann in anns.items():
            key = txts.get(doc_id[:-4])
            jobs.setdefault(doc_id, []).append((index, ann, None if key is None else ann[:-4] + ".txt", key))
    return tuple(name for name, _, _ in scans), sorted(jobs.items())


def _read_chunk(jobs: list[_Job]) -> _Chunk:
    """Read a run of documents: each distinct ``.txt`` once, every annotator's ``.ann`` checked against it."""
    texts: list[str | None] = []
    has: list[int] = []
    labels: dict[str, int] = {}
    rows: list[int] = []
    problems: list[Problem] = []
    n_rows = 0
    for d, (_, entries) in enumerate(jobs):
        kept: str | None = None
        read: dict[tuple[int, int], str] = {}  # copies that are one file (hard links) are read once
        for a, ann, txt, key in entries:
            if txt is None:
                stem = os.path.basename(ann)[:-4]
                problems.append(Problem(ann, None, f"annotation file without text: {stem}.txt is missing"))
                continue
            try:
                text = read.get(key)
                if text is None:
                    text = read[key] = read_text(txt)
                spans, found = read_spans(ann, text)
            except BratError as exc:
                problems.extend(exc.problems)
                continue
            except OSError as exc:
                problems.append(Problem(exc.filename or txt, None, f"cannot read: {exc.strerror or exc}"))
                continue
            problems.extend(found)
            if kept is None:
                kept = text
            has += (d, a)
            for label, fragments in spans:
                label_id = labels.get(label)
                if label_id is None:
                    label_id = labels[label] = len(labels)
                first = n_rows
                for start, end in fragments:
                    rows += (a, d, label_id, start, end, first)
                    n_rows += 1
        texts.append(kept)
    return texts, has, list(labels), np.array(rows, dtype=np.int64).reshape(-1, 6), problems


_shared_jobs: list[_Job] = []  # a worker's documents, set by _share in the worker


def _share(jobs: list[_Job]) -> None:
    """Worker initializer: keep the documents; a forked worker gets them without pickling."""
    global _shared_jobs
    _shared_jobs = jobs


def _read_range(lo: int, hi: int) -> _Chunk:
    return _read_chunk(_shared_jobs[lo:hi])


def _read_chunks(jobs: list[_Job]) -> list[_Chunk]:
    """Read the documents on every CPU, in order (small projects in-process).

    This process reads the first share itself while ``CPUs - 1`` workers read
    the rest: no process sits idle waiting, and on a busy machine (where the
    workers get little CPU) little is lost to the extra processes.
    """
    from concurrent.futures import ProcessPoolExecutor

    from hiericd_core.parallel import context, usable_cpus

    workers = usable_cpus()
    if workers == 1 or len(jobs) < _PARALLEL_FROM:
        return [_read_chunk(jobs)]
    own = -(-len(jobs) // workers)
    rest = jobs[own:]
    size = -(-len(rest) // ((workers - 1) * _TASKS_PER_WORKER))
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context(), initializer=_share,
                             initargs=(rest,)) as pool:
        futures = [pool.submit(_read_range, lo, lo + size) for lo in range(0, len(rest), size)]
        mine = _read_chunk(jobs[:own])
        return [mine] + [future.result() for future in futures]


def read_project_table(root: str | Path, labels: Sequence[str] | None = None) -> tuple[SpanTable, list[Problem]]:
    """Read a bratiaa-style project straight into a :class:`SpanTable`; see :func:`read_project`.

    The same as ``span_table(read_project(root)[0], labels)`` with the
    problems, without a Python object per annotation in between.

    Raises:
        ValueError: when ``root`` has fewer than two annotator folders with ``.ann`` files.
    """
    annotators, jobs = _project_jobs(Path(root))
    chunks = _read_chunks(jobs)
    names: dict[str, int] = {}
    doc_ids: list[str] = []
    texts: list[str] = []
    has_parts, row_parts, problems = [], [], []
    n_rows = 0
    for chunk, (chunk_texts, has, chunk_labels, rows, found) in zip(
            _chunk_jobs(jobs, chunks), chunks, strict=True):
        problems.extend(found)
        read = np.array([t is not None for t in chunk_texts], dtype=bool)
        position = np.cumsum(read) - 1 + len(doc_ids)  # documents nothing could be read of are left out
        doc_ids.extend(doc_id for (doc_id, _), ok in zip(chunk, read.tolist(), strict=True) if ok)
        texts.extend(t for t in chunk_texts if t is not None)
        pairs = np.array(has, dtype=np.int64).reshape(-1, 2)
        has_parts.append(np.column_stack((position[pairs[:, 0]], pairs[:, 1])))
        to_name = np.array([names.setdefault(label, len(names)) for label in chunk_labels], dtype=np.int64)
        if len(rows):
            rows[:, 1] = position[rows[:, 1]]
            rows[:, 2] = to_name[rows[:, 2]]
            rows[:, 5] += n_rows
        row_parts.append(rows)
        n_rows += len(rows)
    has_pairs = np.concatenate(has_parts) if has_parts else np.zeros((0, 2), np.int64)
    present = np.unique(has_pairs[:, 1])  # annotators with at least one document read, as span_table has them
    who = np.full(len(annotators), -1, dtype=np.int64)
    who[present] = np.arange(len(present))
    has = np.zeros((len(doc_ids), len(present)), dtype=bool)
    has[has_pairs[:, 0], who[has_pairs[:, 1]]] = True
    table = np.concatenate(row_parts) if row_parts else np.zeros((0, 6), np.int64)
    table[:, 0] = who[table[:, 0]]
    problems.sort(key=lambda p: (p.file, p.line or 0))
    return SpanTable.from_rows(tuple(annotators[i] for i in present.tolist()), tuple(doc_ids), texts, has, table,
                         list(names), labels), problems


def _chunk_jobs(jobs: list[_Job], chunks: list[_Chunk]) -> Iterable[list[_Job]]:
    """Cut ``jobs`` as :func:`_read_chunks` did, by the sizes of its results."""
    start = 0
    for chunk in chunks:
        yield jobs[start:start + len(chunk[0])]
        start += len(chunk[0])


def read_project(root: str | Path) -> tuple[list[SpanDocument], list[Problem]]:
    """Read a bratiaa-style project: one sub-folder per annotator, same relative file names.

    A document's id is its ``.ann`` path relative to the annotator folder
    (e.g. ``esp.train-doc-100.ann``, as bratiaa's reports name it). Every
    annotator's ``.ann`` is checked against the ``.txt`` beside it; copies of
    a ``.txt`` that are one file (hard links, as brat projects are often laid
    out) are read once. A document's text is that of the first annotator (in
    name order) whose files could be read. Only text-bound (``T``)
    annotations count. Large projects are read on every CPU.

    Returns:
        ``(documents, problems)``: the documents, and the BRAT problems met on
        the way (bad lines are left out, as the round loader does), sorted by
        file and line.

    Raises:
        ValueError: when ``root`` has fewer than two annotator folders with ``.ann`` files.
    """
    t, problems = read_project_table(root)
    annotations: list[dict[str, list[tuple[str, Fragments]]]] = [{} for _ in t.documents]
    for d, a in zip(*np.nonzero(t.has), strict=True):
        annotations[d][t.annotators[a]] = []
    rows = zip(t.annotator.tolist(), t.document.tolist(), t.label.tolist(), t.start.tolist(), t.end.tolist(),
               t.annotation.tolist(), strict=True)
    last = -1
    for a, d, label, start, end, annotation in rows:
        spans = annotations[d][t.annotators[a]]
        if annotation == last:
            spans[-1] = (spans[-1][0], (*spans[-1][1], (start, end)))
        else:
            spans.append((t.labels[label], ((start, end),)))
        last = annotation
    documents = [SpanDocument(doc_id, text, spans)
                 for doc_id, text, spans in zip(t.documents, t.texts, annotations, strict=True)]
    return documents, problems
