"""Tests for hiericd_core.bratstats: counts over a BRAT folder tree, and its problems.

Expected counts are hand/grep counts of the fixtures, e.g.
``cat tests/fixtures/brat/brat-examples/*/*.ann | grep -c '^E'`` -> 21.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hiericd_core import bratstats
from hiericd_core.bratstats import BratStats, brat_stats

FIXTURES = Path(__file__).parent / "fixtures"
COUNTS = ["documents", "entities", "discontinuous_entities", "notes", "attributes", "normalizations",
          "relations", "events", "equivalences"]


def counts(stats: BratStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in COUNTS}


def test_brat_examples_counts():
    # 7 .txt files (bio: 1, news: 6; 010-navigation.ann is empty); grep -c over */*.ann:
    # ^T 84, ^# 5, ^A 15 (no ^M), ^N 1, ^R 5, ^E 21, ^\* 1; no T line has a ';' in its offsets.
    stats = brat_stats(FIXTURES / "brat" / "brat-examples")
    assert counts(stats) == {"documents": 7, "entities": 84, "discontinuous_entities": 0, "notes": 5,
                             "attributes": 15, "normalizations": 1, "relations": 5, "events": 21,
                             "equivalences": 1}
    assert stats.problems == []


def test_bratiaa_and_codiesp_sample_counts():
    # bratiaa: find -name '*.ann' | wc -l -> 32; cat of them | grep -c '^T' -> 1600, nothing else.
    stats = brat_stats(FIXTURES / "brat" / "bratiaa-example")
    assert counts(stats) == dict.fromkeys(COUNTS, 0) | {"documents": 32, "entities": 1600}
    # CodiEsp sample: 20 train + 4 dev; grep -c '^T' -> 406 + 79, '^#' the same;
    # grep -cP '^T\d+\t\S+ \d+ \d+;' -> 116 + 25 discontinuous.
    stats = brat_stats(FIXTURES / "codiesp-sample")
    assert counts(stats) == dict.fromkeys(COUNTS, 0) | {
        "documents": 24, "entities": 485, "discontinuous_entities": 141, "notes": 485}
    assert stats.problems == []


def test_to_dict_is_json_ready(tmp_path):
    (tmp_path / "a.ann").write_text("T1\tX 0 1\tx\n")
    data = brat_stats(tmp_path).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["problems"] == [{"file": str(tmp_path / "a.ann"), "line": None, "content": "",
                                 "reason": "annotation file without text: a.txt is missing"}]
    assert data["documents"] == 0


TEXT = "Tumor of the left breast.\n"
#       0123456789012345678901234
GOOD = "T1\tDiagnosis 0 5\tTumor\n#1\tAnnotatorNotes T1\tC50.912\n"
# file name -> (.ann content, expected problem line, reason fragment); the defect is always
# the last line, after the two good lines above (so line 3) unless said otherwise.
DEFECTS = {
    "end_before_start": (GOOD + "T2\tSite 9 5\tx\n", 3, "end < start"),
    "past_end": (GOOD + "T2\tSite 13 99\tleft\n", 3, "runs past the end of the text (26 characters)"),
    "negative": (GOOD + "T2\tSite -13 17\tleft\n", 3, "negative offset -13"),
    "not_integer": (GOOD + "T2\tSite 13 1e3\tleft\n", 3, "offset '1e3' is not a non-negative integer"),
    "mismatch": (GOOD + "T2\tSite 13 17\tright\n", 3, "does not match the document text 'left'"),
    "unknown_note_target": (GOOD + "#2\tAnnotatorNotes T9\tx\n", 3, "refers to unknown id 'T9'"),
    "unknown_attribute_target": (GOOD + "A1\tNegated T9\n", 3, "refers to unknown id 'T9'"),
    "unknown_normalization_target": (GOOD + "N1\tReference T9 ICD10:C50\tx\n", 3, "unknown id 'T9'"),
    "unknown_relation_arg": (GOOD + "R1\tSite Arg1:T1 Arg2:T9\t\n", 3, "refers to unknown id 'T9'"),
    "unknown_event_arg": (GOOD + "E1\tDiagnosis:T1 Theme:E7\n", 3, "refers to unknown id 'E7'"),
    "unknown_equivalence_member": (GOOD + "*\tSame T1 T9\n", 3, "refers to unknown id 'T9'"),
    "duplicate_id": (GOOD + "T1\tSite 13 17\tleft\n", 3, "duplicate id T1 (first on line 1)"),
    "missing_tab": (GOOD + "T2 Site 13 17 left\n", 3, "no TAB after the id"),
    "malformed": (GOOD + "A1\tNegated\n", 3, "malformed attribute"),
    "unknown_type": (GOOD + "Q1\tSite T1\n", 3, "unknown line type"),
    "line_break": (GOOD + "#2\tAnnotatorNotes T1\tsee\u2028below\n", 3, "U+2028"),
    "first_line": ("T1\tDiagnosis 0 5\tTumour\n#1\tAnnotatorNotes T1\tC50.912\n", 1, "does not match"),
}


@pytest.fixture()
def defect_tree(tmp_path):
    for name, (ann, _, _) in DEFECTS.items():
        folder = tmp_path / ("coder2" if name.startswith("unknown") else "coder1")
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.txt").write_text(TEXT)
        (folder / f"{name}.ann").write_text(ann)
    (tmp_path / "coder1" / "bad_bytes.txt").write_text(TEXT)
    (tmp_path / "coder1" / "bad_bytes.ann").write_bytes(GOOD.encode() + b"#2\tAnnotatorNotes T1\tC50\xff\n")
    (tmp_path / "coder1" / "bad_text.txt").write_bytes(b"Tumor\nof the \xc3(\n")
    (tmp_path / "coder1" / "bad_text.ann").write_text(GOOD)
    (tmp_path / "coder1" / "orphan.ann").write_text(GOOD)
    (tmp_path / "coder1" / "clean.txt").write_text(TEXT)
    (tmp_path / "coder1" / "clean.ann").write_text(GOOD + "A1\tSide T2 Left\nT2\tSite 13 17\tleft\n")
    return tmp_path


def test_each_injected_defect_is_reported_with_its_file_and_line(defect_tree):
    stats = brat_stats(defect_tree)
    found = {(Path(p.file).relative_to(defect_tree).as_posix(), p.line): p.reason for p in stats.problems}
    # one problem per defect, plus first_line's #1 (its T1 falls), bad_bytes, bad_text, orphan
    assert len(found) == len(stats.problems) == len(DEFECTS) + 4
    assert found[("coder1/first_line.ann", 2)] == "refers to T1, which is quarantined (line 1)"
    for name, (_, line, reason) in DEFECTS.items():
        folder = "coder2" if name.startswith("unknown") else "coder1"
        assert reason in found[(f"{folder}/{name}.ann", line)], name
    assert "not UTF-8: byte 0xff" in found[("coder1/bad_bytes.ann", 3)]
    assert "not UTF-8: byte 0xc3" in found[("coder1/bad_text.txt", 2)]
    assert "orphan.txt is missing" in found[("coder1/orphan.ann", None)]
    # Every defect file still yields its T1 and #1 except "first_line" (16 of 17); bad_bytes.ann
    # keeps T1 and #1; clean.ann adds 2 entities, 1 note, 1 attribute (a forward reference).
    # documents: 17 defect files + bad_bytes + clean (bad_text has no usable text, orphan none).
    assert counts(stats) == dict.fromkeys(COUNTS, 0) | {
        "documents": 19, "entities": 16 + 1 + 2, "notes": 16 + 1 + 1, "attributes": 1}


def test_problems_are_in_walk_order_and_parallel_reading_gives_the_same_result(tmp_path, monkeypatch):
    # Lower the in-process limit and chunk size so 420 documents go to 2 processes in 9 chunks.
    monkeypatch.setattr(bratstats, "_PARALLEL_FROM", 100)
    monkeypatch.setattr(bratstats, "_CHUNK", 50)
    for i in range(420):
        folder = tmp_path / f"c{i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"d{i:04d}.txt").write_text(TEXT)
        (folder / f"d{i:04d}.ann").write_text(GOOD if i % 100 else GOOD + "T2\tSite 9 5\tx\n")
    serial = brat_stats(tmp_path, workers=1)
    parallel = brat_stats(tmp_path, workers=2)
    assert parallel == serial
    assert counts(serial) == dict.fromkeys(COUNTS, 0) | {"documents": 420, "entities": 420, "notes": 420}
    # problems at i = 0, 100, 200, 300, 400 -> folders c0, c1, c2, c0, c1
    assert [(Path(p.file).relative_to(tmp_path).as_posix(), p.line) for p in serial.problems] == [
        ("c0/d0000.ann", 3), ("c0/d0300.ann", 3), ("c1/d0100.ann", 3), ("c1/d0400.ann", 3), ("c2/d0200.ann", 3)]


def test_progress_bar_goes_to_stderr(capsys):
    brat_stats(FIXTURES / "brat" / "brat-examples", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "7/7" in captured.err


def test_not_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        brat_stats(tmp_path / "missing")


def test_round_layout_pairs_every_ann_with_its_text(tmp_path):
    # a round: texts/ + coders/<c>/ + senior/; each .ann is a document whose text is texts/<id>.txt
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "R1.txt").write_text(TEXT)
    (tmp_path / "texts" / "R2.txt").write_text(TEXT)
    for folder, names in (("coders/a", ["R1", "R2"]), ("coders/b", ["R1"]), ("senior", ["R1"])):
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / f"{name}.ann").write_text(GOOD)
    (tmp_path / "coders" / "b" / "R9.ann").write_text(GOOD)  # no texts/R9.txt
    stats = brat_stats(tmp_path)
    # 4 readable documents, 1 T + 1 # each; R9 is a problem naming its file
    assert counts(stats) == dict.fromkeys(COUNTS, 0) | {"documents": 4, "entities": 4, "notes": 4}
    assert [(p.file, p.line) for p in stats.problems] == [(str(tmp_path / "coders" / "b" / "R9.ann"), None)]
