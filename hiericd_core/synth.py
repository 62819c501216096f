"""Synthetic coding rounds: pathology reports, two coders each, senior, truth.

The paper's 39,000 pathology reports are private, so this module writes
realistic stand-ins: an ordinary round folder (``round.toml``, ``texts/``,
``metadata.csv``, ``coders/<coder>/``, ``senior/``) plus ``truth/`` with the
generating annotations, for measuring how well a merge recovers them.

How a report is made:

The parts live in their own modules: the code universe in
:mod:`~hiericd_core.synth_codes`, one report in :mod:`~hiericd_core.synth_report`,
the coders and senior in :mod:`~hiericd_core.synth_coders`; this module holds the
configuration and writes the round folder.

1. its codes are drawn from a long-tailed (Zipf) ranking of real billable
   ICD-10-CM codes of pathology chapters (:func:`code_pool`), further codes
   of a report mostly from the same organ;
2. each code's tabular description is turned into pathology language
   (``Malignant neoplasm of upper-outer quadrant of left female breast`` →
   ``invasive lobular carcinoma`` + ``upper-outer quadrant of left breast``);
3. the report is written section by section around the focus sentences that
   carry the evidence, with distractors (history of other diseases,
   differential diagnoses, negated findings); for some codes the laterality
   or site is only stated in the reason for visit;
4. two of three simulated coders annotate it, each with habits (misses,
   sibling confusion, extra codes on distractors, span boundaries); when they
   disagree the senior annotates it, mostly right.

Everything tunable is in :class:`SynthConfig`; a round depends only on
``(seed, n_reports, config)``: same inputs, byte-identical files, whatever
the number of worker processes.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from hiericd_core.brat import Note, TextBound, format_ann
from hiericd_core.synth_coders import CoderProfile, adjudicate, code_report, disagree
from hiericd_core.synth_codes import CodeEntry, Pool, build_pool
from hiericd_core.synth_report import ReportWriter

__all__ = [
    "CoderProfile",
    "CodeEntry",
    "SynthConfig",
    "SynthSummary",
    "code_pool",
    "coder_kappas",
    "disagree",
    "generate_round",
    "read_ann_codes",
]

Span = tuple[int, int]


# ==========================================================================
# Configuration
# ==========================================================================



def _default_coders() -> tuple[CoderProfile, ...]:
    return (
        # careful, narrow spans
        CoderProfile("coder1", miss_rate=0.09, sibling_rate=0.09, rfv_neglect_rate=0.15, extra_rate=0.06,
                     overcode_rate=0.01, span_shift_rate=0.10, merge_fragments_rate=0.1),
        # reads the report but not the reason for visit; broad spans
        CoderProfile("coder2", miss_rate=0.09, sibling_rate=0.10, rfv_neglect_rate=0.6, extra_rate=0.08,
                     overcode_rate=0.02, span_shift_rate=0.30, merge_fragments_rate=0.6),
        # over-codes history and differentials
        CoderProfile("coder3", miss_rate=0.10, sibling_rate=0.08, rfv_neglect_rate=0.3, extra_rate=0.15,
                     overcode_rate=0.04, span_shift_rate=0.18, merge_fragments_rate=0.3),
    )


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator.

    Code universe: ``n_codes`` codes ranked by pathology weight
    (``pool_seed`` breaks ties), drawn with probability ∝ 1/(rank+offset)^s.

    Report shape: ``codes_per_report[k]`` is the share of reports with k+1
    codes; ``related_code_rate`` the chance a further code comes from the
    first code's organ; ``two_code_sentence_rate`` the chance (given a
    further code of the first code's organ) that the two share one focus
    sentence.

    Coders: ``coders`` (:class:`CoderProfile`), ``coders_per_report`` of them
    per report; the senior errs with ``senior_error_rate`` (sibling) and
    ``senior_miss_rate``, and has not yet adjudicated ``senior_backlog_rate``
    of the disagreeing reports (they are pending). The ``*_target`` ranges are what
    ``scripts/calibrate_synth.py`` checks at 39,000 reports.
    """

    n_reports: int = 39000
    seed: int = 0
    # code universe
    n_codes: int = 955
    zipf_exponent: float = 1.15
    zipf_offset: float = 0.0
    pool_seed: int = 0
    # codes per report
    codes_per_report: tuple[float, ...] = (0.72, 0.165, 0.06, 0.028, 0.014, 0.007, 0.004, 0.002)
    related_code_rate: float = 0.85
    two_code_sentence_rate: float = 0.16
    # focus sentences
    discontinuous_rate: float = 0.25
    rfv_only_rate: float = 0.45
    prose_focus_rate: float = 0.10
    uppercase_diagnosis_rate: float = 0.10
    mods_rate: float = 0.55
    # distractors
    history_distractor_rate: float = 0.55
    max_history_distractors: int = 3
    differential_rate: float = 0.30
    negated_finding_rate: float = 0.55
    negated_disease_rate: float = 0.25
    #: chance that a one-code focus sentence also names another disease of its
    #: organ, negated inside the sentence ("Tubular adenoma of the sigmoid
    #: colon; negative for adenocarcinoma."): a distractor, not coded. 0 (the
    #: default) draws nothing, so rounds made before this setting are unchanged.
    focus_negation_rate: float = 0.0
    history_restates_rfv_rate: float = 0.30
    rfv_states_site_rate: float = 0.50
    history_filler_rate: float = 0.30
    prose_in_comment_rate: float = 0.60
    negated_in_final_rate: float = 0.60
    one_sentence_per_line_rate: float = 0.25
    age_range: tuple[int, int] = (22, 89)
    malignant_age_range: tuple[int, int] = (38, 91)
    # other sections
    micro_rate: float = 0.85
    comment_rate: float = 0.60
    final_first_rate: float = 0.30
    min_sentences: int = 5
    max_sentences: int = 30
    # coders and senior
    coders: tuple[CoderProfile, ...] = field(default_factory=_default_coders)
    coders_per_report: int = 2
    #: how likely a coder codes a distractor, relative to its ``extra_rate``
    distractor_code_factors: tuple[tuple[str, float], ...] = (
        ("history", 1.0), ("differential", 0.8), ("negated", 0.4))
    #: share of sibling confusions that pick the unspecified sibling
    unspecified_sibling_share: float = 0.4
    senior_error_rate: float = 0.03
    senior_miss_rate: float = 0.01
    # share of disagreeing reports the senior has not adjudicated yet (no senior file: pending)
    senior_backlog_rate: float = 0.0
    # round.toml
    round_date: str | None = None  # ISO date; None: derived from the seed
    first_round_date: str = "2022-01-03"
    # number of the round's first report: a round of new reports starts after the previous round's last one
    # (the same number in two rounds means the same report coded again, and the later round wins)
    first_report: int = 1
    language: str = "en"
    code_system: str = "icd-10-cm"
    label: str = "Diagnosis"
    # execution
    workers: int | None = None
    chunk_size: int = 1000
    # calibration targets (checked by scripts/calibrate_synth.py)
    kappa_target: tuple[float, float] = (0.61, 0.69)
    lr_accuracy_target: tuple[float, float] = (0.5, 0.7)
    distinct_codes_target: tuple[int, int] = (900, 1000)
    frequent_codes_target: tuple[int, int] = (370, 450)
    one_code_share_target: tuple[float, float] = (0.68, 0.76)


@dataclass
class SynthSummary:
    """What :func:`generate_round` wrote."""

    out: str
    reports: int
    coders: list[str]
    annotations_per_coder: dict[str, int]
    reports_per_coder: dict[str, int]
    distinct_codes: int
    reports_per_n_codes: dict[int, int]
    senior_reports: int
    truth_annotations: int
    focus_sentences: int
    two_code_focus_sentences: int
    discontinuous_annotations: int
    rfv_dependent_annotations: int
    sentences_min: int
    sentences_max: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def code_pool(config: SynthConfig | None = None) -> list[CodeEntry]:
    """Return the code universe of ``config``, most frequent first."""
    cfg = config or SynthConfig()
    return list(build_pool(cfg.n_codes, cfg.zipf_exponent, cfg.zipf_offset, cfg.pool_seed).entries)


# ==========================================================================
# Files
# ==========================================================================


def _ann_text(text: str, anns: list[tuple[str, tuple[Span, ...]]], label: str) -> str:
    records: list[TextBound | Note] = []
    ordered = sorted(anns, key=lambda a: (a[1][0][0], a[1][-1][1], a[0]))
    for n, (code, frags) in enumerate(ordered, start=1):
        covered = " ".join(text[s:e] for s, e in frags)
        records.append(TextBound(f"T{n}", label, tuple(frags), covered))
        records.append(Note(f"#{n}", "AnnotatorNotes", f"T{n}", code))
    return format_ann(records)


def _write(path: Path, content: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(content)


def read_ann_codes(path: Path) -> list[str]:
    """Return the codes of the ``AnnotatorNotes`` lines of an ``.ann`` file, in file order."""
    codes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].startswith("AnnotatorNotes"):
                codes.append(parts[2].strip())
    return codes


def _round_day(cfg: SynthConfig, seed: int) -> date:
    if cfg.round_date:
        return date.fromisoformat(cfg.round_date)
    return date.fromisoformat(cfg.first_round_date) + timedelta(days=seed % 1096)


def _report_id(index: int, n_reports: int, first: int = 1) -> str:
    return f"R{index + first:0{max(6, len(str(n_reports + first - 1)))}d}"


# worker state (set in the parent before fork, or by the initializer)
_STATE: dict = {}


def _init_worker(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)


def _run_chunk(bounds: tuple[int, int]) -> dict:
    cfg: SynthConfig = _STATE["cfg"]
    pool: Pool = _STATE["pool"]
    tmp: Path = _STATE["tmp"]
    seed: int = _STATE["seed"]
    n_reports: int = _STATE["n_reports"]
    day: date = _STATE["day"]
    names = [c.name for c in cfg.coders]
    stats = {
        "meta": [], "codes": {}, "per_n": {}, "ann": dict.fromkeys(names, 0), "reports": dict.fromkeys(names, 0),
        "senior": 0, "truth": 0, "focus": 0, "pair": 0, "disc": 0, "rfv": 0, "smin": 10**9, "smax": 0,
    }
    for index in range(*bounds):
        rid = _report_id(index, n_reports, cfg.first_report)
        rng = random.Random(f"synth:{seed}:{index}")
        report = ReportWriter(pool, cfg, rng, day).report(rid)
        _write(tmp / "texts" / f"{rid}.txt", report.text)
        truth = [(a.code, a.frags) for a in report.truth]
        _write(tmp / "truth" / f"{rid}.ann", _ann_text(report.text, truth, cfg.label))
        chosen = sorted(rng.sample(range(len(cfg.coders)), cfg.coders_per_report))
        coded = []
        for ci in chosen:
            coder = cfg.coders[ci]
            anns = code_report(rng, report, coder, cfg)
            coded.append(anns)
            _write(tmp / "coders" / coder.name / f"{rid}.ann", _ann_text(report.text, anns, cfg.label))
            stats["ann"][coder.name] += len(anns)
            stats["reports"][coder.name] += 1
        disputed = any(disagree(coded[i], coded[j]) for i in range(len(coded)) for j in range(i + 1, len(coded)))
        # the backlog draw happens only when asked for, so that default rounds keep their bytes
        if disputed and not (cfg.senior_backlog_rate and rng.random() < cfg.senior_backlog_rate):
            _write(tmp / "senior" / f"{rid}.ann", _ann_text(report.text, adjudicate(rng, report, cfg), cfg.label))
            stats["senior"] += 1
        stats["meta"].append(report.meta)
        codes = {a.code for a in report.truth}
        for code in codes:
            stats["codes"][code] = stats["codes"].get(code, 0) + 1
        stats["per_n"][len(codes)] = stats["per_n"].get(len(codes), 0) + 1
        stats["truth"] += len(report.truth)
        focus = {}
        for ann in report.truth:
            focus.setdefault(ann.sent, set()).add(ann.code)
        stats["focus"] += len(focus)
        stats["pair"] += sum(1 for c in focus.values() if len(c) >= 2)
        stats["disc"] += sum(1 for a in report.truth if len(a.frags) > 1)
        stats["rfv"] += sum(1 for a in report.truth if a.rfv_dep)
        stats["smin"] = min(stats["smin"], report.n_sentences)
        stats["smax"] = max(stats["smax"], report.n_sentences)
    return stats


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="report", desc="synth")


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _round_toml(cfg: SynthConfig, seed: int, n_reports: int, day: date) -> str:
    labels = ", ".join(_toml_str(x) for x in [cfg.label])
    return (
        f"# synthetic round written by hiericd_core.synth (seed {seed}, {n_reports} reports)\n"
        "[round]\n"
        f"id = {_toml_str(f'synth-{seed}-{n_reports}')}\n"
        f"date = {_toml_str(day.isoformat())}\n"
        f"language = {_toml_str(cfg.language)}\n"
        f"code_system = {_toml_str(cfg.code_system)}\n"
        "\n[codes]\n"
        'source = "note"\n'
        f"labels = [{labels}]\n"
    )


META_COLUMNS = ("report_id", "reason_for_visit", "specimen", "procedure_date", "patient_age", "patient_sex",
                "department")


def generate_round(out: Path, n_reports: int, seed: int, config: SynthConfig | None = None,
                   progress: bool = False) -> SynthSummary:
    """Write a synthetic coding round of ``n_reports`` reports into ``out``.

    Args:
        out: the round folder to create; it must not exist or be empty. The
            round is written next to it first and moved in place at the end.
        n_reports: number of reports.
        seed: the round's seed; same seed, same config → byte-identical files.
        config: the knobs (:class:`SynthConfig`); its ``n_reports`` and
            ``seed`` are ignored in favour of the arguments.
        progress: show a progress bar.

    Returns:
        A :class:`SynthSummary` of what was written.
    """
    cfg = config or SynthConfig()
    if n_reports < 1:
        raise ValueError("n_reports must be at least 1")
    if not 1 <= cfg.coders_per_report <= len(cfg.coders):
        raise ValueError("coders_per_report must be between 1 and the number of coders")
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for sub in ("texts", "truth", "senior", *(f"coders/{c.name}" for c in cfg.coders)):
            (tmp / sub).mkdir(parents=True)
        pool = build_pool(cfg.n_codes, cfg.zipf_exponent, cfg.zipf_offset, cfg.pool_seed)
        day = _round_day(cfg, seed)
        state = dict(cfg=cfg, pool=pool, tmp=tmp, seed=seed, n_reports=n_reports, day=day)
        chunk = max(1, cfg.chunk_size)
        bounds = [(s, min(n_reports, s + chunk)) for s in range(0, n_reports, chunk)]
        workers = cfg.workers if cfg.workers is not None else min(2, os.cpu_count() or 1)
        bar = None
        results: list[dict] = []
        if workers <= 1 or len(bounds) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            _init_worker(state)
            bar = _bar(progress, n_reports)
            for b in bounds:
                results.append(_run_chunk(b))
                if bar:
                    bar.update(b[1] - b[0])
        else:
            _init_worker(state)  # inherited through fork: no pickling of the pool
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
                chunks = executor.map(_run_chunk, bounds)  # forks the workers
                bar = _bar(progress, n_reports)
                for b, result in zip(bounds, chunks, strict=True):
                    results.append(result)
                    if bar:
                        bar.update(b[1] - b[0])
        _STATE.clear()
        if bar:
            bar.close()
        # metadata and round.toml
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=META_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerows(result["meta"])
        _write(tmp / "metadata.csv", buffer.getvalue())
        _write(tmp / "round.toml", _round_toml(cfg, seed, n_reports, day))
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    names = [c.name for c in cfg.coders]
    codes: dict[str, int] = {}
    per_n: dict[int, int] = {}
    for result in results:
        for code, count in result["codes"].items():
            codes[code] = codes.get(code, 0) + count
        for k, count in result["per_n"].items():
            per_n[k] = per_n.get(k, 0) + count
    return SynthSummary(
        out=str(out),
        reports=n_reports,
        coders=names,
        annotations_per_coder={n: sum(r["ann"][n] for r in results) for n in names},
        reports_per_coder={n: sum(r["reports"][n] for r in results) for n in names},
        distinct_codes=len(codes),
        reports_per_n_codes=dict(sorted(per_n.items())),
        senior_reports=sum(r["senior"] for r in results),
        truth_annotations=sum(r["truth"] for r in results),
        focus_sentences=sum(r["focus"] for r in results),
        two_code_focus_sentences=sum(r["pair"] for r in results),
        discontinuous_annotations=sum(r["disc"] for r in results),
        rfv_dependent_annotations=sum(r["rfv"] for r in results),
        sentences_min=min(r["smin"] for r in results),
        sentences_max=max(r["smax"] for r in results),
        seconds=round(time.perf_counter() - started, 3),
    )


# ==========================================================================
# Agreement
# ==========================================================================


def coder_kappas(round_dir: Path) -> dict[str, dict[str, float]]:
    """Pairwise Cohen's kappa of the coders of a round on report × code presence.

    For each pair of coders, over the reports both coded: a binary matrix
    reports × codes of the round (every code any coder used), flattened
    (``flat``), and the mean of the per-code kappas over codes either coder
    used on those reports (``per_code``).
    """
    import numpy as np

    round_dir = Path(round_dir)
    coders = sorted(p.name for p in (round_dir / "coders").iterdir() if p.is_dir())
    sets = {c: {p.stem: set(read_ann_codes(p)) for p in sorted((round_dir / "coders" / c).glob("*.ann"))}
            for c in coders}
    vocab = sorted({code for c in coders for s in sets[c].values() for code in s})
    index = {code: i for i, code in enumerate(vocab)}
    out: dict[str, dict[str, float]] = {}
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            shared = sorted(set(sets[a]) & set(sets[b]))
            if not shared:
                continue
            ma = np.zeros((len(shared), len(vocab)), dtype=bool)
            mb = np.zeros_like(ma)
            for r, rid in enumerate(shared):
                ma[r, [index[c] for c in sets[a][rid]]] = True
                mb[r, [index[c] for c in sets[b][rid]]] = True
            out[f"{a}-{b}"] = {"reports": float(len(shared)), "flat": _kappa(ma.ravel(), mb.ravel()),
                               "per_code": _per_code_kappa(ma, mb)}
    return out


def _kappa(x, y) -> float:
    import numpy as np

    n = x.size
    both = float(np.count_nonzero(x & y))
    px, py = np.count_nonzero(x) / n, np.count_nonzero(y) / n
    po = (both + (n - np.count_nonzero(x | y))) / n
    pe = px * py + (1 - px) * (1 - py)
    return float((po - pe) / (1 - pe)) if pe < 1 else 1.0


def _per_code_kappa(ma, mb) -> float:
    import numpy as np

    n = ma.shape[0]
    both = (ma & mb).sum(0).astype(float)
    sa, sb = ma.sum(0).astype(float), mb.sum(0).astype(float)
    used = (sa + sb) > 0
    po = (both + n - (sa + sb - both)) / n
    pe = (sa / n) * (sb / n) + (1 - sa / n) * (1 - sb / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(pe < 1, (po - pe) / (1 - pe), 1.0)
    return float(k[used].mean()) if used.any() else float("nan")
