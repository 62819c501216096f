"""The round report: the data-quality page the coding lead reads after every round.

:func:`build_report` writes into ``out_dir`` (the catalog's ``reports/<round_id>/``):

* ``index.html`` — one self-contained page (inline CSS, figures by relative
  path, nothing fetched from the network): round summary and codes, Table 1
  (pairwise, all-coder and senior kappa with 95% intervals), agreement by
  unit, per-code agreement with dispute examples, adjudication, the
  round-over-round trend, warnings, and the quarantined items;
* ``kappa_heatmap.png``, ``per_code_kappa.png``, ``adjudication.png``,
  ``trend.png`` (:mod:`hiericd_core.plots`) — each only when there is
  something to draw; one left by an earlier run that has nothing to draw now
  is removed;
* ``summary.json`` — this round's headline figures (:func:`round_summary`).

The trend reads every ``<history_root>/*/summary.json`` (the sibling rounds'
report folders; ``history_root`` defaults to the parent of ``out_dir``) and
orders the rounds by date, then id. Nothing depends on the clock or on the
order files are listed in: the same inputs give the same ``index.html`` and
``summary.json`` bytes (and the same PNG bytes with the same matplotlib).

The kappa threshold of the warnings is the agreement's
(``AgreementConfig.kappa_threshold``), so that the page and the agreement
JSON flag the same figures.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from statistics import fmean

from jinja2 import Environment, PackageLoader, StrictUndefined

from hiericd_core import icd
from hiericd_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from hiericd_core.merge import (
    DISPUTE_KINDS,
    OUTCOMES,
    RULES,
    STATUSES,
    Dispute,
    MergeResult,
    covered_text,
    fragments_overlap,
)
from hiericd_core.rounds import Report, Round

SUMMARY = "summary.json"
INDEX = "index.html"
FIGURES = ("kappa_heatmap.png", "per_code_kappa.png", "adjudication.png", "trend.png")
SUMMARY_VERSION = 1
TREND_FIGURES = ("reports", "mean_pairwise_kappa", "fleiss_kappa", "alpha", "disputes", "pending_reports",
                 "quarantined")

# Landis & Koch (1977): (lower, upper, name); below 0 is poor, else the first band whose upper bound it reaches.
LANDIS_KOCH = (
    (-1.0, 0.0, "poor"),
    (0.0, 0.2, "slight"),
    (0.2, 0.4, "fair"),
    (0.4, 0.6, "moderate"),
    (0.6, 0.8, "substantial"),
    (0.8, 1.0, "almost perfect"),
)
UNIT_TITLES = {"report_code": "Report × code", "sentence_focus": "Sentence × focus", "token_code": "Token × code"}
UNIT_QUESTIONS = {"report_code": "did the coder give this code to the report?",
                  "sentence_focus": "did the coder mark anything in this sentence, whatever the code?",
                  "token_code": "which code covers this word, if any?"}
QUARANTINE_TITLES = {"brat": "malformed BRAT line", "code": "invalid code", "layout": "file layout",
                     "metadata": "metadata row"}
KIND_TITLES = {"conflict": "conflict (coders chose different codes)",
               "unmatched": "unmatched (only one coder marked it)"}


@dataclass(frozen=True)
class ReportConfig:
    """How much of each list the page shows, and the report's own warning limits."""

    worst_codes: int = 20  # lowest per-code kappas in the table and the figure
    example_codes: int = 8  # codes shown with dispute examples
    examples_per_code: int = 3
    top_codes: int = 20  # most used codes in the round summary
    confusions: int = 10  # most frequent code pairs in conflicts
    quarantine_rows: int = 200
    pending_ids: int = 100
    phrase_chars: int = 160  # longer phrases and regions are cut with an ellipsis
    wide_ci: float = 0.4  # a per-code 95% interval wider than this is called unstable
    trend_drop: float = 0.05  # mean pairwise kappa falling more than this since the last round is flagged


def code_system_label(code_system: str) -> str:
    """How a round's ``code_system`` (``round.toml``) is shown: ``ICD-10-CM``, ``CIE-10-ES``; ``none``: as given."""
    return "as given" if code_system == "none" else code_system.upper()


def landis_koch(kappa: float | None) -> str:
    """The Landis & Koch name of ``kappa`` ("" when undefined)."""
    if kappa is None:
        return ""
    if kappa < 0:
        return LANDIS_KOCH[0][2]
    return next((name for _, upper, name in LANDIS_KOCH[1:] if kappa <= upper), LANDIS_KOCH[-1][2])


def round_summary(round: Round, merge_result: MergeResult, merge_summary: dict, agreement: dict) -> dict:
    """This round's headline figures: what ``summary.json`` holds and the trend reads.

    The headline unit is report × code presence; ``mean_pairwise_kappa`` is
    the plain mean of the coder pairs' kappas (``None`` with fewer than two
    coders per report).
    """
    unit = agreement["units"]["report_code"]
    kappas = [p["kappa"] for p in unit["pairs"] if p["kappa"] is not None]
    quality = merge_summary.get("quality")
    return {
        "summary_version": SUMMARY_VERSION,
        "round_id": round.id,
        "date": round.config.date,
        "language": round.config.language,
        "code_system": round.config.code_system,
        "reports": len(round.reports),
        "coders": list(round.coders),
        "coder_annotations": merge_summary["coder_annotations"]["total"],
        "distinct_codes": agreement["code_set_size"],
        "agreement_unit": unit["unit"],
        "agreement_status": unit["status"],
        "mean_pairwise_kappa": _rounded(fmean(kappas)) if kappas else None,
        "fleiss_kappa": unit["fleiss"]["value"],
        "alpha": unit["alpha"]["value"],
        "pairs": [_pair_summary(p) for p in unit["pairs"]],
        "senior": [_pair_summary(p) for p in unit["senior"]],
        "kappa_threshold": agreement["config"]["kappa_threshold"],
        "disputes": merge_summary["disputes"]["total"],
        "pending_reports": len(merge_result.pending),
        "quarantined": len(round.quarantined),
        "merge_quality": None if quality is None else {
            "code_precision": quality["code"]["precision"],
            "code_recall": quality["code"]["recall"],
            "code_f1": quality["code"]["f1"],
            "overlap_truth_matched": quality["overlap"]["truth_matched"],
        },
    }


def _rounded(x: float) -> float:
    return round(x, 6)  # as the agreement JSON rounds (``round`` is shadowed by the round above)


def _pair_summary(p: dict) -> dict:
    return {"a": p["a"], "b": p["b"], "n_reports": p["n_reports"], "kappa": p["kappa"], "ci95": p["ci95"]}


def read_history(history_root: Path, skip: Path, round_id: str) -> tuple[list[dict], list[str]]:
    """Read the earlier rounds' ``summary.json`` under ``history_root`` (one folder level down).

    Args:
        history_root: the folder holding one report folder per round.
        skip: this round's report folder (its old summary is not history).
        round_id: this round's id; another folder with a summary of it is skipped too.

    Returns:
        The summaries, and one problem sentence per file that could not be read.
    """
    found, problems = [], []
    skip = skip.resolve()
    for path in sorted(history_root.glob(f"*/{SUMMARY}")):
        if path.parent.resolve() == skip:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: not readable as JSON ({exc}); the trend leaves this round out")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("round_id"), str):
            problems.append(f"{path}: no round_id; not a round report summary, the trend leaves it out")
            continue
        if data["round_id"] != round_id:
            found.append(data)
    return found, problems


def build_report(round: Round, merge_result: MergeResult, merge_summary: dict, agreement: dict, out_dir: Path,
                 history_root: Path | None = None, config: ReportConfig = ReportConfig()) -> Path:
    """Write the round report (page, figures, summary) into ``out_dir``.

    Args:
        round: the loaded round.
        merge_result: :func:`~hiericd_core.merge.merge_round` of it.
        merge_summary: what :func:`~hiericd_core.merge_write.write_merge` returned.
        agreement: :func:`~hiericd_core.agreement.agreement` of it.
        out_dir: the report folder (created if missing).
        history_root: where earlier rounds' report folders are; default ``out_dir.parent``.
        config: list lengths and the report's own warning limits.

    Returns:
        The path of ``index.html``.
    """
    from hiericd_core import plots  # matplotlib is imported only when a report is drawn

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = round_summary(round, merge_result, merge_summary, agreement)
    history, history_problems = read_history(Path(history_root) if history_root else out_dir.parent,
                                             out_dir, round.id)
    threshold = agreement["config"]["kappa_threshold"]
    codes = _codes(round, agreement, config)
    page = {
        "summary": summary,
        "threshold": threshold,
        "bands": [(_band_range(low, high), name) for low, high, name in LANDIS_KOCH],
        "senior_reports": agreement["senior_reports"],
        "coders": _coder_rows(round),
        "reports_by_coder_count": sorted(Counter(r.n_coders for r in round.reports.values()).items()),
        "codes": codes,
        "quarantine": _quarantine(round, config),
        "agreement": _agreement_tables(agreement),
        "span_f1": agreement["span_f1"],
        "per_code": _per_code(round, merge_result, agreement, codes["descriptions"], config),
        "adjudication": _adjudication(merge_result, merge_summary, config),
        "trend": _trend(history, summary),
        "config": config,
        "min_pair_reports": agreement["config"]["min_pair_reports"],
        # descriptions come from the ICD-10-CM table whatever the round's system (CIE-10-ES is built on it)
        "code_header": "Code" if round.config.code_system == "icd-10-cm" else (
            f"Code ({code_system_label(round.config.code_system)})"),
        "description_header": "Description (ICD-10-CM)" if round.config.code_system == "icd-10-cm" else (
            "Description (from ICD-10-CM)"),
    }
    page["warnings"] = _warnings(page, agreement, history_problems, config)

    drawn: dict[str, bytes] = {}
    heat = page["agreement"]["heatmap"]
    if heat:
        drawn["kappa_heatmap.png"] = plots.kappa_heatmap(heat["names"], heat["kappa"], heat["reports"])
    if page["per_code"]["worst"]:
        drawn["per_code_kappa.png"] = plots.per_code_kappa(page["per_code"]["worst"], threshold)
    adjudication = page["adjudication"]
    if adjudication["total"]:
        drawn["adjudication.png"] = plots.adjudication(
            [KIND_TITLES[k] for k in DISPUTE_KINDS], OUTCOMES,
            [[merge_summary["disputes"][k][o] for o in OUTCOMES] for k in DISPUTE_KINDS])
    trend = page["trend"]
    if len(trend) >= 2:
        drawn["trend.png"] = plots.trend(
            [t["round_id"] for t in trend],
            {"mean pairwise kappa": [t["mean_pairwise_kappa"] for t in trend],
             "Fleiss' kappa (all coders)": [t["fleiss_kappa"] for t in trend],
             "Krippendorff's alpha": [t["alpha"] for t in trend]},
            threshold)
    for name in FIGURES:
        if name in drawn:
            atomic_write_bytes(out_dir / name, drawn[name])
        else:
            (out_dir / name).unlink(missing_ok=True)
    page["figures"] = set(drawn)

    atomic_write_json(out_dir / SUMMARY, summary)
    return atomic_write_text(out_dir / INDEX, _environment().get_template("report.html.j2").render(page))


# ---------------------------------------------------------------- sections


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("hiericd_core", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(k=_k, ci=_ci, n=_n, pct=_pct, band=landis_koch)
    return env


def _k(x: float | None) -> str:
    """Three decimals, the way every figure of the page is shown ("—" when undefined; no "-0.000")."""
    if x is None:
        return "—"
    text = f"{x:.3f}"
    return "0.000" if text == "-0.000" else text


def _ci(ci: list[float | None] | None) -> str:
    return "—" if not ci or None in ci else f"{_k(ci[0])} – {_k(ci[1])}"


def _n(x: int | None) -> str:
    return "—" if x is None else f"{x:,}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _band_range(low: float, high: float) -> str:
    """How Landis & Koch wrote the band: "below 0", "0.00–0.20", "0.21–0.40", …"""
    if low < 0:
        return "below 0"
    return f"{low if low == 0 else low + 0.01:.2f}–{high:.2f}"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _coder_rows(round: Round) -> list[dict]:
    bad = Counter(q.who for q in round.quarantined if q.who)
    rows = []
    for coder in round.coders:
        reports = sum(coder in r.coders for r in round.reports.values())
        annotations = sum(len(r.coders.get(coder, ())) for r in round.reports.values())
        rows.append({"name": coder, "reports": reports, "annotations": annotations,
                     "per_report": annotations / reports if reports else None, "quarantined": bad[coder]})
    return rows


def _codes(round: Round, agreement: dict, config: ReportConfig) -> dict:
    annotations: Counter[str] = Counter()
    reports: Counter[str] = Counter()
    for report in round.reports.values():
        used = [a.code for anns in report.coders.values() for a in anns]
        annotations.update(used)
        reports.update(set(used))
    top = sorted(reports, key=lambda c: (-reports[c], c))[: config.top_codes]
    shown = {*top, *(r["code"] for r in agreement["units"]["report_code"]["per_code"])}
    descriptions = {c: _description(c) for c in shown}
    return {
        "distinct": len(annotations),
        "once": sum(1 for c in reports if reports[c] == 1),
        "top": [{"code": c, "description": descriptions[c], "reports": reports[c], "annotations": annotations[c]}
                for c in top],
        "descriptions": descriptions,
    }


def _description(code: str) -> str:
    info = icd.lookup(code)
    return info.description if info else ""


def _quarantine(round: Round, config: ReportConfig) -> dict:
    rows = []
    for q in round.quarantined[: config.quarantine_rows]:
        path = Path(q.problem.file)
        try:
            path = path.relative_to(round.path)
        except ValueError:
            pass
        rows.append({"file": str(path), "line": q.problem.line, "reason": q.problem.reason, "kind": q.kind,
                     "kind_title": QUARANTINE_TITLES.get(q.kind, q.kind),
                     "who": q.who or ""})
    return {"total": len(round.quarantined), "by_kind": round.quarantine_counts(), "rows": rows,
            "more": max(0, len(round.quarantined) - config.quarantine_rows)}


def _kappa_row(p: dict) -> dict:
    return {**p, "label": f"{p['a']} – {p['b']}", "band": landis_koch(p["kappa"])}


def _agreement_tables(agreement: dict) -> dict:
    units = []
    for key, unit in agreement["units"].items():
        fleiss, alpha = unit["fleiss"], unit["alpha"]
        units.append({
            "key": key, "title": UNIT_TITLES.get(key, key), "question": UNIT_QUESTIONS.get(key, ""),
            "unit": unit["unit"], "status": unit["status"],
            "n_items": unit["n_items"], "n_categories": unit["n_categories"],
            "pairs": [_kappa_row(p) for p in unit["pairs"]],
            "senior": [_kappa_row(p) for p in unit["senior"]],
            "fleiss": {**fleiss, "band": landis_koch(fleiss["value"])},
            "alpha": {**alpha, "band": landis_koch(alpha["value"])},
        })
    headline = agreement["units"]["report_code"]
    names = sorted({p[s] for p in headline["pairs"] for s in "ab"})
    if headline["senior"]:
        names.append(headline["senior"][0]["a"])
    heatmap = None
    if headline["pairs"] or headline["senior"]:
        index = {name: i for i, name in enumerate(names)}
        kappa = [[None] * len(names) for _ in names]
        reports = [[0] * len(names) for _ in names]
        for p in headline["pairs"] + headline["senior"]:
            i, j = index[p["a"]], index[p["b"]]
            kappa[i][j] = kappa[j][i] = p["kappa"]
            reports[i][j] = reports[j][i] = p["n_reports"]
        heatmap = {"names": names, "kappa": kappa, "reports": reports}
    return {"ok": headline["status"] == "ok", "status": headline["status"], "units": units,
            "headline": units[0], "heatmap": heatmap}


def _per_code(round: Round, result: MergeResult, agreement: dict, descriptions: dict[str, str],
              config: ReportConfig) -> dict:
    unit = agreement["units"]["report_code"]
    rows = [{**r, "description": descriptions.get(r["code"], ""), "band": landis_koch(r["kappa"])}
            for r in unit["per_code"]]
    disputes: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    examples: dict[str, list[Dispute]] = {}
    for merged in result.reports.values():
        for d in merged.disputes:
            codes = sorted({a.code for a in d.annotations})
            disputes.update(codes)
            kinds.update((c, d.kind) for c in codes)
            if d.kind == "conflict":
                confusions.update(combinations(codes, 2))
            for code in codes:
                _keep_example(examples.setdefault(code, []), d, config.examples_per_code)
    for r in rows:
        r["disputes"] = disputes[r["code"]]
    ranked = sorted((r for r in rows if r["kappa"] is not None), key=lambda r: (r["kappa"], r["code"]))
    worst = [{**r, "label": f"{r['code']}  {_cut(r['description'], 40)}"} for r in ranked[: config.worst_codes]]
    most_disputed = sorted(disputes, key=lambda c: (-disputes[c], c))
    low = [r["code"] for r in ranked if r["kappa"] < agreement["config"]["kappa_threshold"]]
    chosen = list(dict.fromkeys(low[: config.example_codes] + most_disputed[: config.example_codes]))
    kappa_of = {r["code"]: r for r in rows}
    return {
        "rows": rows,
        "worst": worst,
        "min_support": agreement["config"]["min_code_support"],
        "below_support": unit.get("codes_below_support", 0),
        "most_disputed": [{"code": c, "description": descriptions.get(c) or _description(c), "disputes": disputes[c],
                           "conflict": kinds[(c, "conflict")], "unmatched": kinds[(c, "unmatched")],
                           "kappa": kappa_of.get(c, {}).get("kappa")}
                          for c in most_disputed[: config.worst_codes]],
        "confusions": [{"a": a, "b": b, "a_description": _description(a), "b_description": _description(b),
                        "count": n}
                       for (a, b), n in sorted(confusions.items(), key=lambda x: (-x[1], x[0]))[: config.confusions]],
        "examples": [{"code": c, "description": descriptions.get(c) or _description(c),
                      "kappa": kappa_of.get(c, {}).get("kappa"), "disputes": disputes[c],
                      "cases": [_example(d, c, round.reports[d.report_id], config) for d in examples.get(c, ())]}
                     for c in chosen[: config.example_codes]],
    }


def _keep_example(kept: list[Dispute], d: Dispute, limit: int) -> None:
    """Keep the first ``limit`` disputes, conflicts before unmatched ones (reports come in id order)."""
    if len(kept) < limit:
        kept.append(d)
    elif d.kind == "conflict":
        unmatched = [i for i, k in enumerate(kept) if k.kind != "conflict"]
        if unmatched:
            del kept[unmatched[-1]]
            kept.append(d)
    kept.sort(key=lambda k: (k.kind != "conflict", k.report_id, k.region))


def _example(d: Dispute, code: str, report: Report, config: ReportConfig) -> dict:
    """One disputed region: what every coder of the report marked there (or that they marked nothing)."""
    disputed = {(a.source, a.id) for a in d.annotations}
    coders = []
    for coder in sorted(report.coders):
        there = sorted((a for a in report.coders[coder] if fragments_overlap(a.fragments, d.region)),
                       key=lambda a: (a.start, a.end, a.code))
        coders += [{"coder": coder, "code": a.code, "phrase": _cut(a.text, config.phrase_chars),
                    "this": a.code == code, "agreed": (coder, a.id) not in disputed} for a in there]
        if not there:
            coders.append({"coder": coder, "code": "", "phrase": "", "this": False, "agreed": False})
    return {
        "report_id": d.report_id, "kind": d.kind, "outcome": d.outcome,
        "region": _cut(covered_text(report.text, d.region), config.phrase_chars),
        "senior_codes": list(d.senior_codes), "coders": coders,
    }


def _adjudication(result: MergeResult, merge_summary: dict, config: ReportConfig) -> dict:
    pending = result.pending
    disputes = merge_summary["disputes"]
    return {
        "total": disputes["total"],
        "by_kind": [{"kind": k, "title": KIND_TITLES[k], **{o: disputes[k][o] for o in OUTCOMES},
                     "total": sum(disputes[k][o] for o in OUTCOMES)} for k in DISPUTE_KINDS],
        "by_outcome": {o: disputes[o] for o in OUTCOMES},
        "statuses": {s: merge_summary["reports"][s] for s in STATUSES},
        "rules": {r: merge_summary["final_annotations"][r] for r in RULES},
        "final_total": merge_summary["final_annotations"]["total"],
        "coder_annotations": merge_summary["coder_annotations"],
        "senior_annotations": merge_summary["senior_annotations"],
        "quality": merge_summary.get("quality"),
        "pending": pending[: config.pending_ids],
        "pending_more": max(0, len(pending) - config.pending_ids),
    }


def _trend(history: list[dict], summary: dict) -> list[dict]:
    """This round and the earlier ones by date, then id; what a summary lacks (older versions) is ``None``."""
    def row(data: dict, current: bool) -> dict:
        out = {key: _number(data.get(key)) for key in TREND_FIGURES}
        return {**out, "round_id": data["round_id"], "date": str(data.get("date") or ""), "current": current}

    rounds = [row(h, False) for h in history] + [row(summary, True)]
    return sorted(rounds, key=lambda r: (r["date"], r["round_id"]))


def _number(x) -> float | int | None:
    return x if isinstance(x, int | float) and not isinstance(x, bool) else None


def _warnings(page: dict, agreement: dict, history_problems: list[str], config: ReportConfig) -> list[str]:
    threshold = page["threshold"]
    tables = page["agreement"]
    out = []
    for message in agreement["warnings"]:
        unit, _, rest = message.partition(": ")
        if not tables["ok"] and unit == "report_code":
            continue  # no kappa at all: what rare codes would do to one is beside the point
        if message.startswith("no report has two coders"):
            out.append("Agreement: no report was coded by two coders, so kappa, Fleiss' kappa and alpha cannot be "
                       "computed; have a second coder code a sample of the reports")
        else:
            out.append(f"{UNIT_TITLES[unit]}: {rest}" if unit in UNIT_TITLES else message[:1].upper() + message[1:])
    headline = tables["headline"]
    unsure = [row for row in [*headline["pairs"], *headline["senior"]]
              if row["kappa"] is not None and row["kappa"] >= threshold and row["ci95"] and row["ci95"][0] < threshold]
    if unsure:
        shown = ", ".join(f"{r['a']}–{r['b']} ({r['kappa']:.3f}, down to {r['ci95'][0]:.3f})" for r in unsure)
        out.append(f"Report × code: kappa is above {threshold} but its 95% interval reaches below it for {shown}: "
                   "with these reports, agreement is not clearly above the threshold")
    wide = sorted((r for r in page["per_code"]["rows"] if r["ci95"] and r["ci95"][1] - r["ci95"][0] > config.wide_ci),
                  key=lambda r: (r["ci95"][0] - r["ci95"][1], r["code"]))  # widest first
    if wide:
        shown = ", ".join(f"{r['code']} ({_ci(r['ci95'])})" for r in wide[:5])
        out.append(f"Per code: {len(wide)} of {len(page['per_code']['rows'])} codes have a 95% interval wider "
                   f"than {config.wide_ci} ({shown}{', …' if len(wide) > 5 else ''}): too few reports carry them "
                   "for their kappa to be more than a rough guide")
    current = next(i for i, t in enumerate(page["trend"]) if t["current"])
    earlier = [t for t in page["trend"][:current] if t["mean_pairwise_kappa"] is not None]
    now = page["summary"]["mean_pairwise_kappa"]
    if earlier and now is not None and earlier[-1]["mean_pairwise_kappa"] - now > config.trend_drop:
        out.append(f"Trend: mean pairwise kappa fell from {earlier[-1]['mean_pairwise_kappa']:.3f} "
                   f"(round {earlier[-1]['round_id']}) to {now:.3f}")
    pending = page["summary"]["pending_reports"]
    if pending:
        out.append(f"Adjudication: {pending:,} reports have disputes the senior has not decided yet; they are "
                   "left out of the merged data until the senior's file is added")
    quarantined = page["quarantine"]["total"]
    if quarantined:
        kinds = ", ".join(f"{QUARANTINE_TITLES.get(k, k)}: {n:,}" for k, n in page["quarantine"]["by_kind"].items())
        out.append(f"Loading: {quarantined:,} items were quarantined ({kinds}); the reports they belong to may "
                   "miss codes (see Quarantined items for file and line)")
    out += [f"Trend: {p}" for p in history_problems]
    return out
