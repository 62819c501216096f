"""The honest protocol: folds, cross-validated rules and epochs, the final fit, per-phrase classifier rows."""

import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer
from test_train import TINY, small_dataset
from typer.testing import CliRunner

from hiericd_core.baselines import (
    BaselineConfig,
    cross_validated_cut,
    fit_binary_relevance,
    load_corpus,
    phrases_from_sentences,
)
from hiericd_core.cli import app
from hiericd_core.datasets import assign_folds
from hiericd_core.embeddings import Vocabulary
from hiericd_core.infer import InferenceConfig, Predictor, top_indices
from hiericd_core.infer_dataset import add_phrase_memory, split_documents
from hiericd_core.trainsets import read_classifier_splits
from hiericd_core.tune import TUNING_FILE, cross_validate, default_grid, fit_final, tune_model

GRID = [("paper", True, InferenceConfig()),
        ("memory alone", True, InferenceConfig(phrase_memory="report", min_probability=1.01, fallback=False)),
        ("memory + classifier p >= 0.5", True, InferenceConfig(phrase_memory="report", min_probability=0.5)),
        ("memory as written + classifier", False, InferenceConfig(phrase_memory="report"))]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return small_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def tuned(dataset, tmp_path_factory):
    work = tmp_path_factory.mktemp("cv")
    return work, cross_validate(dataset, work, TINY, folds=2, grid=GRID)


def train_ids(dataset):
    table = pq.read_table(dataset / "reports.parquet", columns=["report_id", "split"]).to_pydict()
    return sorted(r for r, s in zip(table["report_id"], table["split"], strict=True) if s == "train")


def test_folds_are_balanced_stable_and_seeded():
    ids = [f"r{i}" for i in range(103)]
    folds = assign_folds(ids, 5)
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 103
    assert assign_folds(list(reversed(ids)), 5) == folds  # the input order does not matter
    assert assign_folds(ids, 5, seed=14) != folds
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(ids, 1)
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        assign_folds(ids[:3], 5)


def test_top_indices_is_a_stable_argsort_prefix():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        p = rng.integers(0, 4, int(rng.integers(1, 25))) / 3.0  # many ties
        k = int(rng.integers(1, 5))
        assert top_indices(p, k) == np.argsort(-p, kind="stable")[:k].tolist()


def test_phrases_from_per_code_masks_by_hand():
    tokens = [["No", "tumor", "in", "nodes"], ["fever", "and", "cough"]]
    masks = [[1, 1, 0, 0], [1, 0, 1]]
    codes = [["C77.3", "D24.2"], ["R05", "R50.9"]]
    code_masks = [[[1, 1, 0, 0], [0, 1, 0, 0]], [[0, 0, 1], [1, 0, 0]]]
    assert phrases_from_sentences(tokens, masks, codes, code_masks) == [
        ("No tumor", "C77.3"), ("tumor", "D24.2"), ("cough", "R05"), ("fever", "R50.9")]
    assert phrases_from_sentences(tokens, masks, codes) == []  # one mask cannot be split by code


def test_every_phrase_gives_a_classifier_row_with_its_own_mask(dataset):
    labels = json.loads((dataset / "label_space.json").read_text())["codes"]
    index = {c: i for i, c in enumerate(labels)}
    vocab = Vocabulary.build([["x"]], 1)
    single = read_classifier_splits(dataset, vocab, index, use_r4v=False, max_tokens=1000)
    phrases = read_classifier_splits(dataset, vocab, index, use_r4v=False, max_tokens=1000, examples="phrases")
    t = pq.read_table(dataset / "sentences.parquet").to_pydict()
    expected = [(c, m) for split, focus, codes, masks in zip(t["split"], t["is_focus"], t["codes"], t["code_masks"],
                                                             strict=True)
                if split == "train" and focus for c, m in zip(codes, masks, strict=True) if c in index]
    multi = sum(1 for s, n in zip(t["split"], t["n_codes"], strict=True) if s == "train" and n > 1)
    assert multi > 0 and len(phrases["train"]) == len(expected) > len(single["train"])
    assert [labels[k] for k in phrases["train"].labels] == [c for c, _ in expected]
    assert all(phrases["train"].masks[i].tolist() == m for i, (_, m) in enumerate(expected))
    # dev is the paper's rows either way: early stopping compares like with like
    assert phrases["dev"].labels.tolist() == single["dev"].labels.tolist()


def test_cross_validation_scores_every_training_report_once_out_of_fold(dataset, tuned):
    work, tuning = tuned
    ids = train_ids(dataset)
    assert tuning["reports"] == len(ids) and tuning["folds"] == 2
    assert [r["rule"] for r in tuning["rules"]] == [name for name, _, _ in GRID]
    assert tuning["best"] == max(tuning["rules"], key=lambda r: r["micro_f1"])
    folds = assign_folds(ids, 2)
    for f in (1, 2):  # each fold model trained on the other fold only, and judged on its own
        reports = pq.read_table(work / f"fold-{f}" / "dataset" / "reports.parquet").to_pydict()
        split = dict(zip(reports["report_id"], reports["split"], strict=True))
        assert sorted(r for r in ids if split[r] == "dev") == sorted(r for r in ids if folds[r] == f - 1)
        assert not {r for r, s in split.items() if s in ("dev", "train")} - set(ids)
    assert all(len(v["per_fold"]) == 2 and v["median"] >= 1 for v in tuning["epochs"].values())


def test_the_pooled_out_of_fold_f1_matches_scikit_learn(dataset, tuned):
    """Recode each held-out fold with its fold model under the last rule and pool with sklearn's micro F1."""
    work, tuning = tuned
    name, fold, rule = GRID[-1]
    gold, pred = [], []
    for f in (1, 2):
        model, data = work / f"fold-{f}" / "model", work / f"fold-{f}" / "dataset"
        add_phrase_memory(model, data, rule, fold=fold)
        docs, fold_gold = split_documents(data, "dev")
        results, _ = Predictor.load(model, config=rule).code_segmented(docs, 64)
        coded = {r.report_id: {c.code for c in r.codes} for r in results}
        for rid in sorted(fold_gold):
            gold.append(fold_gold[rid])
            pred.append(coded.get(rid, set()))
    binarizer = MultiLabelBinarizer().fit(gold + pred)
    expected = f1_score(binarizer.transform(gold), binarizer.transform(pred), average="micro", zero_division=0)
    row = next(r for r in tuning["rules"] if r["rule"] == name)
    assert row["micro_f1"] == pytest.approx(expected)


def test_the_final_fit_trains_the_tuned_epochs_on_train_and_dev(dataset, tuned, tmp_path):
    _, tuning = tuned
    result = fit_final(dataset, tmp_path / "final", TINY, tuning, splits=("train", "dev"))
    for stage in ("tagger", "classifier"):
        assert result[stage]["stopped"] == "fixed_epochs"
        assert len(result[stage]["history"]) == tuning["epochs"][stage]["median"]
    trained = result["train"]["sentences"]
    counts = pq.read_table(dataset / "sentences.parquet", columns=["split"]).column("split").to_pylist()
    assert trained == counts.count("train") + counts.count("dev")
    model = tmp_path / "final"
    assert json.loads((model / "inference.json").read_text()) == tuning["best"]["config"]
    assert json.loads((model / TUNING_FILE).read_text())["best"] == tuning["best"]
    assert not list(model.glob(".tmp-hiericd-*"))  # the scratch data set is gone
    docs, _ = split_documents(dataset, "test")
    results, _ = Predictor.load(model).code_segmented(docs[:5], 64)  # ready to code as it is
    assert len(results) == 5 and all(r.codes for r in results if tuning["best"]["config"]["fallback"])


def test_tune_model_writes_the_rule_into_a_trained_folder(dataset, tuned, tmp_path):
    from hiericd_core.train import train_model

    _, tuning = tuned
    model = tmp_path / "m"
    train_model(dataset, model, TINY)
    before = (model / "classifier.pt").read_bytes()
    info = tune_model(model, dataset, folds=2, work_dir=tmp_path / "work")
    # the folds train with the model's own settings (TINY, as the fixture's): the paper's rule scores the same
    assert info["tuning"]["rules"][0]["rule"].startswith("paper")
    assert info["tuning"]["rules"][0]["micro_f1"] == tuning["rules"][0]["micro_f1"]
    assert len(info["tuning"]["rules"]) == len(default_grid())
    assert json.loads((model / "inference.json").read_text()) == info["config"]
    assert (model / "classifier.pt").read_bytes() == before


def test_fixed_epochs_need_no_dev_split(dataset, tmp_path):
    from hiericd_core.train import TrainError, train_model
    from hiericd_core.tune import derive_dataset

    no_dev = derive_dataset(dataset, tmp_path / "ds", lambda _r, s: "train" if s == "train" else "test", {})
    with pytest.raises(TrainError, match="the dev split has 0 reports"):
        train_model(no_dev, tmp_path / "a", TINY)
    result = train_model(no_dev, tmp_path / "b", replace(TINY, early_stopping=False, tagger_epochs=2,
                                                          classifier_epochs=3))
    assert [len(result[s]["history"]) for s in ("tagger", "classifier")] == [2, 3]
    assert result["classifier"]["best_dev"] == {}


def test_cross_validated_cut_pools_the_held_out_scores(dataset):
    train = load_corpus(dataset, "train")
    labels = json.loads((dataset / "label_space.json").read_text())["codes"]
    config = BaselineConfig()
    cut, curve = cross_validated_cut("lr", train, labels, config, folds=2, cuts=(0.5, 0.2))
    folds = assign_folds(train.report_ids, 2)
    texts = train.inputs(config.reason_for_visit)
    gold, pred = [], []
    for f in (0, 1):
        inside = [i for i, r in enumerate(train.report_ids) if folds[r] != f]
        held = [i for i, r in enumerate(train.report_ids) if folds[r] == f]
        model = fit_binary_relevance([texts[i] for i in inside], [train.codes[i] for i in inside], labels,
                                     "lr", config).with_cut(0.2)
        pred += model.predict([texts[i] for i in held])
        gold += [set(train.codes[i]) for i in held]
    binarizer = MultiLabelBinarizer().fit(gold + pred)
    assert curve[0.2] == pytest.approx(f1_score(binarizer.transform(gold), binarizer.transform(pred),
                                                average="micro", zero_division=0))
    assert cut == max((0.5, 0.2), key=lambda c: (curve[c], c))


def test_tune_cli_refuses_what_it_cannot_use(dataset, tmp_path):
    import shutil

    runner = CliRunner()
    unvalidated = tmp_path / "ds"
    unvalidated.mkdir()
    for name in ("manifest.json", "sentences.parquet", "reports.parquet", "label_space.json"):
        shutil.copy(dataset / name, unvalidated / name)
    result = runner.invoke(app, ["tune", str(tmp_path / "m"), str(unvalidated)])
    assert result.exit_code == 2 and "has not passed its Great Expectations gate" in result.output
    (unvalidated / "validation.json").write_text(json.dumps({"success": True}))
    result = runner.invoke(app, ["tune", str(tmp_path / "nothing"), str(unvalidated)])
    assert result.exit_code == 2 and "no train_config.json" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["tune", str(tmp_path), str(unvalidated), "--folds", "1"])
    assert result.exit_code == 2


def test_the_run_records_the_rule_and_how_it_was_chosen(tmp_path):
    from hiericd_core.registry_run import _inference_params

    assert _inference_params(tmp_path)["inference.chosen_by"] == "default"
    rule = {**InferenceConfig(phrase_memory="report").__dict__}
    (tmp_path / "inference.json").write_text(json.dumps(rule))
    assert _inference_params(tmp_path)["inference.phrase_memory"] == "report"
    best = {"rule": "memory + classifier", "micro_f1": 0.61234, "config": rule, "fold": True}
    (tmp_path / TUNING_FILE).write_text(json.dumps({"folds": 5, "reports": 500, "best": best}))
    params = _inference_params(tmp_path)
    assert params["inference.rule"] == "memory + classifier" and params["inference.cv_micro_f1"] == 0.6123
    assert params["inference.chosen_by"] == "5-fold cross-validation over the training split (500 reports)"


def test_the_ranking_puts_phrases_the_rule_left_out_right_after_the_predicted_codes(tuned):
    from hiericd_core.baselines import PhraseDictionary

    work, _ = tuned
    model, data = work / "fold-1" / "model", work / "fold-1" / "dataset"
    rule = InferenceConfig(phrase_memory="report", phrase_min_reliability=0.95, min_probability=0.9)
    add_phrase_memory(model, data, rule)
    memory = PhraseDictionary.load(model)
    docs, _ = split_documents(data, "dev")
    results, _ = Predictor.load(model).code_segmented(docs, 64, ranked=10_000)
    seen_pruned = 0
    for doc, result in zip(docs, results, strict=True):
        found: dict[str, float] = {}
        for sentence in doc.sentences:
            for _, _, phrase, code in memory.find(sentence.text):
                found[code] = max(found.get(code, 0.0), memory.reliability.get(phrase, 1.0))
        n = len(result.codes)
        assert [r.code for r in result.ranking[:n]] == [c.code for c in result.codes]
        expected = [c for c, _ in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
                    if c not in {p.code for p in result.codes}]
        assert [r.code for r in result.ranking[n: n + len(expected)]] == expected
        seen_pruned += sum(1 for c in expected if found[c] < 0.95)
    assert seen_pruned > 0  # the cut left some phrases out, and they rank above the classifier's candidates


def test_loose_matches_meet_a_phrase_in_another_order_and_learn_their_stopwords():
    from hiericd_core.baselines import fit_phrase_dictionary

    phrases = [("insuficiencia renal aguda", "N17.9"), ("fractura de cadera", "S72.009"), ("VIH", "B20")]
    texts = ["Presenta insuficiencia renal aguda y fractura de cadera.", "Paciente con VIH de la consulta.",
             "Dolor de la pierna en la noche."]
    memory = fit_phrase_dictionary(phrases, fold=True).calibrate(texts, [["N17.9", "S72.009"], ["B20"], []])
    # "de" and "la" are short and in 2 of 3 reports: stopwords; "VIH" is short but in one report only
    assert {"de", "la"} <= memory.stopwords and "vih" not in memory.stopwords and "con" not in memory.stopwords
    text = "Ingresa por aguda insuficiencia renal; cadera con fractura."
    assert memory.find(text) == []  # no exact match
    found = memory.find(text, loose=True)
    # folded words in any order; "con" is a content word here, so "cadera con fractura" is not "fractura de cadera"
    assert [(text[a:b], key, code) for a, b, key, code in found] == [
        ("aguda insuficiencia renal", "~ agud insuficienci renal", "N17.9")]
    assert {c for *_, c in memory.find("Fractura, cadera.", loose=True)} == {"S72.009"}
    assert memory.reliability["~ agud insuficienci renal"] == 1.0  # met once in calibration, coded there
    pruned = memory.pruned(1.1)  # every measured key and phrase goes; the stopwords stay
    assert pruned.stopwords == memory.stopwords and not pruned.loose.keys() & memory.reliability.keys()
