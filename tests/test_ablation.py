"""Ablation: five variants on a tiny data set, a shared tagger, the outputs, the no-reason fallback."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scriptkit import load_script
from test_train import TINY, copy_without, small_dataset
from typer.testing import CliRunner

from hiericd_core.ablation import AblationError, run_ablation
from hiericd_core.cli import app
from hiericd_core.evaluate import classifier_scores, end_to_end_scores, evidence_scores
from hiericd_core.infer_dataset import predict_dataset
from hiericd_core.models.classifier import VARIANTS
from hiericd_core.train import train_model

FAST = replace(TINY, tagger_epochs=2, classifier_epochs=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return small_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def ablation(dataset, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    out = tmp_path_factory.mktemp("ablation")
    lines: list[str] = []
    return out, run_ablation(dataset, out, FAST, split="dev", log=lines.append), lines


def test_five_variants_trained_scored_and_written(ablation, dataset):
    out, result, lines = ablation
    assert [r["variant"] for r in result["rows"]] == list(VARIANTS) == result["variants"]
    assert [r["trained_as"] for r in result["rows"]] == list(VARIANTS)  # the synthetic data has reasons for visit
    saved = json.loads((out / "ablation.json").read_text())
    assert saved == json.loads(json.dumps(result))
    table = (out / "ablation.md").read_text()
    for label in ("pooling", "vanilla attention", "supervised attention + reason for visit"):
        assert f"| {label} |" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(lines) == 5 and "(tagger shared)" in lines[1] and "(tagger shared)" not in lines[0]
    # the tagger is trained once: every folder holds the same weights, and its metrics say so
    first = torch.load(out / "pooling" / "tagger.pt", weights_only=True)["state_dict"]
    for variant in VARIANTS[1:]:
        other = torch.load(out / variant / "tagger.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(first[k], other[k]) for k in first)
        metrics = json.loads((out / variant / "metrics.json").read_text())
        assert metrics["tagger"] == json.loads((out / "pooling" / "metrics.json").read_text())["tagger"]
        assert metrics["variant"] == variant


def test_row_figures_match_an_independent_scoring(ablation, dataset):
    out, result, _ = ablation
    row = next(r for r in result["rows"] if r["variant"] == "supervised")
    p = predict_dataset(out / "supervised", dataset, "dev")
    rows = p.classifier_rows
    classifier = classifier_scores(rows["code"], rows["predicted"])
    e2e = end_to_end_scores(p.gold, p.codes)
    evidence = evidence_scores([(np.asarray(a), np.asarray(m))
                                for a, m in zip(rows["attention"], rows["attention_mask"], strict=True)], k=5)
    assert row["classifier_accuracy"] == classifier.accuracy and row["classifier_macro_f1"] == classifier.macro_f1
    assert row["micro_f1"] == e2e.micro.f1 and row["reports"] == len(p.gold)
    assert row["evidence_f1"] == evidence.micro.f1 and row["evidence_auprc"] == evidence.auprc_macro
    for r in result["rows"]:
        for key in ("classifier_accuracy", "classifier_macro_f1", "micro_f1", "evidence_f1", "evidence_auprc"):
            assert 0.0 <= r[key] <= 1.0, (r["variant"], key)


def test_a_shared_tagger_changes_nothing(ablation, dataset, tmp_path):
    """A variant trained alone (its own tagger) gets the same classifier as in the ablation."""
    out, _, _ = ablation
    train_model(dataset, tmp_path, replace(FAST, variant="attention"))
    for name in ("tagger.pt", "classifier.pt"):
        a = torch.load(out / "attention" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (out / "attention" / "metrics.json").read_bytes() == (tmp_path / "metrics.json").read_bytes()


def test_variants_trained_in_worker_processes_are_the_same_models(ablation, dataset, tmp_path):
    from hiericd_core.ablation import train_variants

    out, _, _ = ablation
    variants = ("pooling", "attention", "supervised")
    trained = train_variants(dataset, tmp_path, FAST, variants, jobs=2)
    assert [trained[v]["shared_tagger"] for v in variants] == [False, True, True]
    for variant in variants:
        for name in ("tagger.pt", "classifier.pt"):
            a = torch.load(out / variant / name, weights_only=True)["state_dict"]
            b = torch.load(tmp_path / variant / name, weights_only=True)["state_dict"]
            assert all(torch.equal(a[k], b[k]) for k in a), (variant, name)
        assert (out / variant / "metrics.json").read_bytes() == (tmp_path / variant / "metrics.json").read_bytes()


def test_without_reasons_for_visit_the_r4v_variants_are_not_trained_twice(dataset, tmp_path):
    ds = copy_without(dataset, tmp_path / "ds", "reports.parquet")
    reports = pq.read_table(dataset / "reports.parquet")
    reports = reports.set_column(reports.schema.get_field_index("r4v_tokens"), "r4v_tokens",
                                 pa.array([[] for _ in range(reports.num_rows)], type=pa.list_(pa.string())))
    pq.write_table(reports, ds / "reports.parquet")
    one = replace(FAST, tagger_epochs=1, classifier_epochs=1)
    result = run_ablation(ds, tmp_path / "out", one, variants=("attention", "attention_r4v"), split="dev")
    first, second = result["rows"]
    assert (first["trained_as"], second["trained_as"]) == ("attention", "attention")
    assert second["train_seconds"] == 0.0
    assert {k: v for k, v in first.items() if k not in ("variant", "train_seconds")} == \
        {k: v for k, v in second.items() if k not in ("variant", "train_seconds")}
    assert "| attention + reason for visit | vanilla attention |" in result["table"]


def test_mistakes_are_clear(dataset, tmp_path):
    with pytest.raises(AblationError, match="unknown variant"):
        run_ablation(dataset, tmp_path, FAST, variants=("pooling", "transformer"), split="dev")
    manifest = json.loads((dataset / "manifest.json").read_text())
    ds = tmp_path / "ds"
    ds.mkdir()
    manifest["splits"]["test"]["reports"] = 0
    (ds / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AblationError, match="the test split has no report; pass --split dev"):
        run_ablation(ds, tmp_path / "out", FAST)
    result = CliRunner().invoke(app, ["ablation", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a data set folder" in result.output
    result = CliRunner().invoke(app, ["ablation", str(ds), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "pass --split dev" in result.output and "Traceback" not in result.output


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_retraining_the_classifier_alone(ablation, tmp_path):
    """The same settings give the same classifier; a changed one changes only the classifier."""
    import shutil

    from hiericd_core.ablation import gather_runs, retrain_classifier, score_variant

    out, result, _ = ablation
    source = tmp_path / "source"
    shutil.copytree(out / "supervised", source)
    (source / "evaluation-dev.md").write_text("stale")  # figures of the old classifier do not travel
    same = retrain_classifier(source, tmp_path / "same", {}, split="dev")
    assert not (tmp_path / "same" / "evaluation-dev.md").exists()
    assert same["variant"] == "supervised" and same["changes"] == {} and same["defaulted"] == {}
    a, b = _weights(source / "classifier.pt"), _weights(tmp_path / "same" / "classifier.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    row = next(r for r in result["rows"] if r["variant"] == "supervised")
    saved = json.loads((tmp_path / "same" / "score.json").read_text())
    assert saved["split"] == "dev" and saved["micro_f1"] == row["micro_f1"] == same["score"]["micro_f1"]
    assert saved["classifier_macro_f1"] == row["classifier_macro_f1"]

    older = json.loads((source / "train_config.json").read_text())  # as written before these settings existed
    del older["attention_to_encoder"], older["classifier_bidirectional"], older["seed"]
    (source / "train_config.json").write_text(json.dumps(older))
    other = retrain_classifier(source, tmp_path / "other", {"seed": 5, "lambda_att": 1.0}, split="dev")
    assert other["defaulted"] == {"attention_to_encoder": False, "classifier_bidirectional": True}
    config = json.loads((tmp_path / "other" / "train_config.json").read_text())
    assert (config["seed"], config["lambda_att"], config["attention_to_encoder"]) == (5, 1.0, False)
    assert (tmp_path / "other" / "tagger.pt").read_bytes() == (source / "tagger.pt").read_bytes()
    assert (tmp_path / "other" / "vectors.npy").read_bytes() == (source / "vectors.npy").read_bytes()
    c = _weights(tmp_path / "other" / "classifier.pt")
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert other["score"] == score_variant(tmp_path / "other", json.loads(
        (source / "stages" / "prepare.json").read_text())["dataset_dir"], "dev")
    metrics = json.loads((tmp_path / "other" / "metrics.json").read_text())
    assert metrics["classifier"]["best_epoch"] == other["best_epoch"]

    gathered = gather_runs([tmp_path / "same", tmp_path / "other"], tmp_path / "table")
    assert [r["micro_f1"] for r in gathered["rows"]] == [same["score"]["micro_f1"], other["score"]["micro_f1"]]
    assert gathered["split"] == "dev" and (tmp_path / "table" / "ablation.png").is_file()
    assert gathered["configs"][1]["seed"] == 5


def test_retraining_refuses_settings_that_reach_the_words_or_the_tagger(ablation, tmp_path):
    from hiericd_core.ablation import gather_runs, retrain_classifier

    out, _, _ = ablation
    with pytest.raises(AblationError, match="emb_dim, tagger_hidden: not a classifier setting"):
        retrain_classifier(out / "supervised", tmp_path / "x", {"tagger_hidden": 8, "emb_dim": 8})
    with pytest.raises(AblationError, match="variant: not a classifier setting"):
        retrain_classifier(out / "supervised", tmp_path / "x", {"variant": "pooling"})
    with pytest.raises(AblationError, match="not a trained model folder"):
        retrain_classifier(tmp_path, tmp_path / "x", {})
    with pytest.raises(AblationError, match="no score.json"):
        gather_runs([out / "pooling"], tmp_path / "t")
    assert not (tmp_path / "x").exists()
    script = load_script("classifier_runs")
    assert script._setting("lambda_att=10") == ("lambda_att", 10)
    assert script._setting("classifier_bidirectional=false") == ("classifier_bidirectional", False)
    assert script.main(["retrain", str(out / "supervised"), str(tmp_path / "x"), "--set", "min_freq=3"]) == 2
    # a value TrainConfig refuses is a clear error too, not a traceback
    assert script.main(["retrain", str(out / "supervised"), str(tmp_path / "x"), "--set", "classifier_hidden=15"]) == 2



def test_the_codiesp_ablation_rows_pick_their_rules_from_the_right_part_of_the_grid():
    from dataclasses import asdict

    from hiericd_core.infer import InferenceConfig

    codiesp = load_script("codiesp_experiment")
    never = dict(min_probability=1.01, fallback=False)
    rules = {"paper": InferenceConfig(), "exact": InferenceConfig(phrase_memory="report", **never),
             "loose": InferenceConfig(phrase_memory="report", phrase_loose=True, **never),
             "focus": InferenceConfig(phrase_memory="focus", **never),
             "mixed": InferenceConfig(phrase_memory="report", min_probability=0.9)}
    f1 = {"paper": 0.1, "exact": 0.3, "loose": 0.4, "focus": 0.5, "mixed": 0.6}
    tuning = {"rules": [{"rule": k, "config": asdict(r), "micro_f1": f1[k]} for k, r in rules.items()]}
    assert codiesp.best(tuning, codiesp.memory_alone)["rule"] == "exact"
    assert codiesp.best(tuning, codiesp.memory_loose)["rule"] == "loose"
    assert codiesp.best(tuning, codiesp.memory_and_tagger)["rule"] == "focus"
    assert codiesp.best(tuning)["rule"] == "mixed"
    row = codiesp.summarise("x", [{"micro_f1": 0.5, "map": None}, {"micro_f1": 0.7, "map": None}])
    assert row["micro_f1"] == pytest.approx(0.6) and row["micro_f1_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert codiesp.cell(row, "micro_f1") == "0.600 ± 0.141" and codiesp.cell(row, "map") == "–"


def test_negation_split_adds_up_to_the_ablation_accuracy(ablation, dataset, tmp_path):
    out, _result, _ = ablation
    script = load_script("negation_split")
    result = script.split_scores(dataset, {"a": out / "attention_r4v"}, "dev")
    rows = predict_dataset(out / "attention_r4v", dataset, "dev").classifier_rows
    accuracy = classifier_scores(rows["code"], rows["predicted"]).accuracy
    n_with, n = result["with_negation"], result["rows"]
    assert n == len(rows["code"]) > 0
    scores = result["models"]["a"]
    combined = ((scores["accuracy_with_negation"] or 0.0) * n_with + (scores["accuracy_without"] or 0.0) * (n - n_with))
    assert combined / n == pytest.approx(accuracy)
    assert script.main([str(tmp_path), "--model", f"a={out / 'attention_r4v'}"]) == 2  # not a data set
    assert script.main([str(dataset), "--model", "a"]) == 2  # not NAME=DIR
