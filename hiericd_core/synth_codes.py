"""The code universe of synthetic rounds: real billable ICD-10-CM codes of pathology chapters.

Codes are ranked by a pathology weight (``synth_vocab``) and drawn with a
long-tailed (Zipf) probability; each code's tabular description is parsed into
the morphology, site and laterality that reports will talk about.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from hiericd_core import icd
from hiericd_core import synth_vocab as V

__all__ = ["CodeEntry", "Pool", "build_pool"]


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
class Pool:
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
def build_pool(n_codes: int, exponent: float, offset: float, pool_seed: int) -> Pool:
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
    return Pool(
        entries=tuple(entries),
        cum=tuple(cum),
        by_organ={k: (tuple(v[0]), tuple(v[1])) for k, v in sorted(by_organ.items())},
    )
