"""Loading rounds: layout, codes, metadata, quarantine with file and line."""

import re
import shutil
from pathlib import Path

import pytest

from hiericd_core.rounds import RoundError, load_round

FIXTURES = Path(__file__).parent / "fixtures"

TEXT = "Left breast core biopsy.\nInvasive ductal carcinoma of left breast.\n"
#       0         1         2          3         4         5         6
#       0123456789012345678901234 5678901234567890123456789012345678901234567
# "Invasive ductal carcinoma" is 25..50, "left breast" is 54..65


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_round(root: Path, toml: str | None = None) -> Path:
    write(root / "round.toml", toml or '[round]\nid = "r-test"\ndate = 2026-11-27\nlanguage = "en"\n'
          '[codes]\nsource = "note"\nlabels = ["Diagnosis"]\n')
    write(root / "texts" / "R1.txt", TEXT)
    write(root / "texts" / "R2.txt", TEXT)
    write(root / "metadata.csv", "report_id,reason_for_visit,specimen\nR1,Left breast mass,core\nR2,Lump,core\n")
    good = "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n#1\tAnnotatorNotes T1\tC50.912\n"
    write(root / "coders" / "ann" / "R1.ann", good)
    write(root / "coders" / "bob" / "R1.ann", "T1\tDiagnosis 25 65\tInvasive ductal carcinoma of left breast\n"
          "#1\tAnnotatorNotes T1\tc50912\n")
    write(root / "coders" / "ann" / "R2.ann", good)
    return root


def test_round_loads_reports_coders_metadata(tmp_path):
    loaded = load_round(make_round(tmp_path / "r"))
    assert loaded.id == "r-test"
    assert loaded.config.date == "2026-11-27"
    assert loaded.layout == "round"
    assert loaded.coders == ["ann", "bob"]
    assert sorted(loaded.reports) == ["R1", "R2"]
    r1 = loaded.reports["R1"]
    assert r1.reason_for_visit == "Left breast mass"
    assert r1.metadata["specimen"] == "core"
    assert [a.code for a in r1.coders["bob"]] == ["C50.912"]  # normalised from c50912
    assert r1.coders["bob"][0].fragments == ((25, 65),)
    assert loaded.reports["R2"].n_coders == 1
    assert loaded.quarantined == []
    assert loaded.has_reason_for_visit
    summary = loaded.summary()
    assert summary["annotations_per_coder"] == {"ann": 2, "bob": 1}
    assert summary["reports_by_coder_count"] == {"1": 1, "2": 1}
    assert summary["distinct_codes"] == 1


def test_bad_items_are_quarantined_with_file_and_line_and_the_rest_kept(tmp_path):
    root = make_round(tmp_path / "r")
    # line 1 good, line 2 unknown code, line 3 good T, line 4 its note: a category (accepted by default),
    # line 5 a span past the end of the text, line 6 a coded T without any note
    write(root / "coders" / "bob" / "R2.ann",
          "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n#1\tAnnotatorNotes T1\tZ99.999\n"
          "T2\tDiagnosis 54 65\tleft breast\n#2\tAnnotatorNotes T2\tC50\n"
          "T3\tDiagnosis 60 999\tnothing\n"
          "T4\tDiagnosis 0 4\tLeft\n")
    write(root / "coders" / "ann" / "R9.ann", "T1\tDiagnosis 0 4\tLeft\n#1\tAnnotatorNotes T1\tC50.912\n")
    write(root / "texts" / "R3.txt", "No coder looked at me.\n")
    write(root / "metadata.csv", "report_id,reason_for_visit\nR1,a\nR2,b\nR7,c\nR1,again\n")
    loaded = load_round(root)
    messages = [q.message() for q in loaded.quarantined]
    bob = str(root / "coders" / "bob" / "R2.ann")
    assert f"{bob}:2: T1: 'Z99.999' is not an ICD-10-CM code" in messages
    assert any(m.startswith(f"{bob}:5: ") for m in messages)
    assert f"{bob}:6: T4 ('Diagnosis') carries no code in its AnnotatorNotes" in messages
    assert any("R9.ann" in m and "texts/R9.txt is missing" in m for m in messages)
    assert any("R3.txt" in m and "without any coder" in m for m in messages)
    meta = str(root / "metadata.csv")
    assert f"{meta}:4: metadata row for 'R7', which has no text in texts/" in messages
    assert f"{meta}:5: second metadata row for 'R1'; the first one is kept" in messages
    assert loaded.quarantine_counts() == {"brat": 1, "code": 2, "layout": 2, "metadata": 2}
    # the good annotation of the damaged file survives
    assert [(a.id, a.code) for a in loaded.reports["R2"].coders["bob"]] == [("T2", "C50")]
    assert loaded.reports["R1"].reason_for_visit == "a"
    assert "R3" not in loaded.reports


def test_accept_setting_refuses_categories(tmp_path):
    root = make_round(tmp_path / "r", '[round]\nid = "x"\n[codes]\naccept = ["billable"]\n')
    write(root / "coders" / "bob" / "R2.ann", "T1\tDiagnosis 54 65\tleft breast\n#1\tAnnotatorNotes T1\tC50\n")
    loaded = load_round(root)
    assert [q.problem.line for q in loaded.quarantined] == [2]
    assert "C50 is category; accepted here: billable" in loaded.quarantined[0].problem.reason


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[round\nid=1", "not valid TOML"),
        ('[codes]\nsource = "column"\n', "use note, label, attribute or normalization"),
        ('[codes]\nsource = "attribute"\n', "needs attribute"),
        ('[codes]\ncolour = "red"\n',
         re.escape("[codes] colour: unknown key (known: source, labels, attribute, resource, accept)")),
    ],
)
def test_bad_round_toml_is_a_clear_error(tmp_path, toml, message):
    root = make_round(tmp_path / "r", toml)
    with pytest.raises(RoundError, match=message) as info:
        load_round(root)
    assert "round.toml" in str(info.value)


def test_code_in_label_attribute_or_normalization(tmp_path):
    for toml, ann in [
        ('[codes]\nsource = "label"\n', "T1\tC50.912 25 50\tInvasive ductal carcinoma\n"),
        ('[codes]\nsource = "attribute"\nattribute = "ICD"\n',
         "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\nA1\tICD T1 C50.912\n"),
        ('[codes]\nsource = "normalization"\nresource = "ICD10CM"\n',
         "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\nN1\tReference T1 ICD10CM:C50.912\tcarcinoma\n"),
    ]:
        root = tmp_path / toml.split('"')[1]
        make_round(root, toml)
        for coder in ("ann", "bob"):
            write(root / "coders" / coder / "R1.ann", ann)
            write(root / "coders" / coder / "R2.ann", ann)
        loaded = load_round(root)
        assert loaded.quarantined == [], toml
        assert [a.code for a in loaded.reports["R1"].coders["ann"]] == ["C50.912"], toml


def test_plain_brat_folder_is_a_single_coder_round(tmp_path):
    src = FIXTURES / "codiesp-sample" / "train"
    loaded = load_round(src, language="es")
    assert loaded.layout == "plain"
    assert loaded.coders == ["coder1"]
    assert loaded.config.language == "es"
    assert not loaded.has_reason_for_visit
    n_ann = len(list(src.glob("*.ann")))
    assert len(loaded.reports) == n_ann
    # Without a round.toml every entity carries a code and only billable/category codes are accepted:
    # procedures (ICD-10-PCS) and CIE-10-ES codes without their 7th character ("X08.8XX") are
    # quarantined one by one, nothing is lost.
    assert {q.kind for q in loaded.quarantined} == {"code"}
    t_lines = [line.split("\t") for p in src.glob("*.ann")
               for line in p.read_text(encoding="utf-8").splitlines() if line.startswith("T")]
    kept = sum(len(r.coders["coder1"]) for r in loaded.reports.values())
    assert kept + len(loaded.quarantined) == len(t_lines)
    procedures = sum(fields[1].startswith("Procedure") for fields in t_lines)
    placeholder = [q for q in loaded.quarantined if q.problem.content.endswith("X")]
    assert len(loaded.quarantined) == procedures + len(placeholder)
    assert all("is incomplete; accepted here: billable, category" in q.problem.reason for q in placeholder)


def test_codiesp_with_its_round_toml_reads_every_diagnosis(tmp_path):
    src = FIXTURES / "codiesp-sample" / "train"
    dst = tmp_path / "train"
    shutil.copytree(src, dst)
    (dst / "round.toml").write_text('[round]\nid = "cs"\nlanguage = "es"\n[codes]\nlabels = ["Diagnosis"]\n'
                                    'accept = ["billable", "category", "incomplete"]\n')
    loaded = load_round(dst)
    assert loaded.quarantined == []
    diagnoses = sum(line.split("\t")[1].startswith("Diagnosis")
                    for p in src.glob("*.ann") for line in p.read_text(encoding="utf-8").splitlines()
                    if line.startswith("T"))
    assert sum(len(r.coders["coder1"]) for r in loaded.reports.values()) == diagnoses


def test_not_a_round_is_a_clear_error(tmp_path):
    with pytest.raises(RoundError, match="no such folder"):
        load_round(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RoundError, match="neither a round"):
        load_round(tmp_path / "empty")


def test_multi_annotator_brat_project_is_a_round(tmp_path):
    # bratiaa's example project: 4 annotators x 7 documents, named-entity labels (PER, LOC, ORG, MISC)
    src = FIXTURES / "bratiaa" / "example-files" / "example-project"
    dst = tmp_path / "project"
    shutil.copytree(src, dst)
    (dst / "round.toml").write_text('[round]\nid = "ner"\nlanguage = "es"\ncode_system = "none"\n'
                                    '[codes]\nsource = "label"\n')
    loaded = load_round(dst)
    assert loaded.layout == "project"
    assert loaded.coders == ["Lisa", "Maria", "Max", "Peter"]
    assert len(loaded.reports) == 7 and loaded.quarantined == []
    # every T line of every annotator is an annotation, its label its code (grep -c '^T' per folder)
    for coder in loaded.coders:
        t_lines = sum(line.startswith("T") for p in (src / coder).glob("*.ann")
                      for line in p.read_text(encoding="utf-8").splitlines())
        assert sum(len(r.coders[coder]) for r in loaded.reports.values()) == t_lines
    codes = {a.code for r in loaded.reports.values() for anns in r.coders.values() for a in anns}
    assert codes == {"PER", "LOC", "ORG", "MISC"}


def test_project_document_with_a_different_text_is_quarantined(tmp_path):
    src = FIXTURES / "bratiaa" / "data" / "agreement" / "agree-2"
    dst = tmp_path / "agree-2"
    shutil.copytree(src, dst)
    (dst / "round.toml").write_text('[round]\ncode_system = "none"\n[codes]\nsource = "label"\n')
    txt = dst / "ann2" / "esp.train-doc-46.txt"
    txt.write_text(txt.read_text(encoding="utf-8") + "extra", encoding="utf-8")
    loaded = load_round(dst)
    assert [q.message() for q in loaded.quarantined] == [
        f"{txt}: text differs from the other annotators' copy of this document"]
    assert sorted(loaded.reports["esp.train-doc-46"].coders) == ["ann1"]


def test_each_report_text_is_read_once_for_all_its_coders(tmp_path, monkeypatch):
    import hiericd_core.brat as brat

    root = make_round(tmp_path / "r")
    write(root / "senior" / "R1.ann", "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n"
          "#1\tAnnotatorNotes T1\tC50.912\n")
    write(root / "coders" / "bob" / "R2.ann", "T1\tDiagnosis 25 50\tInvasive ductal carcinomas\n")
    read, real = [], brat._read_bytes
    monkeypatch.setattr(brat, "_read_bytes", lambda path: read.append(str(path)) or real(path))
    loaded = load_round(root)
    assert sorted(Path(p).name for p in read if p.endswith(".txt")) == ["R1.txt", "R2.txt"]
    assert len([p for p in read if p.endswith(".ann")]) == 5
    assert [a.code for a in loaded.reports["R1"].senior] == ["C50.912"]
    assert loaded.reports["R2"].coders["bob"] == []  # its T text does not match the one text read
    (problem,) = [q.problem for q in loaded.quarantined]
    assert (problem.file, problem.line) == (str(root / "coders" / "bob" / "R2.ann"), 1)
    assert "does not match the document text" in problem.reason
