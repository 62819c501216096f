"""Metrics: hand-worked examples, and agreement with scikit-learn on random data."""

import math
import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from hiericd_core.evaluate import (
    PRF,
    average_precision,
    classifier_scores,
    compare,
    end_to_end_scores,
    evidence_scores,
    markdown_table,
    prf,
    select_tokens,
    tagger_scores,
)


def close(a: PRF, b) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-12) for x, y in zip((a.precision, a.recall, a.f1), b, strict=True))


def random_code_sets(rng: random.Random, n: int, vocab: list[str], empty_share: float = 0.15) -> list[set[str]]:
    return [set() if rng.random() < empty_share else set(rng.sample(vocab, rng.randint(1, 4))) for _ in range(n)]


# ---------------------------------------------------------------- end to end

GOLD = {"r1": {"A", "B"}, "r2": {"C"}, "r3": {"A", "Z99"}, "r4": {"D"}}
PRED = {"r1": {"A", "B"}, "r2": {"A"}, "r3": {"A"}, "r4": set()}
# r1: exact, |P∩G|=2 |P|=2 |G|=2 -> p=1   r=1   f=1
# r2: wrong, |P∩G|=0 |P|=1 |G|=1 -> p=0   r=0   f=0
# r3: Z99 is outside any label space but still gold: |P∩G|=1 |P|=1 |G|=2 -> p=1 r=1/2 f=2/3
# r4: empty prediction, |G|=1 -> p=0 (zero_division) r=0 f=0
# subset accuracy 1/4
# micro: Σ|P∩G| = 3, Σ|P| = 4, Σ|G| = 6 -> P = 3/4, R = 1/2, F1 = 6/10
# instance: P = (1+0+1+0)/4 = 1/2, R = (1+0+1/2+0)/4 = 3/8, F1 = (1+0+2/3+0)/4 = 5/12


def test_end_to_end_by_hand():
    s = end_to_end_scores(GOLD, PRED, label_space=["A", "B", "C", "D"])
    assert s.subset_accuracy == 0.25
    assert close(s.micro, (3 / 4, 1 / 2, 6 / 10))
    assert close(s.instance, (1 / 2, 3 / 8, 5 / 12))
    assert (s.reports, s.gold_codes, s.predicted_codes) == (4, 6, 4)
    assert s.gold_in_label_space == 5 / 6  # Z99 is the one gold code out of reach


def test_missing_report_is_an_empty_prediction_and_unknown_reports_are_refused():
    partial = {k: v for k, v in PRED.items() if k != "r4"}
    assert end_to_end_scores(GOLD, partial) == end_to_end_scores(GOLD, PRED)
    with pytest.raises(ValueError, match="not in the gold"):
        end_to_end_scores(GOLD, {**PRED, "r9": {"A"}})


def test_empty_gold_and_empty_prediction_conventions():
    gold = {"a": set(), "b": set(), "c": {"X"}}
    pred = {"a": set(), "b": {"X"}, "c": set()}
    s = end_to_end_scores(gold, pred)
    # a: both empty -> exact match, but p = r = f = zero_division = 0
    # b: gold empty -> p = 0/1 = 0, r = zero_division = 0, f = 0/(0+1+0) = 0
    # c: pred empty -> p = zero_division = 0, r = 0/1 = 0, f = 0
    assert s.subset_accuracy == 1 / 3
    assert close(s.instance, (0, 0, 0))
    assert close(s.micro, (0, 0, 0))
    lenient = end_to_end_scores(gold, pred, zero_division=1.0)
    # a: p = r = f = 1; b: p = 0, r = 1, f = 0; c: p = 1, r = 0, f = 0
    assert close(lenient.instance, (2 / 3, 2 / 3, 1 / 3))


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_end_to_end_matches_sklearn(seed, zero_division):
    rng = random.Random(seed)
    vocab = [f"C{i:02d}" for i in range(12)]
    ids = [f"r{i}" for i in range(60)]
    gold = dict(zip(ids, random_code_sets(rng, len(ids), vocab), strict=True))
    pred = dict(zip(ids, random_code_sets(rng, len(ids), vocab + ["OUT1", "OUT2"]), strict=True))
    binarizer = MultiLabelBinarizer(classes=sorted(set(vocab) | {"OUT1", "OUT2"}))
    y_true = binarizer.fit_transform([sorted(gold[r]) for r in ids])
    y_pred = binarizer.transform([sorted(pred[r]) for r in ids])
    s = end_to_end_scores(gold, pred, zero_division=zero_division)
    for average, ours in (("micro", s.micro), ("samples", s.instance)):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=zero_division)
        assert close(ours, (p, r, f)), average
    assert math.isclose(s.subset_accuracy, accuracy_score(y_true, y_pred))


def test_compare_and_markdown():
    rows = compare({"model": PRED, "everything": {r: {"A", "B", "C", "D"} for r in GOLD}}, GOLD)
    assert [r["system"] for r in rows] == ["model", "everything"]
    assert math.isclose(rows[0]["micro_f1"], 0.6)
    # everything: |P∩G| = 2+1+1+1 = 5, Σ|P| = 16, Σ|G| = 6 -> P = 5/16, R = 5/6
    assert math.isclose(rows[1]["micro_precision"], 5 / 16)
    assert math.isclose(rows[1]["micro_recall"], 5 / 6)
    table = markdown_table(rows, ["system", "micro_f1", "predicted_codes"])
    assert table.splitlines() == [
        "| system | micro_f1 | predicted_codes |",
        "| --- | ---: | ---: |",
        "| model | 0.600 | 4 |",
        "| everything | 0.455 | 16 |",  # 2·5/(16+6)
    ]
    assert markdown_table([]) == ""


# ---------------------------------------------------------------- tagger and classifier


def test_tagger_by_hand():
    gold = [1, 1, 0, 0, 0, 1]
    pred = [1, 0, 0, 1, 0, 1]
    # focus class:     tp=2 fp=1 fn=1 -> P=2/3 R=2/3 F1=2/3
    # non-focus class: tp=2 fp=1 fn=1 -> P=2/3 R=2/3 F1=2/3
    # micro: 4 of 6 right -> 2/3 everywhere
    s = tagger_scores(gold, pred)
    assert close(s.focus, (2 / 3, 2 / 3, 2 / 3))
    assert close(s.macro, (2 / 3, 2 / 3, 2 / 3))
    assert close(s.micro, (2 / 3, 2 / 3, 2 / 3))
    assert (s.sentences, s.gold_focus, s.predicted_focus) == (6, 3, 3)
    # a tagger that marks nothing: focus P = zero_division, R = 0
    none = tagger_scores([1, 0, 0, 0], [0, 0, 0, 0])
    assert close(none.focus, (0, 0, 0))
    # non-focus: tp=3 fp=1 fn=0 -> P=3/4 R=1 F1=6/7; macro = mean with the focus zeros
    assert close(none.macro, (3 / 8, 1 / 2, 3 / 7))


@pytest.mark.parametrize("seed", range(5))
def test_tagger_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    gold = rng.random(200) < 0.1
    pred = np.where(rng.random(200) < 0.8, gold, ~gold)
    s = tagger_scores(gold.tolist(), pred.tolist())
    for average, ours in (("binary", s.focus), ("macro", s.macro), ("micro", s.micro)):
        p, r, f, _ = precision_recall_fscore_support(gold, pred, average=average, zero_division=0)
        assert close(ours, (p, r, f)), average


def test_classifier_by_hand():
    gold = ["A", "A", "A", "B", "C"]
    pred = ["A", "A", "B", "B", "D"]
    # A: tp=2 fp=0 fn=1 -> F1 = 4/5;  B: tp=1 fp=1 fn=0 -> F1 = 2/3
    # C: tp=0 fn=1 -> 0;  D: tp=0 fp=1 -> 0 (a predicted code outside gold still counts in macro)
    s = classifier_scores(gold, pred)
    assert s.accuracy == 3 / 5
    assert math.isclose(s.macro_f1, (4 / 5 + 2 / 3) / 4)
    assert math.isclose(s.weighted_f1, (3 * 4 / 5 + 1 * 2 / 3 + 1 * 0) / 5)
    assert (s.rows, s.labels) == (5, 4)
    restricted = classifier_scores(gold, pred, labels=["A", "B", "C"])
    assert math.isclose(restricted.macro_f1, (4 / 5 + 2 / 3) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_classifier_matches_sklearn(seed):
    rng = random.Random(seed)
    codes = [f"K{i}" for i in range(8)]
    gold = [rng.choice(codes[:6]) for _ in range(150)]
    pred = [g if rng.random() < 0.6 else rng.choice(codes) for g in gold]
    s = classifier_scores(gold, pred)
    assert math.isclose(s.accuracy, accuracy_score(gold, pred))
    assert math.isclose(s.macro_f1, f1_score(gold, pred, average="macro", zero_division=0))
    assert math.isclose(s.weighted_f1, f1_score(gold, pred, average="weighted", zero_division=0))
    labels = codes[:6]
    ours = classifier_scores(gold, pred, labels=labels)
    assert math.isclose(ours.macro_f1, f1_score(gold, pred, labels=labels, average="macro", zero_division=0))


def test_prf_zero_division():
    assert prf(0, 0, 0) == PRF(0.0, 0.0, 0.0)
    assert prf(0, 0, 0, zero_division=1.0) == PRF(1.0, 1.0, 1.0)
    assert prf(1, 1, 0) == PRF(0.5, 1.0, 2 / 3)


# ---------------------------------------------------------------- evidence


def test_average_precision_by_hand():
    # ranked: 0.9 (1), 0.8 (0), 0.7 (1), 0.1 (0); two relevant
    # thresholds: 0.9 -> P=1,   R=1/2;  0.8 -> P=1/2, R=1/2;  0.7 -> P=2/3, R=1
    # AP = 1/2·1 + 0·1/2 + 1/2·2/3 = 5/6
    assert math.isclose(average_precision([0.1, 0.9, 0.7, 0.8], [0, 1, 1, 0]), 5 / 6)
    # ties enter together: all equal -> one threshold, P = 2/4, R = 1 -> AP = 1/2
    assert math.isclose(average_precision([0.25] * 4, [0, 1, 1, 0]), 0.5)
    assert math.isnan(average_precision([0.5, 0.5], [0, 0]))


@pytest.mark.parametrize("seed", range(8))
def test_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    relevant = (rng.random(n) < 0.3).astype(int)
    relevant[rng.integers(n)] = 1
    scores = np.round(rng.random(n), 1)  # rounding makes ties
    assert math.isclose(average_precision(scores, relevant), average_precision_score(relevant, scores))


def test_select_tokens():
    w = np.array([0.1, 0.3, 0.3, 0.05, 0.25])
    assert select_tokens(w, k=2).tolist() == [False, True, True, False, False]
    assert select_tokens(w, k=1).tolist() == [False, True, False, False, False]  # tie: the earlier token
    assert select_tokens(w, k=9).sum() == 5
    assert select_tokens(w, threshold=0.25).tolist() == [False, True, True, False, True]
    with pytest.raises(ValueError):
        select_tokens(w)


def test_evidence_by_hand():
    rows = [
        # tokens:  Invasive ductal carcinoma ,    left  breast
        (np.array([0.30, 0.25, 0.35, 0.02, 0.05, 0.03]), np.array([1, 1, 1, 0, 0, 0])),
        # tokens:  No    tumor  seen
        (np.array([0.50, 0.30, 0.20]), np.array([0, 1, 0])),
    ]
    s = evidence_scores(rows, k=2)
    # row 1: top-2 = carcinoma, Invasive -> tp=2 fp=0 fn=1 -> P=1   R=2/3 F1=4/5
    # row 2: top-2 = No, tumor           -> tp=1 fp=1 fn=0 -> P=1/2 R=1   F1=2/3
    assert close(s.macro, ((1 + 1 / 2) / 2, (2 / 3 + 1) / 2, (4 / 5 + 2 / 3) / 2))
    # pooled: tp=3 fp=1 fn=1 -> P=3/4 R=3/4 F1=3/4
    assert close(s.micro, (3 / 4, 3 / 4, 3 / 4))
    # AP row 1 = 1 (the three phrase tokens weigh most); row 2: tumor ranked second -> AP = 1/2
    assert math.isclose(s.auprc_macro, 3 / 4)
    # pooled ranking: .50(0) .35(1) .30(1) .30(1) .25(1) .20(0) .05 .03 .02 (all 0)
    # thresholds: .50 -> P=0 R=0; .35 -> P=1/2 R=1/4; .30 -> P=3/4 R=3/4; .25 -> P=4/5 R=1
    # AP = 1/4·1/2 + 1/2·3/4 + 1/4·4/5 = 1/8 + 3/8 + 1/5 = 7/10
    assert math.isclose(s.auprc_micro, 0.7)
    assert (s.rows, s.rows_without_phrase, s.selection) == (2, 0, "top-2")
    t = evidence_scores(rows, threshold=0.3)
    # row 1: {Invasive, carcinoma} -> P=1 R=2/3;  row 2: {No, tumor} -> P=1/2 R=1
    assert close(t.micro, (3 / 4, 3 / 4, 3 / 4)) and t.selection == "weight>=0.3"


@pytest.mark.parametrize("seed", range(3))
def test_evidence_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(20):
        n = int(rng.integers(4, 25))
        mask = np.zeros(n, dtype=np.int8)
        start = int(rng.integers(0, n - 2))
        mask[start:start + int(rng.integers(1, 4))] = 1
        weights = rng.dirichlet(np.ones(n)) + 0.3 * mask * rng.random()
        rows.append((weights, mask))
    s = evidence_scores(rows, k=3)
    per_row = []
    for w, m in rows:
        chosen = select_tokens(w, k=3).astype(int)
        per_row.append(precision_recall_fscore_support(m, chosen, average="binary", zero_division=0)[:3])
    assert close(s.macro, tuple(np.mean(per_row, axis=0)))
    pooled_sel = np.concatenate([select_tokens(w, k=3) for w, _ in rows]).astype(int)
    pooled_mask = np.concatenate([m for _, m in rows])
    p, r, f, _ = precision_recall_fscore_support(pooled_mask, pooled_sel, average="binary", zero_division=0)
    assert close(s.micro, (p, r, f))
    assert math.isclose(s.auprc_macro, np.mean([average_precision_score(m, w) for w, m in rows]))
    assert math.isclose(s.auprc_micro, average_precision_score(pooled_mask, np.concatenate([w for w, _ in rows])))


def test_evidence_row_without_phrase_is_left_out_of_auprc():
    rows = [(np.array([0.9, 0.1]), np.array([1, 0])), (np.array([0.5, 0.5]), np.array([0, 0]))]
    s = evidence_scores(rows, k=1)
    assert s.auprc_macro == 1.0 and s.rows_without_phrase == 1
    with pytest.raises(ValueError, match="weights"):
        evidence_scores([(np.array([0.5, 0.5]), np.array([1]))])
