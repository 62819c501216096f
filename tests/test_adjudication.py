"""The adjudication queue: written for the senior, decided, merged again."""

from __future__ import annotations

import shutil
from pathlib import Path

from hiericd_core.adjudication import annotation_conf, decision_label, write_adjudication_queue
from hiericd_core.annotation import CodeSource
from hiericd_core.brat import Attribute, Note, TextBound, parse_ann
from hiericd_core.merge import merge_round
from hiericd_core.merge_write import write_merge
from hiericd_core.rounds import Round, RoundConfig, load_round

# carcinoma of the left breast 16-44, nevus 53-58, hypertension 88-100
TEXT = "Invasive ductal carcinoma of the left breast. Benign nevus of the right leg. History of hypertension."


def ann_lines(*entities: tuple[int, int, str]) -> str:
    """``.ann`` text of ``Diagnosis`` entities ``(start, end, code)``, code in the note."""
    lines = []
    for n, (start, end, code) in enumerate(entities, 1):
        lines += [f"T{n}\tDiagnosis {start} {end}\t{TEXT[start:end]}", f"#{n}\tAnnotatorNotes T{n}\t{code}"]
    return "\n".join(lines) + "\n"


def write_round(root: Path) -> Path:
    """r1: coder1 C50.912 vs coder2 C50.911 on the carcinoma, coder2 alone D22.71, both I10 → pending.
    r2: both coders agree → final."""
    files = {
        "round.toml": '[round]\nid = "adj-t"\n\n[codes]\nsource = "note"\n',
        "texts/r1.txt": TEXT,
        "texts/r2.txt": TEXT,
        "coders/coder1/r1.ann": ann_lines((16, 44, "C50.912"), (88, 100, "I10")),
        "coders/coder2/r1.ann": ann_lines((16, 44, "C50.911"), (53, 58, "D22.71"), (88, 100, "I10")),
        "coders/coder1/r2.ann": ann_lines((88, 100, "I10")),
        "coders/coder2/r2.ann": ann_lines((88, 100, "I10")),
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    return root


def read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


EXPECTED_QUEUE_ANN = (
    "T1\tcoder1 16 44\tcarcinoma of the left breast\n#1\tAnnotatorNotes T1\tC50.912\n"
    "T2\tcoder2 16 44\tcarcinoma of the left breast\n#2\tAnnotatorNotes T2\tC50.911\n"
    "T3\tcoder2 53 58\tnevus\n#3\tAnnotatorNotes T3\tD22.71\n"
    "T4\tcoder1 88 100\thypertension\n#4\tAnnotatorNotes T4\tI10\n"
    "T5\tcoder2 88 100\thypertension\n#5\tAnnotatorNotes T5\tI10\n"
    "T6\tDispute 16 44\tcarcinoma of the left breast\n"
    "#6\tAnnotatorNotes T6\tconflict: coder1 C50.912 vs coder2 C50.911\n"
    "T7\tDispute 53 58\tnevus\n#7\tAnnotatorNotes T7\tunmatched: only coder2 coded D22.71\n"
    "A1\tKind T6 conflict\n"
    "A2\tKind T7 unmatched\n"
)


def test_queue_holds_the_pending_report_with_disputes_marked(tmp_path):
    rnd = load_round(write_round(tmp_path / "round"))
    assert rnd.quarantined == []
    result = merge_round(rnd)
    assert result.pending == ["r1"]
    info = write_adjudication_queue(result, rnd, tmp_path / "queue")
    assert info == {"round_id": "adj-t", "path": str(tmp_path / "queue"), "pending_reports": 1, "disputes": 2,
                    "report_ids": ["r1"]}
    assert sorted(read_tree(tmp_path / "queue")) == ["README.txt", "annotation.conf", "r1.ann", "r1.txt",
                                                     "visual.conf"]
    assert (tmp_path / "queue/r1.txt").read_text() == TEXT
    ann = (tmp_path / "queue/r1.ann").read_text()
    assert ann == EXPECTED_QUEUE_ANN
    records, problems = parse_ann(ann, TEXT)  # brat's reader accepts it against the text
    assert problems == []
    assert TextBound("T6", "Dispute", ((16, 44),), "carcinoma of the left breast") in records
    assert Note("#3", "AnnotatorNotes", "T3", "D22.71") in records
    assert Attribute("A2", "Kind", "T7", "unmatched") in records


def test_brat_configuration(tmp_path):
    rnd = load_round(write_round(tmp_path / "round"))
    write_adjudication_queue(merge_round(rnd), rnd, tmp_path / "queue")
    conf = (tmp_path / "queue/annotation.conf").read_text()
    for section in ("[entities]", "[relations]", "[events]", "[attributes]"):
        assert section in conf  # brat wants all four, even empty
    entities = conf.split("[entities]\n")[1].split("\n\n")[0].splitlines()
    assert entities == ["coder1", "coder2", "Dispute", "Diagnosis"]
    assert "Kind\tArg:Dispute, Value:conflict|unmatched" in conf
    visual = (tmp_path / "queue/visual.conf").read_text()
    assert "[labels]" in visual and "[drawing]" in visual
    colors = dict(line.split("\tbgColor:") for line in visual.splitlines() if "\tbgColor:" in line)
    assert colors["Dispute"] == "#ff4d4d"
    assert len({colors["coder1"], colors["coder2"], colors["Dispute"], colors["Diagnosis"]}) == 4
    readme = (tmp_path / "queue/README.txt").read_text()
    assert "Diagnosis entity" in readme and str(tmp_path / "round" / "senior") in readme
    assert "  r1\t2\n" in readme


def test_the_seniors_decision_makes_the_report_final(tmp_path):
    root = write_round(tmp_path / "round")
    rnd = load_round(root)
    write_adjudication_queue(merge_round(rnd), rnd, tmp_path / "queue")
    # the senior keeps C50.912 on the carcinoma and adds nothing over the nevus, then copies the queue's
    # .ann (coder and Dispute entities included) into senior/
    decided = (tmp_path / "queue/r1.ann").read_text() + (
        "T8\tDiagnosis 16 44\tcarcinoma of the left breast\n#8\tAnnotatorNotes T8\tC50.912\n")
    (root / "senior").mkdir()
    (root / "senior/r1.ann").write_text(decided, encoding="utf-8")

    again = load_round(root)
    assert again.quarantined == []
    result = merge_round(again)
    merged = result.reports["r1"]
    assert merged.status == "final"
    assert [(d.kind, d.outcome, d.senior_codes) for d in merged.disputes] == [
        ("conflict", "kept", ("C50.912",)), ("unmatched", "dropped", ())]
    assert [(a.id, a.code, a.fragments, a.rule, a.source_ids) for a in merged.annotations] == [
        ("T1", "C50.912", ((16, 44),), "senior-kept", ("senior:T8",)),
        ("T2", "I10", ((88, 100),), "agreed", ("coder1:T2", "coder2:T3")),
    ]
    assert result.counts["senior_annotations"]["queue_display_ignored"] == 7  # T1-T7 of the queue
    # the queue empties: r1 leaves it
    info = write_adjudication_queue(result, again, tmp_path / "queue")
    assert info["pending_reports"] == 0
    assert sorted(read_tree(tmp_path / "queue")) == ["README.txt", "annotation.conf", "visual.conf"]


def test_merge_and_queue_are_idempotent(tmp_path):
    root = write_round(tmp_path / "round")
    outputs = []
    for run in ("one", "two"):
        rnd = load_round(root)
        result = merge_round(rnd)
        write_merge(result, rnd, tmp_path / run / "merged")
        write_adjudication_queue(result, rnd, tmp_path / run / "queue")
        outputs.append(read_tree(tmp_path / run))
    assert outputs[0] == outputs[1]
    # and a second write into the same folders changes no byte
    shutil.rmtree(tmp_path / "two")
    rnd = load_round(root)
    result = merge_round(rnd)
    write_merge(result, rnd, tmp_path / "one" / "merged")
    write_adjudication_queue(result, rnd, tmp_path / "one" / "queue")
    assert read_tree(tmp_path / "one") == outputs[0]


def test_decision_label_follows_the_rounds_coded_labels():
    def round_with(labels: tuple[str, ...]) -> Round:
        return Round(Path("."), RoundConfig("x", codes=CodeSource(labels=labels)), "round", {}, [], [], False)

    assert decision_label(round_with(())) == "Diagnosis"
    assert decision_label(round_with(("Procedure", "Diagnosis"))) == "Diagnosis"
    assert decision_label(round_with(("DIAGNOSTICO",))) == "DIAGNOSTICO"
    assert "coder1\ncoder2\nDispute\nDIAGNOSTICO\n" in annotation_conf(["coder1", "coder2"], "DIAGNOSTICO")
