"""The paper's two training sets, built from merged rounds.

* **sentences.parquet** — one row per sentence of every usable report:
  ``report_id, split, sentence_idx, start, end, text, tokens, token_starts,
  token_ends, is_focus, codes, attention_mask, code_masks, n_codes,
  multi_code, classifier_row``. A sentence is a *focus sentence* when a final
  annotation overlaps it; its codes are those annotations' codes; the
  attention mask is 1 on the tokens inside the coders' phrases, and
  ``code_masks`` holds one such mask per code (in ``codes`` order: the
  tokens of that code's phrases), so a multi-code sentence says which words
  mean which code. ``classifier_row`` marks the
  rows the ICD classifier trains on: focus sentences with exactly one code,
  and that code in the label space (multi-code sentences are flagged and kept
  for end-to-end evaluation, as in the paper).
* **reports.parquet** — one row per report: ``report_id, split, round_id,
  rounds, text, reason_for_visit, r4v_tokens, codes, n_codes, n_sentences``.
  ``codes`` is the full truth, label space or not, so end-to-end evaluation
  stays honest.
* **label_space.json** — codes with at least ``min_count`` occurrences in
  training focus sentences, with all counts.
* **manifest.json** — version (content hash), source rounds, split seed,
  counts per split, label-space size, what was left out and why.

Splits are 70/15/15 by a stable hash of ``seed:report_id``, so a report keeps
its split when later rounds add reports. A round can instead give all its
reports one split (``DatasetConfig.round_splits``, e.g. CodiEsp's ``train``
round → ``train`` and ``dev`` round → ``dev``: train on train, select on dev);
a report follows the round whose version it takes. The manifest records the
split mode (``hash``, ``round`` or ``mixed``) and how many reports each rule
placed, and validation checks the 70/15/15 proportions only for hash splits. When several rounds code the same
report, the last round given (in command-line order) whose version is
adjudicated wins, and the manifest records it. Pending reports and reports
with quarantined items are left out and counted. The same input gives the
same bytes and the same version.

The build runs in batches, so a data set larger than memory builds: which
version of each report wins is decided from the rounds' small columns
(:func:`choose`); texts and annotations are then read, segmented and aligned
``READ_CHUNK`` reports at a time (:func:`fetch`), in report-id order, and
appended to the Parquet files in row groups of ``ROW_GROUP`` rows, the same
bytes a single write of the whole table gives. Counts for the label space
and the manifest are summed as the batches pass.

Segmenting is most of a build's time, and a data set over rounds 1..n
holds every report of rounds 1..n-1 again, so segmentation can be memoised
per report in a :class:`SegmentCache` (the catalog's ``cache/segments/``):
keyed by a hash of the text, the reason for visit and the segmenter's
identity, so only new or changed reports are segmented, and the data set is
the same bytes as a build without the cache. Which version of a report wins
does not depend on the cache. Hits and misses are returned beside the data
set (:attr:`Dataset.segment_cache`), never written into it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import re
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hiericd_core.dataset_sources import (  # noqa: F401 - re-exported: part of this module's API
    Choice,
    DatasetError,
    MergedRound,
    SourceReport,
    choose,
    collect,
    fetch,
    parquet_batches,
)
from hiericd_core.parallel import usable_cpus
from hiericd_core.segment import Segmenter, SegmenterConfig, Sentence, Token

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DatasetConfig:
    """How to build a data set; saved in the manifest."""

    seed: int = 13
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    min_count: int = 10
    backend: str = "auto"
    language: str | None = None  # default: the rounds' language
    workers: int = field(default_factory=lambda: min(2, usable_cpus()))
    # (round id, split) pairs: every report taken from that round goes to that split instead of the hash's
    round_splits: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        pairs = tuple(sorted((str(r), str(s)) for r, s in dict(self.round_splits).items()))
        for round_id, split in pairs:
            if split not in SPLITS:
                raise DatasetError(f"round {round_id!r}: split {split!r} is not one of {', '.join(SPLITS)}")
        object.__setattr__(self, "round_splits", pairs)


def parse_round_splits(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``["codiesp-train=train", ...]`` (the CLI's ``--split-by-round``) as ``(round id, split)`` pairs.

    Raises:
        DatasetError: an item without ``=``, an unknown split, or a round given two splits.
    """
    pairs: dict[str, str] = {}
    for item in items:
        round_id, sep, split = item.partition("=")
        round_id, split = round_id.strip(), split.strip()
        if not sep or not round_id or not split:
            raise DatasetError(f"--split-by-round {item!r}: write ROUND_ID=SPLIT, e.g. codiesp-dev=dev")
        if split not in SPLITS:
            raise DatasetError(f"--split-by-round {item!r}: the split must be one of {', '.join(SPLITS)}")
        if pairs.get(round_id, split) != split:
            raise DatasetError(f"--split-by-round: round {round_id!r} is given two splits "
                               f"({pairs[round_id]} and {split})")
        pairs[round_id] = split
    return tuple(sorted(pairs.items()))


def assign_folds(report_ids: Sequence[str], folds: int, seed: int = 13) -> dict[str, int]:
    """Report id -> cross-validation fold (0..folds-1): the ids sorted by ``sha256(seed:id)`` and dealt
    round-robin, so fold sizes differ by at most one and a report's fold does not depend on the others' order.

    Raises:
        ValueError: fewer than two folds, or fewer reports than folds.
    """
    if folds < 2:
        raise ValueError(f"folds = {folds}: cross-validation needs at least 2 folds")
    if len(report_ids) < folds:
        raise ValueError(f"{len(report_ids)} training report(s) cannot make {folds} folds")
    order = sorted(report_ids, key=lambda r: hashlib.sha256(f"{seed}:{r}".encode()).hexdigest())
    return {rid: i % folds for i, rid in enumerate(order)}


def assign_split(report_id: str, seed: int, fractions: Sequence[float] = (0.70, 0.15, 0.15)) -> str:
    """Return ``train``/``dev``/``test`` for ``report_id``: stable across rounds and machines."""
    digest = hashlib.blake2b(f"{seed}:{report_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "test"


def align(text: str, sentences, annotations) -> tuple[list[dict], Counter]:
    """Return one row per sentence with focus, codes and attention mask, and alignment counts.

    An annotation whose fragments overlap several sentences makes each of
    them a focus sentence (counted as ``crossing_annotations``); one that
    overlaps no sentence (whitespace only) is counted as ``unaligned``. A
    sentence is a focus sentence only through tokens: an annotation touching a
    sentence without covering any of its tokens is counted, not linked.
    """
    starts = [s.start for s in sentences]
    counts: Counter[str] = Counter()
    per_sentence: dict[int, list[tuple[str, tuple]]] = defaultdict(list)
    for code, fragments in annotations:
        hit = set()
        for fs, fe in fragments:
            i = max(bisect_left(starts, fs) - 1, 0)
            while i < len(sentences) and sentences[i].start < fe:
                if sentences[i].end > fs:
                    hit.add(i)
                i += 1
        if not hit:
            counts["unaligned_annotations"] += 1
        if len(hit) > 1:
            counts["crossing_annotations"] += 1
        for i in hit:
            per_sentence[i].append((code, fragments))
    rows = []
    for i, s in enumerate(sentences):
        mask = [0] * len(s.tokens)
        by_code: dict[str, list[int]] = {}
        for code, fragments in per_sentence.get(i, []):
            inside = [j for j, tok in enumerate(s.tokens)
                      if any(tok.start < fe and fs < tok.end for fs, fe in fragments)]
            if not inside:  # the phrase only touches whitespace or punctuation-free gaps of this sentence
                counts["overlap_without_token"] += 1
                continue
            code_mask = by_code.setdefault(code, [0] * len(s.tokens))
            for j in inside:
                mask[j] = code_mask[j] = 1
        codes = sorted(by_code)
        rows.append({"sentence_idx": i, "start": s.start, "end": s.end, "text": s.text,
                     "tokens": [t.text for t in s.tokens], "token_starts": [t.start for t in s.tokens],
                     "token_ends": [t.end for t in s.tokens], "is_focus": bool(codes), "codes": codes,
                     "attention_mask": mask, "code_masks": [by_code[c] for c in codes], "n_codes": len(codes)})
    return rows, counts


# ---------------------------------------------------------------- building

_WORKER: Segmenter | None = None


def _init_worker(config: SegmenterConfig) -> None:
    global _WORKER
    _WORKER = Segmenter(config)


def _segment_one(item: tuple[str, str]) -> tuple[list, list]:
    text, reason = item
    assert _WORKER is not None
    sentences = _WORKER.segment(text)
    r4v = [t.text for s in _WORKER.segment(reason) for t in s.tokens] if reason else []
    return sentences, r4v


class SegmenterPool:
    """Segment ``(text, reason_for_visit)`` pairs on ``workers`` processes, started once for many calls."""

    def __init__(self, config: SegmenterConfig, workers: int):
        self.config, self.workers, self.pool = config, workers, None

    def __enter__(self) -> SegmenterPool:
        _init_worker(self.config)  # small calls run here
        from hiericd_core.parallel import context, may_start_workers

        if self.workers > 1 and may_start_workers():
            self.pool = context().Pool(self.workers, initializer=_init_worker, initargs=(self.config,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def segment(self, items: list[tuple[str, str]], bar=None) -> list[tuple[list, list]]:
        """Segment ``items`` in order; ``bar`` (tqdm) is advanced per report."""
        if self.pool is None or len(items) < 200:
            results = map(_segment_one, items)
        else:
            results = self.pool.imap(_segment_one, items, chunksize=64)
        out = []
        for result in results:
            out.append(result)
            if bar is not None:
                bar.update()
        return out


Segmented = tuple[list[Sentence], list[str]]  # a report's sentences and its reason for visit's tokens


class SegmentCache:
    """Segmented reports memoised on disk, one small JSON file per distinct (text, reason, segmenter).

    An entry lives at ``<folder>/<k[:2]>/<k>.json``, where ``k`` is the SHA-256
    (hex) of the segmenter's :meth:`~hiericd_core.segment.Segmenter.identity`
    and the two texts: nothing from a user's files becomes part of a path. It
    holds the key again, each sentence as ``[start, end, [token start, token
    end, ...]]`` (the texts are slices of the report, rebuilt on reading) and
    the reason for visit's tokens. JSON, not pickle: the catalog is shared
    storage, and loading a pickle runs code. Entries are written atomically;
    one that cannot be read, does not parse or does not fit its text is a
    miss, and is rewritten. Nothing is ever deleted: removing the folder is
    always safe.
    """

    def __init__(self, folder: str | Path, segmenter: Segmenter):
        self.folder = Path(folder)
        self.identity = segmenter.identity()
        self.stats: Counter[str] = Counter({"hits": 0, "misses": 0, "corrupt": 0, "write_errors": 0})

    def key(self, text: str, reason: str) -> str:
        """The entry's SHA-256 hex for one report (JSON keeps the three strings apart unambiguously)."""
        return hashlib.sha256(json.dumps([self.identity, text, reason]).encode()).hexdigest()

    def path(self, key: str) -> Path:
        """The entry's file; ``key`` is always one of :meth:`key`'s, never a user's string."""
        assert _SHA256_HEX.fullmatch(key), key
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str, text: str, reason: str) -> Segmented | None:
        """The cached segmentation of ``(text, reason)``, or None (absent or unusable: then counted ``corrupt``)."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("segment cache: cannot read %s (%s); segmenting again", path, exc)
            self.stats["corrupt"] += 1
            return None
        try:
            return _decode(json.loads(raw), key, text)
        except (ValueError, TypeError, KeyError, IndexError):  # not JSON, wrong shape, offsets that do not fit
            log.warning("segment cache: %s is unusable; segmenting again and rewriting it", path)
            self.stats["corrupt"] += 1
            return None

    def put(self, key: str, value: Segmented) -> None:
        """Write an entry atomically; a failed write (read-only or full catalog) costs only a future miss."""
        from hiericd_core.files import atomic_write_bytes

        sentences, r4v = value
        entry = {"key": key, "sentences": [[s.start, s.end, [x for t in s.tokens for x in (t.start, t.end)]]
                                           for s in sentences], "r4v": r4v}
        try:
            atomic_write_bytes(self.path(key), json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
                               .encode())
        except OSError as exc:
            if not self.stats["write_errors"]:
                log.warning("segment cache: cannot write under %s (%s); building without storing", self.folder, exc)
            self.stats["write_errors"] += 1

    def segment(self, pool: SegmenterPool, items: list[tuple[str, str]], bar=None) -> list[Segmented]:
        """What ``pool.segment(items)`` gives, segmenting only the items not in the cache (each distinct one once)."""
        keys = [self.key(text, reason) for text, reason in items]
        found: dict[str, Segmented] = {}
        todo: dict[str, tuple[str, str]] = {}
        # Reading a batch makes hundreds of thousands of tokens, and each thousand allocations may start a cyclic
        # garbage collection over everything built so far: that took most of a warm build's time. Tokens and
        # sentences are tuples of strings and ints, so no cycle can form while collection is off.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for key, item in zip(keys, items, strict=True):
                if key not in found and key not in todo:
                    hit = self.get(key, *item)
                    if hit is None:
                        todo[key] = item
                    else:
                        found[key] = hit
        finally:
            if collecting:
                gc.enable()
        self.stats["hits"] += len(items) - len(todo)
        self.stats["misses"] += len(todo)
        if bar is not None:
            bar.update(len(items) - len(todo))
        for key, value in zip(todo, pool.segment(list(todo.values()), bar), strict=True):
            self.put(key, value)
            found[key] = value
        return [found[key] for key in keys]


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _decode(entry: dict, key: str, text: str) -> Segmented:
    """An entry's sentences rebuilt over ``text``.

    Raises:
        ValueError: the entry is not for ``key`` or its offsets do not fit ``text`` (a damaged entry is refused,
            never used).
    """
    def check(ok: bool) -> None:
        if not ok:
            raise ValueError("segment cache entry does not fit its text")

    check(entry["key"] == key)
    sentences = []
    make_token = Token._make  # a warm build makes every token of every report here: the fastest constructor
    for start, end, offsets in entry["sentences"]:
        check(0 <= start < end <= len(text) and len(offsets) % 2 == 0)
        starts, ends = offsets[0::2], offsets[1::2]
        check(not starts or (start <= min(starts) and max(ends) <= end
                             and all(s < e for s, e in zip(starts, ends, strict=True))))
        tokens = tuple(map(make_token, zip([text[s:e] for s, e in zip(starts, ends, strict=True)], starts, ends,
                                           strict=True)))
        sentences.append(Sentence(start, end, text[start:end], tokens))
    r4v = entry["r4v"]
    check(isinstance(r4v, list) and all(isinstance(t, str) for t in r4v))
    return sentences, r4v


def segment_all(items: list[tuple[str, str]], config: SegmenterConfig, workers: int, progress: bool = False):
    """Segment ``(text, reason_for_visit)`` pairs, in order, on ``workers`` processes."""
    from tqdm import tqdm

    with SegmenterPool(config, workers) as pool, tqdm(total=len(items), desc="segmenting", unit="report",
                                                      disable=not progress) as bar:
        return pool.segment(items, bar)


# Built in batches, so a data set larger than memory builds: reports are
# read READ_CHUNK at a time (in report-id order), segmented and aligned SEGMENT_BATCH at a time, and
# their rows appended to Parquet files in row groups of ROW_GROUP rows. The
# label space needs every training sentence's codes, and ``classifier_row``
# needs the label space, so sentence rows first go to a scratch file without
# ``multi_code``/``classifier_row``; a second pass over it adds them.
READ_CHUNK = 20_000  # reports whose texts are read at a time (each read scans the rounds' text columns)
SEGMENT_BATCH = 1_000  # reports segmented and aligned at a time (sentence objects are large)
ROW_GROUP = 100_000  # rows per Parquet row group; part of the files' bytes, hence of the version
COMPRESSION = "zstd"


class _RowGroupWriter:
    """Appends tables to a Parquet file in row groups of exactly ``ROW_GROUP`` rows (the last one shorter), so
    the bytes do not depend on how the rows arrived in batches."""

    def __init__(self, path: Path, schema, compression: str = COMPRESSION):
        import pyarrow.parquet as pq

        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression=compression)
        self.pending: list = []
        self.rows = 0

    def write(self, table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        while self.rows >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, n: int) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self.pending)
        self.writer.write_table(table.slice(0, n).combine_chunks(), row_group_size=ROW_GROUP)
        rest = table.slice(n)
        self.pending, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.rows:
            self._flush(self.rows)
        self.writer.close()


@dataclass
class Dataset:
    """A built data set before it is written: its two Parquet files (in a scratch folder), label space and
    manifest. :func:`write_dataset` copies it into place."""

    sentences_file: Path
    reports_file: Path
    label_space: dict
    manifest: dict
    scratch: object = field(default=None, repr=False)  # the TemporaryDirectory holding the files, if ours
    # hits, misses, corrupt (unusable entries rewritten) and write_errors of the segment cache; empty without one.
    # Kept out of the manifest: the data set's bytes do not depend on the cache.
    segment_cache: dict[str, int] = field(default_factory=dict)

    @property
    def sentences(self) -> dict[str, list]:
        """The whole sentence table as column lists (reads it all: for small data sets and tests)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.sentences_file).to_pydict()

    @property
    def reports(self) -> dict[str, list]:
        """The whole report table as column lists (reads it all: for small data sets and tests)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.reports_file).to_pydict()


def build_dataset(merged_dirs: Sequence[str | Path], config: DatasetConfig | None = None,
                  progress: bool = False, scratch_dir: str | Path | None = None,
                  segment_cache: str | Path | None = None) -> Dataset:
    """Build both tables from merged rounds (see the module docstring), in batches.

    Args:
        merged_dirs: merged round folders; a later one's adjudicated version of a report wins.
        config: how to build; default :class:`DatasetConfig()`.
        progress: show a progress bar.
        scratch_dir: where the built files wait for :func:`write_dataset` (default: the system's temp folder);
            they take about the size of the data set, twice while building.
        segment_cache: a :class:`SegmentCache` folder to read and write (the catalog's ``cache/segments``);
            None segments every report.

    Raises:
        DatasetError: when a folder is not a merged round, the rounds mix
            languages, or nothing usable is left.
    """
    import tempfile

    import pyarrow as pa
    from tqdm import tqdm

    config = config or DatasetConfig()
    choice = choose([Path(p) for p in merged_dirs])
    if not choice.winners:
        raise DatasetError(f"no adjudicated report in {', '.join(map(str, merged_dirs))}: "
                           f"left out {choice.info['left_out']}")
    round_splits = dict(config.round_splits)
    known_rounds = {r for rounds in choice.seen_in.values() for r in rounds}
    unknown = sorted(set(round_splits) - known_rounds)
    if unknown:
        raise DatasetError(f"split by round: no round {', '.join(map(repr, unknown))} among the rounds given "
                           f"({', '.join(sorted(known_rounds))}); use the round ids of their round.toml")
    seg_config = SegmenterConfig(language=config.language or choice.language, backend=config.backend)
    segmenter = Segmenter(seg_config)
    cache = SegmentCache(segment_cache, segmenter) if segment_cache is not None else None
    sentence_schema, report_schema = _schemas()
    spill_schema = pa.schema([f for f in sentence_schema if f.name not in ("multi_code", "classifier_row")])
    scratch = tempfile.TemporaryDirectory(prefix="hiericd-dataset-", dir=scratch_dir)
    folder = Path(scratch.name)
    spill = _RowGroupWriter(folder / "sentences.spill.parquet", spill_schema, compression="lz4")
    reports_out = _RowGroupWriter(folder / "reports.parquet", report_schema)
    tally = _Tally()
    ids = sorted(choice.winners)
    with SegmenterPool(seg_config, config.workers) as pool, \
            tqdm(total=len(ids), desc="segmenting", unit="report", disable=not progress) as bar:
        for start in range(0, len(ids), READ_CHUNK):
            chunk = ids[start: start + READ_CHUNK]
            sources = fetch(choice, chunk)
            # segmented sentences are heavy Python objects: a few at a time, straight into Arrow
            for at in range(0, len(chunk), SEGMENT_BATCH):
                part = chunk[at: at + SEGMENT_BATCH]
                items = [(sources[r].text, sources[r].reason_for_visit) for r in part]
                segmented = cache.segment(pool, items, bar) if cache is not None else pool.segment(items, bar)
                sentences, reports = _rows(part, sources, segmented, choice, config, tally)
                spill.write(pa.Table.from_pydict({n: sentences[n] for n in spill_schema.names},
                                                 schema=spill_schema))
                reports_out.write(pa.Table.from_pydict({n: reports[n] for n in report_schema.names},
                                                       schema=report_schema))
            del sources
    spill.close()
    reports_out.close()

    # label space: codes seen >= min_count times in training focus sentences
    label_codes = sorted(c for c, n in tally.train_codes.items() if n >= config.min_count)
    label_space = {"min_count": config.min_count, "codes": label_codes,
                   "train_counts": dict(sorted(tally.train_codes.items()))}
    _finish_sentences(folder / "sentences.spill.parquet", folder / "sentences.parquet", sentence_schema,
                      set(label_codes), tally)
    (folder / "sentences.spill.parquet").unlink()
    manifest = _manifest(config, seg_config, segmenter.describe(), tally, label_space, choice.info)
    stats = dict(cache.stats) if cache is not None else {}
    if cache is not None:
        log.info("segment cache %s: %d hits, %d misses, %d unusable entries rewritten", cache.folder,
                 stats["hits"], stats["misses"], stats["corrupt"])
    return Dataset(folder / "sentences.parquet", folder / "reports.parquet", label_space, manifest, scratch,
                   stats)


def _rows(report_ids: list[str], sources: dict[str, SourceReport], segmented: list, choice: Choice,
          config: DatasetConfig, tally: _Tally) -> tuple[dict[str, list], dict[str, list]]:
    """Sentence and report rows (column lists) of segmented reports; the counts go to ``tally``."""
    round_splits = dict(config.round_splits)
    sentences: dict[str, list] = defaultdict(list)
    reports: dict[str, list] = defaultdict(list)
    for rid, (sents, r4v) in zip(report_ids, segmented, strict=True):
        src = sources[rid]
        split = round_splits.get(src.round_id) or assign_split(rid, config.seed, config.fractions)
        rows, c = align(src.text, sents, src.annotations)
        tally.alignment.update(c)
        for row in rows:
            sentences["report_id"].append(rid)
            sentences["split"].append(split)
            for key, value in row.items():
                sentences[key].append(value)
            if split == "train":
                tally.train_codes.update(row["codes"])
        codes = sorted({code for code, _ in src.annotations})
        tally.add_report(split, src.round_id in round_splits, codes, choice.seen_in[rid])
        for key, value in (("report_id", rid), ("split", split), ("round_id", src.round_id),
                           ("rounds", choice.seen_in[rid]), ("text", src.text),
                           ("reason_for_visit", src.reason_for_visit), ("r4v_tokens", r4v),
                           ("codes", codes), ("n_codes", len(codes)), ("n_sentences", len(rows))):
            reports[key].append(value)
    return sentences, reports


class _Tally:
    """What the manifest counts, summed batch by batch."""

    def __init__(self) -> None:
        self.alignment: Counter[str] = Counter()
        self.train_codes: Counter[str] = Counter()
        self.report_codes: Counter[str] = Counter()  # code -> reports holding it
        self.reports: Counter[str] = Counter()  # split -> reports
        self.by_round = 0
        self.rounds: set[str] = set()
        self.splits = {split: Counter() for split in SPLITS}
        self.focus_not_classifier = 0

    def add_report(self, split: str, by_round: bool, codes: list[str], rounds: list[str]) -> None:
        self.reports[split] += 1
        self.by_round += by_round
        self.report_codes.update(codes)
        self.rounds.update(rounds)


def _finish_sentences(spill: Path, out: Path, schema, in_space: set[str], tally: _Tally) -> None:
    """Copy the spilled sentence rows to ``out`` with ``multi_code`` and ``classifier_row`` added."""
    import numpy as np
    import pyarrow as pa

    writer = _RowGroupWriter(out, schema)
    for batch in parquet_batches(spill, [f.name for f in schema if f.name not in ("multi_code", "classifier_row")]):
        n_codes = batch.column("n_codes").to_numpy(zero_copy_only=False)
        single = np.flatnonzero(n_codes == 1)
        classifier = np.zeros(batch.num_rows, dtype=bool)
        firsts = batch.column("codes").take(single).to_pylist()
        classifier[single] = [codes[0] in in_space for codes in firsts]
        multi = n_codes > 1
        focus = batch.column("is_focus").to_numpy(zero_copy_only=False)
        split = batch.column("split").to_numpy(zero_copy_only=False)
        for name, counts in tally.splits.items():
            rows = split == name
            counts["sentences"] += int(rows.sum())
            counts["focus_sentences"] += int((focus & rows).sum())
            counts["multi_code_sentences"] += int((multi & rows).sum())
            counts["classifier_rows"] += int((classifier & rows).sum())
        tally.focus_not_classifier += int((focus & ~classifier).sum())
        writer.write(pa.Table.from_batches([batch]).append_column(schema.field("multi_code"), pa.array(multi))
                     .append_column(schema.field("classifier_row"), pa.array(classifier)))
    writer.close()


def _manifest(config, seg_config, segmenter: str, tally: _Tally, label_space, info) -> dict:
    n_reports = sum(tally.reports.values())
    per_split = {split: {"reports": tally.reports[split],
                         **{key: tally.splits[split][key] for key in ("sentences", "focus_sentences",
                                                                        "multi_code_sentences", "classifier_rows")}}
                 for split in SPLITS}
    round_splits = dict(config.round_splits)
    by_round = tally.by_round
    mode = "hash" if not by_round else "round" if by_round == n_reports else "mixed"
    in_space = set(label_space["codes"])
    out_of_space = sum(n for code, n in tally.report_codes.items() if code not in in_space)
    return {
        # without ``workers``: how many processes built it is not part of what was built (a Celery worker
        # builds the same data set in one)
        "config": {**{k: v for k, v in asdict(config).items() if k != "workers"}, "fractions": list(config.fractions),
                   "round_splits": round_splits},
        # "hash": every split from the report-id hash; "round": every report from its round's split; "mixed": both
        "split_mode": mode,
        "split_assigned_by": {"hash": n_reports - by_round, "round": by_round},
        "segmenter": segmenter,
        "language": seg_config.language,
        "source_rounds": sorted(tally.rounds),
        "splits": per_split,
        "label_space_size": len(label_space["codes"]),
        "report_codes_outside_label_space": out_of_space,
        "focus_sentences_not_classifier_rows": tally.focus_not_classifier,
        "left_out_reports": info["left_out"],
        "superseded": info["superseded"],
        "alignment": dict(sorted(tally.alignment.items())),
    }


def _schemas():
    import pyarrow as pa

    strings, ints = pa.list_(pa.string()), pa.list_(pa.int32())
    sentence = pa.schema([
        ("report_id", pa.string()), ("split", pa.string()), ("sentence_idx", pa.int32()),
        ("start", pa.int32()), ("end", pa.int32()), ("text", pa.string()), ("tokens", strings),
        ("token_starts", ints), ("token_ends", ints), ("is_focus", pa.bool_()), ("codes", strings),
        ("attention_mask", pa.list_(pa.int8())), ("code_masks", pa.list_(pa.list_(pa.int8()))),
        ("n_codes", pa.int32()), ("multi_code", pa.bool_()),
        ("classifier_row", pa.bool_()),
    ])
    report = pa.schema([
        ("report_id", pa.string()), ("split", pa.string()), ("round_id", pa.string()), ("rounds", strings),
        ("text", pa.string()), ("reason_for_visit", pa.string()), ("r4v_tokens", strings), ("codes", strings),
        ("n_codes", pa.int32()), ("n_sentences", pa.int32()),
    ])
    return sentence, report


def _sha256(*parts: Path | bytes) -> str:
    """SHA-256 of files and byte strings, one after the other, read 1 MiB at a time."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            digest.update(part)
            continue
        with open(part, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def write_dataset(dataset: Dataset, out: str | Path | None = None, *, datasets_root: str | Path | None = None
                  ) -> Path:
    """Write the data set; return its folder.

    The version is the hash of the two Parquet files and the label space. With
    ``out`` the files go there; else into ``<datasets_root>/<version>/``.
    Every file is written atomically (the Parquet files are copied, a block at
    a time); ``manifest.json`` last, so a folder with a manifest is complete.
    :func:`hiericd_core.pipeline.datasets` writes into a scratch folder and
    renames the folder into the catalog only after the Great Expectations gate
    passed: use it for a data set that training will take.
    """
    from hiericd_core.files import atomic_copy, atomic_write_bytes, atomic_write_json

    label_space = (json.dumps(dataset.label_space, indent=2, sort_keys=True) + "\n").encode()
    version = _sha256(dataset.sentences_file, dataset.reports_file, label_space)[:16]
    if out is None:
        if datasets_root is None:
            raise ValueError("give out or datasets_root")
        out = Path(datasets_root) / version
    out = Path(out)
    atomic_copy(dataset.sentences_file, out / "sentences.parquet")
    atomic_copy(dataset.reports_file, out / "reports.parquet")
    atomic_write_bytes(out / "label_space.json", label_space)
    dataset.manifest["version"] = version
    dataset.manifest["files"] = {
        "sentences.parquet": _sha256(dataset.sentences_file),
        "reports.parquet": _sha256(dataset.reports_file),
        "label_space.json": hashlib.sha256(label_space).hexdigest(),
    }
    atomic_write_json(out / "manifest.json", dataset.manifest)
    return out
