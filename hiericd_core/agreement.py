"""Inter-annotator agreement of a coding round; every figure names its unit.

A kappa means nothing without the thing that was rated, so the report is
organised by unit:

==================  ==========================================================
``report_code``     report × code presence: for every code of the round's
                    code set (the union of the codes any coder used), did the
                    coder use it in the report? The headline. Senior figures
                    add the codes only the senior used, so that coder figures
                    do not move when the senior adjudicates.
``sentence_focus``  sentence × focus: does the sentence hold (overlap) an
                    annotation of the coder?
``token_code``      token × code: the code of the annotation covering the
                    token (the shortest one, ties by code), or none.
==================  ==========================================================

Sentences and tokens come from ``segmenter(text)`` and ``tokenizer(text)``
(sorted ``(start, end)`` pairs); the defaults are
:func:`hiericd_core.segment.rule_sentences` (the fast rule backend of the
segmenter: a line break or an end mark before a capital ends a sentence, never
an abbreviation)
and :func:`~hiericd_core.spanagree.word_tokens`, until scispaCy's take over.

Figures of each unit:

* ``pairs``: Cohen's kappa, observed agreement, PABAK ``(k·Po − 1)/(k − 1)``
  and Gwet's AC1 for every coder pair, on the reports both coded
  (``k`` = the unit's number of categories: 2, or 1 + codes for tokens);
  ``n_items`` counts the pair's items (reports both coded × items per report);
* ``senior``: the same for the senior against each coder, on the reports
  both annotated;
* ``fleiss``: Fleiss' kappa over the coders. Fleiss assumes the same number of
  raters per item, so it is computed over the reports coded by the modal
  number of coders (the most common count among reports with two or more;
  ties go to the larger count); the other reports are left out, and
  ``note`` says how many. Krippendorff's alpha uses every report;
* ``alpha``: Krippendorff's alpha (nominal) over the coders, missing ratings
  allowed (reports with one coder carry no pairable value);
* ``per_code`` (``report_code`` only): for each code with at least
  ``min_code_support`` positive coder ratings, Fleiss' kappa of report ×
  presence of that code (same reports as ``fleiss``; with two coders per
  report it is Scott's pi, the pooled two-rater kappa), its CI, observed
  agreement and Krippendorff's alpha (all reports).

Confidence intervals: percentile bootstrap (2.5 %, 97.5 %) over the round's
reports, ``bootstrap`` replicates from ``seed``
(:func:`~hiericd_core.coefficients.bootstrap_draws`).
All figures share each replicate's draw; a pair uses the drawn reports it
shares. Replicates where a figure is undefined are left out.

``warnings`` (plain sentences for the coding lead): pairs sharing fewer than
``min_pair_reports`` reports; codes below ``min_code_support`` (no per-code
kappa); every kappa, Fleiss or alpha below ``kappa_threshold``, said as a
kappa paradox (read PABAK and AC1) when observed agreement is at least
``paradox_observed``; the codes with per-code kappa below the threshold.

The JSON (every float rounded to ``decimals``, ``None`` where undefined)::

    {"round_id": str, "coders": [str], "n_reports": int, "senior_reports": int,
     "code_set_size": int, "senior_only_codes": int, "config": {...AgreementConfig...},
     "units": {
       "report_code": {
         "unit": "report × code presence", "status": "ok" | "needs at least two coders per report",
         "n_reports": int, "n_items": int, "n_categories": int,
         "pairs":  [{"a", "b", "n_reports", "n_items", "kappa", "ci95": [lo, hi] | None,
                     "observed", "pabak", "ac1", "status"}],          # sorted by (a, b)
         "senior": [{"a": "senior", "b": coder, ...same keys...}],    # sorted by b
         "fleiss": {"value", "ci95", "observed", "n_items", "n_reports", "raters_per_report",
                    "status", "note"},
         "alpha":  {"value", "ci95", "n_items", "n_reports", "status", "note"},
         "per_code": [{"code", "support", "kappa", "ci95", "observed", "alpha"}],  # sorted by code
         "codes_below_support": int},
       "sentence_focus": {...same, without per_code...},
       "token_code": {...same, without per_code...}},
     "span_f1": {"label": "code" | "label", "status",
                 "instance": SpanAgreement.to_dict(documents=False), "token": ...},
     "warnings": [str]}

Everything is computed from per-report sufficient statistics (agreement
counts, category margins) in sparse form, so a 39,000-report round with
~950 codes never materialises the report × code matrix; the bootstrap sums
those statistics under report weights with one matrix product per chunk.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from hiericd_core.coefficients import (
    WeightedColumns,
    bootstrap_draws,
    draw_weights,
    fleiss_kappa,
    krippendorff_alpha,
    safe_div,
    two_rater,
)
from hiericd_core.segment import rule_sentences
from hiericd_core.spanagree import Splitter, corpus_spans, expand, round_span_table, span_agreement, word_tokens

if TYPE_CHECKING:
    from hiericd_core.rounds import Round

SENIOR = "senior"  # the senior coder's name in the figures (rounds.SENIOR)
NEEDS_TWO = "needs at least two coders per report"
UNITS = {
    "report_code": "report × code presence",
    "sentence_focus": "sentence × focus (the sentence holds an annotation of the coder)",
    "token_code": "token × code (code of the annotation covering the token, or none)",
}


@dataclass(frozen=True)
class AgreementConfig:
    """Settings of the agreement report."""

    min_code_support: int = 5  # positive coder ratings a code needs for its own kappa
    bootstrap: int = 1000  # bootstrap replicates; 0 turns confidence intervals off
    seed: int = 0
    kappa_threshold: float = 0.6  # kappa, alpha and AC1 below it are flagged
    min_pair_reports: int = 30  # pairs sharing fewer reports are flagged
    paradox_observed: float = 0.9  # observed agreement this high with a low kappa: kappa paradox
    span_label: str = "code"  # span F1 compares "code"s or BRAT entity "label"s
    decimals: int = 6



# --------------------------------------------------------------------------- the round as arrays


@dataclass(frozen=True, eq=False)
class _Flat:
    """The round's annotations as arrays, one row per fragment; rater ``len(coders)`` is the senior."""

    coders: tuple[str, ...]
    codes: tuple[str, ...]
    texts: list[str]
    rated: np.ndarray  # (reports, coders + 1) the rater annotated the report
    rater: np.ndarray  # (fragments,)
    report: np.ndarray
    start: np.ndarray
    end: np.ndarray
    code: np.ndarray  # index into codes
    length: np.ndarray  # length of the whole annotation (innermost wins on tokens)
    coder_codes: int  # codes the coders used (the rest only the senior used)

    @property
    def senior(self) -> int:
        return len(self.coders)


def _flatten(round: Round) -> _Flat:
    reports = [round.reports[k] for k in sorted(round.reports)]
    coders = tuple(sorted(set(round.coders) | {c for r in reports for c in r.coders}))
    index = {c: i for i, c in enumerate(coders)}
    rated = np.zeros((len(reports), len(coders) + 1), dtype=bool)
    code_id: dict[str, int] = {}
    rows: list[tuple[int, int, int, int, int, int]] = []  # rater, report, start, end, code id, length
    for r, report in enumerate(reports):
        sources = [(index[c], anns) for c, anns in report.coders.items()]
        if report.senior is not None:
            sources.append((len(coders), report.senior))
        for who, anns in sources:
            rated[r, who] = True
            for a in anns:
                cid = code_id.setdefault(a.code, len(code_id))
                if len(a.fragments) == 1:
                    ((s, e),) = a.fragments
                    rows.append((who, r, s, e, cid, e - s))
                else:
                    length = a.end - a.start
                    rows.extend((who, r, s, e, cid, length) for s, e in a.fragments)
    codes = tuple(sorted(code_id))
    rank = {c: i for i, c in enumerate(codes)}
    sorted_id = np.array([rank[c] for c in code_id], dtype=np.int64)  # insertion id -> sorted id
    who, rep, start, end, cid, length = np.array(rows, dtype=np.int64).reshape(-1, 6).T
    code = sorted_id[cid]
    coder_codes = len(np.unique(code[who < len(coders)]))
    return _Flat(coders, codes, [r.text for r in reports], rated, who, rep, start, end, code, length, coder_codes)


@dataclass(frozen=True, eq=False)
class _Ratings:
    """One unit's ratings: every (item, rater) of a rated report is category 0 unless listed here."""

    n_items: np.ndarray  # (reports,) items per report, for the coders' figures
    n_categories: int  # k of the coders' figures, category 0 ("absent", "none") included
    senior_items: np.ndarray  # the same for the senior's figures (the senior may use codes no coder used)
    senior_categories: int
    width: int  # 1 + the largest category listed
    rater: np.ndarray  # (listed,) unique (rater, key)
    report: np.ndarray
    key: np.ndarray  # global item index
    category: np.ndarray  # >= 1


def _listed(rater, key, category, report, n_raters) -> tuple[np.ndarray, ...]:
    """Keep the first row of each (rater, key); rows come sorted by preference."""
    _, first = np.unique(key * n_raters + rater, return_index=True)
    return rater[first], report[first], key[first], category[first]


def _report_code(flat: _Flat) -> _Ratings:
    n_codes = len(flat.codes)
    key = flat.report * n_codes + flat.code
    rater, report, key, category = _listed(flat.rater, key, np.ones_like(key), flat.report, flat.senior + 1)
    n_reports = len(flat.texts)
    return _Ratings(np.full(n_reports, flat.coder_codes), 2, np.full(n_reports, n_codes), 2, 2,
                    rater, report, key, category)


def _span_unit(flat: _Flat, splitter: Splitter, by_code: bool) -> _Ratings:
    spans = corpus_spans(flat.texts, splitter)
    owner, item = expand(*spans.overlapping(flat.report, flat.start, flat.end))
    rater, report = flat.rater[owner], flat.report[owner]
    if by_code:  # the shortest covering annotation names the token's code; ties go to the first code
        category = flat.code[owner] + 1
        order = np.lexsort((category, flat.length[owner], item * (flat.senior + 1) + rater))
        rater, item, category, report = rater[order], item[order], category[order], report[order]
    else:
        category = np.ones_like(item)
    rater, report, item, category = _listed(rater, item, category, report, flat.senior + 1)
    k, senior_k = (flat.coder_codes + 1, len(flat.codes) + 1) if by_code else (2, 2)
    return _Ratings(spans.counts, k, spans.counts, senior_k, senior_k, rater, report, item, category)


# --------------------------------------------------------------------------- figures of one unit


@dataclass
class _Figure:
    """A figure: how to compute it from the sums, and its bootstrap replicates."""

    compute: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
    main: str
    replicates: list[np.ndarray] = field(default_factory=list)
    point: dict[str, np.ndarray] = field(default_factory=dict)


def _pair_figure(cols: WeightedColumns, u: _Ratings, rated: np.ndarray, a: int, b: int) -> tuple[_Figure, int, int]:
    both = rated[:, a] & rated[:, b]
    in_a = np.flatnonzero((u.rater == a) & both[u.report])
    in_b = np.flatnonzero((u.rater == b) & both[u.report])
    _, ia, ib = np.intersect1d(u.key[in_a], u.key[in_b], assume_unique=True, return_indices=True)
    same = u.category[in_a[ia]] == u.category[in_b[ib]]
    size = len(rated)
    senior = a == rated.shape[1] - 1
    n = np.where(both, u.senior_items if senior else u.n_items, 0)
    k = u.senior_categories if senior else u.n_categories

    def count(rows: np.ndarray) -> np.ndarray:
        return np.bincount(u.report[rows], minlength=size)

    # items outside both lists agree (category 0); listed by both agree when the category is the same
    agree = n - count(in_a) - count(in_b) + count(in_a[ia]) + count(in_a[ia][same])
    dense = cols.dense(n, agree)
    ma = cols.counts(u.report[in_a], u.category[in_a] - 1, np.ones(len(in_a)), u.width - 1)
    mb = cols.counts(u.report[in_b], u.category[in_b] - 1, np.ones(len(in_b)), u.width - 1)

    def compute(d: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        n_sum, agree_sum = d[:, dense].T
        return two_rater(n_sum, agree_sum, cols.take(ma, d, s), cols.take(mb, d, s), k)

    return _Figure(compute, "kappa"), int(both.sum()), int(n.sum())


@dataclass(frozen=True, eq=False)
class _Multi:
    """The coders' ratings per item, for Fleiss and Krippendorff."""

    raters: np.ndarray  # (reports,) coders who coded the report
    modal: int  # modal number of coders among reports with two or more (0: none)
    item: np.ndarray  # (cells,) touched items × category with count
    report: np.ndarray
    category: np.ndarray
    count: np.ndarray
    within: np.ndarray  # (reports,) Σ over items and categories of n(n - 1), category 0 included


def _multi(u: _Ratings, rated: np.ndarray, n_coders: int) -> _Multi:
    raters = rated[:, :n_coders].sum(axis=1)
    pairable = raters[raters >= 2]
    modal = 0
    if len(pairable):
        values, freq = np.unique(pairable, return_counts=True)
        modal = int(values[freq == freq.max()].max())
    rows = np.flatnonzero(u.rater < n_coders)
    k = u.width
    cell, first, count = np.unique(u.key[rows] * k + u.category[rows], return_index=True, return_counts=True)
    item, category, report = cell // k, cell % k, u.report[rows[first]]
    items, inverse = np.unique(item, return_inverse=True)
    item_report = report[np.unique(inverse, return_index=True)[1]]
    listed = np.bincount(inverse, count, minlength=len(items))
    zero = raters[item_report] - listed
    touched_within = np.bincount(inverse, count * (count - 1), minlength=len(items)) + zero * (zero - 1)
    size = len(rated)
    untouched = u.n_items - np.bincount(item_report, minlength=size)
    within = untouched * raters * (raters - 1) + np.bincount(item_report, touched_within, minlength=size)
    return _Multi(raters, modal, item, report, category, count, within)


def _fleiss_figure(cols: WeightedColumns, u: _Ratings, m: _Multi) -> _Figure:
    keep = m.raters == m.modal
    dense = cols.dense(np.where(keep, u.n_items, 0), np.where(keep, m.within / max(m.modal * (m.modal - 1), 1), 0))
    rows = keep[m.report]
    counts = cols.counts(m.report[rows], m.category[rows] - 1, m.count[rows], u.width - 1)

    def compute(d: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        n_items, sum_p = d[:, dense].T
        return {"value": fleiss_kappa(n_items, sum_p, cols.take(counts, d, s), m.modal),
                "observed": safe_div(sum_p, n_items)}

    return _Figure(compute, "value")


def _alpha_figure(cols: WeightedColumns, u: _Ratings, m: _Multi) -> _Figure:
    keep = m.raters >= 2
    dense = cols.dense(np.where(keep, u.n_items * m.raters, 0),
                       np.where(keep, m.within / np.maximum(m.raters - 1, 1), 0))
    rows = keep[m.report]
    counts = cols.counts(m.report[rows], m.category[rows] - 1, m.count[rows], u.width - 1)

    def compute(d: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        n, within = d[:, dense].T
        return {"value": krippendorff_alpha(n, within, cols.take(counts, d, s))}

    return _Figure(compute, "value")


def _per_code_figure(cols: WeightedColumns, u: _Ratings, m: _Multi, n_codes: int,
                     codes: np.ndarray) -> tuple[_Figure, dict[str, np.ndarray]]:
    """Fleiss' kappa per code (report × presence), over the modal-rater reports; alpha as a point value."""
    column = np.full(n_codes, -1)
    column[codes] = np.arange(len(codes))
    code = column[m.item % n_codes]
    raters = m.raters[m.report]
    ones, zeros = m.count, raters - m.count
    pair_sum = ones * (ones - 1) + zeros * (zeros - 1)  # Σ n(n - 1) over both categories of the item
    keep = (m.raters == m.modal)[m.report] & (code >= 0)
    modal_pairs = max(m.modal * (m.modal - 1), 1)
    n_items = cols.dense((m.raters == m.modal).astype(float))
    positives = cols.counts(m.report[keep], code[keep], ones[keep], len(codes))
    # Σ n(n - 1) - m(m - 1) is an integer: exact in the float32 bootstrap; P_i - 1 is it over m(m - 1)
    deviation = cols.counts(m.report[keep], code[keep], pair_sum[keep] - modal_pairs, len(codes))

    def compute(d: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        n = d[:, n_items]
        sum_p = n + cols.take(deviation, d, s) / modal_pairs
        p = cols.take(positives, d, s) / np.where(n > 0, n * m.modal, 1)
        expected = p**2 + (1 - p) ** 2
        return {"kappa": safe_div(safe_div(sum_p, n) - expected, 1 - expected), "observed": safe_div(sum_p, n)}

    # Krippendorff's alpha per code, all reports with two or more coders (no bootstrap)
    pairable = m.raters >= 2
    rows = pairable[m.report] & (code >= 0)
    n = float((m.raters * pairable).sum())
    within = n + np.bincount(code[rows], pair_sum[rows] / (raters[rows] - 1) - raters[rows], minlength=len(codes))
    ones_sum = np.bincount(code[rows], ones[rows], minlength=len(codes))
    alpha = krippendorff_alpha(np.full(len(codes), n), within, ones_sum[:, None])
    return _Figure(compute, "kappa"), {"alpha": alpha}


# --------------------------------------------------------------------------- the report


def agreement(round: Round, config: AgreementConfig = AgreementConfig(), segmenter: Splitter | None = None,
              tokenizer: Splitter | None = None) -> dict:
    """Compute the round's agreement report (structure in the module docstring).

    Args:
        round: a loaded round.
        config: thresholds, bootstrap size and seed.
        segmenter: ``text -> [(start, end)]`` sentences; default :func:`~hiericd_core.segment.rule_sentences`.
        tokenizer: ``text -> [(start, end)]`` tokens; default
            :func:`~hiericd_core.spanagree.word_tokens`.

    Returns:
        JSON-ready dict; figures that cannot be computed are ``None`` with a ``status``.
    """
    flat = _flatten(round)
    n_reports, n_coders = len(flat.texts), len(flat.coders)
    units = {
        "report_code": _report_code(flat),
        "sentence_focus": _span_unit(flat, segmenter or rule_sentences, by_code=False),
        "token_code": _span_unit(flat, tokenizer or word_tokens, by_code=True),
    }
    cols = WeightedColumns(n_reports)
    plan: dict[str, dict] = {}
    senior_pairs = [(flat.senior, c) for c in range(n_coders) if (flat.rated[:, flat.senior] & flat.rated[:, c]).any()]
    for name, u in units.items():
        pairs = {(a, b): _pair_figure(cols, u, flat.rated, a, b)
                 for a, b in [*combinations(range(n_coders), 2), *senior_pairs]}
        m = _multi(u, flat.rated, n_coders)
        entry = {"u": u, "m": m, "pairs": pairs}
        if m.modal:
            entry["fleiss"] = _fleiss_figure(cols, u, m)
            entry["alpha"] = _alpha_figure(cols, u, m)
        if name == "report_code":
            coder_rows = u.rater < n_coders
            support = np.bincount(u.key[coder_rows] % max(len(flat.codes), 1), minlength=len(flat.codes))
            supported = np.flatnonzero(support >= config.min_code_support)
            entry["support"], entry["supported"] = support, supported
            if m.modal and len(supported):
                entry["per_code"] = _per_code_figure(cols, u, m, len(flat.codes), supported)
        plan[name] = entry
    cols.freeze()

    figures = [f for e in plan.values() for f in _figures_of(e)]
    d, s = cols.sums(np.ones((n_reports, 1)))
    for figure in figures:
        figure.point = figure.compute(d, s)
    if config.bootstrap > 0 and n_reports:
        for draws in bootstrap_draws(n_reports, config.bootstrap, config.seed):
            d, s = cols.sums(draw_weights(draws), exact=False)
            for figure in figures:
                figure.replicates.append(figure.compute(d, s)[figure.main])

    messages: list[str] = []
    out_units = {name: _unit_json(name, entry, flat, config, messages) for name, entry in plan.items()}
    return {
        "round_id": round.id,
        "coders": list(flat.coders),
        "n_reports": n_reports,
        "senior_reports": int(flat.rated[:, flat.senior].sum()),
        "code_set_size": flat.coder_codes,
        "senior_only_codes": len(flat.codes) - flat.coder_codes,
        "config": asdict(config),
        "units": out_units,
        "span_f1": _span_f1(round, config, n_coders, flat),
        "warnings": _pair_warnings(plan["report_code"], flat, config) + messages,
    }


def _figures_of(entry: dict) -> Iterator[_Figure]:
    yield from (f for f, _, _ in entry["pairs"].values())
    for key in ("fleiss", "alpha"):
        if key in entry:
            yield entry[key]
    if "per_code" in entry:
        yield entry["per_code"][0]


def _ci(figure: _Figure) -> np.ndarray | None:
    """Percentile 95% interval, ``(2, values)``; replicates where the figure is undefined are left out."""
    if not figure.replicates:
        return None
    values = np.concatenate(figure.replicates, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns give nan bounds, reported as None
        return np.nanpercentile(values.reshape(len(values), -1), [2.5, 97.5], axis=0)


class _Json:
    def __init__(self, decimals: int):
        self.decimals = decimals

    def num(self, x) -> float | None:
        x = float(x)
        return round(x, self.decimals) if np.isfinite(x) else None

    def ci(self, bounds: np.ndarray | None, i: int = 0) -> list[float | None] | None:
        if bounds is None or not np.all(np.isfinite(bounds[:, i])):
            return None
        return [self.num(bounds[0, i]), self.num(bounds[1, i])]


def _unit_json(name: str, entry: dict, flat: _Flat, config: AgreementConfig, messages: list[str]) -> dict:
    u, m, fmt = entry["u"], entry["m"], _Json(config.decimals)
    names = (*flat.coders, SENIOR)
    threshold = config.kappa_threshold

    def flag(who: str, what: str, value: float | None, observed: float | None, also: str = "") -> None:
        if value is None or value >= threshold:
            return
        if observed is not None and observed >= config.paradox_observed:
            messages.append(f"{name}: {who}: observed agreement {observed:.3f} but {what} {value:.3f}: kappa "
                            f"paradox (skewed prevalence), not necessarily poor agreement{also}")
        else:
            messages.append(f"{name}: {who}: {what} {value:.3f} is below {threshold}")

    pairs, senior = [], []
    for (a, b), (figure, n_shared, n_items) in entry["pairs"].items():
        row = {"a": names[a], "b": names[b], "n_reports": n_shared, "n_items": n_items}
        values = {k: fmt.num(v[0]) for k, v in figure.point.items()}
        status = "ok"
        if n_shared == 0:
            status = "no reports coded by both"
        elif values["kappa"] is None:
            status = "kappa undefined: both gave a single category throughout"
        row.update(kappa=values["kappa"], ci95=fmt.ci(_ci(figure)), observed=values["observed"],
                   pabak=values["pabak"], ac1=values["ac1"], status=status)
        (senior if a == flat.senior else pairs).append(row)
        if n_shared:
            also = "" if row["pabak"] is None or row["ac1"] is None else (
                f"; read PABAK {row['pabak']:.3f} and AC1 {row['ac1']:.3f}")
            flag(f"{row['a']}–{row['b']}", "kappa", row["kappa"], row["observed"], also)
    senior.sort(key=lambda r: r["b"])

    ok = bool(m.modal)
    left_out = int(((m.raters >= 2) & (m.raters != m.modal)).sum())
    fleiss = {"value": None, "ci95": None, "observed": None, "n_items": 0, "n_reports": 0,
              "raters_per_report": m.modal or None, "status": NEEDS_TWO, "note": ""}
    alpha = {"value": None, "ci95": None, "n_items": 0, "n_reports": 0, "status": NEEDS_TWO,
             "note": "nominal; every report with two or more coders; reports with one coder carry no pairable value"}
    if ok:
        keep = m.raters == m.modal
        figure = entry["fleiss"]
        fleiss.update(value=fmt.num(figure.point["value"][0]), ci95=fmt.ci(_ci(figure)),
                      observed=fmt.num(figure.point["observed"][0]), n_items=int(u.n_items[keep].sum()),
                      n_reports=int(keep.sum()), status="ok",
                      note=f"over the {int(keep.sum())} reports coded by the modal number of coders ({m.modal}); "
                           f"{left_out} reports with another number of coders are left out (alpha uses them)")
        pairable = m.raters >= 2
        figure = entry["alpha"]
        alpha.update(value=fmt.num(figure.point["value"][0]), ci95=fmt.ci(_ci(figure)),
                     n_items=int(u.n_items[pairable].sum()), n_reports=int(pairable.sum()), status="ok")
        flag("Fleiss", "kappa", fleiss["value"], fleiss["observed"])
        flag("Krippendorff", "alpha", alpha["value"], None)

    out = {"unit": UNITS[name], "status": "ok" if ok else NEEDS_TWO, "n_reports": len(flat.texts),
           "n_items": int(u.n_items.sum()), "n_categories": u.n_categories,
           "pairs": pairs, "senior": senior, "fleiss": fleiss, "alpha": alpha}
    if name == "report_code":
        out["per_code"] = _per_code_json(entry, flat, config, fmt, messages)
        support = entry["support"]
        out["codes_below_support"] = int(((support > 0) & (support < config.min_code_support)).sum())
        rare = out["codes_below_support"]
        if rare:
            messages.append(f"report_code: {rare} of {flat.coder_codes} codes have fewer than "
                            f"{config.min_code_support} positive ratings; their kappa would be unstable "
                            "and is not given")
    return out


def _per_code_json(entry: dict, flat: _Flat, config: AgreementConfig, fmt: _Json, messages: list[str]) -> list:
    if "per_code" not in entry:
        return []
    figure, extra = entry["per_code"]
    bounds = _ci(figure)
    rows = []
    for i, c in enumerate(entry["supported"]):
        rows.append({"code": flat.codes[c], "support": int(entry["support"][c]),
                     "kappa": fmt.num(figure.point["kappa"][0, i]), "ci95": fmt.ci(bounds, i),
                     "observed": fmt.num(figure.point["observed"][0, i]), "alpha": fmt.num(extra["alpha"][i])})
    low = sorted((r for r in rows if r["kappa"] is not None and r["kappa"] < config.kappa_threshold),
                 key=lambda r: (r["kappa"], r["code"]))
    if low:
        shown = ", ".join(f"{r['code']} ({r['kappa']:.2f})" for r in low[:10])
        more = f" and {len(low) - 10} more" if len(low) > 10 else ""
        messages.append(f"report_code: {len(low)} of {len(rows)} codes have kappa below "
                        f"{config.kappa_threshold}: {shown}{more}")
    return rows


def _pair_warnings(entry: dict, flat: _Flat, config: AgreementConfig) -> list[str]:
    names = (*flat.coders, SENIOR)
    out = []
    for (a, b), (_, n_shared, _) in entry["pairs"].items():
        if 0 < n_shared < config.min_pair_reports:
            out.append(f"{names[a]}–{names[b]}: only {n_shared} reports coded by both "
                       f"(fewer than {config.min_pair_reports}); their agreement figures are unreliable")
    if not entry["m"].modal:
        out.append(f"no report has two coders: kappa, Fleiss and alpha {NEEDS_TWO}")
    return out


def _span_f1(round: Round, config: AgreementConfig, n_coders: int, flat: _Flat) -> dict:
    if not (flat.rated[:, :n_coders].sum(axis=1) >= 2).any():
        return {"label": config.span_label, "status": NEEDS_TWO, "instance": None, "token": None}
    table = round_span_table(round, config.span_label)
    return {
        "label": config.span_label,
        "status": "ok",
        **{mode: span_agreement(table, mode).to_dict(config.decimals, documents=False)
           for mode in ("instance", "token")},
    }
