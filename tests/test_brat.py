"""Tests for hiericd_core.brat: the BRAT standoff parser and writer.

Expected numbers come from the fixtures' READMEs and from grep, e.g.
``cat tests/fixtures/brat/brat-examples/*/*.ann | grep -c '^T'`` -> 84.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiericd_core.brat import (
    Attribute,
    BratError,
    Document,
    Equivalence,
    Event,
    Normalization,
    Note,
    Problem,
    Relation,
    TextBound,
    format_ann,
    format_record,
    iter_documents,
    parse_ann,
    read_ann,
    read_document,
    read_spans,
    read_text,
    references,
    write_ann,
    write_document,
)
from hiericd_core.brat_parse import _fast_lines, _has_breaks, _parse_lines

FIXTURES = Path(__file__).parent / "fixtures"
BRAT_EXAMPLES = FIXTURES / "brat" / "brat-examples"
CODIESP_SAMPLE = FIXTURES / "codiesp-sample"
CODIESP_FULL = Path(__file__).parent.parent / "data" / "codiesp"
ALL_FIXTURE_ANNS = sorted((FIXTURES / "brat").rglob("*.ann")) + sorted(CODIESP_SAMPLE.rglob("*.ann"))


def kinds(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[type(record).__name__] = counts.get(type(record).__name__, 0) + 1
    return counts


# ------------------------------------------------------------- line grammar

TEXT = "Barack Obama was born in Hawaii. Merger of Google and YouTube.\n"
#       0         1         2         3         4         5         6
#       0123456789012345678901234567890123456789012345678901234567890123


def test_every_line_type_parses_to_its_record():
    ann = (
        "T1\tPerson 0 12\tBarack Obama\n"
        "T2\tGPE 25 31\tHawaii\n"
        "T3\tMerge 33 39\tMerger\n"
        "T4\tOrg 43 49;54 61\tGoogle YouTube\n"
        "#1\tAnnotatorNotes T1\tpresident\n"
        "A1\tNegated T2\n"
        "M1\tSpeculation T2\n"
        "A2\tSide T1 Left\n"
        "N1\tReference T1 Wikipedia:534366\tBarack Obama\n"
        "R1\tOrigin Arg1:T1 Arg2:T2\n"
        "E1\tMerge:T3 Org1:T4 Theme2:T1\n"
        "*\tEquiv T1 T2 T4\n"
        "#2\tAnnotatorNotes E1\tnote on an event\n"
    )
    records, problems = parse_ann(ann, TEXT)
    assert problems == []
    assert records == [
        TextBound("T1", "Person", ((0, 12),), "Barack Obama"),
        TextBound("T2", "GPE", ((25, 31),), "Hawaii"),
        TextBound("T3", "Merge", ((33, 39),), "Merger"),
        TextBound("T4", "Org", ((43, 49), (54, 61)), "Google YouTube"),
        Note("#1", "AnnotatorNotes", "T1", "president"),
        Attribute("A1", "Negated", "T2"),
        Attribute("M1", "Speculation", "T2"),
        Attribute("A2", "Side", "T1", "Left"),
        Normalization("N1", "Reference", "T1", "Wikipedia", "534366", "Barack Obama"),
        Relation("R1", "Origin", (("Arg1", "T1"), ("Arg2", "T2"))),
        Event("E1", "Merge", "T3", (("Org1", "T4"), ("Theme2", "T1"))),
        Equivalence("*", "Equiv", ("T1", "T2", "T4")),
        Note("#2", "AnnotatorNotes", "E1", "note on an event"),
    ]
    assert records[3].is_discontinuous and (records[3].start, records[3].end) == (43, 61)
    assert format_ann(records) == ann


def test_forward_references_resolve_after_the_whole_file():
    ann = "#1\tAnnotatorNotes T1\tC50.9\nE1\tMerge:T3 Org:T1\nT1\tPerson 0 6\tBarack\nT3\tMerge 33 39\tMerger\n"
    records, problems = parse_ann(ann, TEXT)
    assert problems == []
    assert [r.id for r in records] == ["#1", "E1", "T1", "T3"]


def test_out_of_order_fragments_keep_their_written_order():
    records, problems = parse_ann("T1\tOrg 54 61;43 49\tYouTube Google\n", TEXT)
    assert problems == []
    assert records[0].fragments == ((54, 61), (43, 49))
    assert (records[0].start, records[0].end) == (43, 61)


def test_values_with_spaces_colons_and_tabs_are_kept():
    ann = ("T1\tP 0 6\tBarack\n"
           "A1\tSide T1 upper left\n"
           "N1\tRef T1 UMLS:C0001:x\n"
           "#1\tAnnotatorNotes T1\tcode\tC50 9 \n")
    records, problems = parse_ann(ann, TEXT)
    assert problems == []
    assert records[1].value == "upper left"
    assert (records[2].resource, records[2].entry, records[2].text) == ("UMLS", "C0001:x", "")
    assert records[3].text == "code\tC50 9 "
    assert format_ann(records) == ann


def test_brat_quirks_are_kept_in_tail_and_written_back():
    # brat writes a TAB after relations and a space after argument-less events;
    # a CRLF file keeps its CRs; none of it is part of equality.
    ann = ("T1\tMerge 33 39\tMerger \r\n"
           "R1\tOrigin Arg1:T1 Arg2:T1x\t\r\n"
           "T1x\tP 0 6\tBarack\r\n"
           "E1\tMerge:T1 \r\n"
           "#1\tAnnotatorNotes T1\t\r\n"
           "#2\tAnnotatorNotes T1\r\n"
           "#3\tAnnotatorNotes T1\tC50\r\n")
    records, problems = parse_ann(ann, TEXT)
    assert problems == []
    assert [r.tail for r in records] == [" \r", "\t\r", "\r", " \r", "\t\r", "\r", "\r"]
    assert records[0] == TextBound("T1", "Merge", ((33, 39),), "Merger")
    assert records[1] == Relation("R1", "Origin", (("Arg1", "T1"), ("Arg2", "T1x")))
    assert records[6].text == "C50"
    assert format_ann(records) == ann


def test_blank_lines_are_skipped_but_counted():
    records, problems = parse_ann("\nT1\tP 0 6\tBarack\n \r\n\nT2\tX 5 3\t\n", TEXT)
    assert [r.id for r in records] == ["T1"]
    assert [(p.line, p.reason) for p in problems] == [(5, "fragment 5 3: end < start")]


# ------------------------------------------------------------- problems

GOOD = "T1\tPerson 0 12\tBarack Obama\nT2\tGPE 25 31\tHawaii\n"
BAD_LINES = [
    ("T9\tX 5 3\t", "end < start"),
    ("T9\tX 0 99\tBarack", "runs past the end of the text (63 characters)"),
    ("T9\tX -1 3\tBar", "negative offset -1"),
    ("T9\tX a 3\tBar", "offset 'a' is not a non-negative integer"),
    ("T9\tX 0 3.0\tBar", "offset '3.0' is not a non-negative integer"),
    ("T9\tX 00 3\tBar", "offset '00' is not a non-negative integer"),
    ("T9\tX \u0660 3\tBar", "is not a non-negative integer"),  # Arabic-Indic zero: isdigit() but not ASCII
    ("T9\tX 0 6\tBarack Obama", "does not match the document text 'Barack'"),
    ("T9\tX 0 6\tBarak", "does not match the document text 'Barack'"),
    ("T9\tX 0 6;7 12\tBarackObama", "does not match the document text 'Barack Obama'"),
    ("T9\tX 0 6", "no TAB before its text"),
    ("T9\tX 7 12;0 7\tObama Barack ", "overlaps or touches the earlier fragment 7 12"),
    ("T9\tX 0 6;3 8\tBarack ack O", "overlaps"),
    ("T9\tX\tfoo", "malformed T line"),
    ("#9\tAnnotatorNotes T7\tx", "refers to unknown id 'T7'"),
    ("A9\tNegated T7", "refers to unknown id 'T7'"),
    ("M9\tNegated T7", "refers to unknown id 'T7'"),
    ("N9\tReference T7 Wiki:1\tx", "refers to unknown id 'T7'"),
    ("R9\tRel Arg1:T1 Arg2:T7", "refers to unknown id 'T7'"),
    ("E9\tGPE:T2 Theme:T7", "refers to unknown id 'T7'"),
    ("E9\tX:T7", "refers to unknown id 'T7'"),
    ("*\tEquiv T1 T7", "refers to unknown id 'T7'"),
    ("E9\tGPE:#8", "refers to unknown id '#8'"),
    ("E9\tPerson:T2", "differs from its trigger's label 'GPE'"),
    ("E9\tEq:A8", "refers to unknown id 'A8'"),
    ("T1\tGPE 25 31\tHawaii", "duplicate id T1 (first on line 1)"),
    ("T9 GPE 25 31 Hawaii", "no TAB after the id"),
    ("X9\tfoo T1", "unknown line type"),
    ("\tGPE 25 31\tHawaii", "unknown line type"),
    ("Tx\tGPE 25 31\tHawaii", "invalid id 'Tx'"),
    ("*1\tEquiv T1 T2", "invalid id '*1'"),
    ("\ufeffT9\tGPE 25 31\tHawaii", "byte-order mark"),
    ("#9\tAnnotatorNotes T1\tline\u2028break", "U+2028, which brat reads as a line break"),
    ("#9\tAnnotatorNotes T1\tnel\x85", "U+0085"),
    ("#9\tAnnotatorNotes T1\tlone\rcr", "U+000D"),
    ("#9\tAnnotatorNotes\tx", "malformed note"),
    ("#9\tAnnotatorNotes T1 T2\tx", "malformed note"),
    ("#9\tAnnotatorNotes \tx", "malformed note"),
    ("#9\t T1\tx", "malformed note"),
    ("A9\tNegated", "malformed attribute"),
    ("A9\tNegated  T1", "malformed attribute"),
    ("A9\tSide T1\tLeft", "malformed attribute"),
    ("N9\tReference T1 Wikipedia\tx", "malformed normalization"),
    ("N9\tReference T1 :534366\tx", "malformed normalization"),
    ("R9\tRel Arg1:T1", "malformed relation"),
    ("R9\tRel Arg1:T1 Arg2:T2 Arg3:T2", "malformed relation"),
    ("R9\tRel Arg1:T1 Arg1:T2", "same role 'Arg1'"),
    ("R9\tRel Arg1 T1", "malformed relation"),
    ("E9\tGPE T2", "malformed event"),
    ("E9\tGPE:T2 Theme", "malformed event"),
    ("E9\tGPE:T2:T1", "malformed event"),
    ("*\tEquiv T1", "malformed equivalence"),
    ("*\tEquiv", "malformed equivalence"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_each_bad_line_is_one_problem_on_its_line_and_the_rest_is_kept(line, reason):
    ann = GOOD + line + "\n#1\tAnnotatorNotes T2\tok\n"
    records, problems = parse_ann(ann, TEXT, file="doc.ann")
    assert len(problems) == 1, problems
    assert (problems[0].file, problems[0].line, problems[0].content) == ("doc.ann", 3, line)
    assert reason in problems[0].reason
    assert [r.id for r in records] == ["T1", "T2", "#1"]


def test_records_referring_to_a_quarantined_record_are_quarantined_too():
    ann = ("T1\tP 0 6\tBarak\n"  # mismatch
           "#1\tAnnotatorNotes T1\tC50\n"
           "T3\tMerge 33 39\tMerger\n"
           "E2\tMerge:T3 Theme:E1\n"  # refers forward to E1, which falls because of T1
           "E1\tMerge:T3 Theme:T1\n"
           "A1\tNegated E2\n"
           "T2\tGPE 25 31\tHawaii\n")
    records, problems = parse_ann(ann, TEXT)
    assert [r.id for r in records] == ["T3", "T2"]
    assert [(p.line, p.reason) for p in problems] == [
        (1, "text 'Barak' does not match the document text 'Barack' at 0 6"),
        (2, "refers to T1, which is quarantined (line 1)"),
        (4, "refers to E1, which is quarantined (line 5)"),
        (5, "refers to T1, which is quarantined (line 1)"),
        (6, "refers to E2, which is quarantined (line 4)"),
    ]


def test_without_document_text_only_the_form_is_checked():
    records, problems = parse_ann("T1\tP 0 6\tBarak!\nT2\tP 0 6\tBarak\nT3\tP 0 999\tx\n", None)
    assert [r.id for r in records] == ["T1"]
    assert [p.line for p in problems] == [2, 3]
    assert "is not 6 characters long" in problems[0].reason


# ------------------------------------------------------------- text: BOM, CRLF, code points


def test_offsets_count_bom_and_cr_as_characters(tmp_path):
    raw = "\ufeffab\r\ncd\u00e9\r\n".encode()
    (tmp_path / "d.txt").write_bytes(raw)
    # brat's text: U+FEFF a b CR LF c d é CR LF -> "cd" is at 5..7, "é" at 7..8
    (tmp_path / "d.ann").write_bytes("T1\tX 1 3\tab\nT2\tX 5 8\tcdé\nT3\tX 0 1\t\ufeff\n".encode())
    assert read_text(tmp_path / "d.txt") == "\ufeffab\r\ncd\u00e9\r\n"
    document, problems = read_document(tmp_path / "d.ann")
    assert problems == []
    assert document.text == "\ufeffab\r\ncd\u00e9\r\n"
    assert [r.text for r in document.records] == ["ab", "cdé", "\ufeff"]
    # offsets computed with the BOM stripped, or with CRLF read as LF, do not match
    for ann in ("T1\tX 0 2\tab\n", "T1\tX 4 6\tcd\n"):
        _, problems = parse_ann(ann, document.text)
        assert [p.line for p in problems] == [1]


def test_a_span_ending_in_cr_of_a_crlf_text_round_trips():
    text = "ab\r\ncd\r\n"
    ann = "T1\tX 0 3\tab\r\nT2\tX 4 6\tcd\r\n"
    records, problems = parse_ann(ann, text)
    assert problems == []
    assert [(r.text, r.tail) for r in records] == [("ab\r", ""), ("cd", "\r")]
    assert format_ann(records) == ann


def test_codiesp_offsets_are_code_points_not_bytes():
    # The U+00A0 and U+0082 documents have annotations after the character
    # (2 UTF-8 bytes each), so byte offsets would shift them by one or more.
    for name in ("train/S0211-69952011000100019-1", "train/S0211-69952015000200015-1",
                 "train/S0376-78922009000100011-1", "dev/S0210-48062006000300015-1"):
        document, problems = read_document(CODIESP_SAMPLE / f"{name}.ann")
        assert problems == []
        special = min(i for i, c in enumerate(document.text) if c in "\u00a0\x82")
        after = [r for r in document.records if isinstance(r, TextBound) and r.start > special]
        assert after
        as_bytes = (CODIESP_SAMPLE / f"{name}.txt").read_bytes().decode("latin-1")
        _, byte_problems = parse_ann(format_ann(after), as_bytes)
        assert len(byte_problems) == len(after)


def test_codiesp_out_of_order_fragments_and_text_without_final_newline():
    document, _ = read_document(CODIESP_SAMPLE / "train" / "S0004-06142005000900013-1.ann")
    t3 = next(r for r in document.records if r.id == "T3")
    assert t3 == TextBound("T3", "Procedure", ((1773, 1782), (222, 228)), "resección vejiga")
    document, problems = read_document(CODIESP_SAMPLE / "dev" / "S0212-16112005000600011-1.txt")
    assert problems == [] and len(document.records) == 68  # grep -c '' -> 34 T + 34 #
    assert document.text.endswith("(tabla I).")


# ------------------------------------------------------------- files


def test_non_utf8_ann_reports_the_bad_line_and_keeps_the_others(tmp_path):
    (tmp_path / "d.txt").write_text("Barack Obama")
    (tmp_path / "d.ann").write_bytes(b"T1\tP 0 6\tBarack\n#1\tAnnotatorNotes T1\tcaf\xe9\nT2\tP 7 12\tObama\n")
    document, problems = read_document(tmp_path / "d.ann")
    assert [r.id for r in document.records] == ["T1", "T2"]
    assert [(p.file, p.line) for p in problems] == [(str(tmp_path / "d.ann"), 2)]
    assert "not UTF-8: byte 0xe9" in problems[0].reason


def test_non_utf8_text_gives_no_document(tmp_path):
    (tmp_path / "d.txt").write_bytes(b"line one\nna\xefve\n")
    (tmp_path / "d.ann").write_text("T1\tP 0 4\tline\n")
    document, problems = read_document(tmp_path / "d.ann")
    assert document is None
    assert [(p.file, p.line) for p in problems] == [(str(tmp_path / "d.txt"), 2)]
    with pytest.raises(BratError, match="d.txt:2: not UTF-8"):
        read_text(tmp_path / "d.txt")


def test_ann_without_txt_and_txt_without_ann(tmp_path):
    (tmp_path / "a.ann").write_text("T1\tP 0 1\tx\n")
    (tmp_path / "b.txt").write_text("text")
    document, problems = read_document(tmp_path / "a.ann")
    assert document is None
    assert problems == [Problem(str(tmp_path / "a.ann"), None,
                                "annotation file without text: a.txt is missing")]
    document, problems = read_document(tmp_path / "b.ann")
    assert problems == [] and document.records == () and document.ann_path is None
    assert document.text == "text" and document.doc_id == "b"
    with pytest.raises(FileNotFoundError):
        read_document(tmp_path / "c.ann")


def test_strict_mode_raises_one_error_listing_every_problem(tmp_path):
    (tmp_path / "d.txt").write_text(TEXT)
    (tmp_path / "d.ann").write_text(GOOD + "T3\tX 5 3\t\nA1\tNeg T8\n")
    with pytest.raises(BratError) as caught:
        read_document(tmp_path / "d.ann", strict=True)
    message = str(caught.value)
    assert f"{tmp_path / 'd.ann'}:3: fragment 5 3: end < start" in message
    assert f"{tmp_path / 'd.ann'}:4: refers to unknown id 'T8'" in message
    assert len(caught.value.problems) == 2
    with pytest.raises(BratError):
        list(iter_documents(tmp_path, strict=True))


def test_iter_documents_walks_sorted_pairs_and_skips_hidden(tmp_path):
    for rel in ("b/2.txt", "b/1.txt", "a/z.txt", "a/sub/y.txt", "top.txt", ".hidden/h.txt", "a/.x.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("abc")
    (tmp_path / "b" / "1.ann").write_text("T1\tX 0 1\ta\n")
    (tmp_path / "b" / "3.ann").write_text("")
    seen = [(d.doc_id if d else None, [p.line for p in ps], d and len(d.records))
            for d, ps in iter_documents(tmp_path)]
    assert seen == [("top", [], 0), ("z", [], 0), ("y", [], 0), ("1", [], 1), ("2", [], 0), (None, [None], None)]
    assert [d.txt_path.relative_to(tmp_path).as_posix() for d, _ in iter_documents(tmp_path) if d] == [
        "top.txt", "a/z.txt", "a/sub/y.txt", "b/1.txt", "b/2.txt"]


def test_fixture_records_are_read_as_brat_wrote_them():
    document, problems = read_document(BRAT_EXAMPLES / "news" / "000-introduction.ann")
    assert problems == []
    by_id = {r.id: r for r in document.records}
    assert by_id["T2"] == TextBound("T2", "Money", ((456, 468),), "$100 million")
    assert by_id["E1"] == Event("E1", "Transfer-money", "T3", (
        ("Giver-Arg", "T1"), ("Money-Arg", "T2"), ("Beneficiary-Arg", "T4"), ("Recipient-Arg", "T6")))
    assert by_id["R2"] == Relation("R2", "Origin", (("Arg1", "T6"), ("Arg2", "T7"))) and by_id["R2"].tail == "\t"
    assert by_id["#1"] == Note("#1", "AnnotatorNotes", "T2", "100000000 USD")
    assert by_id["A2"] == Attribute("A2", "Individual", "T4", None)
    assert by_id["A5"] == Attribute("A5", "Confidence", "E1", "High")
    assert by_id["N1"] == Normalization("N1", "Reference", "T5", "Wikipedia", "64488", "Carlos Salinas de Gortari")
    assert document.line_of("N1") == 17 and document.line_of("T1") == 1
    document, _ = read_document(BRAT_EXAMPLES / "news" / "060-relation_annotation.ann")
    assert Equivalence("*", "Alias", ("T3", "T4", "T5")) in document.records
    document, _ = read_document(BRAT_EXAMPLES / "news" / "080-event-annotation.ann")
    assert Event("E3", "Merge-org", "T10", (("Org-Arg", "T6"), ("Org-Arg2", "T7"), ("Org-Arg3", "T8"),
                                            ("Org-Arg4", "T9"))) in document.records
    document, _ = read_document(BRAT_EXAMPLES / "bio" / "000-introduction.ann")
    assert Event("E2", "Negative_regulation", "T3", (("Cause", "E1"), ("Theme", "E3"))) in document.records
    assert references(document.records[4]) == ("T3", "E1", "E3")


def test_brat_examples_hold_the_counts_of_their_readme():
    # README table / grep -c '^X' over brat-examples/*/*.ann: #5 *1 A15 E21 N1 R5 T84
    records = [r for d, ps in iter_documents(BRAT_EXAMPLES) if not ps for r in d.records]
    assert kinds(records) == {"Note": 5, "Equivalence": 1, "Attribute": 15, "Event": 21,
                              "Normalization": 1, "Relation": 5, "TextBound": 84}


@pytest.mark.parametrize("ann", ALL_FIXTURE_ANNS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_round_trips_byte_identical(ann):
    document, problems = read_document(ann)
    assert problems == []
    assert format_ann(document.records, final_newline=document.final_newline).encode("utf-8") == ann.read_bytes()


def test_empty_ann_file_is_a_document_without_records():
    document, problems = read_document(BRAT_EXAMPLES / "news" / "010-navigation.ann")
    assert problems == [] and document.records == () and document.ann_path is not None


def test_missing_final_newline_round_trips(tmp_path):
    (tmp_path / "d.txt").write_text(TEXT)
    (tmp_path / "d.ann").write_text("T1\tP 0 6\tBarack\n#1\tAnnotatorNotes T1\tC50")
    document, problems = read_document(tmp_path / "d.ann")
    assert problems == [] and document.final_newline is False
    write_ann(tmp_path / "e.ann", document.records, final_newline=document.final_newline)
    assert (tmp_path / "e.ann").read_bytes() == (tmp_path / "d.ann").read_bytes()


@pytest.mark.skipif(not CODIESP_FULL.is_dir(), reason="data/codiesp is not in this checkout")
def test_all_of_codiesp_reads_without_problems_and_round_trips():
    # Expected counts from data/codiesp/README.md ("Counts"), train + dev.
    documents = t = discontinuous = out_of_order = notes = 0
    for split in ("train", "dev"):
        for document, problems in iter_documents(CODIESP_FULL / split):
            assert problems == []
            documents += 1
            assert format_ann(document.records).encode() == document.ann_path.read_bytes()
            for r in document.records:
                if isinstance(r, TextBound):
                    t += 1
                    discontinuous += r.is_discontinuous
                    out_of_order += list(r.fragments) != sorted(r.fragments)
                else:
                    notes += isinstance(r, Note)
    assert (documents, t, notes, discontinuous, out_of_order) == (750, 9181 + 4477, 9181 + 4477, 1787 + 966, 65 + 33)


# ------------------------------------------------------------- writer


def test_write_document_round_trips_and_leaves_no_temporary_files(tmp_path):
    text = "\ufeffTumor mass\r\nleft breast\r\n"
    records = [TextBound("T1", "Diagnosis", ((13, 24), (1, 6)), "left breast Tumor"),
               Note("#1", "AnnotatorNotes", "T1", "C50.912"),
               Attribute("A1", "Side", "T1", "Left")]
    ann = write_document(tmp_path / "doc", records, text=text)
    assert ann == tmp_path / "doc.ann"
    assert (tmp_path / "doc.txt").read_bytes() == text.encode()
    document, problems = read_document(ann)
    assert problems == [] and list(document.records) == records and document.text == text
    write_document(ann, records[:1])  # replaces the file
    assert read_document(ann)[0].records == (records[0],)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.ann", "doc.txt"]


@pytest.mark.parametrize("records", [
    [TextBound("T1", "Two words", ((0, 1),), "T")],
    [TextBound("T1", "X", ((0, 1),), "T"), Note("#1", "AnnotatorNotes", "T1", "two\nlines")],
    [TextBound("T1", "X", ((0, 1),), "T"), Note("#1", "AnnotatorNotes", "T1", "C50\r")],  # CR reads back as tail
    [Note("#1", "AnnotatorNotes", "T9", "dangling")],
    [TextBound("T1", "X", ((0, 1),), "T"), TextBound("T1", "X", ((0, 1),), "T")],
    [TextBound("T1", "X", ((0, 2),), "Tu")],  # checked against the text: "Tx"
    [Relation("R1", "Rel", (("A", "T1"), ("A", "T1")))],
])
def test_writer_refuses_records_that_would_not_read_back(tmp_path, records):
    (tmp_path / "doc.ann").write_text("untouched")
    with pytest.raises(ValueError):
        write_document(tmp_path / "doc", records, text="Tx")
    assert (tmp_path / "doc.ann").read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.ann"]


def test_format_record_refuses_line_breaks():
    with pytest.raises(ValueError, match="line break"):
        format_record(Note("#1", "AnnotatorNotes", "T1", "a\u2028b"))
    with pytest.raises(TypeError):
        format_record("T1\tX 0 1\tx")


# ------------------------------------------------------------- fuzzing

BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
SAFE = st.characters(codec="utf-8", exclude_characters=BREAKS)
TOKEN = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,6}", fullmatch=True)
FREE_TEXT = st.text(SAFE, max_size=8)  # note / normalization text: tabs, spaces, anything but breaks


@st.composite
def documents(draw):
    """A random text and random valid records over it, in random order."""
    text = draw(st.text(st.one_of(st.sampled_from(" \t\n\r\ufeff\u00a0\x82ab"), SAFE), max_size=60))
    records: list = []
    for i in range(1, draw(st.integers(0, 5)) + 1):
        count = draw(st.integers(1, min(3, (len(text) + 1) // 2 or 1)))
        if count == 1:
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=2)))
        else:
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2 * count, max_size=2 * count,
                                        unique=True)))
        fragments = draw(st.permutations([(cuts[j], cuts[j + 1]) for j in range(0, len(cuts), 2)]))
        covered = " ".join(text[s:e] for s, e in fragments)
        if any(c in covered for c in BREAKS):
            continue
        records.append(TextBound(f"T{i}", draw(TOKEN), tuple(fragments), covered,
                                 draw(st.sampled_from(["", " ", "\t", "\r", " \t\r"]))))
    spans = list(records)
    ids = st.sampled_from([r.id for r in spans]) if spans else None
    for i in range(1, draw(st.integers(0, 8)) + 1 if spans else 1):
        kind = draw(st.sampled_from("#AMNRE*"))
        if kind == "#":
            note = draw(FREE_TEXT)
            tail = draw(st.sampled_from(["", "\r"] if note else ["", "\t", "\r", "\t\r", " "]))
            records.append(Note(f"#{i}", "AnnotatorNotes", draw(ids), note, tail))
        elif kind in "AM":
            value = draw(st.none() | st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9 :]{0,5}[A-Za-z0-9])?", fullmatch=True))
            records.append(Attribute(f"{kind}{i}", draw(TOKEN), draw(ids), value,
                                     draw(st.sampled_from(["", " ", "\t", "\r"]))))
        elif kind == "N":
            note = draw(FREE_TEXT)
            records.append(Normalization(f"N{i}", draw(TOKEN), draw(ids), draw(TOKEN),
                                         draw(st.from_regex(r"[A-Za-z0-9:.]{0,6}[A-Za-z0-9]", fullmatch=True)),
                                         note, "" if note else draw(st.sampled_from(["", "\t"]))))
        elif kind == "R":
            records.append(Relation(f"R{i}", draw(TOKEN), (("Arg1", draw(ids)), ("Arg2", draw(ids))),
                                    draw(st.sampled_from(["", "\t"]))))
        elif kind == "E":
            trigger = draw(st.sampled_from(spans))
            roles = draw(st.lists(st.sampled_from(["Theme", "Theme2", "Cause", "Org-Arg3"]), max_size=3))
            records.append(Event(f"E{i}", trigger.label, trigger.id, tuple((r, draw(ids)) for r in roles),
                                 draw(st.sampled_from(["", " "]))))
        else:
            members = draw(st.lists(ids, min_size=2, max_size=3))
            records.append(Equivalence("*", draw(TOKEN), tuple(members)))
    return text, draw(st.permutations(records))


@settings(max_examples=200, deadline=None)
@given(documents(), st.booleans())
def test_fuzz_format_then_parse_gives_the_same_records_and_bytes(document, final_newline):
    text, records = document
    ann = format_ann(records, final_newline=final_newline)
    parsed, problems = parse_ann(ann, text)
    assert problems == []
    assert parsed == list(records)
    assert [r.tail for r in parsed] == [r.tail for r in records]
    assert format_ann(parsed, final_newline=final_newline) == ann


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_fuzz_write_document_then_read_document(document):
    text, records = document
    with tempfile.TemporaryDirectory() as folder:
        ann = write_document(Path(folder) / "doc", records, text=text)
        back, problems = read_document(ann)
        assert problems == [] and list(back.records) == list(records) and back.text == text
        assert ann.read_bytes() == format_ann(records).encode()
        assert sorted(os.listdir(folder)) == ["doc.ann", "doc.txt"]


LINE = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=30)
PREFIXED = st.builds(lambda head, rest: head + rest,
                     st.sampled_from(["T1\t", "T2\t", "#1\t", "A1\t", "M1\t", "N1\t", "R1\t", "E1\t", "*\t",
                                      "T1\tX 0 1\t", "T2\tX 1 ", "R1\tR Arg1:", "E1\tX:T1 ", "*\tEq T1 "]),
                     LINE)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(LINE, PREFIXED), max_size=10), st.none() | st.text(max_size=20))
def test_fuzz_garbage_never_raises_and_every_line_is_a_record_or_one_problem(lines, doc_text):
    records, problems = parse_ann("\n".join(lines), doc_text, file="g.ann")
    numbers = [p.line for p in problems]
    assert len(numbers) == len(set(numbers))
    assert all(1 <= n <= len(lines) and lines[n - 1].strip() for n in numbers)
    assert len(records) + len(problems) == sum(1 for line in lines if line.strip())
    assert all(p.content == lines[p.line - 1] for p in problems)


BAD_TEMPLATES = [
    "T9001\tX 5 3\tab", "T9002\tX 0 {past}\tfoo", "T9003\tX -2 1\tx", "T9004\tX 0 1\t\x00toolong",
    "no tab here", "X9001\tfoo", "#9001\tAnnotatorNotes Z999\tx", "A9001\tNeg", "A9002\tNeg Z1",
    "N9001\tReference T1 nocolon", "R9001\tRel Arg1:Z1 Arg2:Z2", "E9001\tFoo", "E9002\tX:Z5", "*\tEquiv Z1",
    "*\tEquiv Z1 Z2", "T9005 X 0 1 x", "#9002\tAnnotatorNotes T1\tbad\u2029break",
]


@settings(max_examples=150, deadline=None)
@given(documents(), st.lists(st.tuples(st.integers(0, 20), st.sampled_from(BAD_TEMPLATES)), max_size=6))
def test_fuzz_inserted_bad_lines_are_reported_on_exactly_their_lines(document, inserts):
    text, records = document
    lines = format_ann(records).split("\n")[:-1] if records else []
    for position, template in inserts:
        lines.insert(min(position, len(lines)), template.format(past=len(text) + 1))
    bad_lines = sorted(n for n, line in enumerate(lines, 1) if line in
                       {t.format(past=len(text) + 1) for t in BAD_TEMPLATES})
    parsed, problems = parse_ann("\n".join(lines) + "\n", text)
    assert [p.line for p in problems] == bad_lines
    assert parsed == list(records)


def test_document_line_of_and_defaults():
    document = Document("d", "abc", (TextBound("T1", "X", ((0, 1),), "a"),), None, None, (3,))
    assert document.line_of("T1") == 3 and document.line_of("T2") is None


def test_writer_refuses_a_tail_that_would_not_read_back(tmp_path):
    # "#1<TAB>AnnotatorNotes T1<TAB><TAB>" reads back as the note text "<TAB>"
    records = [TextBound("T1", "X", ((0, 1),), "a"), Note("#1", "AnnotatorNotes", "T1", "", "\t\t")]
    with pytest.raises(ValueError, match="read back differently"):
        write_ann(tmp_path / "d.ann", records)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- fast path


def line_parser(text: str, doc_text: str | None) -> tuple[list, list[int], list[Problem]]:
    """The line-by-line parser alone: what the one-regex fast path must agree with."""
    return _parse_lines(enumerate(text.split("\n"), 1), doc_text, "f.ann", _has_breaks(text))


FAST_TEXT = "Tumor mass of the left breast.\r\nNo atypia; café. Ductal carcinoma in situ.\n"


def mostly(good, *bad: str):
    """``good`` nine times in ten, else one of ``bad``."""
    return st.sampled_from([good] * 9 * len(bad) + list(bad))


@st.composite
def near_fast_lines(draw):
    """T and note lines mostly in the form the fast path takes, some just off it, a few other lines."""
    size = len(FAST_TEXT)
    lines, t_ids = [], ["T9"]
    for number in range(1, draw(st.integers(0, 6)) + 1):
        kind = draw(st.sampled_from("TTT##Tx"))
        ident = draw(mostly(number, 1))  # now and then a duplicate id
        if kind == "T":
            s = draw(st.integers(0, size))
            e = draw(mostly(min(s + draw(st.integers(0, 12)), size), s - 1, size + 1, s))
            spans, covered = f"{s} {e}", FAST_TEXT[s:e]
            if draw(mostly(False, True)):  # a second fragment, maybe overlapping the first
                s2 = draw(st.integers(0, size))
                e2 = min(s2 + draw(st.integers(0, 5)), size)
                spans, covered = f"{spans};{s2} {e2}", f"{covered} {FAST_TEXT[s2:e2]}"
            spans = draw(mostly(spans, "0" + spans, spans.replace(" ", "  ")))
            covered = draw(mostly(covered, covered + " ", covered + "\r", covered[:-1]))
            label = draw(mostly("Diagnosis", "Dx\u00a0", "Dx\u2028", "é"))
            lines.append(f"T{ident}\t{label} {spans}\t{covered}")
            t_ids.append(f"T{ident}")
        elif kind == "#":
            target = draw(mostly(draw(st.sampled_from(t_ids[-3:])), "T9", "#1"))
            note = draw(mostly("C50.911", "", "a\tb", "x\r", " "))
            lines.append(f"#{ident}\tAnnotatorNotes {target}\t{note}")
        else:
            lines.append(draw(st.sampled_from(["", "A1\tNegated T1", "garbage", "T1 Dx 0 5 Tumor",
                                               "\ufeffT3\tX 0 1\tT"])))
    return "\n".join(lines) + draw(mostly("\n", ""))


@settings(max_examples=400, deadline=None)
@given(near_fast_lines(), st.booleans())
def test_fuzz_fast_path_agrees_with_the_line_parser(text, with_doc):
    doc_text = FAST_TEXT if with_doc else None
    records, _, problems = line_parser(text, doc_text)
    got, got_problems = parse_ann(text, doc_text, file="f.ann")
    assert got == records and [r.tail for r in got] == [r.tail for r in records]
    assert got_problems == problems


@settings(max_examples=60, deadline=None)
@given(near_fast_lines())
def test_fuzz_read_spans_and_read_ann_agree_with_read_document(text):
    with tempfile.TemporaryDirectory() as folder:
        ann, txt = Path(folder) / "d.ann", Path(folder) / "d.txt"
        ann.write_bytes(text.encode())
        txt.write_bytes(FAST_TEXT.encode())
        document, problems = read_document(ann)
        spans, span_problems = read_spans(ann, FAST_TEXT)
        assert spans == [(r.label, r.fragments) for r in document.records if isinstance(r, TextBound)]
        assert span_problems == problems
        again, again_problems = read_ann(ann, FAST_TEXT, txt)
        assert again == document and again_problems == problems


def test_fast_path_takes_the_usual_files_and_leaves_the_rest():
    text = "Tumor mass.\n"
    usual = "T1\tDiagnosis 0 10\tTumor mass\n#1\tAnnotatorNotes T1\tC50.911\nT2\tDiagnosis 0 5;6 10\tTumor mass\n"
    rows = _fast_lines(usual, text)
    assert rows[0] == ("T1", "Diagnosis", 0, 10, "Tumor mass")
    assert rows[1][4:] == ("#1", "AnnotatorNotes", "T1", "C50.911")
    assert rows[2] == TextBound("T2", "Diagnosis", ((0, 5), (6, 10)), "Tumor mass")
    for other in ("", usual[:-1], usual + "\n", usual + "A1\tNeg T1\n", usual.replace("T2\t", "T1\t"),
                  usual.replace("0 10", "0 11"), usual.replace("AnnotatorNotes T1", "AnnotatorNotes T5")):
        assert _fast_lines(other, text) is None or other == ""
    assert _fast_lines("", text) == []


def test_read_ann_reports_an_unreadable_file(tmp_path):
    document, problems = read_ann(tmp_path / "gone.ann", "text")
    assert document is None and len(problems) == 1
    assert problems[0].file == str(tmp_path / "gone.ann") and problems[0].reason.startswith("cannot read")
