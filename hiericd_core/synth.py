"""Synthetic coding rounds: pathology reports, two coders each, senior, truth.

The paper's 39,000 pathology reports are private, so this module writes
realistic stand-ins: an ordinary round folder (``round.toml``, ``texts/``,
``metadata.csv``, ``coders/<coder>/``, ``senior/``) plus ``truth/`` with the
generating annotations, for measuring how well a merge recovers them.

How a report is made:

1. its codes are drawn from a long-tailed (Zipf) ranking of real billable
   ICD-10-CM codes of pathology chapters (:func:`code_pool`), further codes
   of a report mostly from the same organ;
2. each code's tabular description is turned into pathology language
   (``Malignant neoplasm of upper-outer quadrant of left female breast`` →
   ``invasive lobular carcinoma`` + ``upper-outer quadrant of left breast``);
3. the report is written section by section around the focus sentences that
   carry the evidence, with distractors (history of other diseases,
   differential diagnoses, negated findings); for some codes the laterality
   or site is only stated in the reason for visit;
4. two of three simulated coders annotate it, each with habits (misses,
   sibling confusion, extra codes on distractors, span boundaries); when they
   disagree the senior annotates it, mostly right.

Everything tunable is in :class:`SynthConfig`; a round depends only on
``(seed, n_reports, config)``: same inputs, byte-identical files, whatever
the number of worker processes.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import multiprocessing
import os
import random
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from hiericd_core import icd
from hiericd_core import synth_vocab as V
from hiericd_core.brat import Note, TextBound, format_ann

__all__ = [
    "CoderProfile",
    "CodeEntry",
    "SynthConfig",
    "SynthSummary",
    "code_pool",
    "coder_kappas",
    "disagree",
    "generate_round",
    "read_ann_codes",
]

Span = tuple[int, int]


# ==========================================================================
# Configuration
# ==========================================================================


@dataclass(frozen=True)
class CoderProfile:
    """Habits of one simulated coder (probabilities per annotation).

    Attributes:
        name: folder name under ``coders/``.
        miss_rate: a true code left out.
        pair_miss_rate: extra miss probability for the second code of a
            two-code sentence.
        sibling_rate: a sibling code (``icd.siblings``) instead of the true one.
        rfv_neglect_rate: for codes whose site/laterality is only in the
            reason for visit, the unspecified sibling instead.
        extra_rate: a distractor sentence (history, differential, negated
            disease) coded as if it were a finding.
        overcode_rate: a sibling added next to the true code.
        span_shift_rate: span boundaries moved (a word more or less, the
            whole sentence).
        merge_fragments_rate: a discontinuous evidence annotated as one span.
    """

    name: str
    miss_rate: float = 0.08
    pair_miss_rate: float = 0.15
    sibling_rate: float = 0.08
    rfv_neglect_rate: float = 0.3
    extra_rate: float = 0.10
    overcode_rate: float = 0.02
    span_shift_rate: float = 0.15
    merge_fragments_rate: float = 0.3


def _default_coders() -> tuple[CoderProfile, ...]:
    return (
        # careful, narrow spans
        CoderProfile("coder1", miss_rate=0.09, sibling_rate=0.09, rfv_neglect_rate=0.15, extra_rate=0.06,
                     overcode_rate=0.01, span_shift_rate=0.10, merge_fragments_rate=0.1),
        # reads the report but not the reason for visit; broad spans
        CoderProfile("coder2", miss_rate=0.09, sibling_rate=0.10, rfv_neglect_rate=0.6, extra_rate=0.08,
                     overcode_rate=0.02, span_shift_rate=0.30, merge_fragments_rate=0.6),
        # over-codes history and differentials
        CoderProfile("coder3", miss_rate=0.10, sibling_rate=0.08, rfv_neglect_rate=0.3, extra_rate=0.15,
                     overcode_rate=0.04, span_shift_rate=0.18, merge_fragments_rate=0.3),
    )


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator.

    Code universe: ``n_codes`` codes ranked by pathology weight
    (``pool_seed`` breaks ties), drawn with probability ∝ 1/(rank+offset)^s.

    Report shape: ``codes_per_report[k]`` is the share of reports with k+1
    codes; ``related_code_rate`` the chance a further code comes from the
    first code's organ; ``two_code_sentence_rate`` the chance (given a
    further code of the first code's organ) that the two share one focus
    sentence.

    Coders: ``coders`` (:class:`CoderProfile`), ``coders_per_report`` of them
    per report; the senior errs with ``senior_error_rate`` (sibling) and
    ``senior_miss_rate``, and has not yet adjudicated ``senior_backlog_rate``
    of the disagreeing reports (they are pending). The ``*_target`` ranges are what
    ``scripts/calibrate_synth.py`` checks at 39,000 reports.
    """

    n_reports: int = 39000
    seed: int = 0
    # code universe
    n_codes: int = 955
    zipf_exponent: float = 1.15
    zipf_offset: float = 0.0
    pool_seed: int = 0
    # codes per report
    codes_per_report: tuple[float, ...] = (0.72, 0.165, 0.06, 0.028, 0.014, 0.007, 0.004, 0.002)
    related_code_rate: float = 0.85
    two_code_sentence_rate: float = 0.16
    # focus sentences
    discontinuous_rate: float = 0.25
    rfv_only_rate: float = 0.45
    prose_focus_rate: float = 0.10
    uppercase_diagnosis_rate: float = 0.10
    mods_rate: float = 0.55
    # distractors
    history_distractor_rate: float = 0.55
    max_history_distractors: int = 3
    differential_rate: float = 0.30
    negated_finding_rate: float = 0.55
    negated_disease_rate: float = 0.25
    history_restates_rfv_rate: float = 0.30
    rfv_states_site_rate: float = 0.50
    history_filler_rate: float = 0.30
    prose_in_comment_rate: float = 0.60
    negated_in_final_rate: float = 0.60
    one_sentence_per_line_rate: float = 0.25
    age_range: tuple[int, int] = (22, 89)
    malignant_age_range: tuple[int, int] = (38, 91)
    # other sections
    micro_rate: float = 0.85
    comment_rate: float = 0.60
    final_first_rate: float = 0.30
    min_sentences: int = 5
    max_sentences: int = 30
    # coders and senior
    coders: tuple[CoderProfile, ...] = field(default_factory=_default_coders)
    coders_per_report: int = 2
    #: how likely a coder codes a distractor, relative to its ``extra_rate``
    distractor_code_factors: tuple[tuple[str, float], ...] = (
        ("history", 1.0), ("differential", 0.8), ("negated", 0.4))
    #: share of sibling confusions that pick the unspecified sibling
    unspecified_sibling_share: float = 0.4
    senior_error_rate: float = 0.03
    senior_miss_rate: float = 0.01
    # share of disagreeing reports the senior has not adjudicated yet (no senior file: pending)
    senior_backlog_rate: float = 0.0
    # round.toml
    round_date: str | None = None  # ISO date; None: derived from the seed
    first_round_date: str = "2022-01-03"
    language: str = "en"
    code_system: str = "icd-10-cm"
    label: str = "Diagnosis"
    # execution
    workers: int | None = None
    chunk_size: int = 1000
    # calibration targets (checked by scripts/calibrate_synth.py)
    kappa_target: tuple[float, float] = (0.61, 0.69)
    lr_accuracy_target: tuple[float, float] = (0.5, 0.7)
    distinct_codes_target: tuple[int, int] = (900, 1000)
    frequent_codes_target: tuple[int, int] = (370, 450)
    one_code_share_target: tuple[float, float] = (0.68, 0.76)


@dataclass
class SynthSummary:
    """What :func:`generate_round` wrote."""

    out: str
    reports: int
    coders: list[str]
    annotations_per_coder: dict[str, int]
    reports_per_coder: dict[str, int]
    distinct_codes: int
    reports_per_n_codes: dict[int, int]
    senior_reports: int
    truth_annotations: int
    focus_sentences: int
    two_code_focus_sentences: int
    discontinuous_annotations: int
    rfv_dependent_annotations: int
    sentences_min: int
    sentences_max: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


# ==========================================================================
# Code universe
# ==========================================================================


@dataclass(frozen=True)
class CodeEntry:
    """A code of the universe and how reports talk about it."""

    code: str
    organ: str
    behavior: str  # malignant / benign / insitu / uncertain / secondary / history / other
    morphs: tuple[str, ...]
    sites: tuple[str, ...]  # ways to write the site with laterality; ("",) when the organ says it all
    lat: str  # right / left / bilateral / ""
    siblings: tuple[str, ...]
    unspec_sibling: str  # sibling with unspecified side or site, "" if none

    @property
    def site(self) -> str:
        """The tabular site with laterality ("" when the organ says it all)."""
        return self.sites[0]

    @property
    def rfv_eligible(self) -> bool:
        """Whether the site or side can be left to the reason for visit."""
        return bool(self.site) and bool(self.lat or self.unspec_sibling)


@dataclass(frozen=True)
class _Pool:
    entries: tuple[CodeEntry, ...]
    cum: tuple[float, ...]
    by_organ: dict[str, tuple[tuple[int, ...], tuple[float, ...]]]


_NOISE = [re.compile(p, re.I) for p in V.DESCRIPTION_NOISE]
_SITE_REWRITES = [(re.compile(p, re.I), r) for p, r in V.SITE_REWRITES]
_HEADS = [(re.compile(r"^" + p + r"\s*(.*)$", re.I), b, m) for p, b, m in V.HEADS]
_WEIGHT_PATTERNS = [(re.compile(p, re.I), w) for p, w in V.CODE_WEIGHT_PATTERNS]
_ORGAN_KEYWORDS = [(re.compile(p, re.I), o) for p, o in V.ORGAN_KEYWORDS]
_LAT = re.compile(r"\b(right|left|bilateral)\b", re.I)
_SITE_TAIL = re.compile(
    r"\b(right|left|bilateral|lymph nodes?|spleen|extranodal|shoulder|arm|forearm|hand|thigh|leg|ankle|foot|"
    r"hip|knee|wrist|elbow|ovary|breast|site|limb|trunk|neck|head|pelvi|vertebra)", re.I)


def _clean_site(site: str) -> str:
    for pattern, repl in _SITE_REWRITES:
        site = pattern.sub(repl, site)
    return site.strip()


def _organ_of(category: str, description: str) -> str:
    organ = V.ORGAN_BY_CATEGORY.get(category)
    if organ:
        return organ
    for pattern, name in _ORGAN_KEYWORDS:
        if pattern.search(description):
            return name
    return "soft_tissue"


def _parse(code: str) -> CodeEntry | None:
    info = icd.lookup(code)
    if info is None or info.status != "billable":
        return None
    desc = info.description
    lats = {m.lower() for m in _LAT.findall(desc)}
    if len(lats) > 1:
        return None
    lat = lats.pop() if lats else ""
    text = desc
    for pattern in _NOISE:
        text = pattern.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" ,")
    organ = _organ_of(code[:3], desc)
    spec = V.ORGANS[organ]
    behavior, morphs, site = "other", (), ""
    for pattern, head_behavior, head_morphs in _HEADS:
        match = pattern.match(text)
        if match:
            behavior, site = head_behavior, match.group(1)
            morphs = head_morphs or tuple(spec["morph"].get(head_behavior, ())) or V.GENERIC_MORPHS[head_behavior]
            break
    else:
        head = text
        if ", " in text and _SITE_TAIL.search(text.split(", ", 1)[1]):
            head, site = text.split(", ", 1)
        elif lat and " of " in text:
            head, site = text.rsplit(" of ", 1) if lat in text.rsplit(" of ", 1)[1].lower() else (text, "")
        head = re.sub(r"^other (?:specified )?", "", head, flags=re.I)
        morphs = (head[:1].lower() + head[1:],) if not head[:2].isupper() else (head,)
    morphs = V.CODE_MORPHS.get(code, morphs)
    site = _clean_site(site)
    if lat and lat not in site.lower():
        site = f"{lat} {site}".strip() if site else lat
    if site and site.lower() == lat:
        site = ""
    label = spec["label"].lower()
    if site.lower() in (label, f"{label} gland") and label[:5] in morphs[0].lower():
        site = ""  # "prostatic adenocarcinoma" needs no "of the prostate"
    sites = (site,)
    for group, words in V.SITE_VARIANTS.items():
        if re.search(r"(^|\b(?:right|left|bilateral) )" + re.escape(group) + "$", site):
            sites = tuple(site[: len(site) - len(group)] + w for w in words)
            break
    siblings = tuple(icd.siblings(code))
    unspec = ""
    for sibling in siblings:
        sib_info = icd.lookup(sibling)
        if sib_info and "unspecified" in sib_info.description.lower() and not _LAT.search(sib_info.description):
            unspec = sibling
            break
    return CodeEntry(code=info.code, organ=organ, behavior=behavior, morphs=tuple(morphs), sites=sites, lat=lat,
                     siblings=siblings, unspec_sibling=unspec)


def _weight(code: str, description: str) -> float:
    weight = V.CATEGORY_WEIGHTS.get(code[:3], 0.0)
    for pattern, factor in _WEIGHT_PATTERNS:
        if pattern.search(description):
            weight *= factor
    return weight


@lru_cache(maxsize=8)
def _build_pool(n_codes: int, exponent: float, offset: float, pool_seed: int) -> _Pool:
    candidates: list[tuple[str, float]] = []
    per_category: dict[str, float] = {}
    for code in icd.billable_codes(V.CHAPTERS):
        if code[:3] not in V.CATEGORY_WEIGHTS:
            continue
        w = _weight(code, icd.lookup(code).description)
        if w > 0:
            candidates.append((code, w))
            per_category[code[:3]] = per_category.get(code[:3], 0.0) + w / V.CATEGORY_WEIGHTS[code[:3]]
    # spread a category's mass over its codes (square root: big categories stay big)
    rng = random.Random(f"pool:{pool_seed}")
    keyed = []
    for code, w in sorted(candidates):
        w = w / math.sqrt(per_category[code[:3]])
        keyed.append((-math.log(1.0 - rng.random()) / w, code))  # exponential race = weighted permutation
    head = [c for c in V.HEAD_CODES]
    order = head + [code for _, code in sorted(keyed) if code not in set(head)]
    entries: list[CodeEntry] = []
    seen: set[tuple[str, ...]] = set()
    for code in order:
        entry = _parse(code)
        if entry is None:
            continue
        key = (entry.organ, entry.morphs[0], entry.site)
        if key in seen:
            continue  # two codes nobody could tell apart from the words
        seen.add(key)
        entries.append(entry)
        if len(entries) == n_codes:
            break
    cum: list[float] = []
    total = 0.0
    for rank in range(len(entries)):
        total += 1.0 / (rank + 1 + offset) ** exponent
        cum.append(total)
    by_organ: dict[str, tuple[list[int], list[float]]] = {}
    for index, entry in enumerate(entries):
        ids, weights = by_organ.setdefault(entry.organ, ([], []))
        ids.append(index)
        prev = weights[-1] if weights else 0.0
        weights.append(prev + 1.0 / (index + 1 + offset) ** exponent)
    return _Pool(
        entries=tuple(entries),
        cum=tuple(cum),
        by_organ={k: (tuple(v[0]), tuple(v[1])) for k, v in sorted(by_organ.items())},
    )


def code_pool(config: SynthConfig | None = None) -> list[CodeEntry]:
    """Return the code universe of ``config``, most frequent first."""
    cfg = config or SynthConfig()
    return list(_build_pool(cfg.n_codes, cfg.zipf_exponent, cfg.zipf_offset, cfg.pool_seed).entries)


# ==========================================================================
# One report
# ==========================================================================


@dataclass
class _Ann:
    code: str
    frags: tuple[Span, ...]
    sent: int = -1
    kind: str = "focus"  # focus / history / differential / negated
    rfv_dep: bool = False
    pair: bool = False
    entry: CodeEntry | None = None


@dataclass
class _Sent:
    text: str
    anns: list[_Ann] = field(default_factory=list)  # frags relative to the sentence
    removable: bool = True


@dataclass
class _Report:
    rid: str
    text: str
    meta: dict[str, str]
    truth: list[_Ann]
    distractors: list[_Ann]
    sentences: list[Span]
    n_sentences: int


_SLOT = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=512)
def _tokens(template: str) -> tuple[tuple[bool, str], ...]:
    out: list[tuple[bool, str]] = []
    pos = 0
    for match in _SLOT.finditer(template):
        if match.start() > pos:
            out.append((False, template[pos:match.start()]))
        out.append((True, match.group(1)))
        pos = match.end()
    if pos < len(template):
        out.append((False, template[pos:]))
    return tuple(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render(template: str, values: dict[str, str]) -> tuple[str, dict[str, Span]]:
    parts: list[str] = []
    spans: dict[str, Span] = {}
    pos = 0
    for is_slot, token in _tokens(template):
        if is_slot:
            value = values.get(token)
            if value is None:
                low = values.get(token[:1].lower() + token[1:], "")
                value = _cap(low)
            spans[token] = (pos, pos + len(value))
        else:
            value = token
        parts.append(value)
        pos += len(value)
    return "".join(parts), spans


def _evidence(spans: dict[str, Span], spec) -> tuple[Span, ...]:
    return tuple((spans[a][0], spans[b][1]) for a, b in spec)


class _Maker:
    """Writes one report; all randomness from the report's own generator."""

    def __init__(self, pool: _Pool, cfg: SynthConfig, rng: random.Random, round_day: date):
        self.pool, self.cfg, self.rng, self.round_day = pool, cfg, rng, round_day

    # -- sampling -----------------------------------------------------------

    def draw(self, exclude: set[str], organ: str | None = None) -> CodeEntry:
        rng = self.rng
        if organ is not None and organ in self.pool.by_organ:
            ids, cum = self.pool.by_organ[organ]
        else:
            ids, cum = None, self.pool.cum
        for _ in range(50):
            k = bisect.bisect_left(cum, rng.random() * cum[-1])
            entry = self.pool.entries[ids[k] if ids is not None else k]
            if entry.code not in exclude:
                return entry
        for entry in self.pool.entries:  # pragma: no cover - tiny organ exhausted
            if entry.code not in exclude:
                return entry
        raise RuntimeError("code pool exhausted")

    def n_codes(self) -> int:
        r = self.rng.random() * sum(self.cfg.codes_per_report)
        acc = 0.0
        for k, share in enumerate(self.cfg.codes_per_report):
            acc += share
            if r < acc:
                return k + 1
        return len(self.cfg.codes_per_report)

    def size(self) -> str:
        return f"{self.rng.uniform(0.2, 4.5):.1f}"

    def dims(self) -> str:
        a = self.rng.uniform(0.3, 6.0)
        return f"{a:.1f} x {a * self.rng.uniform(0.4, 1.0):.1f} x {a * self.rng.uniform(0.1, 0.6):.1f}"

    def fill(self, text: str) -> str:
        rng = self.rng
        return (text.replace("{size}", self.size()).replace("{dims}", self.dims())
                .replace("{n}", str(rng.randint(2, 6))).replace("{size2}", f"{rng.uniform(0.1, 1.5):.1f}"))

    def mods(self, entry: CodeEntry, force: bool = False) -> str:
        rng = self.rng
        if not force and rng.random() >= self.cfg.mods_rate:
            return ""
        spec = V.ORGANS[entry.organ]["mods"]
        if entry.behavior in ("malignant", "secondary"):
            options = spec.get("malignant") or ["measuring {size} cm", "see comment"]
        elif entry.behavior in ("benign", "insitu", "uncertain"):
            options = spec.get("benign") or ["measuring {size} cm", "see comment"]
        else:
            options = spec.get("other") or V.GENERIC_MODS_OTHER
        return ", " + self.fill(rng.choice(options))

    def morph(self, entry: CodeEntry, upper: bool) -> str:
        m = self.rng.choice(entry.morphs)
        return m.upper() if upper else m

    # -- sentences ------------------------------------------------------------

    def focus(self, entries: list[CodeEntry], site: str, label: str, proc: str, rfv_dep: bool, prose: bool,
              upper: bool) -> _Sent:
        rng, cfg = self.rng, self.cfg
        first = entries[0]
        organ = V.ORGANS[first.organ]["label"]
        values = {"P": label, "organ": organ.lower(), "Organ": organ, "proc": proc}
        has_site = bool(site) and not rfv_dep
        values["site"] = site
        m = self.morph(first, upper)
        values["m"], values["M"] = m, _cap(m)
        if len(entries) == 2:
            second = entries[1]
            values["m2"] = self.morph(second, False)
            values["site2"] = rng.choice(second.sites) or V.ORGANS[second.organ]["label"].lower()
            if has_site:
                template, ev1, ev2 = rng.choice(V.FOCUS_PAIR)
            else:
                template, ev1, ev2 = rng.choice(V.FOCUS_PAIR_NOSITE)
            values["mods"] = self.mods(first)
            text, spans = _render(template, values)
            return _Sent(text, [
                _Ann(first.code, _evidence(spans, ev1), pair=True, entry=first),
                _Ann(second.code, _evidence(spans, ev2), pair=True, entry=second),
            ], removable=False)
        if prose:
            choices = V.FOCUS_PROSE_SITE if has_site else V.FOCUS_PROSE_NOSITE
        elif has_site and rng.random() < cfg.discontinuous_rate:
            choices = V.FOCUS_SITE_DISC
        elif has_site:
            choices = V.FOCUS_SITE
        else:
            choices = V.FOCUS_NOSITE
        template, ev = rng.choice(choices)
        values["mods"] = self.mods(first, force="{M}{mods}, {site}" in template)
        text, spans = _render(template, values)
        return _Sent(text, [_Ann(first.code, _evidence(spans, ev), rfv_dep=rfv_dep, entry=first)],
                     removable=False)

    def disease_mention(self, templates, templates_nosite, entry: CodeEntry, kind: str, extra=None) -> _Sent:
        rng = self.rng
        values = {"m": rng.choice(entry.morphs), "site": rng.choice(entry.sites),
                  "hproc": rng.choice(V.ORGANS[entry.organ]["history_procs"]),
                  "year": str(self.round_day.year - rng.randint(1, 15))}
        values["M"] = _cap(values["m"])
        values.update(extra or {})
        if entry.site and "{site}" in templates[0]:
            template = rng.choice(templates)
        else:
            template = rng.choice(templates_nosite)
        text, spans = _render(template, values)
        first = "M" if "M" in spans else "m"
        last = "site" if "site" in spans else first
        return _Sent(text, [_Ann(entry.code, ((spans[first][0], spans[last][1]),), kind=kind, entry=entry)])

    # -- the report -------------------------------------------------------------

    def report(self, rid: str) -> _Report:
        rng, cfg = self.rng, self.cfg
        n = self.n_codes()
        codes: list[CodeEntry] = [self.draw(set())]
        taken = {codes[0].code}
        while len(codes) < n:
            organ = codes[0].organ if rng.random() < cfg.related_code_rate else None
            entry = self.draw(taken, organ)
            codes.append(entry)
            taken.add(entry.code)
        # parts: one code each, or the first two sharing a sentence
        groups: list[list[CodeEntry]] = [[c] for c in codes]
        mates = [j for j in range(1, n) if codes[j].organ == codes[0].organ]
        if mates and rng.random() < cfg.two_code_sentence_rate:
            j = mates[0]
            groups = [[codes[0], codes[j]]] + [[c] for k, c in enumerate(codes[1:], start=1) if k != j]
        primary = codes[0]
        rfv_dep = len(groups[0]) == 1 and primary.rfv_eligible and rng.random() < cfg.rfv_only_rate
        upper = rng.random() < cfg.uppercase_diagnosis_rate
        multi = len(groups) > 1
        parts = []
        for i, group in enumerate(groups):
            organ = V.ORGANS[group[0].organ]
            parts.append(dict(
                L=chr(ord("A") + i), P=f"{chr(ord('A') + i)}. " if multi else "", entries=group,
                proc=rng.choice(organ["procs"]), organ=organ, rfv_dep=rfv_dep and i == 0,
                site=rng.choice(group[0].sites),
                prose=rng.random() < cfg.prose_focus_rate,
            ))
        pspec = V.ORGANS[primary.organ]
        # reason for visit
        primary_site = parts[0]["site"]
        if rfv_dep or (primary_site and rng.random() < cfg.rfv_states_site_rate):
            rfv = _cap(rng.choice(pspec["rfv"]).replace("{site}", primary_site))
        else:
            rfv = rng.choice(pspec["rfv_plain"])
        female = {"breast", "uterus", "cervix", "ovary", "vulva"}
        male = {"prostate", "testis"}
        sex = "female" if primary.organ in female else "male" if primary.organ in male else rng.choice(
            ("female", "male"))
        age = rng.randint(*(cfg.malignant_age_range if primary.behavior == "malignant" else cfg.age_range))

        sections: dict[str, list[_Sent]] = {k: [] for k in ("specimen", "history", "gross", "micro", "final",
                                                            "comment")}
        for part in parts:
            entry = part["entries"][0]
            vals = {"P": part["P"], "Organ": part["organ"]["label"], "proc": part["proc"], "site": part["site"]}
            if part["site"] and not part["rfv_dep"]:
                template = rng.choice(V.SPECIMEN_LINES)
            else:
                template = rng.choice(V.SPECIMEN_LINES_NOSITE)
            sections["specimen"].append(_Sent(_render(template, vals)[0], removable=False))
        # clinical history
        opener = rng.choice(V.HISTORY_OPENERS)
        presenting = rng.choice(pspec["presenting"])
        hist = _render(opener, {"age": str(age), "Age": str(age), "sex": sex, "presenting": presenting})[0]
        sections["history"].append(_Sent(hist, removable=False))
        if not rfv_dep and rng.random() < cfg.history_restates_rfv_rate:
            sections["history"].append(_Sent(rng.choice(V.HISTORY_RFV).replace("{rfv}", rfv)))
        k = 0
        while k < cfg.max_history_distractors and rng.random() < cfg.history_distractor_rate:
            other = self.draw(taken)
            sections["history"].append(self.disease_mention(
                V.HISTORY_DISTRACTORS, V.HISTORY_DISTRACTORS_NOSITE, other, "history"))
            k += 1
        if rng.random() < cfg.history_filler_rate:
            sections["history"].append(_Sent(rng.choice(V.HISTORY_FILLERS)))
        # gross
        for part in parts:
            entry = part["entries"][0]
            label = part["organ"]["label"].lower() if part["rfv_dep"] or not part["site"] else part["site"]
            gross = rng.choice(V.GROSS_TEMPLATES)
            gross = self.fill(gross.replace("{tissue}", rng.choice(part["organ"]["tissue"])))
            gross = gross.replace("{Pp}", f"Part {part['L']}" if multi else "The specimen").replace(
                "{label}", label)
            sections["gross"].append(_Sent(gross, removable=len(parts) > 3))
            for _ in range(rng.randint(0, 2 if len(parts) <= 2 else 1)):
                filler = rng.choice(V.GROSS_FILLERS)
                filler = self.fill(filler.replace("{L}", part["L"]).replace("{k}", str(rng.randint(2, 6)))
                                   .replace("{color}", rng.choice(V.INK_COLORS)))
                sections["gross"].append(_Sent(filler))
        # microscopic
        if rng.random() < cfg.micro_rate:
            for part in parts:
                entry = part["entries"][0]
                cls = ("malignant" if entry.behavior in ("malignant", "secondary")
                       else "benign" if entry.behavior in ("benign", "insitu", "uncertain") else "other")
                micro = part["organ"]["micro"].get(cls) or V.GENERIC_MICRO[cls]
                used = {sent.text for sent in sections["micro"]}
                for sentence in rng.sample(micro, min(len(micro), rng.randint(1, 2))):
                    if sentence not in used:
                        sections["micro"].append(_Sent(sentence))
        else:
            sections["micro"].append(_Sent(rng.choice(V.MICRO_FILLERS)))
        # final diagnosis (focus sentences) and comment
        for part in parts:
            sent = self.focus(part["entries"], part["site"], part["P"], part["proc"], part["rfv_dep"],
                              part["prose"], upper)
            if part["prose"]:
                see = f"{part['P']}{part['organ']['label']}, {part['proc']}: see comment."
                sections["final"].append(_Sent(see, removable=False))
                sections["comment" if rng.random() < cfg.prose_in_comment_rate else "micro"].append(sent)
            else:
                sections["final"].append(sent)
            if rng.random() < cfg.negated_finding_rate:
                neg = rng.choice(part["organ"]["neg"])
                template = rng.choice(V.NEGATED_TEMPLATES)
                text = _render(template, {"neg": neg})[0]
                sections["final" if rng.random() < cfg.negated_in_final_rate else "micro"].append(_Sent(text))
            if rng.random() < cfg.negated_disease_rate:
                other = self.draw(taken, part["entries"][0].organ)
                template = rng.choice(V.NEGATED_TEMPLATES)
                values = {"neg": other.morphs[0]}
                text, spans = _render(template, values)
                span = spans["neg"] if "neg" in spans else spans["Neg"]
                sections["final"].append(_Sent(text, [_Ann(other.code, (span,), kind="negated", entry=other)]))
        if rng.random() < cfg.differential_rate:
            other = self.draw(taken, primary.organ)
            sections["comment"].append(self.disease_mention(
                V.DIFFERENTIAL_DISTRACTORS, V.DIFFERENTIAL_DISTRACTORS, other, "differential"))
        if rng.random() < cfg.comment_rate:
            for template in rng.sample(V.COMMENT_FILLERS, rng.randint(1, 2)):
                when = self.round_day - timedelta(days=rng.randint(0, 30))
                text = template.replace("{name}", rng.choice(V.PATHOLOGIST_NAMES)).replace(
                    "{date}", when.strftime("%m/%d/%Y"))
                sections["comment"].append(_Sent(text))

        # sentence budget
        order = ["specimen", "history", "gross", "micro", "final", "comment"]
        if rng.random() < cfg.final_first_rate:
            order = ["specimen", "final", "comment", "history", "gross", "micro"]
        total = sum(len(v) for v in sections.values())
        while total > cfg.max_sentences:
            removable = [(name, i) for name in order for i, s in enumerate(sections[name]) if s.removable]
            if not removable:
                break
            name, i = removable[rng.randrange(len(removable))]
            del sections[name][i]
            total -= 1
        while total < cfg.min_sentences:
            sections["comment"].append(_Sent(rng.choice(V.COMMENT_FILLERS).replace(
                "{name}", rng.choice(V.PATHOLOGIST_NAMES)).replace("{date}", self.round_day.strftime("%m/%d/%Y"))))
            total += 1

        # layout
        chunks: list[str] = []
        pos = 0
        truth: list[_Ann] = []
        distractors: list[_Ann] = []
        sentence_spans: list[Span] = []
        for name in order:
            sents = sections[name]
            if not sents:
                continue
            header = rng.choice(V.SECTION_HEADERS[name])
            if chunks:
                chunks.append("\n\n")
                pos += 2
            chunks.append(header + "\n")
            pos += len(header) + 1
            line_per_sentence = name in ("specimen", "final") or rng.random() < cfg.one_sentence_per_line_rate
            for j, sent in enumerate(sents):
                if j:
                    sep = "\n" if line_per_sentence else " "
                    chunks.append(sep)
                    pos += 1
                start = pos
                chunks.append(sent.text)
                pos += len(sent.text)
                index = len(sentence_spans)
                sentence_spans.append((start, pos))
                for ann in sent.anns:
                    ann.frags = tuple((start + s, start + e) for s, e in ann.frags)
                    ann.sent = index
                    (truth if ann.kind == "focus" else distractors).append(ann)
        text = "".join(chunks) + "\n"
        specimen = "; ".join(f"{p['organ']['label']}, {p['proc']}" for p in parts)
        proc_day = self.round_day - timedelta(days=rng.randint(1, 365))
        meta = {"report_id": rid, "reason_for_visit": rfv, "specimen": specimen,
                "procedure_date": proc_day.isoformat(), "patient_age": str(age), "patient_sex": sex,
                "department": pspec["dept"]}
        return _Report(rid, text, meta, truth, distractors, sentence_spans, len(sentence_spans))


# ==========================================================================
# Coders and senior
# ==========================================================================


_WORD = re.compile(r"[^\s,.;:]+")


def _shift(rng: random.Random, text: str, sentence: Span, frags: tuple[Span, ...], coder: CoderProfile
           ) -> tuple[Span, ...]:
    if len(frags) > 1 and rng.random() < coder.merge_fragments_rate:
        frags = ((min(s for s, _ in frags), max(e for _, e in frags)),)
    if rng.random() >= coder.span_shift_rate:
        return frags
    s_start, s_end = sentence
    body = text[s_start:s_end].rstrip(".")
    words = [(s_start + m.start(), s_start + m.end()) for m in _WORD.finditer(body)]
    if not words:
        return frags
    start, end = frags[0][0], frags[-1][1]
    op = rng.random()
    if op < 0.35:  # one more word on the right
        after = [w for w in words if w[0] >= end]
        if after:
            end = after[0][1]
    elif op < 0.6:  # one word less on the left
        inside = [w for w in words if start <= w[0] and w[1] <= frags[0][1]]
        if len(inside) >= 2:
            start = inside[1][0]
    elif op < 0.8:  # one more word on the left
        before = [w for w in words if w[1] <= start]
        if before:
            start = before[-1][0]
    else:  # the whole sentence
        start, end = words[0][0], words[-1][1]
    if len(frags) > 1:
        first = (start, frags[0][1]) if start < frags[0][1] else frags[0]
        last = (frags[-1][0], end) if end > frags[-1][0] else frags[-1]
        return (first, *frags[1:-1], last)
    return ((start, end),) if start < end else frags


def _code_for(rng: random.Random, ann: _Ann, coder: CoderProfile, cfg: SynthConfig) -> str:
    entry = ann.entry
    if entry is None:
        return ann.code
    if ann.rfv_dep and rng.random() < coder.rfv_neglect_rate:
        if entry.unspec_sibling:
            return entry.unspec_sibling
        if entry.siblings:
            return rng.choice(entry.siblings)
    if entry.siblings and rng.random() < coder.sibling_rate:
        if entry.unspec_sibling and rng.random() < cfg.unspecified_sibling_share:
            return entry.unspec_sibling
        return rng.choice(entry.siblings)
    return ann.code


def _code(rng: random.Random, report: _Report, coder: CoderProfile, cfg: SynthConfig
          ) -> list[tuple[str, tuple[Span, ...]]]:
    out: list[tuple[str, tuple[Span, ...]]] = []
    for ann in report.truth:
        miss = coder.miss_rate + (coder.pair_miss_rate if ann.pair and ann is not report.truth[0] else 0.0)
        if rng.random() < miss:
            continue
        code = _code_for(rng, ann, coder, cfg)
        sentence = report.sentences[ann.sent]
        frags = _shift(rng, report.text, sentence, ann.frags, coder)
        out.append((code, frags))
        if ann.entry and ann.entry.siblings and rng.random() < coder.overcode_rate:
            extra = rng.choice(ann.entry.siblings)
            if extra != code:
                out.append((extra, frags))
    kind_factor = dict(cfg.distractor_code_factors)
    for ann in report.distractors:
        if rng.random() < coder.extra_rate * kind_factor.get(ann.kind, 1.0):
            out.append((ann.code, _shift(rng, report.text, report.sentences[ann.sent], ann.frags, coder)))
    return out


def _overlap(a: tuple[Span, ...], b: tuple[Span, ...]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def disagree(first: list[tuple[str, tuple[Span, ...]]], second: list[tuple[str, tuple[Span, ...]]]) -> bool:
    """Whether two coders' annotations of a report need adjudication.

    They disagree when an annotation of one has no overlapping annotation
    with the same code from the other, or when overlapping annotations carry
    different codes. Annotations are ``(code, fragments)`` pairs.
    """
    for mine, theirs in ((first, second), (second, first)):
        for code, frags in mine:
            overlapping = [c for c, f in theirs if _overlap(frags, f)]
            if code not in overlapping or any(c != code for c in overlapping):
                return True
    return False


def _senior(rng: random.Random, report: _Report, cfg: SynthConfig) -> list[tuple[str, tuple[Span, ...]]]:
    out = []
    for ann in report.truth:
        if rng.random() < cfg.senior_miss_rate:
            continue
        code = ann.code
        if ann.entry and ann.entry.siblings and rng.random() < cfg.senior_error_rate:
            code = rng.choice(ann.entry.siblings)
        out.append((code, ann.frags))
    return out


# ==========================================================================
# Files
# ==========================================================================


def _ann_text(text: str, anns: list[tuple[str, tuple[Span, ...]]], label: str) -> str:
    records: list[TextBound | Note] = []
    ordered = sorted(anns, key=lambda a: (a[1][0][0], a[1][-1][1], a[0]))
    for n, (code, frags) in enumerate(ordered, start=1):
        covered = " ".join(text[s:e] for s, e in frags)
        records.append(TextBound(f"T{n}", label, tuple(frags), covered))
        records.append(Note(f"#{n}", "AnnotatorNotes", f"T{n}", code))
    return format_ann(records)


def _write(path: Path, content: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(content)


def read_ann_codes(path: Path) -> list[str]:
    """Return the codes of the ``AnnotatorNotes`` lines of an ``.ann`` file, in file order."""
    codes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].startswith("AnnotatorNotes"):
                codes.append(parts[2].strip())
    return codes


def _round_day(cfg: SynthConfig, seed: int) -> date:
    if cfg.round_date:
        return date.fromisoformat(cfg.round_date)
    return date.fromisoformat(cfg.first_round_date) + timedelta(days=seed % 1096)


def _report_id(index: int, n_reports: int) -> str:
    return f"R{index + 1:0{max(6, len(str(n_reports)))}d}"


# worker state (set in the parent before fork, or by the initializer)
_STATE: dict = {}


def _init_worker(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)


def _run_chunk(bounds: tuple[int, int]) -> dict:
    cfg: SynthConfig = _STATE["cfg"]
    pool: _Pool = _STATE["pool"]
    tmp: Path = _STATE["tmp"]
    seed: int = _STATE["seed"]
    n_reports: int = _STATE["n_reports"]
    day: date = _STATE["day"]
    names = [c.name for c in cfg.coders]
    stats = {
        "meta": [], "codes": {}, "per_n": {}, "ann": dict.fromkeys(names, 0), "reports": dict.fromkeys(names, 0),
        "senior": 0, "truth": 0, "focus": 0, "pair": 0, "disc": 0, "rfv": 0, "smin": 10**9, "smax": 0,
    }
    for index in range(*bounds):
        rid = _report_id(index, n_reports)
        rng = random.Random(f"synth:{seed}:{index}")
        report = _Maker(pool, cfg, rng, day).report(rid)
        _write(tmp / "texts" / f"{rid}.txt", report.text)
        truth = [(a.code, a.frags) for a in report.truth]
        _write(tmp / "truth" / f"{rid}.ann", _ann_text(report.text, truth, cfg.label))
        chosen = sorted(rng.sample(range(len(cfg.coders)), cfg.coders_per_report))
        coded = []
        for ci in chosen:
            coder = cfg.coders[ci]
            anns = _code(rng, report, coder, cfg)
            coded.append(anns)
            _write(tmp / "coders" / coder.name / f"{rid}.ann", _ann_text(report.text, anns, cfg.label))
            stats["ann"][coder.name] += len(anns)
            stats["reports"][coder.name] += 1
        disputed = any(disagree(coded[i], coded[j]) for i in range(len(coded)) for j in range(i + 1, len(coded)))
        # the backlog draw happens only when asked for, so that default rounds keep their bytes
        if disputed and not (cfg.senior_backlog_rate and rng.random() < cfg.senior_backlog_rate):
            _write(tmp / "senior" / f"{rid}.ann", _ann_text(report.text, _senior(rng, report, cfg), cfg.label))
            stats["senior"] += 1
        stats["meta"].append(report.meta)
        codes = {a.code for a in report.truth}
        for code in codes:
            stats["codes"][code] = stats["codes"].get(code, 0) + 1
        stats["per_n"][len(codes)] = stats["per_n"].get(len(codes), 0) + 1
        stats["truth"] += len(report.truth)
        focus = {}
        for ann in report.truth:
            focus.setdefault(ann.sent, set()).add(ann.code)
        stats["focus"] += len(focus)
        stats["pair"] += sum(1 for c in focus.values() if len(c) >= 2)
        stats["disc"] += sum(1 for a in report.truth if len(a.frags) > 1)
        stats["rfv"] += sum(1 for a in report.truth if a.rfv_dep)
        stats["smin"] = min(stats["smin"], report.n_sentences)
        stats["smax"] = max(stats["smax"], report.n_sentences)
    return stats


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="report", desc="synth")


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _round_toml(cfg: SynthConfig, seed: int, n_reports: int, day: date) -> str:
    labels = ", ".join(_toml_str(x) for x in [cfg.label])
    return (
        f"# synthetic round written by hiericd_core.synth (seed {seed}, {n_reports} reports)\n"
        "[round]\n"
        f"id = {_toml_str(f'synth-{seed}-{n_reports}')}\n"
        f"date = {_toml_str(day.isoformat())}\n"
        f"language = {_toml_str(cfg.language)}\n"
        f"code_system = {_toml_str(cfg.code_system)}\n"
        "\n[codes]\n"
        'source = "note"\n'
        f"labels = [{labels}]\n"
    )


META_COLUMNS = ("report_id", "reason_for_visit", "specimen", "procedure_date", "patient_age", "patient_sex",
                "department")


def generate_round(out: Path, n_reports: int, seed: int, config: SynthConfig | None = None,
                   progress: bool = False) -> SynthSummary:
    """Write a synthetic coding round of ``n_reports`` reports into ``out``.

    Args:
        out: the round folder to create; it must not exist or be empty. The
            round is written next to it first and moved in place at the end.
        n_reports: number of reports.
        seed: the round's seed; same seed, same config → byte-identical files.
        config: the knobs (:class:`SynthConfig`); its ``n_reports`` and
            ``seed`` are ignored in favour of the arguments.
        progress: show a progress bar.

    Returns:
        A :class:`SynthSummary` of what was written.
    """
    cfg = config or SynthConfig()
    if n_reports < 1:
        raise ValueError("n_reports must be at least 1")
    if not 1 <= cfg.coders_per_report <= len(cfg.coders):
        raise ValueError("coders_per_report must be between 1 and the number of coders")
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for sub in ("texts", "truth", "senior", *(f"coders/{c.name}" for c in cfg.coders)):
            (tmp / sub).mkdir(parents=True)
        pool = _build_pool(cfg.n_codes, cfg.zipf_exponent, cfg.zipf_offset, cfg.pool_seed)
        day = _round_day(cfg, seed)
        state = dict(cfg=cfg, pool=pool, tmp=tmp, seed=seed, n_reports=n_reports, day=day)
        chunk = max(1, cfg.chunk_size)
        bounds = [(s, min(n_reports, s + chunk)) for s in range(0, n_reports, chunk)]
        workers = cfg.workers if cfg.workers is not None else min(2, os.cpu_count() or 1)
        bar = None
        results: list[dict] = []
        if workers <= 1 or len(bounds) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            _init_worker(state)
            bar = _bar(progress, n_reports)
            for b in bounds:
                results.append(_run_chunk(b))
                if bar:
                    bar.update(b[1] - b[0])
        else:
            _init_worker(state)  # inherited through fork: no pickling of the pool
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
                chunks = executor.map(_run_chunk, bounds)  # forks the workers
                bar = _bar(progress, n_reports)
                for b, result in zip(bounds, chunks, strict=True):
                    results.append(result)
                    if bar:
                        bar.update(b[1] - b[0])
        _STATE.clear()
        if bar:
            bar.close()
        # metadata and round.toml
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=META_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerows(result["meta"])
        _write(tmp / "metadata.csv", buffer.getvalue())
        _write(tmp / "round.toml", _round_toml(cfg, seed, n_reports, day))
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    names = [c.name for c in cfg.coders]
    codes: dict[str, int] = {}
    per_n: dict[int, int] = {}
    for result in results:
        for code, count in result["codes"].items():
            codes[code] = codes.get(code, 0) + count
        for k, count in result["per_n"].items():
            per_n[k] = per_n.get(k, 0) + count
    return SynthSummary(
        out=str(out),
        reports=n_reports,
        coders=names,
        annotations_per_coder={n: sum(r["ann"][n] for r in results) for n in names},
        reports_per_coder={n: sum(r["reports"][n] for r in results) for n in names},
        distinct_codes=len(codes),
        reports_per_n_codes=dict(sorted(per_n.items())),
        senior_reports=sum(r["senior"] for r in results),
        truth_annotations=sum(r["truth"] for r in results),
        focus_sentences=sum(r["focus"] for r in results),
        two_code_focus_sentences=sum(r["pair"] for r in results),
        discontinuous_annotations=sum(r["disc"] for r in results),
        rfv_dependent_annotations=sum(r["rfv"] for r in results),
        sentences_min=min(r["smin"] for r in results),
        sentences_max=max(r["smax"] for r in results),
        seconds=round(time.perf_counter() - started, 3),
    )


# ==========================================================================
# Agreement
# ==========================================================================


def coder_kappas(round_dir: Path) -> dict[str, dict[str, float]]:
    """Pairwise Cohen's kappa of the coders of a round on report × code presence.

    For each pair of coders, over the reports both coded: a binary matrix
    reports × codes of the round (every code any coder used), flattened
    (``flat``), and the mean of the per-code kappas over codes either coder
    used on those reports (``per_code``).
    """
    import numpy as np

    round_dir = Path(round_dir)
    coders = sorted(p.name for p in (round_dir / "coders").iterdir() if p.is_dir())
    sets = {c: {p.stem: set(read_ann_codes(p)) for p in sorted((round_dir / "coders" / c).glob("*.ann"))}
            for c in coders}
    vocab = sorted({code for c in coders for s in sets[c].values() for code in s})
    index = {code: i for i, code in enumerate(vocab)}
    out: dict[str, dict[str, float]] = {}
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            shared = sorted(set(sets[a]) & set(sets[b]))
            if not shared:
                continue
            ma = np.zeros((len(shared), len(vocab)), dtype=bool)
            mb = np.zeros_like(ma)
            for r, rid in enumerate(shared):
                ma[r, [index[c] for c in sets[a][rid]]] = True
                mb[r, [index[c] for c in sets[b][rid]]] = True
            out[f"{a}-{b}"] = {"reports": float(len(shared)), "flat": _kappa(ma.ravel(), mb.ravel()),
                               "per_code": _per_code_kappa(ma, mb)}
    return out


def _kappa(x, y) -> float:
    import numpy as np

    n = x.size
    both = float(np.count_nonzero(x & y))
    px, py = np.count_nonzero(x) / n, np.count_nonzero(y) / n
    po = (both + (n - np.count_nonzero(x | y))) / n
    pe = px * py + (1 - px) * (1 - py)
    return float((po - pe) / (1 - pe)) if pe < 1 else 1.0


def _per_code_kappa(ma, mb) -> float:
    import numpy as np

    n = ma.shape[0]
    both = (ma & mb).sum(0).astype(float)
    sa, sb = ma.sum(0).astype(float), mb.sum(0).astype(float)
    used = (sa + sb) > 0
    po = (both + n - (sa + sb - both)) / n
    pe = (sa / n) * (sb / n) + (1 - sa / n) * (1 - sb / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(pe < 1, (po - pe) / (1 - pe), 1.0)
    return float(k[used].mean()) if used.any() else float("nan")
