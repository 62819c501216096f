"""Merging coders' annotations: every rule on hand-worked reports, accounting, bytes, quality."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hiericd_core.annotation import Annotation
from hiericd_core.merge import (
    ANNOTATION_COLUMNS,
    FinalAnnotation,
    covered_text,
    fragments_overlap,
    merge_quality,
    merge_report,
    merge_round,
    normalize_fragments,
)
from hiericd_core.merge_write import write_merge
from hiericd_core.rounds import Report, Round, RoundConfig, load_round

# offsets (end exclusive), worked by hand and checked in test_text_offsets:
#   Invasive 0-8, ductal 9-15, carcinoma 16-25, "of the " 26-33, left 33-37, breast 38-44,
#   Benign 46-52, nevus 53-58, right 66-71, leg 72-75, hypertension 88-100
TEXT = "Invasive ductal carcinoma of the left breast. Benign nevus of the right leg. History of hypertension."


def ann(source: str, id: str, code: str, *fragments: tuple[int, int], label: str = "Diagnosis",
        report_id: str = "r1") -> Annotation:
    """A coder's annotation as the round loader builds it (text = fragments as written, joined by a space)."""
    return Annotation(report_id, source, id, label, tuple(fragments), covered_text(TEXT, tuple(fragments)), code)


def report(coders: dict[str, list[Annotation]], senior: list[Annotation] | None = None,
           truth: list[Annotation] | None = None, report_id: str = "r1") -> Report:
    return Report(report_id, TEXT, coders=coders, senior=senior, truth=truth)


def make_round(*reports: Report, round_id: str = "round-t") -> Round:
    coders = sorted({c for r in reports for c in r.coders})
    return Round(Path("."), RoundConfig(round_id), "round", {r.report_id: r for r in reports}, coders, [], False)


def spans(merged) -> list[tuple[str, str, tuple, str, str]]:
    return [(a.id, a.code, a.fragments, a.text, a.rule) for a in merged.annotations]


def test_text_offsets():
    assert TEXT[16:44] == "carcinoma of the left breast"
    assert (TEXT[53:58], TEXT[66:71], TEXT[72:75], TEXT[88:100]) == ("nevus", "right", "leg", "hypertension")


# ---------------------------------------------------------------- fragments


def test_fragments_overlap_needs_a_shared_character():
    assert fragments_overlap([(16, 25)], [(24, 30)])  # share 24
    assert not fragments_overlap([(16, 25)], [(25, 30)])  # touch only
    # interleaved: (26, 37) lies between the two fragments of the other
    assert not fragments_overlap([(16, 25), (38, 44)], [(26, 37)])
    assert fragments_overlap([(38, 44), (16, 25)], [(0, 9), (40, 41)])  # piecewise, out of order


def test_normalize_fragments_sorts_and_merges_touching_and_overlapping():
    assert normalize_fragments([(38, 44), (16, 25), (20, 26), (26, 30)]) == ((16, 30), (38, 44))
    assert normalize_fragments([(5, 9)]) == ((5, 9),)


# ---------------------------------------------------------------- agreement


def test_exact_overlap_same_code_gives_one_agreed_annotation():
    merged = merge_report(report({"coder1": [ann("coder1", "T1", "C50.912", (16, 44))],
                                  "coder2": [ann("coder2", "T4", "C50.912", (16, 44))]}))
    assert merged.status == "final"
    assert merged.disputes == []
    assert merged.annotations == [FinalAnnotation(
        "r1", "T1", "C50.912", ((16, 44),), "carcinoma of the left breast", ("coder1", "coder2"), "agreed",
        ("coder1:T1", "coder2:T4"))]


def test_partial_overlap_same_code_gives_the_union_span():
    # (0, 25) ∪ (16, 44) = (0, 44)
    merged = merge_report(report({"coder1": [ann("coder1", "T1", "C50.912", (0, 25))],
                                  "coder2": [ann("coder2", "T1", "C50.912", (16, 44))]}))
    assert spans(merged) == [("T1", "C50.912", ((0, 44),), "Invasive ductal carcinoma of the left breast", "agreed")]


def test_discontinuous_annotations_overlap_piecewise():
    # coder1: "carcinoma … breast" written out of order; coder2: "left breast".
    # (38, 44) ∩ (33, 44) ≠ ∅ → agreed; union {(16,25), (38,44), (33,44)} = (16,25) + (33,44)
    merged = merge_report(report({"coder1": [ann("coder1", "T1", "C50.912", (38, 44), (16, 25))],
                                  "coder2": [ann("coder2", "T1", "C50.912", (33, 44))]}))
    assert spans(merged) == [("T1", "C50.912", ((16, 25), (33, 44)), "carcinoma left breast", "agreed")]


def test_interleaved_fragments_without_a_shared_character_do_not_overlap():
    # coder2's (26, 37) "of the left" sits in the gap of coder1's (16,25)+(38,44): two unmatched regions
    merged = merge_report(report({"coder1": [ann("coder1", "T1", "C50.912", (16, 25), (38, 44))],
                                  "coder2": [ann("coder2", "T1", "C50.912", (26, 37))]}))
    assert merged.status == "pending"
    assert merged.annotations == []
    assert [(d.kind, d.region, d.outcome) for d in merged.disputes] == [
        ("unmatched", ((16, 25), (38, 44)), "pending"),
        ("unmatched", ((26, 37),), "pending"),
    ]


# ---------------------------------------------------------------- disputes and the senior

CONFLICT = {"coder1": [ann("coder1", "T1", "C50.912", (16, 44))],
            "coder2": [ann("coder2", "T1", "C50.911", (16, 44))]}


def test_conflict_kept_with_the_seniors_code_and_span():
    senior = [ann("senior", "T1", "C50.912", (0, 44))]
    merged = merge_report(report(CONFLICT, senior))
    assert merged.status == "final"
    (dispute,) = merged.disputes
    assert (dispute.kind, dispute.region, dispute.outcome, dispute.senior_codes) == (
        "conflict", ((16, 44),), "kept", ("C50.912",))
    assert [f"{a.source}:{a.id}:{a.code}" for a in dispute.annotations] == ["coder1:T1:C50.912", "coder2:T1:C50.911"]
    assert merged.annotations == [FinalAnnotation(
        "r1", "T1", "C50.912", ((0, 44),), "Invasive ductal carcinoma of the left breast", ("senior",),
        "senior-kept", ("senior:T1",))]


def test_conflict_dropped_when_the_senior_marks_nothing_there():
    # the senior adjudicated (a file, even empty) but put nothing over (16, 44); I10 elsewhere is added
    merged = merge_report(report(CONFLICT, [ann("senior", "T1", "I10", (88, 100))]))
    assert merged.status == "final"
    assert [(d.outcome, d.senior_codes) for d in merged.disputes] == [("dropped", ())]
    assert [(a.code, a.rule, a.sources) for a in merged.annotations] == [("I10", "senior-added", ("senior",))]
    assert merge_report(report(CONFLICT, [])).annotations == []


def test_pending_when_the_senior_has_not_adjudicated():
    rep = report({"coder1": [ann("coder1", "T1", "C50.912", (16, 44)), ann("coder1", "T2", "I10", (88, 100))],
                  "coder2": [ann("coder2", "T1", "C50.911", (16, 44)), ann("coder2", "T2", "I10", (88, 100))]})
    merged = merge_report(rep)
    assert merged.status == "pending"
    assert [(d.kind, d.outcome, d.senior_codes) for d in merged.disputes] == [("conflict", "pending", ())]
    # the agreed I10 is still merged (and accounted for) but the report is held back
    assert spans(merged) == [("T1", "I10", ((88, 100),), "hypertension", "agreed")]


def test_unmatched_kept_by_the_senior():
    # coder1 alone codes the nevus (53, 75); the senior keeps it on "nevus" (53, 58)
    coders = {"coder1": [ann("coder1", "T1", "C50.912", (16, 44)), ann("coder1", "T2", "D22.71", (53, 75))],
              "coder2": [ann("coder2", "T1", "C50.912", (16, 44))]}
    merged = merge_report(report(coders, [ann("senior", "T9", "D22.71", (53, 58))]))
    assert [(d.kind, d.region, d.outcome, d.senior_codes) for d in merged.disputes] == [
        ("unmatched", ((53, 75),), "kept", ("D22.71",))]
    assert spans(merged) == [("T1", "C50.912", ((16, 44),), "carcinoma of the left breast", "agreed"),
                             ("T2", "D22.71", ((53, 58),), "nevus", "senior-kept")]
    dropped = merge_report(report(coders, []))
    assert [d.outcome for d in dropped.disputes] == ["dropped"]
    assert [a.code for a in dropped.annotations] == ["C50.912"]


def test_senior_added_and_confirming_decisions():
    # C50.912 (16, 44) re-marked by the senior confirms the agreed annotation (joined, not doubled);
    # I10 (88, 100) is a code both coders missed
    coders = {"coder1": [ann("coder1", "T1", "C50.912", (16, 44))],
              "coder2": [ann("coder2", "T1", "C50.912", (16, 44))]}
    senior = [ann("senior", "T1", "C50.912", (16, 44)), ann("senior", "T2", "I10", (88, 100))]
    merged = merge_report(report(coders, senior))
    assert [(a.id, a.code, a.rule, a.sources, a.source_ids) for a in merged.annotations] == [
        ("T1", "C50.912", "agreed", ("coder1", "coder2", "senior"), ("coder1:T1", "coder2:T1", "senior:T1")),
        ("T2", "I10", "senior-added", ("senior",), ("senior:T2",)),
    ]
    counts = merge_round(make_round(report(coders, senior))).counts
    assert counts["final_annotations"]["senior-added"] == 1
    assert counts["senior_annotations"]["added"] == 1
    assert counts["senior_annotations"]["confirming_final_annotations"] == 1


def test_queue_display_entities_in_the_senior_file_are_not_decisions():
    # a senior who copied the adjudication queue's .ann back: coder-labelled and Dispute entities are ignored
    senior = [ann("senior", "T1", "C50.912", (16, 44), label="coder1"),
              ann("senior", "T2", "C50.911", (16, 44), label="coder2"),
              ann("senior", "T3", "C50.912", (16, 44), label="Dispute"),
              ann("senior", "T4", "C50.911", (16, 37), label="Diagnosis")]
    merged = merge_report(report(CONFLICT, senior))
    assert [(d.outcome, d.senior_codes) for d in merged.disputes] == [("kept", ("C50.911",))]
    assert [(a.code, a.fragments, a.source_ids) for a in merged.annotations] == [
        ("C50.911", ((16, 37),), ("senior:T4",))]


# ---------------------------------------------------------------- one and three coders


def test_single_coder_report_is_taken_as_it_is():
    # fragments are put in order; two overlapping I10s of the one coder stay two
    rep = report({"coder2": [ann("coder2", "T7", "I10", (88, 100)), ann("coder2", "T3", "C50.912", (38, 44), (16, 25)),
                             ann("coder2", "T8", "I10", (88, 92))]})
    merged = merge_report(rep)
    assert merged.status == "single-coder"
    assert merged.disputes == []
    assert [(a.id, a.code, a.fragments, a.text, a.rule, a.source_ids) for a in merged.annotations] == [
        ("T1", "C50.912", ((16, 25), (38, 44)), "carcinoma breast", "single-coder", ("coder2:T3",)),
        ("T2", "I10", ((88, 92),), "hype", "single-coder", ("coder2:T8",)),
        ("T3", "I10", ((88, 100),), "hypertension", "single-coder", ("coder2:T7",)),
    ]
    # a senior file on such a report: a same-code overlap joins (union span), anything else is added
    rep.senior = [ann("senior", "T1", "C50.912", (16, 44)), ann("senior", "T2", "D22.71", (53, 58))]
    assert [(a.code, a.fragments, a.rule, a.sources) for a in merge_report(rep).annotations] == [
        ("C50.912", ((16, 44),), "single-coder", ("coder2", "senior")),
        ("D22.71", ((53, 58),), "senior-added", ("senior",)),
        ("I10", ((88, 92),), "single-coder", ("coder2",)),
        ("I10", ((88, 100),), "single-coder", ("coder2",)),
    ]


def test_three_coders_merge_all_pairs():
    # C50.912: coder1 (16,44) ∩ coder2 (33,44) and coder1 ∩ coder3 (0,25); coder2 and coder3 do not touch,
    #   yet all three join transitively: (0, 44).
    # D22.71: coder1 (53,75) ∩ coder3 (66,75) → agreed (53,75); coder2's D22.72 (53,58) overlaps coder1's
    #   D22.71 → a conflict over (53,58), which the senior decides as D22.71 (53,58); that decision shares
    #   its code with the agreed (53,75) and overlaps it → joined: one annotation (53,75), senior in its sources.
    coders = {"coder1": [ann("coder1", "T1", "C50.912", (16, 44)), ann("coder1", "T2", "D22.71", (53, 75))],
              "coder2": [ann("coder2", "T1", "C50.912", (33, 44)), ann("coder2", "T2", "D22.72", (53, 58))],
              "coder3": [ann("coder3", "T1", "C50.912", (0, 25)), ann("coder3", "T2", "D22.71", (66, 75))]}
    merged = merge_report(report(coders, [ann("senior", "T1", "D22.71", (53, 58))]))
    assert merged.status == "final"
    assert [(a.id, a.code, a.fragments, a.sources, a.rule, a.source_ids) for a in merged.annotations] == [
        ("T1", "C50.912", ((0, 44),), ("coder1", "coder2", "coder3"), "agreed",
         ("coder1:T1", "coder2:T1", "coder3:T1")),
        ("T2", "D22.71", ((53, 75),), ("coder1", "coder3", "senior"), "agreed",
         ("coder1:T2", "coder3:T2", "senior:T1")),
    ]
    assert [(d.kind, d.region, d.outcome, d.senior_codes, len(d.annotations)) for d in merged.disputes] == [
        ("conflict", ((53, 58),), "kept", ("D22.71",), 1)]


def test_final_ids_follow_start_then_code():
    coders = {c: [ann(c, "T1", "C44.90", (66, 75)), ann(c, "T2", "C50.919", (16, 44)), ann(c, "T3", "D22.71", (53, 58)),
                  ann(c, "T4", "C50.912", (16, 25))]
              for c in ("coder1", "coder2")}
    merged = merge_report(report(coders))
    # C50.912 (16,25) and C50.919 (16,44) overlap with different codes, but each is agreed by the other coder;
    # by start: 16 (C50.912 before C50.919 by code), 53, 66 — not code order (C44.90 would come first)
    assert [(a.id, a.code, a.start) for a in merged.annotations] == [
        ("T1", "C50.912", 16), ("T2", "C50.919", 16), ("T3", "D22.71", 53), ("T4", "C44.90", 66)]


def test_one_coders_own_annotations_never_agree_or_conflict_with_each_other():
    # coder1 marks the carcinoma twice with C50.912 and once with C50.911, coder2 marks nothing there:
    # one unmatched region (16, 44), not an agreement and not a conflict
    coders = {"coder1": [ann("coder1", "T1", "C50.912", (16, 44)), ann("coder1", "T2", "C50.912", (33, 44)),
                         ann("coder1", "T3", "C50.911", (16, 25))],
              "coder2": [ann("coder2", "T1", "I10", (88, 100))]}
    merged = merge_report(report(coders))
    assert merged.annotations == []
    assert [(d.kind, d.region, len(d.annotations)) for d in merged.disputes] == [
        ("unmatched", ((16, 44),), 3), ("unmatched", ((88, 100),), 1)]


# ---------------------------------------------------------------- a whole round


def mixed_round() -> Round:
    """r1 final (agreed + senior-kept), r2 pending, r3 single-coder, r4 dropped unmatched."""
    r1 = report({"coder1": [ann("coder1", "T1", "C50.912", (0, 25)), ann("coder1", "T2", "D22.71", (53, 75))],
                 "coder2": [ann("coder2", "T1", "C50.912", (16, 44)), ann("coder2", "T2", "D22.72", (53, 75))]},
                senior=[ann("senior", "T1", "D22.71", (53, 58))],
                truth=[ann("truth", "T1", "C50.912", (16, 44)), ann("truth", "T2", "D22.71", (53, 58)),
                       ann("truth", "T3", "I10", (88, 100))])
    r2 = report({"coder1": [ann("coder1", "T1", "C50.912", (16, 44), report_id="r2")],
                 "coder3": [ann("coder3", "T1", "C50.911", (16, 44), report_id="r2")]}, report_id="r2",
                truth=[ann("truth", "T1", "C50.911", (16, 44), report_id="r2")])
    r3 = report({"coder2": [ann("coder2", "T1", "I10", (88, 100), report_id="r3")]}, report_id="r3",
                truth=[ann("truth", "T1", "I10", (88, 100), report_id="r3")])
    r4 = report({"coder2": [ann("coder2", "T1", "I10", (88, 100), report_id="r4")],
                 "coder3": [ann("coder3", "T1", "I10", (88, 100), report_id="r4"),
                            ann("coder3", "T2", "D22.72", (66, 75), report_id="r4")]}, senior=[], report_id="r4")
    return make_round(r1, r2, r3, r4)


def test_every_coder_annotation_is_accounted_for_once():
    result = merge_round(mixed_round())
    # coder annotations: r1 4, r2 2, r3 1, r4 3 = 10
    #   in final annotations: r1 coder1:T1+coder2:T1, r3 coder2:T1, r4 coder2:T1+coder3:T1 = 5
    #   in disputes: r1 2 (D22.71 vs D22.72), r2 2 (pending), r4 1 (D22.72 unmatched, dropped) = 5
    assert result.counts["coder_annotations"] == {
        "total": 10, "in_final_annotations": 5, "agreed_in_pending_reports": 0, "in_disputes": 5,
        "accounted_for": 10}
    assert result.counts["reports"] == {"total": 4, "final": 2, "pending": 1, "single-coder": 1}
    assert result.counts["final_annotations"] == {
        "total": 4, "agreed": 2, "senior-kept": 1, "senior-added": 0, "single-coder": 1}
    assert result.counts["disputes"] == {
        "total": 3, "conflict": {"kept": 1, "dropped": 0, "pending": 1},
        "unmatched": {"kept": 0, "dropped": 1, "pending": 0}, "kept": 1, "dropped": 1, "pending": 1}
    assert result.pending == ["r2"]


def test_merge_quality_against_hand_made_truth():
    result = merge_round(mixed_round())
    quality = merge_quality(result, mixed_round())
    # evaluated: r1, r3 (r2 pending; r4 has no truth)
    #   final (report, code): r1 C50.912, r1 D22.71, r3 I10 = 3; truth: r1 C50.912, D22.71, I10, r3 I10 = 4
    #   tp 3, fp 0, fn 1 (r1 I10): P = 1, R = 3/4, F1 = 2·0.75/1.75 = 6/7 = 0.857143
    # spans: truth r1 C50.912 (16,44) vs final (0,44): overlap only; r1 D22.71 (53,58) exact; r1 I10 none;
    #   r3 I10 exact → truth matched exactly 2/4, by overlap 3/4; finals matched exactly 2/3, by overlap 3/3
    assert quality == {
        "reports_with_truth": 3, "reports_evaluated": 2, "pending_reports": 1,
        "truth_annotations": 4, "final_annotations": 3,
        "code": {"true_positives": 3, "false_positives": 0, "false_negatives": 1,
                 "precision": 1.0, "recall": 0.75, "f1": 0.857143},
        "exact_span": {"truth_matched": 0.5, "final_matched": 0.666667},
        "overlap": {"truth_matched": 0.75, "final_matched": 1.0},
    }


# ---------------------------------------------------------------- writing


def read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_write_merge_files_and_columns(tmp_path):
    rnd = mixed_round()
    summary = write_merge(merge_round(rnd), rnd, tmp_path)
    assert sorted(read_tree(tmp_path)) == [
        "annotations.csv", "annotations.parquet", "brat/r1.ann", "brat/r1.txt", "brat/r3.ann", "brat/r3.txt",
        "brat/r4.ann", "brat/r4.txt", "brat/round.toml", "disputes.csv", "merge_summary.json", "pending.txt",
        "reports.parquet"]
    assert (tmp_path / "pending.txt").read_text() == "r2\n"
    reports = pq.read_table(tmp_path / "reports.parquet").to_pylist()
    assert [(r["report_id"], r["status"]) for r in reports] == [
        ("r1", "final"), ("r2", "pending"), ("r3", "single-coder"), ("r4", "final")]
    assert reports[0]["text"] == rnd.reports["r1"].text and reports[0]["n_final"] == 2
    assert (tmp_path / "brat/r1.ann").read_text() == (
        "T1\tDiagnosis 0 44\tInvasive ductal carcinoma of the left breast\n#1\tAnnotatorNotes T1\tC50.912\n"
        "T2\tDiagnosis 53 58\tnevus\n#2\tAnnotatorNotes T2\tD22.71\n")
    csv_lines = (tmp_path / "annotations.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(ANNOTATION_COLUMNS)
    assert csv_lines[1] == ("round-t,r1,T1,C50.912,0,44,0 44,Invasive ductal carcinoma of the left breast,"
                            "coder1+coder2,agreed,coder1:T1+coder2:T1")
    assert len(csv_lines) == 1 + 4  # r1 2, r3 1, r4 1
    table = pq.read_table(tmp_path / "annotations.parquet")
    assert table.column_names == list(ANNOTATION_COLUMNS)
    assert table.to_pylist()[1]["source_ids"] == "senior:T1"  # r1 T2, the senior's D22.71
    disputes = (tmp_path / "disputes.csv").read_text().splitlines()
    assert disputes[1] == ("round-t,r1,53,75,53 75,nevus of the right leg,conflict,kept,D22.71,coder1+coder2,"
                           "coder1:D22.71+coder2:D22.72,coder1:T2+coder2:T2")
    assert len(disputes) == 1 + 3
    assert json.loads((tmp_path / "merge_summary.json").read_text()) == summary
    assert summary["quality"]["code"]["f1"] == 0.857143


def test_writing_twice_gives_identical_bytes(tmp_path):
    rnd = mixed_round()
    write_merge(merge_round(rnd), rnd, tmp_path / "a")
    first = read_tree(tmp_path / "a")
    write_merge(merge_round(rnd), rnd, tmp_path / "a")
    write_merge(merge_round(rnd), rnd, tmp_path / "b")
    assert read_tree(tmp_path / "a") == first == read_tree(tmp_path / "b")


def test_a_report_that_becomes_pending_leaves_the_merged_brat(tmp_path):
    rnd = mixed_round()
    write_merge(merge_round(rnd), rnd, tmp_path)
    rnd.reports["r4"].senior = None  # r4 has a dispute, so without the senior it is pending
    write_merge(merge_round(rnd), rnd, tmp_path)
    assert not (tmp_path / "brat/r4.ann").exists() and not (tmp_path / "brat/r4.txt").exists()
    assert (tmp_path / "pending.txt").read_text() == "r2\nr4\n"


def test_write_merge_replaces_the_folder_whole_with_its_queue(tmp_path):
    out = tmp_path / "merged" / "round-t"
    out.mkdir(parents=True)
    (out / "notes-from-last-week.txt").write_text("not part of a merge")
    rnd = mixed_round()
    write_merge(merge_round(rnd), rnd, out, queue=True)
    tree = read_tree(out)
    assert "notes-from-last-week.txt" not in tree  # the folder is the merge's alone
    assert sorted(n for n in tree if n.startswith("adjudication/")) == [
        "adjudication/README.txt", "adjudication/annotation.conf", "adjudication/r2.ann", "adjudication/r2.txt",
        "adjudication/visual.conf"]
    rnd.reports["r2"].senior = [ann("senior", "T1", "C50.911", (16, 44), report_id="r2")]  # decided: no queue
    write_merge(merge_round(rnd), rnd, out, queue=True)
    assert not (out / "adjudication").exists() and (out / "pending.txt").read_text() == ""
    assert sorted(p.name for p in out.parent.iterdir()) == ["round-t"]  # no scratch left beside it


def test_merging_the_merged_output_is_idempotent(tmp_path):
    rnd = mixed_round()
    first = merge_round(rnd)
    write_merge(first, rnd, tmp_path / "once")
    again = load_round(tmp_path / "once/brat")
    assert again.quarantined == []
    second = merge_round(again)
    write_merge(second, again, tmp_path / "twice")

    def content(result):
        return {rid: [(a.id, a.code, a.fragments, a.text) for a in r.annotations]
                for rid, r in result.reports.items() if r.status != "pending"}

    assert content(second) == content(first)
    assert (tmp_path / "twice/brat").is_dir()
    assert read_tree(tmp_path / "twice/brat") == read_tree(tmp_path / "once/brat")


# ---------------------------------------------------------------- a synthetic round


def test_accounting_on_a_synthetic_round(tmp_path):
    synth = pytest.importorskip("hiericd_core.synth")
    synth.generate_round(tmp_path / "round", 300, 11)
    rnd = load_round(tmp_path / "round")
    result = merge_round(rnd)  # asserts that each coder annotation is in exactly one place
    counts = result.counts
    coder_total = sum(len(a) for r in rnd.reports.values() for a in r.coders.values())
    assert counts["coder_annotations"]["accounted_for"] == coder_total > 300
    assert counts["reports"]["total"] == len(rnd.reports) == 300
    for rid, merged in result.reports.items():
        source = rnd.reports[rid]
        assert (merged.status == "pending") == (source.senior is None and bool(merged.disputes))
        pending_disputes = [d.outcome == "pending" for d in merged.disputes]
        assert all(pending_disputes) if merged.status == "pending" else not any(pending_disputes)
        assert [a.id for a in merged.annotations] == [f"T{i}" for i in range(1, len(merged.annotations) + 1)]
        for a in merged.annotations:
            assert a.text == covered_text(source.text, a.fragments)
            assert a.fragments == normalize_fragments(a.fragments)
    summary = write_merge(result, rnd, tmp_path / "merged")
    rows = (tmp_path / "merged/annotations.csv").read_text().count("\n") - 1
    assert rows == counts["final_annotations"]["total"]
    quality = summary["quality"]
    assert quality["reports_evaluated"] + quality["pending_reports"] == quality["reports_with_truth"]
    assert 0.9 < quality["code"]["f1"] <= 1.0  # about 0.97 with the default synth settings
