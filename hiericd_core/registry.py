"""MLflow tracking, the model registry and the champion/challenger promotion gate.

This module, with :mod:`hiericd_core.registry_store` (the store, versions read
back, status, model card data) and :mod:`hiericd_core.registry_run` (logging a
training run), is the only code that talks to MLflow (besides the pyfunc wrapper
in :mod:`hiericd_core.pyfunc`); their names are all importable from here. The
store is the catalog's sqlite database and artifact folder
(``HIERICD_HOME/mlflow/``) unless ``MLFLOW_TRACKING_URI`` says otherwise (e.g.
``http://127.0.0.1:5000`` for ``make mlflow``).

One training run (:func:`log_training_run`) holds the resolved config as
params, the per-epoch history and the paper's Tables 3–5 (model and baselines)
as metrics, the data set as an MLflow dataset input, the rounds with their
agreement, plots, and three logged models: the sentence tagger, the ICD
classifier and the whole pipeline (:class:`~hiericd_core.pyfunc.HiericdPipeline`).

:func:`register` files the three models as versions of
``hiericd-sentence-tagger``, ``hiericd-icd-classifier`` and
``hiericd-pipeline`` and points the ``challenger`` alias at them.
:func:`promote` scores the challenger and the champion pipeline on the same
held-out reports, applies the :class:`GateConfig` rules and moves
``champion`` only when every rule passes; :func:`rollback` moves it back.
Where a person must sign off, ``promote(await_approval=True)`` records the
decision and the challenger's model card without moving ``champion``;
:func:`apply_decision` then moves it in the approver's name, or
:func:`reject_decision` records the refusal.
Aliases are used throughout, never the deprecated stages. Every decision is
a JSON file in ``HIERICD_HOME/mlflow/decisions/`` and tags on the versions.

Re-running a step is safe: logging a model folder already logged returns
the earlier run, registering a run already registered returns its versions.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_json
from hiericd_core.gate import GateConfig, GateError, apply_rules, code_f1
from hiericd_core.registry_run import (  # noqa: F401 - re-exported: registry's names stay importable from here
    ablation_file,
    epoch_metrics,
    final_metrics,
    flatten,
    headline_kappa,
    log_training_run,
    metric_name,
    model_digest,
    round_agreement,
    system_key,
)
from hiericd_core.registry_store import (  # noqa: F401 - re-exported: registry's names stay importable from here
    CHALLENGER,
    CHAMPION,
    CLASSIFIER,
    EXPERIMENT,
    HISTORY_TAG,
    KEY_METRICS,
    MODEL_FILES,
    MODELS,
    OURS,
    PIPELINE,
    TAGGER,
    RegistryError,
    _alias,
    _client,
    _describe,
    _history,
    _version_of_run,
    card_bundle,
    log_files,
    status,
    tracking_uri,
)

__all__ = ["GateConfig", "GateError", "RegistryError", "apply_decision", "log_training_run", "promote", "register",
           "reject_decision", "rollback", "status"]


# ---------------------------------------------------------------- the registry


def register(run_id: str, *, catalog: Catalog | None = None) -> dict:
    """Register the run's three models and point ``challenger`` at their versions.

    A run registered before keeps its versions (none is added); ``challenger``
    is set again unless that version is the champion.

    Returns:
        ``{"run_id", "pipeline" | "tagger" | "classifier": {"name", "version", "created"}}``.

    Raises:
        RegistryError: no such run, or it is not a complete hiericd training run.
    """
    from mlflow.exceptions import MlflowException

    client = _client(catalog)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"no MLflow run {run_id} in {tracking_uri(catalog)}; "
                            "log one with `hiericd register MODEL_DIR DATASET`") from exc
    if run.data.tags.get("hiericd.logged") != "true" or any(f"hiericd.model_id.{a}" not in run.data.tags
                                                             for a in MODELS):
        raise RegistryError(f"run {run_id} is not a complete hiericd training run (no hiericd.logged tag); "
                            "log the model folder again")
    out: dict = {"run_id": run_id}
    for artifact, name in MODELS.items():
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description=_DESCRIPTIONS[artifact])
        existing = _version_of_run(client, name, run_id)
        if existing is None:
            import mlflow

            # the logged model itself (MLflow 3 keeps models apart from the run's artifacts)
            version = mlflow.register_model(f"models:/{run.data.tags[f'hiericd.model_id.{artifact}']}", name, tags={
                "hiericd.run_id": run_id, "hiericd.dataset_version": run.data.tags.get("hiericd.dataset_version", ""),
                "hiericd.variant": run.data.tags.get("hiericd.variant", "")})
        else:
            version = existing
        champion = _alias(client, name, CHAMPION)
        if champion is None or int(champion.version) != int(version.version):
            client.set_registered_model_alias(name, CHALLENGER, version.version)
        out[artifact] = {"name": name, "version": int(version.version), "created": existing is None}
    return out


_DESCRIPTIONS = {
    "tagger": "hiericd sentence tagger: marks the focus sentences of a pathology report (paper Table 3).",
    "classifier": "hiericd phrase-attention ICD-10 classifier of one focus sentence (paper Table 4).",
    "pipeline": "hiericd pipeline: report text (+ reason for visit) -> ICD-10 codes with evidence "
                "(focus sentence, attention tokens). Input columns report_id, text, reason_for_visit.",
}


# ---------------------------------------------------------------- the gate


def _score(model_dir: Path, dataset_dir: Path, split: str) -> dict:
    """End-to-end scores and per-code F1 of a model folder on a data set split."""
    from hiericd_core.evaluate import as_dict, end_to_end_scores
    from hiericd_core.infer_dataset import predict_dataset

    predictions = predict_dataset(model_dir, dataset_dir, split)
    scores = as_dict(end_to_end_scores(predictions.gold, predictions.codes, predictions.labels))
    return {"micro_f1": scores["micro"]["f1"], "end_to_end": scores,
            "per_code": code_f1(predictions.gold, predictions.codes)}


def _version_folder(client, version, dst: Path) -> Path:
    """The model folder inside a registered pipeline version (downloaded and loaded through pyfunc)."""
    import mlflow.pyfunc

    dst.mkdir(parents=True, exist_ok=True)
    model = mlflow.pyfunc.load_model(f"models:/{PIPELINE}/{version.version}", dst_path=str(dst))
    return Path(model.unwrap_python_model().model_dir)


def _baseline(gate: GateConfig, run, eval_dir: Path) -> dict | None:
    """The baseline's micro F1 on the gate's reports: from the run when it was scored on them, else fitted now.

    The baselines are deterministic, so the figure the challenger's run logged
    for the same data set version and split is the one a refit would give.
    """
    manifest = json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))
    logged = run.data.metrics.get(f"{gate.split}_{metric_name(gate.beat_baseline)}_micro_f1")
    if (logged is not None and run.data.tags.get("hiericd.dataset_version") == manifest.get("version")
            and run.data.tags.get("hiericd.evaluation_split") == gate.split):
        return {"name": gate.beat_baseline, "micro_f1": logged, "source": f"run {run.info.run_id}"}
    from hiericd_core.baselines import run_baselines

    results = run_baselines(eval_dir, gate.split)
    if gate.beat_baseline not in results:
        return None
    return {"name": gate.beat_baseline, "micro_f1": results[gate.beat_baseline]["metrics"]["micro"]["f1"],
            "source": f"fitted on {eval_dir}"}


def _move_champion(client, run_id: str, pipeline_version: str) -> None:
    """Point ``champion`` of the three registered models at the versions of one run."""
    for artifact, name in MODELS.items():
        version = pipeline_version if artifact == "pipeline" else getattr(_version_of_run(client, name, run_id),
                                                                          "version", None)
        if version is not None:
            client.set_registered_model_alias(name, CHAMPION, version)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def promote(*, dataset_dir: str | Path, gate: GateConfig | None = None, catalog: Catalog | None = None,
            out_dir: str | Path | None = None, await_approval: bool = False) -> dict:
    """Score challenger and champion on the same held-out reports; move ``champion`` when every rule passes.

    The reports are the ``gate.split`` split of ``gate.reference_set`` when
    set, else of ``dataset_dir``. The first model (no champion yet) faces the
    absolute rules only. The decision goes to
    ``<out_dir or HIERICD_HOME/mlflow/decisions>/<time>-v<version>.json`` and
    onto the challenger version's tags.

    Args:
        await_approval: a person signs off: when every rule passes, ``champion``
            stays where it is, the outcome is ``"awaiting-approval"`` and the
            challenger's model card is written beside the decision
            (``model_card``); :func:`apply_decision` or :func:`reject_decision`
            finishes it.

    Returns:
        the decision: ``{"outcome": "promoted" | "refused" | "already-champion" | "awaiting-approval", "passed",
        "challenger", "champion", "previous_champion", "baseline", "rules", "dataset", "split", "gate",
        "decided_at", "approval", "decision_file"}``; the file also holds each side's per-code scores.

    Raises:
        RegistryError: no challenger registered, or the data set folder is missing.
    """
    catalog = catalog or Catalog.from_env()
    gate = gate or GateConfig()
    client = _client(catalog)
    challenger = _alias(client, PIPELINE, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"no {PIPELINE}@{CHALLENGER} in {tracking_uri(catalog)}; register a run first "
                            "(hiericd register)")
    champion = _alias(client, PIPELINE, CHAMPION)
    if champion is not None and int(champion.version) == int(challenger.version):
        return {"outcome": "already-champion", "passed": True, "challenger": _describe(client, challenger),
                "champion": _describe(client, champion), "rules": []}
    eval_dir = Path(gate.reference_set or dataset_dir).resolve()
    if not (eval_dir / "manifest.json").is_file():
        raise RegistryError(f"{eval_dir}: not a data set folder (no manifest.json); give the data set to score on")

    with tempfile.TemporaryDirectory(prefix="hiericd-gate-") as tmp:
        sides = {"challenger": challenger} | ({"champion": champion} if champion is not None else {})
        scores = {side: _score(_version_folder(client, v, Path(tmp) / side), eval_dir, gate.split)
                  for side, v in sides.items()}
    run = client.get_run(challenger.run_id)
    baseline = _baseline(gate, run, eval_dir) if gate.beat_baseline else None
    kappa = run.data.metrics.get("rounds_min_kappa")
    rules = apply_rules(gate, scores["challenger"], scores.get("champion"), baseline, kappa)
    passed = all(r["passed"] is not False for r in rules)
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    outcome = "refused" if not passed else AWAITING if await_approval else "promoted"
    decision = {
        "outcome": outcome, "passed": passed, "decided_at": decided_at,
        "dataset": str(eval_dir), "split": gate.split, "gate": asdict(gate),
        "challenger": {**_describe(client, challenger), **_summary(scores["challenger"])},
        "champion": ({**_describe(client, champion), **_summary(scores["champion"])} if champion is not None
                     else None),
        "previous_champion": int(champion.version) if champion is not None else None,
        "baseline": baseline, "rules": rules, "approval": {"required": await_approval},
    }
    folder = Path(out_dir) if out_dir is not None else catalog.decisions
    path = folder / f"{_stamp()}-v{challenger.version}.json"
    decision["decision_file"] = str(path)
    if outcome == AWAITING:  # what the approver reads beside the numbers
        from hiericd_core.modelcard import write_model_card

        card = write_model_card(challenger.version, _card_folder(path), catalog=catalog)
        decision["model_card"] = card["html"]
    atomic_write_json(path, decision)
    if outcome == "promoted":
        _crown(client, challenger, champion)
    for key, value in {"hiericd.gate": decision["outcome"], "hiericd.gate_decided_at": decided_at,
                       "hiericd.gate_decision_file": str(path),
                       "hiericd.gate_micro_f1": f"{scores['challenger']['micro_f1']:.6f}",
                       "hiericd.gate_failed_rules": ",".join(r["rule"] for r in rules if r["passed"] is False)
                       }.items():
        client.set_model_version_tag(PIPELINE, challenger.version, key, value)
    return _without_per_code(decision)


def _crown(client, challenger, champion) -> None:
    """Move ``champion`` to the challenger's versions and append it to the champion history."""
    history = _history(client)
    _move_champion(client, challenger.run_id, challenger.version)
    if champion is not None:
        client.set_model_version_tag(PIPELINE, challenger.version, "hiericd.previous_champion", str(champion.version))
    client.set_registered_model_tag(PIPELINE, HISTORY_TAG, json.dumps([*history, int(challenger.version)]))


def _card_folder(decision_file: Path) -> Path:
    """Where the challenger's model card of a decision awaiting approval is written: beside the decision."""
    return decision_file.with_name(f"{decision_file.stem}-card")


# ---------------------------------------------------------------- sign-off


AWAITING = "awaiting-approval"  # the outcome of a gate passed by a challenger that waits for a person


def apply_decision(decision_file: str | Path, *, approved_by: str, approved_at: str | None = None,
                   catalog: Catalog | None = None) -> dict:
    """Move ``champion`` to the challenger of a decision awaiting approval, in the approver's name.

    The approver and the time go into the decision file (``approval``) and onto
    the challenger version's tags (``hiericd.approved_by``,
    ``hiericd.approved_at``); the outcome becomes ``"promoted"``.

    Args:
        decision_file: the file :func:`promote` wrote with ``await_approval=True``.
        approved_by: who signed off (the Airflow user's name or id).
        approved_at: when (ISO 8601; default now).

    Returns:
        the decision as now recorded (without per-code scores).

    Raises:
        RegistryError: no such decision, it is not awaiting approval, or ``champion`` moved since the gate
            decided (the numbers compared the challenger with another model: run the gate again).
    """
    return _sign_off(decision_file, approved=True, by=approved_by, at=approved_at, catalog=catalog)


def reject_decision(decision_file: str | Path, *, rejected_by: str, rejected_at: str | None = None,
                    catalog: Catalog | None = None) -> dict:
    """Record that a person refused a decision awaiting approval; ``champion`` stays.

    As :func:`apply_decision`, with ``hiericd.rejected_by`` / ``hiericd.rejected_at`` and the outcome
    ``"rejected"``.
    """
    return _sign_off(decision_file, approved=False, by=rejected_by, at=rejected_at, catalog=catalog)


def _sign_off(decision_file: str | Path, *, approved: bool, by: str, at: str | None,
              catalog: Catalog | None) -> dict:
    path = Path(decision_file)
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: not a readable gate decision ({exc})") from exc
    if decision.get("outcome") != AWAITING:
        raise RegistryError(f"{path}: the decision is {decision.get('outcome')!r}, not {AWAITING!r}: "
                            "nothing to approve or reject")
    if not str(by or "").strip():
        raise RegistryError(f"{path}: a sign-off needs the name of the person who gave it")
    client = _client(catalog)
    version = str(decision["challenger"]["version"])
    challenger = client.get_model_version(PIPELINE, version)
    champion = _alias(client, PIPELINE, CHAMPION)
    now = champion and int(champion.version)
    then = decision.get("previous_champion")
    if approved and now != then:  # the approver saw numbers against another champion
        raise RegistryError(f"{path}: {PIPELINE}@{CHAMPION} is {f'v{now}' if now else 'none'} now, not "
                            f"{f'v{then}' if then else 'none'} as when the gate compared: run the gate again")
    verb = "approved" if approved else "rejected"
    at = at or datetime.now(UTC).isoformat(timespec="seconds")
    if approved:
        _crown(client, challenger, champion)
    decision["outcome"] = "promoted" if approved else "rejected"
    decision["approval"] = {**decision.get("approval", {}), "outcome": verb, "by": by, "at": at}
    atomic_write_json(path, decision)
    for key, value in {"hiericd.gate": decision["outcome"], f"hiericd.{verb}_by": by, f"hiericd.{verb}_at": at}.items():
        client.set_model_version_tag(PIPELINE, version, key, value)
    return _without_per_code(decision)


def _without_per_code(decision: dict) -> dict:
    """The decision less its per-code tables (kept in the file), small enough to pass along (e.g. Airflow XCom)."""
    return {**decision, **{side: {k: v for k, v in decision[side].items() if k != "per_code"}
                           for side in ("challenger", "champion") if decision.get(side)}}


def _summary(score: Mapping) -> dict:
    e2e = score["end_to_end"]
    return {"micro_f1": score["micro_f1"], "micro_precision": e2e["micro"]["precision"],
            "micro_recall": e2e["micro"]["recall"], "subset_accuracy": e2e["subset_accuracy"],
            "per_code": score["per_code"]}


def rollback(*, catalog: Catalog | None = None) -> dict:
    """Move ``champion`` back to the champion before the current one and record it.

    The champion history (a tag of ``hiericd-pipeline``) loses its last entry,
    so a second rollback goes one further back.

    Returns:
        ``{"outcome": "rolled-back", "from", "to", "decided_at", "decision_file"}``.

    Raises:
        RegistryError: no champion, or none before it.
    """
    catalog = catalog or Catalog.from_env()
    client = _client(catalog)
    champion = _alias(client, PIPELINE, CHAMPION)
    if champion is None:
        raise RegistryError(f"no {PIPELINE}@{CHAMPION} in {tracking_uri(catalog)}: nothing to roll back")
    history = _history(client)
    if history and history[-1] == int(champion.version):
        history = history[:-1]
    if not history:
        raise RegistryError(f"{PIPELINE} version {champion.version} is the first champion: no earlier one to roll "
                            "back to")
    target = client.get_model_version(PIPELINE, str(history[-1]))
    _move_champion(client, target.run_id, target.version)
    client.set_registered_model_tag(PIPELINE, HISTORY_TAG, json.dumps(history))
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    path = catalog.decisions / f"{_stamp()}-rollback-v{champion.version}-to-v{target.version}.json"
    decision = {"outcome": "rolled-back", "from": int(champion.version), "to": int(target.version),
                "decided_at": decided_at,
                "history": history, "decision_file": str(path)}
    atomic_write_json(path, decision)
    client.set_model_version_tag(PIPELINE, champion.version, "hiericd.rolled_back_at", decided_at)
    client.set_model_version_tag(PIPELINE, target.version, "hiericd.restored_at", decided_at)
    return decision
