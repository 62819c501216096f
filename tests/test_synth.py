"""Tests of the synthetic round generator (hiericd_core.synth).

The checks read the written files directly (their own ``.ann`` parsing, their
own sentence splitter, their own disagreement rule), so that they do not
trust the generator's bookkeeping.
"""

from __future__ import annotations

import csv
import hashlib
import re
import tomllib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from hiericd_core import icd
from hiericd_core.synth import SynthConfig, generate_round

N_SMALL = 300
N_STATS = 2000

# ---------------------------------------------------------------------------
# helpers (independent of the generator)
# ---------------------------------------------------------------------------

_T_LINE = re.compile(r"^(T\d+)\t(\S+) (\d+ \d+(?:;\d+ \d+)*)\t(.*)$")
_NOTE_LINE = re.compile(r"^#(\d+)\tAnnotatorNotes (T\d+)\t(\S+)$")


def parse_ann(path: Path) -> list[tuple[str, list[tuple[int, int]], str]]:
    """Return ``(code, fragments, covered text)`` per annotation; asserts the line format."""
    spans: dict[str, tuple[list[tuple[int, int]], str]] = {}
    codes: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        t = _T_LINE.match(line)
        n = _NOTE_LINE.match(line)
        assert t or n, f"{path}: unexpected line {line!r}"
        if t:
            assert t.group(2) == "Diagnosis"
            frags = [tuple(map(int, f.split())) for f in t.group(3).split(";")]
            spans[t.group(1)] = (frags, t.group(4))
        else:
            assert n.group(2) == f"T{n.group(1)}", "a note follows its text-bound"
            codes[n.group(2)] = n.group(3)
    assert set(spans) == set(codes), f"{path}: every T needs exactly one code note"
    # T<n> then #<n>, in pairs
    for i in range(0, len(lines), 2):
        assert lines[i].startswith("T") and lines[i + 1].startswith("#")
    return [(codes[t], spans[t][0], spans[t][1]) for t in spans]


def overlaps(a, b) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def needs_senior(first, second) -> bool:
    for mine, theirs in ((first, second), (second, first)):
        for code, frags, _ in mine:
            codes_over = {c for c, f, _ in theirs if overlaps(frags, f)}
            if code not in codes_over or codes_over - {code}:
                return True
    return False


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


_HEADER = re.compile(r"^[A-Z][A-Z /()]*:$")
_ABBREVIATIONS = {"approx", "dr", "vs", "e.g", "i.e", "no"}


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentences as spans: header lines dropped, split at '. ' unless after an abbreviation or initial."""
    out = []
    pos = 0
    for line in text.split("\n"):
        start_of_line = pos
        pos += len(line) + 1
        if not line.strip() or _HEADER.match(line.strip()):
            continue
        start = 0
        for m in re.finditer(r"\.(\s+|$)", line):
            before = line[start:m.start()].rsplit(" ", 1)[-1]
            if m.end() < len(line) and (before.lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", before)):
                continue
            out.append((start_of_line + start, start_of_line + m.start() + 1))
            start = m.end()
        if line[start:].strip():
            out.append((start_of_line + start, start_of_line + len(line)))
    return out


def report_ids(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "texts").glob("*.txt"))


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "round"
    generate_round(out, N_SMALL, seed=7)
    return out


@pytest.fixture(scope="module")
def stats_round(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_stats") / "round"
    summary = generate_round(out, N_STATS, seed=3)
    return out, summary


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def test_same_seed_same_bytes_whatever_the_workers(small, tmp_path):
    again = tmp_path / "again"
    generate_round(again, N_SMALL, seed=7, config=SynthConfig(workers=2, chunk_size=70), progress=True)
    single = tmp_path / "single"
    generate_round(single, N_SMALL, seed=7, config=SynthConfig(workers=1, chunk_size=1000))
    reference = tree_hash(small)
    assert len(reference) > 3 * N_SMALL
    assert tree_hash(again) == reference
    assert tree_hash(single) == reference


def test_different_seed_different_round(small, tmp_path):
    other = tmp_path / "other"
    generate_round(other, N_SMALL, seed=8)
    mine, theirs = tree_hash(small), tree_hash(other)
    assert mine["texts/R000001.txt"] != theirs["texts/R000001.txt"]
    differing = sum(mine.get(k) != v for k, v in theirs.items())
    assert differing > 0.9 * len(theirs)


def test_refuses_non_empty_target(small):
    with pytest.raises(FileExistsError):
        generate_round(small, 5, seed=1)


# ---------------------------------------------------------------------------
# layout and files
# ---------------------------------------------------------------------------


def test_round_toml(small):
    meta = tomllib.loads((small / "round.toml").read_text(encoding="utf-8"))
    assert meta["round"]["id"] == f"synth-7-{N_SMALL}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", meta["round"]["date"])
    assert meta["round"]["language"] == "en"
    assert meta["round"]["code_system"] == "icd-10-cm"
    assert meta["codes"] == {"source": "note", "labels": ["Diagnosis"]}


def test_report_ids_and_folders(small):
    ids = report_ids(small)
    assert ids == [f"R{i:06d}" for i in range(1, N_SMALL + 1)]
    assert sorted(p.stem for p in (small / "truth").glob("*.ann")) == ids
    coders = sorted(p.name for p in (small / "coders").iterdir())
    assert coders == ["coder1", "coder2", "coder3"]
    per_report = Counter(p.stem for c in coders for p in (small / "coders" / c).glob("*.ann"))
    assert set(per_report) == set(ids)
    assert set(per_report.values()) == {2}, "each report is in exactly two coder folders"
    assert all(per_report[rid] == 2 for rid in ids)
    # all three pairs of coders occur
    pairs = Counter(
        tuple(c for c in coders if (small / "coders" / c / f"{rid}.ann").exists()) for rid in ids
    )
    assert len(pairs) == 3


def test_covered_text_is_the_text_under_the_fragments(small):
    checked = 0
    for ann in sorted(small.rglob("*.ann")):
        text = (small / "texts" / f"{ann.stem}.txt").read_text(encoding="utf-8")
        for _, frags, covered in parse_ann(ann):
            for s, e in frags:
                assert 0 <= s < e <= len(text)
                assert "\n" not in text[s:e]
                assert text[s:e] == text[s:e].strip(), "fragments do not start or end on blanks"
            assert covered == " ".join(text[s:e] for s, e in frags), ann
            checked += 1
    assert checked > 2 * N_SMALL


def test_every_code_is_billable(small):
    codes = {code for ann in small.rglob("*.ann") for code, _, _ in parse_ann(ann)}
    assert len(codes) > 50
    bad = sorted(c for c in codes if (icd.lookup(c) is None or icd.lookup(c).status != "billable"))
    assert not bad


def test_every_truth_report_has_a_code(small):
    for rid in report_ids(small):
        assert parse_ann(small / "truth" / f"{rid}.ann"), rid


def test_senior_exactly_for_disagreements(small):
    ids = report_ids(small)
    expected = set()
    for rid in ids:
        files = sorted((small / "coders").glob(f"*/{rid}.ann"))
        first, second = (parse_ann(f) for f in files)
        if needs_senior(first, second):
            expected.add(rid)
    senior = {p.stem for p in (small / "senior").glob("*.ann")}
    assert senior == expected
    assert 0 < len(senior) < len(ids)


def test_senior_mostly_agrees_with_truth(small):
    agree = total = 0
    for ann in (small / "senior").glob("*.ann"):
        senior = {c for c, _, _ in parse_ann(ann)}
        truth = {c for c, _, _ in parse_ann(small / "truth" / ann.name)}
        agree += senior == truth
        total += 1
    assert agree / total > 0.85


def test_metadata(small):
    with open(small / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["report_id"] for r in rows] == report_ids(small)
    for row in rows:
        assert row["reason_for_visit"].strip()
        assert row["specimen"].strip()
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["procedure_date"])


def test_sentences_per_report(small):
    counts = []
    for rid in report_ids(small):
        text = (small / "texts" / f"{rid}.txt").read_text(encoding="utf-8")
        n = len(split_sentences(text))
        assert 5 <= n <= 30, (rid, n)
        counts.append(n)
    assert max(counts) > min(counts), "report lengths vary"


def test_reports_look_like_pathology_reports(small):
    texts = [(small / "texts" / f"{rid}.txt").read_text(encoding="utf-8") for rid in report_ids(small)]
    joined = "\n".join(texts)
    for header in ("SPECIMEN", "CLINICAL HISTORY", "GROSS", "MICROSCOPIC", "DIAGNOSIS", "COMMENT"):
        assert header in joined
    for abbreviation in ("approx.", "s/p", "w/", "Dr."):
        assert abbreviation in joined
    assert re.search(r"\d+\.\d x \d+\.\d x \d+\.\d cm", joined)
    assert re.search(r"\b(left|right)\b", joined)
    assert re.search(r"\b(Negative for|No evidence of)\b", joined)
    assert re.search(r"\b(History of|Hx of)\b", joined)
    assert len(set(texts)) == len(texts)


# ---------------------------------------------------------------------------
# statistics of a larger round
# ---------------------------------------------------------------------------


def test_summary_matches_files(stats_round):
    out, summary = stats_round
    assert summary.reports == N_STATS
    assert summary.senior_reports == len(list((out / "senior").glob("*.ann")))
    for coder, n in summary.annotations_per_coder.items():
        assert n == sum(len(parse_ann(p)) for p in (out / "coders" / coder).glob("*.ann"))
    assert sum(summary.reports_per_n_codes.values()) == N_STATS
    assert summary.to_dict()["distinct_codes"] == summary.distinct_codes


def test_code_statistics_are_plausible(stats_round):
    out, _ = stats_round
    per_report = []
    two_code_sentences = focus_sentences = discontinuous = annotations = 0
    frequency = Counter()
    for rid in report_ids(out):
        text = (out / "texts" / f"{rid}.txt").read_text(encoding="utf-8")
        sentences = split_sentences(text)
        anns = parse_ann(out / "truth" / f"{rid}.ann")
        codes = {c for c, _, _ in anns}
        per_report.append(len(codes))
        frequency.update(codes)
        by_sentence: dict[int, set[str]] = {}
        for code, frags, _ in anns:
            annotations += 1
            discontinuous += len(frags) > 1
            index = next(i for i, (s, e) in enumerate(sentences) if s <= frags[0][0] < e)
            assert all(sentences[index][0] <= s and e <= sentences[index][1] for s, e in frags), \
                "evidence stays in one sentence"
            by_sentence.setdefault(index, set()).add(code)
        focus_sentences += len(by_sentence)
        two_code_sentences += sum(len(c) >= 2 for c in by_sentence.values())
    one_code = sum(n == 1 for n in per_report) / len(per_report)
    assert 0.6 <= one_code <= 0.85
    assert max(per_report) <= 8 and max(per_report) >= 4
    assert 0.005 < two_code_sentences / focus_sentences < 0.08
    assert 0.01 < discontinuous / annotations < 0.3
    # long tail: a few codes are frequent, many are rare
    counts = sorted(frequency.values(), reverse=True)
    assert len(counts) > 300
    assert counts[0] > 20 * np.median(counts)
    assert sum(c == 1 for c in counts) > 0.2 * len(counts)
    chapters = Counter(c[0] for c in frequency)
    assert chapters["C"] + chapters["D"] > chapters["K"] > 0
    assert all(chapters[letter] > 0 for letter in "LNM")


def test_laterality_only_in_reason_for_visit_happens(stats_round):
    out, _ = stats_round
    with open(out / "metadata.csv", newline="", encoding="utf-8") as handle:
        rfv = {r["report_id"]: r["reason_for_visit"] for r in csv.DictReader(handle)}
    found = 0
    for rid, reason in rfv.items():
        text = (out / "texts" / f"{rid}.txt").read_text(encoding="utf-8").lower()
        for code, _, _ in parse_ann(out / "truth" / f"{rid}.ann"):
            side = re.search(r"\b(right|left)\b", icd.lookup(code).description.lower())
            if side and side.group(1) not in text and side.group(1) in reason.lower():
                found += 1
    assert found > 0.02 * N_STATS


def test_pairwise_kappa_in_a_plausible_range(stats_round):
    out, _ = stats_round
    coders = ["coder1", "coder2", "coder3"]
    sets = {c: {p.stem: {code for code, _, _ in parse_ann(p)} for p in (out / "coders" / c).glob("*.ann")}
            for c in coders}
    vocab = sorted({code for c in coders for s in sets[c].values() for code in s})
    col = {code: i for i, code in enumerate(vocab)}
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            shared = sorted(set(sets[a]) & set(sets[b]))
            assert len(shared) > N_STATS / 5
            ma = np.zeros((len(shared), len(vocab)), dtype=np.int8)
            mb = np.zeros_like(ma)
            for r, rid in enumerate(shared):
                ma[r, [col[c] for c in sets[a][rid]]] = 1
                mb[r, [col[c] for c in sets[b][rid]]] = 1
            kappa = cohen_kappa_score(ma.ravel(), mb.ravel())
            assert 0.5 < kappa < 0.8, (a, b, kappa)


def test_noisier_coders_agree_less(tmp_path):
    base = SynthConfig()
    sloppy = replace(base, coders=tuple(replace(c, miss_rate=0.4, sibling_rate=0.3) for c in base.coders))
    generate_round(tmp_path / "careful", 400, seed=5, config=base)
    generate_round(tmp_path / "sloppy", 400, seed=5, config=sloppy)
    seniors = [len(list((tmp_path / name / "senior").glob("*.ann"))) for name in ("careful", "sloppy")]
    assert seniors[1] > seniors[0]


def test_senior_backlog_leaves_disputed_reports_pending(tmp_path):
    from hiericd_core.merge import merge_round
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import SynthConfig

    generate_round(tmp_path / "full", 200, seed=4)
    generate_round(tmp_path / "late", 200, seed=4, config=SynthConfig(senior_backlog_rate=0.2))
    full = {p.name for p in (tmp_path / "full" / "senior").glob("*.ann")}
    late = {p.name for p in (tmp_path / "late" / "senior").glob("*.ann")}
    assert late < full  # the senior has done a subset
    # about a fifth of the disputed reports wait (binomial: 0.2 ± 4 sd)
    share = 1 - len(late) / len(full)
    assert abs(share - 0.2) < 4 * (0.2 * 0.8 / len(full)) ** 0.5
    # merge finds disputes only in reports without a senior file; the generator's disagreement rule is
    # stricter than merge's (two coders giving the same two codes over overlapping spans count for it)
    pending = set(merge_round(load_round(tmp_path / "late")).pending)
    waiting = {name[:-4] for name in full - late}
    assert pending and pending <= waiting and len(pending) >= 0.8 * len(waiting)


def test_a_later_round_of_new_reports_numbers_them_after_the_first(tmp_path):
    from hiericd_core.synth import SynthConfig, generate_round

    generate_round(tmp_path / "later", 20, seed=2, config=SynthConfig(first_report=1001))
    ids = sorted(p.stem for p in (tmp_path / "later" / "texts").glob("*.txt"))
    assert ids == [f"R{n:06d}" for n in range(1001, 1021)]
    generate_round(tmp_path / "first", 20, seed=2)
    assert sorted(p.stem for p in (tmp_path / "first" / "texts").glob("*.txt")) == [f"R{n:06d}" for n in range(1, 21)]
    # the same reports, only renumbered
    assert (tmp_path / "later" / "texts" / "R001001.txt").read_bytes() == \
        (tmp_path / "first" / "texts" / "R000001.txt").read_bytes()


_NEGATION_TAIL = re.compile(r"(?:; negative for |, negative for |; no evidence of |; no |, without |; )"
                            r"([^;]+?)(?: identified| is not identified)?\.$")


def _focus_sentences(root: Path) -> list[tuple[str, int]]:
    """(sentence text, end of its evidence within it) of every truth sentence holding exactly one coded phrase."""
    out = []
    for rid in report_ids(root):
        text = (root / "texts" / f"{rid}.txt").read_text(encoding="utf-8")
        anns = parse_ann(root / "truth" / f"{rid}.ann")
        for start, end in split_sentences(text):
            inside = [a for a in anns if any(start <= s and e <= end for s, e in a[1])]
            if len(inside) == 1:
                out.append((text[start:end], max(e for _, e in inside[0][1]) - start))
    return out


def test_focus_negation_puts_an_uncoded_negated_disease_inside_the_diagnosis_sentence(tmp_path):
    from scriptkit import load_script

    generate_round(tmp_path / "neg", 150, seed=9, config=SynthConfig(focus_negation_rate=1.0))
    generate_round(tmp_path / "plain", 150, seed=9)
    negated_round, plain_round = _focus_sentences(tmp_path / "neg"), _focus_sentences(tmp_path / "plain")
    # every coded phrase of the round
    phrases = {covered.lower() for rid in report_ids(tmp_path / "neg")
               for _, _, covered in parse_ann(tmp_path / "neg" / "truth" / f"{rid}.ann")}
    cues = {"negative for", "no evidence of", "without", "identified"}
    total, plain_total = len(negated_round), len(plain_round)
    with_cue = sum(any(cue in sentence[end:] for cue in cues) for sentence, end in negated_round)
    plain_with_cue = sum(any(cue in sentence[end:] for cue in ("; negative for", "; no evidence of"))
                         for sentence, end in plain_round)
    assert total > 100 and plain_total > 100
    # with rate 1 a one-code diagnosis sentence ends in a negated clause after its evidence (a mods phrase,
    # "..., without obstruction", may come first), unless five draws of the organ found no plain disease name
    assert with_cue >= 0.95 * total, (with_cue, total)
    assert plain_with_cue == 0
    # the negated name is a plain disease name, most of them coded elsewhere in this small round's truth,
    # and the sentence's own annotations do not cover it (_focus_sentences: one coded phrase only)
    named = 0
    for sentence, evidence_end in negated_round:
        match = _NEGATION_TAIL.search(sentence[evidence_end:])
        if not match:
            continue
        negated = match.group(1).lower()
        assert "," not in negated and not re.search(r"\b(diseases? of|disorders?|signs|symptoms)\b", negated)
        named += any(negated in p for p in phrases)
    assert named >= 0.5 * total, (named, total)
    # scripts/negation_split.py tells the two kinds of sentence apart with its own pattern
    script = load_script("negation_split")
    assert sum(bool(script.NEGATION.search(sentence)) for sentence, _ in negated_round) == with_cue
    # without the option only a coded phrase ending ", without <complication>." can look like one
    lookalikes = sum(bool(script.NEGATION.search(sentence)) for sentence, _ in plain_round)
    assert lookalikes <= 0.02 * plain_total
