"""Counts over a folder tree of BRAT documents, and every problem in it.

Example:
    >>> stats = brat_stats(Path("rounds/r1/coders"))  # doctest: +SKIP
    >>> stats.entities, len(stats.problems)  # doctest: +SKIP
    (117342, 0)

The walk is :func:`hiericd_core.brat.iter_documents`'s (sorted, hidden names
skipped), except in a coding round (a folder with ``texts/``): there every
``.ann`` under the round (``coders/<coder>/``, ``senior/``, ``truth/``) is a
document whose text is ``texts/<report_id>.txt``, as the round layout says.
Large trees are read by a few worker processes, in chunks whose
results are merged in walk order, so counts and the problem list are the same
whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hiericd_core.brat import (
    Attribute,
    Equivalence,
    Event,
    Normalization,
    Note,
    Problem,
    Relation,
    TextBound,
    _load_item,
    _walk,
    read_document,
)
from hiericd_core.parallel import context, usable_cpus

_CHUNK = 500  # documents per worker task
_PARALLEL_FROM = 2000  # fewer documents are read in this process

_FIELD_BY_TYPE = {
    TextBound: "entities",
    Note: "notes",
    Attribute: "attributes",
    Normalization: "normalizations",
    Relation: "relations",
    Event: "events",
    Equivalence: "equivalences",
}

Item = tuple[str, str, bool, bool]
RoundItem = tuple[Path, Path]  # (.ann, the round's texts/<id>.txt)


def _walk_round(root: Path) -> Iterator[RoundItem]:
    """Every ``.ann`` of a round with the text it annotates, in sorted folder order."""
    texts = root / "texts"
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and not p.name.startswith(".")):
        if folder == texts:
            continue
        for ann in sorted(folder.glob("*.ann")):
            if not ann.name.startswith("."):
                yield ann, texts / f"{ann.stem}.txt"


@dataclass
class BratStats:
    """What a BRAT folder tree holds.

    ``documents`` counts documents that could be read (a ``.txt``, with or
    without ``.ann``); ``entities`` counts ``T`` annotations (event triggers
    included) and ``discontinuous_entities`` those with more than one
    fragment. Records that were quarantined are not counted; each has its
    entry in ``problems``.
    """

    documents: int = 0
    entities: int = 0
    discontinuous_entities: int = 0
    notes: int = 0
    attributes: int = 0
    normalizations: int = 0
    relations: int = 0
    events: int = 0
    equivalences: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, other: BratStats) -> None:
        """Add the counts and problems of ``other`` (which comes later in walk order)."""
        for f in fields(self):
            if f.name != "problems":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.problems.extend(other.problems)

    def to_dict(self) -> dict:
        """Return the counts and problems as plain JSON-ready values."""
        data = asdict(self)
        data["problems"] = [asdict(p) for p in self.problems]
        return data


def _count(items: Sequence[Item | RoundItem | Problem]) -> BratStats:
    """Read the documents of ``items`` and count what they hold."""
    stats = BratStats()
    counts = dict.fromkeys(_FIELD_BY_TYPE.values(), 0)
    for item in items:
        if isinstance(item, Problem):
            stats.problems.append(item)
            continue
        document, problems = read_document(*item) if len(item) == 2 else _load_item(*item)
        stats.problems.extend(problems)
        if document is None:
            continue
        stats.documents += 1
        for record in document.records:
            kind = type(record)
            counts[_FIELD_BY_TYPE[kind]] += 1
            if kind is TextBound and len(record.fragments) > 1:
                stats.discontinuous_entities += 1
    for name, value in counts.items():
        setattr(stats, name, value)
    return stats


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def brat_stats(root: Path, progress: bool = False, *, workers: int | None = None) -> BratStats:
    """Count documents and annotations under ``root`` and collect every problem.

    Args:
        root: the folder tree to walk (``X.txt`` + ``X.ann`` pairs).
        progress: show a progress bar on stderr.
        workers: processes to read with; by default the CPUs this process may
            use. Trees under 2,000 documents are always read in-process.

    Returns:
        The counts, and the problems in walk order (each with file and line).

    Raises:
        NotADirectoryError: ``root`` is not a folder.
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    items = list(_walk_round(root)) if (root / "texts").is_dir() else list(_walk(root))
    workers = max(1, workers or usable_cpus())
    total = BratStats()
    with tqdm(total=len(items), unit="doc", desc="reading BRAT", disable=not progress) as bar:
        if workers == 1 or len(items) < _PARALLEL_FROM:
            for chunk in _chunks(items, _CHUNK):
                total.add(_count(chunk))
                bar.update(len(chunk))
            return total
        with ProcessPoolExecutor(max_workers=workers, mp_context=context()) as pool:
            chunks = list(_chunks(items, _CHUNK))
            for chunk, stats in zip(chunks, pool.map(_count, chunks), strict=True):
                total.add(stats)
                bar.update(len(chunk))
    return total
