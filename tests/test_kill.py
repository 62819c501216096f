"""Killed steps: ``hiericd merge`` and ``hiericd datasets`` killed (SIGKILL) at random points.

A killed step leaves the previous output whole or the new one whole, never a
half-built folder under ``merged/`` or ``datasets/`` (scratch folders are
hidden), and a re-run gives the bytes of a run that was never interrupted.
The kill points are drawn at random: some just before the n-th rename of the
run (the renames are where files and folders appear: every atomic write, and
the swap that puts a folder in place), some after a random time. The seed is
in every failure message; set ``HIERICD_KILL_SEED`` to replay it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hiericd_core.synth import generate_round

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# the hiericd command, with os.rename and os.replace counted: the process kills itself just before the
# HIERICD_TEST_KILL_AT-th call, and writes the number of calls to HIERICD_TEST_COUNT_TO when it ends
KILLABLE = """
import atexit, os, signal, sys
kill_at, count_to, calls = int(os.environ.get("HIERICD_TEST_KILL_AT", "0")), os.environ.get("HIERICD_TEST_COUNT_TO"), 0

def counted(real):
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

os.rename, os.replace = counted(os.rename), counted(os.replace)
if count_to:
    atexit.register(lambda: open(count_to, "w").write(str(calls)))
from hiericd_core.cli import app
sys.argv[0] = "hiericd"
app()
"""
SEED = int(os.environ.get("HIERICD_KILL_SEED", time.time_ns() % 1_000_000))
ROUND_ID = "synth-3-40"


def hiericd(home: Path, *args: str, kill_at: int = 0, kill_after: float | None = None,
            count_to: Path | None = None) -> int:
    """Run the hiericd command on the catalog ``home``; return its exit code (-9 when killed)."""
    env = {**os.environ, "HIERICD_HOME": str(home), "HIERICD_TEST_KILL_AT": str(kill_at)}
    if count_to is not None:
        env["HIERICD_TEST_COUNT_TO"] = str(count_to)
    process = subprocess.Popen([sys.executable, "-c", KILLABLE, *args], env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = process.communicate(timeout=kill_after if kill_after is not None else 300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
    finally:
        try:  # worker processes of a process that killed itself
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"hiericd {' '.join(args)} exited {process.returncode}:\n{out.decode()[-3000:]}")
    return process.returncode


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def visible(folder: Path) -> list[str]:
    """What a reader of ``folder`` takes for outputs: scratch folders are hidden (``.tmp-hiericd-*``)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def kill_points(count_file: Path, runtime: float, rng: random.Random) -> list[dict]:
    """Two kills before a random rename (one of the last three: the swap into place is among them) and one after
    a random time within the uninterrupted run's duration (each kill costs two runs of the command)."""
    renames = int(count_file.read_text())
    assert renames > 5
    return [{"kill_at": rng.randint(1, renames - 3)}, {"kill_at": rng.randint(renames - 2, renames)},
            {"kill_after": rng.uniform(0.3, runtime)}]


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    """A round, and the same round with three senior files missing (its merge differs: pending reports)."""
    root = tmp_path_factory.mktemp("kill")
    generate_round(root / "round", 40, seed=3)
    earlier = root / "earlier"
    shutil.copytree(root / "round", earlier)
    for ann in sorted((earlier / "senior").glob("*.ann"))[:3]:
        ann.unlink()
    return root / "round", earlier


def test_a_killed_merge_leaves_the_old_merge_or_the_new_one(rounds, tmp_path):
    rng = random.Random(SEED)
    final, earlier = rounds
    started = time.monotonic()
    assert hiericd(tmp_path / "ref", "merge", str(final), count_to=tmp_path / "renames") == 0
    runtime = time.monotonic() - started
    new = tree(tmp_path / "ref" / "merged" / ROUND_ID)
    assert hiericd(tmp_path / "base", "merge", str(earlier)) == 0
    old = tree(tmp_path / "base" / "merged" / ROUND_ID)
    assert any(name.startswith("adjudication/") for name in old) and old != new
    for i, point in enumerate(kill_points(tmp_path / "renames", runtime, rng)):
        home = tmp_path / f"kill{i}"
        shutil.copytree(tmp_path / "base", home)
        where = f"seed {SEED}, kill {point}"
        assert hiericd(home, "merge", str(final), **point) == -signal.SIGKILL or "kill_after" in point, where
        merged = home / "merged"
        assert visible(merged) == [ROUND_ID], where
        assert tree(merged / ROUND_ID) in (old, new), where  # never brat/ files of one merge, summary of another
        assert hiericd(home, "merge", str(final)) == 0
        assert tree(merged / ROUND_ID) == new, where
        assert os.listdir(merged) == [ROUND_ID], where  # the re-run removed the killed run's scratch


def test_a_killed_data_set_build_leaves_no_half_data_set(rounds, tmp_path):
    rng = random.Random(SEED + 1)
    final, _ = rounds
    assert hiericd(tmp_path / "ref", "merge", str(final)) == 0
    base = tmp_path / "base"
    shutil.copytree(tmp_path / "ref", base)
    args = ("datasets", "--min-count", "2", "--backend", "rule")
    started = time.monotonic()
    merged = tmp_path / "ref" / "merged" / ROUND_ID
    assert hiericd(tmp_path / "ref", *args, str(merged), count_to=tmp_path / "renames") == 0
    runtime = time.monotonic() - started
    (version,) = visible(tmp_path / "ref" / "datasets")
    whole = tree(tmp_path / "ref" / "datasets" / version)
    assert {"manifest.json", "validation.json", "data_docs/index.html", "sentences.parquet"} <= set(whole)
    for i, point in enumerate(kill_points(tmp_path / "renames", runtime, rng)):
        home = tmp_path / f"kill{i}"
        shutil.copytree(base, home)
        where = f"seed {SEED + 1}, kill {point}"
        code = hiericd(home, *args, str(home / "merged" / ROUND_ID), **point)
        assert code == -signal.SIGKILL or "kill_after" in point, where
        datasets = home / "datasets"
        assert visible(datasets) in ([], [version]), where
        if visible(datasets):  # killed after the rename into place: the data set is whole
            assert tree(datasets / version) == whole, where
        assert not (home / "rejected").exists(), where
        assert hiericd(home, *args, str(home / "merged" / ROUND_ID)) == 0
        assert os.listdir(datasets) == [version], where  # the re-run removed the killed run's scratch
        assert tree(datasets / version) == whole, where
