"""pipeline.evaluate_model and the train / evaluate / predict commands on a tiny model."""

import json

import pytest
from test_train import small_dataset
from typer.testing import CliRunner

from hiericd_core import pipeline
from hiericd_core.baselines import run_baselines
from hiericd_core.cli import app
from hiericd_core.evaluate import end_to_end_scores
from hiericd_core.infer_dataset import predict_dataset

runner = CliRunner()
TINY_TOML = """emb_dim = 16
min_freq = 1
w2v_epochs = 2
tagger_hidden = 16
classifier_hidden = 16
attention_size = 8
tagger_epochs = 2
classifier_epochs = 2
threads = 1
batch_size = 16
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    dataset = small_dataset(tmp_path_factory)
    config = tmp_path_factory.mktemp("cfg") / "train.toml"
    config.write_text(TINY_TOML)
    out = tmp_path_factory.mktemp("m") / "model"
    result = runner.invoke(app, ["train", str(dataset), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "variant supervised_r4v" in result.stdout
    return out, dataset


def test_evaluation_puts_the_model_beside_the_baselines(model):
    out, dataset = model
    result = pipeline.evaluate_model(out, dataset, "test")
    preds = predict_dataset(out, dataset, "test")
    expected = end_to_end_scores(preds.gold, preds.codes, preds.labels)
    ours = result["end_to_end"][f"hiericd ({preds.variant})"]
    assert ours["micro"]["f1"] == pytest.approx(expected.micro.f1)
    assert ours["subset_accuracy"] == pytest.approx(expected.subset_accuracy)
    lr = run_baselines(dataset, "test")["lr"]["metrics"]
    assert result["end_to_end"]["lr"]["micro"]["f1"] == pytest.approx(lr["micro"]["f1"])
    saved = json.loads((out / "evaluation-test.json").read_text())
    assert saved["classifier"]["rows"] == len(preds.classifier_rows["code"])
    assert "| lr |" in (out / "evaluation-test.md").read_text()


def test_predict_command_writes_codiesp_format_and_reports_bad_files(model, tmp_path):
    out, _ = model
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "A.txt").write_text("FINAL DIAGNOSIS:\nColon, polypectomy: Tubular adenoma.\n")
    (tmp_path / "in" / "B.txt").write_text("")
    result = runner.invoke(app, ["predict", str(out), str(tmp_path / "in"), "--out", str(tmp_path / "p.tsv"),
                                 "--evidence", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines and all(line.split("\t")[0] == "A" and len(line.split("\t")) == 2 for line in lines)
    assert "B.txt" in result.output and "empty" in result.output
    evidence = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    text = (tmp_path / "in" / "A.txt").read_text()
    for code in evidence[0]["codes"]:
        for token, _, start, end in code["top_tokens"]:
            assert text[start:end] == token
    # worker processes write the same files
    result = runner.invoke(app, ["predict", str(out), str(tmp_path / "in"), "--out", str(tmp_path / "p2.tsv"),
                                 "--evidence", str(tmp_path / "e2.jsonl"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p2.tsv").read_bytes() == (tmp_path / "p.tsv").read_bytes()
    assert (tmp_path / "e2.jsonl").read_bytes() == (tmp_path / "e.jsonl").read_bytes()


def test_train_on_a_folder_that_is_not_a_data_set_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "not a data set folder" in result.output
