"""The training and dev splits of a data set folder, read for the two models.

Each training stage reads only the columns it needs, from the Parquet files
in Arrow batches, and keeps token ids as int32 arrays with row offsets
(:class:`Ragged`), never as Python lists of strings: memory grows with the ids
a stage trains on, not with the files. Only the training and dev splits are
encoded (no stage looks at test). Word2vec streams its corpus from the files
on every pass (:class:`TrainingTokens`).

:class:`TrainError` lives here, where a data set is found wanting;
:mod:`hiericd_core.train` raises it too and exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hiericd_core.datasets import parquet_batches
from hiericd_core.embeddings import UNK_ID


class TrainError(Exception):
    """A data set or config that cannot be trained on (the message says what to do)."""


READ_BATCH = 8192  # sentences (or reports) per Arrow batch read from Parquet
TRAINED_SPLITS = ("train", "dev")
DATASET_FILES = ("manifest.json", "sentences.parquet", "reports.parquet", "label_space.json")


@dataclass
class Ragged:
    """Rows of different lengths in one flat array: row ``i`` is ``values[starts[i]:starts[i + 1]]``."""

    values: np.ndarray
    starts: np.ndarray  # int64, (rows + 1,)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.starts[i]: self.starts[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def take(self, index: np.ndarray) -> Ragged:
        """The rows ``index`` in that order, as a new :class:`Ragged`."""
        lengths = self.lengths()[index]
        starts = _starts(lengths)
        within = np.arange(starts[-1]) - np.repeat(starts[:-1], lengths)
        return Ragged(self.values[np.repeat(self.starts[:-1][index], lengths) + within], starts)

    @classmethod
    def concat(cls, parts: list[Ragged], dtype) -> Ragged:
        if not parts:
            return cls(np.zeros(0, dtype=dtype), np.zeros(1, dtype=np.int64))
        values = np.concatenate([p.values for p in parts]).astype(dtype, copy=False)
        return cls(values, _starts(np.concatenate([p.lengths() for p in parts])))


def _starts(lengths: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return starts


def _cap(values: np.ndarray, lengths: np.ndarray, caps: np.ndarray, fill_empty: bool = False) -> Ragged:
    """Keep the first ``caps[i]`` values of row ``i``; with ``fill_empty`` an empty row becomes ``[0]`` (``<pad>``)."""
    starts = _starts(lengths)
    within = np.arange(len(values)) - np.repeat(starts[:-1], lengths)
    kept = np.minimum(lengths, caps)
    out_lengths = np.maximum(kept, 1) if fill_empty else kept
    out_starts = _starts(out_lengths)
    keep = within < np.repeat(caps, lengths)
    out = np.zeros(out_starts[-1], dtype=values.dtype)
    out[(np.repeat(out_starts[:-1], lengths) + within)[keep]] = values[keep]
    return Ragged(out, out_starts)


def _encode_tokens(column, vocab, max_tokens: int, fill_empty: bool) -> Ragged:
    """Token-id rows (int32) of an Arrow ``list<string>`` column: each distinct string is looked up once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    words = column.flatten().dictionary_encode()
    lookup = np.fromiter((vocab.index.get(w.lower(), UNK_ID) for w in words.dictionary.to_pylist()),
                         dtype=np.int32, count=len(words.dictionary))
    ids = lookup[words.indices.to_numpy(zero_copy_only=False)] if len(lookup) else np.zeros(0, dtype=np.int32)
    return _cap(ids, lengths, np.full(len(lengths), max_tokens, dtype=np.int64), fill_empty)


def _list_values(column, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, row lengths) of an Arrow list column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return column.flatten().to_numpy(zero_copy_only=False).astype(dtype), lengths


def check_dataset(dataset_dir: Path) -> None:
    """Raise :class:`TrainError` unless ``dataset_dir`` holds a built data set."""
    for name in DATASET_FILES:
        if not (dataset_dir / name).is_file():
            raise TrainError(f"{dataset_dir}: no {name}; build the data set with `hiericd datasets` first")


class _SentenceOrder:
    """Checks that sentence rows come in (report_id, sentence_idx) order, as the data-set builder writes them.

    Reading in batches relies on it: a report's sentences are consecutive rows.
    """

    def __init__(self, path: Path):
        self.path, self.last = path, (None, -1)

    def check(self, report_ids: list[str], sentence_idx: np.ndarray) -> np.ndarray:
        """Return, per row, whether it starts a new report."""
        new = np.ones(len(report_ids), dtype=bool)
        previous, last_idx = self.last
        for i, rid in enumerate(report_ids):
            if rid == previous:
                new[i] = False
                if sentence_idx[i] <= last_idx:
                    self._fail(rid)
            elif previous is not None and rid < previous:
                self._fail(rid)
            previous, last_idx = rid, sentence_idx[i]
        self.last = (previous, last_idx)
        return new

    def _fail(self, rid: str) -> None:
        raise TrainError(f"{self.path}: rows are not in (report_id, sentence_idx) order at report {rid!r}; "
                         "rebuild the data set with `hiericd datasets`")


@dataclass
class TaggerSplit:
    """One split's reports for the tagger: every sentence's token ids and focus flag, each report's reason."""

    sentences: Ragged  # token ids per sentence, capped at max_tokens; a token-less sentence reads as [0]
    focus: np.ndarray  # int8 (sentences,)
    report_starts: np.ndarray  # int64 (reports + 1,): report r holds sentences report_starts[r]:report_starts[r + 1]
    r4v: Ragged  # token ids of each report's reason for visit (empty when not used)

    def __len__(self) -> int:
        return len(self.report_starts) - 1

    def n_sentences(self) -> np.ndarray:
        return np.diff(self.report_starts)

    def report(self, r: int) -> list[np.ndarray]:
        return [self.sentences[k] for k in range(self.report_starts[r], self.report_starts[r + 1])]

    def report_focus(self, r: int) -> np.ndarray:
        return self.focus[self.report_starts[r]: self.report_starts[r + 1]]


@dataclass
class ClassifierSplit:
    """One split's classifier rows: focus sentences with one code in the label space."""

    tokens: Ragged  # token ids (capped)
    masks: Ragged  # int8 phrase mask, as long as tokens (shorter for a token-less sentence)
    r4v: Ragged  # the row's report's reason for visit
    labels: np.ndarray  # int64 label index

    def __len__(self) -> int:
        return len(self.labels)


class _Reasons:
    """Every report's reason-for-visit token ids, found by report id (an unknown report has none)."""

    def __init__(self, dataset_dir: Path, vocab, use_r4v: bool, max_tokens: int):
        self.row: dict[str, int] = {}
        parts = []
        columns = ["report_id", "r4v_tokens"] if use_r4v else ["report_id"]
        for batch in parquet_batches(dataset_dir / "reports.parquet", columns, READ_BATCH):
            for rid in batch.column("report_id").to_pylist():
                self.row[rid] = len(self.row)
            if use_r4v:
                parts.append(_encode_tokens(batch.column("r4v_tokens"), vocab, max_tokens, fill_empty=False))
            else:
                parts.append(Ragged(np.zeros(0, dtype=np.int32), np.zeros(batch.num_rows + 1, dtype=np.int64)))
        parts.append(Ragged(np.zeros(0, dtype=np.int32), np.zeros(2, dtype=np.int64)))  # the empty row
        self.ids = Ragged.concat(parts, np.int32)

    def take(self, report_ids: list[str]) -> Ragged:
        missing = len(self.ids) - 1
        return self.ids.take(np.fromiter((self.row.get(r, missing) for r in report_ids), dtype=np.int64,
                                         count=len(report_ids)))


def read_tagger_splits(dataset_dir: Path, vocab, use_r4v: bool, max_tokens: int) -> dict[str, TaggerSplit]:
    """The training and dev splits' reports for the tagger, in data set order, read in batches."""
    path = dataset_dir / "sentences.parquet"
    reasons = _Reasons(dataset_dir, vocab, use_r4v, max_tokens)
    order = _SentenceOrder(path)
    parts: dict[str, dict[str, list]] = {s: {"sentences": [], "focus": [], "new": [], "rids": []}
                                         for s in TRAINED_SPLITS}
    for batch in parquet_batches(path, ["report_id", "split", "sentence_idx", "tokens", "is_focus"], READ_BATCH):
        rids = batch.column("report_id").to_pylist()
        new = order.check(rids, batch.column("sentence_idx").to_numpy(zero_copy_only=False))
        split = batch.column("split").to_numpy(zero_copy_only=False)
        for name, part in parts.items():
            rows = np.flatnonzero(split == name)
            if not len(rows):
                continue
            sub = batch.take(rows)
            part["sentences"].append(_encode_tokens(sub.column("tokens"), vocab, max_tokens, fill_empty=True))
            part["focus"].append(sub.column("is_focus").to_numpy(zero_copy_only=False).astype(np.int8))
            part["new"].append(new[rows])
            part["rids"] += [rids[i] for i in rows[new[rows]]]
    out = {}
    for name, part in parts.items():
        new = np.concatenate(part["new"]) if part["new"] else np.zeros(0, dtype=bool)
        report_starts = np.append(np.flatnonzero(new), len(new)).astype(np.int64)
        out[name] = TaggerSplit(Ragged.concat(part["sentences"], np.int32),
                                np.concatenate(part["focus"]) if part["focus"] else np.zeros(0, dtype=np.int8),
                                report_starts, reasons.take(part["rids"]))
    return out


CLASSIFIER_EXAMPLES = ("single", "phrases")


def read_classifier_splits(dataset_dir: Path, vocab, labels: dict[str, int], use_r4v: bool, max_tokens: int,
                           examples: str = "single") -> dict[str, ClassifierSplit]:
    """The training and dev splits' classifier rows, in data set order, read in batches.

    ``examples`` says what the training split gives: ``"single"`` (the
    paper) its single-code focus sentences (``classifier_row``), each with
    the sentence's phrase mask; ``"phrases"`` one row per code of every focus
    sentence, multi-code sentences included, each with that code's own
    phrase mask (``code_masks``) as its attention target, codes outside the
    label space left out. The dev split is always the single-code rows, so
    early stopping and the reported accuracy measure the same rows either way.
    """
    import pyarrow.compute as pc

    if examples not in CLASSIFIER_EXAMPLES:
        raise TrainError(f"classifier_examples {examples!r}: use one of {', '.join(CLASSIFIER_EXAMPLES)}")
    reasons = _Reasons(dataset_dir, vocab, use_r4v, max_tokens)
    parts: dict[str, dict[str, list]] = {s: {"tokens": [], "masks": [], "rids": [], "labels": []}
                                         for s in TRAINED_SPLITS}
    columns = ["report_id", "split", "tokens", "codes", "attention_mask", "classifier_row"]
    if examples == "phrases":
        columns += ["is_focus", "code_masks"]
    for batch in parquet_batches(dataset_dir / "sentences.parquet", columns, READ_BATCH):
        split = batch.column("split").to_numpy(zero_copy_only=False)
        chosen = batch.column("classifier_row").to_numpy(zero_copy_only=False)
        for name, part in parts.items():
            if examples == "phrases" and name == "train":
                _phrase_rows(batch.take(np.flatnonzero(batch.column("is_focus").to_numpy(zero_copy_only=False)
                                                       & (split == name))), vocab, labels, max_tokens, part)
                continue
            rows = np.flatnonzero(chosen & (split == name))
            if not len(rows):
                continue
            sub = batch.take(rows)
            tokens = _encode_tokens(sub.column("tokens"), vocab, max_tokens, fill_empty=True)
            mask, mask_lengths = _list_values(sub.column("attention_mask"), np.int8)
            part["tokens"].append(tokens)
            part["masks"].append(_cap(mask, mask_lengths, tokens.lengths()))
            part["rids"] += sub.column("report_id").to_pylist()
            part["labels"] += [labels[c] for c in pc.list_element(sub.column("codes"), 0).to_pylist()]
    return {name: ClassifierSplit(Ragged.concat(part["tokens"], np.int32), Ragged.concat(part["masks"], np.int8),
                                  reasons.take(part["rids"]), np.asarray(part["labels"], dtype=np.int64))
            for name, part in parts.items()}


def _phrase_rows(sub, vocab, labels: dict[str, int], max_tokens: int, part: dict[str, list]) -> None:
    """Append one classifier row per (focus sentence, label-space code) of ``sub`` to ``part``."""
    if not sub.num_rows:
        return
    tokens = _encode_tokens(sub.column("tokens"), vocab, max_tokens, fill_empty=True)
    take, masks, lengths = [], [], []
    for i, (rid, codes, code_masks) in enumerate(zip(sub.column("report_id").to_pylist(),
                                                      sub.column("codes").to_pylist(),
                                                      sub.column("code_masks").to_pylist(), strict=True)):
        for code, mask in zip(codes, code_masks, strict=True):
            if code in labels:
                take.append(i)
                masks.append(np.asarray(mask, dtype=np.int8))
                lengths.append(len(mask))
                part["rids"].append(rid)
                part["labels"].append(labels[code])
    if not take:
        return
    index = np.asarray(take, dtype=np.int64)
    picked = tokens.take(index)
    values = np.concatenate(masks) if masks else np.zeros(0, dtype=np.int8)
    part["tokens"].append(picked)
    part["masks"].append(_cap(values, np.asarray(lengths, dtype=np.int64), picked.lengths()))


class TrainingTokens:
    """The training split's sentence tokens, then its reasons for visit, streamed from the Parquet files.

    Iterable again and again (gensim's word2vec reads its corpus once for the
    vocabulary and once per epoch), holding one batch in memory at a time.
    """

    def __init__(self, dataset_dir: Path):
        self.dataset_dir = dataset_dir

    def __iter__(self):
        for batch in parquet_batches(self.dataset_dir / "sentences.parquet", ["split", "tokens"], READ_BATCH):
            split = batch.column("split").to_numpy(zero_copy_only=False)
            yield from batch.column("tokens").take(np.flatnonzero(split == "train")).to_pylist()
        for batch in parquet_batches(self.dataset_dir / "reports.parquet", ["split", "r4v_tokens"], READ_BATCH):
            split = batch.column("split").to_numpy(zero_copy_only=False)
            yield from (t for t in batch.column("r4v_tokens").take(np.flatnonzero(split == "train")).to_pylist() if t)


def count_rows(dataset_dir: Path) -> dict:
    """Per split: reports, sentences, focus sentences and classifier rows of the sentence table (one pass)."""
    counts = {s: {"reports": 0, "sentences": 0, "focus_sentences": 0, "classifier_rows": 0} for s in TRAINED_SPLITS}
    path = dataset_dir / "sentences.parquet"
    order = _SentenceOrder(path)
    columns = ["report_id", "split", "sentence_idx", "is_focus", "classifier_row"]
    for batch in parquet_batches(path, columns, READ_BATCH):
        new = order.check(batch.column("report_id").to_pylist(),
                          batch.column("sentence_idx").to_numpy(zero_copy_only=False))
        split = batch.column("split").to_numpy(zero_copy_only=False)
        focus = batch.column("is_focus").to_numpy(zero_copy_only=False)
        chosen = batch.column("classifier_row").to_numpy(zero_copy_only=False)
        for name, count in counts.items():
            rows = split == name
            count["reports"] += int((new & rows).sum())
            count["sentences"] += int(rows.sum())
            count["focus_sentences"] += int((focus & rows).sum())
            count["classifier_rows"] += int((chosen & rows).sum())
    return counts


def train_has_reasons(dataset_dir: Path) -> bool:
    """Whether a training report has a reason for visit."""
    import pyarrow.compute as pc

    for batch in parquet_batches(dataset_dir / "reports.parquet", ["split", "r4v_tokens"], READ_BATCH):
        lengths = pc.list_value_length(batch.column("r4v_tokens")).fill_null(0).to_numpy(zero_copy_only=False)
        if ((batch.column("split").to_numpy(zero_copy_only=False) == "train") & (lengths > 0)).any():
            return True
    return False
