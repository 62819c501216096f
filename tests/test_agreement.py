"""Agreement figures against independent oracles (sklearn, statsmodels, krippendorff) and hand-worked tables."""

from __future__ import annotations

import json
import random
import time
import warnings
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from hiericd_core.agreement import NEEDS_TWO, UNITS, AgreementConfig, agreement
from hiericd_core.annotation import Annotation
from hiericd_core.coefficients import bootstrap_draws, two_rater_agreement
from hiericd_core.rounds import Report, Round, RoundConfig
from hiericd_core.segment import rule_sentences
from hiericd_core.spanagree import word_tokens

WORDS = ("patient admitted with acute chest pain hypertension diabetes mellitus type two fever cough pneumonia "
         "renal failure history of approx. Dr. Smith s/p CABG e.g. left knee fracture").split()


def make_round(n_reports: int, seed: int = 0, n_codes: int = 30, coders=("c1", "c2", "c3"),
               senior_share: float = 0.3, three_share: float = 0.1, noise: float = 1.0) -> Round:
    """A random round: 2 (sometimes 3) coders per report who mostly agree with a hidden truth."""
    rng = random.Random(seed)
    codes = [f"{chr(65 + i % 26)}{i:02d}.{i % 10}" for i in range(n_codes)]
    weights = [1 / (i + 1) for i in range(n_codes)]  # a few common codes, many rare ones
    reports = {}
    for r in range(n_reports):
        rid = f"r{r:05d}"
        text, words = "", []
        for i in range(rng.randint(20, 60)):
            w = rng.choice(WORDS)
            w = w.capitalize() if i == 0 or text.endswith(".") else w
            w += "." if rng.random() < 0.1 else ""
            text += ("\n" if rng.random() < 0.05 else " ") if text else ""
            words.append((len(text), len(text) + len(w)))
            text += w
        truth = []
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(words))
            j = min(len(words) - 1, i + rng.randint(0, 2))
            truth.append((words[i][0], words[j][1], rng.choices(codes, weights)[0]))
        report = Report(rid, text)
        for c in rng.sample(list(coders), min(3 if rng.random() < three_share else 2, len(coders))):
            report.coders[c] = _coded(rng, report, words, truth, codes, weights, c, noise)
        if rng.random() < senior_share:
            report.senior = _coded(rng, report, words, truth, codes, weights, "senior", 0.3 * noise)
        reports[rid] = report
    return Round(Path("/nowhere"), RoundConfig(id="test-round"), "round", reports, sorted(coders), [], False)


def _coded(rng, report, words, truth, codes, weights, who: str, q: float) -> list[Annotation]:
    """One coder's take on the truth: drops, wrong codes, short boundaries, extra spans (rates scale with q)."""
    out, text = [], report.text
    for s, e, c in truth:
        if rng.random() < 0.15 * q:
            continue
        c = rng.choices(codes, weights)[0] if rng.random() < 0.1 * q else c
        e = max(s + 1, e - 2) if rng.random() < 0.1 * q else e
        out.append(Annotation(report.report_id, who, f"T{len(out) + 1}", "Dx", ((s, e),), text[s:e], c))
    if rng.random() < 0.2 * q:
        s, e = words[rng.randrange(len(words))]
        out.append(Annotation(report.report_id, who, f"T{len(out) + 1}", "Dx", ((s, e),), text[s:e],
                              rng.choice(codes)))
    return out


# --------------------------------------------------------------------------- dense oracles


def dense_ratings(rnd: Round, unit: str, senior: bool = False) -> tuple[list[str], dict[str, list[list[int] | None]]]:
    """Materialise ``unit`` plainly: per rater, per report, the list of item categories (None: not rated).

    The code set is the coders' codes, or with ``senior`` the coders' and the senior's.
    """
    reports = [rnd.reports[k] for k in sorted(rnd.reports)]
    codes = sorted({a.code for r in reports for anns in [*r.coders.values(), (r.senior or []) if senior else []]
                    for a in anns})
    raters = sorted(rnd.coders) + (["senior"] if senior else [])
    out: dict[str, list[list[int] | None]] = {w: [] for w in raters}
    for report in reports:
        if unit == "report_code":
            items = codes
        elif unit == "sentence_focus":
            items = rule_sentences(report.text)
        else:
            items = word_tokens(report.text)
        for who in raters:
            anns = report.senior if who == "senior" else report.coders.get(who)
            if anns is None:
                out[who].append(None)
                continue
            if unit == "report_code":
                used = {a.code for a in anns}
                out[who].append([int(c in used) for c in items])
                continue
            row = []
            for s, e in items:
                over = [a for a in anns if any(fs < e and fe > s for fs, fe in a.fragments)]
                if unit == "sentence_focus":
                    row.append(int(bool(over)))
                else:  # the shortest covering annotation, ties by code
                    best = min(over, key=lambda a: (a.end - a.start, a.code), default=None)
                    row.append(0 if best is None else codes.index(best.code) + 1)
            out[who].append(row)
    return codes, out


def pair_vectors(ratings, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    both = [(x, y) for x, y in zip(ratings[a], ratings[b], strict=True) if x is not None and y is not None]
    return np.array([v for x, _ in both for v in x]), np.array([v for _, y in both for v in y])


def multi_table(ratings, coders) -> tuple[np.ndarray, list[np.ndarray]]:
    """Krippendorff's reliability data (coders × items, nan = missing) and each report's ratings."""
    columns, per_report = [], []
    for r in range(len(ratings[coders[0]])):
        rows = [ratings[c][r] for c in coders]
        width = len(next(x for x in rows if x is not None))
        block = np.array([x if x is not None else [np.nan] * width for x in rows], dtype=float).reshape(-1, width)
        columns.append(block)
        per_report.append(block)
    return np.concatenate(columns, axis=1), per_report


def fleiss_oracle(per_report: list[np.ndarray], n_cat: int | None = None) -> float:
    counts = [int((~np.isnan(b[:, 0])).sum()) if b.shape[1] else 0 for b in per_report]
    pairable = [c for c in counts if c >= 2]
    values, freq = np.unique(pairable, return_counts=True)
    modal = values[freq == freq.max()].max()
    items = np.concatenate([b[~np.isnan(b[:, 0])].T for b, c in zip(per_report, counts, strict=True)
                            if c == modal and b.shape[1]])
    table, _ = aggregate_raters(items.astype(int), n_cat=n_cat)
    return fleiss_kappa(table, method="fleiss")


# --------------------------------------------------------------------------- hand-worked tables


def test_two_by_two_worked_by_hand():
    # a=40 both yes, b=10 A yes B no, c=5 A no B yes, d=45 both no; N = 100
    # Po = (40 + 45)/100 = 0.85; A says yes 50/100 = 0.5, B 45/100 = 0.45
    # Pe = 0.5·0.45 + 0.5·0.55 = 0.5           -> kappa = (0.85 - 0.5)/(1 - 0.5) = 0.7
    # PABAK = 2·0.85 - 1 = 0.7
    # AC1: pi = (0.5 + 0.45)/2 = 0.475; Pe = 2·0.475·0.525 = 0.49875
    #      AC1 = (0.85 - 0.49875)/(1 - 0.49875) = 0.35125/0.50125 = 0.700748...
    table = [[45, 5], [10, 40]]  # rows: A no/yes, columns: B no/yes
    got = two_rater_agreement(table)
    assert got["observed"] == pytest.approx(0.85)
    assert got["kappa"] == pytest.approx(0.7)
    assert got["pabak"] == pytest.approx(0.7)
    assert got["ac1"] == pytest.approx(0.35125 / 0.50125)
    a = np.repeat([0, 0, 1, 1], [45, 5, 10, 40])
    b = np.repeat([0, 1, 0, 1], [45, 5, 10, 40])
    assert got["kappa"] == pytest.approx(cohen_kappa_score(a, b))


def test_kappa_paradox_worked_by_hand():
    # a=90 both yes, b=5, c=5, d=0: Po = 0.90, both say yes 95% of the time
    # Pe = 0.95² + 0.05² = 0.905 -> kappa = (0.90 - 0.905)/0.095 = -1/19 = -0.0526
    # PABAK = 2·0.9 - 1 = 0.8; AC1: Pe = 2·0.95·0.05 = 0.095 -> (0.9 - 0.095)/0.905 = 0.889503
    got = two_rater_agreement([[0, 5], [5, 90]])
    assert got["kappa"] == pytest.approx(-1 / 19)
    assert got["pabak"] == pytest.approx(0.8)
    assert got["ac1"] == pytest.approx(0.805 / 0.905)


def test_three_categories_generalised_pabak_and_ac1():
    # Po = (20 + 30 + 35)/100 = 0.85; PABAK = (3·0.85 - 1)/(3 - 1) = 0.775
    # A margins .25 .35 .40, B margins .24 .39 .37 -> pi = .245 .37 .385
    # Pe(AC1) = (.245·.755 + .37·.63 + .385·.615)/2 = 0.65485/2 = 0.327425
    # AC1 = (0.85 - 0.327425)/(1 - 0.327425) = 0.522575/0.672575
    table = np.array([[20, 5, 0], [3, 30, 2], [1, 4, 35]])
    got = two_rater_agreement(table)
    assert got["pabak"] == pytest.approx(0.775)
    assert got["ac1"] == pytest.approx(0.522575 / 0.672575)
    a = np.repeat(np.repeat([0, 1, 2], 3), table.ravel())
    b = np.repeat(np.tile([0, 1, 2], 3), table.ravel())
    assert got["kappa"] == pytest.approx(cohen_kappa_score(a, b))


# --------------------------------------------------------------------------- the round report


@pytest.fixture(scope="module")
def small_round() -> Round:
    rnd = make_round(120, seed=3)
    for report in list(rnd.reports.values())[:40]:  # the senior sometimes uses a code no coder used
        if report.senior is not None:
            extra = Annotation(report.report_id, "senior", "T90", "Dx", ((0, 3),), report.text[:3], "Z99.9")
            report.senior.append(extra)
    return rnd


@pytest.fixture(scope="module")
def report(small_round) -> dict:
    return agreement(small_round, AgreementConfig(bootstrap=200, min_pair_reports=50))


@pytest.mark.parametrize("unit", ["report_code", "sentence_focus", "token_code"])
def test_pairs_match_sklearn(small_round, report, unit):
    got = report["units"][unit]
    assert [(p["a"], p["b"]) for p in got["pairs"]] == [("c1", "c2"), ("c1", "c3"), ("c2", "c3")]
    assert [p["b"] for p in got["senior"]] == ["c1", "c2", "c3"]
    for row in got["pairs"] + got["senior"]:
        codes, ratings = dense_ratings(small_round, unit, senior=row["a"] == "senior")
        x, y = pair_vectors(ratings, row["a"], row["b"])
        assert row["n_items"] == len(x)
        assert row["kappa"] == pytest.approx(cohen_kappa_score(x, y), abs=1e-6)
        assert row["observed"] == pytest.approx(np.mean(x == y), abs=1e-6)
        k = len(codes) + 1 if unit == "token_code" else 2
        assert row["pabak"] == pytest.approx((k * np.mean(x == y) - 1) / (k - 1), abs=1e-6)
        table = np.zeros((k, k))
        np.add.at(table, (x, y), 1)
        assert row["ac1"] == pytest.approx(two_rater_agreement(table)["ac1"], abs=1e-6)
        lo, hi = row["ci95"]
        assert lo <= row["kappa"] <= hi


@pytest.mark.parametrize("unit", ["report_code", "sentence_focus", "token_code"])
def test_fleiss_and_alpha_match_statsmodels_and_krippendorff(small_round, report, unit):
    codes, ratings = dense_ratings(small_round, unit)
    data, per_report = multi_table(ratings, ["c1", "c2", "c3"])
    got = report["units"][unit]
    n_cat = len(codes) + 1 if unit == "token_code" else 2
    assert got["fleiss"]["raters_per_report"] == 2
    assert got["fleiss"]["value"] == pytest.approx(fleiss_oracle(per_report, n_cat), abs=1e-6)
    assert "modal number of coders (2)" in got["fleiss"]["note"]
    assert got["alpha"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), abs=1e-6)
    for figure in (got["fleiss"], got["alpha"]):
        lo, hi = figure["ci95"]
        assert lo <= figure["value"] <= hi


def test_per_code_kappa_and_alpha(small_round, report):
    codes, ratings = dense_ratings(small_round, "report_code")
    data, per_report = multi_table(ratings, ["c1", "c2", "c3"])
    got = report["units"]["report_code"]
    support = {c: int(np.nansum(data[:, i::len(codes)])) for i, c in enumerate(codes)}
    listed = [r["code"] for r in got["per_code"]]
    assert listed == sorted(c for c in codes if support[c] >= 5)
    assert got["codes_below_support"] == sum(s < 5 for s in support.values())
    for row in got["per_code"]:
        i = codes.index(row["code"])
        assert row["support"] == support[row["code"]]
        one_code = [b[:, i:i + 1] for b in per_report]
        assert row["kappa"] == pytest.approx(fleiss_oracle(one_code, 2), abs=1e-6)
        alpha = krippendorff.alpha(reliability_data=data[:, i::len(codes)], level_of_measurement="nominal")
        assert row["alpha"] == pytest.approx(alpha, abs=1e-6)
        if row["ci95"]:
            assert row["ci95"][0] <= row["kappa"] <= row["ci95"][1]


def test_bootstrap_resamples_reports(small_round):
    """The CI is the percentile interval of sklearn's kappa on each replicate's draw of reports."""
    n_boot = 40
    got = agreement(small_round, AgreementConfig(bootstrap=n_boot, seed=11))["units"]["report_code"]["pairs"][0]
    _, ratings = dense_ratings(small_round, "report_code")
    draws = np.concatenate(list(bootstrap_draws(len(small_round.reports), n_boot, 11)))
    kappas = []
    for draw in draws:
        x = [ratings["c1"][i] for i in draw]
        y = [ratings["c2"][i] for i in draw]
        kappas.append(cohen_kappa_score(*pair_vectors({"c1": x, "c2": y}, "c1", "c2")))
    assert got["ci95"] == pytest.approx(list(np.percentile(kappas, [2.5, 97.5])), abs=1e-6)


def test_bootstrap_reproducible_per_seed(small_round):
    def ci(seed: int) -> list:
        out = agreement(small_round, AgreementConfig(bootstrap=100, seed=seed))
        return [p["ci95"] for p in out["units"]["token_code"]["pairs"]]

    assert ci(5) == ci(5)
    assert ci(5) != ci(6)


def test_no_bootstrap_gives_no_intervals(small_round):
    out = agreement(small_round, AgreementConfig(bootstrap=0))
    assert all(p["ci95"] is None for p in out["units"]["report_code"]["pairs"])
    assert out["units"]["report_code"]["fleiss"]["ci95"] is None


def test_output_is_stable_json(small_round, report):
    again = agreement(small_round, AgreementConfig(bootstrap=200, min_pair_reports=50))
    assert json.dumps(report, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert report["round_id"] == "test-round"
    assert report["code_set_size"] == 30 and report["senior_only_codes"] == 1
    assert set(report["units"]) == {"report_code", "sentence_focus", "token_code"}
    assert report["units"]["report_code"]["unit"] == "report × code presence"
    assert report["span_f1"]["status"] == "ok"
    assert [(p["a"], p["b"]) for p in report["span_f1"]["instance"]["pairs"]] == [
        ("c1", "c2"), ("c1", "c3"), ("c2", "c3")]


def test_warnings_a_statistician_would_give(report):
    text = "\n".join(report["warnings"])
    assert "c1–c2: only" in text and "(fewer than 50)" in text  # ~40 shared reports per pair
    assert "positive ratings; their kappa would be unstable" in text
    assert "codes have kappa below 0.6" in text


def test_kappa_paradox_warning():
    # one very common code both always use: high observed agreement; the disagreements are rare codes
    rnd = make_round(60, seed=1, n_codes=3, senior_share=0)
    for r, report in enumerate(rnd.reports.values()):
        for coder, anns in report.coders.items():
            keep = [a for a in anns if a.code != "C02.2"]
            if r % 10 == 0 and coder == min(report.coders):
                keep.append(Annotation(report.report_id, coder, "T99", "Dx", ((0, 1),), report.text[:1], "C02.2"))
            report.coders[coder] = keep
    out = agreement(rnd, AgreementConfig(bootstrap=0, min_pair_reports=5))
    assert any("kappa paradox" in w and "PABAK" in w for w in out["warnings"])


def test_single_coder_round_gives_status_not_exception():
    rnd = make_round(20, seed=2, coders=("coder1",), senior_share=0)
    out = agreement(rnd)
    for unit in out["units"].values():
        assert unit["status"] == NEEDS_TWO
        assert unit["pairs"] == [] and unit["senior"] == []
        assert unit["fleiss"]["value"] is None and unit["fleiss"]["status"] == NEEDS_TWO
        assert unit["alpha"]["value"] is None
    assert out["units"]["report_code"]["per_code"] == []
    assert out["span_f1"]["status"] == NEEDS_TWO
    assert any(NEEDS_TWO in w for w in out["warnings"])
    json.dumps(out)


def test_single_coder_with_senior_still_compares_the_senior():
    rnd = make_round(40, seed=4, coders=("coder1",), senior_share=1.0)
    out = agreement(rnd, AgreementConfig(bootstrap=50))
    senior = out["units"]["report_code"]["senior"]
    assert [(s["a"], s["b"]) for s in senior] == [("senior", "coder1")]
    assert senior[0]["kappa"] is not None
    assert out["units"]["report_code"]["status"] == NEEDS_TWO


def test_custom_segmenter_and_tokenizer(small_round):
    """Any callable works: whole reports as one sentence, whitespace tokens."""
    def one_sentence(text):
        return [(0, len(text))]

    out = agreement(small_round, AgreementConfig(bootstrap=0), segmenter=one_sentence,
                    tokenizer=lambda t: [(i, i + 1) for i, ch in enumerate(t) if not ch.isspace()])
    focus = out["units"]["sentence_focus"]
    assert focus["n_items"] == len(small_round.reports)
    assert out["units"]["token_code"]["n_items"] == sum(
        sum(not ch.isspace() for ch in r.text) for r in small_round.reports.values())


def test_large_round_is_fast():
    rnd = make_round(6000, seed=9, n_codes=300)
    start = time.perf_counter()
    out = agreement(rnd, AgreementConfig(bootstrap=1000))
    assert time.perf_counter() - start < 10
    assert out["units"]["report_code"]["pairs"][0]["ci95"] is not None


def test_pairs_without_shared_reports():
    rnd = make_round(30, seed=5, senior_share=0)
    for report in rnd.reports.values():  # c3 only ever codes alone
        if "c3" in report.coders:
            report.coders = {"c3": report.coders["c3"]}
    out = agreement(rnd, AgreementConfig(bootstrap=20))
    pairs = {(p["a"], p["b"]): p for p in out["units"]["report_code"]["pairs"]}
    assert pairs[("c1", "c3")]["status"] == "no reports coded by both"
    assert pairs[("c1", "c3")]["kappa"] is None and pairs[("c1", "c3")]["ci95"] is None
    assert pairs[("c1", "c2")]["kappa"] is not None


def test_each_unit_names_its_unit(report):
    assert {name: unit["unit"] for name, unit in report["units"].items()} == UNITS
    assert all(len(list(combinations(report["coders"], 2))) == len(u["pairs"]) for u in report["units"].values())


def test_degenerate_rounds_do_not_crash():
    empty = Round(Path("/x"), RoundConfig(id="empty"), "round", {}, ["a", "b"], [], False)
    nothing_coded = Round(Path("/x"), RoundConfig(id="bare"), "round",
                          {"r1": Report("r1", "Some text. More text.", coders={"a": [], "b": []})}, ["a", "b"], [],
                          False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = agreement(empty)
        assert out["units"]["report_code"]["pairs"][0]["status"] == "no reports coded by both"
        out = agreement(nothing_coded)
    for unit in out["units"].values():
        assert unit["pairs"][0]["kappa"] is None and unit["pairs"][0]["status"].startswith("kappa undefined")
    json.dumps(out)


def test_synthetic_round_from_disk(tmp_path):
    """The real path: a synthetic round written as BRAT, loaded, and checked against sklearn."""
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import generate_round

    generate_round(tmp_path / "round", 150, seed=5)
    rnd = load_round(tmp_path / "round")
    out = agreement(rnd, AgreementConfig(bootstrap=100))
    assert out["coders"] == sorted(rnd.coders) and out["n_reports"] == len(rnd.reports)
    for unit in ("report_code", "token_code"):
        for row in out["units"][unit]["pairs"] + out["units"][unit]["senior"]:
            _, ratings = dense_ratings(rnd, unit, senior=row["a"] == "senior")
            x, y = pair_vectors(ratings, row["a"], row["b"])
            assert row["kappa"] == pytest.approx(cohen_kappa_score(x, y), abs=1e-6)
    assert out["span_f1"]["instance"]["mean"] is not None
    json.dumps(out)
