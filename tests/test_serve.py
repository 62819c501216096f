"""`mlflow models serve` of hiericd-pipeline@champion answers with codes and evidence."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_registry import champion_store, registry_models

from hiericd_core import registry
from hiericd_core.infer import Predictor
from hiericd_core.pyfunc import MAX_REPORT_CHARS

pytestmark = pytest.mark.integration
START_TIMEOUT = 120  # seconds for the server to answer /ping


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"no answer on {url}/ping within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(300)
def test_served_champion_codes_reports_with_evidence(tmp_path_factory, tmp_path):
    catalog, _ = champion_store(tmp_path_factory)
    models = registry_models(tmp_path_factory)
    table = pq.read_table(models["dataset"] / "reports.parquet", columns=["report_id", "split", "text",
                                                                        "reason_for_visit"]).to_pylist()
    reports = sorted((r for r in table if r["split"] == "test"), key=lambda r: r["report_id"])[:2]
    reports = [{k: r[k] for k in ("report_id", "text", "reason_for_visit")} for r in reports]
    reports.append({"report_id": "blank", "text": "   ", "reason_for_visit": ""})
    reports.append({"report_id": "huge", "text": "Fever.\n" * (MAX_REPORT_CHARS // 7 + 1), "reason_for_visit": ""})

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent  # uvicorn must be on PATH for the scoring server
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri(catalog), "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/hiericd-pipeline@champion",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_ping(url, proc, log)
        body = {"dataframe_split": {"columns": ["report_id", "text", "reason_for_visit"],
                                    "data": [[r["report_id"], r["text"], r["reason_for_visit"]] for r in reports]}}
        request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200  # the oversized report does not fail the batch
            rows = json.loads(answer.read())["predictions"]
        # a request MLflow cannot read: a 4xx, and no stack trace or server path in the body
        bad = urllib.request.Request(f"{url}/invocations", data=json.dumps({"dataframe_split": {
            "columns": ["report_id"], "data": [["a"]]}}).encode(), headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=60)
        body = refused.value.read().decode()
        assert 400 <= refused.value.code < 500, body
        assert "Traceback" not in body and "stack_trace" not in body and str(Path.cwd()) not in body, body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # the same codes and probabilities as the model folder gives in this process
    huge = reports.pop()
    assert [r["code"] for r in rows if r["report_id"] == "huge"] == [""]
    assert "too long to serve" in json.loads(rows[-1]["evidence"])["problems"][0] and huge["report_id"] == "huge"
    rows = [r for r in rows if r["report_id"] != "huge"]
    expected = Predictor.load(models["good"]).predict(reports)
    served: dict[str, list[dict]] = {}
    for row in rows:
        served.setdefault(row["report_id"], []).append(row)
    assert list(served) == [r["report_id"] for r in reports]
    for report, result in zip(reports[:2], expected[:2], strict=True):
        got = served[report["report_id"]]
        assert [r["code"] for r in got] == [c.code for c in result.codes] and got
        assert [r["probability"] for r in got] == pytest.approx([c.probability for c in result.codes], abs=1e-5)
        for row in got:
            evidence = json.loads(row["evidence"])
            text = report["text"]
            assert text[evidence["sentence_start"]:evidence["sentence_end"]] == evidence["sentence_text"]
            assert evidence["top_tokens"]
            assert all(text[t["start"]:t["end"]] == t["token"] for t in evidence["top_tokens"])
    assert served["blank"] == [{"report_id": "blank", "code": "", "probability": 0.0,
                                "evidence": json.dumps({"problems": ["empty text: nothing to code"]})}]


def test_predict_takes_a_registry_reference_for_the_model(tmp_path_factory, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hiericd_core.cli import app

    catalog, _ = champion_store(tmp_path_factory)
    models = registry_models(tmp_path_factory)
    monkeypatch.setenv("HIERICD_HOME", str(catalog.root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    table = pq.read_table(models["dataset"] / "reports.parquet", columns=["report_id", "split", "text"]).to_pylist()
    folder = tmp_path / "in"
    folder.mkdir()
    for r in sorted((r for r in table if r["split"] == "test"), key=lambda r: r["report_id"])[:3]:
        (folder / f"{r['report_id']}.txt").write_text(r["text"], encoding="utf-8")
    runner = CliRunner()
    expected = runner.invoke(app, ["predict", str(models["good"]), str(folder), "--out", str(tmp_path / "folder.tsv")])
    assert expected.exit_code == 0, expected.output
    for reference in ("champion", "models:/hiericd-pipeline@champion", "models:/hiericd-pipeline/1"):
        result = runner.invoke(app, ["predict", reference, str(folder), "--out", str(tmp_path / "ref.tsv")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "ref.tsv").read_text() == (tmp_path / "folder.tsv").read_text(), reference
        # the store a reference was read from must not outrank HIERICD_HOME in later calls of this process
        assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ, reference
    # a fresh process from another folder: no MLflow URI set by an earlier call in this one (the in-process runs
    # above inherit them), and nothing written where the command runs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-m", "hiericd_core.cli", "predict", "champion", str(folder), "--out",
                           str(tmp_path / "fresh.tsv")], cwd=elsewhere, env={**env, "HIERICD_HOME": str(catalog.root)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh.tsv").read_text() == (tmp_path / "folder.tsv").read_text()
    assert list(elsewhere.iterdir()) == []
    result = runner.invoke(app, ["predict", "models:/hiericd-pipeline/99", str(folder), "--out",
                                 str(tmp_path / "ref.tsv")])
    assert result.exit_code == 2 and "models:/hiericd-pipeline/99: no such model" in result.output
    assert "Traceback" not in result.output
