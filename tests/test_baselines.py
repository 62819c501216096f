"""Baselines: binary relevance on a small synthetic data set, the phrase dictionary by hand."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hiericd_core.baselines import (
    BaselineConfig,
    BinaryRelevance,
    Corpus,
    MajorityCode,
    PhraseDictionary,
    corpus_from_merged,
    fit_baseline,
    fit_binary_relevance,
    fit_phrase_dictionary,
    fold_token,
    load_corpus,
    phrase_tokens,
    phrases_from_sentences,
    rank_codes,
    run_baselines,
    run_baselines_merged,
    tune_cut,
)
from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
from hiericd_core.evaluate import codiesp_map, end_to_end_scores, mean_average_precision
from hiericd_core.merge import merge_round
from hiericd_core.merge_write import write_merge
from hiericd_core.rounds import load_round
from hiericd_core.synth import generate_round

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """A 400-report synthetic round, merged, as a data set: ``(data set folder, merged folder)``."""
    tmp = tmp_path_factory.mktemp("baselines")
    generate_round(tmp / "round", 400, seed=1)
    r = load_round(tmp / "round")
    write_merge(merge_round(r), r, tmp / "merged")
    ds = build_dataset([tmp / "merged"], DatasetConfig(min_count=3, workers=1))
    return write_dataset(ds, tmp / "ds"), tmp / "merged"


@pytest.fixture(scope="module")
def corpora(synthetic):
    folder, _ = synthetic
    return load_corpus(folder, "train"), load_corpus(folder, "test")


def micro_f1(corpus, predictions) -> float:
    return end_to_end_scores(corpus.gold(), dict(zip(corpus.report_ids, predictions, strict=True))).micro.f1


# ---------------------------------------------------------------- binary relevance


@pytest.mark.parametrize("kind", ["lr", "svm"])
def test_binary_relevance_beats_the_majority_code_and_survives_save_load(kind, synthetic, corpora, tmp_path):
    folder, _ = synthetic
    train, test = corpora
    label_space = json.loads((folder / "label_space.json").read_text())["codes"]
    config = BaselineConfig()
    model = fit_binary_relevance(train.inputs(True), train.codes, label_space, kind, config)
    assert set(model.labels) <= set(label_space)
    predicted = model.predict(test.inputs(True))
    assert len(predicted) == len(test.report_ids)
    assert all(p and p <= set(model.labels) for p in predicted)  # never empty, always in the label space
    majority = MajorityCode.fit(train.codes).predict(list(test.texts))
    ours, floor = micro_f1(test, predicted), micro_f1(test, majority)
    assert ours > floor + 0.1, (ours, floor)

    model.save(tmp_path / kind)
    again = BinaryRelevance.load(tmp_path / kind)
    assert again.config == config and again.labels == model.labels and again.kind == kind
    assert again.predict(test.inputs(True)) == predicted


def test_a_report_with_no_code_over_the_cut_gets_its_best_code():
    texts = ["alpha beta gamma", "alpha beta delta", "gamma delta epsilon", "epsilon zeta eta"] * 3
    codes = [{"X"}, {"X"}, {"Y"}, set()] * 3
    config = BaselineConfig(min_df=1, max_df=1.0, lr_threshold=1.1)  # no probability reaches the cut
    model = fit_binary_relevance(texts, codes, ["X", "Y", "UNSEEN"], "lr", config)
    assert model.labels == ["X", "Y"]  # a code no training report carries is left out
    assert model.predict(["alpha beta", "epsilon delta gamma"]) == [{"X"}, {"Y"}]
    with pytest.raises(ValueError, match="unknown baseline kind"):
        fit_binary_relevance(texts, codes, ["X"], "knn", config)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("knn", Corpus(("r",), ("alpha",), ("",), (frozenset({"X"}),)), ["X"])


# ---------------------------------------------------------------- phrase dictionary


def test_phrase_dictionary_by_hand():
    d = fit_phrase_dictionary([
        ("Invasive ductal carcinoma", "C50.912"),
        ("invasive ductal  carcinoma", "C50.911"),  # case and spacing do not make a new phrase
        ("INVASIVE DUCTAL CARCINOMA", "C50.912"),
        ("carcinoma", "C80.1"),
        ("invasive ductal", "C50.919"),  # starts where the longer phrase starts
        ("polyp , mild", "K63.5"),  # as the sentence masks give it: tokens joined by spaces
        ("...", "R69"),  # punctuation only: skipped
    ])
    # two votes for C50.912 against one for C50.911
    assert d.entries == {"invasive ductal carcinoma": ("C50.912", 2), "carcinoma": ("C80.1", 1),
                         "invasive ductal": ("C50.919", 1), "polyp , mild": ("K63.5", 1)}
    text = "Left breast: INVASIVE Ductal Carcinoma. Carcinomas elsewhere? No. Polyp, mild; carcinoma."
    #       0         1         2         3         4         5         6         7         8
    #       01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678
    # the longest phrase wins at 13 (not "invasive ductal"; its inner "carcinoma" is not counted again); "Carcinomas" is
    # another word; "Polyp, mild" matches "polyp , mild" token by token; the last "carcinoma" matches
    assert d.find(text) == [(13, 38, "invasive ductal carcinoma", "C50.912"),
                            (66, 77, "polyp , mild", "K63.5"),
                            (79, 88, "carcinoma", "C80.1")]
    assert d.predict([text, "carcinomas only", ""]) == [{"C50.912", "K63.5", "C80.1"}, set(), set()]


def test_phrase_dictionary_ties_min_count_and_save_load(tmp_path):
    d = fit_phrase_dictionary([("mass", "R22.9"), ("mass", "D48.9"), ("cyst", "N60.0")], min_count=2)
    assert d.entries == {"mass": ("D48.9", 1)}  # a tie goes to the code that sorts first; "cyst" is too rare
    d.save(tmp_path)
    assert PhraseDictionary.load(tmp_path).entries == d.entries
    assert phrase_tokens("Ca-125, 3.5 U/mL") == ("ca", "-", "125", ",", "3", ".", "5", "u", "/", "ml")


def test_phrases_from_sentence_masks():
    tokens = [["Irritated", "seborrheic", "keratosis", "."], ["No", "tumor", "."], ["Margins", "clear", "."]]
    masks = [[1, 1, 1, 0], [1, 1, 0], [0, 0, 0]]
    codes = [["L82.1"], ["C77.3", "D24.2"], []]
    # the two-code sentence cannot say which tokens belong to which code: skipped
    assert phrases_from_sentences(tokens, masks, codes) == [("Irritated seborrheic keratosis", "L82.1")]


def test_phrase_dictionary_on_the_synthetic_data_set(corpora):
    train, test = corpora
    d = fit_phrase_dictionary(train.phrases)
    assert len(d.entries) > 20
    ours = micro_f1(test, d.predict(list(test.texts)))
    floor = micro_f1(test, MajorityCode.fit(train.codes).predict(list(test.texts)))
    assert ours > 0.3 and ours > floor + 0.1, (ours, floor)


# ---------------------------------------------------------------- running


def test_run_baselines_on_a_data_set(synthetic, tmp_path):
    with pytest.raises(FileNotFoundError, match="hiericd datasets"):
        run_baselines(tmp_path)
    folder, merged = synthetic
    results = run_baselines(folder, "test", out=tmp_path / "models")
    assert set(results) == {"lr", "svm", "phrase_dictionary", "majority"}
    test = load_corpus(folder, "test")
    for name, result in results.items():
        assert set(result["predictions"]) == set(test.report_ids)
        again = end_to_end_scores(test.gold(), result["predictions"])
        assert result["metrics"]["micro"]["f1"] == again.micro.f1, name
        assert result["metrics"]["reports"] == len(test.report_ids)
    assert results["lr"]["metrics"]["micro"]["f1"] > results["majority"]["metrics"]["micro"]["f1"]
    assert (tmp_path / "models" / "svm" / "model.joblib").is_file()
    assert PhraseDictionary.load(tmp_path / "models" / "phrase_dictionary").entries

    # phrases from the merged annotations of the training reports instead of the sentence masks
    from_merged = run_baselines(folder, "test", merged_dirs=[merged])
    assert from_merged["phrase_dictionary"]["metrics"]["micro"]["f1"] > 0.3
    assert from_merged["lr"]["predictions"] == results["lr"]["predictions"]


def test_codiesp_train_to_dev_from_merged_rounds(tmp_path):
    toml = ('[round]\nid = "cs-{0}"\nlanguage = "es"\n[codes]\nlabels = ["Diagnosis"]\n'
            'accept = ["billable", "category", "incomplete"]\n')
    merged = {}
    for split in ("train", "dev"):
        src = tmp_path / split
        shutil.copytree(FIXTURES / "codiesp-sample" / split, src)
        (src / "round.toml").write_text(toml.format(split), encoding="utf-8")
        r = load_round(src)
        write_merge(merge_round(r), r, tmp_path / "merged" / split)
        merged[split] = tmp_path / "merged" / split
    train = corpus_from_merged([merged["train"]])
    assert train.phrases and all(codes for codes in train.codes)
    assert {code for _, code in train.phrases} == {c for codes in train.codes for c in codes}
    results = run_baselines_merged([merged["train"]], [merged["dev"]], min_count=2,
                                   config=BaselineConfig(min_df=1))
    dev = corpus_from_merged([merged["dev"]])
    assert set(results["phrase_dictionary"]["predictions"]) == set(dev.report_ids)
    assert results["lr"]["metrics"]["reports"] == len(dev.report_ids)


# ---------------------------------------------------------------- beyond the paper: cuts, folding, reliability


def test_tune_cut_picks_the_best_dev_micro_f1_by_hand():
    texts = ["alpha beta", "alpha gamma", "beta gamma", "delta epsilon"] * 3
    codes = [{"X", "Y"}, {"X"}, {"Y"}, {"Z"}] * 3
    model = fit_binary_relevance(texts, codes, ["X", "Y", "Z"], "lr", BaselineConfig(min_df=1, max_df=1.0))
    dev = Corpus(("a", "b"), ("alpha beta", "delta"), ("", ""), (frozenset({"X", "Y"}), frozenset({"Z"})))
    scores = model.scores(dev.inputs(True))
    cut, curve = tune_cut(model, dev, cuts=[0.9, 0.5, 0.3, 0.0])
    # worked from the scores: each cut's code sets, then micro F1 = 2 tp / (|P| + |G|)
    for c in (0.9, 0.5, 0.3, 0.0):
        chosen = [{lab for lab, s in zip(model.labels, row, strict=True) if s >= c}
                  or {model.labels[int(np.argmax(row))]} for row in scores]
        tp = len(chosen[0] & {"X", "Y"}) + len(chosen[1] & {"Z"})
        assert curve[c] == pytest.approx(2 * tp / (len(chosen[0]) + len(chosen[1]) + 3))
    assert curve[0.0] == pytest.approx(2 * 3 / (6 + 3))  # every code for both reports
    assert cut == max(sorted(curve, reverse=True), key=lambda k: curve[k])
    tuned = model.with_cut(cut)
    assert tuned.cut == cut and model.cut == 0.5 and tuned.classifier is model.classifier
    svm = fit_binary_relevance(texts, codes, ["X", "Y", "Z"], "svm", BaselineConfig(min_df=1, max_df=1.0))
    assert svm.with_cut(-0.4).config.svm_threshold == -0.4 and svm.cut == 0.0


def test_run_baselines_tunes_the_cuts_on_dev(synthetic):
    folder, _ = synthetic
    results = run_baselines(folder, "test")
    dev = load_corpus(folder, "dev")
    for name in ("lr", "svm"):
        curve = {float(k): v for k, v in results[name]["cut_curve"].items()}
        assert results[name]["cut"] == max(sorted(curve, reverse=True), key=lambda k: curve[k])
        model = fit_baseline(name, load_corpus(folder, "train"), json.loads(
            (folder / "label_space.json").read_text())["codes"])
        assert tune_cut(model, dev)[0] == results[name]["cut"]
    untuned = run_baselines(folder, "test", tune_split=None)
    assert untuned["lr"]["cut"] == 0.5 and "cut_curve" not in untuned["lr"]


def test_fold_token_meets_inflections_and_keeps_short_words():
    assert fold_token("lesiones") == fold_token("lesión") == "lesion"
    assert fold_token("infecciosas") == fold_token("infecciosa") == fold_token("infeccioso") == "infeccios"
    assert fold_token("enfermedades") == "enfermedad" and fold_token("tumores") == "tumor"
    assert fold_token("año") == "año" != fold_token("ano")  # the tilde stays
    assert fold_token("masa") == "masa" and fold_token("vih") == "vih" and fold_token("c3") == "c3"
    d = fit_phrase_dictionary([("lesión mucosa yugal", "K13.70"), ("lesiones mucosa yugal", "K13.70")], fold=True)
    assert d.entries == {"lesion mucos yugal": ("K13.70", 2)}
    assert d.find("Presenta Lesiones mucosas yugales.") == [(9, 33, "lesion mucos yugal", "K13.70")]
    assert fit_phrase_dictionary([("lesión mucosa yugal", "K13.70")]).find("lesiones mucosa yugal") == []


def test_phrase_reliability_and_pruning_by_hand(tmp_path):
    d = fit_phrase_dictionary([("dolor", "R52"), ("dolor torácico", "R07.9"), ("fiebre", "R50.9")])
    texts = ["Dolor y fiebre.", "Sin dolor.", "Dolor torácico. Dolor.", "Fiebre alta."]
    codes = [{"R52", "R50.9"}, set(), {"R07.9"}, {"R50.9"}]
    calibrated = d.calibrate(texts, codes)
    # "dolor" found in reports 1, 2, 3 (once per report however often), its code R52 gold only in report 1
    exact = {p: r for p, r in calibrated.reliability.items() if not p.startswith("~ ")}
    assert exact == {"dolor": pytest.approx(1 / 3), "dolor torácico": 1.0, "fiebre": 1.0}
    # the loose keys (content words in any order) are measured the same way, on every window that holds them
    loose = {p: r for p, r in calibrated.reliability.items() if p.startswith("~ ")}
    assert loose == {"~ dolor": pytest.approx(1 / 3), "~ dolor torácico": 1.0, "~ fiebre": 1.0}
    pruned = calibrated.pruned(0.5)
    assert set(pruned.entries) == {"dolor torácico", "fiebre"}
    assert pruned.predict(["Dolor torácico y dolor."]) == [{"R07.9"}]
    calibrated.save(tmp_path)
    again = PhraseDictionary.load(tmp_path)
    assert again.entries == d.entries and again.reliability == calibrated.reliability and not again.fold


# ---------------------------------------------------------------- ranked codes


@pytest.mark.parametrize("kind", ["lr", "svm"])
def test_binary_relevance_ranks_every_code_by_its_score(kind):
    texts = ["alpha beta gamma", "alpha beta delta", "gamma delta epsilon", "epsilon zeta eta"] * 3
    codes = [{"X"}, {"X", "Z"}, {"Y"}, {"Z"}] * 3
    model = fit_binary_relevance(texts, codes, ["X", "Y", "Z"], kind, BaselineConfig(min_df=1, max_df=1.0))
    queries = ["alpha beta", "epsilon delta gamma", "zeta"]
    predicted, ranked = rank_codes(model, queries)
    assert predicted == model.predict(queries)  # the same codes as without ranking
    scores = model.scores(queries)
    for row, ranking, codes_ in zip(scores, ranked, predicted, strict=True):
        assert sorted(ranking) == model.labels
        assert [row[model.labels.index(c)] for c in ranking] == sorted(row, reverse=True)
        assert set(ranking[: len(codes_)]) == codes_  # codes over the cut are the best scored
    assert rank_codes(model, []) == ([], [])


def test_phrase_dictionary_and_majority_rank_their_codes_by_training_frequency():
    d = fit_phrase_dictionary([("polyp", "K63.5"), ("adenoma", "D12.5"), ("carcinoma", "C18.7")])
    counts = {"K63.5": 2, "D12.5": 9, "C18.7": 2}
    predicted, ranked = rank_codes(d, ["carcinoma and polyp and adenoma", "nothing"], counts)
    assert predicted == [{"K63.5", "D12.5", "C18.7"}, set()]
    assert ranked == [["D12.5", "C18.7", "K63.5"], []]  # 9 reports first, then the tie of 2 by code
    assert rank_codes(MajorityCode("D12.5"), ["a", "b"], counts) == ([{"D12.5"}, {"D12.5"}], [["D12.5"], ["D12.5"]])


def test_run_baselines_reports_both_maps_of_their_rankings(synthetic):
    folder, _ = synthetic
    results = run_baselines(folder, "test")
    test = load_corpus(folder, "test")
    gold = test.gold()
    for name, result in results.items():
        assert set(result["ranked"]) == set(test.report_ids), name
        assert result["metrics"]["map"] == pytest.approx(mean_average_precision(gold, result["ranked"])), name
        submitted = {rid: sorted(codes) for rid, codes in result["predictions"].items()}
        assert result["metrics"]["map_codiesp"] == pytest.approx(codiesp_map(gold, submitted)), name
        for rid, codes in result["predictions"].items():
            assert set(result["ranked"][rid][: len(codes)]) == codes, name
    # LR ranks every label-space code, so its trec_eval MAP is at least that of its predicted codes alone
    lr = results["lr"]
    assert lr["metrics"]["map"] >= mean_average_precision(
        gold, {rid: codes[: len(lr["predictions"][rid])] for rid, codes in lr["ranked"].items()})
