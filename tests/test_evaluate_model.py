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
    from hiericd_core.validation import VALIDATION_FILE, validate_dataset

    dataset = small_dataset(tmp_path_factory)
    if not (dataset / VALIDATION_FILE).is_file():  # `hiericd train` takes only a data set that passed its gate
        assert validate_dataset(dataset).success
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


def test_evaluation_reports_both_maps_for_the_model_and_every_baseline(model):
    from hiericd_core.evaluate import codiesp_map, mean_average_precision

    out, dataset = model
    result = pipeline.evaluate_model(out, dataset, "test")
    preds = predict_dataset(out, dataset, "test")
    ours = result["end_to_end"][f"hiericd ({preds.variant})"]
    assert ours["map"] == pytest.approx(mean_average_precision(preds.gold, preds.ranked))
    assert ours["map_codiesp"] == pytest.approx(codiesp_map(preds.gold, {r: sorted(c) for r, c in preds.codes.items()}))
    baselines = run_baselines(dataset, "test")
    for name in ("lr", "svm", "phrase_dictionary", "majority"):
        for key in ("map", "map_codiesp"):
            assert result["end_to_end"][name][key] == pytest.approx(baselines[name]["metrics"][key]), (name, key)
    # the model ranks every label-space code after its own: at least the MAP of its codes alone
    alone = {rid: ranking[: len(preds.codes[rid])] for rid, ranking in preds.ranked.items()}
    assert ours["map"] >= mean_average_precision(preds.gold, alone)
    saved = json.loads((out / "evaluation-test.json").read_text())
    assert all({"map", "map_codiesp"} <= set(scores) for scores in saved["end_to_end"].values())
    header = (out / "evaluation-test.md").read_text().splitlines()[0]
    assert "| instance_f1 | map | map_codiesp |" in header

    cli = runner.invoke(app, ["evaluate", str(out), str(dataset), "--no-baselines"])
    assert cli.exit_code == 0, cli.output
    assert "| map | map_codiesp |" in cli.stdout


def test_predict_command_writes_a_ranking(model, tmp_path):
    out, _ = model
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "A.txt").write_text("FINAL DIAGNOSIS:\nColon, polypectomy: Tubular adenoma.\n")
    (tmp_path / "in" / "B.txt").write_text("Stomach, biopsy: chronic gastritis.\n")
    result = runner.invoke(app, ["predict", str(out), str(tmp_path / "in"), "--out", str(tmp_path / "r.tsv"),
                                 "--ranked", "3", "--scores"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in (tmp_path / "r.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == ["A"] * 3 + ["B"] * 3 and all(len(r) == 3 for r in rows)
    plain = runner.invoke(app, ["predict", str(out), str(tmp_path / "in"), "--out", str(tmp_path / "p.tsv")])
    assert plain.exit_code == 0, plain.output
    for rid in ("A", "B"):
        predicted = [line.split("\t")[1] for line in (tmp_path / "p.tsv").read_text().splitlines()
                     if line.startswith(f"{rid}\t")]
        ranked = [r[1] for r in rows if r[0] == rid]
        assert set(ranked[: len(predicted)]) == set(predicted[:3])
    refused = runner.invoke(app, ["predict", str(out), str(tmp_path / "in"), "--out", str(tmp_path / "x.tsv"),
                                  "--ranked", "0"])
    assert refused.exit_code == 2
