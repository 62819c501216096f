"""Coding rounds: the folder a coding team exports after each annotation round.

A round is a folder::

    round.toml                        round id, date, language, code system, code source
    texts/<report_id>.txt             the reports
    metadata.csv                      report_id, reason_for_visit, any other columns
    coders/<coder>/<report_id>.ann    one folder per coder; a report is in 1..n of them
    senior/<report_id>.ann            the senior coder's adjudications (may be absent)
    truth/<report_id>.ann             synthetic rounds only: the generating truth

A plain BRAT folder (``.txt`` and ``.ann`` side by side, e.g. CodiEsp's
``train/``) is read as a single-coder round without metadata; a
``round.toml`` beside its files may still set the language and code source.
A multi-annotator BRAT project (one sub-folder per annotator, each with
``.txt`` + ``.ann``, as brat and bratiaa lay them out) is read as a round
whose coders are the sub-folders; a document whose text differs between
annotators is quarantined for that annotator. ``code_system = "none"`` in
``round.toml`` takes codes (e.g. entity labels) as they are, unchecked.

Loading never stops at the first bad file: every problem (malformed BRAT
line, unknown code, ``.ann`` without text, text without any coder, metadata
row without text) becomes a :class:`Quarantined` item with file and line,
the item is left out, and the rest of the round is read.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from hiericd_core.annotation import Annotation, CodeSource, coded_annotations
from hiericd_core.brat import Problem, read_ann, read_text

SENIOR = "senior"
TRUTH = "truth"
PLAIN_CODER = "coder1"


@dataclass(frozen=True)
class RoundConfig:
    """The settings in ``round.toml``."""

    id: str
    date: str = ""
    language: str = "en"
    code_system: str = "icd-10-cm"
    codes: CodeSource = field(default_factory=CodeSource)

    @classmethod
    def from_toml(cls, path: Path, *, default_id: str) -> RoundConfig:
        """Read ``round.toml``; raise :class:`RoundError` naming the file on bad content."""
        try:
            data = tomllib.loads(read_text(path))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RoundError(f"{path}: not valid TOML ({exc}); fix the file and load again") from exc
        head = data.get("round", {})
        codes = data.get("codes", {})
        unknown = set(codes) - {"source", "labels", "attribute", "resource", "accept"}
        if unknown:
            raise RoundError(f"{path}: unknown keys in [codes]: {', '.join(sorted(unknown))}")
        kind = codes.get("source", "note")
        if kind not in ("note", "label", "attribute", "normalization"):
            raise RoundError(f"{path}: [codes] source = {kind!r}; use note, label, attribute or normalization")
        if kind == "attribute" and not codes.get("attribute"):
            raise RoundError(f"{path}: [codes] source = 'attribute' needs attribute = '<name>'")
        if kind == "normalization" and not codes.get("resource"):
            raise RoundError(f"{path}: [codes] source = 'normalization' needs resource = '<name>'")
        source = CodeSource(
            kind=kind,
            labels=tuple(codes.get("labels", ())),
            attribute=codes.get("attribute", ""),
            resource=codes.get("resource", ""),
            accept=tuple(codes.get("accept", CodeSource.accept)),
        )
        date = head.get("date", "")
        code_system = str(head.get("code_system", "icd-10-cm"))
        if code_system == "none":
            source = replace(source, validate=False)
        return cls(
            id=str(head.get("id", default_id)),
            date=date.isoformat() if isinstance(date, dt.date) else str(date),
            language=str(head.get("language", "en")),
            code_system=code_system,
            codes=source,
        )


@dataclass
class Report:
    """One report of a round with every coder's annotations."""

    report_id: str
    text: str
    reason_for_visit: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    coders: dict[str, list[Annotation]] = field(default_factory=dict)
    senior: list[Annotation] | None = None
    truth: list[Annotation] | None = None

    @property
    def n_coders(self) -> int:
        return len(self.coders)


@dataclass(frozen=True)
class Quarantined:
    """An item left out of the round, with where and why."""

    kind: str  # brat | code | layout | metadata
    problem: Problem
    report_id: str | None = None
    who: str | None = None

    def message(self) -> str:
        where = self.problem.file if self.problem.line is None else f"{self.problem.file}:{self.problem.line}"
        return f"{where}: {self.problem.reason}"


@dataclass
class Round:
    """A loaded round: reports, coders and everything quarantined on the way."""

    path: Path
    config: RoundConfig
    layout: str  # "round", "project" (annotator sub-folders) or "plain"
    reports: dict[str, Report]
    coders: list[str]
    quarantined: list[Quarantined]
    has_reason_for_visit: bool

    @property
    def id(self) -> str:
        return self.config.id

    def quarantine_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(q.kind for q in self.quarantined).items()))

    def summary(self) -> dict:
        """Counts a person checks first, as a JSON-ready dict."""
        per_coder = {c: sum(len(r.coders.get(c, ())) for r in self.reports.values()) for c in self.coders}
        codes = {a.code for r in self.reports.values() for anns in r.coders.values() for a in anns}
        coders_per_report = Counter(r.n_coders for r in self.reports.values())
        return {
            "round_id": self.id,
            "path": str(self.path),
            "layout": self.layout,
            "language": self.config.language,
            "reports": len(self.reports),
            "coders": self.coders,
            "reports_by_coder_count": {str(k): v for k, v in sorted(coders_per_report.items())},
            "annotations_per_coder": per_coder,
            "distinct_codes": len(codes),
            "senior_adjudicated_reports": sum(r.senior is not None for r in self.reports.values()),
            "has_reason_for_visit": self.has_reason_for_visit,
            "quarantined": self.quarantine_counts(),
            "problems": [q.message() for q in self.quarantined],
        }


class RoundError(Exception):
    """A round that cannot be read at all (the message says why and what to do)."""


def is_round_folder(path: Path) -> bool:
    return (path / "texts").is_dir() or (path / "coders").is_dir()


def is_project_folder(path: Path) -> bool:
    """A brat project with one sub-folder per annotator (and no documents at the top)."""
    if any(path.glob("*.ann")):
        return False
    return sum(1 for p in path.iterdir() if p.is_dir() and any(p.glob("*.ann"))) >= 2


def load_round(path: str | Path, *, language: str | None = None, progress: bool = False) -> Round:
    """Load and validate a round folder (or a plain BRAT folder).

    Args:
        path: the round folder.
        language: overrides ``round.toml``'s language (e.g. ``"es"``).
        progress: show a progress bar over reports.

    Raises:
        RoundError: when ``path`` is not a folder or ``round.toml`` is unreadable.
    """
    root = Path(path)
    if not root.is_dir():
        raise RoundError(f"{root}: no such folder; give the path of a round (see README, 'Round layout')")
    toml = root / "round.toml"
    config = RoundConfig.from_toml(toml, default_id=root.name) if toml.is_file() else RoundConfig(id=root.name)
    if language:
        config = RoundConfig(config.id, config.date, language, config.code_system, config.codes)
    if is_round_folder(root):
        return _load_layout(root, config, progress)
    if is_project_folder(root):
        return _load_project(root, config, progress)
    return _load_plain(root, config, progress)


def _stems(folder: Path, suffix: str) -> list[str]:
    """Sorted stems of the ``*<suffix>`` entries of ``folder``, as ``sorted(folder.glob("*" + suffix))`` has them.

    Names only, no ``Path`` per file: a round has tens of thousands of files.
    """
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if entry.name.endswith(suffix)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name[: -len(suffix)] or name for name in names)  # Path(".txt").stem is ".txt"


def _load_layout(root: Path, config: RoundConfig, progress: bool) -> Round:
    quarantined: list[Quarantined] = []
    texts_dir = str(root / "texts")
    texts = {stem: os.path.join(texts_dir, stem + ".txt") for stem in _stems(root / "texts", ".txt")}
    if not texts:
        quarantined.append(Quarantined("layout", Problem(texts_dir, None, "no .txt reports found")))
    coder_dirs = sorted(p for p in (root / "coders").glob("*") if p.is_dir())
    coders = [p.name for p in coder_dirs]
    sources: list[tuple[str, Path]] = [(c.name, c) for c in coder_dirs]
    for extra in (SENIOR, TRUTH):
        if (root / extra).is_dir():
            sources.append((extra, root / extra))

    files: dict[str, dict[str, str]] = {}
    for who, folder in sources:
        base = str(folder)
        for stem in _stems(folder, ".ann"):
            ann = os.path.join(base, stem + ".ann")
            if stem not in texts:
                quarantined.append(Quarantined("layout", Problem(
                    ann, None, f"annotation file without text: texts/{stem}.txt is missing"), stem, who))
                continue
            files.setdefault(stem, {})[who] = ann

    metadata, has_r4v, meta_problems = _read_metadata(root / "metadata.csv", set(texts))
    quarantined.extend(meta_problems)

    reports: dict[str, Report] = {}
    for report_id, txt in _progress(texts.items(), progress, "reading round"):
        found = files.get(report_id, {})
        if not any(who in coders for who in found):
            quarantined.append(Quarantined("layout", Problem(
                txt, None, "text without any coder's annotations (not in any coders/<coder>/ folder)"),
                report_id))
            continue
        text = read_text(txt)  # once: every coder's .ann is read against it
        row = metadata.get(report_id, {})
        report = Report(report_id, text, row.get("reason_for_visit", ""), row)
        for who, ann in found.items():
            annotations = _read_annotations(ann, txt, config, report_id, who, quarantined, text)
            if who == SENIOR:
                report.senior = annotations
            elif who == TRUTH:
                report.truth = annotations
            else:
                report.coders[who] = annotations
        reports[report_id] = report
    return Round(root, config, "round", reports, coders, quarantined, has_r4v)


def _load_plain(root: Path, config: RoundConfig, progress: bool) -> Round:
    quarantined: list[Quarantined] = []
    anns = sorted(root.rglob("*.ann"))
    if not anns:
        raise RoundError(f"{root}: neither a round (texts/, coders/) nor a BRAT folder (.ann files)")
    reports: dict[str, Report] = {}
    for ann in _progress(anns, progress, "reading BRAT folder"):
        txt = ann.with_suffix(".txt")
        report_id = ann.stem
        if not txt.is_file():
            quarantined.append(Quarantined("layout", Problem(
                str(ann), None, f"annotation file without text: {txt.name} is missing"), report_id, PLAIN_CODER))
            continue
        if report_id in reports:
            quarantined.append(Quarantined("layout", Problem(
                str(ann), None, f"duplicate report id {report_id!r} (also in another sub-folder)"), report_id))
            continue
        text = read_text(txt)
        annotations = _read_annotations(ann, txt, config, report_id, PLAIN_CODER, quarantined, text)
        reports[report_id] = Report(report_id, text, coders={PLAIN_CODER: annotations})
    return Round(root, config, "plain", reports, [PLAIN_CODER], quarantined, False)


def _load_project(root: Path, config: RoundConfig, progress: bool) -> Round:
    quarantined: list[Quarantined] = []
    coder_dirs = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.ann")))
    coders = [p.name for p in coder_dirs]
    reports: dict[str, Report] = {}
    stems = sorted({a.stem for d in coder_dirs for a in d.glob("*.ann")})
    for report_id in _progress(stems, progress, "reading BRAT project"):
        report: Report | None = None
        for folder in coder_dirs:
            ann, txt = folder / f"{report_id}.ann", folder / f"{report_id}.txt"
            if not ann.is_file():
                continue
            if not txt.is_file():
                quarantined.append(Quarantined("layout", Problem(
                    str(ann), None, f"annotation file without text: {txt.name} is missing"), report_id, folder.name))
                continue
            text = read_text(txt)
            if report is None:
                report = Report(report_id, text)
            elif text != report.text:
                quarantined.append(Quarantined("layout", Problem(
                    str(txt), None, "text differs from the other annotators' copy of this document"),
                    report_id, folder.name))
                continue
            report.coders[folder.name] = _read_annotations(ann, txt, config, report_id, folder.name, quarantined,
                                                           text)
        if report is not None:
            reports[report_id] = report
    return Round(root, config, "project", reports, coders, quarantined, False)


def _read_annotations(ann: str | Path, txt: str | Path, config: RoundConfig, report_id: str, who: str,
                      quarantined: list[Quarantined], text: str) -> list[Annotation]:
    """Read one coder's ``.ann`` of a report against ``text``, the report text already read from ``txt``."""
    document, problems = read_ann(ann, text, txt)
    quarantined.extend(Quarantined("brat", p, report_id, who) for p in problems)
    if document is None:
        return []
    annotations, code_problems = coded_annotations(document, config.codes, report_id=report_id, who=who)
    quarantined.extend(Quarantined("code", p, report_id, who) for p in code_problems)
    return annotations


def _read_metadata(
    path: Path, report_ids: set[str]
) -> tuple[dict[str, dict[str, str]], bool, list[Quarantined]]:
    """Read ``metadata.csv``; rows with unknown or duplicate report ids are quarantined."""
    if not path.is_file():
        return {}, False, []
    problems: list[Quarantined] = []
    rows: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "report_id" not in columns:
            return {}, False, [Quarantined("metadata", Problem(
                str(path), 1, f"no report_id column (columns: {', '.join(columns) or 'none'})"))]
        for row in reader:
            line = reader.line_num
            report_id = (row.get("report_id") or "").strip()
            if None in row:
                problems.append(Quarantined("metadata", Problem(str(path), line, "more fields than the header"),
                                            report_id or None))
                continue
            if report_id not in report_ids:
                reason = f"metadata row for {report_id!r}, which has no text in texts/"
                problems.append(Quarantined("metadata", Problem(str(path), line, reason), report_id or None))
                continue
            if report_id in rows:
                problems.append(Quarantined("metadata", Problem(
                    str(path), line, f"second metadata row for {report_id!r}; the first one is kept"), report_id))
                continue
            rows[report_id] = {k: (v or "") for k, v in row.items()}
    return rows, "reason_for_visit" in columns, problems


def _progress(items, enabled: bool, label: str) -> Iterator:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(list(items), desc=label, unit="report")
