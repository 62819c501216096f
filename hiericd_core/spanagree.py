"""Span agreement between annotators, computed as bratiaa (kldtz/bratiaa) does.

Two annotators' spans are compared like a gold standard and a prediction,
and their agreement is the F1 score ``2·TP / (2·TP + FP + FN)``:

* ``instance`` — a true positive is an annotation both made with the same
  label and the same fragments (exact match); one annotator's duplicates
  count once (a set per document).
* ``token`` — each of an annotator's distinct annotations (duplicates count
  once, as above) is cut into the tokens its fragments overlap (bratiaa's
  tokens: runs of non-whitespace, ``\\S+``), and the (token, label) multisets
  are compared; a long annotation weighs more than a short one, and boundary
  disagreements cost only the tokens they move.

Counts are kept per annotator pair × document and per pair × label. As in
bratiaa, the F1 per document (all labels), per label (all documents) and in
total is computed for every pair, and the report gives the mean and the
population standard deviation (``ddof=0``) over pairs.

Where this differs from bratiaa, on purpose:

* a pair compares only the documents both annotators have (in a coding round
  each report is coded by 2 of 3 coders); an F1 with no spans at all (0/0)
  is left out of the mean and SD instead of turning them into ``nan``;
* labels are those used in the annotations (or the caller's list), not read
  from ``annotation.conf``;
* fragment order does not matter for an exact match.

It reproduces bratiaa's reports on its example project (``tests/fixtures/bratiaa``)
and, on a 39,000-report synthetic round, bratiaa 0.1.4's F1 for every pair in
both modes to the last bit. Everything is interval arithmetic on numpy arrays
(no object per token): that round's three pairs take about a second in both
modes, where bratiaa takes 26 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hiericd_core.brat import Problem, TextBound, read_document

if TYPE_CHECKING:
    from hiericd_core.rounds import Round

Mode = Literal["instance", "token"]
Fragments = tuple[tuple[int, int], ...]
Splitter = Callable[[str], Sequence[tuple[int, int]]]

_CHUNK_CHARS = 8_000_000  # texts are classified in chunks of about this many characters


# --------------------------------------------------------------------------- spans of many texts


@dataclass(frozen=True, eq=False)
class CorpusSpans:
    """Spans (tokens or sentences) of many texts, laid end to end.

    Text ``d`` starts at ``offsets[d]`` in the joined coordinates (texts are
    one separator character apart, so no span crosses two texts); its spans
    are ``start[first[d]:first[d + 1]]`` and the same slice of ``end``. Spans
    are sorted and do not overlap.
    """

    start: np.ndarray  # (n_spans,) joined coordinates
    end: np.ndarray  # (n_spans,)
    first: np.ndarray  # (n_texts + 1,) index of each text's first span
    offsets: np.ndarray  # (n_texts + 1,) start of each text; offsets[-1] is the joined length + 1
    lengths: np.ndarray  # (n_texts,)

    @property
    def counts(self) -> np.ndarray:
        """Number of spans of each text, ``(n_texts,)``."""
        return np.diff(self.first)

    def overlapping(self, text: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``[lo, hi)``: the spans that share a character with each fragment.

        Args:
            text: ``(n,)`` index of the text of each fragment.
            start: ``(n,)`` fragment starts, offsets into that text.
            end: ``(n,)`` fragment ends (exclusive); clipped to the text.
        """
        limit = self.lengths[text]
        begin = self.offsets[text] + np.minimum(start, limit)
        stop = self.offsets[text] + np.minimum(end, limit)
        lo = np.searchsorted(self.end, begin, side="right")  # first span ending after the fragment starts
        hi = np.searchsorted(self.start, stop, side="left")  # spans starting before the fragment ends
        return lo, np.maximum(hi, lo)


def expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(owner, index)``: one row per index in each range ``[lo[i], hi[i])``."""
    sizes = hi - lo
    owner = np.repeat(np.arange(len(lo)), sizes)
    starts = np.cumsum(sizes) - sizes
    index = np.arange(int(sizes.sum())) - np.repeat(starts, sizes) + np.repeat(lo, sizes)
    return owner, index


def whitespace_tokens(text: str) -> list[tuple[int, int]]:
    """Return bratiaa's tokens of ``text``: maximal runs of non-whitespace (regex ``\\S+``)."""
    return _spans_list(_tokens([text], "whitespace"))


def word_tokens(text: str) -> list[tuple[int, int]]:
    """Return word tokens (runs of ``\\w``) and single punctuation characters, as regex ``\\w+|[^\\w\\s]``."""
    return _spans_list(_tokens([text], "words"))


def corpus_spans(texts: Sequence[str], splitter: Splitter) -> CorpusSpans:
    """Split every text with ``splitter`` and lay the spans end to end.

    The built-in tokenizers (:func:`whitespace_tokens`, :func:`word_tokens`)
    run vectorised over all texts at once; any other splitter is called once
    per text and must return sorted, non-overlapping ``(start, end)`` pairs.
    """
    kind = {whitespace_tokens: "whitespace", word_tokens: "words"}.get(splitter)
    if kind is not None:
        return _tokens(texts, kind)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = _offsets(lengths)
    parts = [np.asarray(splitter(t), dtype=np.int64).reshape(-1, 2) for t in texts]
    counts = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    spans = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    shift = np.repeat(offsets[:-1], counts)
    start, end = spans[:, 0] + shift, spans[:, 1] + shift
    assert np.all(np.diff(start) >= 0) and np.all(end[:-1] <= start[1:]), "spans must be sorted, not overlapping"
    return CorpusSpans(start, end, _offsets(counts, gap=0), offsets, lengths)


def _offsets(lengths: np.ndarray, gap: int = 1) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths + gap, out=out[1:])
    return out


def _spans_list(spans: CorpusSpans) -> list[tuple[int, int]]:
    return list(zip(spans.start.tolist(), spans.end.tolist(), strict=True))


@cache
def _class_table() -> np.ndarray:
    """Character class of every BMP code point: 0 whitespace, 1 word (``\\w``), 2 other."""
    table = np.full(0x10000, 2, dtype=np.int8)
    for code in range(0x10000):
        char = chr(code)
        if char.isspace():
            table[code] = 0
        elif char.isalnum() or char == "_":
            table[code] = 1
    return table


def _classes(joined: str) -> np.ndarray:
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    classes = _class_table().take(np.minimum(points, 0xFFFF))
    astral = np.flatnonzero(points > 0xFFFF)
    for i in astral.tolist():  # rare: emoji and the like
        char = chr(int(points[i]))
        classes[i] = 0 if char.isspace() else 1 if char.isalnum() else 2
    return classes


def _tokens(texts: Sequence[str], kind: str) -> CorpusSpans:
    """Vectorised tokenizer over all texts, chunk by chunk to bound memory."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = _offsets(lengths)
    starts, ends = [], []
    lo = 0
    while lo < len(texts):
        hi = lo + 1
        while hi < len(texts) and offsets[hi] - offsets[lo] < _CHUNK_CHARS:
            hi += 1
        classes = _classes("\n".join(texts[lo:hi]))  # the "\n" separators are whitespace: no token crosses
        inside = classes == 1 if kind == "words" else classes != 0
        before = np.concatenate(([False], inside[:-1]))
        after = np.concatenate((inside[1:], [False]))
        begin, finish = inside & ~before, inside & ~after
        if kind == "words":
            punct = classes == 2
            begin, finish = begin | punct, finish | punct
        starts.append(np.flatnonzero(begin) + offsets[lo])
        ends.append(np.flatnonzero(finish) + 1 + offsets[lo])
        lo = hi
    start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    end = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    first = np.searchsorted(start, offsets)
    return CorpusSpans(start, end, first, offsets, lengths)


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class SpanDocument:
    """One document as every annotator marked it.

    ``annotations`` maps an annotator to their ``(label, fragments)`` spans;
    an annotator absent from the mapping did not annotate the document
    (present with an empty list: annotated it and found nothing).
    """

    doc_id: str
    text: str
    annotations: Mapping[str, Sequence[tuple[str, Fragments]]]


@dataclass(frozen=True, eq=False)
class SpanAgreement:
    """Pairwise span agreement counts, and the F1 summaries bratiaa reports.

    ``by_document[p, d]`` and ``by_label[p, l]`` hold ``(TP, FP, FN)`` of pair
    ``pairs[p]``, taking the pair's first annotator as the reference.
    """

    mode: Mode
    annotators: tuple[str, ...]
    documents: tuple[str, ...]
    labels: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    shared: np.ndarray  # (pairs,) documents both annotators of the pair have
    by_document: np.ndarray  # (pairs, documents, 3) TP, FP, FN
    by_label: np.ndarray  # (pairs, labels, 3)

    def f1_pairs(self) -> np.ndarray:
        """Total F1 of each pair, ``(pairs,)``; ``nan`` where the pair has no spans."""
        return _f1(self.by_label.sum(axis=1))

    def mean_sd_total(self) -> tuple[float, float]:
        """Mean and SD over pairs of the total F1."""
        mean, sd = _mean_sd(self.f1_pairs()[:, None])
        return float(mean[0]), float(sd[0])

    def mean_sd_per_label(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD over pairs of each label's F1 (all documents), in ``labels`` order."""
        return _mean_sd(_f1(self.by_label))

    def mean_sd_per_document(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD over pairs of each document's F1 (all labels), in ``documents`` order."""
        return _mean_sd(_f1(self.by_document))

    def to_dict(self, decimals: int = 6, documents: bool = True) -> dict:
        """Return the summary as JSON-ready data (floats rounded, ``None`` for undefined).

        Args:
            decimals: digits kept after the decimal point.
            documents: include the per-document table (large for a big round).
        """
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), decimals)

        def rows(key: str, names: Sequence[str], mean: np.ndarray, sd: np.ndarray) -> list[dict]:
            return [{key: n, "mean": num(m), "sd": num(s)} for n, m, s in zip(names, mean, sd, strict=True)]

        mean, sd = self.mean_sd_total()
        out = {
            "mode": self.mode,
            "annotators": list(self.annotators),
            "n_documents": len(self.documents),
            "labels": len(self.labels),
            "mean": num(mean),
            "sd": num(sd),
            "pairs": [{"a": a, "b": b, "n_documents": int(n), "f1": num(f)}
                      for (a, b), n, f in zip(self.pairs, self.shared, self.f1_pairs(), strict=True)],
            "per_label": rows("label", self.labels, *self.mean_sd_per_label()),
        }
        if documents:
            out["per_document"] = rows("document", self.documents, *self.mean_sd_per_document())
        return out


def _f1(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * tp / (2 * tp + fp + fn)


def _mean_sd(f1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population SD along the pair axis, leaving out undefined F1s."""
    defined = np.isfinite(f1)
    n = defined.sum(axis=0)
    values = np.where(defined, f1, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = values.sum(axis=0) / n
        var = (np.where(defined, f1 - mean, 0.0) ** 2).sum(axis=0) / n
    return mean, np.sqrt(var)


@dataclass(frozen=True, eq=False)
class SpanTable:
    """Every annotator's spans over a set of documents, one row per fragment (rows grouped by annotation)."""

    annotators: tuple[str, ...]
    documents: tuple[str, ...]
    texts: list[str]
    labels: tuple[str, ...]
    has: np.ndarray  # (documents, annotators) the annotator annotated the document
    annotator: np.ndarray  # (fragments,)
    document: np.ndarray
    label: np.ndarray  # index into labels
    start: np.ndarray
    end: np.ndarray
    annotation: np.ndarray  # the fragments of one annotation share this number


def span_table(documents: Iterable[SpanDocument], labels: Sequence[str] | None = None) -> SpanTable:
    """Lay out ``documents`` as a :class:`SpanTable`.

    Args:
        documents: the documents with every annotator's ``(label, fragments)`` spans.
        labels: the labels to keep, in report order; default: all labels used, sorted.
    """
    docs = sorted(documents, key=lambda d: d.doc_id)
    return _table([(d.doc_id, d.text, d.annotations) for d in docs], itemgetter(0), itemgetter(1), labels)


def round_span_table(round: Round, label: Literal["code", "label"] = "code") -> SpanTable:
    """The coders' spans of ``round`` (the senior is left out), labelled by ICD-10 ``code`` or BRAT ``label``."""
    if label not in ("code", "label"):
        raise ValueError(f"label {label!r}: use 'code' or 'label'")
    reports = [round.reports[k] for k in sorted(round.reports)]
    return _table([(r.report_id, r.text, r.coders) for r in reports], attrgetter(label),
                  attrgetter("fragments"), None)


def _table(docs: list[tuple[str, str, Mapping[str, Sequence]]], label_of: Callable, fragments_of: Callable,
           labels: Sequence[str] | None) -> SpanTable:
    annotators = tuple(sorted({a for _, _, spans in docs for a in spans}))
    who_index = {a: i for i, a in enumerate(annotators)}
    has = np.zeros((len(docs), len(annotators)), dtype=bool)
    label_id: dict[str, int] = {}
    rows: list[tuple[int, int, int, int, int, int]] = []  # annotator, document, label id, start, end, annotation
    for d, (_, _, spans) in enumerate(docs):
        for annotator, anns in spans.items():
            a = who_index[annotator]
            has[d, a] = True
            for ann in anns:
                li = label_id.setdefault(label_of(ann), len(label_id))
                fragments = fragments_of(ann)
                if len(fragments) == 1:
                    ((s, e),) = fragments
                    rows.append((a, d, li, s, e, len(rows)))
                else:
                    n = len(rows)
                    rows.extend((a, d, li, s, e, n) for s, e in fragments)
    table = np.array(rows, dtype=np.int64).reshape(-1, 6)
    found = sorted(label_id)
    labels = tuple(found if labels is None else labels)
    rank = {label: i for i, label in enumerate(labels)}
    to_label = np.array([rank.get(label, -1) for label in label_id], dtype=np.int64)
    table[:, 2] = to_label[table[:, 2]] if len(table) else table[:, 2]
    table = table[table[:, 2] >= 0]  # spans with labels outside ``labels`` are ignored
    who, doc, lab, start, end, annotation = table.T
    return SpanTable(annotators, tuple(d for d, _, _ in docs), [t for _, t, _ in docs], labels, has,
                     who, doc, lab, start, end, annotation)


def span_agreement(
    spans: SpanTable | Iterable[SpanDocument],
    mode: Mode = "instance",
    labels: Sequence[str] | None = None,
    tokenizer: Splitter = whitespace_tokens,
) -> SpanAgreement:
    """Compare every pair of annotators on the documents both annotated.

    Args:
        spans: a :class:`SpanTable`, or documents to lay out with :func:`span_table`.
        mode: ``"instance"`` (exact span and label) or ``"token"`` (tokens by label).
        labels: with documents, the labels to count (see :func:`span_table`).
        tokenizer: token splitter for ``mode="token"`` (default bratiaa's ``\\S+``).

    Returns:
        The counts per pair × document and pair × label, with bratiaa's summaries.
    """
    if mode not in ("instance", "token"):
        raise ValueError(f"mode {mode!r}: use 'instance' or 'token'")
    t = spans if isinstance(spans, SpanTable) else span_table(spans, labels)
    n_docs, n_labels = len(t.documents), max(len(t.labels), 1)
    n_who = max(len(t.annotators), 1)
    who, key, key_doc, key_label, row_annotation = _instances(t)
    if mode == "token":  # the distinct annotations of each annotator, cut into tokens
        _, distinct = np.unique(key * n_who + who, return_index=True)
        keep = np.zeros(len(key), dtype=bool)
        keep[distinct] = True
        rows = np.flatnonzero(keep[row_annotation])
        tokens = corpus_spans(t.texts, tokenizer)
        owner, token = expand(*tokens.overlapping(t.document[rows], t.start[rows], t.end[rows]))
        who, key = t.annotator[rows][owner], token * n_labels + t.label[rows][owner]

    # one row per (annotator, key) with its multiplicity (always 1 for instances: a set)
    combined, count = np.unique(key * n_who + who, return_counts=True)
    row_who, row_key = combined % n_who, combined // n_who
    if mode == "instance":
        count = np.ones_like(count)
        row_doc, row_label = key_doc[row_key], key_label[row_key]
    else:
        row_label = row_key % n_labels
        row_doc = np.searchsorted(tokens.first, row_key // n_labels, side="right") - 1

    pairs = tuple(combinations(t.annotators, 2))
    by_document = np.zeros((len(pairs), n_docs, 3))
    by_label = np.zeros((len(pairs), len(t.labels), 3))
    shared_docs = np.zeros(len(pairs), dtype=np.int64)
    index = {a: i for i, a in enumerate(t.annotators)}
    for p, (a, b) in enumerate(pairs):
        shared = t.has[:, index[a]] & t.has[:, index[b]]
        shared_docs[p] = shared.sum()
        rows_a = np.flatnonzero((row_who == index[a]) & shared[row_doc])
        rows_b = np.flatnonzero((row_who == index[b]) & shared[row_doc])
        _, ca, cb = np.intersect1d(row_key[rows_a], row_key[rows_b], assume_unique=True, return_indices=True)
        hit = rows_a[ca]
        tp = np.minimum(count[hit], count[rows_b[cb]])
        for table, axis, size in ((by_document, row_doc, n_docs), (by_label, row_label, len(t.labels))):
            tps = np.bincount(axis[hit], tp, minlength=size)
            table[p, :, 0] = tps
            table[p, :, 1] = np.bincount(axis[rows_b], count[rows_b], minlength=size) - tps
            table[p, :, 2] = np.bincount(axis[rows_a], count[rows_a], minlength=size) - tps
    return SpanAgreement(mode, t.annotators, t.documents, t.labels, pairs, shared_docs, by_document, by_label)


def _instances(t: SpanTable) -> tuple[np.ndarray, ...]:
    """Number the distinct (document, label, fragments) spans.

    Returns:
        ``(annotator, span)`` per annotation, each span's document and label,
        and the annotation (position in the first two) of each fragment row.
    """
    starts = np.diff(t.annotation, prepend=-1) != 0
    first = np.flatnonzero(starts)
    sizes = np.diff(first, append=len(t.annotation))
    low, high = t.start[first].copy(), t.end[first].copy()
    seen: dict[Fragments, int] = {}
    for i in np.flatnonzero(sizes > 1).tolist():  # discontinuous spans: rare, keyed by their sorted fragments
        rows = slice(first[i], first[i] + sizes[i])
        fragments = tuple(sorted(zip(t.start[rows].tolist(), t.end[rows].tolist(), strict=True)))
        low[i], high[i] = -1 - seen.setdefault(fragments, len(seen)), -1
    doc, label = t.document[first], t.label[first]
    order = np.lexsort((high, low, label, doc))
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(doc[order]) != 0) | (np.diff(label[order]) != 0) | (np.diff(low[order]) != 0) | (
        np.diff(high[order]) != 0)
    span = np.empty(len(order), dtype=np.int64)
    span[order] = np.cumsum(new) - 1
    heads = order[new]
    return t.annotator[first], span, doc[heads], label[heads], np.cumsum(starts) - 1


# --------------------------------------------------------------------------- inputs

_PARALLEL_FROM = 2000  # documents; below this, reading in-process is faster than starting workers


def _read_one(job: tuple[str, str, Path, bool]) -> tuple[str | None, list | None, list[Problem]]:
    """Read one ``.ann`` (+ its ``.txt``): the text when asked, the ``T`` spans, the problems."""
    _, _, ann, keep_text = job
    document, problems = read_document(ann)
    if document is None:
        return None, None, problems
    spans = [(r.label, r.fragments) for r in document.records if isinstance(r, TextBound)]
    return (document.text if keep_text else None), spans, problems


def _read_all(jobs: list[tuple[str, str, Path, bool]]) -> list:
    """Read the documents on every CPU, in order (small projects in-process)."""
    from concurrent.futures import ProcessPoolExecutor

    from hiericd_core.parallel import context, usable_cpus

    workers = usable_cpus()
    if workers == 1 or len(jobs) < _PARALLEL_FROM:
        return [_read_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=context()) as pool:
        return list(pool.map(_read_one, jobs, chunksize=500))


def round_span_agreement(round: Round, mode: Mode = "instance", label: Literal["code", "label"] = "code",
                         tokenizer: Splitter = whitespace_tokens) -> SpanAgreement:
    """Span agreement of the coders of ``round``; see :func:`span_agreement` and :func:`round_span_table`."""
    return span_agreement(round_span_table(round, label), mode, tokenizer=tokenizer)


def read_project(root: str | Path) -> tuple[list[SpanDocument], list[Problem]]:
    """Read a bratiaa-style project: one sub-folder per annotator, same relative file names.

    A document's id is its ``.ann`` path relative to the annotator folder
    (e.g. ``esp.train-doc-100.ann``, as bratiaa's reports name it); its text is
    the ``.txt`` beside the first annotator's ``.ann`` (in name order). Only
    text-bound (``T``) annotations count.

    Returns:
        ``(documents, problems)``: the documents, and the BRAT problems met on
        the way (bad lines are left out, as the round loader does).

    Raises:
        ValueError: when ``root`` has fewer than two annotator folders with ``.ann`` files.
    """
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("*.ann")))
    if len(folders) < 2:
        raise ValueError(f"{root}: agreement needs at least two annotator sub-folders with .ann files")
    # (annotator, doc id, .ann path, keep the text?): the text of the first annotator's copy only
    jobs: list[tuple[str, str, Path, bool]] = []
    have_text: set[str] = set()
    for folder in folders:
        for ann in sorted(folder.rglob("*.ann")):
            doc_id = ann.relative_to(folder).as_posix()
            jobs.append((folder.name, doc_id, ann, doc_id not in have_text))
            have_text.add(doc_id)
    texts: dict[str, str] = {}
    annotations: dict[str, dict[str, list[tuple[str, Fragments]]]] = {}
    problems: list[Problem] = []
    for (annotator, doc_id, _, _), (text, spans, found) in zip(jobs, _read_all(jobs), strict=True):
        problems.extend(found)
        if spans is None:
            continue
        if text is not None:
            texts[doc_id] = text
        annotations.setdefault(doc_id, {})[annotator] = spans
    documents = [SpanDocument(doc_id, texts[doc_id], annotations[doc_id]) for doc_id in sorted(annotations)
                 if doc_id in texts]
    return documents, problems
