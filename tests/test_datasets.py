"""Data sets: splits, alignment, label space, multiple rounds, determinism."""

import json
import math
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hiericd_core.datasets import (
    DatasetConfig,
    DatasetError,
    align,
    assign_split,
    build_dataset,
    parse_round_splits,
    write_dataset,
)
from hiericd_core.merge import merge_round
from hiericd_core.merge_write import write_merge
from hiericd_core.rounds import load_round
from hiericd_core.segment import Segmenter, SegmenterConfig

FIXTURES = Path(__file__).parent / "fixtures"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_splits_are_stable_and_near_70_15_15():
    ids = [f"R{i:06d}" for i in range(20000)]
    splits = [assign_split(r, seed=13) for r in ids]
    assert splits == [assign_split(r, seed=13) for r in ids]  # same answer every time
    assert [assign_split(r, seed=13) for r in ids[:50]] == splits[:50]  # independent of the other ids
    n = len(ids)
    for name, p in (("train", 0.70), ("dev", 0.15), ("test", 0.15)):
        share = splits.count(name) / n
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n), (name, share)
    assert [assign_split(r, seed=14) for r in ids[:200]] != splits[:200]


TEXT = "Core biopsy of the left breast.\nInvasive ductal carcinoma. Margins are clear.\nNo tumor in nodes."
#       0         1         2         3          4         5         6         7         8         9
#       0123456789012345678901234567890 1234567890123456789012345678901234567890123456789012345678901234
# sentences: [0,31) "Core biopsy of the left breast." [32,58) "Invasive ductal carcinoma."
#            [59,77) "Margins are clear." [78,96) "No tumor in nodes."


def test_align_focus_codes_and_masks_by_hand():
    sentences = Segmenter(SegmenterConfig(backend="pysbd")).segment(TEXT)
    assert [(s.start, s.end) for s in sentences] == [(0, 31), (32, 58), (59, 77), (78, 96)]
    annotations = [
        ("C50.912", ((32, 57), (19, 30))),  # "Invasive ductal carcinoma" + "left breast": crosses two sentences
        ("D24.2", ((81, 86),)),  # "tumor"
        ("C77.3", ((78, 86),)),  # "No tumor": a second code on the last sentence
    ]
    rows, counts = align(TEXT, sentences, annotations)
    assert [r["is_focus"] for r in rows] == [True, True, False, True]
    assert [r["codes"] for r in rows] == [["C50.912"], ["C50.912"], [], ["C77.3", "D24.2"]]
    assert rows[0]["tokens"] == ["Core", "biopsy", "of", "the", "left", "breast", "."]
    assert rows[0]["attention_mask"] == [0, 0, 0, 0, 1, 1, 0]
    assert rows[1]["attention_mask"] == [1, 1, 1, 0]
    assert rows[3]["attention_mask"] == [1, 1, 0, 0, 0]
    assert [r["n_codes"] for r in rows] == [1, 1, 0, 2]
    assert counts == {"crossing_annotations": 1}
    # one mask per code, in codes order: "No tumor" is C77.3's phrase, "tumor" D24.2's
    assert rows[3]["code_masks"] == [[1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert rows[0]["code_masks"] == [[0, 0, 0, 0, 1, 1, 0]] and rows[2]["code_masks"] == []


def test_align_counts_an_annotation_that_covers_no_token():
    sentences = Segmenter(SegmenterConfig(backend="pysbd")).segment(TEXT)
    rows, counts = align(TEXT, sentences, [("C50.912", ((31, 32),))])  # the line break only
    assert not any(r["is_focus"] for r in rows)
    assert counts == {"unaligned_annotations": 1}


def make_round(root: Path, round_id: str, reports: dict[str, tuple[str, str, str | None]],
               senior: dict[str, str] | None = None) -> Path:
    """reports: id -> (text, coder1 .ann, coder2 .ann or None)."""
    write(root / "round.toml", f'[round]\nid = "{round_id}"\n')
    rows = ["report_id,reason_for_visit"]
    for rid, (text, a, b) in reports.items():
        write(root / "texts" / f"{rid}.txt", text)
        write(root / "coders" / "c1" / f"{rid}.ann", a)
        if b is not None:
            write(root / "coders" / "c2" / f"{rid}.ann", b)
        rows.append(f"{rid},Left breast mass")
    write(root / "metadata.csv", "\n".join(rows) + "\n")
    for rid, ann in (senior or {}).items():
        write(root / "senior" / f"{rid}.ann", ann)
    return root


def merged(tmp: Path, root: Path) -> Path:
    loaded = load_round(root)
    out = tmp / "merged" / loaded.id
    write_merge(merge_round(loaded), loaded, out)
    return out


IDC = "T1\tDiagnosis 32 57\tInvasive ductal carcinoma\n#1\tAnnotatorNotes T1\tC50.912\n"
NEVUS = "T1\tDiagnosis 32 57\tInvasive ductal carcinoma\n#1\tAnnotatorNotes T1\tD22.5\n"


def test_build_from_rounds_pending_quarantined_and_later_round_wins(tmp_path):
    first = make_round(tmp_path / "r1", "round-1", {
        "A": (TEXT, IDC, IDC),            # agreed
        "B": (TEXT, IDC, NEVUS),          # conflict, no senior -> pending
        "C": (TEXT, IDC, IDC),
        "D": (TEXT, IDC + "T2\tDiagnosis 0 4\tCore\n#2\tAnnotatorNotes T2\tQ99.999\n", IDC),  # bad code
    })
    second = make_round(tmp_path / "r2", "round-2", {
        "C": (TEXT, NEVUS, NEVUS),        # re-coded: the later version wins
        "E": (TEXT, IDC, None),           # single coder
    })
    dirs = [merged(tmp_path, first), merged(tmp_path, second)]
    ds = build_dataset(dirs, DatasetConfig(min_count=1, workers=1))
    reports = dict(zip(ds.reports["report_id"], ds.reports["codes"], strict=True))
    assert reports == {"A": ["C50.912"], "C": ["D22.5"], "E": ["C50.912"]}
    rounds = dict(zip(ds.reports["report_id"], ds.reports["rounds"], strict=True))
    assert rounds["C"] == ["round-1", "round-2"]
    assert ds.manifest["left_out_reports"] == {"pending adjudication": 1, "quarantined items": 1}
    assert ds.manifest["superseded"] == [{"report_id": "C", "was": "round-1", "now": "round-2"}]
    assert ds.manifest["source_rounds"] == ["round-1", "round-2"]
    # 3 reports x 4 sentences; each report has one focus sentence
    assert len(ds.sentences["report_id"]) == 12
    assert sum(ds.sentences["is_focus"]) == 3


def test_label_space_and_classifier_rows(tmp_path):
    two_codes = IDC + "T2\tDiagnosis 81 86\ttumor\n#2\tAnnotatorNotes T2\tD24.2\n"
    reports = {f"R{i}": (TEXT, IDC, IDC) for i in range(12)}
    reports["M"] = (TEXT, two_codes, two_codes)
    reports["N"] = (TEXT, NEVUS, NEVUS)
    ds = build_dataset([merged(tmp_path, make_round(tmp_path / "r", "r", reports))],
                       DatasetConfig(min_count=3, workers=1))
    train = [rid for rid, s in zip(ds.reports["report_id"], ds.reports["split"], strict=True) if s == "train"]
    expected_counts = {}
    for rid in train:
        for code in {"M": ["C50.912", "D24.2"], "N": ["D22.5"]}.get(rid, ["C50.912"]):
            expected_counts[code] = expected_counts.get(code, 0) + 1
    assert ds.label_space["train_counts"] == expected_counts
    assert ds.label_space["codes"] == sorted(c for c, n in expected_counts.items() if n >= 3)
    for codes, n, row in zip(ds.sentences["codes"], ds.sentences["n_codes"], ds.sentences["classifier_row"],
                             strict=True):
        assert row == (n == 1 and codes[0] in ds.label_space["codes"])
    # the report-level truth keeps codes outside the label space
    truth = dict(zip(ds.reports["report_id"], ds.reports["codes"], strict=True))
    assert truth["N"] == ["D22.5"] and truth["M"] == ["C50.912", "D24.2"]


def test_rebuild_gives_identical_bytes_and_version(tmp_path):
    reports = {f"R{i}": (TEXT, IDC, IDC) for i in range(8)}
    src = merged(tmp_path, make_round(tmp_path / "r", "r", reports))
    a = write_dataset(build_dataset([src], DatasetConfig(min_count=1, workers=1)), datasets_root=tmp_path / "a")
    # two segmenting processes: the same bytes, the manifest included
    b = write_dataset(build_dataset([src], DatasetConfig(min_count=1, workers=2)), datasets_root=tmp_path / "b")
    assert a.name == b.name  # the version
    for name in ("sentences.parquet", "reports.parquet", "label_space.json", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["version"] == a.name
    table = pq.read_table(a / "sentences.parquet")
    assert table.num_rows == 8 * 4
    row = table.slice(1, 1).to_pylist()[0]
    assert row["codes"] == ["C50.912"] and row["attention_mask"] == [1, 1, 1, 0]


def test_codiesp_sample_builds_with_the_spanish_segmenter(tmp_path):
    src = tmp_path / "train"
    shutil.copytree(FIXTURES / "codiesp-sample" / "train", src)
    write(src / "round.toml", '[round]\nid = "cs"\nlanguage = "es"\n[codes]\nlabels = ["Diagnosis"]\n'
          'accept = ["billable", "category", "incomplete"]\n')
    ds = build_dataset([merged(tmp_path, src)], DatasetConfig(min_count=1, workers=1))
    assert ds.manifest["language"] == "es"
    assert ds.manifest["segmenter"] == "pysbd:es+spacy-es"
    assert len(ds.reports["report_id"]) == len(list(src.glob("*.ann")))
    assert all(r == "" for r in ds.reports["reason_for_visit"])
    # every Diagnosis code of a report reaches the report-level truth
    for rid, codes in zip(ds.reports["report_id"], ds.reports["codes"], strict=True):
        lines = (src / f"{rid}.ann").read_text(encoding="utf-8").splitlines()
        ids = {ln.split("\t")[0] for ln in lines if ln.startswith("T") and ln.split("\t")[1].startswith("Diagnosis")}
        notes = {ln.split("\t")[2].strip().upper() for ln in lines
                 if ln.startswith("#") and ln.split("\t")[1].split()[1] in ids}
        assert set(codes) == notes, rid


def test_not_a_merged_round_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="run `hiericd merge`"):
        build_dataset([tmp_path])


def test_split_by_round_puts_each_round_in_its_split(tmp_path):
    first = make_round(tmp_path / "r1", "round-1", {f"A{i}": (TEXT, IDC, IDC) for i in range(6)}
                       | {"C": (TEXT, IDC, IDC)})
    second = make_round(tmp_path / "r2", "round-2", {f"B{i}": (TEXT, NEVUS, NEVUS) for i in range(4)}
                        | {"C": (TEXT, NEVUS, NEVUS)})
    dirs = [merged(tmp_path, first), merged(tmp_path, second)]
    config = DatasetConfig(min_count=1, workers=1, round_splits=(("round-2", "dev"), ("round-1", "train")))
    ds = build_dataset(dirs, config)
    split = dict(zip(ds.reports["report_id"], ds.reports["split"], strict=True))
    # C is re-coded in round-2, so it follows round-2's split
    assert split == {**{f"A{i}": "train" for i in range(6)}, **{f"B{i}": "dev" for i in range(4)}, "C": "dev"}
    for rid, s in zip(ds.sentences["report_id"], ds.sentences["split"], strict=True):
        assert s == split[rid]
    # the label space comes from round-1 only: its 6 reports' one focus sentence each
    assert ds.label_space["train_counts"] == {"C50.912": 6}
    assert ds.manifest["split_mode"] == "round"
    assert ds.manifest["split_assigned_by"] == {"hash": 0, "round": 11}
    assert ds.manifest["config"]["round_splits"] == {"round-1": "train", "round-2": "dev"}
    assert [ds.manifest["splits"][s]["reports"] for s in ("train", "dev", "test")] == [6, 5, 0]

    # only round-2 given: round-1's reports keep their hash split
    mixed = build_dataset(dirs, DatasetConfig(min_count=1, workers=1, round_splits=(("round-2", "test"),)))
    split = dict(zip(mixed.reports["report_id"], mixed.reports["split"], strict=True))
    assert split == {**{f"A{i}": assign_split(f"A{i}", 13) for i in range(6)},
                     **{f"B{i}": "test" for i in range(4)}, "C": "test"}
    assert mixed.manifest["split_mode"] == "mixed"
    assert mixed.manifest["split_assigned_by"] == {"hash": 6, "round": 5}
    hashed = build_dataset(dirs, DatasetConfig(min_count=1, workers=1))
    assert hashed.manifest["split_mode"] == "hash" and hashed.manifest["config"]["round_splits"] == {}

    # a round split rebuilds to the same bytes
    a = write_dataset(build_dataset(dirs, config), datasets_root=tmp_path / "a")
    b = write_dataset(build_dataset(dirs, config), datasets_root=tmp_path / "b")
    for name in ("sentences.parquet", "reports.parquet", "label_space.json", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_split_by_round_mistakes_are_clear(tmp_path):
    src = merged(tmp_path, make_round(tmp_path / "r1", "round-1", {"A": (TEXT, IDC, IDC)}))
    with pytest.raises(DatasetError, match=r"no round 'round-9' among the rounds given \(round-1\)"):
        build_dataset([src], DatasetConfig(workers=1, round_splits=(("round-9", "dev"),)))
    with pytest.raises(DatasetError, match="split 'valid' is not one of train, dev, test"):
        DatasetConfig(round_splits=(("round-1", "valid"),))
    assert parse_round_splits(["b=dev", " a = train "]) == (("a", "train"), ("b", "dev"))
    for bad, message in (("round-1", "write ROUND_ID=SPLIT"), ("round-1=validation", "must be one of"),
                         ("=dev", "write ROUND_ID=SPLIT")):
        with pytest.raises(DatasetError, match=message):
            parse_round_splits([bad])
    with pytest.raises(DatasetError, match="given two splits"):
        parse_round_splits(["a=train", "a=dev"])


def test_cli_split_by_round_on_the_codiesp_sample(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hiericd_core.cli import app

    monkeypatch.setenv("HIERICD_HOME", str(tmp_path / "home"))
    rounds = []
    for name in ("train", "dev"):
        src = tmp_path / name
        shutil.copytree(FIXTURES / "codiesp-sample" / name, src)
        write(src / "round.toml", f'[round]\nid = "cs-{name}"\nlanguage = "es"\n[codes]\nlabels = ["Diagnosis"]\n'
              'accept = ["billable", "category", "incomplete"]\n')
        rounds.append(src)
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["datasets", *map(str, rounds), "--min-count", "1", "--out", str(out),
                                 "--split-by-round", "cs-train=train", "--split-by-round", "cs-dev=dev"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split_mode"] == "round"
    n_train, n_dev = (len(list((tmp_path / n).glob("*.ann"))) for n in ("train", "dev"))
    assert [manifest["splits"][s]["reports"] for s in ("train", "dev", "test")] == [n_train, n_dev, 0]
    assert json.loads((out / "validation.json").read_text())["success"] is True
    bad = runner.invoke(app, ["datasets", str(rounds[0]), "--split-by-round", "cs-train"])
    assert bad.exit_code == 2 and "write ROUND_ID=SPLIT" in bad.output and "Traceback" not in bad.output


def test_batched_build_writes_what_one_whole_table_write_would(tmp_path, monkeypatch):
    """Reports read 3 at a time and row groups of 10 rows: the files hold the same rows as the default build,
    and the same bytes as writing each whole table at once with 10-row groups (as the builder did before it
    built in batches); the version is the hash of those bytes."""
    import hashlib

    import pyarrow as pa

    from hiericd_core import datasets

    two_codes = IDC + "T2\tDiagnosis 41 57\tductal carcinoma\n#2\tAnnotatorNotes T2\tD24.2\n"  # same sentence
    chosen = {i: two_codes if i % 5 == 0 else NEVUS if i % 7 == 0 else IDC for i in range(23)}
    reports = {f"R{i:02d}": (TEXT, ann, ann if i != 22 else NEVUS) for i, ann in chosen.items()}  # R22 pending
    src = merged(tmp_path, make_round(tmp_path / "r", "r", reports))
    config = DatasetConfig(min_count=2, workers=1)
    whole = build_dataset([src], config)
    monkeypatch.setattr(datasets, "READ_CHUNK", 3)
    monkeypatch.setattr(datasets, "ROW_GROUP", 10)
    batched = build_dataset([src], config)
    assert batched.sentences == whole.sentences and batched.reports == whole.reports
    assert batched.label_space == whole.label_space and batched.manifest == whole.manifest
    out = write_dataset(batched, tmp_path / "ds")
    sentence_schema, report_schema = datasets._schemas()
    expected = {}
    for name, columns, schema in (("sentences.parquet", whole.sentences, sentence_schema),
                                  ("reports.parquet", whole.reports, report_schema)):
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pydict(columns, schema=schema), buffer, compression="zstd", row_group_size=10)
        expected[name] = buffer.getvalue().to_pybytes()
        assert (out / name).read_bytes() == expected[name], name
    groups = pq.ParquetFile(out / "sentences.parquet").metadata
    assert groups.num_rows == 22 * 4 and groups.num_row_groups == math.ceil(22 * 4 / 10)
    assert sum(batched.sentences["multi_code"]) == 5 and batched.manifest["left_out_reports"] == {
        "pending adjudication": 1}
    label_space = (out / "label_space.json").read_bytes()
    version = hashlib.sha256(expected["sentences.parquet"] + expected["reports.parquet"] + label_space)
    assert json.loads((out / "manifest.json").read_text())["version"] == version.hexdigest()[:16] == \
        batched.manifest["version"]
