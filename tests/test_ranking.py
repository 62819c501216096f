"""The two MAPs of ranked codes: by hand, against scikit-learn, and against trectools (CodiEsp's oracle)."""

import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hiericd_core.evaluate import (
    codiesp_map,
    compare,
    end_to_end_scores,
    markdown_table,
    mean_average_precision,
    ranked_average_precision,
)

# ---------------------------------------------------------------- trec_eval's MAP by hand

GOLD = {"r1": {"A", "B"}, "r2": {"C"}, "r3": {"D", "E", "F"}, "r4": {"G"}}
RANKED = {"r1": ["A", "X", "B"], "r2": ["X", "Y", "C"], "r3": ["D"], "r4": []}
# r1: A at 1 (P@1 = 1), B at 3 (P@3 = 2/3)   -> AP = (1 + 2/3) / 2 = 5/6
# r2: C at 3 (P@3 = 1/3)                     -> AP = (1/3) / 1 = 1/3
# r3: D at 1 (P@1 = 1), E and F never        -> AP = 1 / 3
# r4: nothing ranked                         -> AP = 0
# MAP = (5/6 + 1/3 + 1/3 + 0) / 4 = 3/8


def test_ranked_average_precision_by_hand():
    assert ranked_average_precision(["A", "X", "B"], {"A", "B"}) == pytest.approx(5 / 6)
    assert ranked_average_precision(["X", "Y", "C"], {"C"}) == pytest.approx(1 / 3)
    assert ranked_average_precision([], {"C"}) == 0.0
    assert math.isnan(ranked_average_precision(["A"], set()))


def test_map_by_hand_missing_gold_reports_score_zero_and_extra_reports_are_ignored():
    assert mean_average_precision(GOLD, RANKED) == pytest.approx(3 / 8)
    without_r4 = {k: v for k, v in RANKED.items() if k != "r4"}
    assert mean_average_precision(GOLD, without_r4) == pytest.approx(3 / 8)  # r4 still scores 0
    assert mean_average_precision(GOLD, {**RANKED, "r9": ["A"]}) == pytest.approx(3 / 8)
    # a report without gold codes is left out, not scored 0 or 1
    assert mean_average_precision({**GOLD, "r0": set()}, {**RANKED, "r0": ["A"]}) == pytest.approx(3 / 8)
    assert math.isnan(mean_average_precision({"r0": set()}, {}))
    with pytest.raises(ValueError, match="twice"):
        mean_average_precision(GOLD, {"r1": ["A", "A"]})


def test_appending_codes_never_lowers_trec_eval_ap():
    rng = random.Random(3)
    vocab = [f"C{i}" for i in range(15)]
    for _ in range(300):
        gold = set(rng.sample(vocab, rng.randint(1, 5)))
        ranking = rng.sample(vocab, rng.randint(0, 15))
        for cut in range(len(ranking)):
            assert ranked_average_precision(ranking[:cut], gold) <= ranked_average_precision(ranking, gold) + 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_ap_of_a_full_ranking_is_sklearns_average_precision(seed):
    """When every gold code is ranked (scores over all labels, no ties), the two definitions agree."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(2, 30))
        scores = rng.permutation(n).astype(float)  # distinct: no ties
        relevant = rng.random(n) < 0.3
        if not relevant.any():
            relevant[int(rng.integers(n))] = True
        labels = [f"L{i}" for i in range(n)]
        ranking = [labels[i] for i in np.argsort(-scores, kind="stable")]
        gold = {labels[i] for i in np.flatnonzero(relevant)}
        assert ranked_average_precision(ranking, gold) == pytest.approx(average_precision_score(relevant, scores))


# ---------------------------------------------------------------- CodiEsp's figure by hand


def test_codiesp_map_ignores_the_submitted_order():
    gold = {"a": {"b2"}}
    # alphabetical order: a1 (wrong) before b2 (right), whatever the submitted order
    assert codiesp_map(gold, {"a": ["b2", "a1"]}) == codiesp_map(gold, {"a": ["a1", "b2"]}) == 0.5
    assert mean_average_precision(gold, {"a": ["b2", "a1"]}) == 1.0


def test_codiesp_map_does_not_drop_wrong_codes_before_ranking():
    # gold {x, y, w}; run p, q, r, x -> alphabetical p q r x: x at 4 -> AP = (1/4) / 3
    # (dropping the codes outside the gold first would give x rank 1 and AP 1/3)
    assert codiesp_map({"a": {"x", "y", "w"}}, {"a": ["p", "q", "r", "x"]}) == pytest.approx(1 / 12)


def test_codiesp_map_skips_gold_reports_missing_from_the_run_and_counts_extra_ones_as_zero():
    assert codiesp_map({"a": {"x"}, "b": {"y"}}, {"a": ["x"]}) == 1.0  # b skipped; trec_eval: (1 + 0) / 2
    assert mean_average_precision({"a": {"x"}, "b": {"y"}}, {"a": ["x"]}) == 0.5
    assert codiesp_map({"a": {"x"}}, {"a": ["x"], "c": ["y"]}) == 0.5  # c is no gold report: 0, counted
    assert codiesp_map({"a": {"x"}, "c": set()}, {"a": ["x"], "c": ["y"]}) == 0.5  # a report without gold codes too
    assert codiesp_map({"a": {"x"}}, {}) == 0.0
    assert codiesp_map({"a": {"x"}}, {"a": []}) == 0.0


def test_codiesp_map_lowercases_dedups_filters_valid_codes_and_cuts_at_depth():
    gold = {"a": {"C18.7", "K63.5"}}
    # lower-cased: c18.7 k63.5 match; the second C18.7 goes; Z99 (invalid) goes before ranking
    ranked = {"a": ["K63.5", "C18.7", "c18.7", "Z99"]}
    assert codiesp_map(gold, ranked, valid_codes=["c18.7", "k63.5"]) == 1.0
    # kept, z99 sorts last and costs nothing; a00 sorts first and costs precision
    assert codiesp_map(gold, ranked) == 1.0
    assert codiesp_map(gold, {"a": ["a00", "c18.7", "k63.5"]}) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert codiesp_map(gold, {"a": ["a00", "c18.7", "k63.5"]}, depth=2) == pytest.approx((1 / 2) / 2)


def test_codiesp_map_rewards_a_longer_list():
    gold = {"a": {f"k{i:02d}" for i in range(11)}}  # about CodiEsp's 11 codes a report
    short = ["k00", "k01", "a00"]  # the inference rule's 3 codes, 2 right
    long = short + [f"k{i:02d}" for i in range(2, 8)] + [f"m{i:02d}" for i in range(20)]  # 8 right of 29
    assert codiesp_map(gold, {"a": long}) > codiesp_map(gold, {"a": short})
    assert mean_average_precision(gold, {"a": long}) > mean_average_precision(gold, {"a": short})


def test_end_to_end_and_compare_carry_both_maps_without_changing_the_set_figures():
    pred = {rid: set(codes[:1]) for rid, codes in RANKED.items()}
    plain = end_to_end_scores(GOLD, pred)
    with_maps = end_to_end_scores(GOLD, pred, ranked=RANKED)
    assert (plain.micro, plain.instance, plain.subset_accuracy) == (
        with_maps.micro, with_maps.instance, with_maps.subset_accuracy)
    assert plain.map is None
    assert with_maps.map == pytest.approx(3 / 8)
    # on the predicted sets (the script ignores order), run reports r1..r3 (r4 predicts nothing):
    # r1 {A} -> 1/2; r2 {X} -> 0; r3 {D} -> 1/3
    assert plain.map_codiesp == with_maps.map_codiesp == pytest.approx((1 / 2 + 0 + 1 / 3) / 3)
    with pytest.raises(ValueError, match="not in the gold"):
        end_to_end_scores(GOLD, pred, ranked={"r9": ["A"]})
    rows = compare({"model": pred, "sets only": pred}, GOLD, rankings={"model": RANKED})
    assert rows[0]["map"] == pytest.approx(3 / 8) and rows[1]["map"] is None
    assert markdown_table(rows, ["system", "map", "map_codiesp"]).splitlines()[2:] == [
        "| model | 0.375 | 0.278 |", "| sets only | – | 0.278 |"]


# ---------------------------------------------------------------- trectools as the oracle

trectools = pytest.importorskip("trectools")


def trectools_codiesp(gold: dict, ranked: dict, folder: Path, valid_codes=None) -> float:
    """CodiEsp's script: its format_gs / format_predictions steps, files, then trectools."""
    qrels_lines, run_lines = [], []
    for rid, codes in gold.items():
        for code in dict.fromkeys(c.lower() for c in codes):
            qrels_lines.append(f"{rid} 0 {code} 1")
    valid = None if valid_codes is None else {c.lower() for c in valid_codes}
    for rid, codes in ranked.items():
        for rank, code in enumerate(dict.fromkeys(c.lower() for c in codes), 1):
            if valid is None or code in valid:
                run_lines.append(f"{rid}\tQ0\t{code}\t{rank}\t10.0\txx")
    if not run_lines:
        return 0.0  # the script stops on an empty run file; codiesp_map documents 0
    (folder / "qrels.txt").write_text("\n".join(qrels_lines) + "\n")
    (folder / "run.txt").write_text("\n".join(run_lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trectools' pandas idioms warn
        return float(trectools.TrecEval(trectools.TrecRun(str(folder / "run.txt")),
                                        trectools.TrecQrel(str(folder / "qrels.txt"))).get_map(trec_eval=False))


def trectools_per_report_ap(gold: dict, ranked: dict) -> dict[str, float]:
    """trectools' per-query AP of a run loaded in the given order (no file, so no re-sorting)."""
    import pandas as pd

    run = trectools.TrecRun()
    run.load_run_from_dataframe(pd.DataFrame(
        [(rid, "Q0", code, k, 10.0, "xx") for rid, codes in ranked.items() for k, code in enumerate(codes, 1)],
        columns=["query", "q0", "docid", "rank", "score", "system"]))
    qrels = trectools.TrecQrel()
    qrels.qrels_data = pd.DataFrame([(rid, "0", code, 1) for rid, codes in gold.items() for code in codes],
                                    columns=["query", "q0", "docid", "rel"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = trectools.TrecEval(run, qrels).get_map(per_query=True, trec_eval=False)
    return {str(rid): float(value) for rid, value in table.iloc[:, 0].items() if value == value}


def random_case(rng: random.Random) -> tuple[dict, dict, list[str]]:
    vocab = [f"{letter}{i}" for letter in "ABK" for i in range(4)]
    ids = [f"r{i}" for i in range(rng.randint(1, 6))]
    gold = {rid: set(rng.sample(vocab, rng.randint(0 if rng.random() < 0.1 else 1, 5))) for rid in ids}
    run_ids = [rid for rid in ids if rng.random() < 0.8] + (["extra"] if rng.random() < 0.3 else [])
    ranked = {rid: rng.sample(vocab + ["Z1", "Z2"], rng.randint(0, 9)) for rid in run_ids}
    for codes in ranked.values():  # now and then mixed case and a repeat, as a submission may have
        if codes and rng.random() < 0.3:
            codes.append(codes[0].lower())
    return gold, ranked, vocab


def test_codiesp_map_matches_trectools_on_the_hand_cases(tmp_path):
    cases = [({"a": {"b2"}}, {"a": ["b2", "a1"]}), ({"a": {"x", "y", "w"}}, {"a": ["p", "q", "r", "x"]}),
             ({"a": {"x"}, "b": {"y"}}, {"a": ["x"]}), ({"a": {"x"}}, {"a": ["x"], "c": ["y"]}),
             ({"a": {"C18.7", "K63.5"}}, {"a": ["K63.5", "C18.7", "c18.7", "Z99"]}), (GOLD, RANKED)]
    for gold, ranked in cases:
        assert codiesp_map(gold, ranked) == pytest.approx(trectools_codiesp(gold, ranked, tmp_path), abs=1e-12)


def test_codiesp_map_matches_trectools_on_random_cases(tmp_path):
    rng = random.Random(18)
    for _ in range(150):
        gold, ranked, vocab = random_case(rng)
        valid = rng.sample(vocab, 8) if rng.random() < 0.3 else None
        ours = codiesp_map(gold, ranked, valid_codes=valid)
        assert ours == pytest.approx(trectools_codiesp(gold, ranked, tmp_path, valid), abs=1e-12), (gold, ranked)


def test_trec_eval_ap_matches_trectools_per_report_on_random_cases():
    rng = random.Random(7)
    for _ in range(60):
        gold, ranked, _ = random_case(rng)
        ranked = {rid: list(dict.fromkeys(codes)) for rid, codes in ranked.items() if codes}
        if not ranked:
            continue
        oracle = trectools_per_report_ap(gold, ranked)
        for rid, codes in ranked.items():
            if gold.get(rid):
                assert ranked_average_precision(codes, gold[rid]) == pytest.approx(oracle[rid], abs=1e-12)
