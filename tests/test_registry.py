"""MLflow tracking, registry, the champion/challenger gate and rollback, on a real sqlite store under tmp_path."""

import json
import os
import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer
from test_train import small_dataset
from typer.testing import CliRunner

from hiericd_core import registry
from hiericd_core.agreement import AgreementConfig, agreement
from hiericd_core.catalog import Catalog
from hiericd_core.cli import app
from hiericd_core.evaluate import end_to_end_scores
from hiericd_core.files import atomic_write_json
from hiericd_core.infer_dataset import predict_dataset
from hiericd_core.pipeline import evaluate_model
from hiericd_core.rounds import load_round
from hiericd_core.train import TrainConfig, train_model

runner = CliRunner()
# small, but trained long enough that one epoch less is clearly worse (about 4 s on one thread)
GOOD = TrainConfig(emb_dim=32, min_freq=1, w2v_epochs=5, tagger_hidden=32, classifier_hidden=32, attention_size=16,
                   tagger_epochs=12, classifier_epochs=12, patience=12, threads=1, batch_size=16, lr=3e-3)
WEAK = TrainConfig(**{**GOOD.__dict__, "tagger_epochs": 1, "classifier_epochs": 1})
# the gate of these tests: the tiny models do not beat the LR baseline, and the test split is small
GATE = registry.GateConfig(beat_baseline=None, min_code_support=5)


def registry_models(tmp_path_factory) -> dict[str, Path]:
    """The data set, a good and a weak model folder (each with evaluation-test.json) and the round's agreement.

    Built once per test session on disk (test_modelcard.py and test_serve.py use them too).
    """
    dataset = small_dataset(tmp_path_factory)
    root = tmp_path_factory.getbasetemp() / "registry-models"
    paths = {"dataset": dataset, "good": root / "good", "weak": root / "weak", "agreement": root / "agreement.json"}
    for name, config in (("good", GOOD), ("weak", WEAK)):
        if not (paths[name] / "evaluation-test.json").is_file():  # written last
            train_model(dataset, paths[name], config)
            evaluate_model(paths[name], dataset, "test", baselines=name == "good")
    if not paths["agreement"].is_file():
        round_dir = dataset.parent / "round"
        atomic_write_json(paths["agreement"], agreement(load_round(round_dir), AgreementConfig(bootstrap=20)))
    return paths


def empty_store(tmp_path_factory) -> Path:
    """An MLflow sqlite store with its tables made, once per session (creating them takes seconds)."""
    path = tmp_path_factory.getbasetemp() / "mlflow-empty" / "mlflow" / "mlflow.db"
    if not path.is_file():
        uri = f"sqlite:///{path}"
        path.parent.mkdir(parents=True)
        MlflowClient(uri, registry_uri=uri).search_registered_models()  # creates the tables
    return path


def new_catalog(root: Path, models: dict[str, Path], tmp_path_factory=None) -> Catalog:
    """A catalog whose reports/ holds the round's agreement report, as pipeline.assess leaves it.

    With ``tmp_path_factory`` the MLflow store starts as a copy of :func:`empty_store`.
    """
    catalog = Catalog.from_env(root).ensure()
    if tmp_path_factory is not None:
        shutil.copyfile(empty_store(tmp_path_factory), catalog.mlflow / "mlflow.db")
    figures = json.loads(models["agreement"].read_text())
    atomic_write_json(catalog.report(figures["round_id"]) / "agreement.json", figures)
    return catalog


def champion_store(tmp_path_factory) -> tuple[Catalog, str]:
    """A catalog whose hiericd-pipeline@champion is the good model (v1); built once per session.

    test_modelcard.py and test_serve.py use it; they only read it or add artifacts.
    """
    models = registry_models(tmp_path_factory)
    root = tmp_path_factory.getbasetemp() / "champion-store"
    ready = root / "ready.json"
    if not ready.is_file():
        catalog = new_catalog(root, models, tmp_path_factory)
        run_id = registry.log_training_run(models["good"], models["dataset"], catalog=catalog)
        registry.register(run_id, catalog=catalog)
        assert registry.promote(dataset_dir=models["dataset"], gate=GATE, catalog=catalog)["passed"]
        atomic_write_json(ready, {"run_id": run_id})
    return Catalog.from_env(root), json.loads(ready.read_text())["run_id"]


def store_client(catalog: Catalog) -> MlflowClient:
    uri = registry.tracking_uri(catalog)
    return MlflowClient(uri, registry_uri=uri)  # else the registry is MLflow's global one, set by earlier tests


def micro_f1(model_dir: Path, dataset: Path) -> float:
    p = predict_dataset(model_dir, dataset, "test")
    return end_to_end_scores(p.gold, p.codes).micro.f1


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return registry_models(tmp_path_factory)


@pytest.fixture(scope="module")
def store(models, tmp_path_factory):
    """One catalog with the good model logged (not registered)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        catalog = new_catalog(tmp_path_factory.mktemp("store"), models, tmp_path_factory)
        mp.setenv("HIERICD_HOME", str(catalog.root))
        run_id = registry.log_training_run(models["good"], models["dataset"], catalog=catalog)
        yield catalog, run_id


def test_tracking_uri_is_the_catalogs_absolute_sqlite_store_unless_the_env_says(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    catalog = Catalog.from_env(tmp_path / "home")
    assert registry.tracking_uri(catalog) == f"sqlite:///{tmp_path}/home/mlflow/mlflow.db"
    assert registry.tracking_uri(catalog).startswith("sqlite:////")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert registry.tracking_uri(catalog) == "http://127.0.0.1:5999"


def test_training_run_holds_config_history_tables_dataset_rounds_and_three_models(store, models):
    catalog, run_id = store
    client = store_client(catalog)
    run = client.get_run(run_id)
    config = json.loads((models["good"] / "train_config.json").read_text())
    metrics = json.loads((models["good"] / "metrics.json").read_text())
    manifest = json.loads((models["dataset"] / "manifest.json").read_text())
    evaluation = json.loads((models["good"] / "evaluation-test.json").read_text())
    params = run.data.params
    assert params["train.tagger_hidden"] == "32" and params["train.lr"] == str(GOOD.lr)
    assert all(f"train.{k}" in params for k in config)
    assert params["dataset.version"] == manifest["version"] and params["model.variant"] == "supervised_r4v"
    # per-epoch history: one point per epoch, step = epoch
    for stage in ("tagger", "classifier"):
        history = metrics[stage]["history"]
        points = client.get_metric_history(run_id, f"{stage}_loss")
        assert len(points) == len(history) == 12
        assert [p.step for p in points] == [h["epoch"] for h in history]
        assert [p.value for p in points] == pytest.approx([h["loss"] for h in history])
        dev = client.get_metric_history(run_id, f"{stage}_dev_macro_f1")
        assert [p.value for p in dev] == pytest.approx([h["dev"]["macro_f1"] for h in history])
    # Tables 3-5 for the model and the baselines, and the evidence metrics
    m = run.data.metrics
    ours = next(v for k, v in evaluation["end_to_end"].items() if k.startswith("hiericd"))
    assert m["test_hiericd_micro_f1"] == pytest.approx(ours["micro"]["f1"])
    assert m["test_hiericd_micro_f1"] == pytest.approx(micro_f1(models["good"], models["dataset"]))
    for baseline in ("lr", "svm", "phrase_dictionary", "majority"):
        assert m[f"test_{baseline}_micro_f1"] == pytest.approx(evaluation["end_to_end"][baseline]["micro"]["f1"])
    assert m["test_tagger_focus_f1"] == pytest.approx(evaluation["tagger"]["focus"]["f1"])
    assert m["test_classifier_macro_f1"] == pytest.approx(evaluation["classifier"]["macro_f1"])
    assert m["test_evidence_auprc_macro"] == pytest.approx(evaluation["evidence"]["auprc_macro"])
    # the round's agreement: mean of the report x code pair kappas, worked here from agreement.json
    figures = json.loads(models["agreement"].read_text())
    kappas = [p["kappa"] for p in figures["units"]["report_code"]["pairs"]]
    assert run.data.tags["hiericd.rounds"] == figures["round_id"] == manifest["source_rounds"][0]
    assert m["rounds_min_kappa"] == pytest.approx(sum(kappas) / len(kappas))
    # the data set as a dataset input named by its version
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest == manifest["version"]
    assert manifest["version"] in inputs[0].dataset.name
    assert json.loads(inputs[0].dataset.profile)["num_rows"] == sum(s["reports"] for s in manifest["splits"].values())
    # plots, evidence, data files
    artifacts = {a.path for folder in ("plots", "evidence", "data", "evaluation")
                 for a in client.list_artifacts(run_id, folder)}
    assert {"plots/per_code_f1.png", "plots/precision_recall.png", "evidence/attention_examples.html",
            "evidence/evidence_examples.jsonl", "data/manifest.json", "data/rounds.json",
            "evaluation/evaluation-test.json", "evaluation/per_code_f1.json"} <= artifacts
    # three logged models, each loadable
    for artifact in registry.MODELS:
        assert run.data.tags[f"hiericd.model_id.{artifact}"].startswith("m-")
    tagger = mlflow.pytorch.load_model(f"models:/{run.data.tags['hiericd.model_id.tagger']}")
    assert type(tagger).__name__ == "SentenceTagger"


def test_logging_the_same_model_folder_again_returns_the_same_run(store, models):
    catalog, run_id = store
    assert registry.log_training_run(models["good"], models["dataset"], catalog=catalog) == run_id
    client = store_client(catalog)
    experiment = client.get_experiment_by_name(registry.EXPERIMENT)
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert experiment.artifact_location.startswith((catalog.mlflow_artifacts / "hiericd").as_uri())


def test_register_twice_creates_no_second_version(store):
    catalog, run_id = store
    first = registry.register(run_id, catalog=catalog)
    again = registry.register(run_id, catalog=catalog)
    client = store_client(catalog)
    for artifact, name in registry.MODELS.items():
        assert first[artifact]["created"] and not again[artifact]["created"]
        assert first[artifact]["version"] == again[artifact]["version"] == 1
        assert len(client.search_model_versions(f"name='{name}'")) == 1
        assert client.get_model_version_by_alias(name, "challenger").run_id == run_id


def test_per_code_f1_matches_scikit_learn():
    gold = {"a": {"X", "Y"}, "b": {"X"}, "c": {"Z"}, "d": set()}
    pred = {"a": {"X"}, "b": {"Y"}, "c": {"Z", "X"}}
    scores = registry.code_f1(gold, pred)
    ids = sorted(gold)
    binarizer = MultiLabelBinarizer(classes=["X", "Y", "Z"]).fit([])
    y_true = binarizer.transform([gold[i] for i in ids])
    y_pred = binarizer.transform([pred.get(i, set()) for i in ids])
    expected = f1_score(y_true, y_pred, average=None, zero_division=0)
    assert [scores[c]["f1"] for c in ("X", "Y", "Z")] == pytest.approx(list(expected))
    assert {c: s["support"] for c, s in scores.items()} == {"X": 2, "Y": 1, "Z": 1}


def score(micro: float, per_code: dict[str, tuple[float, int]]) -> dict:
    return {"micro_f1": micro, "per_code": {c: {"f1": f, "support": n} for c, (f, n) in per_code.items()}}


def test_gate_rules_on_worked_numbers():
    gate = registry.GateConfig(micro_f1_tolerance=0.01, max_code_f1_drop=0.10, min_code_support=20, min_kappa=0.4,
                               min_micro_f1=0.3, beat_baseline="lr")
    champion = score(0.60, {"A": (0.80, 40), "B": (0.50, 25), "C": (0.90, 3)})
    # 0.595 is within 0.01 of 0.60; A drops 0.08, B 0.05; C (support 3) may collapse
    ok = score(0.595, {"A": (0.72, 40), "B": (0.45, 25), "C": (0.0, 3)})
    rules = {r["rule"]: r for r in registry.apply_rules(gate, ok, champion, {"name": "lr", "micro_f1": 0.55}, 0.5)}
    assert all(r["passed"] for r in rules.values())
    assert rules["micro_f1_tolerance"]["value"] == pytest.approx(-0.005)
    assert rules["max_code_f1_drop"]["value"] == pytest.approx(0.08)
    # 0.585 is 0.015 below; A drops 0.15; kappa 0.35 < 0.4; below LR's 0.59
    bad = score(0.585, {"A": (0.65, 40), "B": (0.50, 25)})
    rules = {r["rule"]: r for r in registry.apply_rules(gate, bad, champion, {"name": "lr", "micro_f1": 0.59}, 0.35)}
    assert {k for k, r in rules.items() if r["passed"] is False} == {
        "micro_f1_tolerance", "max_code_f1_drop", "min_kappa", "beat_baseline"}
    assert "A (+0.150)" in rules["max_code_f1_drop"]["detail"]
    # the first model: absolute rules only; unknown kappa skips that rule
    first = {r["rule"]: r for r in registry.apply_rules(gate, bad, None, {"name": "lr", "micro_f1": 0.5}, None)}
    assert set(first) == {"min_micro_f1", "beat_baseline", "min_kappa"}
    assert first["min_kappa"]["passed"] is None and first["beat_baseline"]["passed"]


def test_gate_config_from_toml(tmp_path):
    (tmp_path / "gate.toml").write_text('[gate]\nmin_kappa = 0.5\nbeat_baseline = "none"\nreference_set = "ref"\n')
    gate = registry.GateConfig.from_toml(tmp_path / "gate.toml")
    assert gate.min_kappa == 0.5 and gate.beat_baseline is None and gate.reference_set == str(tmp_path / "ref")
    assert gate.micro_f1_tolerance == 0.01
    (tmp_path / "bad.toml").write_text("[gate]\nmin_f1 = 0.5\n")
    with pytest.raises(registry.GateError, match="bad.toml: unknown gate setting"):
        registry.GateConfig.from_toml(tmp_path / "bad.toml")


def test_promote_first_model_refuse_a_worse_one_then_roll_back(models, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    catalog = new_catalog(tmp_path / "home", models, tmp_path_factory)
    monkeypatch.setenv("HIERICD_HOME", str(catalog.root))
    client = store_client(catalog)
    dataset = models["dataset"]
    good_f1, weak_f1 = micro_f1(models["good"], dataset), micro_f1(models["weak"], dataset)
    assert good_f1 - weak_f1 > 0.05, (good_f1, weak_f1)

    # no challenger yet: a clear message
    result = runner.invoke(app, ["promote", str(dataset)])
    assert result.exit_code == 2 and "register a run first" in result.output

    good_run = registry.log_training_run(models["good"], dataset, catalog=catalog)
    registry.register(good_run, catalog=catalog)
    # the default gate: the first model must beat LR on the same reports (the run's own LR figure is reused)
    lr_f1 = json.loads((models["good"] / "evaluation-test.json").read_text())["end_to_end"]["lr"]["micro"]["f1"]
    default = registry.promote(dataset_dir=dataset, catalog=catalog)
    rule = next(r for r in default["rules"] if r["rule"] == "beat_baseline")
    assert rule["threshold"] == pytest.approx(lr_f1) and rule["value"] == pytest.approx(good_f1)
    assert default["baseline"]["source"] == f"run {good_run}"
    assert good_f1 < lr_f1 and not rule["passed"] and default["outcome"] == "refused"  # a tiny model trained 4 s
    # an impossible floor refuses even the first model; nothing moves
    refused = registry.promote(dataset_dir=dataset, gate=registry.GateConfig(min_micro_f1=1.01, beat_baseline=None),
                               catalog=catalog)
    assert refused["outcome"] == "refused" and refused["champion"] is None
    assert [r["passed"] for r in refused["rules"] if r["rule"] == "min_micro_f1"] == [False]
    assert registry.status(catalog=catalog)["champion"] is None

    # the first model faces the absolute rules only
    first = registry.promote(dataset_dir=dataset, gate=GATE, catalog=catalog)
    assert first["outcome"] == "promoted" and {r["rule"] for r in first["rules"]} == {"min_micro_f1", "min_kappa"}
    assert first["challenger"]["micro_f1"] == pytest.approx(good_f1)
    saved = json.loads(Path(first["decision_file"]).read_text())
    assert saved["rules"] == first["rules"] and Path(first["decision_file"]).parent == catalog.decisions
    assert Path(first["decision_file"]).name.endswith("-v1.json")
    for name in registry.MODELS.values():
        assert client.get_model_version_by_alias(name, "champion").run_id == good_run
    assert client.get_model_version("hiericd-pipeline", "1").tags["hiericd.gate"] == "promoted"

    # a one-epoch model, registered from the command line, is refused against the champion
    result = runner.invoke(app, ["register", str(models["weak"]), str(dataset)])
    assert result.exit_code == 0, result.output
    assert "hiericd-pipeline version 2 @challenger" in result.output
    worse = registry.promote(dataset_dir=dataset, gate=GATE, catalog=catalog)
    assert worse["outcome"] == "refused"
    rules = {r["rule"]: r for r in worse["rules"]}
    assert rules["micro_f1_tolerance"]["passed"] is False
    assert rules["micro_f1_tolerance"]["value"] == pytest.approx(weak_f1 - good_f1)
    assert worse["champion"]["micro_f1"] == pytest.approx(good_f1)
    assert client.get_model_version_by_alias("hiericd-pipeline", "champion").version in (1, "1")
    assert client.get_model_version("hiericd-pipeline", "2").tags["hiericd.gate"] == "refused"
    # the command line says so with exit status 1
    result = runner.invoke(app, ["promote", str(dataset), "--gate", str(write_gate(tmp_path))])
    assert result.exit_code == 1 and "refused" in result.output and "micro_f1_tolerance" in result.output

    # a gate loose enough lets it through; rollback restores the earlier champion, and only once
    loose = registry.GateConfig(beat_baseline=None, micro_f1_tolerance=1.0, max_code_f1_drop=1.0)
    assert registry.promote(dataset_dir=dataset, gate=loose, catalog=catalog)["previous_champion"] == 1
    assert registry.status(catalog=catalog)["champion"]["version"] == 2
    assert registry.promote(dataset_dir=dataset, gate=loose, catalog=catalog)["outcome"] == "already-champion"
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 0 and "v2 → v1" in result.output
    status = registry.status(catalog=catalog)
    assert status["champion"]["version"] == 1 and status["history"] == [1]
    assert status["champion"]["metrics"]["micro_f1"] == pytest.approx(good_f1)
    assert status["challenger"]["version"] == 2
    assert client.get_model_version_by_alias("hiericd-icd-classifier", "champion").run_id == good_run
    with pytest.raises(registry.RegistryError, match="first champion"):
        registry.rollback(catalog=catalog)
    decisions = sorted(p.name for p in catalog.decisions.iterdir())
    assert len(decisions) == 7 and sum("rollback" in d for d in decisions) == 1


def write_gate(folder: Path) -> Path:
    path = folder / "gate.toml"
    path.write_text('[gate]\nbeat_baseline = "none"\nmin_code_support = 5\n')
    return path


def test_reference_set_scores_both_sides_on_its_reports(store, models, tmp_path):
    catalog, run_id = store
    registry.register(run_id, catalog=catalog)
    reference = tmp_path / "reference"
    shutil.copytree(models["dataset"], reference)
    gate = registry.GateConfig(reference_set=str(reference), split="dev")
    decision = registry.promote(dataset_dir=tmp_path / "missing", gate=gate, catalog=catalog, out_dir=tmp_path / "d")
    p = predict_dataset(models["good"], reference, "dev")
    assert decision["dataset"] == str(reference) and decision["split"] == "dev"
    # the run scored LR on the test split, so LR is fitted and scored on the reference's dev split
    assert decision["baseline"]["source"] == f"fitted on {reference}"
    rule = next(r for r in decision["rules"] if r["rule"] == "beat_baseline")
    assert rule["threshold"] == decision["baseline"]["micro_f1"]
    assert decision["challenger"]["micro_f1"] == pytest.approx(end_to_end_scores(p.gold, p.codes).micro.f1)
    assert Path(decision["decision_file"]).parent == tmp_path / "d"


def test_user_mistakes_are_one_line_messages(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "mlflow").mkdir(parents=True)
    shutil.copyfile(empty_store(tmp_path_factory), tmp_path / "home" / "mlflow" / "mlflow.db")
    result = runner.invoke(app, ["register", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "no tagger.pt" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 2 and "nothing to roll back" in result.output
    result = runner.invoke(app, ["model-card", "7", "--out", str(tmp_path / "card")])
    assert result.exit_code == 2 and "registry-status" in result.output


def test_an_ablation_beside_the_model_is_part_of_what_is_logged(models, tmp_path):
    folder = tmp_path / "ablation" / "supervised_r4v"
    shutil.copytree(models["good"], folder)
    assert registry.ablation_file(folder) is None
    before = registry.model_digest(folder)
    assert before == registry.model_digest(models["good"])  # the bytes, not the place
    (tmp_path / "ablation" / "ablation.json").write_text('{"rows": []}')
    assert registry.ablation_file(folder) == tmp_path / "ablation" / "ablation.json"
    assert registry.model_digest(folder) != before  # a run logged without the ablation is not reused
    (folder / "ablation.json").write_text('{"rows": [1]}')
    assert registry.ablation_file(folder) == folder / "ablation.json"


def test_using_a_store_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    """Another catalog used later in the same process must get its own store, not the one used before."""
    from hiericd_core.catalog import Catalog

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = Catalog.from_env(tmp_path / "one"), Catalog.from_env(tmp_path / "two")
    registry.status(catalog=first)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert registry.tracking_uri(second) == second.mlflow_tracking_uri != first.mlflow_tracking_uri
