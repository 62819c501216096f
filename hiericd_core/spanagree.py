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
(no object per token): that round's three pairs take about half a second in
both modes once read. :func:`~hiericd_core.spanread.read_project_table` reads a project straight
into those arrays (:mod:`hiericd_core.spanread`), on every CPU, each distinct ``.txt`` once, with
:func:`hiericd_core.brat.read_spans` (every line checked, no record objects):
from the BRAT files, the three pairs take 2.1 s of CPU where bratiaa 0.1.4
takes 25 s (``bench/results.md``, step ``span_f1_hiericd``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Literal

import numpy as np

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


def _class_of(char: str) -> int:
    """0 whitespace (``\\s``), 1 word (``\\w``), 2 anything else."""
    return 0 if char.isspace() else 1 if char.isalnum() or char == "_" else 2


@cache
def _latin1_classes() -> bytes:
    """``bytes.translate`` table: the class of each of the first 256 code points."""
    return bytes(_class_of(chr(code)) for code in range(256))


@cache
def _class_table() -> np.ndarray:
    """Character class of every BMP code point (see :func:`_class_of`)."""
    return np.array([_class_of(chr(code)) for code in range(0x10000)], dtype=np.int8)


def _classes(joined: str) -> np.ndarray:
    """The class of every character of ``joined``, ``(len(joined),)`` int8."""
    try:  # texts in Latin-1 (English, Spanish): one byte per character, one C pass, no index array
        return np.frombuffer(joined.encode("latin-1").translate(_latin1_classes()), dtype=np.int8)
    except UnicodeEncodeError:
        pass
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    classes = _class_table().take(np.minimum(points, 0xFFFF))
    astral = np.flatnonzero(points > 0xFFFF)
    for i in astral.tolist():  # rare: emoji and the like
        classes[i] = _class_of(chr(int(points[i])))
    return classes


def _tokens(texts: Sequence[str], kind: str) -> CorpusSpans:
    """Vectorised tokenizer over all texts, chunk by chunk to bound memory."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = _offsets(lengths)
    starts, ends = [], []
    lo = 0
    while lo < len(texts):
        hi = min(max(int(np.searchsorted(offsets, offsets[lo] + _CHUNK_CHARS)), lo + 1), len(texts))
        # "\n" between texts is whitespace, so no token crosses two; one more at each end closes the first
        # and last token, and makes index i of ``classes`` character i - 1 of the chunk
        classes = _classes("\n" + "\n".join(texts[lo:hi]) + "\n")
        if kind == "words":
            current, before, after = classes[1:-1], classes[:-2], classes[2:]
            token = current != 0
            punct = current == 2  # a punctuation character is a token of its own
            begin = token & ((current != before) | punct)
            finish = token & ((current != after) | punct)
            starts.append(np.flatnonzero(begin) + offsets[lo])
            ends.append(np.flatnonzero(finish) + 1 + offsets[lo])
        else:  # runs of non-whitespace: they begin and end where whitespace starts or stops
            inside = classes != 0
            edges = np.flatnonzero(inside[1:] != inside[:-1]) + offsets[lo]
            starts.append(edges[0::2])
            ends.append(edges[1::2])
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

    @classmethod
    def from_rows(cls, annotators: tuple[str, ...], documents: tuple[str, ...], texts: list[str], has: np.ndarray,
                  table: np.ndarray, names: list[str], labels: Sequence[str] | None) -> SpanTable:
        """Number the labels as reported (``names[i]`` is label ``i`` of ``table``) and build the table.

        ``table`` has one row per fragment: annotator, document, label, start, end, annotation number.
        """
        labels = tuple(sorted(names) if labels is None else labels)
        rank = {label: i for i, label in enumerate(labels)}
        to_label = np.array([rank.get(label, -1) for label in names], dtype=np.int64)
        table[:, 2] = to_label[table[:, 2]] if len(table) else table[:, 2]
        table = table[table[:, 2] >= 0]  # spans with labels outside ``labels`` are ignored
        who, doc, lab, start, end, annotation = table.T
        return cls(annotators, documents, texts, labels, has, who, doc, lab, start, end, annotation)


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
    return SpanTable.from_rows(annotators, tuple(d for d, _, _ in docs), [t for _, t, _ in docs], has, table,
                         list(label_id), labels)


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
    multi = np.flatnonzero(sizes > 1)
    if len(multi):  # discontinuous spans are keyed by their sorted fragments, numbered below -1
        owner, rows = expand(first[multi], first[multi] + sizes[multi])
        rows = rows[np.lexsort((t.end[rows], t.start[rows], owner))]  # owners stay grouped, fragments sorted
        place = np.arange(len(rows)) - np.repeat(np.cumsum(sizes[multi]) - sizes[multi], sizes[multi])
        grid = np.full((len(multi), 2 * int(sizes[multi].max())), -1, dtype=np.int64)
        grid[owner, 2 * place], grid[owner, 2 * place + 1] = t.start[rows], t.end[rows]
        low[multi], high[multi] = -2 - np.unique(grid, axis=0, return_inverse=True)[1].ravel(), -1
    doc, label = t.document[first], t.label[first]
    order = np.lexsort((high, low, label, doc))
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(doc[order]) != 0) | (np.diff(label[order]) != 0) | (np.diff(low[order]) != 0) | (
        np.diff(high[order]) != 0)
    span = np.empty(len(order), dtype=np.int64)
    span[order] = np.cumsum(new) - 1
    heads = order[new]
    return t.annotator[first], span, doc[heads], label[heads], np.cumsum(starts) - 1


def round_span_agreement(round: Round, mode: Mode = "instance", label: Literal["code", "label"] = "code",
                         tokenizer: Splitter = whitespace_tokens) -> SpanAgreement:
    """Span agreement of the coders of ``round``; see :func:`span_agreement` and :func:`round_span_table`."""
    return span_agreement(round_span_table(round, label), mode, tokenizer=tokenizer)
