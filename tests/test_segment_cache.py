"""The segment cache: incremental data sets that are the same bytes as full builds."""

import json
import re
import shutil
from pathlib import Path

import pytest
from test_datasets import IDC, NEVUS, TEXT, make_round, merged, write

from hiericd_core import datasets, pipeline
from hiericd_core.catalog import Catalog
from hiericd_core.datasets import DatasetConfig, SegmentCache, build_dataset, write_dataset
from hiericd_core.segment import Segmenter, SegmenterConfig

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = DatasetConfig(min_count=1, workers=1)
ENTRY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{64})\.json")


def text(i: int | str) -> str:
    """A report text of its own (so each report is its own cache entry), with ``TEXT``'s annotated offsets."""
    return f"{TEXT}\nSpecimen {i} received in formalin."


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes()
            for name in ("sentences.parquet", "reports.parquet", "label_space.json", "manifest.json")}


@pytest.fixture
def segment_calls(monkeypatch) -> list[str]:
    """The texts of the reports segmented (workers=1 segments in this process, through ``_segment_one``)."""
    calls: list[str] = []
    real = datasets._segment_one

    def counting(item):
        calls.append(item[0])
        return real(item)

    monkeypatch.setattr(datasets, "_segment_one", counting)
    return calls


def test_cold_warm_and_uncached_builds_are_the_same_bytes(tmp_path):
    src = merged(tmp_path, make_round(tmp_path / "r", "round-1", {f"R{i}": (text(i), IDC, IDC) for i in range(6)}))
    home = Catalog(tmp_path / "home")
    cold = pipeline.datasets([src], home, min_count=1, out=tmp_path / "cold")
    warm = pipeline.datasets([src], home, min_count=1, out=tmp_path / "warm")
    fresh = Catalog(tmp_path / "fresh")
    uncached = pipeline.datasets([src], fresh, min_count=1, out=tmp_path / "uncached", cache=False)
    assert cold["segment_cache"] == {"hits": 0, "misses": 6, "corrupt": 0, "write_errors": 0}
    assert warm["segment_cache"] == {"hits": 6, "misses": 0, "corrupt": 0, "write_errors": 0}
    assert uncached["segment_cache"] == {} and not fresh.segment_cache.exists()
    assert cold["version"] == warm["version"] == uncached["version"]
    a, b, c = (Path(built["path"]) for built in (cold, warm, uncached))
    # every file: Parquet, label space, manifest, the gate's validation.json and Data Docs
    assert files(a) == files(b) == files(c)
    assert {"sentences.parquet", "reports.parquet", "manifest.json", "validation.json"} <= files(a).keys()
    assert len(entries(home.segment_cache)) == 6


def test_a_new_round_segments_only_its_new_and_changed_reports(tmp_path, segment_calls):
    first = make_round(tmp_path / "r1", "round-1", {rid: (text(rid), IDC, IDC) for rid in "ABCDE"})
    second = make_round(tmp_path / "r2", "round-2", {
        "C": (text("C"), NEVUS, NEVUS),       # re-coded, same text: a hit, and round-2's codes win
        "D": (text("D-revised"), IDC, IDC),   # text changed: segmented again
        **{f"N{i}": (text(f"N{i}"), NEVUS, NEVUS) for i in range(3)},  # new
    })
    dirs = [merged(tmp_path, first), merged(tmp_path, second)]
    cache = tmp_path / "cache"
    build_dataset(dirs[:1], CONFIG, segment_cache=cache)
    assert len(segment_calls) == 5
    segment_calls.clear()
    incremental = build_dataset(dirs, CONFIG, segment_cache=cache)
    assert sorted(segment_calls) == sorted([text("D-revised"), *(text(f"N{i}") for i in range(3))])
    assert incremental.segment_cache == {"hits": 4, "misses": 4, "corrupt": 0, "write_errors": 0}
    codes = dict(zip(incremental.reports["report_id"], incremental.reports["codes"], strict=True))
    assert codes["C"] == ["D22.5"] and codes["A"] == ["C50.912"]
    texts = dict(zip(incremental.reports["report_id"], incremental.reports["text"], strict=True))
    assert texts["D"] == text("D-revised")

    segment_calls.clear()
    full = build_dataset(dirs, CONFIG)  # no cache: every report segmented
    assert len(segment_calls) == 8 and full.segment_cache == {}
    a = write_dataset(incremental, datasets_root=tmp_path / "incremental")
    b = write_dataset(full, datasets_root=tmp_path / "full")
    assert a.name == b.name and data_files(a) == data_files(b)


def test_identical_reports_are_segmented_once(tmp_path, segment_calls):
    src = merged(tmp_path, make_round(tmp_path / "r", "r", {f"R{i}": (TEXT, IDC, IDC) for i in range(4)}))
    ds = build_dataset([src], CONFIG, segment_cache=tmp_path / "cache")
    assert segment_calls == [TEXT]
    assert ds.segment_cache["misses"] == 1 and ds.segment_cache["hits"] == 3
    assert len(ds.sentences["report_id"]) == 4 * 4


def test_entries_are_json_named_by_sha256_only(tmp_path):
    src = merged(tmp_path, make_round(tmp_path / "r", "r", {f"R{i}": (text(i), IDC, IDC) for i in range(3)}))
    cache = tmp_path / "cache"
    build_dataset([src], CONFIG, segment_cache=cache)
    found = entries(cache)
    assert len(found) == 3
    for path in found:
        match = ENTRY.fullmatch(path.relative_to(cache).as_posix())
        assert match and match.group(2).startswith(match.group(1)), path
        entry = json.loads(path.read_bytes())  # plain JSON, no pickle
        assert entry["key"] == match.group(2) and entry["r4v"] == ["Left", "breast", "mass"]
        assert not any(part.startswith("R") for part in path.relative_to(cache).parts)  # no report id in a path


@pytest.mark.parametrize("damage", [
    b"",  # an empty file (a crash before atomic writes existed, a full disk)
    b"\x80\x81 not json",
    b'{"key": "',  # truncated
    b"[1, 2, 3]",  # JSON of the wrong shape
    "wrong key",  # another entry's content under this name
    "offsets past the end",
])
def test_an_unusable_entry_is_a_miss_and_is_rewritten(tmp_path, segment_calls, damage):
    src = merged(tmp_path, make_round(tmp_path / "r", "r", {f"R{i}": (text(i), IDC, IDC) for i in range(3)}))
    cache = tmp_path / "cache"
    first = write_dataset(build_dataset([src], CONFIG, segment_cache=cache), datasets_root=tmp_path / "a")
    victim, other = entries(cache)[:2]
    good = victim.read_bytes()
    if damage == "wrong key":
        damage = other.read_bytes()
    elif damage == "offsets past the end":
        entry = json.loads(good)
        entry["sentences"][-1][1] += 10_000
        damage = json.dumps(entry).encode()
    victim.write_bytes(damage)
    segment_calls.clear()
    again = build_dataset([src], CONFIG, segment_cache=cache)
    assert again.segment_cache == {"hits": 2, "misses": 1, "corrupt": 1, "write_errors": 0}
    assert len(segment_calls) == 1
    assert victim.read_bytes() == good  # rewritten
    assert data_files(write_dataset(again, datasets_root=tmp_path / "b")) == data_files(first)


def test_a_cache_that_cannot_be_written_does_not_stop_the_build(tmp_path):
    src = merged(tmp_path, make_round(tmp_path / "r", "r", {f"R{i}": (text(i), IDC, IDC) for i in range(3)}))
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    ds = build_dataset([src], CONFIG, segment_cache=blocked)
    assert ds.segment_cache["write_errors"] == 3 and ds.segment_cache["misses"] == 3
    expected = write_dataset(build_dataset([src], CONFIG), datasets_root=tmp_path / "b")
    assert data_files(write_dataset(ds, datasets_root=tmp_path / "a")) == data_files(expected)


def test_the_key_changes_with_everything_that_changes_the_segments(monkeypatch):
    from hiericd_core import segment

    pysbd = SegmentCache("unused", Segmenter(SegmenterConfig(backend="pysbd")))
    base = pysbd.key("Some text.", "reason")
    assert re.fullmatch(r"[0-9a-f]{64}", base) and pysbd.key("Some text.", "reason") == base
    others = {
        pysbd.key("Some text!", "reason"),
        pysbd.key("Some text.", "reason "),
        pysbd.key("Some text.reason", ""),  # the text/reason boundary is part of the key
        SegmentCache("unused", Segmenter(SegmenterConfig(backend="rule"))).key("Some text.", "reason"),
        SegmentCache("unused", Segmenter(SegmenterConfig(backend="pysbd", language="es"))).key("Some text.",
                                                                                                "reason"),
    }
    monkeypatch.setattr(segment, "SEGMENTER_VERSION", segment.SEGMENTER_VERSION + 1)
    others.add(SegmentCache("unused", Segmenter(SegmenterConfig(backend="pysbd"))).key("Some text.", "reason"))
    assert base not in others and len(others) == 6


def test_cli_no_cache_and_the_cache_counts(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hiericd_core.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("HIERICD_HOME", str(home))
    rounds, args = [], []
    for name in ("train", "dev"):
        src = tmp_path / name
        shutil.copytree(FIXTURES / "codiesp-sample" / name, src)
        write(src / "round.toml", f'[round]\nid = "cs-{name}"\nlanguage = "es"\n[codes]\nlabels = ["Diagnosis"]\n'
              'accept = ["billable", "category", "incomplete"]\n')
        rounds.append(str(src))
        args += ["--split-by-round", f"cs-{name}={name}"]
    n = sum(len(list((tmp_path / name).glob("*.ann"))) for name in ("train", "dev"))
    runner = CliRunner()
    off = runner.invoke(app, ["datasets", *rounds, *args, "--min-count", "1", "--out", str(tmp_path / "a"),
                              "--no-cache"])
    assert off.exit_code == 0, off.output
    assert "off (--no-cache)" in off.output and not Catalog(home).segment_cache.exists()
    for out, counts in (("b", {"hits": 0, "misses": n}), ("c", {"hits": n, "misses": 0})):
        result = runner.invoke(app, ["datasets", *rounds, *args, "--min-count", "1", "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        for key, value in counts.items():
            assert f'"{key}": {value}' in result.output, result.output
    assert data_files(tmp_path / "a") == data_files(tmp_path / "b") == data_files(tmp_path / "c")
