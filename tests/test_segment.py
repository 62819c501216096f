"""Sentences and tokens with offsets; abbreviations never end a sentence."""

import pytest

from hiericd_core.segment import (
    Segmenter,
    SegmenterConfig,
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
