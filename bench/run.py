"""hiericd benchmarks: ``make bench`` (``python bench/run.py --reports 39000``).

Each step runs in a fresh Python process so that its peak RSS is its own
(self and the largest child process, from ``getrusage``). Results go to
``bench/results.json`` (machine-readable) and ``bench/results.md`` (a table
for the README). Targets come from the issues; a step over its target is
marked, not failed: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# step name -> (what it measures, target seconds, target peak RSS in GiB)
TARGETS = {
    "synth": ("generate a synthetic round", 60.0, 2.0),
    "brat_stats": ("brat-stats over the round (3 coder folders + senior + truth)", 20.0, 2.0),
    "load_round": ("load + validate the round (BRAT, codes, metadata)", None, 2.0),
    "round_report": ("load + merge + every agreement figure + data-quality report", 60.0, 4.0),
    "span_pairs": ("lay out each coder pair as a bratiaa project (hard links)", None, None),
    "span_f1_hiericd": ("span F1 (instance + token) for every coder pair, read from BRAT", None, None),
    "span_f1_bratiaa": ("the same with bratiaa 0.1.4 (own venv: bench/.venv-bratiaa)", None, None),
    "span_f1_compute": ("span F1 (instance + token), every pair, from documents already read", None, None),
    "segment": ("segmentation throughput per backend, 2,000 reports, one process", None, None),
    "datasets": ("merged round → both Parquet files + GX validation (2 cores)", 240.0, 4.0),
    "train": ("train tagger + classifier on the data set (default TrainConfig, 2 cores)", 1200.0, 4.0),
    "infer": ("predict with evidence: 5,000 raw reports (load, segment, tag, classify)", None, 4.0),
    # scale: --scale-reports (200,000) in rounds of 40,000, memory held under SCALE_CAP_GIB at every step
    "scale_rounds": ("scale: generate + merge the rounds, 40,000 reports each, one at a time", None, 4.0),
    "scale_datasets": ("scale: one data set over all the rounds, built in batches (2 cores)", None, 4.0),
    "scale_validate": ("scale: GX validation of that data set, sentences in chunks", None, 4.0),
    "scale_prepare": ("scale: vocabulary + word2vec (1 epoch) streamed from Parquet", None, 4.0),
    "scale_tagger": ("scale: sentence tagger, 2 epochs", None, 4.0),
    "scale_classifier": ("scale: ICD classifier, 1 epoch", None, 4.0),
}


def step_synth(scratch: Path, reports: int) -> dict:
    from hiericd_core.synth import generate_round

    out = scratch / "round"
    if out.exists():
        shutil.rmtree(out)
    summary = generate_round(out, reports, seed=0)
    shutil.rmtree(scratch / "pairs", ignore_errors=True)
    return {"reports": summary.to_dict().get("reports", reports)}


def step_brat_stats(scratch: Path, reports: int) -> dict:
    from hiericd_core.bratstats import brat_stats

    stats = brat_stats(scratch / "round")
    data = stats.to_dict()
    return {"documents": data["documents"], "entities": data["entities"], "problems": len(data["problems"])}


def step_load_round(scratch: Path, reports: int) -> dict:
    from hiericd_core.rounds import load_round

    loaded = load_round(scratch / "round")
    return {"reports": len(loaded.reports), "quarantined": len(loaded.quarantined)}


def step_round_report(scratch: Path, reports: int) -> dict:
    from hiericd_core.agreement import AgreementConfig, agreement
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.report import build_report
    from hiericd_core.rounds import load_round

    loaded = load_round(scratch / "round")
    result = merge_round(loaded)
    summary = write_merge(result, loaded, scratch / "merged")
    figures = agreement(loaded, AgreementConfig(bootstrap=1000))
    build_report(loaded, result, summary, figures, scratch / "report" / loaded.id)
    pairs = figures["units"]["report_code"]["pairs"]
    return {"kappa": {f"{p['a']}-{p['b']}": p["kappa"] for p in pairs}, "pending": len(result.pending)}


def _pair_projects(scratch: Path) -> list[Path]:
    """One bratiaa project per coder pair: the reports both coded, .txt + .ann in a folder per coder."""
    root = scratch / "pairs"
    if root.exists():
        return sorted(p for p in root.iterdir() if p.is_dir())
    rnd = scratch / "round"
    coders = sorted(p.name for p in (rnd / "coders").iterdir())
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            shared = sorted({p.stem for p in (rnd / "coders" / a).glob("*.ann")}
                            & {p.stem for p in (rnd / "coders" / b).glob("*.ann")})
            project = root / f"{a}-{b}"
            for coder in (a, b):
                folder = project / coder
                folder.mkdir(parents=True)
                for stem in shared:
                    os.link(rnd / "texts" / f"{stem}.txt", folder / f"{stem}.txt")
                    os.link(rnd / "coders" / coder / f"{stem}.ann", folder / f"{stem}.ann")
            (project / "annotation.conf").write_text("[entities]\nDiagnosis\n[relations]\n[events]\n[attributes]\n")
    return sorted(p for p in root.iterdir() if p.is_dir())


def step_span_pairs(scratch: Path, reports: int) -> dict:
    """Not timed for a target: lay out the coder pairs as bratiaa projects (hard links) for both tools.

    Every file is then read once, so that both tools find them in the page
    cache (else the one that runs first pays for the disk).
    """
    projects = _pair_projects(scratch)
    size = sum(len(f.read_bytes()) for p in projects for f in p.rglob("*") if f.is_file())
    return {"projects": [p.name for p in projects], "bytes": size}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def step_span_f1_hiericd(scratch: Path, reports: int) -> dict:
    cpu = _cpu_seconds()
    from hiericd_core.spanagree import span_agreement, whitespace_tokens
    from hiericd_core.spanread import read_project_table

    out, problems = {}, 0
    for project in _pair_projects(scratch):
        table, found = read_project_table(project)
        problems += len(found)
        for mode in ("instance", "token"):
            result = span_agreement(table, mode, tokenizer=whitespace_tokens)
            out[f"{project.name}/{mode}"] = round(float(result.mean_sd_total()[0]), 6)
    return {"f1": out, "problems": problems, "cpu_seconds": _cpu_seconds() - cpu, "load_average": os.getloadavg()}


def step_span_f1_compute(scratch: Path, reports: int) -> dict:
    from hiericd_core.spanagree import span_agreement, whitespace_tokens
    from hiericd_core.spanread import read_project_table

    tables = {p.name: read_project_table(p)[0] for p in _pair_projects(scratch)}
    started = time.perf_counter()
    out = {f"{name}/{mode}": round(float(span_agreement(t, mode, tokenizer=whitespace_tokens).mean_sd_total()[0]), 6)
           for name, t in tables.items() for mode in ("instance", "token")}
    return {"f1": out, "compute_seconds": time.perf_counter() - started}


BRATIAA_SCRIPT = """
import json, sys
from bratiaa.agree import compute_f1_agreement
from bratiaa.utils import tokenize
out = {}
for root in sys.argv[1:]:
    for mode, tok in (("instance", None), ("token", tokenize)):
        f1 = compute_f1_agreement(root, token_func=tok).mean_sd_total()[0]
        out[root.rsplit("/", 1)[-1] + "/" + mode] = round(float(f1), 6)
print(json.dumps(out))
"""


def step_span_f1_bratiaa(scratch: Path, reports: int) -> dict:
    venv = HERE / ".venv-bratiaa"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "bratiaa==0.1.4"], check=True)
    projects = _pair_projects(scratch)
    started, cpu = time.perf_counter(), _cpu_seconds()
    proc = subprocess.run([str(python), "-c", BRATIAA_SCRIPT, *map(str, projects)], capture_output=True, text=True,
                          check=True)
    return {"f1": json.loads(proc.stdout.strip().splitlines()[-1]), "bratiaa_seconds": time.perf_counter() - started,
            "cpu_seconds": _cpu_seconds() - cpu, "load_average": os.getloadavg()}


def step_segment(scratch: Path, reports: int) -> dict:
    from hiericd_core.segment import Segmenter, SegmenterConfig, installed_scispacy_model

    texts = [p.read_text(encoding="utf-8") for p in sorted((scratch / "round" / "texts").glob("*.txt"))[:2000]]
    backends = ["rule", "pysbd"] + (["scispacy"] if installed_scispacy_model() else [])
    rates = {}
    for backend in backends:
        seg = Segmenter(SegmenterConfig(backend=backend))
        seg.segment("Warm up. Load the pipeline.")
        started = time.perf_counter()
        for text in texts:
            seg.segment(text)
        rates[backend] = round(len(texts) / (time.perf_counter() - started), 1)
    return {"reports_per_second": rates}


def step_datasets(scratch: Path, reports: int) -> dict:
    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset

    if not (scratch / "merged" / "reports.parquet").exists():
        step_round_report(scratch, reports)
    dataset = build_dataset([scratch / "merged"], DatasetConfig())
    folder = write_dataset(dataset, scratch / "dataset")
    info = {"version": dataset.manifest["version"], "label_space": dataset.manifest["label_space_size"],
            "sentences": sum(s["sentences"] for s in dataset.manifest["splits"].values())}
    try:
        from hiericd_core.validation import validate_dataset
    except ImportError:
        info["validation"] = "not available"
        return info
    report = validate_dataset(folder, scratch / "dataset" / "data_docs")
    info["validation"] = "passed" if report.success else "failed"
    return info


def step_train(scratch: Path, reports: int) -> dict:
    """Both levels at full scale on the ``datasets`` step's data set, the default settings."""
    from hiericd_core.train import TrainConfig, train_model

    if not (scratch / "dataset" / "manifest.json").exists():
        step_datasets(scratch, reports)
    metrics = train_model(scratch / "dataset", scratch / "model", TrainConfig())
    return {"seconds_by_stage": metrics["seconds"], "variant": metrics["variant"],
            "label_space": metrics["label_space_size"],
            "tagger": {"best_epoch": metrics["tagger"]["best_epoch"], "stopped": metrics["tagger"]["stopped"],
                       "dev_macro_f1": metrics["tagger"]["best_dev"]["macro_f1"]},
            "classifier": {"best_epoch": metrics["classifier"]["best_epoch"],
                           "stopped": metrics["classifier"]["stopped"],
                           "dev_macro_f1": metrics["classifier"]["best_dev"]["macro_f1"]}}


INFER_REPORTS = 5000
INFER_TARGET = 500.0  # reports per second


def step_infer(scratch: Path, reports: int) -> dict:
    """The ``train`` step's model on the round's first 5,000 texts, evidence included, written as ``hiericd
    predict`` writes it; throughput counts everything after the model is loaded."""
    import csv

    from hiericd_core.infer import Predictor

    model = scratch / "model"
    if not (model / "classifier.pt").exists():
        step_train(scratch, reports)
    texts = sorted((scratch / "round" / "texts").glob("*.txt"))[:INFER_REPORTS]
    folder = scratch / "infer-input"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    reasons = {}
    metadata = scratch / "round" / "metadata.csv"
    if metadata.exists():
        with metadata.open(encoding="utf-8", newline="") as handle:
            reasons = {row["report_id"]: row.get("reason_for_visit", "") for row in csv.DictReader(handle)}
    for path in texts:
        os.link(path, folder / path.name)
    with (folder / "metadata.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["report_id", "reason_for_visit"])
        writer.writerows([p.stem, reasons.get(p.stem, "")] for p in texts)
    from hiericd_core.parallel import usable_cpus

    cpus = usable_cpus()
    # one process with one thread first (the reference output: torch's thread count changes the last float
    # digits), then a one-thread worker per CPU, as `hiericd predict` runs on large folders
    single = Predictor.load(model, threads=1)
    single.segmenter().segment("Warm up. Load the pipeline.")
    started = time.perf_counter()
    single.predict_folder(folder, scratch / "predictions-1.tsv", scratch / "evidence-1.jsonl")
    single_seconds = time.perf_counter() - started
    loaded = time.perf_counter()
    with Predictor.load(model, threads=cpus, workers=cpus) as predictor:
        load_seconds = time.perf_counter() - loaded
        started = time.perf_counter()
        summary = predictor.predict_folder(folder, scratch / "predictions.tsv", scratch / "evidence.jsonl")
        seconds = time.perf_counter() - started
        workers = predictor.workers
    # peak RSS counts the largest process; all of them together take at most this
    together = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                + cpus * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024**2
    same = all((scratch / f"{name}-1.{ext}").read_bytes() == (scratch / f"{name}.{ext}").read_bytes()
               for name, ext in (("predictions", "tsv"), ("evidence", "jsonl")))
    return {"reports": summary["coded"], "codes": summary["codes"], "problems": len(summary["problems"]),
            "workers": workers, "load_seconds": load_seconds, "predict_seconds": seconds,
            "reports_per_second": summary["coded"] / seconds, "target_reports_per_second": INFER_TARGET,
            "one_process_reports_per_second": summary["coded"] / single_seconds, "same_output": same,
            "all_processes_rss_bound_gib": together}


# ---------------------------------------------------------------- scale: larger than the 39,000-report bench

SCALE_ROUND = 40_000  # reports per round: data arrives round by round
SCALE_CAP_GIB = 4.0  # the peak RSS every scale step must stay under
IN_MEMORY_39K_GIB = 3.27  # the datasets step at 39,000 reports before building in batches (whole tables in memory)


def _scale_root(scratch: Path) -> Path:
    return scratch / "scale"


def _scale_reports() -> int:
    return int(os.environ.get("HIERICD_BENCH_SCALE_REPORTS", "200000"))


def _scale_merged(scratch: Path) -> list[Path]:
    return sorted((_scale_root(scratch) / "merged").iterdir(), key=lambda p: int(p.name.removeprefix("round")))


def _scale_train_config():
    from hiericd_core.train import TrainConfig

    return TrainConfig(tagger_epochs=2, classifier_epochs=1, w2v_epochs=1)


def step_scale_rounds(scratch: Path, reports: int) -> dict:
    """Rounds of 40,000 reports, each with its own seed and date, merged; the raw round is deleted once merged.

    The generator numbers reports from R000001 in every round; the merged
    tables get a round prefix on the report ids so the rounds hold different
    reports (else later rounds would re-code the first round's).
    """
    import gc

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import generate_round

    total = _scale_reports()
    root = _scale_root(scratch)
    shutil.rmtree(root, ignore_errors=True)
    sizes = [SCALE_ROUND] * (total // SCALE_ROUND) + ([total % SCALE_ROUND] if total % SCALE_ROUND else [])
    for k, size in enumerate(sizes, 1):
        raw, merged = root / "rounds" / f"round{k}", root / "merged" / f"round{k}"
        generate_round(raw, size, seed=100 + k)
        loaded = load_round(raw)
        write_merge(merge_round(loaded), loaded, merged)
        for name in ("reports.parquet", "annotations.parquet"):
            table = pq.read_table(merged / name)
            ids = pa.array([f"S{k}-{rid}" for rid in table.column("report_id").to_pylist()], pa.string())
            pq.write_table(table.set_column(table.schema.get_field_index("report_id"), "report_id", ids),
                           merged / name)
        shutil.rmtree(raw)
        del loaded, table
        gc.collect()
    return {"scale_reports": total, "rounds": len(sizes)}


def step_scale_datasets(scratch: Path, reports: int) -> dict:
    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset

    root = _scale_root(scratch)
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(_scale_merged(scratch), DatasetConfig(), scratch_dir=root / "tmp")
    write_dataset(dataset, root / "dataset")
    splits = dataset.manifest["splits"]
    return {"scale_reports": _scale_reports(), "dataset_reports": sum(s["reports"] for s in splits.values()),
            "sentences": sum(s["sentences"] for s in splits.values()),
            "label_space": dataset.manifest["label_space_size"], "version": dataset.manifest["version"],
            "bytes": sum(f.stat().st_size for f in (root / "dataset").iterdir())}


def step_scale_validate(scratch: Path, reports: int) -> dict:
    from hiericd_core.validation import validate_dataset

    report = validate_dataset(_scale_root(scratch) / "dataset")
    return {"scale_reports": _scale_reports(), "validation": "passed" if report.success else "failed",
            "expectations": len(report.results)}


def step_scale_prepare(scratch: Path, reports: int) -> dict:
    from hiericd_core.train import prepare_stage

    root = _scale_root(scratch)
    prepared = prepare_stage(root / "dataset", root / "model", _scale_train_config())
    return {"scale_reports": _scale_reports(), "vocab_size": prepared["vocab_size"], "train": prepared["train"]}


def step_scale_tagger(scratch: Path, reports: int) -> dict:
    from hiericd_core.train import tagger_stage

    result = tagger_stage(_scale_root(scratch) / "model")["result"]
    return {"scale_reports": _scale_reports(), "dev_macro_f1": result["best_dev"]["macro_f1"]}


def step_scale_classifier(scratch: Path, reports: int) -> dict:
    from hiericd_core.train import classifier_stage, finish_stage

    model = _scale_root(scratch) / "model"
    result = classifier_stage(model)["result"]
    finish_stage(model)
    return {"scale_reports": _scale_reports(), "dev_macro_f1": result["best_dev"]["macro_f1"]}


def _scale_lines(results: list[dict], lines: list[str]) -> None:
    """The scale steps' peak RSS against the cap, beside the in-memory builder's 39,000-report figure."""
    scale = [r for r in results if r["step"].startswith("scale_") and "error" not in r]
    if not scale:
        return
    n = max(r["reports"] for r in scale)
    peak = max(r["peak_rss_gib"] for r in scale)
    steps = ", ".join(f"{r['step'].removeprefix('scale_')} {r['peak_rss_gib']:.2f}" for r in scale)
    lines += ["", f"scale, {n:,} reports in rounds of {SCALE_ROUND:,}: peak RSS per step (GiB) {steps}; "
                  f"highest {peak:.2f} GiB against a cap of {SCALE_CAP_GIB:.0f} GiB"
                  f"{'' if peak <= SCALE_CAP_GIB else '  (over the cap)'}; the data set built whole in memory "
                  f"took {IN_MEMORY_39K_GIB} GiB at 39,000 reports"]


STEPS = {name: globals()[f"step_{name}"] for name in TARGETS}


def _peak_rss_gib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, child) / 1024**2  # ru_maxrss is in KiB on Linux


def run_child(name: str, scratch: Path, reports: int) -> None:
    started = time.perf_counter()
    info = STEPS[name](scratch, reports)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_gib": _peak_rss_gib(), "info": info}))


def _speed_ratio(results: list[dict], lines: list[str]) -> None:
    """hiericd vs bratiaa on the same job: equal numbers, and how many times faster."""
    by = {r["step"]: r for r in results if "error" not in r}
    if "span_f1_hiericd" in by and "span_f1_bratiaa" in by:
        ours, theirs = by["span_f1_hiericd"], by["span_f1_bratiaa"]
        equal = ours["info"]["f1"] == theirs["info"]["f1"]
        ratio = theirs["info"]["bratiaa_seconds"] / ours["seconds"]
        lines.append("")
        lines.append(f"span F1 from the BRAT files, hiericd vs bratiaa {theirs['info']['bratiaa_seconds']:.1f} s: "
                     f"{ratio:.1f}× faster (target ≥ 10×), numbers {'equal' if equal else 'DIFFERENT'}: "
                     f"{ours['info']['f1']}")
        entry = {"step": "span_f1_ratio", "speedup_from_files": ratio, "equal_numbers": equal, "target": 10.0}
        if "cpu_seconds" in ours["info"] and "cpu_seconds" in theirs["info"]:  # what machine load does not change
            entry["cpu_ratio"] = theirs["info"]["cpu_seconds"] / ours["info"]["cpu_seconds"]
            lines.append(f"CPU time (user + system, all processes): bratiaa {theirs['info']['cpu_seconds']:.1f} s, "
                         f"hiericd {ours['info']['cpu_seconds']:.1f} s: {entry['cpu_ratio']:.1f}× less; "
                         f"load average during the runs (1 min) {theirs['info']['load_average'][0]:.1f} "
                         f"and {ours['info']['load_average'][0]:.1f} on {os.cpu_count()} CPUs")
        if "span_f1_compute" in by:
            compute = by["span_f1_compute"]["info"]
            entry["speedup_compute"] = theirs["info"]["bratiaa_seconds"] / compute["compute_seconds"]
            entry["equal_numbers_compute"] = compute["f1"] == theirs["info"]["f1"]
            lines.append(f"span F1 computation alone (documents read): {compute['compute_seconds']:.2f} s, "
                         f"{entry['speedup_compute']:.0f}× bratiaa's time")
        results.append(entry)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=39000)
    parser.add_argument("--steps", default=",".join(TARGETS), help="comma-separated subset of: " + ", ".join(TARGETS))
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale-reports", type=int, default=200_000,
                        help="reports in the scale_* steps (rounds of 40,000)")
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.scratch, args.reports)
        return 0
    os.environ["HIERICD_BENCH_SCALE_REPORTS"] = str(args.scale_reports)  # the step processes inherit it

    args.scratch.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.steps.split(","):
        what, target_s, target_gib = TARGETS[name]
        n = args.scale_reports if name.startswith("scale_") else args.reports
        print(f"→ {name}: {what} ({n} reports) …", flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--reports", str(args.reports), "--scratch", str(args.scratch)],
            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            results.append({"step": name, "what": what, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        ok_time = target_s is None or measured["seconds"] <= target_s
        ok_mem = target_gib is None or measured["peak_rss_gib"] <= target_gib
        results.append({"step": name, "what": what, "reports": measured["info"].get("scale_reports", args.reports),
                        **measured,
                        "target_seconds": target_s, "target_peak_rss_gib": target_gib,
                        "meets_targets": ok_time and ok_mem})
        print(f"  {measured['seconds']:.1f} s, peak RSS {measured['peak_rss_gib']:.2f} GiB"
              f"{'' if ok_time and ok_mem else '  (over target)'}", flush=True)

    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    ran = {r["step"] for r in results}
    earlier = []
    if (HERE / "results.json").exists():  # keep the figures of steps not run this time
        earlier = [r for r in json.loads((HERE / "results.json").read_text())["results"]
                   if r["step"] not in ran and r["step"] in TARGETS]
    order = list(TARGETS)
    results = sorted(earlier + [r for r in results if r["step"] in TARGETS], key=lambda r: order.index(r["step"]))
    lines = ["| step | what | reports | seconds | target s | peak RSS GiB | target GiB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['step']} | {r['what']} | – | error | | | |")
            continue
        lines.append(f"| {r['step']} | {r['what']} | {r['reports']} | {r['seconds']:.1f} "
                     f"| {r['target_seconds'] or '–'} | {r['peak_rss_gib']:.2f} | {r['target_peak_rss_gib'] or '–'} |")
    by = {r["step"]: r for r in results if "error" not in r}
    if "segment" in by:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in by["segment"]["info"]["reports_per_second"].items())
        lines += ["", f"segmentation throughput (reports/s, one core): {rates}"]
    if "infer" in by:
        rate = by["infer"]["info"]["reports_per_second"]
        info = by["infer"]["info"]
        lines += ["", f"inference with evidence: {rate:.0f} reports/s on {info['reports']} reports with "
                      f"{info.get('workers', 1)} worker process(es) (target ≥ {INFER_TARGET:.0f})"
                      f"{'' if rate >= INFER_TARGET else '  (under target)'}"
                  + (f"; one process (one thread) {info['one_process_reports_per_second']:.0f} reports/s, "
                     f"the same files: {info['same_output']}; all processes together at most "
                     f"{info['all_processes_rss_bound_gib']:.2f} GiB" if "same_output" in info else "")]
    _speed_ratio(results, lines)
    _scale_lines(results, lines)
    payload = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "results": results}
    (HERE / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {HERE / 'results.json'}, {HERE / 'results.md'}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
