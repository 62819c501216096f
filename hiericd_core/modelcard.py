"""The model card of a pipeline version, and the figures and evidence a training run logs.

:func:`run_figures` draws what :func:`hiericd_core.registry.log_training_run`
logs beside the metrics: per-code F1 of the most frequent codes, the
systems' precision and recall, and test reports with their attention
evidence (HTML and JSON lines). :func:`write_model_card` turns a logged run
(found by pipeline version or run id) into ``model_card.html`` and
``model_card.md`` — data (rounds, agreement, label space), metrics beside the
baselines, ablation when one was run, evidence examples, intended use and
limits — and logs both as artifacts of the run.

MLflow is reached through :mod:`hiericd_core.registry` only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from hiericd_core.files import atomic_write_text

TOP_CODES = 20  # codes shown in the per-code F1 figure


# ---------------------------------------------------------------- figures


def per_code_f1_png(rows: Sequence[Mapping], title: str) -> bytes:
    """Horizontal bars of per-code F1, most frequent code on top; ``rows``: ``{"code", "f1", "support"}``."""
    import matplotlib
    from matplotlib.figure import Figure

    from hiericd_core.plots import DPI, STYLE, png_bytes

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.5, 1.2 + 0.3 * max(len(rows), 1)), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        y = list(range(len(rows)))
        ax.barh(y, [r["f1"] for r in rows], color="#1f4e79")
        ax.set_yticks(y, [f"{r['code']} (n={r['support']})" for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1 (report level)")
        ax.set_title(title)
        return png_bytes(fig)


def precision_recall_png(systems: Mapping[str, Mapping], title: str) -> bytes:
    """Micro precision against micro recall of each system, over iso-F1 curves."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    from hiericd_core.plots import DPI, STYLE, png_bytes

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.0, 5.0), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        for f in (0.2, 0.4, 0.6, 0.8):
            r = np.linspace(f / (2 - f) + 1e-3, 1, 100)
            ax.plot(r, f * r / (2 * r - f), color="#cccccc", lw=0.8, zorder=1)
            ax.text(1.0, f / (2 - f), f" F1={f:g}", fontsize=7, color="#888888", va="center")
        for name, scores in systems.items():
            mine = name.startswith("hiericd")
            ax.scatter(scores["micro"]["recall"], scores["micro"]["precision"], s=60 if mine else 30,
                       color="#b30000" if mine else "#1f4e79", zorder=3)
            ax.annotate(name, (scores["micro"]["recall"], scores["micro"]["precision"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("micro recall")
        ax.set_ylabel("micro precision")
        ax.set_title(title)
        return png_bytes(fig)


# ---------------------------------------------------------------- evidence


def highlight(text: str, start: int, tokens: Sequence[Mapping]) -> list[dict]:
    """Cut a sentence (at offset ``start`` of its report) into ``{"text", "weight"}`` pieces.

    ``tokens`` are the evidence tokens (``start``/``end`` offsets into the
    report, ``weight``); pieces outside every token get weight None.
    """
    pieces, at = [], 0
    for token in sorted(tokens, key=lambda t: t["start"]):
        a, b = token["start"] - start, token["end"] - start
        if a < at or b > len(text):
            continue  # overlapping or outside: cannot happen with the segmenter's tokens, keep the text whole
        if a > at:
            pieces.append({"text": text[at:a], "weight": None})
        pieces.append({"text": text[a:b], "weight": float(token["weight"])})
        at = b
    if at < len(text):
        pieces.append({"text": text[at:], "weight": None})
    return pieces


def evidence_examples(model_dir: str | Path, dataset_dir: str | Path, n: int = 5, split: str = "test") -> list[dict]:
    """The first ``n`` reports of a split (by id), coded by the model, with gold codes and evidence pieces."""
    import pyarrow.parquet as pq

    from hiericd_core.infer import Predictor

    table = pq.read_table(Path(dataset_dir) / "reports.parquet", filters=[("split", "=", split)],
                          columns=["report_id", "text", "reason_for_visit", "codes"]).to_pylist()
    reports = sorted(table, key=lambda r: r["report_id"])[:n]
    results = Predictor.load(model_dir).predict(reports)
    out = []
    for report, result in zip(reports, results, strict=True):
        codes = []
        for code in result.to_json()["codes"]:
            tokens = [{"token": t[0], "weight": t[1], "start": t[2], "end": t[3]} for t in code["top_tokens"]]
            codes.append({"code": code["code"], "probability": code["probability"],
                          "correct": code["code"] in report["codes"], "sentence_idx": code["sentence_idx"],
                          "sentence_start": code["sentence_start"], "sentence_end": code["sentence_end"],
                          "sentence_text": code["sentence_text"], "top_tokens": tokens,
                          "pieces": highlight(code["sentence_text"], code["sentence_start"], tokens)})
        out.append({"report_id": report["report_id"], "reason_for_visit": report["reason_for_visit"],
                    "text": report["text"], "gold": sorted(report["codes"]), "codes": codes})
    return out


def run_figures(model_dir: str | Path, dataset_dir: str | Path, evaluation: Mapping, examples: int = 5) -> dict:
    """Files a training run logs beside its metrics, and the pyfunc model's input example.

    Returns:
        ``{"files": {name: bytes}, "input_example": DataFrame}`` with ``per_code_f1.png``,
        ``per_code_f1.json`` (every code of the split), ``precision_recall.png``,
        ``attention_examples.html`` and ``evidence_examples.jsonl``.
    """
    import pandas as pd

    from hiericd_core.infer_dataset import predict_dataset
    from hiericd_core.registry import code_f1

    split = evaluation.get("split", "test")
    predictions = predict_dataset(model_dir, dataset_dir, split)
    per_code = code_f1(predictions.gold, predictions.codes)
    frequent = sorted(per_code.items(), key=lambda kv: (-kv[1]["support"], kv[0]))[:TOP_CODES]
    rows = [{"code": c, **s} for c, s in frequent if s["support"]]
    shown = evidence_examples(model_dir, dataset_dir, examples, split)
    files = {
        "per_code_f1.png": per_code_f1_png(rows, f"per-code F1, {len(rows)} most frequent codes ({split})"),
        "per_code_f1.json": (json.dumps(per_code, indent=2, sort_keys=True) + "\n").encode(),
        "precision_recall.png": precision_recall_png(evaluation.get("end_to_end", {}),
                                                     f"end to end, {split} split"),
        "attention_examples.html": _environment().get_template("model_card.evidence.html.j2").render(
            examples=shown, standalone=True).encode(),
        "evidence_examples.jsonl": "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in shown).encode(),
    }
    example = pd.DataFrame([{"report_id": e["report_id"], "text": e["text"],
                             "reason_for_visit": e["reason_for_visit"] or ""} for e in shown[:3]])
    return {"files": files, "input_example": example}


# ---------------------------------------------------------------- the card


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    # HTML escaped, Markdown not (its text would show "&amp;")
    env = Environment(loader=PackageLoader("hiericd_core", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["f3"] = lambda x: "—" if x is None or x != x else f"{x:.3f}"
    env.filters["shade"] = _shade
    env.filters["describe"] = _describe
    return env


# the attention shading: a light amber whose opacity grows with the weight and stays at most 0.6, so the
# dark text on it reads at every weight (a deep red behind white text did not, for light weights)
SHADE_RGB = (255, 176, 0)
SHADE_ALPHA = (0.08, 0.6)  # at weight 0 and weight 1


def _shade(weight: float, heaviest: float = 1.0) -> str:
    """The CSS background of a token with attention ``weight``, relative to the sentence's ``heaviest`` token.

    Attention spreads over a phrase, so even its top tokens weigh 0.1–0.3: shading by the raw weight would
    leave most of them nearly white.
    """
    low, high = SHADE_ALPHA
    alpha = low + (high - low) * min(max(float(weight) / max(float(heaviest), 1e-9), 0.0), 1.0)
    return f"rgba({', '.join(map(str, SHADE_RGB))}, {alpha:.2f})"


def _describe(code: str) -> str:
    """The ICD-10-CM title of ``code``; empty for a code outside the tabular list (e.g. an entity label)."""
    from hiericd_core.icd import lookup

    info = lookup(code)
    return info.description if info is not None else ""


def card_context(bundle: Mapping) -> dict:
    """What the templates show, from :func:`hiericd_core.registry.card_bundle`'s result."""
    evaluation = bundle.get("evaluation") or {}
    systems = []
    for name, scores in (evaluation.get("end_to_end") or {}).items():
        systems.append({"name": name, "ours": name.startswith("hiericd"), "micro_p": scores["micro"]["precision"],
                        "micro_r": scores["micro"]["recall"], "micro_f1": scores["micro"]["f1"],
                        "instance_f1": scores["instance"]["f1"], "subset_accuracy": scores["subset_accuracy"]})
    manifest = bundle.get("manifest") or {}
    per_code = bundle.get("per_code") or {}
    frequent = sorted(per_code.items(), key=lambda kv: (-kv[1]["support"], kv[0]))[:10]
    return {
        "name": bundle["name"], "version": bundle.get("version"), "aliases": bundle.get("aliases") or [],
        "run_id": bundle["run_id"], "tags": bundle.get("tags") or {}, "params": bundle.get("params") or {},
        "dataset_version": manifest.get("version"), "language": manifest.get("language"),
        "label_space_size": manifest.get("label_space_size"), "splits": manifest.get("splits") or {},
        "rounds": bundle.get("rounds") or {}, "split": evaluation.get("split", "test"), "systems": systems,
        "tagger": evaluation.get("tagger"), "classifier": evaluation.get("classifier"),
        "evidence": evaluation.get("evidence"), "variant": evaluation.get("variant"),
        "ablation": bundle.get("ablation"), "examples": bundle.get("examples") or [],
        "frequent_codes": [{"code": c, **s} for c, s in frequent],
        "images": {name: base64.b64encode(data).decode() for name, data in (bundle.get("images") or {}).items()},
    }


def render_card(bundle: Mapping) -> tuple[str, str]:
    """The card as ``(html, markdown)``."""
    env = _environment()
    context = card_context(bundle)
    return (env.get_template("model_card.html.j2").render(context),
            env.get_template("model_card.md.j2").render(context))


def write_model_card(version_or_run: str | int, out: str | Path, *, catalog=None, log: bool = True) -> dict:
    """Write ``model_card.html`` and ``model_card.md`` of a pipeline version (or run) into ``out``.

    Args:
        version_or_run: a ``hiericd-pipeline`` version number (``3``, ``"3"``, ``"v3"``), an alias
            (``"champion"``, ``"challenger"``) or a run id.
        out: the folder to write into.
        catalog: the catalog whose MLflow store to read (default ``$HIERICD_HOME``).
        log: also log both files as artifacts of the run (under ``model_card/``).

    Returns:
        ``{"html", "markdown", "run_id", "version"}``.

    Raises:
        RegistryError: no such version or run.
    """
    from hiericd_core import registry

    out = Path(out)
    bundle = registry.card_bundle(version_or_run, catalog=catalog)
    html, markdown = render_card(bundle)
    html_path = atomic_write_text(out / "model_card.html", html)
    md_path = atomic_write_text(out / "model_card.md", markdown)
    if log:
        registry.log_files(bundle["run_id"], [html_path, md_path], "model_card", catalog=catalog)
    return {"html": str(html_path), "markdown": str(md_path), "run_id": bundle["run_id"],
            "version": bundle.get("version")}
