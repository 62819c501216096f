"""Whole-folder writes: scratch folders beside the destination, swapped in by renames, dead ones cleaned."""

import os
from pathlib import Path

import pytest

from hiericd_core.files import SCRATCH_PREFIX, clean_scratch, replace_dir, staging_dir


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def build(parent: Path, files: dict[str, str], target: Path) -> None:
    with staging_dir(parent, target.name) as scratch:
        for name, text in files.items():
            (scratch / "out" / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / "out" / name).write_text(text)
        replace_dir(scratch / "out", target)


def test_replace_dir_swaps_the_whole_folder_and_leaves_no_scratch(tmp_path):
    target = tmp_path / "merged" / "r1"
    build(target.parent, {"a.txt": "old", "only-old/b.txt": "gone"}, target)
    build(target.parent, {"a.txt": "new", "c.txt": "added"}, target)
    assert tree(target) == {"a.txt": b"new", "c.txt": b"added"}  # nothing of the old folder lingers
    assert os.listdir(target.parent) == ["r1"]


def test_a_failed_build_leaves_the_old_folder_and_no_scratch(tmp_path):
    target = tmp_path / "r1"
    build(tmp_path, {"a.txt": "old"}, target)
    with pytest.raises(RuntimeError), staging_dir(tmp_path, "r1") as scratch:
        (scratch / "out").mkdir()
        (scratch / "out" / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert tree(target) == {"a.txt": b"old"} and os.listdir(tmp_path) == ["r1"]


def test_dead_scratch_is_cleaned_and_live_scratch_is_kept(tmp_path):
    dead = tmp_path / f"{SCRATCH_PREFIX}r1-dead"
    (dead / "out").mkdir(parents=True)  # what a killed process leaves: a folder nobody holds a lock on
    with staging_dir(tmp_path, "r2") as live:
        assert not dead.exists()  # staging cleans dead scratch first
        assert clean_scratch(tmp_path) == []  # the live one is locked by its process
        assert live.is_dir()
    assert os.listdir(tmp_path) == []


def test_scratch_is_invisible_to_a_one_level_glob(tmp_path):
    with staging_dir(tmp_path, "dataset") as scratch:
        (scratch / "dataset").mkdir()
        (scratch / "dataset" / "manifest.json").write_text("{}")
        assert list(tmp_path.glob("*/manifest.json")) == []


def test_replace_dir_moves_a_plain_folder_and_keeps_it_when_nothing_replaces(tmp_path):
    source = tmp_path / "incoming" / "export"
    source.mkdir(parents=True)
    (source / "round.toml").write_text("x")
    done = tmp_path / "incoming" / ".ingested" / "export"
    done.mkdir(parents=True)
    (done / "stale.txt").write_text("earlier export")
    replace_dir(source, done)
    assert tree(done) == {"round.toml": b"x"} and not source.exists()
    assert os.listdir(done.parent) == ["export"]
