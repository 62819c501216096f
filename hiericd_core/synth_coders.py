"""Simulated coders and senior: how each annotates a synthetic report.

A coder has habits (:class:`CoderProfile`): misses, sibling confusions,
coding distractors, moving span boundaries. The senior annotates disputed
reports, mostly right.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hiericd_core.synth import SynthConfig
    from hiericd_core.synth_report import Mention, SynthReport

__all__ = ["CoderProfile", "adjudicate", "code_report", "disagree"]

Span = tuple[int, int]


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


def _code_for(rng: random.Random, ann: Mention, coder: CoderProfile, cfg: SynthConfig) -> str:
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


def code_report(rng: random.Random, report: SynthReport, coder: CoderProfile, cfg: SynthConfig
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


def adjudicate(rng: random.Random, report: SynthReport, cfg: SynthConfig) -> list[tuple[str, tuple[Span, ...]]]:
    out = []
    for ann in report.truth:
        if rng.random() < cfg.senior_miss_rate:
            continue
        code = ann.code
        if ann.entry and ann.entry.siblings and rng.random() < cfg.senior_error_rate:
            code = rng.choice(ann.entry.siblings)
        out.append((code, ann.frags))
    return out
