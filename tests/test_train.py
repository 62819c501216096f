"""Training: smoke train on a small synthetic data set, reload, determinism, the no-reason fallback."""

import json
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
from hiericd_core.evaluate import classifier_scores, tagger_scores
from hiericd_core.infer_dataset import predict_dataset
from hiericd_core.merge import merge_round
from hiericd_core.merge_write import write_merge
from hiericd_core.models import ICDClassifier, SentenceTagger, load_checkpoint
from hiericd_core.rounds import load_round
from hiericd_core.synth import generate_round
from hiericd_core.train import (
    MAX_DEFAULT_THREADS,
    TrainConfig,
    TrainError,
    _batches,
    _fit,
    classifier_stage,
    finish_stage,
    prepare_stage,
    tagger_stage,
    train_model,
)

TINY = TrainConfig(emb_dim=16, min_freq=1, w2v_epochs=2, tagger_hidden=16, classifier_hidden=16, attention_size=8,
                   tagger_epochs=4, classifier_epochs=4, patience=10, threads=1, batch_size=16)


def small_dataset(tmp_path_factory) -> Path:
    """A 400-report synthetic data set, built once per test session (test_infer.py uses it too)."""
    tmp = tmp_path_factory.getbasetemp() / "synth400"
    if not (tmp / "ds" / "manifest.json").is_file():  # the manifest is written last
        generate_round(tmp / "round", 400, seed=1)
        r = load_round(tmp / "round")
        write_merge(merge_round(r), r, tmp / "merged")
        write_dataset(build_dataset([tmp / "merged"], DatasetConfig(min_count=3, workers=1)), tmp / "ds")
    return tmp / "ds"


def copy_without(dataset: Path, folder: Path, left_out: str) -> Path:
    """``folder``: a copy of the data set's files but ``left_out``, which the test writes itself."""
    folder.mkdir()
    for name in ("sentences.parquet", "reports.parquet", "label_space.json", "manifest.json"):
        if name != left_out:
            (folder / name).write_bytes((dataset / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return small_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict, list]:
    out = tmp_path_factory.mktemp("model")
    calls: list = []
    metrics = train_model(dataset, out, TINY, callback=lambda stage, epoch, m: calls.append((stage, epoch, m)))
    return out, metrics, calls


def test_smoke_train_loss_falls_and_writes_the_model_folder(trained, dataset):
    out, metrics, calls = trained
    for name in ("tagger.pt", "classifier.pt", "vocab.json", "vectors.npy", "train_config.json", "metrics.json"):
        assert (out / name).is_file(), name
    for stage in ("tagger", "classifier"):
        losses = [h["loss"] for h in metrics[stage]["history"]]
        assert len(losses) == 4 and losses[-1] < losses[0], (stage, losses)
        assert 1 <= metrics[stage]["best_epoch"] <= 4
    assert [(s, e) for s, e, _ in calls] == [("tagger", e) for e in range(1, 5)] + [("classifier", e)
                                                                                  for e in range(1, 5)]
    assert "dev_macro_f1" in calls[0][2] and "attention_loss" in calls[-1][2]
    saved = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert saved["dataset_version"] == manifest["version"] and saved["language"] == "en"
    assert saved["variant"] == saved["variant_requested"] == "supervised_r4v" and saved["r4v_available"]
    assert saved == {k: v for k, v in metrics.items() if k not in ("seconds", "out_dir")}
    assert set(metrics["seconds"]) == {"vectors", "tagger", "classifier"}
    config = json.loads((out / "train_config.json").read_text())
    assert config["tagger_hidden"] == 16 and config["variant"] == "supervised_r4v"
    tagger, _ = load_checkpoint(out / "tagger.pt")
    classifier, checkpoint = load_checkpoint(out / "classifier.pt")
    assert isinstance(tagger, SentenceTagger) and isinstance(classifier, ICDClassifier)
    labels = json.loads((dataset / "label_space.json").read_text())["codes"]
    assert checkpoint["labels"] == labels and checkpoint["variant"] == "supervised_r4v"
    assert classifier.config.n_labels == len(labels) and tagger.config.use_r4v


def test_reloaded_checkpoints_reproduce_the_best_dev_metrics(trained, dataset):
    out, metrics, _ = trained
    # batches of 256, as the training's evaluation, so the same numbers come out
    dev = predict_dataset(out, dataset, split="dev", batch_size=256, threads=1)
    focus = [p >= 0.5 for p in dev.sentences["focus_probability"]]
    assert tagger_scores(dev.sentences["is_focus"], focus).macro.f1 == metrics["tagger"]["best_dev"]["macro_f1"]
    rows = dev.classifier_rows
    assert classifier_scores(rows["code"], rows["predicted"]).macro_f1 == metrics["classifier"]["best_dev"]["macro_f1"]
    again = predict_dataset(out, dataset, split="dev", batch_size=256, threads=1)
    assert again.codes == dev.codes and again.classifier_rows == dev.classifier_rows


MODEL_FILES = ("tagger.pt", "classifier.pt", "vectors.npy", "vocab.json", "train_config.json", "metrics.json")


def test_training_is_deterministic(trained, dataset, tmp_path):
    out, _, _ = trained
    train_model(dataset, tmp_path, TINY)
    for name in MODEL_FILES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_a_fresh_process_trains_the_same_bytes(trained, dataset, tmp_path):
    """As an Airflow task or a second ``make demo`` does: another process, another hash seed, torch's thread count
    left at its start-up default before training sets the configured one."""
    import os
    import subprocess
    import sys

    out, _, _ = trained
    script = ("import sys, json; from hiericd_core.train import TrainConfig, train_model; "
              "train_model(sys.argv[1], sys.argv[2], TrainConfig(**json.loads(sys.argv[3])))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "3"}
    subprocess.run([sys.executable, "-c", script, str(dataset), str(tmp_path), json.dumps(TINY.__dict__)],
                   env=env, check=True, timeout=300)
    for name in MODEL_FILES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_the_thread_count_is_resolved_and_recorded(trained, monkeypatch):
    out, _, _ = trained
    assert json.loads((out / "train_config.json").read_text())["threads"] == TINY.threads == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert TrainConfig().threads == MAX_DEFAULT_THREADS  # many CPUs: capped
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert TrainConfig().threads == 1
    with pytest.raises(TrainError, match="threads = 0"):
        TrainConfig(threads=0)


def test_stages_run_apart_write_what_train_model_writes(trained, dataset, tmp_path):
    """The training DAG's way: prepare, then the two models in either order (separate processes there), then
    finish; each stage reads only what the earlier ones left in the folder."""
    out, metrics, _ = trained
    prepared = prepare_stage(dataset, tmp_path, TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stages", "train_config.json", "vectors.npy", "vocab.json"]
    with pytest.raises(TrainError, match=r"no stages/tagger\.json; run the tagger stage before finish"):
        finish_stage(tmp_path)
    classifier = classifier_stage(tmp_path)
    tagger = tagger_stage(tmp_path)
    assert tagger["result"] == metrics["tagger"] and classifier["result"] == metrics["classifier"]
    finished = finish_stage(tmp_path)
    for name in ("metrics.json", "train_config.json", "vocab.json", "vectors.npy"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for name in ("tagger.pt", "classifier.pt"):
        a, b = (torch.load(d / name, weights_only=True) for d in (out, tmp_path))
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), name
        assert {k: v for k, v in a.items() if k != "state_dict"} == {k: v for k, v in b.items() if k != "state_dict"}
    assert {k: v for k, v in finished.items() if k not in ("seconds", "out_dir")} == json.loads(
        (out / "metrics.json").read_text())
    assert finished["seconds"]["vectors"] == prepared["seconds"]
    assert prepared["dataset_dir"] == str(dataset.resolve()) and prepared["variant"] == "supervised_r4v"


def test_prepare_again_clears_the_last_run(trained, dataset, tmp_path):
    out, _, _ = trained
    for name in ("tagger.pt", "classifier.pt", "metrics.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "tagger.json").write_text("{}")
    prepare_stage(dataset, tmp_path, TINY)
    assert not any((tmp_path / n).exists() for n in ("tagger.pt", "classifier.pt", "metrics.json",
                                                     "stages/tagger.json"))
    with pytest.raises(TrainError, match=r"no stages/prepare\.json; run the prepare stage before the tagger"):
        tagger_stage(tmp_path / "elsewhere")


def test_a_data_set_without_reasons_for_visit_falls_back(dataset, tmp_path):
    ds = copy_without(dataset, tmp_path / "ds", "reports.parquet")
    reports = pq.read_table(dataset / "reports.parquet")
    n = reports.num_rows
    reports = reports.set_column(reports.schema.get_field_index("reason_for_visit"), "reason_for_visit",
                                 pa.array([""] * n))
    reports = reports.set_column(reports.schema.get_field_index("r4v_tokens"), "r4v_tokens",
                                 pa.array([[] for _ in range(n)], type=pa.list_(pa.string())))
    pq.write_table(reports, ds / "reports.parquet")
    config = TrainConfig(**{**TINY.__dict__, "tagger_epochs": 1, "classifier_epochs": 1})
    metrics = train_model(ds, tmp_path / "model", config)
    assert metrics["variant_requested"] == "supervised_r4v" and metrics["variant"] == "supervised"
    assert not metrics["r4v_available"] and not metrics["tagger_uses_r4v"]
    classifier, checkpoint = load_checkpoint(tmp_path / "model" / "classifier.pt")
    assert checkpoint["variant"] == "supervised" and checkpoint["variant_requested"] == "supervised_r4v"
    assert classifier.config.variant == "supervised" and not hasattr(classifier, "r4v_lstm")
    tagger, _ = load_checkpoint(tmp_path / "model" / "tagger.pt")
    assert not tagger.config.use_r4v


def test_config_from_toml(tmp_path):
    (tmp_path / "train.toml").write_text('[train]\nvariant = "pooling"\ntagger_epochs = 7\nseed = 3\n')
    config = TrainConfig.from_toml(tmp_path / "train.toml")
    assert (config.variant, config.tagger_epochs, config.seed, config.lr) == ("pooling", 7, 3, 1e-3)
    (tmp_path / "flat.toml").write_text('batch_size = 8\nvectors_path = "w2v/pubmed.bin"\n')
    flat = TrainConfig.from_toml(tmp_path / "flat.toml")
    assert flat.batch_size == 8 and flat.vectors_path == str(tmp_path / "w2v" / "pubmed.bin")
    (tmp_path / "bad.toml").write_text('[train]\nlearning_rate = 0.1\n')
    with pytest.raises(TrainError, match=r"bad\.toml: unknown training setting\(s\) learning_rate"):
        TrainConfig.from_toml(tmp_path / "bad.toml")
    with pytest.raises(TrainError, match="unknown variant"):
        TrainConfig(variant="bert")


def test_the_shipped_codiesp_settings_load_and_differ_from_the_paper_where_the_readme_says():
    config = TrainConfig.from_toml(Path(__file__).parent.parent / "configs" / "codiesp.toml")
    changed = {k: v for k, v in config.__dict__.items() if v != TrainConfig().__dict__[k]}
    assert changed == {"lambda_att": 1.0, "attention_to_encoder": True, "freeze_embeddings": False,
                       "classifier_epochs": 40, "patience": 8, "tagger_epochs": 30, "min_freq": 1, "w2v_epochs": 10,
                       "threads": 1}


def test_a_dag_run_config_overrides_the_file(tmp_path):
    from hiericd_core.pipeline import train_config

    (tmp_path / "train.toml").write_text('[train]\nvariant = "pooling"\ntagger_epochs = 7\n')
    config = train_config(tmp_path / "train.toml", {"tagger_epochs": 1, "lr": 0.01})
    assert (config.variant, config.tagger_epochs, config.lr, config.seed) == ("pooling", 1, 0.01, 13)
    assert train_config() == TrainConfig()
    with pytest.raises(TrainError, match="unknown training setting.s. epochs; known ones are"):
        train_config(None, {"epochs": 3})
    with pytest.raises(TrainError, match="unknown variant"):
        train_config(None, {"variant": "bert"})


def test_a_folder_that_is_not_a_data_set_is_refused(tmp_path):
    with pytest.raises(TrainError, match="no manifest.json"):
        train_model(tmp_path, tmp_path / "model", TINY)


def test_pretrained_vectors_set_the_dimension(dataset, tmp_path):
    words = ["carcinoma", "polyp", "colon", "adenoma", "skin"]
    lines = [f"{len(words)} 12"] + [w + "".join(f" {(i + j) / 10:g}" for j in range(12)) for i, w in enumerate(words)]
    (tmp_path / "w2v.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TrainConfig(**{**TINY.__dict__, "tagger_epochs": 1, "classifier_epochs": 1,
                            "vectors_path": str(tmp_path / "w2v.txt")})
    metrics = train_model(dataset, tmp_path / "model", config)
    assert metrics["vectors"]["dim"] == 12 and metrics["vectors"]["found"] == len(words)
    assert json.loads((tmp_path / "model" / "train_config.json").read_text())["emb_dim"] == 12
    tagger, _ = load_checkpoint(tmp_path / "model" / "tagger.pt")
    assert tagger.config.emb_dim == 12


def test_early_stopping_keeps_the_best_epoch_and_ignores_tiny_gains():
    model = torch.nn.Linear(1, 1, bias=False)
    dev_f1 = [0.5, 0.7, 0.7005, 0.7008, 0.65, 0.66, 0.9]
    seen: list = []

    def train_epoch(epoch):
        with torch.no_grad():
            model.weight.fill_(epoch)  # the weights remember their epoch
        return {"loss": 1.0 / epoch}

    def evaluate():
        seen.append(dev_f1[len(seen)])
        return {"macro_f1": seen[-1]}

    result = _fit("stage", model, TrainConfig(patience=3, min_delta=0.001), 10, train_epoch, evaluate, None, False)
    # epoch 2 is the last gain of 0.001; 3 and 4 edge up (4 is best) but do not reset the patience: stop after 5
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3, 4, 5]
    assert result["best_epoch"] == 4 and result["stopped"] == "patience" and model.weight.item() == 4.0
    assert result["best_dev"] == {"macro_f1": 0.7008}


def test_each_epoch_logs_one_line(caplog):
    """Airflow task logs capture logging (not the progress bar): one INFO line per epoch, then the stop."""
    model = torch.nn.Linear(1, 1, bias=False)
    dev_f1 = iter([0.5, 0.75, 0.6])
    with caplog.at_level(logging.INFO, logger="hiericd_core.train"):
        _fit("tagger", model, TrainConfig(patience=5), 3, lambda epoch: {"loss": 1.0 / epoch},
             lambda: {"macro_f1": next(dev_f1), "sentences": 9}, None, False)
    lines = [r.getMessage() for r in caplog.records if r.name == "hiericd_core.train"]
    assert len(lines) == 4 and all(r.levelno == logging.INFO for r in caplog.records)
    assert re.fullmatch(r"tagger epoch 2/3: loss 0\.5000, dev macro_f1 0\.7500, best epoch 2, \d+\.\d s", lines[1])
    assert lines[3] == "tagger stopped (max_epochs) after 3 epoch(s); kept epoch 2, dev macro F1 0.7500"


def test_batches_in_order_shuffled_and_bucketed():
    assert _batches(5, 2) == [[0, 1], [2, 3], [4]]
    g = torch.Generator().manual_seed(0)
    shuffled = _batches(10, 3, g)
    assert sorted(i for b in shuffled for i in b) == list(range(10))
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]
    bucketed = _batches(10, 2, torch.Generator().manual_seed(0), lengths)
    assert sorted(i for b in bucketed for i in b) == list(range(10))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in bucketed)
    assert spans == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]  # one pool: neighbours in length share a batch
    assert bucketed == _batches(10, 2, torch.Generator().manual_seed(0), lengths)


def test_device_setting_is_checked():
    import torch

    from hiericd_core.train import TrainConfig, TrainError, torch_device

    with pytest.raises(TrainError, match="unknown device 'tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(TrainError, match="classifier_hidden = 255: .* must be even"):
        TrainConfig(classifier_hidden=255)
    assert not TrainConfig(classifier_hidden=255, classifier_bidirectional=False).classifier_bidirectional
    assert torch_device(TrainConfig()).type == "cpu"
    assert torch_device(TrainConfig(device="auto")).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="torch sees no GPU"):
            torch_device(TrainConfig(device="cuda"))


def test_batched_reading_encodes_as_row_by_row_does(dataset, monkeypatch):
    """Reading in Arrow batches (7 rows, so reports straddle batches) gives, per split and in data set order,
    the token ids ``Vocabulary.encode`` gives sentence by sentence from the whole table."""
    from hiericd_core import trainsets
    from hiericd_core.embeddings import Vocabulary

    monkeypatch.setattr(trainsets, "READ_BATCH", 7)
    table = pq.read_table(dataset / "sentences.parquet").to_pylist()
    reasons = {r["report_id"]: r["r4v_tokens"] for r in pq.read_table(dataset / "reports.parquet").to_pylist()}
    vocab = Vocabulary.build([r["tokens"] for r in table if r["split"] == "train"], min_freq=2)
    labels = {c: i for i, c in enumerate(json.loads((dataset / "label_space.json").read_text())["codes"])}
    tagged = trainsets.read_tagger_splits(dataset, vocab, use_r4v=True, max_tokens=5)
    rows = trainsets.read_classifier_splits(dataset, vocab, labels, use_r4v=True, max_tokens=5)
    for split in ("train", "dev"):
        mine = [r for r in table if r["split"] == split]
        reports = list(dict.fromkeys(r["report_id"] for r in mine))
        assert len(tagged[split]) == len(reports)
        got = [s.tolist() for i in range(len(reports)) for s in tagged[split].report(i)]
        assert got == [vocab.encode(r["tokens"], 5) or [0] for r in mine]
        assert tagged[split].focus.tolist() == [int(r["is_focus"]) for r in mine]
        assert [tagged[split].r4v[i].tolist() for i in range(len(reports))] == [vocab.encode(reasons[r], 5)
                                                                                for r in reports]
        chosen = [r for r in mine if r["classifier_row"]]
        assert rows[split].labels.tolist() == [labels[r["codes"][0]] for r in chosen]
        assert [rows[split].tokens[i].tolist() for i in range(len(chosen))] == [vocab.encode(r["tokens"], 5) or [0]
                                                                                for r in chosen]
        assert [rows[split].masks[i].tolist() for i in range(len(chosen))] == [
            r["attention_mask"][: len(vocab.encode(r["tokens"], 5) or [0])] for r in chosen]
        assert [rows[split].r4v[i].tolist() for i in range(len(chosen))] == [vocab.encode(reasons[r["report_id"]], 5)
                                                                             for r in chosen]


def test_training_tokens_are_streamed_again_on_each_pass(dataset, monkeypatch):
    from hiericd_core import trainsets

    monkeypatch.setattr(trainsets, "READ_BATCH", 50)
    sentences = pq.read_table(dataset / "sentences.parquet", columns=["split", "tokens"]).to_pylist()
    reports = pq.read_table(dataset / "reports.parquet", columns=["split", "r4v_tokens"]).to_pylist()
    expected = ([r["tokens"] for r in sentences if r["split"] == "train"]
                + [r["r4v_tokens"] for r in reports if r["split"] == "train" and r["r4v_tokens"]])
    corpus = trainsets.TrainingTokens(dataset)
    assert list(corpus) == expected and list(corpus) == expected


def test_sentences_out_of_order_are_refused(dataset, tmp_path):
    folder = copy_without(dataset, tmp_path / "ds", "sentences.parquet")
    table = pq.read_table(dataset / "sentences.parquet")
    pq.write_table(table.take(list(range(table.num_rows - 1, -1, -1))), folder / "sentences.parquet")
    with pytest.raises(TrainError, match=r"not in \(report_id, sentence_idx\) order .*rebuild the data set"):
        prepare_stage(folder, tmp_path / "model", TINY)
