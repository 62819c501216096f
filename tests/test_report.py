"""The round report: the page shows the agreement and merge figures, files are stable, history feeds the trend."""

from __future__ import annotations

import json
import shutil
import struct
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from statistics import fmean

import pytest

from hiericd_core.agreement import AgreementConfig, agreement
from hiericd_core.merge import merge_round
from hiericd_core.merge_write import write_merge
from hiericd_core.report import build_report, landis_koch
from hiericd_core.rounds import load_round
from hiericd_core.synth import generate_round

FIXTURES = Path(__file__).parent / "fixtures"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONFIG = AgreementConfig(bootstrap=50, min_pair_reports=100)  # 200 reports: every pair shares < 100


class Tables(HTMLParser):
    """Every ``<table id=…>`` as a list of rows: ``(tr attributes, [cell texts])``; also every ``img src``."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[tuple[dict, list[str]]]] = {}
        self.images: list[str] = []
        self.ids: set[str] = set()
        self._table: list | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"_{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append((attrs, []))
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def row(self, table: str, key: str, attr: str = "data-row") -> list[str]:
        rows = [cells for attrs, cells in self.tables[table] if attrs.get(attr) == key]
        assert len(rows) == 1, f"{table}: {len(rows)} rows with {attr}={key!r}"
        return rows[0]


def kappa_text(x: float | None) -> str:
    """How the page writes a figure: three decimals, "—" when undefined, no negative zero."""
    return "—" if x is None else f"{x:.3f}".replace("-0.000", "0.000")


def ci_text(ci: list[float] | None) -> str:
    return "—" if not ci else f"{kappa_text(ci[0])} – {kappa_text(ci[1])}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def analyse(path: Path, merged: Path, config: AgreementConfig = CONFIG):
    rnd = load_round(path)
    result = merge_round(rnd)
    summary = write_merge(result, rnd, merged)
    return rnd, result, summary, agreement(rnd, config)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict:
    """A 200-report synthetic round with a broken line, an escaped-HTML line and one report left pending."""
    root = tmp_path_factory.mktemp("report")
    path = root / "rounds" / "r1"
    generate_round(path, 200, seed=3)
    bad = sorted((path / "coders" / "coder1").glob("*.ann"))[0]
    lines = bad.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([*lines, "T99\tDiagnosis 5 x\tbroken", "T98\tDiagnosis 0 8\t<script>"]) + "\n",
                   encoding="utf-8")
    rnd = load_round(path)
    disputed = next(rid for rid, r in sorted(merge_round(rnd).reports.items()) if r.disputes)
    (path / "senior" / f"{disputed}.ann").unlink()
    rnd, result, merge_summary, agree = analyse(path, root / "merged" / "r1")
    out = root / "reports" / "r1"
    index = build_report(rnd, result, merge_summary, agree, out)
    html = index.read_text(encoding="utf-8")
    return {"root": root, "round": rnd, "result": result, "merge": merge_summary, "agreement": agree,
            "out": out, "index": index, "html": html, "page": Tables(html), "bad": bad, "pending": disputed,
            "line": len(lines) + 1}


def test_landis_koch_bands_worked_by_hand():
    assert [landis_koch(k) for k in (-0.01, 0.0, 0.2, 0.21, 0.4, 0.41, 0.6, 0.61, 0.8, 0.81, 1.0)] == [
        "poor", "slight", "slight", "fair", "fair", "moderate", "moderate", "substantial", "substantial",
        "almost perfect", "almost perfect"]
    assert landis_koch(None) == ""


def test_files_written(synth):
    assert synth["index"] == synth["out"] / "index.html"
    names = sorted(p.name for p in synth["out"].iterdir())
    assert names == ["adjudication.png", "index.html", "kappa_heatmap.png", "per_code_kappa.png", "summary.json"]
    for name in ("adjudication.png", "kappa_heatmap.png", "per_code_kappa.png"):
        data = (synth["out"] / name).read_bytes()
        width, height = png_size(data)
        assert width > 300 and height > 100
        assert b"Software" not in data and b"matplotlib" not in data  # no version text that changes the bytes


def test_table1_shows_the_agreement_figures(synth):
    page, unit = synth["page"], synth["agreement"]["units"]["report_code"]
    assert len(unit["pairs"]) == 3 and len(unit["senior"]) == 3
    for p in unit["pairs"] + unit["senior"]:
        cells = page.row("table1-kappa", f"{p['a']}–{p['b']}")
        assert cells[1:5] == [f"{p['n_reports']:,}", kappa_text(p["kappa"]), ci_text(p["ci95"]),
                              landis_koch(p["kappa"])]
    for key, figure in (("fleiss", unit["fleiss"]), ("alpha", unit["alpha"])):
        assert page.row("table1-kappa", key)[2:4] == [kappa_text(figure["value"]), ci_text(figure["ci95"])]
    mean = fmean(p["kappa"] for p in unit["pairs"])
    assert page.row("table1-kappa", "mean")[2] == f"{mean:.3f}"


def test_every_unit_has_its_table(synth):
    page = synth["page"]
    for key, unit in synth["agreement"]["units"].items():
        assert unit["unit"] in synth["html"]
        for p in unit["pairs"] + unit["senior"]:
            cells = page.row(f"unit-table-{key}", f"{p['a']}–{p['b']}")
            assert cells[3] == kappa_text(p["kappa"]) and cells[4] == ci_text(p["ci95"])
            assert cells[7:9] == [kappa_text(p["pabak"]), kappa_text(p["ac1"])]
        assert page.row(f"unit-table-{key}", "fleiss")[3] == kappa_text(unit["fleiss"]["value"])


def test_summary_json_holds_the_headline(synth):
    summary = json.loads((synth["out"] / "summary.json").read_text(encoding="utf-8"))
    unit = synth["agreement"]["units"]["report_code"]
    assert summary["round_id"] == "synth-3-200" and summary["date"] == synth["round"].config.date != ""
    assert summary["reports"] == 200 and summary["coders"] == ["coder1", "coder2", "coder3"]
    assert summary["mean_pairwise_kappa"] == pytest.approx(fmean(p["kappa"] for p in unit["pairs"]), abs=1e-6)
    assert summary["fleiss_kappa"] == unit["fleiss"]["value"] and summary["alpha"] == unit["alpha"]["value"]
    assert [(p["a"], p["b"], p["kappa"]) for p in summary["pairs"]] == [
        (p["a"], p["b"], p["kappa"]) for p in unit["pairs"]]
    assert summary["pending_reports"] == 1 == len(synth["result"].pending)
    assert summary["quarantined"] == len(synth["round"].quarantined) == 2
    assert summary["disputes"] == synth["merge"]["disputes"]["total"]
    assert summary["merge_quality"]["code_f1"] == synth["merge"]["quality"]["code"]["f1"]


def test_quarantined_lines_with_file_and_line(synth):
    rows = [cells for _, cells in synth["page"].tables["quarantine-table"][1:]]
    file = f"coders/coder1/{synth['bad'].name}"
    assert [r[:3] for r in rows] == [[file, str(synth["line"]), "coder1"], [file, str(synth["line"] + 1), "coder1"]]
    assert "not a non-negative integer" in rows[0][4]


def test_html_is_escaped_and_self_contained(synth):
    html, page = synth["html"], synth["page"]
    assert "&lt;script&gt;" in html and "<script" not in html  # the coder's text is shown, not run
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert page.images and all((synth["out"] / src).is_file() for src in page.images)


def test_adjudication_and_pending(synth):
    page, disputes = synth["page"], synth["merge"]["disputes"]
    conflict = page.tables["disputes"][1][1]
    assert conflict[1:] == [f"{disputes['conflict'][o]:,}" for o in ("kept", "dropped", "pending")] + [
        f"{sum(disputes['conflict'].values()):,}"]
    assert page.tables["disputes"][-1][1][-1] == f"{disputes['total']:,}"
    assert synth["pending"] in synth["html"].split('id="pending"')[1]


def test_disagreement_examples_come_from_the_disputes(synth):
    rnd, result, page = synth["round"], synth["result"], synth["page"]
    examples = [(attrs, cells) for name, rows in page.tables.items() if name.startswith("_")
                for attrs, cells in rows if "data-report" in attrs]
    assert examples
    for attrs, cells in examples:
        report = rnd.reports[attrs["data-report"]]
        assert result.reports[report.report_id].disputes
        code, phrase = cells[3:5] if len(cells) == 6 else cells[1:3]  # the first row of a case has 6 cells
        if code != "—":
            phrase = phrase.removesuffix(" (agreed with another coder)")
            assert any(a.code == code and " ".join(a.text.split()) == phrase
                       for a in report.coders[attrs["data-coder"]])
    lowest = min((r for r in synth["agreement"]["units"]["report_code"]["per_code"] if r["kappa"] is not None),
                 key=lambda r: (r["kappa"], r["code"]))
    assert f'class="example" data-code="{lowest["code"]}"' in synth["html"]


def test_warnings_a_statistician_would_give(synth):
    text = synth["html"].split('<ul class="warnings">')[1].split("</ul>")[0]
    assert "only" in text and "reports coded by both (fewer than 100)" in text  # too few reports for a pair
    assert "fewer than 5 positive ratings" in text  # rare codes
    assert "1 reports have disputes the senior has not decided yet" in text
    assert "2 items were quarantined" in text


def test_rerun_gives_the_same_bytes(synth):
    before = {p.name: p.read_bytes() for p in synth["out"].iterdir()}
    build_report(synth["round"], synth["result"], synth["merge"], synth["agreement"], synth["out"])
    after = {p.name: p.read_bytes() for p in synth["out"].iterdir()}
    assert after["index.html"] == before["index.html"] and after["summary.json"] == before["summary.json"]
    assert after == before


def test_trend_reads_earlier_rounds(synth, tmp_path):
    history = tmp_path / "reports"
    older = {"round_id": "r0", "date": "2021-12-01", "reports": 150, "mean_pairwise_kappa": 0.91,
             "fleiss_kappa": 0.9, "alpha": 0.9, "disputes": 40, "pending_reports": 0, "quarantined": 0}
    later = {"round_id": "r9", "date": "2030-01-01", "alpha": "n/a"}  # a summary from another version
    for folder, data in (("r0", older), ("later", later)):
        (history / folder).mkdir(parents=True)
        (history / folder / "summary.json").write_text(json.dumps(data), encoding="utf-8")
    (history / "broken").mkdir()
    (history / "broken" / "summary.json").write_text("{not json", encoding="utf-8")
    out = history / "r1"
    index = build_report(synth["round"], synth["result"], synth["merge"], synth["agreement"], out)
    page = Tables(index.read_text(encoding="utf-8"))
    rows = [attrs["data-round"] for attrs, _ in page.tables["trend-table"][1:]]
    assert rows == ["r0", "synth-3-200", "r9"]  # by date
    assert page.row("trend-table", "r0", "data-round")[3] == "0.910"
    png_size((out / "trend.png").read_bytes())
    html = index.read_text(encoding="utf-8")
    assert "mean pairwise kappa fell from 0.910 (round r0)" in html
    assert "broken/summary.json: not readable as JSON" in html

    shutil.rmtree(history / "r0")
    shutil.rmtree(history / "later")
    build_report(synth["round"], synth["result"], synth["merge"], synth["agreement"], out,
                 history_root=tmp_path / "elsewhere")
    assert not (out / "trend.png").exists()  # one round: no trend, and the stale figure is gone


def test_single_coder_round_renders(tmp_path):
    rnd, result, merge_summary, agree = analyse(FIXTURES / "codiesp-sample" / "train", tmp_path / "merged")
    index = build_report(rnd, result, merge_summary, agree, tmp_path / "reports" / "train")
    html = index.read_text(encoding="utf-8")
    page = Tables(html)
    assert "needs-two" in page.ids and "Agreement needs at least two coders per report" in html
    assert not (tmp_path / "reports" / "train" / "kappa_heatmap.png").exists()
    reports_per_code = Counter(c for r in rnd.reports.values() for c in {a.code for a in r.coders["coder1"]})
    code, count = min(reports_per_code.items(), key=lambda item: (-item[1], item[0]))
    assert page.tables["top-codes"][1][1][0] == code and page.tables["top-codes"][1][1][2] == str(count)
    quarantined = [cells for _, cells in page.tables["quarantine-table"][1:]]
    assert len(quarantined) == len(rnd.quarantined) > 0
    first = rnd.quarantined[0].problem
    assert quarantined[0][:2] == [Path(first.file).name, str(first.line)]
    summary = json.loads((tmp_path / "reports" / "train" / "summary.json").read_text(encoding="utf-8"))
    assert summary["mean_pairwise_kappa"] is None and summary["agreement_status"].startswith("needs at least two")
