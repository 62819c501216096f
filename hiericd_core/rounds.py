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
line, unknown code, ``.ann`` without text, text without any coder or not
UTF-8, badly quoted metadata row) becomes a :class:`Quarantined` item with
file and line, the item is left out, and the rest of the round is read.

A round is untrusted input. ``round.toml`` is validated (unknown keys, wrong
types and unknown values are a :class:`RoundError` naming each key), and so
is a code source setting that matches nothing in the annotations. Ids become
file names downstream, so the round id, coder folder names and report ids
must pass :func:`hiericd_core.catalog.check_id` (the round id, or the round
is refused; the others, or they are quarantined). Symlinks are quarantined,
never followed.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hiericd_core.annotation import Annotation, CodeSource, SourceKind, coded_annotations
from hiericd_core.brat import Attribute, BratError, Normalization, Problem, TextBound, read_ann, read_text
from hiericd_core.catalog import SAFE_ID_RULE, check_id, is_safe_id

SENIOR = "senior"
TRUTH = "truth"
PLAIN_CODER = "coder1"
# The adjudication queue marks each disputed region with an entity of this label, its note
# listing the coders' codes; the senior copies the queue's files, these entities included,
# into senior/. (hiericd_core.merge ignores them there.)
DISPUTE_LABEL = "Dispute"

Language = Literal["en", "es"]  # what hiericd_core.segment has sentence rules and tokenizers for
CodeSystem = Literal["icd-10-cm", "cie-10-es", "none"]
AcceptedStatus = Literal["billable", "category", "incomplete"]  # icd.Status less "unknown"


class _Table(BaseModel):
    """A table of ``round.toml``: unknown keys and wrong types are errors, nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RoundTable(_Table):
    id: str | None = None
    date: str = ""  # a TOML date is turned into its ISO text by _date
    language: Language = "en"
    code_system: CodeSystem = "icd-10-cm"

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str | None) -> str | None:
        # the id names folders under the catalog (rounds/<id>/, merged/<id>/)
        if value is not None:
            check_id(value, "")
        return value

    @field_validator("date", mode="plain")
    @classmethod
    def _date(cls, value: object) -> str:
        # a TOML date (2026-11-27) or an ISO date string; kept as text, as the merge writes it back
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str):
            if value:
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"{value!r} is not a date; write 2026-11-27") from None
            return value
        raise ValueError(f"must be a date (2026-11-27), not {_toml_type(value)} {value!r}")


class _CodesTable(_Table):
    source: SourceKind = "note"
    labels: list[str] = []
    attribute: str = ""
    resource: str = ""
    accept: Annotated[list[AcceptedStatus], Field(min_length=1)] = ["billable", "category"]


class _RoundFile(_Table):
    round: _RoundTable = _RoundTable()
    codes: _CodesTable = _CodesTable()


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
        """Read and validate ``round.toml``.

        Args:
            path: the file.
            default_id: the round id when ``[round] id`` is absent (the folder name).

        Raises:
            RoundError: one line naming the file and every bad key: TOML
                syntax, unknown tables or keys, wrong types, unknown values, an
                id that is not a safe file name.
        """
        if path.is_symlink():
            raise RoundError(f"{path}: symlink, not followed; put the file itself in the round")
        try:
            data = tomllib.loads(read_text(path))
        except (tomllib.TOMLDecodeError, BratError) as exc:
            raise RoundError(f"{path}: not valid TOML ({_one_line(exc)}); fix the file and load again") from exc
        try:
            parsed = _RoundFile.model_validate(data)
        except ValidationError as exc:
            raise RoundError(f"{path}: {'; '.join(_describe(e) for e in exc.errors())}") from None
        head, codes = parsed.round, parsed.codes
        if codes.source == "attribute" and not codes.attribute:
            raise RoundError(f"{path}: [codes] source = 'attribute' needs attribute = '<name>'")
        if codes.source == "normalization" and not codes.resource:
            raise RoundError(f"{path}: [codes] source = 'normalization' needs resource = '<name>'")
        if head.id is None:
            _check_default_id(default_id, path.parent, f"{path}: no [round] id, and ")
        source = CodeSource(
            kind=codes.source,
            labels=tuple(codes.labels),
            attribute=codes.attribute,
            resource=codes.resource,
            accept=tuple(codes.accept),
        )
        if head.code_system == "none":
            source = replace(source, validate=False)
        return cls(
            id=head.id if head.id is not None else default_id,
            date=head.date,
            language=head.language,
            code_system=head.code_system,
            codes=source,
        )


def _check_default_id(name: str, folder: Path, prefix: str = "") -> None:
    """Refuse a folder name that cannot serve as the round id (e.g. ``my round``)."""
    if not is_safe_id(name):
        raise RoundError(f"{prefix}the folder name {name!r} of {folder} cannot be the round id "
                         f"({SAFE_ID_RULE}); set [round] id in round.toml")


_TOML_TYPES = {str: "a string", int: "an integer", float: "a float", bool: "a boolean", list: "an array",
               dict: "a table", dt.date: "a date", dt.datetime: "a date-time", dt.time: "a time"}


def _toml_type(value: object) -> str:
    return _TOML_TYPES.get(type(value), type(value).__name__)


def _describe(error: dict) -> str:
    """One pydantic error as ``[table] key: what is wrong (what to write)``, in TOML's words."""
    loc = list(error["loc"])
    keys = [str(part) for part in loc if isinstance(part, str)]
    where = f"[{keys[0]}] {keys[1]}" if len(keys) > 1 else keys[0] if keys else "round.toml"
    where += "".join(f"[{part}]" for part in loc if isinstance(part, int))
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        if len(keys) == 1:
            home = [t for t, m in (("round", _RoundTable), ("codes", _CodesTable)) if keys[0] in m.model_fields]
            hint = f"; it belongs under [{home[0]}]" if home else ""
            return f"{keys[0]}: unknown key at the top level (known tables: [round], [codes]){hint}"
        table = _RoundTable if keys[0] == "round" else _CodesTable
        return f"{where}: unknown key (known: {', '.join(table.model_fields)})"
    if kind == "model_type":
        return f"{where}: must be a table ([{keys[0]}]), not {_toml_type(value)} {value!r}"
    if kind == "literal_error":
        return f"{where} = {value!r}; use {_choices(error['ctx']['expected'])}"
    if kind == "list_type":
        example = '["billable", "category"]' if keys[-1] == "accept" else '["Diagnosis"]'
        return f"{where}: must be an array of strings (e.g. {example}), not {_toml_type(value)} {value!r}"
    if kind == "string_type":
        return f"{where}: must be a string, not {_toml_type(value)} {value!r}"
    if kind == "too_short":
        return f"{where}: must name at least one status ({_choices(get_args(AcceptedStatus))})"
    if kind == "value_error":
        message = str(error["ctx"]["error"])
        return f"{where}: {message.strip()}"
    return f"{where}: {error['msg']}"


def _choices(expected: str | tuple[str, ...]) -> str:
    """``'a', 'b' or 'c'`` (pydantic's wording, or a tuple) as ``a, b or c``."""
    names = list(expected) if isinstance(expected, tuple) else re.findall(r"'([^']*)'", expected)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


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
        RoundError: when ``path`` is not a folder, ``round.toml`` is invalid,
            the round id is not a safe id, or a code source setting (label,
            attribute, resource) matches nothing in the round.
    """
    root = Path(path)
    if not root.is_dir():
        raise RoundError(f"{root}: no such folder; give the path of a round (see README, 'Round layout')")
    name = Path(os.path.abspath(root)).name  # "." and "x/.." name the folder they stand for
    toml = root / "round.toml"
    if toml.is_file() or toml.is_symlink():
        config = RoundConfig.from_toml(toml, default_id=name)
    else:
        _check_default_id(name, root)
        config = RoundConfig(id=name)
    if language:
        if language not in get_args(Language):
            raise RoundError(f"language {language!r}: use {_choices(get_args(Language))}")
        config = replace(config, language=language)
    reader = _Reader(config)
    if is_round_folder(root):
        loaded = _load_layout(root, reader, progress)
    elif is_project_folder(root):
        loaded = _load_project(root, reader, progress)
    else:
        loaded = _load_plain(root, reader, progress)
    reader.check_code_source(toml)
    return loaded


@dataclass
class _Reader:
    """One loading of a round: its settings, what it quarantines, and what its ``.ann`` files name.

    Every name read from the round's folders goes through here: symlinks are
    not followed (a link could bring in any file of the machine) and names
    that are not safe ids (they become file names downstream) are left out.
    """

    config: RoundConfig
    quarantined: list[Quarantined] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)
    watch: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        codes = self.config.codes
        # only then is a setting there that could match nothing
        self.watch = bool(codes.labels) or codes.kind in ("attribute", "normalization")

    def quarantine(self, kind: str, file: str | Path, reason: str, report_id: str | None = None,
                   who: str | None = None) -> None:
        self.quarantined.append(Quarantined(kind, Problem(str(file), None, reason), report_id, who))

    def real_dir(self, path: Path) -> bool:
        """Whether ``path`` is a folder to read; a symlink is quarantined, not followed."""
        if path.is_symlink():
            self.quarantine("layout", path, "symlink, not followed")
            return False
        return path.is_dir()

    def scan(self, folder: Path, who: str | None = None) -> list[os.DirEntry]:
        """The entries of ``folder`` sorted by name; an unreadable folder is quarantined."""
        try:
            with os.scandir(folder) as entries:
                return sorted(entries, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            self.quarantine("layout", folder, f"cannot list folder: {exc.strerror or exc}", who=who)
            return []

    def stems(self, entries: list[os.DirEntry], suffix: str, who: str | None = None) -> tuple[list[str], set[str]]:
        """Sorted stems of the regular ``*<suffix>`` files among ``entries``, and the stems quarantined.

        Names only, no ``Path`` per file: a round has tens of thousands of
        files; ``DirEntry`` answers the type questions without a ``stat``.
        """
        good: list[str] = []
        bad: set[str] = set()
        for entry in entries:
            if not entry.name.endswith(suffix):
                continue
            stem = entry.name[: -len(suffix)] or entry.name  # Path(".txt").stem is ".txt"
            if entry.is_symlink():
                reason = "symlink, not followed"
            elif not entry.is_file(follow_symlinks=False):
                reason = f"not a file, so not a {suffix} document"
            elif not is_safe_id(stem):
                reason = f"report id {stem!r} is not a safe id ({SAFE_ID_RULE}); rename the file"
            else:
                good.append(stem)
                continue
            bad.add(stem)
            self.quarantine("layout", entry.path, reason, stem if is_safe_id(stem) else None, who)
        return sorted(good), bad

    def folders(self, parent: Path, *, with_ann: bool = False) -> list[Path]:
        """The sub-folders of ``parent`` that are coders' folders, sorted by name.

        A symlink or a name that is not a safe id (coder names become file
        names in the merged round) is quarantined. With ``with_ann`` (a brat
        project's top folder), only folders holding ``.ann`` files count and
        other entries are let be.
        """
        found: list[Path] = []
        for entry in self.scan(parent):
            if entry.is_symlink():
                if not with_ann or entry.is_dir():
                    self.quarantine("layout", entry.path, "symlink, not followed")
            elif entry.is_dir(follow_symlinks=False):
                if with_ann and not any(Path(entry.path).glob("*.ann")):
                    continue
                if is_safe_id(entry.name):
                    found.append(Path(entry.path))
                else:
                    self.quarantine("layout", entry.path, f"coder folder name {entry.name!r} is not a safe id "
                                                          f"({SAFE_ID_RULE}); rename the folder")
        return found

    def text(self, txt: str | Path, report_id: str, who: str | None = None) -> str | None:
        """The report text, or ``None`` with the report quarantined (not UTF-8, unreadable)."""
        try:
            return read_text(txt)
        except BratError as exc:
            self.quarantined.extend(Quarantined("brat", replace(p, reason=f"{p.reason}; the report is left out"),
                                                report_id, who) for p in exc.problems)
        except OSError as exc:
            self.quarantine("layout", txt, f"cannot read: {exc.strerror or exc}; the report is left out",
                            report_id, who)
        return None

    def annotations(self, ann: str | Path, txt: str | Path, report_id: str, who: str, text: str,
                    coders: Collection[str] = ()) -> list[Annotation]:
        """Read one coder's ``.ann`` of a report against ``text``, the report text already read from ``txt``.

        In the senior's file, entities labelled with one of the report's ``coders`` or
        :data:`DISPUTE_LABEL` are the adjudication queue's display, not decisions.
        """
        document, problems = read_ann(ann, text, txt)
        self.quarantined.extend(Quarantined("brat", p, report_id, who) for p in problems)
        if document is None:
            return []
        if self.watch:
            for record in document.records:
                kind = type(record)
                if kind is TextBound:
                    self.labels.add(record.label)
                elif kind is Attribute:
                    self.attributes.add(record.name)
                elif kind is Normalization:
                    self.resources.add(record.resource)
        display = {*coders, DISPUTE_LABEL} if who == SENIOR else ()
        annotations, code_problems = coded_annotations(document, self.config.codes, report_id=report_id, who=who,
                                                       display=display)
        self.quarantined.extend(Quarantined("code", p, report_id, who) for p in code_problems)
        return annotations

    def check_code_source(self, toml: Path) -> None:
        """Refuse a ``[codes]`` setting that matches nothing the round's annotations hold.

        A misspelt label (``"Diagnosys"``) would otherwise quarantine nothing
        and code nothing: an empty round that looks fine. Only checked when
        the round has entities at all.
        """
        codes = self.config.codes
        if not self.labels:
            return
        if codes.labels and not self.labels.intersection(codes.labels):
            raise RoundError(f"{toml}: [codes] labels = {list(codes.labels)} match no entity label of this round; "
                             f"its labels: {', '.join(sorted(self.labels))}")
        if codes.kind == "attribute" and codes.attribute not in self.attributes:
            raise RoundError(f"{toml}: [codes] attribute = {codes.attribute!r} matches no attribute of this round; "
                             f"its attributes: {', '.join(sorted(self.attributes)) or 'none'}")
        if codes.kind == "normalization" and codes.resource not in self.resources:
            raise RoundError(f"{toml}: [codes] resource = {codes.resource!r} matches no normalization resource of "
                             f"this round; its resources: {', '.join(sorted(self.resources)) or 'none'}")


def _load_layout(root: Path, reader: _Reader, progress: bool) -> Round:
    texts_dir = root / "texts"
    stems, bad_texts = reader.stems(reader.scan(texts_dir), ".txt") if reader.real_dir(texts_dir) else ([], set())
    base = str(texts_dir)
    texts = {stem: os.path.join(base, stem + ".txt") for stem in stems}
    if not texts:
        reader.quarantine("layout", base, "no .txt reports found")
    coders_dir = root / "coders"
    coder_dirs = reader.folders(coders_dir) if reader.real_dir(coders_dir) else []
    coders = [p.name for p in coder_dirs]
    sources: list[tuple[str, Path]] = [(c.name, c) for c in coder_dirs]
    for extra in (SENIOR, TRUTH):
        if reader.real_dir(root / extra):
            sources.append((extra, root / extra))

    files: dict[str, dict[str, str]] = {}
    for who, folder in sources:
        folder_name = str(folder)
        anns, _ = reader.stems(reader.scan(folder, who), ".ann", who)
        for stem in anns:
            ann = os.path.join(folder_name, stem + ".ann")
            if stem in bad_texts:
                continue  # its text is quarantined, with the reason
            if stem not in texts:
                reader.quarantined.append(Quarantined("layout", Problem(
                    ann, None, f"annotation file without text: texts/{stem}.txt is missing"), stem, who))
                continue
            files.setdefault(stem, {})[who] = ann

    metadata, has_r4v, meta_problems = read_metadata(root / "metadata.csv", set(texts) | bad_texts)
    reader.quarantined.extend(meta_problems)

    reports: dict[str, Report] = {}
    for report_id, txt in _progress(texts.items(), progress, "reading round"):
        found = files.get(report_id, {})
        if not any(who in coders for who in found):
            reader.quarantined.append(Quarantined("layout", Problem(
                txt, None, "text without any coder's annotations (not in any coders/<coder>/ folder)"),
                report_id))
            continue
        text = reader.text(txt, report_id)  # once: every coder's .ann is read against it
        if text is None:
            continue
        row = metadata.get(report_id, {})
        report = Report(report_id, text, row.get("reason_for_visit", ""), row)
        for who, ann in found.items():
            annotations = reader.annotations(ann, txt, report_id, who, text, report.coders)
            if who == SENIOR:
                report.senior = annotations
            elif who == TRUTH:
                report.truth = annotations
            else:
                report.coders[who] = annotations
        reports[report_id] = report
    return Round(root, reader.config, "round", reports, coders, reader.quarantined, has_r4v)


def _plain_files(root: Path, reader: _Reader) -> tuple[list[Path], int]:
    """The ``.ann`` files under ``root`` (every depth, symlinks not followed), sorted, and how many were named so."""
    anns: list[Path] = []
    named = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        entries = reader.scan(folder, PLAIN_CODER)
        stems, bad = reader.stems(entries, ".ann", PLAIN_CODER)
        named += len(stems) + len(bad)
        anns.extend(folder / f"{stem}.ann" for stem in stems)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_symlink() and entry.is_dir():
                reader.quarantine("layout", entry.path, "symlink, not followed")
    return sorted(anns), named


def _load_plain(root: Path, reader: _Reader, progress: bool) -> Round:
    anns, named = _plain_files(root, reader)
    if not named:
        raise RoundError(f"{root}: neither a round (texts/, coders/) nor a BRAT folder (.ann files)")
    reports: dict[str, Report] = {}
    for ann in _progress(anns, progress, "reading BRAT folder"):
        txt = ann.with_suffix(".txt")
        report_id = ann.stem
        if txt.is_symlink() or (txt.exists() and not txt.is_file()):
            reason = "symlink, not followed" if txt.is_symlink() else "not a file, so not a .txt document"
            reader.quarantine("layout", txt, reason, report_id, PLAIN_CODER)
            continue
        if not txt.is_file():
            reader.quarantined.append(Quarantined("layout", Problem(
                str(ann), None, f"annotation file without text: {txt.name} is missing"), report_id, PLAIN_CODER))
            continue
        if report_id in reports:
            reader.quarantined.append(Quarantined("layout", Problem(
                str(ann), None, f"duplicate report id {report_id!r} (also in another sub-folder)"), report_id))
            continue
        text = reader.text(txt, report_id, PLAIN_CODER)
        if text is None:
            continue
        annotations = reader.annotations(ann, txt, report_id, PLAIN_CODER, text)
        reports[report_id] = Report(report_id, text, coders={PLAIN_CODER: annotations})
    return Round(root, reader.config, "plain", reports, [PLAIN_CODER], reader.quarantined, False)


def _load_project(root: Path, reader: _Reader, progress: bool) -> Round:
    coder_dirs = reader.folders(root, with_ann=True)
    coders = [p.name for p in coder_dirs]
    listed: dict[str, tuple[set[str], set[str], set[str]]] = {}  # coder: (.ann stems, .txt stems, bad .txt stems)
    for folder in coder_dirs:
        entries = reader.scan(folder, folder.name)
        anns, _ = reader.stems(entries, ".ann", folder.name)
        txts, bad = reader.stems(entries, ".txt", folder.name)
        listed[folder.name] = (set(anns), set(txts), bad)
    reports: dict[str, Report] = {}
    stems = sorted(set().union(*(anns for anns, _, _ in listed.values())))
    for report_id in _progress(stems, progress, "reading BRAT project"):
        report: Report | None = None
        for folder in coder_dirs:
            anns, txts, bad = listed[folder.name]
            if report_id not in anns or report_id in bad:
                continue  # a quarantined text was reported with its reason
            ann, txt = folder / f"{report_id}.ann", folder / f"{report_id}.txt"
            if report_id not in txts:
                reader.quarantined.append(Quarantined("layout", Problem(
                    str(ann), None, f"annotation file without text: {txt.name} is missing"), report_id, folder.name))
                continue
            text = reader.text(txt, report_id, folder.name)
            if text is None:
                continue
            if report is None:
                report = Report(report_id, text)
            elif text != report.text:
                reader.quarantined.append(Quarantined("layout", Problem(
                    str(txt), None, "text differs from the other annotators' copy of this document"),
                    report_id, folder.name))
                continue
            report.coders[folder.name] = reader.annotations(ann, txt, report_id, folder.name, text)
        if report is not None:
            reports[report_id] = report
    return Round(root, reader.config, "project", reports, coders, reader.quarantined, False)


# ------------------------------------------------------------------ metadata.csv

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_OPEN_QUOTE = "unexpected end of data"  # csv's strict-mode error for a quoted field still open at the end
MAX_RECORD_LINES = 100  # a quoted field may hold line breaks; one spanning more lines is a stray quote


def read_metadata(
    path: Path, report_ids: set[str]
) -> tuple[dict[str, dict[str, str]], bool, list[Quarantined]]:
    """Read ``metadata.csv``; bad rows are quarantined with their line, never the rows after them.

    The csv module alone would let one unterminated quote swallow every
    following row into one field, so the file is cut into physical lines
    first: a record is one line, or the few lines a quoted field with line
    breaks spans, as long as it closes and gives exactly the header's
    columns. Rows that are not UTF-8, badly quoted, too long, with more
    fields than the header, unknown or duplicate report ids are quarantined.
    """
    file = str(path)
    if path.is_symlink():
        return {}, False, [Quarantined("metadata", Problem(file, None, "symlink, not followed"))]
    if not path.is_file():
        return {}, False, []
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {}, False, [Quarantined("metadata", Problem(file, None, f"cannot read: {exc.strerror or exc}"))]
    problems: list[Quarantined] = []

    def bad(line: int, reason: str, report_id: str | None = None) -> None:
        problems.append(Quarantined("metadata", Problem(file, line, reason), report_id))

    lines: list[str | None] = []
    for number, match in enumerate(_LINE.finditer(data.removeprefix(b"\xef\xbb\xbf")), 1):
        raw = match.group()
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(None)
            bad(number, f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line; row left out")
    records = _csv_records(lines, bad)
    header = next(records, None)
    columns = header[1] if header is not None else []
    if header is None or header[0] != 1 or "report_id" not in columns:
        if header is not None and header[0] != 1:
            columns = []  # the first line was quarantined
        return {}, False, [*problems, Quarantined("metadata", Problem(
            file, 1, f"no report_id column (columns: {', '.join(columns) or 'none'})"))]
    rows: dict[str, dict[str, str]] = {}
    for line, fields in records:
        if not fields:
            continue  # a blank line, as csv.DictReader skips it
        row = dict(zip(columns, fields, strict=False))
        for key in columns[len(fields):]:
            row[key] = ""
        report_id = (row.get("report_id") or "").strip()
        if len(fields) > len(columns):
            bad(line, "more fields than the header", report_id or None)
        elif report_id not in report_ids:
            bad(line, f"metadata row for {report_id!r}, which has no text in texts/", report_id or None)
        elif report_id in rows:
            bad(line, f"second metadata row for {report_id!r}; the first one is kept", report_id)
        else:
            rows[report_id] = row
    problems.sort(key=lambda q: q.problem.line or 0)
    return rows, "reason_for_visit" in columns, problems


def _csv_records(lines: list[str | None], bad: Callable[[int, str], None]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line, fields)`` per CSV record of ``lines`` (``None``: a line already quarantined).

    The first record is the header; later multi-line records must have as
    many fields as it has.
    """
    width: int | None = None
    index = 0
    while index < len(lines):
        if lines[index] is None:
            index += 1
            continue
        fields, used, error = _csv_record(lines, index, width)
        if fields is None:
            bad(index + 1, f"{error}; row left out")
            index += 1
            continue
        if width is None:
            width = len(fields)
        yield index + 1, fields
        index += used


def _csv_record(lines: list[str | None], start: int, width: int | None) -> tuple[list[str] | None, int, str]:
    """The record starting at ``lines[start]``: ``(fields, lines used, "")`` or ``(None, 0, reason)``."""
    chunk = ""
    for end in range(start, min(len(lines), start + MAX_RECORD_LINES)):
        line = lines[end]
        if line is None:
            break
        chunk += line
        try:
            rows = list(csv.reader([chunk], strict=True))
        except csv.Error as exc:
            if str(exc) == _OPEN_QUOTE:
                continue  # a quoted field with a line break: take the next line too
            if "field larger than field limit" in str(exc):
                return None, 0, f"a field longer than {csv.field_size_limit()} characters"
            return None, 0, f"malformed CSV ({exc})"
        if end == start or (len(rows) == 1 and len(rows[0]) == width):
            return (rows[0] if rows else []), end - start + 1, ""
        break
    return None, 0, "a quote opened here is never closed (it would swallow the rows below)"


def _progress(items, enabled: bool, label: str) -> Iterator:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(list(items), desc=label, unit="report")
