"""The Airflow UI plugin: Airflow loads it, and its page lists the catalog's rounds."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hiericd_airflow.page import collect, create_app, round_rows

from hiericd_core import pipeline
from hiericd_core.catalog import Catalog
from hiericd_core.synth import SynthConfig, generate_round


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """A catalog holding one real round (merged, assessed, data set built), like the round DAG leaves it."""
    catalog = Catalog.from_env(tmp_path_factory.mktemp("home")).ensure()
    source = tmp_path_factory.mktemp("incoming") / "round"
    generate_round(source, 120, seed=5, config=SynthConfig(senior_backlog_rate=0.05))
    path = pipeline.ingest(source, catalog)
    merged = pipeline.merge(path, catalog)
    pipeline.assess(path, catalog, bootstrap=50)
    pipeline.datasets([merged["merged"]], catalog, min_count=2)
    return catalog


@pytest.fixture(scope="module")
def client(catalog) -> TestClient:
    return TestClient(create_app(lambda: catalog, login=False))


def test_airflow_loads_the_plugin(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}
    out = subprocess.run([str(Path(sys.executable).parent / "airflow"), "plugins", "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    plugins = json.loads(out.stdout[out.stdout.index("["):])
    (ours,) = [p for p in plugins if p["name"] == "hiericd"]
    assert "hiericd_airflow.plugin:HiericdPlugin" in ours["source"]  # through the setup.cfg entry point
    assert [(a["url_prefix"], a["name"]) for a in ours["fastapi_apps"]] == [("/hiericd", "hiericd rounds")]
    assert [(v["href"], v["url_route"]) for v in ours["external_views"]] == [("hiericd/", "hiericd")]


def test_the_page_lists_the_round_with_kappa_and_pending_reports(client, catalog):
    round_id = "synth-5-120"
    agreement = json.loads((catalog.report(round_id) / "agreement.json").read_text())
    kappas = [p["kappa"] for p in agreement["units"]["report_code"]["pairs"]]
    merge_summary = json.loads((catalog.merged(round_id) / "merge_summary.json").read_text())
    pending = len((catalog.merged(round_id) / "pending.txt").read_text().split())
    assert pending == merge_summary["reports"]["pending"] > 0  # the backlog leaves reports for the senior

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    row = re.search(r"<tr>\s*<td[^>]*><strong>synth-5-120</strong>.*?</tr>", page.text, re.S).group(0)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[2] == "ICD-10-CM"  # the round's code system, as round.toml names it
    assert cells[3] == "120" and cells[4] == "3"
    assert cells[5] == f"{sum(kappas) / len(kappas):.3f}"
    assert cells[6].startswith(f"{pending} (queue waiting) reports")
    assert "No model registered yet" in page.text  # an empty MLflow store under the catalog


def test_the_page_links_the_report_and_the_data_docs(client, catalog):
    page = client.get("/").text
    report = re.search(r'href="(reports/synth-5-120/index\.html)"', page).group(1)
    docs = re.search(r'href="(datasets/[0-9a-f]+/docs/index\.html)"', page).group(1)
    answer = client.get(f"/{report}")
    assert answer.status_code == 200 and answer.text == (catalog.report("synth-5-120") / "index.html").read_text()
    version = docs.split("/")[1]
    answer = client.get(f"/{docs}")
    assert answer.status_code == 200
    assert answer.content == (catalog.dataset(version) / "data_docs" / "index.html").read_bytes()


def test_files_outside_the_report_and_docs_folders_are_not_served(client, catalog):
    version = next(catalog.datasets.glob("*/manifest.json")).parent.name
    assert (catalog.dataset(version) / "sentences.parquet").is_file()
    for url in (f"/datasets/{version}/docs/..%2Fsentences.parquet", "/reports/..%2Fmerged/x",
                "/reports/synth-5-120/..%2F..%2Fmlflow%2Fmlflow.db", "/reports/synth-5-120/nothing.html"):
        assert client.get(url).status_code == 404, url


def test_pending_reports_link_to_their_brat_files_in_the_queue(client, catalog):
    round_id = "synth-5-120"
    pending = (catalog.merged(round_id) / "pending.txt").read_text().split()
    page = client.get("/").text
    linked = re.findall(rf'href="merged/{round_id}/adjudication/([^"/]+)\.txt"', page)
    assert linked == pending[:50] and linked
    queue = catalog.merged(round_id) / "adjudication"
    for suffix in ("txt", "ann"):
        answer = client.get(f"/merged/{round_id}/adjudication/{linked[0]}.{suffix}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        assert answer.content == (queue / f"{linked[0]}.{suffix}").read_bytes()
    # the data-quality report's pending list links to the same files, relative to where the plugin serves it
    report = client.get(f"/reports/{round_id}/index.html").text
    assert f'href="../../merged/{round_id}/adjudication/{linked[0]}.ann"' in report


def test_only_a_pending_reports_txt_and_ann_are_served(client, catalog, tmp_path):
    round_id = "synth-5-120"
    queue = catalog.merged(round_id) / "adjudication"
    first = (catalog.merged(round_id) / "pending.txt").read_text().split()[0]
    settled = next(p.stem for p in catalog.round(round_id).glob("texts/*.txt")
                   if p.stem not in (catalog.merged(round_id) / "pending.txt").read_text().split())
    assert (queue / "annotation.conf").is_file()
    for url in (f"/merged/{round_id}/adjudication/annotation.conf",  # in the queue, not a report
                f"/merged/{round_id}/adjudication/{settled}.txt",  # a report that is not pending
                f"/merged/{round_id}/adjudication/{first}.csv",
                f"/merged/{round_id}/adjudication/..%2F{first}.txt",
                f"/merged/..%2F..%2Fmlflow/adjudication/{first}.txt",
                f"/merged/.hidden/adjudication/{first}.txt",
                f"/merged/{round_id}/adjudication/.{first}.txt",
                f"/merged/{round_id}/adjudication/{first}"):
        assert client.get(url).status_code == 404, url
    # a pending id whose queue file is a link out of the catalog is not followed
    other = Catalog.from_env(tmp_path / "home")
    (other.merged("r1") / "adjudication").mkdir(parents=True)
    (other.merged("r1") / "pending.txt").write_text("x1\n")
    (tmp_path / "secret.txt").write_text("outside")
    (other.merged("r1") / "adjudication" / "x1.txt").symlink_to(tmp_path / "secret.txt")
    assert TestClient(create_app(lambda: other, login=False)).get("/merged/r1/adjudication/x1.txt").status_code == 404


def test_a_cie_10_es_round_says_so_on_the_page_and_in_its_report(tmp_path):
    catalog = Catalog.from_env(tmp_path / "home").ensure()
    generate_round(tmp_path / "round", 40, seed=6, config=SynthConfig(code_system="cie-10-es"))
    path = pipeline.ingest(tmp_path / "round", catalog)
    pipeline.merge(path, catalog)
    pipeline.assess(path, catalog, bootstrap=20)
    (row,) = round_rows(catalog)
    assert row["code_system"] == "CIE-10-ES"
    report = (catalog.report(row["round_id"]) / "index.html").read_text()
    assert "<th>Code (CIE-10-ES)</th><th>Description (from ICD-10-CM)</th>" in report
    assert "Description (ICD-10-CM)" not in report


def test_decisions_and_model_cards_are_served(catalog):
    card = catalog.decisions / "20261207T000000000000Z-v2-card" / "model_card.html"
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text("<h1>card</h1>")
    client = TestClient(create_app(lambda: catalog, login=False))
    assert client.get(f"/decisions/{card.parent.name}/model_card.html").text == "<h1>card</h1>"
    assert client.get("/decisions/..%2Fmlflow.db").status_code == 404


def test_the_page_asks_for_the_airflow_login(catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))  # the check imports Airflow, which writes its config there
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    client = TestClient(create_app(lambda: catalog))
    assert client.get("/").status_code == 401
    assert client.get("/reports/synth-5-120/index.html").status_code == 401


def test_rows_say_what_is_missing(catalog, tmp_path):
    other = Catalog.from_env(tmp_path)
    (other.report("broken")).mkdir(parents=True)
    (other.report("broken") / "summary.json").write_text("{not json")
    (other.report("synth-5-120")).mkdir(parents=True)
    (other.report("synth-5-120") / "summary.json").write_bytes(
        (catalog.report("synth-5-120") / "summary.json").read_bytes())
    rows = {r["round_id"]: r for r in round_rows(other)}
    assert "not a round summary" in rows["broken"]["problem"]
    (other.report("hostile")).mkdir(parents=True)
    (other.report("hostile") / "summary.json").write_text(json.dumps({"round_id": "../../etc"}))
    rows = {r["round_id"]: r for r in round_rows(other)}  # an id that is a path is a problem row, not a 500
    assert "not a round summary" in rows["hostile"]["problem"]
    assert rows["synth-5-120"]["problem"] == "not merged yet (no merge_summary.json)"
    assert rows["synth-5-120"]["pending"] == json.loads(
        (catalog.report("synth-5-120") / "summary.json").read_text())["pending_reports"]
    assert rows["synth-5-120"]["datasets"] == [] and not rows["synth-5-120"]["report"]


def test_an_unreadable_registry_still_shows_the_rounds(catalog):
    def broken(**kwargs):
        raise OSError("mlflow.db is locked")

    shown = collect(catalog, status=broken)
    assert [r["round_id"] for r in shown["rounds"]] == ["synth-5-120"]
    assert shown["models"]["error"] == "OSError: mlflow.db is locked"
