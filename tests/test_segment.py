"""Sentences and tokens with offsets; abbreviations never end a sentence."""

import functools
from pathlib import Path

import pytest

from hiericd_core.segment import (
    _MAYBE_BOUNDARY,
    Segmenter,
    SegmenterConfig,
    _glue_abbreviations,
    installed_scispacy_model,
    resolve_backend,
    rule_sentences,
)

REPORT = (
    "SPECIMEN: Left breast, core biopsy.\n"
    "CLINICAL HISTORY: 54 y/o F s/p lumpectomy w/ approx. 2.3 x 1.1 cm mass. Seen by Dr. Smith on 3/4. "
    "Rule out carcinoma.\n\n"
    "FINAL DIAGNOSIS:\n"
    "Invasive ductal carcinoma, grade 2, e.g. in the upper outer quadrant. No evidence of malignancy."
)
# The sentences a pathologist reads, worked out by hand.
EXPECTED = [
    "SPECIMEN: Left breast, core biopsy.",
    "CLINICAL HISTORY: 54 y/o F s/p lumpectomy w/ approx. 2.3 x 1.1 cm mass.",
    "Seen by Dr. Smith on 3/4.",
    "Rule out carcinoma.",
    "FINAL DIAGNOSIS:",
    "Invasive ductal carcinoma, grade 2, e.g. in the upper outer quadrant.",
    "No evidence of malignancy.",
]


@pytest.mark.parametrize("backend", ["pysbd", "rule"])
def test_sentences_keep_offsets_and_abbreviations(backend):
    sentences = Segmenter(SegmenterConfig(backend=backend)).segment(REPORT)
    assert [s.text for s in sentences] == EXPECTED
    for s in sentences:
        assert REPORT[s.start:s.end] == s.text
        for t in s.tokens:
            assert REPORT[t.start:t.end] == t.text
            assert s.start <= t.start < t.end <= s.end
            assert not t.text.isspace()


def test_scispacy_tokenizer_tokens():
    sentences = Segmenter(SegmenterConfig(backend="pysbd")).segment("Seen by Dr. Smith s/p biopsy.")
    assert [t.text for t in sentences[0].tokens] == ["Seen", "by", "Dr.", "Smith", "s/p", "biopsy", "."]


def test_spanish_uses_spanish_rules():
    text = "Paciente de 54 años. Dr. García lo vio aprox. a las 3.\nSe realizó TAC."
    seg = Segmenter(SegmenterConfig(language="es"))
    assert seg.describe() == "pysbd:es+spacy-es"
    sentences = seg.segment(text)
    assert [s.text for s in sentences] == ["Paciente de 54 años.", "Dr. García lo vio aprox. a las 3.",
                                           "Se realizó TAC."]
    assert [t.text for t in sentences[1].tokens][:2] == ["Dr.", "García"]


def test_auto_backend_falls_back_without_a_model():
    if installed_scispacy_model():
        pytest.skip("a scispaCy model is installed here")
    assert resolve_backend(SegmenterConfig()) == "pysbd"
    with pytest.raises(ValueError, match="no scispaCy model installed"):
        Segmenter(SegmenterConfig(backend="scispacy"))


def test_empty_and_blank_texts():
    seg = Segmenter(SegmenterConfig(backend="pysbd"))
    assert seg.segment("") == []
    assert seg.segment("\n \n") == []
    only = seg.segment("  Tumor  ")
    assert [(s.start, s.end, s.text) for s in only] == [(2, 7, "Tumor")]


def test_rule_sentences_are_the_rule_backend_without_tokens():
    text = "Pt is s/p CABG. Dr. Smith saw approx. 3 lesions, e.g. Nodules vs. Cysts. See Fig. 2.\nplan: rest"
    spans = rule_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Pt is s/p CABG.", "Dr. Smith saw approx. 3 lesions, e.g. Nodules vs. Cysts.", "See Fig. 2.", "plan: rest"]
    assert spans == [(s.start, s.end) for s in Segmenter(SegmenterConfig(backend="rule")).segment(text)]
    assert rule_sentences("no capital. after this\n\nHeader") == [(0, 22), (24, 30)]
    assert rule_sentences("   ") == []


# ---------------------------------------------------------------- the plain-line path in front of pysbd

FIXTURES = Path(__file__).parent / "fixtures"


def _lines(texts):
    return [line for text in texts for line in text.split("\n") if _MAYBE_BOUNDARY.search(line.rstrip())]


def _check_plain_lines_match_pysbd(seg: Segmenter, lines: list[str]) -> float:
    """Every line the plain path answers gets pysbd's sentences; returns the share of lines it answers."""
    answered = 0
    for line in lines:
        plain = seg._plain_line_sentences(line)
        if plain is None:
            continue
        answered += 1
        assert _glue_abbreviations(line, plain) == _glue_abbreviations(line, _pysbd_spans(seg, line)), line
    return answered / len(lines)


@functools.cache
def _pysbd(language: str):
    import pysbd

    return pysbd.Segmenter(language=language, clean=False, char_span=True)


def _pysbd_spans(seg: Segmenter, line: str) -> list[tuple[int, int]]:
    """pysbd's own sentences of a line (the oracle: not the segmenter's plain path)."""
    return [(p.start, p.end) for p in _pysbd(seg.config.language).segment(line)]


def test_plain_lines_get_pysbd_sentences_on_real_spanish_reports():
    texts = [p.read_text(encoding="utf-8") for p in sorted((FIXTURES / "codiesp-sample").rglob("*.txt"))]
    share = _check_plain_lines_match_pysbd(Segmenter(SegmenterConfig(language="es", backend="pysbd")), _lines(texts))
    assert share > 0.4


def test_plain_lines_get_pysbd_sentences_on_synthetic_reports(tmp_path):
    from hiericd_core.synth import generate_round

    generate_round(tmp_path / "round", 300, seed=11)
    texts = [p.read_text(encoding="utf-8") for p in sorted((tmp_path / "round" / "texts").glob("*.txt"))]
    share = _check_plain_lines_match_pysbd(Segmenter(SegmenterConfig(backend="pysbd")), _lines(texts))
    assert share > 0.7


@pytest.mark.parametrize(("line", "plain"), [
    ("Tumor is present. Margins are free.", ["Tumor is present.", "Margins are free."]),
    ("A. Colon, polypectomy. Benign polyp.", ["A. Colon, polypectomy.", "Benign polyp."]),  # a list marker
    ("Measures 2.3 cm. Seen by Dr. Smith today.", ["Measures 2.3 cm.", "Seen by Dr. Smith today."]),
    ("Lesion approx. Two cm wide; see note: none.", ["Lesion approx. Two cm wide; see note: none."]),
    ("Seen by Dr. Smith. He agrees.", ["Seen by Dr. Smith.", "He agrees."]),
    ("Labeled \"colon\" and sent. Received fresh.", ["Labeled \"colon\" and sent.", "Received fresh."]),
    # left to pysbd: its abbreviations, numbers and odd marks before a capital, quotes around punctuation,
    # stray apostrophes, a period inside a word, a "2)" list item, a mark after a mark
    ("Lives on Main Ave. Near here.", None), ("Stage 2. Grade 3.", None), ("Really? Yes.", None),
    ("He said \"no. Never\" then.", None), ("The 'left. Side' lesion.", None), ("Dose 25 mg./m2 daily. Done.", None),
    ("Items 1) skin. Two) more.", None), ("Benign.. Done.", None), ("1. Skin, shave. Benign.", None),
])
def test_plain_line_decisions(line, plain):
    seg = Segmenter(SegmenterConfig(backend="pysbd"))
    spans = seg._plain_line_sentences(line)
    assert (None if spans is None else [line[s:e] for s, e in _glue_abbreviations(line, spans)]) == plain
    if plain is not None:  # and pysbd agrees
        assert [line[s:e] for s, e in _glue_abbreviations(line, _pysbd_spans(seg, line))] == plain


# ---------------------------------------------------------------- texts longer than spaCy's limit


def test_text_chunks_cut_after_line_breaks_then_spaces():
    from hiericd_core.segment import text_chunks

    text = "ab cd\nef gh ij\n" + "x" * 12 + "\nend"
    for limit in (1, 3, 5, 7, 10, 100):
        pieces = text_chunks(text, limit)
        assert "".join(text[s:e] for s, e in pieces) == text  # nothing lost, nothing twice
        assert all(0 < e - s <= limit for s, e in pieces[:-1]) and pieces[-1][1] == len(text)
    # "ab cd\n" | "ef gh ij\n" | ten x (a line with no space: cut at the limit) | "xx\nend"
    assert text_chunks(text, 10) == [(0, 6), (6, 15), (15, 25), (25, 31)]


def test_a_text_over_a_million_characters_is_segmented_with_offsets_into_it(monkeypatch):
    import hiericd_core.segment as segment

    line = "Patient with fever and dry cough for 3 days. Dr. Smith saw him approx. at noon; BP 120/80.\n"
    text = "Tumor of the colon.\n" + line * (1_200_000 // len(line))
    assert len(text) > 1_000_000  # spaCy's max_length: make_doc refuses longer texts
    segmenter = Segmenter(SegmenterConfig(backend="pysbd"))
    sentences = segmenter.segment(text)
    assert len(sentences) == 1 + 2 * (1_200_000 // len(line))
    for s in sentences:
        assert text[s.start:s.end] == s.text
        assert all(text[t.start:t.end] == t.text for t in s.tokens)
    assert sentences[-1].text == "Dr. Smith saw him approx. at noon; BP 120/80."
    # chunks give the sentences and tokens of the whole text: the same as with no chunking
    part = text[:30_000]
    monkeypatch.setattr(segment, "CHUNK_CHARS", 1_000)
    chunked = segmenter.segment(part)
    monkeypatch.setattr(segment, "CHUNK_CHARS", 10**9)
    assert chunked == segmenter.segment(part)


def test_an_unknown_language_is_a_segmenter_error_naming_the_known_ones():
    from hiericd_core.segment import SegmenterError

    with pytest.raises(SegmenterError, match="unknown language 'zz' for the pysbd segmenter; use one of .*en, es"):
        Segmenter(SegmenterConfig(language="zz"))
    assert Segmenter(SegmenterConfig(language="zz", backend="rule")).segment("A b. C d.")  # needs no language
