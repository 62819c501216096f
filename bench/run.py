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
}


def step_synth(scratch: Path, reports: int) -> dict:
    from hiericd_core.synth import generate_round

    out = scratch / "round"
    if out.exists():
        shutil.rmtree(out)
    summary = generate_round(out, reports, seed=0)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=39000)
    parser.add_argument("--steps", default=",".join(TARGETS), help="comma-separated subset of: " + ", ".join(TARGETS))
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.scratch, args.reports)
        return 0

    args.scratch.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.steps.split(","):
        what, target_s, target_gib = TARGETS[name]
        print(f"→ {name}: {what} ({args.reports} reports) …", flush=True)
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
        results.append({"step": name, "what": what, "reports": args.reports, **measured,
                        "target_seconds": target_s, "target_peak_rss_gib": target_gib,
                        "meets_targets": ok_time and ok_mem})
        print(f"  {measured['seconds']:.1f} s, peak RSS {measured['peak_rss_gib']:.2f} GiB"
              f"{'' if ok_time and ok_mem else '  (over target)'}", flush=True)

    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    payload = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "results": results}
    (HERE / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["| step | what | reports | seconds | target s | peak RSS GiB | target GiB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['step']} | {r['what']} | – | error | | | |")
            continue
        lines.append(f"| {r['step']} | {r['what']} | {r['reports']} | {r['seconds']:.1f} "
                     f"| {r['target_seconds'] or '–'} | {r['peak_rss_gib']:.2f} | {r['target_peak_rss_gib'] or '–'} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {HERE / 'results.json'}, {HERE / 'results.md'}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
