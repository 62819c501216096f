"""ICD-10-CM table: facts checked against the CMS tabular list by hand."""

import re

import pytest

from hiericd_core import icd


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("D2271", "D22.71"),
        (" d22.71 ", "D22.71"),
        ("c50 911", "C50.911"),
        ("C50", "C50"),
        ("u071", "U07.1"),
        ("s72001a", "S72.001A"),
        ("bw03zzz", "BW03ZZZ"),  # an ICD-10-PCS code is left as written (upper-cased)
        ("not a code", "NOTACODE"),
    ],
)
def test_normalize(raw, expected):
    assert icd.normalize(raw) == expected


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("C50.911", "billable"),
        ("D22.71", "billable"),
        ("S72.001A", "billable"),
        ("C50", "category"),
        ("C50.91", "category"),
        ("S72.001", "category"),  # needs its 7th character
        ("T81.4XX", "incomplete"),  # CodiEsp writes injuries without the 7th character
        ("W19.XXX", "incomplete"),
        ("C50.999", "unknown"),
        ("Z99.999", "unknown"),
        ("C00-C14", "unknown"),  # a block, not a code
        ("2", "unknown"),  # a chapter
        ("", "unknown"),
        ("hello", "unknown"),
    ],
)
def test_status(code, status):
    assert icd.status(code) == status


def test_lookup_gives_description_chapter_and_block():
    info = icd.lookup("c44311")
    assert info is not None
    assert info.code == "C44.311"
    assert info.description == "Basal cell carcinoma of skin of nose"
    assert info.chapter == "2"
    assert info.chapter_title == "Neoplasms (C00-D49)"
    assert info.block == "C43-C44"
    assert info.category == "C44"
    assert info.status == "billable"


def test_lookup_block_that_shares_its_name_with_a_category():
    # In the tabular list, block "C50" (Malignant neoplasms of breast) holds only category C50.
    info = icd.lookup("C50.912")
    assert info.block == "C50"
    assert info.category == "C50"
    assert "left female breast" in info.description


def test_lookup_unknown_is_none():
    assert icd.lookup("C50.999") is None


def test_check_raises_clear_errors():
    with pytest.raises(icd.CodeError, match="unknown ICD-10-CM code 'Q99.99X'"):
        icd.check("Q99.99X")
    with pytest.raises(icd.CodeError, match="C50.91 is a category.*C50.911"):
        icd.check("C50.91", require_billable=True)
    with pytest.raises(icd.CodeError, match="7th character"):
        icd.check("T81.4XX", require_billable=True)
    assert icd.check("C50.91").status == "category"


def test_siblings_differ_by_laterality():
    assert icd.siblings("C50.911") == ["C50.912", "C50.919"]
    assert icd.parent("C50.911") == "C50.91"
    assert icd.parent("C50") is None
    assert icd.siblings("nonsense") == []


def test_billable_codes_by_chapter():
    neoplasms = icd.billable_codes(["2"])
    assert "C50.911" in neoplasms and "D22.71" in neoplasms
    assert all(code[0] in "CD" for code in neoplasms)
    assert "K35.80" not in neoplasms
    # every listed code really is billable
    assert all(icd.status(c) == "billable" for c in neoplasms[:200])
    assert len(icd.billable_codes()) > 70000  # FY ICD-10-CM has ~74k billable codes


@pytest.mark.parametrize(
    ("note", "code"),
    [
        ("C50.911", "C50.911"),
        ("c50911", "C50.911"),
        (" C50.911 per path", "C50.911"),  # words after the code are let be
        ("see C50.911", "C50.911"),
        ("T81.4XX", "T81.4XX"),
        ("Z99.999", "Z99.999"),  # no code in it: the whole note, for the caller to report as unknown
        ("not a code", "NOTACODE"),
    ],
)
def test_read_code_takes_the_one_code_of_a_note(note, code):
    assert icd.read_code(note) == code


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("N43.40 N45.1", "'N43.40 N45.1' holds 2 codes (N43.40, N45.1)"),
        ("N43.40;N45.1;C50", "holds 3 codes (N43.40, N45.1, C50)"),
        ("N43 .40", "'N43 .40' looks like the code N43.40 cut by a space"),  # N43 alone is a valid category
        ("N43. 40", "looks like the code N43.40 cut by a space"),
        ("N43 . 40", "looks like the code N43.40 cut by a space"),
        ("C50 911", "looks like the code C50.911 cut by a space"),
    ],
)
def test_read_code_refuses_two_codes_or_a_cut_one(note, message):
    with pytest.raises(icd.CodeError, match=re.escape(message)):
        icd.read_code(note)
