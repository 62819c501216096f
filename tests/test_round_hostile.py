"""Hostile and broken rounds, as a user meets them through the ``hiericd`` command.

Ids from a round's files never act as paths, symlinks are not followed,
``round.toml`` is validated key by key, settings that match nothing are
errors, and one bad file (text, metadata row, note) is quarantined alone.
"""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiericd_core.cli import app
from hiericd_core.rounds import RoundError, load_round

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()

TEXT = "Left breast core biopsy.\nInvasive ductal carcinoma of left breast.\n"
# "Invasive ductal carcinoma" is 25..50 (see test_rounds.py)
GOOD_ANN = "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n#1\tAnnotatorNotes T1\tC50.912\n"
TOML = '[round]\nid = "r-test"\nlanguage = "en"\n[codes]\nsource = "note"\nlabels = ["Diagnosis"]\n'


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_round(root: Path, toml: str | None = TOML, reports: int = 2) -> Path:
    """A valid round: ``reports`` reports, coders ann (all) and bob (R1)."""
    if toml is not None:
        write(root / "round.toml", toml)
    for n in range(1, reports + 1):
        write(root / "texts" / f"R{n}.txt", TEXT)
        write(root / "coders" / "ann" / f"R{n}.ann", GOOD_ANN)
    write(root / "coders" / "bob" / "R1.ann", GOOD_ANN)
    return root


def validate(root: Path) -> tuple[int, dict | str]:
    """Run ``hiericd validate --json``: (exit code, summary or the output when it failed)."""
    result = runner.invoke(app, ["validate", str(root), "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else result.output


def one_line(output: str) -> str:
    """The error message as printed, terminal wrapping undone."""
    return output.replace("\n", "")


# ------------------------------------------------------------------ round ids


@pytest.mark.parametrize("bad_id", ["VICTIM", "../../X", "..", "", "a/b", ".hidden", "a..b", "-rf", "x" * 129])
def test_a_round_id_never_acts_as_a_path(tmp_path, monkeypatch, bad_id):
    victim = write(tmp_path / "victim" / "keep.txt", "precious")
    bad_id = str(victim.parent) if bad_id == "VICTIM" else bad_id
    root = make_round(tmp_path / "round", f'[round]\nid = "{bad_id}"\n')
    home = tmp_path / "home"
    monkeypatch.setenv("HIERICD_HOME", str(home))
    result = runner.invoke(app, ["merge", str(root)])
    assert result.exit_code == 2, result.output
    message = one_line(result.output)
    assert f"{root / 'round.toml'}: [round] id: {bad_id!r} is not a safe id" in message
    assert "Traceback" not in result.output
    # nothing written or removed anywhere: the victim is intact, the catalog holds no merged round
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round", "victim"]
    assert not (home / "merged").exists() or list((home / "merged").iterdir()) == []


def test_safe_ids_of_real_rounds_still_load(tmp_path):
    for good in ("synth-5-300", "codiesp-train", "2026-11-round-07", "esp.train-doc-46", "R_1"):
        root = make_round(tmp_path / good, f'[round]\nid = "{good}"\n')
        assert load_round(root).id == good


def test_a_folder_name_that_is_no_safe_id_cannot_default_the_round_id(tmp_path):
    root = make_round(tmp_path / "my round", None)
    code, output = validate(root)
    assert code == 2
    assert f"the folder name 'my round' of {root} cannot be the round id" in one_line(output)
    assert "set [round] id in round.toml" in one_line(output)
    (root / "round.toml").write_text('[round]\nid = "my-round"\n')
    code, summary = validate(root)
    assert code == 0 and summary["round_id"] == "my-round"
    # a round.toml without id falls back to the folder name, checked the same way
    (root / "round.toml").write_text('[round]\nlanguage = "en"\n')
    code, output = validate(root)
    assert code == 2 and "no [round] id, and the folder name 'my round'" in one_line(output)


def test_dot_names_the_folder_it_stands_for(tmp_path, monkeypatch):
    root = make_round(tmp_path / "r-dot", None)
    monkeypatch.chdir(root)
    assert load_round(".").id == "r-dot"


# ------------------------------------------------------------------ coder names, report ids, symlinks


def test_unsafe_coder_folders_and_report_ids_are_quarantined_not_followed(tmp_path):
    root = make_round(tmp_path / "r")
    write(root / "coders" / "bad name" / "R1.ann", GOOD_ANN)
    write(root / "coders" / ".hidden" / "R1.ann", GOOD_ANN)
    write(root / "texts" / "R 3.txt", TEXT)
    write(root / "coders" / "ann" / "R 3.ann", GOOD_ANN)
    code, summary = validate(root)
    assert code == 0
    assert summary["coders"] == ["ann", "bob"]
    assert summary["reports"] == 2
    rule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters, no '..'"
    assert sorted(summary["problems"]) == sorted([
        f"{root / 'coders' / '.hidden'}: coder folder name '.hidden' is not a safe id ({rule}); rename the folder",
        f"{root / 'coders' / 'bad name'}: coder folder name 'bad name' is not a safe id ({rule}); rename the folder",
        f"{root / 'texts' / 'R 3.txt'}: report id 'R 3' is not a safe id ({rule}); rename the file",
        f"{root / 'coders' / 'ann' / 'R 3.ann'}: report id 'R 3' is not a safe id ({rule}); rename the file",
    ])
    assert summary["quarantined"] == {"layout": 4}


def test_symlinks_in_a_round_are_quarantined_not_followed(tmp_path):
    secret = write(tmp_path / "outside" / "secret.txt", "SECRET " * 10)
    write(tmp_path / "outside" / "eve" / "R1.ann", GOOD_ANN)
    root = make_round(tmp_path / "r", reports=3)
    (root / "texts" / "R3.txt").unlink()
    (root / "texts" / "R3.txt").symlink_to(secret)
    (root / "coders" / "eve").symlink_to(tmp_path / "outside" / "eve")
    (root / "coders" / "bob" / "R1.ann").unlink()
    (root / "coders" / "bob" / "R1.ann").symlink_to(root / "coders" / "ann" / "R1.ann")
    (root / "senior").symlink_to(tmp_path / "outside" / "eve")
    code, summary = validate(root)
    assert code == 0
    assert sorted(summary["problems"]) == sorted(f"{p}: symlink, not followed" for p in [
        root / "texts" / "R3.txt", root / "coders" / "eve", root / "coders" / "bob" / "R1.ann", root / "senior"])
    assert summary["coders"] == ["ann", "bob"]
    assert summary["reports"] == 2 and summary["senior_adjudicated_reports"] == 0
    loaded = load_round(root)
    assert all("SECRET" not in r.text for r in loaded.reports.values())
    assert sorted(loaded.reports["R1"].coders) == ["ann"]  # bob's only file was the link: nothing read


def test_symlinks_in_plain_and_project_folders_are_not_followed(tmp_path):
    secret = write(tmp_path / "outside" / "x.txt", TEXT)
    write(tmp_path / "outside" / "x.ann", GOOD_ANN)
    plain = tmp_path / "plain"
    write(plain / "A.txt", TEXT)
    write(plain / "A.ann", GOOD_ANN)
    write(plain / "B.ann", GOOD_ANN)
    (plain / "B.txt").symlink_to(secret)
    (plain / "C.ann").symlink_to(tmp_path / "outside" / "x.ann")
    (plain / "sub").symlink_to(tmp_path / "outside")
    code, summary = validate(plain)
    assert code == 0 and summary["reports"] == 1
    assert sorted(summary["problems"]) == sorted(f"{p}: symlink, not followed" for p in [
        plain / "B.txt", plain / "C.ann", plain / "sub"])

    src = FIXTURES / "bratiaa" / "data" / "agreement" / "agree-2"
    project = tmp_path / "agree-2"
    shutil.copytree(src, project)
    write(project / "round.toml", '[round]\nid = "agree-2"\ncode_system = "none"\n[codes]\nsource = "label"\n')
    doc = project / "ann2" / "esp.train-doc-46.txt"
    doc.unlink()
    doc.symlink_to(secret)
    (project / "ann3").symlink_to(project / "ann1")
    code, summary = validate(project)
    assert code == 0
    assert sorted(summary["problems"]) == sorted(f"{p}: symlink, not followed" for p in [doc, project / "ann3"])
    assert summary["coders"] == ["ann1", "ann2"]


# ------------------------------------------------------------------ round.toml


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[round]\nid = "x"\nlangauge = "es"\n',
         "[round] langauge: unknown key (known: id, date, language, code_system)"),
        ('id = "x"\n', "id: unknown key at the top level (known tables: [round], [codes]); it belongs under [round]"),
        ('[colour]\nx = 1\n', "colour: unknown key at the top level (known tables: [round], [codes])"),
        ('round = "x"\n', "round: must be a table ([round]), not a string 'x'"),
        ('[codes]\nlabels = "Diagnosis"\n',
         "[codes] labels: must be an array of strings (e.g. [\"Diagnosis\"]), not a string 'Diagnosis'"),
        ('[codes]\naccept = "billable"\n',
         "[codes] accept: must be an array of strings (e.g. [\"billable\", \"category\"]), not a string 'billable'"),
        ('[codes]\nlabels = ["Diagnosis", 3]\n', "[codes] labels[1]: must be a string, not an integer 3"),
        ('[round]\ndate = [1, 2]\n', "[round] date: must be a date (2026-11-27), not an array [1, 2]"),
        ('[round]\ndate = "next week"\n', "[round] date: 'next week' is not a date; write 2026-11-27"),
        ('[round]\nlanguage = 5\n', "[round] language = 5; use en or es"),
        ('[round]\nlanguage = "fr"\n', "[round] language = 'fr'; use en or es"),
        ('[round]\ncode_system = "icd-9"\n', "[round] code_system = 'icd-9'; use icd-10-cm, cie-10-es or none"),
        ('[round]\nid = 7\n', "[round] id: must be a string, not an integer 7"),
        ('[codes]\naccept = ["billable", "unknown"]\n',
         "[codes] accept[1] = 'unknown'; use billable, category or incomplete"),
        ('[codes]\naccept = []\n', "[codes] accept: must name at least one status (billable, category or incomplete)"),
        ('[codes]\nsource = "column"\n', "[codes] source = 'column'; use note, label, attribute or normalization"),
    ],
)
def test_round_toml_is_validated_key_by_key(tmp_path, toml, message):
    root = make_round(tmp_path / "r", toml)
    code, output = validate(root)
    assert code == 2
    assert f"error: {root / 'round.toml'}: {message}" in one_line(output)


def test_every_bad_key_is_named_in_one_message(tmp_path):
    root = make_round(tmp_path / "r", '[round]\nlangauge = "es"\n[codes]\nlabels = "Diagnosis"\n')
    with pytest.raises(RoundError) as info:
        load_round(root)
    assert "\n" not in str(info.value)
    assert str(info.value) == (
        f"{root / 'round.toml'}: [round] langauge: unknown key (known: id, date, language, code_system); "
        "[codes] labels: must be an array of strings (e.g. [\"Diagnosis\"]), not a string 'Diagnosis'")


def test_round_toml_that_is_a_symlink_or_not_utf8_is_refused(tmp_path):
    root = make_round(tmp_path / "r", None)
    write(root / "round.toml", b'[round]\nid = "caf\xe9"\n')
    code, output = validate(root)
    assert code == 2 and "round.toml: not valid TOML" in one_line(output) and "not UTF-8" in one_line(output)
    (root / "round.toml").unlink()
    (root / "round.toml").symlink_to(write(tmp_path / "elsewhere.toml", TOML))
    code, output = validate(root)
    assert code == 2 and f"{root / 'round.toml'}: symlink, not followed" in one_line(output)


def test_language_option_is_checked_too(tmp_path):
    result = runner.invoke(app, ["validate", str(make_round(tmp_path / "r")), "--language", "fr"])
    assert result.exit_code == 2 and "language 'fr': use en or es" in one_line(result.output)


# ------------------------------------------------------------------ settings that match nothing


def test_a_label_that_matches_nothing_is_an_error_naming_the_round_labels(tmp_path):
    root = make_round(tmp_path / "r", '[round]\nid = "r"\n[codes]\nlabels = ["Diagnosys"]\n')
    write(root / "coders" / "bob" / "R2.ann", "T1\tProcedure 0 4\tLeft\n")
    code, output = validate(root)
    assert code == 2
    assert (f"{root / 'round.toml'}: [codes] labels = ['Diagnosys'] match no entity label of this round; "
            "its labels: Diagnosis, Procedure") in one_line(output)
    # one listed label that matches is enough: another round may simply have no Procedure
    (root / "round.toml").write_text('[round]\nid = "r"\n[codes]\nlabels = ["Diagnosis", "Finding"]\n')
    assert validate(root)[0] == 0


def test_a_label_setting_on_a_round_without_annotations_is_no_error(tmp_path):
    root = make_round(tmp_path / "r", '[round]\nid = "r"\n[codes]\nlabels = ["Diagnosys"]\n')
    for ann in root.glob("coders/*/*.ann"):
        ann.write_text("")
    code, summary = validate(root)
    assert code == 0 and summary["annotations_per_coder"] == {"ann": 0, "bob": 0}


@pytest.mark.parametrize(
    ("codes", "ann", "message"),
    [
        ('source = "attribute"\nattribute = "ICD10"\n', "A1\tICD T1 C50.912\n",
         "[codes] attribute = 'ICD10' matches no attribute of this round; its attributes: ICD"),
        ('source = "normalization"\nresource = "ICD10CM"\n', "N1\tReference T1 CIE10:C50.912\tcarcinoma\n",
         "[codes] resource = 'ICD10CM' matches no normalization resource of this round; its resources: CIE10"),
        ('source = "attribute"\nattribute = "ICD"\n', "",
         "[codes] attribute = 'ICD' matches no attribute of this round; its attributes: none"),
    ],
)
def test_an_attribute_or_resource_that_matches_nothing_is_an_error(tmp_path, codes, ann, message):
    root = make_round(tmp_path / "r", f'[round]\nid = "r"\n[codes]\n{codes}')
    for path in root.glob("coders/*/*.ann"):
        path.write_text("T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n" + ann)
    code, output = validate(root)
    assert code == 2 and f"{root / 'round.toml'}: {message}" in one_line(output)


# ------------------------------------------------------------------ metadata.csv


def metadata_round(root: Path, rows: list[str]) -> Path:
    make_round(root, reports=len(rows))
    write(root / "metadata.csv", "report_id,reason_for_visit,specimen\n" + "".join(rows))
    return root


def reasons(root: Path) -> dict[str, str]:
    return {rid: r.reason_for_visit for rid, r in load_round(root).reports.items() if r.reason_for_visit}


def test_a_stray_quote_costs_its_own_row_only(tmp_path):
    rows = [f"R{n},Lump {n},core\n" for n in range(1, 61)]
    rows[29] = 'R30,"Lump 30,core\n'  # line 31: the quote never closes
    root = metadata_round(tmp_path / "r", rows)
    code, summary = validate(root)
    assert code == 0 and summary["reports"] == 60
    assert summary["problems"] == [f"{root / 'metadata.csv'}:31: a quote opened here is never closed "
                                   "(it would swallow the rows below); row left out"]
    kept = reasons(root)
    assert len(kept) == 59 and "R30" not in kept and kept["R31"] == "Lump 31" and kept["R60"] == "Lump 60"


def test_a_stray_quote_before_a_quoted_row_costs_its_own_row_only(tmp_path):
    rows = [f"R{n},Lump {n},core\n" for n in range(1, 6)]
    rows[1] = 'R2,"Lump 2,core\n'
    rows[3] = 'R4,"Lump, left",core\n'  # a well-quoted field does not close the stray quote above
    root = metadata_round(tmp_path / "r", rows)
    kept = reasons(root)
    assert sorted(kept) == ["R1", "R3", "R4", "R5"] and kept["R4"] == "Lump, left"
    assert [(q.problem.line, q.kind) for q in load_round(root).quarantined] == [(3, "metadata")]


def test_a_quoted_field_with_line_breaks_is_one_row(tmp_path):
    root = metadata_round(tmp_path / "r", ['R1,"Lump,\r\nleft breast",core\r\n', "R2,Mass,core\r\n"])
    loaded = load_round(root)
    assert loaded.quarantined == []
    assert loaded.reports["R1"].reason_for_visit == "Lump,\r\nleft breast"
    assert loaded.reports["R1"].metadata["specimen"] == "core"
    assert loaded.reports["R2"].reason_for_visit == "Mass"


def test_bad_bytes_bad_quoting_and_huge_fields_are_quarantined_with_their_line(tmp_path):
    root = make_round(tmp_path / "r", reports=5)
    write(root / "metadata.csv", b"report_id,reason_for_visit\nR1,Lump\nR2,Caf\xe9\nR3,\"Lu\"mp\n"
          b"R4," + b"x" * 200_000 + b"\nR5,Mass\n")
    code, summary = validate(root)
    assert code == 0
    meta = root / "metadata.csv"
    assert summary["problems"] == [
        f"{meta}:3: not UTF-8: byte 0xe9 at byte 7 of the line; row left out",
        f"{meta}:4: malformed CSV (',' expected after '\"'); row left out",
        f"{meta}:5: a field longer than 131072 characters; row left out",
    ]
    assert reasons(root) == {"R1": "Lump", "R5": "Mass"}


def test_metadata_without_a_readable_header_is_one_problem(tmp_path):
    root = make_round(tmp_path / "r")
    write(root / "metadata.csv", b"report_\xffid,reason_for_visit\nR1,Lump\n")
    loaded = load_round(root)
    assert [q.message() for q in loaded.quarantined] == [
        f"{root / 'metadata.csv'}:1: not UTF-8: byte 0xff at byte 8 of the line; row left out",
        f"{root / 'metadata.csv'}:1: no report_id column (columns: none)"]
    assert not loaded.has_reason_for_visit


# ------------------------------------------------------------------ texts that cannot be read


def test_a_text_that_is_not_utf8_or_a_folder_is_quarantined_and_the_round_read(tmp_path):
    root = make_round(tmp_path / "r", reports=4)
    write(root / "texts" / "R2.txt", b"Left\nbreast \xff core\n")
    (root / "texts" / "R3.txt").unlink()
    (root / "texts" / "R3.txt").mkdir()
    code, summary = validate(root)
    assert code == 0
    assert summary["reports"] == 2
    assert sorted(summary["problems"]) == [
        f"{root / 'texts' / 'R2.txt'}:2: not UTF-8: byte 0xff at byte 8 of the line; the report is left out",
        f"{root / 'texts' / 'R3.txt'}: not a file, so not a .txt document",
    ]
    assert summary["quarantined"] == {"brat": 1, "layout": 1}


def test_a_text_that_cannot_be_read_is_quarantined(tmp_path, monkeypatch):
    import hiericd_core.rounds as rounds

    root = make_round(tmp_path / "r")
    real = rounds.read_text

    def unreadable(path):
        if str(path).endswith("R2.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rounds, "read_text", unreadable)
    loaded = load_round(root)
    assert sorted(loaded.reports) == ["R1"]
    assert [q.message() for q in loaded.quarantined] == [
        f"{root / 'texts' / 'R2.txt'}: cannot read: Permission denied; the report is left out"]


def test_a_text_that_is_not_utf8_in_plain_and_project_folders(tmp_path):
    plain = tmp_path / "plain"
    for name in ("A", "B"):
        write(plain / f"{name}.txt", TEXT)
        write(plain / f"{name}.ann", GOOD_ANN)
    write(plain / "B.txt", b"\xfe" + TEXT.encode())
    code, summary = validate(plain)
    assert code == 0 and summary["reports"] == 1
    assert summary["problems"] == [
        f"{plain / 'B.txt'}:1: not UTF-8: byte 0xfe at byte 1 of the line; the report is left out"]

    project = tmp_path / "agree-2"
    shutil.copytree(FIXTURES / "bratiaa" / "data" / "agreement" / "agree-2", project)
    write(project / "round.toml", '[round]\nid = "agree-2"\ncode_system = "none"\n[codes]\nsource = "label"\n')
    doc = project / "ann2" / "esp.train-doc-46.txt"
    doc.write_bytes(doc.read_bytes() + b"\xc3")
    code, summary = validate(project)
    assert code == 0 and summary["coders"] == ["ann1", "ann2"]
    (problem,) = summary["problems"]
    assert problem.startswith(f"{doc}:") and "not UTF-8: byte 0xc3" in problem
    assert summary["annotations_per_coder"]["ann2"] < summary["annotations_per_coder"]["ann1"]


# ------------------------------------------------------------------ notes holding more or less than one code


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("N43.40 N45.1", "T1: 'N43.40 N45.1' holds 2 codes (N43.40, N45.1); give each code its own annotation"),
        ("N43.40, n45.1", "T1: 'N43.40, n45.1' holds 2 codes (N43.40, N45.1); give each code its own annotation"),
        ("N43 .40", "T1: 'N43 .40' looks like the code N43.40 cut by a space; write it without spaces"),
        ("C50 912", "T1: 'C50 912' looks like the code C50.912 cut by a space; write it without spaces"),
    ],
)
def test_a_note_with_two_codes_or_a_broken_one_is_quarantined(tmp_path, note, reason):
    root = make_round(tmp_path / "r")
    bob = write(root / "coders" / "bob" / "R1.ann", f"T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n"
                f"#1\tAnnotatorNotes T1\t{note}\n")
    code, summary = validate(root)
    assert code == 0
    assert summary["problems"] == [f"{bob}:2: {reason}"]
    assert summary["annotations_per_coder"] == {"ann": 2, "bob": 0}


def test_words_after_the_one_code_are_still_let_be(tmp_path):
    root = make_round(tmp_path / "r")
    write(root / "coders" / "bob" / "R1.ann", "T1\tDiagnosis 25 50\tInvasive ductal carcinoma\n"
          "#1\tAnnotatorNotes T1\tC50.912 per path\n")
    loaded = load_round(root)
    assert loaded.quarantined == [] and [a.code for a in loaded.reports["R1"].coders["bob"]] == ["C50.912"]


def test_the_queue_display_in_the_seniors_file_may_list_two_codes(tmp_path):
    root = make_round(tmp_path / "r")
    senior = write(root / "senior" / "R1.ann", "T1\tDispute 25 50\tInvasive ductal carcinoma\n"
                   "#1\tAnnotatorNotes T1\tconflict: ann C50.912 vs bob C50.911\n"
                   "T2\tbob 25 50\tInvasive ductal carcinoma\n#2\tAnnotatorNotes T2\tC50.911\n"
                   "T3\tDiagnosis 25 50\tInvasive ductal carcinoma\n#3\tAnnotatorNotes T3\tC50.912 C50.911\n")
    # labels = ["Diagnosis"] would leave the display uncoded: code every label, as the queue's own round does
    (root / "round.toml").write_text('[round]\nid = "r"\n')
    loaded = load_round(root)
    assert [(a.label, a.code) for a in loaded.reports["R1"].senior] == [("Dispute", "C50.912"), ("bob", "C50.911")]
    assert [q.message() for q in loaded.quarantined] == [
        f"{senior}:6: T3: 'C50.912 C50.911' holds 2 codes (C50.912, C50.911); give each code its own annotation"]


def test_a_catalog_folder_that_links_outside_is_a_user_error(tmp_path, monkeypatch):
    root = make_round(tmp_path / "round")
    home = tmp_path / "home"
    (home / "merged").mkdir(parents=True)
    (home / "merged" / "r-test").symlink_to(tmp_path / "elsewhere")  # merged/<round id> leads out of the catalog
    monkeypatch.setenv("HIERICD_HOME", str(home))
    result = runner.invoke(app, ["merge", str(root)])
    assert result.exit_code == 2, result.output
    assert f"round id 'r-test': {home / 'merged' / 'r-test'} leads outside {home / 'merged'}" in one_line(result.output)
    assert not (tmp_path / "elsewhere").exists()
