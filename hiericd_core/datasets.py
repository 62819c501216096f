"""The paper's two training sets, built from merged rounds.

* **sentences.parquet** — one row per sentence of every usable report:
  ``report_id, split, sentence_idx, start, end, text, tokens, token_starts,
  token_ends, is_focus, codes, attention_mask, n_codes, multi_code,
  classifier_row``. A sentence is a *focus sentence* when a final annotation
  overlaps it; its codes are those annotations' codes; the attention mask is
  1 on the tokens inside the coders' phrases. ``classifier_row`` marks the
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
"""

from __future__ import annotations

import hashlib
import io
import json
import tomllib
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hiericd_core.parallel import usable_cpus
from hiericd_core.segment import Segmenter, SegmenterConfig

SPLITS = ("train", "dev", "test")


class DatasetError(Exception):
    """Input that cannot make a data set (the message says what to do)."""


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


def assign_split(report_id: str, seed: int, fractions: Sequence[float] = (0.70, 0.15, 0.15)) -> str:
    """Return ``train``/``dev``/``test`` for ``report_id``: stable across rounds and machines."""
    digest = hashlib.blake2b(f"{seed}:{report_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "test"


@dataclass
class SourceReport:
    """A report as a merged round gives it."""

    report_id: str
    round_id: str
    text: str
    reason_for_visit: str
    annotations: list[tuple[str, tuple[tuple[int, int], ...]]]  # (code, fragments)


def read_merged(merged_dir: Path) -> tuple[str, str, list[dict], dict[str, list]]:
    """Read one merged round: ``(round_id, language, report rows, annotations by report)``."""
    import pyarrow.parquet as pq

    reports_file = merged_dir / "reports.parquet"
    if not reports_file.is_file():
        raise DatasetError(f"{merged_dir}: no reports.parquet; run `hiericd merge` on the round first")
    rows = pq.read_table(reports_file).to_pylist()
    annotations: dict[str, list] = defaultdict(list)
    for a in pq.read_table(merged_dir / "annotations.parquet").to_pylist():
        fragments = tuple(tuple(int(x) for x in f.split()) for f in a["fragments"].split(";"))
        annotations[a["report_id"]].append((a["code"], fragments))
    language = "en"
    toml = merged_dir / "brat" / "round.toml"
    if toml.is_file():
        language = tomllib.loads(toml.read_text(encoding="utf-8")).get("round", {}).get("language", "en")
    round_id = rows[0]["round_id"] if rows else merged_dir.name
    return round_id, language, rows, annotations


def collect(merged_dirs: Sequence[Path]) -> tuple[dict[str, SourceReport], dict[str, list[str]], dict, str]:
    """Pick each report's winning version over the rounds (last adjudicated wins).

    Returns:
        ``(reports, rounds_per_report, drops, language)``.
    """
    chosen: dict[str, SourceReport] = {}
    seen_in: dict[str, list[str]] = defaultdict(list)
    drops: Counter[str] = Counter()
    superseded: list[dict] = []
    languages = set()
    left_out: dict[str, str] = {}
    for merged_dir in merged_dirs:
        round_id, language, rows, annotations = read_merged(Path(merged_dir))
        languages.add(language)
        for row in rows:
            rid = row["report_id"]
            seen_in[rid].append(round_id)
            if row["status"] == "pending":
                left_out.setdefault(rid, "pending adjudication")
                continue
            if row["quarantined"]:
                left_out.setdefault(rid, "quarantined items")
                continue
            if rid in chosen:
                superseded.append({"report_id": rid, "was": chosen[rid].round_id, "now": round_id})
            left_out.pop(rid, None)
            chosen[rid] = SourceReport(rid, round_id, row["text"], row["reason_for_visit"] or "",
                                       annotations.get(rid, []))
    for rid, reason in left_out.items():
        if rid not in chosen:
            drops[reason] += 1
    if len(languages) > 1:
        raise DatasetError(f"rounds in different languages ({', '.join(sorted(languages))}); build them apart")
    info = {"left_out": dict(sorted(drops.items())), "superseded": superseded}
    return chosen, dict(seen_in), info, (languages.pop() if languages else "en")


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
        linked = []
        mask = [0] * len(s.tokens)
        for code, fragments in per_sentence.get(i, []):
            inside = [j for j, tok in enumerate(s.tokens)
                      if any(tok.start < fe and fs < tok.end for fs, fe in fragments)]
            if not inside:  # the phrase only touches whitespace or punctuation-free gaps of this sentence
                counts["overlap_without_token"] += 1
                continue
            linked.append((code, fragments))
            for j in inside:
                mask[j] = 1
        codes = sorted({code for code, _ in linked})
        rows.append({"sentence_idx": i, "start": s.start, "end": s.end, "text": s.text,
                     "tokens": [t.text for t in s.tokens], "token_starts": [t.start for t in s.tokens],
                     "token_ends": [t.end for t in s.tokens], "is_focus": bool(linked), "codes": codes,
                     "attention_mask": mask, "n_codes": len(codes)})
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


def segment_all(items: list[tuple[str, str]], config: SegmenterConfig, workers: int, progress: bool = False):
    """Segment ``(text, reason_for_visit)`` pairs, in order, on ``workers`` processes."""
    from tqdm import tqdm

    bar = dict(total=len(items), desc="segmenting", unit="report", disable=not progress)
    if workers <= 1 or len(items) < 200:
        _init_worker(config)
        return [_segment_one(item) for item in tqdm(items, **bar)]
    from hiericd_core.parallel import context

    with context().Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        return list(tqdm(pool.imap(_segment_one, items, chunksize=64), **bar))


@dataclass
class Dataset:
    """The built tables (as column dicts), the label space and the manifest."""

    sentences: dict[str, list]
    reports: dict[str, list]
    label_space: dict
    manifest: dict


def build_dataset(merged_dirs: Sequence[str | Path], config: DatasetConfig | None = None,
                  progress: bool = False) -> Dataset:
    """Build both tables from merged rounds (see the module docstring).

    Raises:
        DatasetError: when a folder is not a merged round, the rounds mix
            languages, or nothing usable is left.
    """
    config = config or DatasetConfig()
    chosen, seen_in, info, language = collect([Path(p) for p in merged_dirs])
    if not chosen:
        raise DatasetError(f"no adjudicated report in {', '.join(map(str, merged_dirs))}: "
                           f"left out {info['left_out']}")
    round_splits = dict(config.round_splits)
    known_rounds = {r for rounds in seen_in.values() for r in rounds}
    unknown = sorted(set(round_splits) - known_rounds)
    if unknown:
        raise DatasetError(f"split by round: no round {', '.join(map(repr, unknown))} among the rounds given "
                           f"({', '.join(sorted(known_rounds))}); use the round ids of their round.toml")
    seg_config = SegmenterConfig(language=config.language or language, backend=config.backend)
    segmenter = Segmenter(seg_config)
    ids = sorted(chosen)
    segmented = segment_all([(chosen[r].text, chosen[r].reason_for_visit) for r in ids], seg_config,
                            config.workers, progress)

    sentences: dict[str, list] = defaultdict(list)
    reports: dict[str, list] = defaultdict(list)
    counts: Counter[str] = Counter()
    for rid, (sents, r4v) in zip(ids, segmented, strict=True):
        src = chosen[rid]
        split = round_splits.get(src.round_id) or assign_split(rid, config.seed, config.fractions)
        rows, c = align(src.text, sents, src.annotations)
        counts.update(c)
        for row in rows:
            sentences["report_id"].append(rid)
            sentences["split"].append(split)
            for key, value in row.items():
                sentences[key].append(value)
        codes = sorted({code for code, _ in src.annotations})
        for key, value in (("report_id", rid), ("split", split), ("round_id", src.round_id),
                           ("rounds", seen_in[rid]), ("text", src.text),
                           ("reason_for_visit", src.reason_for_visit), ("r4v_tokens", r4v),
                           ("codes", codes), ("n_codes", len(codes)), ("n_sentences", len(rows))):
            reports[key].append(value)

    # label space: codes seen >= min_count times in training focus sentences
    train_counts: Counter[str] = Counter()
    for split, codes in zip(sentences["split"], sentences["codes"], strict=True):
        if split == "train":
            train_counts.update(codes)
    label_codes = sorted(c for c, n in train_counts.items() if n >= config.min_count)
    in_space = set(label_codes)
    sentences["multi_code"] = [n > 1 for n in sentences["n_codes"]]
    sentences["classifier_row"] = [n == 1 and codes[0] in in_space
                                   for n, codes in zip(sentences["n_codes"], sentences["codes"], strict=True)]
    label_space = {"min_count": config.min_count, "codes": label_codes,
                   "train_counts": dict(sorted(train_counts.items()))}

    manifest = _manifest(config, seg_config, segmenter.describe(), sentences, reports, label_space, info, counts)
    return Dataset(dict(sentences), dict(reports), label_space, manifest)


def _manifest(config, seg_config, segmenter: str, sentences, reports, label_space, info, counts) -> dict:
    per_split = {}
    for split in SPLITS:
        n_rep = sum(s == split for s in reports["split"])
        rows = [i for i, s in enumerate(sentences["split"]) if s == split]
        per_split[split] = {
            "reports": n_rep,
            "sentences": len(rows),
            "focus_sentences": sum(sentences["is_focus"][i] for i in rows),
            "multi_code_sentences": sum(sentences["multi_code"][i] for i in rows),
            "classifier_rows": sum(sentences["classifier_row"][i] for i in rows),
        }
    round_splits = dict(config.round_splits)
    by_round = sum(r in round_splits for r in reports["round_id"])
    mode = "hash" if not by_round else "round" if by_round == len(reports["round_id"]) else "mixed"
    in_space = set(label_space["codes"])
    out_of_space = sum(1 for codes in reports["codes"] for c in codes if c not in in_space)
    focus_not_in_space = sum(f and not c for f, c in zip(sentences["is_focus"], sentences["classifier_row"],
                                                          strict=True))
    return {
        "config": {**asdict(config), "fractions": list(config.fractions), "round_splits": round_splits},
        # "hash": every split from the report-id hash; "round": every report from its round's split; "mixed": both
        "split_mode": mode,
        "split_assigned_by": {"hash": len(reports["round_id"]) - by_round, "round": by_round},
        "segmenter": segmenter,
        "language": seg_config.language,
        "source_rounds": sorted({r for rounds in reports["rounds"] for r in rounds}),
        "splits": per_split,
        "label_space_size": len(label_space["codes"]),
        "report_codes_outside_label_space": out_of_space,
        "focus_sentences_not_classifier_rows": focus_not_in_space,
        "left_out_reports": info["left_out"],
        "superseded": info["superseded"],
        "alignment": dict(sorted(counts.items())),
    }


def _schemas():
    import pyarrow as pa

    strings, ints = pa.list_(pa.string()), pa.list_(pa.int32())
    sentence = pa.schema([
        ("report_id", pa.string()), ("split", pa.string()), ("sentence_idx", pa.int32()),
        ("start", pa.int32()), ("end", pa.int32()), ("text", pa.string()), ("tokens", strings),
        ("token_starts", ints), ("token_ends", ints), ("is_focus", pa.bool_()), ("codes", strings),
        ("attention_mask", pa.list_(pa.int8())), ("n_codes", pa.int32()), ("multi_code", pa.bool_()),
        ("classifier_row", pa.bool_()),
    ])
    report = pa.schema([
        ("report_id", pa.string()), ("split", pa.string()), ("round_id", pa.string()), ("rounds", strings),
        ("text", pa.string()), ("reason_for_visit", pa.string()), ("r4v_tokens", strings), ("codes", strings),
        ("n_codes", pa.int32()), ("n_sentences", pa.int32()),
    ])
    return sentence, report


def _parquet_bytes(columns: dict[str, list], schema) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=100_000)
    return buffer.getvalue()


def write_dataset(dataset: Dataset, out: str | Path | None = None, *, datasets_root: str | Path | None = None
                  ) -> Path:
    """Write the data set; return its folder.

    The version is the hash of the two Parquet files and the label space. With
    ``out`` the files go there; else into ``<datasets_root>/<version>/``.
    Every file is written atomically; ``manifest.json`` last, so a folder with
    a manifest is complete.
    """
    from hiericd_core.files import atomic_write_bytes, atomic_write_json

    sentence_schema, report_schema = _schemas()
    sentences = _parquet_bytes(dataset.sentences, sentence_schema)
    reports = _parquet_bytes(dataset.reports, report_schema)
    label_space = (json.dumps(dataset.label_space, indent=2, sort_keys=True) + "\n").encode()
    version = hashlib.sha256(sentences + reports + label_space).hexdigest()[:16]
    if out is None:
        if datasets_root is None:
            raise ValueError("give out or datasets_root")
        out = Path(datasets_root) / version
    out = Path(out)
    atomic_write_bytes(out / "sentences.parquet", sentences)
    atomic_write_bytes(out / "reports.parquet", reports)
    atomic_write_bytes(out / "label_space.json", label_space)
    dataset.manifest["version"] = version
    dataset.manifest["files"] = {
        "sentences.parquet": hashlib.sha256(sentences).hexdigest(),
        "reports.parquet": hashlib.sha256(reports).hexdigest(),
        "label_space.json": hashlib.sha256(label_space).hexdigest(),
    }
    atomic_write_json(out / "manifest.json", dataset.manifest)
    return out
