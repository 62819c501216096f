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
    assert cells[2] == "120" and cells[3] == "3"
    assert cells[4] == f"{sum(kappas) / len(kappas):.3f}"
    assert cells[5] == f"{pending} (queue waiting)"
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
