"""Metrics of the paper's three stages, end to end, and of the attention evidence.

Every function takes plain data (lists, sets, numpy arrays) and returns a
small frozen record; none reads files or knows a model. The definitions,
with ``P`` a predicted code set and ``G`` a gold one:

* **Ratios with an empty denominator** take ``zero_division`` (default 0),
  the convention of scikit-learn's ``precision_recall_fscore_support``.
  F1 is ``2·tp / (2·tp + fp + fn)``, which equals the harmonic mean of P
  and R whenever both are defined.
* **Tagger** (paper Table 3), over sentences, focus (1) vs non-focus (0):
  ``focus`` is P/R/F1 of the focus class; ``macro`` is the unweighted mean
  of the per-class P/R/F1 of both classes; ``micro`` pools both classes,
  so P = R = F1 = accuracy.
* **Classifier** (paper Table 4), over classifier rows (single-code focus
  sentences in the label space): accuracy; macro F1 = unweighted mean of the
  per-code F1 over the codes in gold ∪ predicted (or ``labels``); weighted
  F1 = the per-code F1 weighted by gold support.
* **End to end** (paper Table 5), over the reports of a split, against the
  full gold code set (codes outside the label space stay in ``G`` and count
  as misses):

  - subset accuracy = mean over reports of ``[P == G]``;
  - micro P = Σ|P∩G| / Σ|P|, micro R = Σ|P∩G| / Σ|G|,
    micro F1 = 2·Σ|P∩G| / (Σ|P| + Σ|G|);
  - instance (example-based) P = mean over reports of |P∩G| / |P|,
    R = mean of |P∩G| / |G|, F1 = mean of 2·|P∩G| / (|P| + |G|) — a mean of
    per-report F1, not the harmonic mean of the two means (scikit-learn's
    ``average="samples"``). An empty ``P`` gives that report P =
    ``zero_division``; an empty ``G`` gives R = ``zero_division``; both empty
    give F1 = ``zero_division`` too (yet count as an exact match for subset
    accuracy). A report absent from the predictions is predicted empty.
* **Ranked codes** (CodiEsp's task metric), over ranked code lists per
  report, two figures that must not be confused:

  - ``map`` is trec_eval's mean average precision (evaluated with ``-c``):
    for each gold report with at least one gold code, AP = (Σ over the ranks
    k where the k-th returned code is a gold code of precision@k) / |G|;
    a gold report with no ranked codes scores 0; MAP is the mean over those
    gold reports. Reports without gold codes are left out (AP has no
    relevant code to find), as are ranked reports absent from the gold
    (trec_eval evaluates the qrels' queries). Appending codes to a list
    never lowers its AP, so the figure rewards long lists of candidates.
  - ``map_codiesp`` is what CodiEsp's official evaluation script prints,
    trectools 0.0.50's ``TrecEval(run, qrels).get_map(trec_eval=False)``
    after the script's own formatting: see :func:`codiesp_map` for how it
    differs (the submitted order is ignored, gold reports missing from the
    run are skipped, run reports missing from the gold count as 0). As the
    order is ignored, it is computed on each system's predicted codes (what
    ``hiericd predict`` writes); a ``--ranked K`` file is scored by its first
    K codes as a set. It grows with longer candidate lists while their
    precision holds up, so settings are never tuned on it alone.
* **Evidence plausibility** (MDACE / PLM-ICD style), over classifier rows,
  each a pair (attention weights, coders' phrase mask) on the same tokens:

  - the *selected* tokens are the ``k`` highest weights (ties broken by
    position, earlier first) or, with ``threshold``, every token whose weight
    is ≥ the threshold; token P/R/F1 of the selection against the mask are
    averaged over rows (``macro``) and pooled over all tokens (``micro``);
  - AUPRC is average precision, AP = Σₙ (Rₙ − Rₙ₋₁) · Pₙ over the distinct
    weights taken as thresholds from high to low (no interpolation, tied
    weights enter together: scikit-learn's ``average_precision_score``);
    averaged over rows with at least one phrase token (``auprc_macro``) and
    computed once over all tokens pooled (``auprc_micro``, weights of
    different rows compared directly).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CodeSets = Mapping[str, Iterable[str]]  # report_id -> codes
Rankings = Mapping[str, Sequence[str]]  # report_id -> codes, best first
CODIESP_DEPTH = 1000  # trectools' default evaluation depth, which the CodiEsp script keeps


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1."""

    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class TaggerScores:
    """Focus-sentence tagging over sentences (paper Table 3)."""

    focus: PRF
    macro: PRF
    micro: PRF
    sentences: int
    gold_focus: int
    predicted_focus: int


@dataclass(frozen=True)
class ClassifierScores:
    """Single-code classification over classifier rows (paper Table 4)."""

    accuracy: float
    macro_f1: float
    weighted_f1: float
    rows: int
    labels: int


@dataclass(frozen=True)
class EndToEndScores:
    """Report-level coding against the full gold code sets (paper Table 5)."""

    subset_accuracy: float
    micro: PRF
    instance: PRF
    reports: int
    gold_codes: int
    predicted_codes: int
    gold_in_label_space: float | None  # share of gold codes a label-space model can reach
    map: float | None = None  # trec_eval MAP of the ranked codes (None: no ranking given)
    map_codiesp: float | None = None  # the figure CodiEsp's script prints (see codiesp_map)


@dataclass(frozen=True)
class EvidenceScores:
    """Attention weights against the coders' phrase tokens."""

    macro: PRF
    micro: PRF
    auprc_macro: float
    auprc_micro: float
    rows: int
    rows_without_phrase: int  # left out of auprc_macro (AP is undefined without a positive)
    selection: str  # "top-5" or "weight>=0.1"


def prf(tp: float, fp: float, fn: float, zero_division: float = 0.0) -> PRF:
    """P/R/F1 from counts; an empty denominator gives ``zero_division``."""
    return PRF(_ratio(tp, tp + fp, zero_division), _ratio(tp, tp + fn, zero_division),
               _ratio(2 * tp, 2 * tp + fp + fn, zero_division))


def _ratio(num: float, den: float, zero_division: float) -> float:
    return float(num / den) if den else float(zero_division)


def _mean_prf(items: Sequence[PRF]) -> PRF:
    n = len(items)
    if not n:
        return PRF(0.0, 0.0, 0.0)
    return PRF(sum(x.precision for x in items) / n, sum(x.recall for x in items) / n, sum(x.f1 for x in items) / n)


def _per_label(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> tuple[Counter, Counter, Counter]:
    """Per-label true positives, false positives and false negatives of single-label predictions."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    return tp, fp, fn


# ---------------------------------------------------------------- tagger and classifier


def tagger_scores(gold: Sequence[bool], pred: Sequence[bool], zero_division: float = 0.0) -> TaggerScores:
    """Score focus-sentence tagging (see the module docstring).

    Args:
        gold: per sentence, whether it is a focus sentence.
        pred: per sentence, whether the tagger marked it.
    """
    gold_b = [bool(g) for g in gold]
    pred_b = [bool(p) for p in pred]
    tp, fp, fn = _per_label(gold_b, pred_b)
    per_class = {c: prf(tp[c], fp[c], fn[c], zero_division) for c in (False, True)}
    n = len(gold_b)
    correct = tp[False] + tp[True]
    micro = prf(correct, n - correct, n - correct, zero_division)
    return TaggerScores(focus=per_class[True], macro=_mean_prf([per_class[False], per_class[True]]), micro=micro,
                        sentences=n, gold_focus=sum(gold_b), predicted_focus=sum(pred_b))


def classifier_scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None,
                      zero_division: float = 0.0) -> ClassifierScores:
    """Score one predicted code per classifier row (see the module docstring).

    Args:
        gold: the coders' code of each row.
        pred: the predicted code of each row.
        labels: codes the macro and weighted F1 run over; default the codes
            in ``gold`` or ``pred``.
    """
    tp, fp, fn = _per_label(gold, pred)
    names = sorted(set(gold) | set(pred)) if labels is None else list(labels)
    f1 = {c: prf(tp[c], fp[c], fn[c], zero_division).f1 for c in names}
    support = Counter(gold)
    total = sum(support[c] for c in names)
    return ClassifierScores(
        accuracy=_ratio(sum(tp.values()), len(gold), zero_division),
        macro_f1=_ratio(sum(f1.values()), len(names), zero_division),
        weighted_f1=_ratio(sum(f1[c] * support[c] for c in names), total, zero_division),
        rows=len(gold), labels=len(names))


# ---------------------------------------------------------------- end to end


def end_to_end_scores(gold: CodeSets, pred: CodeSets, label_space: Iterable[str] | None = None,
                      zero_division: float = 0.0, ranked: Rankings | None = None) -> EndToEndScores:
    """Score predicted report code sets against the full gold sets (see the module docstring).

    Args:
        gold: report id -> every gold code (label space or not); defines the reports scored.
        pred: report id -> predicted codes; a missing report is predicted empty.
        label_space: when given, ``gold_in_label_space`` says which share of
            the gold codes lies in it (the recall ceiling of a label-space model).
        ranked: report id -> ranked codes (best first); when given, ``map``
            (:func:`mean_average_precision`) is filled. The set figures never
            depend on it. ``map_codiesp`` (:func:`codiesp_map`) is always
            computed, on the predicted sets: the script ignores the order.

    Raises:
        ValueError: when ``pred`` or ``ranked`` holds a report that ``gold`` lacks.
    """
    extra = (set(pred) | set(ranked or {})) - set(gold)
    if extra:
        raise ValueError(f"{len(extra)} predicted reports are not in the gold data, e.g. {sorted(extra)[:3]}")
    tp_all = pred_all = gold_all = exact = 0
    per_report: list[PRF] = []
    for rid, gold_codes in gold.items():
        g, p = set(gold_codes), set(pred.get(rid, ()))
        tp = len(g & p)
        tp_all, pred_all, gold_all = tp_all + tp, pred_all + len(p), gold_all + len(g)
        exact += g == p
        per_report.append(prf(tp, len(p) - tp, len(g) - tp, zero_division))
    coverage = None
    if label_space is not None:
        space = set(label_space)
        coverage = _ratio(sum(len(set(c) & space) for c in gold.values()), gold_all, zero_division)
    n = len(per_report)
    return EndToEndScores(
        subset_accuracy=_ratio(exact, n, zero_division),
        micro=prf(tp_all, pred_all - tp_all, gold_all - tp_all, zero_division),
        instance=_mean_prf(per_report),
        reports=n, gold_codes=gold_all, predicted_codes=pred_all, gold_in_label_space=coverage,
        map=None if ranked is None else mean_average_precision(gold, ranked),
        # the script ranks a report's codes alphabetically whatever their order, so a ranking over the whole label
        # space scores the same for every system: what it tells apart is the set a system submits
        map_codiesp=codiesp_map(gold, {rid: sorted(codes) for rid, codes in pred.items()}))


COMPARE_COLUMNS = ("system", "subset_accuracy", "micro_precision", "micro_recall", "micro_f1",
                   "instance_precision", "instance_recall", "instance_f1", "map", "map_codiesp", "predicted_codes")


def compare(systems: Mapping[str, CodeSets], gold: CodeSets, label_space: Iterable[str] | None = None,
            rankings: Mapping[str, Rankings] | None = None) -> list[dict]:
    """One row of end-to-end scores per system, in the given order (columns: :data:`COMPARE_COLUMNS`).

    ``rankings`` (system -> its ranked codes) fills ``map`` and ``map_codiesp``; None for a system without one.
    """
    space = None if label_space is None else list(label_space)
    rows = []
    for name, pred in systems.items():
        s = end_to_end_scores(gold, pred, space, ranked=(rankings or {}).get(name))
        rows.append({"system": name, "subset_accuracy": s.subset_accuracy,
                     "micro_precision": s.micro.precision, "micro_recall": s.micro.recall, "micro_f1": s.micro.f1,
                     "instance_precision": s.instance.precision, "instance_recall": s.instance.recall,
                     "instance_f1": s.instance.f1, "map": s.map, "map_codiesp": s.map_codiesp,
                     "predicted_codes": s.predicted_codes})
    return rows


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """Render rows (e.g. from :func:`compare`) as a GitHub markdown table; floats get ``digits`` decimals."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())

    def cell(value) -> str:
        if value is None:  # e.g. a MAP of a system without a ranking
            return "–"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---" if c == "system" else "---:" for c in columns) + " |"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- ranked codes


def ranked_average_precision(ranking: Sequence[str], gold: Iterable[str]) -> float:
    """AP of one ranked code list: Σ over ranks k holding a gold code of precision@k, divided by |gold|.

    Unlike :func:`average_precision` (scikit-learn's, over scores of every
    item), gold codes the list never returns count as misses. NaN without a
    gold code.
    """
    relevant = set(gold)
    if not relevant:
        return float("nan")
    hits, total = 0, 0.0
    for k, code in enumerate(ranking, 1):
        if code in relevant:
            hits += 1
            total += hits / k
    return total / len(relevant)


def mean_average_precision(gold: CodeSets, ranked: Rankings) -> float:
    """trec_eval's MAP (with ``-c``) of ranked code lists (see the module docstring).

    Args:
        gold: report id -> gold codes; the reports with at least one code are scored.
        ranked: report id -> codes, best first; a gold report missing here scores 0,
            a report missing from ``gold`` is ignored.

    Returns:
        The mean AP over the gold reports with codes; NaN when there is none.

    Raises:
        ValueError: a code is ranked twice for one report (trec_eval refuses such a run too).
    """
    aps = []
    for rid, codes in gold.items():
        ranking = list(ranked.get(rid, ()))
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"report {rid}: a code is ranked twice")
        ap = ranked_average_precision(ranking, codes)
        if ap == ap:  # not NaN: the report has gold codes
            aps.append(ap)
    return float(np.mean(aps)) if aps else float("nan")


def codiesp_map(gold: CodeSets, ranked: Rankings, valid_codes: Iterable[str] | None = None,
                depth: int = CODIESP_DEPTH) -> float:
    """The MAP CodiEsp's official evaluation script prints, without trectools.

    The script writes the gold and the predictions to files and calls
    trectools 0.0.50's ``TrecEval(TrecRun(run), TrecQrel(qrels)).get_map(trec_eval=False)``.
    What that computes, step by step (each checked against trectools in
    ``tests/test_ranking.py``):

    1. Codes are lower-cased; a code given twice for a report keeps its
       first place; with ``valid_codes`` (the script's list of the
       subtask's codes), codes outside it are dropped. Codes outside the
       gold are *not* dropped: a wrong code still takes a rank.
    2. The submitted order is ignored: the script gives every line the same
       score, and ``TrecRun`` sorts a run file by score, then by code, so each
       report's codes are ranked in alphabetical order (the first ``depth`` kept).
    3. Each run report's AP is :func:`ranked_average_precision` of that
       order against its gold codes; a run report with no gold code (absent
       from the gold, or without codes there) scores 0.
    4. The MAP is the sum of the APs over the number of *run* reports: a gold
       report the run leaves out (no code predicted) is skipped rather than
       scored 0, and a run with no report scores 0 (the script itself stops
       with an error on an empty file).

    So a system is not penalised for reports it leaves uncoded, gains
    nothing from ranking well, and, as AP divides by |gold|, is rewarded
    for longer lists while their precision holds up.
    """
    relevant = {rid: {c.lower() for c in codes} for rid, codes in gold.items()}
    valid = None if valid_codes is None else {c.lower() for c in valid_codes}
    run: dict[str, list[str]] = {}
    for rid, codes in ranked.items():
        kept = [c for c in dict.fromkeys(c.lower() for c in codes) if valid is None or c in valid]
        if kept:
            run[rid] = sorted(kept)[:depth]
    if not run:
        return 0.0
    total = sum(ranked_average_precision(codes, relevant[rid]) for rid, codes in run.items() if relevant.get(rid))
    return float(total / len(run))


# ---------------------------------------------------------------- evidence


def average_precision(scores: Sequence[float] | np.ndarray, relevant: Sequence[int] | np.ndarray) -> float:
    """Average precision of ``scores`` ranking the ``relevant`` (1) items; NaN without a relevant item."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(relevant).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} relevance marks")
    n_pos = int(y.sum())
    if not n_pos:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # one threshold per distinct score: the last position of each run of ties
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def select_tokens(weights: np.ndarray, k: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Boolean mask of the evidence tokens: the ``k`` heaviest (earlier first among ties) or weight ≥ ``threshold``."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    if (k is None) == (threshold is None):
        raise ValueError("give exactly one of k and threshold")
    chosen = np.zeros(w.size, dtype=bool)
    if threshold is not None:
        chosen[w >= threshold] = True
    else:
        assert k is not None and k >= 0
        chosen[np.argsort(-w, kind="stable")[:k]] = True
    return chosen


def evidence_scores(rows: Iterable[tuple[np.ndarray, np.ndarray]], k: int | None = 5,
                    threshold: float | None = None, zero_division: float = 0.0) -> EvidenceScores:
    """Score attention weights against the coders' phrase masks (see the module docstring).

    Args:
        rows: ``(weights, mask)`` per classifier row, both of the row's token count.
        k: how many top-weighted tokens form the evidence (ignored when ``threshold`` is given).
        threshold: select every token with weight ≥ this instead of the top ``k``.
    """
    if threshold is not None:
        k = None
    per_row: list[PRF] = []
    aps: list[float] = []
    all_w: list[np.ndarray] = []
    all_m: list[np.ndarray] = []
    tp_all = fp_all = fn_all = 0
    for weights, mask in rows:
        w = np.asarray(weights, dtype=np.float64).ravel()
        m = np.asarray(mask).ravel().astype(bool)
        if w.shape != m.shape:
            raise ValueError(f"a row has {w.size} weights but {m.size} mask entries")
        chosen = select_tokens(w, k, threshold)
        tp = int((chosen & m).sum())
        fp, fn = int(chosen.sum()) - tp, int(m.sum()) - tp
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        per_row.append(prf(tp, fp, fn, zero_division))
        if m.any():
            aps.append(average_precision(w, m))
        all_w.append(w)
        all_m.append(m)
    pooled = average_precision(np.concatenate(all_w), np.concatenate(all_m)) if all_w else float("nan")
    return EvidenceScores(
        macro=_mean_prf(per_row), micro=prf(tp_all, fp_all, fn_all, zero_division),
        auprc_macro=float(np.mean(aps)) if aps else float("nan"), auprc_micro=pooled,
        rows=len(per_row), rows_without_phrase=len(per_row) - len(aps),
        selection=f"top-{k}" if threshold is None else f"weight>={threshold:g}")


def as_dict(scores) -> dict:
    """A scores record as nested plain dicts (for JSON and MLflow)."""
    return asdict(scores)
