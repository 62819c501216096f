"""The round pipeline as steps that take and return paths.

The CLI, ``make demo`` and the Airflow tasks all call these; each step reads
its inputs from the catalog, writes its outputs there atomically, and can be
re-run alone with the same result. Values returned are paths and small JSON
dicts (what Airflow passes through XCom), never data frames.

=================  ============================================================
step               writes (under ``HIERICD_HOME``)
=================  ============================================================
:func:`ingest`     ``rounds/<id>/`` — a copy of the incoming round
:func:`merge`      ``merged/<id>/`` (+ ``adjudication/`` when reports are pending)
:func:`assess`     ``reports/<id>/agreement.json``, ``index.html``, PNGs, ``summary.json``
:func:`datasets`   ``datasets/<version>/`` (Parquet, label space, manifest, GX Data Docs)
=================  ============================================================

Each step builds its folder in a hidden scratch folder beside the
destination (``.tmp-hiericd-*``, same file system) and renames it into place whole
(:func:`~hiericd_core.files.replace_dir`): a step killed at any point leaves
the previous output or the new one, never a mix, and its scratch folder is
removed when a step next writes beside it. A data set is renamed into place
only after its Great Expectations gate passed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_json, replace_dir, staging_dir


def ingest(source: str | Path, catalog: Catalog) -> Path:
    """Copy a round into the catalog (``rounds/<round id>/``) and return its path.

    A round already inside the catalog is used where it is. A copy keeps the
    round the pipeline read, whatever later happens to the export folder; an
    earlier copy of the same round id is replaced (a re-export, e.g. with the
    senior's files added), whole: the copy is made in a scratch folder beside
    it and swapped in (:func:`~hiericd_core.files.replace_dir`).
    """
    from hiericd_core.rounds import load_round

    source = Path(source).resolve()
    loaded = load_round(source)
    target = catalog.round(loaded.id)
    if source == target or catalog.rounds in source.parents:
        return source
    with staging_dir(target.parent, target.name) as scratch:
        shutil.copytree(source, scratch / target.name, symlinks=True)  # a link stays a link: the loader refuses it
        replace_dir(scratch / target.name, target)
    return target


def merge(round_path: str | Path, catalog: Catalog, out: str | Path | None = None) -> dict:
    """Merge a round into ``merged/<round id>/`` (or ``out``), replacing an earlier merge whole.

    Into the catalog, the adjudication queue of pending reports goes to
    ``merged/<round id>/adjudication/``: the senior works from it. The folder
    is built beside its destination and swapped in (see
    :func:`~hiericd_core.merge_write.write_merge`), so a merge killed halfway
    leaves the previous one whole.

    Raises:
        DatasetError: ``out`` is a folder that holds something other than a merged round (it would be replaced).

    Returns:
        ``{"round_id", "merged", "pending", "queue", "summary"}`` (paths as strings; ``queue`` None when no
        report is pending or with ``out``).
    """
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import ADJUDICATION_DIR, write_merge
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path)
    result = merge_round(loaded)
    target = catalog.merged(loaded.id) if out is None else _replaceable(Path(out), "merge_summary.json", "merged round")
    with_queue = out is None
    summary = write_merge(result, loaded, target, queue=with_queue)
    queue = target / ADJUDICATION_DIR if with_queue and result.pending else None
    return {"round_id": loaded.id, "merged": str(target), "pending": len(result.pending),
            "queue": str(queue) if queue else None, "summary": summary}


def merged_round(path: str | Path, catalog: Catalog) -> tuple[Path, int]:
    """A merged round folder as it is, or a round folder merged into the catalog first (:func:`merge`).

    Returns:
        The merged folder and the number of its reports pending adjudication (0 for a folder given merged).
    """
    path = Path(path)
    if (path / "reports.parquet").is_file() and (path / "merge_summary.json").is_file():
        return path, 0
    info = merge(path, catalog)
    return Path(info["merged"]), info["pending"]


def _replaceable(folder: Path, marker: str, what: str) -> Path:
    """``folder`` when it may be replaced whole: absent, empty, or holding ``marker`` (an earlier output)."""
    from hiericd_core.datasets import DatasetError

    if folder.exists() and not (folder / marker).is_file() and (not folder.is_dir() or any(folder.iterdir())):
        raise DatasetError(f"{folder} exists and is not a {what} folder (no {marker}); it would be replaced "
                           "whole: give a new or empty folder")
    return folder


def assess(round_path: str | Path, catalog: Catalog, *, bootstrap: int = 1000) -> dict:
    """Agreement figures and the data-quality report of a round.

    Returns:
        ``{"round_id", "report", "agreement", "headline_kappa", "warnings"}``.
    """
    from hiericd_core.agreement import AgreementConfig, agreement
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import merge_summary
    from hiericd_core.report import build_report
    from hiericd_core.rounds import load_round

    loaded = load_round(round_path)
    result = merge_round(loaded)
    figures = agreement(loaded, AgreementConfig(bootstrap=bootstrap))
    out = catalog.report(loaded.id)
    atomic_write_json(out / "agreement.json", figures)
    index = build_report(loaded, result, merge_summary(result, loaded), figures, out)
    kappas = [p["kappa"] for p in figures["units"]["report_code"]["pairs"] if p["kappa"] is not None]
    return {"round_id": loaded.id, "report": str(index), "agreement": str(out / "agreement.json"),
            "headline_kappa": round(sum(kappas) / len(kappas), 6) if kappas else None,
            "warnings": len(figures["warnings"])}


def merged_rounds(catalog: Catalog, like: str | Path | None = None) -> list[Path]:
    """The catalog's merged rounds, oldest first (round date, then id): what a retraining builds on.

    With ``like`` (a merged round folder), only the rounds of its language and
    code system: a Spanish round and an English one make no data set together.
    A folder without a readable ``brat/round.toml`` (written by the merge) is skipped.
    """
    from hiericd_core.rounds import RoundConfig, RoundError

    def config(folder: Path) -> RoundConfig | None:
        toml = folder / "brat" / "round.toml"
        try:
            return RoundConfig.from_toml(toml, default_id=folder.name) if toml.is_file() else None
        except (OSError, RoundError):
            return None

    root = catalog.root / "merged"
    # hidden folders are scratch space (a merge being written), never a round
    rounds = ({f: config(f) for f in sorted(root.iterdir()) if f.is_dir() and not f.name.startswith(".")}
              if root.is_dir() else {})
    rounds = {f: r for f, r in rounds.items() if r is not None}
    want = config(Path(like)) if like is not None else None
    if want is not None:
        rounds = {f: r for f, r in rounds.items() if (r.language, r.code_system) == (want.language, want.code_system)}
    return sorted(rounds, key=lambda f: (rounds[f].date, rounds[f].id))


def datasets(merged_dirs: list[str | Path], catalog: Catalog, *, min_count: int = 10, seed: int = 13,
             backend: str = "auto", progress: bool = False, round_splits: dict[str, str] | None = None,
             out: str | Path | None = None, cache: bool = True) -> dict:
    """Build the data set from merged rounds (oldest first), gate it, and put it in ``datasets/<version>/``.

    The folder is built and validated in a scratch folder beside its
    destination (``datasets/.tmp-hiericd-*``, or beside ``out``) and renamed into
    place only after the Great Expectations gate passed, so a folder under
    ``datasets/`` is always a whole data set that passed: Parquet, label
    space, manifest, ``validation.json`` and Data Docs (``data_docs/``). A
    data set that fails goes to ``rejected/datasets/<version>/`` instead, for
    inspection; a rebuild of an existing version replaces it whole.
    ``round_splits`` (round id -> split) puts every report of those rounds in
    that split instead of the hash's (CodiEsp: ``{"codiesp-train": "train",
    "codiesp-dev": "dev"}``).

    With ``cache`` (the default) reports are segmented through the catalog's
    ``cache/segments/``, so only reports new since an earlier build are
    segmented; the data set is the same bytes either way.

    Returns:
        ``{"version", "path", "manifest", "data_docs", "segment_cache"}``; ``segment_cache`` counts hits,
        misses, corrupt (unusable entries rewritten) and write_errors, and is empty with ``cache=False``.

    Raises:
        DatasetError: nothing usable in the rounds, a bad split setting, or ``out`` is a folder that holds
            something other than a data set.
        ValidationError: an expectation failed; the message names it, the failing rows and where the rejected
            data set is kept (its ``validation.json`` keeps the details).
    """
    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
    from hiericd_core.validation import DOCS_DIR, ValidationError, validate_dataset

    config = DatasetConfig(seed=seed, min_count=min_count, backend=backend,
                           round_splits=tuple((round_splits or {}).items()))
    out = _replaceable(Path(out), "manifest.json", "data set") if out is not None else None
    with staging_dir(out.parent if out is not None else catalog.datasets, "dataset") as scratch:
        # the builder's own scratch files (about the data set's size) stay beside the destination too, not in a
        # /tmp that may be memory
        dataset = build_dataset([Path(p) for p in merged_dirs], config, progress=progress, scratch_dir=scratch,
                                segment_cache=catalog.segment_cache if cache else None)
        folder = write_dataset(dataset, scratch / "dataset")
        dataset.scratch.cleanup()
        version = dataset.manifest["version"]
        target = out if out is not None else catalog.dataset(version)
        report = validate_dataset(folder, folder / DOCS_DIR)
        if not report.success:
            kept = replace_dir(folder, catalog.rejected / "datasets" / version)
            raise ValidationError(report.moved(kept), kept=kept, target=target)
        replace_dir(folder, target)
    report = report.moved(target)
    return {"version": version, "path": str(target), "manifest": str(target / "manifest.json"),
            "data_docs": report.docs_index, "segment_cache": dataset.segment_cache}


def train(dataset_dir: str | Path, out_dir: str | Path, config_file: str | Path | None = None,
          progress: bool = False, config=None) -> dict:
    """Train tagger and classifier on a data set that passed its gate; returns ``{"model", "metrics"}``.

    ``config`` (a :class:`~hiericd_core.train.TrainConfig`) wins over ``config_file``.

    Raises:
        DatasetError: ``dataset_dir`` is not a data set, or its ``validation.json`` is missing or says it failed.
    """
    from hiericd_core.train import train_model
    from hiericd_core.validation import require_passed

    require_passed(dataset_dir)
    metrics = train_model(dataset_dir, out_dir, config or train_config(config_file), progress=progress)
    return {"model": str(out_dir), "metrics": metrics}


def tune(model_dir: str | Path, dataset_dir: str | Path, folds: int = 5, progress: bool = False) -> dict:
    """Choose a trained model's inference rule and phrase memory by k-fold cross-validation on the training split.

    See :func:`hiericd_core.tune.tune_model`; the data set must have passed its gate.
    """
    from hiericd_core.tune import tune_model
    from hiericd_core.validation import require_passed

    require_passed(dataset_dir)
    return tune_model(model_dir, dataset_dir, folds=folds, progress=progress)


def train_config(config_file: str | Path | None = None, overrides: dict | None = None):
    """The :class:`~hiericd_core.train.TrainConfig` of ``config_file`` (or the defaults) with ``overrides`` set.

    Raises:
        TrainError: an unreadable file, or an unknown or badly typed setting (the message names it).
    """
    from dataclasses import fields, replace

    from hiericd_core.train import TrainConfig, TrainError

    config = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
    overrides = dict(overrides or {})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TrainError(f"unknown training setting(s) {', '.join(unknown)}; known ones are {', '.join(sorted(known))}")
    try:
        return replace(config, **overrides)
    except TypeError as exc:
        raise TrainError(f"bad training setting: {exc}") from exc


def choose_dataset(given: str | Path | None, event_extras: list[dict], catalog: Catalog) -> Path | None:
    """The data set a run works on: the one given, else the one the last triggering event names, else the newest."""
    if given:
        return Path(given)
    named = (event_extras[-1] if event_extras else {}).get("dataset_dir")
    return Path(named) if named else latest_dataset(catalog)


def latest_dataset(catalog: Catalog) -> Path | None:
    """The data set folder of the catalog written last (its manifest is written last), or None."""
    manifests = [m for m in catalog.datasets.glob("*/manifest.json")
                 if m.is_file() and not m.parent.name.startswith(".")]
    return max(manifests, key=lambda m: m.stat().st_mtime_ns).parent if manifests else None


def evaluate_model(model_dir: str | Path, dataset_dir: str | Path, split: str = "test", *,
                   baselines: bool = True) -> dict:
    """The paper's Tables 3–5 (and evidence plausibility) for a model, baselines side by side.

    Writes ``evaluation-<split>.json`` and ``evaluation-<split>.md`` into the model folder. Each
    system's end-to-end scores hold ``map`` (trec_eval's, of its ranked codes; the model ranks
    every label-space code: :meth:`~hiericd_core.infer.Predictor.rank_codes`) and ``map_codiesp``
    (the figure of CodiEsp's script, of its predicted codes: :mod:`hiericd_core.evaluate`).

    Returns:
        ``{"split", "variant", "tagger", "classifier", "end_to_end": {system: scores}, "evidence", "table"}``.
    """
    import numpy as np

    from hiericd_core.evaluate import (
        as_dict,
        classifier_scores,
        compare,
        end_to_end_scores,
        evidence_scores,
        markdown_table,
        tagger_scores,
    )
    from hiericd_core.files import atomic_write_text
    from hiericd_core.infer_dataset import predict_dataset

    predictions = predict_dataset(model_dir, dataset_dir, split)
    rows = predictions.classifier_rows
    ours = f"hiericd ({predictions.variant})"
    systems = {ours: predictions.codes}
    rankings = {ours: predictions.ranked}
    if baselines:
        from hiericd_core.baselines import run_baselines

        for name, result in run_baselines(dataset_dir, split).items():
            systems[name] = result["predictions"]
            rankings[name] = result["ranked"]
    label_space = predictions.labels
    result = {
        "split": split,
        "variant": predictions.variant,
        # Table 3: the tagger's own decision (p >= 0.5), before the "no focus → most probable sentence" rule
        "tagger": as_dict(tagger_scores(predictions.sentences["is_focus"],
                                        [p >= 0.5 for p in predictions.sentences["focus_probability"]])),
        # Table 4: macro F1 over the codes in gold or predicted, as during training
        "classifier": as_dict(classifier_scores(rows["code"], rows["predicted"])),
        "end_to_end": {name: as_dict(end_to_end_scores(predictions.gold, codes, label_space, ranked=rankings[name]))
                       for name, codes in systems.items()},
        "evidence": as_dict(evidence_scores(
            [(np.asarray(a), np.asarray(m)) for a, m in zip(rows["attention"], rows["attention_mask"], strict=True)])),
    }
    table = markdown_table(compare(systems, predictions.gold, label_space, rankings))
    result["table"] = table
    atomic_write_json(Path(model_dir) / f"evaluation-{split}.json", result)
    atomic_write_text(Path(model_dir) / f"evaluation-{split}.md", table + "\n")
    return result
