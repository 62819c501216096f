"""The promotion gate's rules: what a challenger must pass to become champion.

Pure functions over scores (no MLflow here): :func:`code_f1` per code,
:class:`GateConfig` (from a ``[gate]`` TOML table) and :func:`apply_rules`,
which :func:`hiericd_core.registry.promote` applies to the challenger and the
champion scored on the same held-out reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GateConfig", "GateError", "apply_rules", "code_f1"]


class GateError(Exception):
    """A gate config that cannot be used (the message names the file and the setting)."""


def code_f1(gold: Mapping[str, Iterable[str]], pred: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """Per code, report-level P/R/F1 and support (reports whose gold set holds the code).

    Over the reports of ``gold``; a report missing from ``pred`` is predicted
    empty. An empty denominator gives 0 (as :mod:`hiericd_core.evaluate`).
    """
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for rid, codes in gold.items():
        g, p = set(codes), set(pred.get(rid, ()))
        tp.update(g & p)
        fp.update(p - g)
        fn.update(g - p)
    out = {}
    for code in sorted(set(tp) | set(fp) | set(fn)):
        t, f_p, f_n = tp[code], fp[code], fn[code]
        out[code] = {"precision": t / (t + f_p) if t + f_p else 0.0, "recall": t / (t + f_n) if t + f_n else 0.0,
                     "f1": 2 * t / (2 * t + f_p + f_n) if t + f_p + f_n else 0.0, "support": t + f_n}
    return out


@dataclass(frozen=True)
class GateConfig:
    """Rules a challenger must pass to become champion (relative rules only when there is a champion).

    Absolute rules, always: ``min_micro_f1`` (a floor), ``beat_baseline``
    (micro F1 above that baseline's on the same reports; None: off) and
    ``min_kappa`` (the lowest headline kappa of the rounds the challenger was
    trained on; None: off; rounds without an agreement report skip it).
    Relative rules, against the champion on the same reports: micro F1 may
    fall by at most ``micro_f1_tolerance``; no code with at least
    ``min_code_support`` reports in the split may lose more than
    ``max_code_f1_drop`` F1.
    """

    micro_f1_tolerance: float = 0.01
    max_code_f1_drop: float = 0.10
    min_code_support: int = 20
    min_kappa: float | None = 0.4
    min_micro_f1: float = 0.0
    beat_baseline: str | None = "lr"
    split: str = "test"
    reference_set: str | None = None  # a data set folder scored instead of the promoted data set

    def __post_init__(self) -> None:
        """Check the values, so that a typo fails here and not after minutes of scoring (or as a refusal)."""
        from hiericd_core.baselines import BASELINES

        for key in ("micro_f1_tolerance", "max_code_f1_drop", "min_micro_f1", "min_kappa"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise GateError(f"{key} = {value!r}: give a number")
        if isinstance(self.min_code_support, bool) or not isinstance(self.min_code_support, int) \
                or self.min_code_support < 0:
            raise GateError(f"min_code_support = {self.min_code_support!r}: give a whole number of reports, 0 or more")
        if self.beat_baseline is not None and self.beat_baseline not in BASELINES:
            raise GateError(f"beat_baseline = {self.beat_baseline!r}: use one of {', '.join(BASELINES)}, or \"none\"")
        if self.split not in ("dev", "test"):
            raise GateError(f"split = {self.split!r}: use dev or test")

    @classmethod
    def from_toml(cls, path: str | Path) -> GateConfig:
        """Read the ``[gate]`` table of a TOML file (or its top level when it has none).

        A relative ``reference_set`` is taken relative to the TOML file's folder.

        Raises:
            GateError: unreadable TOML, an unknown key or a bad value (the message names the file and key).
        """
        from hiericd_core.settings import read_settings

        data = read_settings(path, "gate", cls, GateError, "gate", paths=("reference_set",))
        try:
            # in a file a share outside 0..1 is a typo (30 meant as 30%); code may pass 1.01 to refuse everything
            for key in ("micro_f1_tolerance", "max_code_f1_drop", "min_micro_f1"):
                if key in data and not 0.0 <= data[key] <= 1.0:
                    raise GateError(f"{key} = {data[key]!r}: give a number from 0 to 1")
            if data.get("min_kappa") is not None and not -1.0 <= data["min_kappa"] <= 1.0:
                raise GateError(f"min_kappa = {data['min_kappa']!r}: give a number from -1 to 1, or \"none\"")
            return cls(**data)
        except GateError as exc:
            raise GateError(f"{path}: gate setting {exc}") from exc


def apply_rules(gate: GateConfig, challenger: Mapping, champion: Mapping | None, baseline: Mapping | None,
                kappa: float | None) -> list[dict]:
    """The gate's rules as ``{"rule", "value", "threshold", "passed", "detail"}`` (``passed`` None: not applicable).

    Args:
        challenger, champion: ``{"micro_f1", "per_code": code_f1(...)}`` of each on the same reports
            (``champion`` None for the first model).
        baseline: ``{"name", "micro_f1"}`` of the baseline on the same reports, or None.
        kappa: the lowest headline kappa of the challenger's rounds, or None when unknown.
    """
    rules = [{"rule": "min_micro_f1", "value": challenger["micro_f1"], "threshold": gate.min_micro_f1,
              "passed": challenger["micro_f1"] >= gate.min_micro_f1,
              "detail": "challenger micro F1 >= the floor"}]
    if gate.beat_baseline:
        if baseline is None:
            raise GateError(f"unknown baseline {gate.beat_baseline!r} in the gate config")
        rules.append({"rule": "beat_baseline", "value": challenger["micro_f1"], "threshold": baseline["micro_f1"],
                      "passed": challenger["micro_f1"] > baseline["micro_f1"],
                      "detail": f"challenger micro F1 > {baseline['name']}'s on the same reports"})
    if gate.min_kappa is not None:
        rules.append({"rule": "min_kappa", "value": kappa, "threshold": gate.min_kappa,
                      "passed": None if kappa is None else kappa >= gate.min_kappa,
                      "detail": "lowest headline kappa (report × code) of the challenger's rounds" if kappa is not None
                      else "no agreement report for the challenger's rounds: not checked"})
    if champion is not None:
        delta = challenger["micro_f1"] - champion["micro_f1"]
        rules.append({"rule": "micro_f1_tolerance", "value": delta, "threshold": -gate.micro_f1_tolerance,
                      "passed": delta >= -gate.micro_f1_tolerance - 1e-12,
                      "detail": f"challenger {challenger['micro_f1']:.4f} vs champion {champion['micro_f1']:.4f}"})
        frequent = sorted(c for c, s in champion["per_code"].items() if s["support"] >= gate.min_code_support)
        drops = {c: champion["per_code"][c]["f1"] - challenger["per_code"].get(c, {"f1": 0.0})["f1"]
                 for c in frequent}
        worst = max(drops.values()) if drops else None
        over = sorted((c for c, d in drops.items() if d > gate.max_code_f1_drop + 1e-12), key=lambda c: -drops[c])
        rules.append({"rule": "max_code_f1_drop", "value": worst, "threshold": gate.max_code_f1_drop,
                      "passed": None if worst is None else not over,
                      "detail": (f"{len(frequent)} code(s) with support >= {gate.min_code_support}"
                                 + (f"; dropped too far: {', '.join(f'{c} ({drops[c]:+.3f})' for c in over)}"
                                    if over else "")) if frequent else
                      f"no code with support >= {gate.min_code_support} in the split: not checked"})
    return rules
