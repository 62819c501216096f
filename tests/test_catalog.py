"""Catalog paths and atomic writes."""

import json
import os
from pathlib import Path

import pytest

from hiericd_core.catalog import Catalog
from hiericd_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_catalog_root_from_env_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIERICD_HOME", raising=False)
    assert Catalog.from_env().root == tmp_path / "var"
    monkeypatch.setenv("HIERICD_HOME", "elsewhere")
    cat = Catalog.from_env()
    assert cat.root == tmp_path / "elsewhere"
    assert Catalog.from_env(tmp_path / "x").root == tmp_path / "x"


def test_catalog_layout_and_sqlite_uris(tmp_path):
    cat = Catalog.from_env(tmp_path).ensure()
    assert cat.round("r1") == tmp_path / "rounds" / "r1"
    assert cat.merged("r1") == tmp_path / "merged" / "r1"
    assert cat.report("r1") == tmp_path / "reports" / "r1"
    assert cat.dataset("abc") == tmp_path / "datasets" / "abc"
    # an absolute sqlite path needs four slashes
    assert cat.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert cat.mlflow_tracking_uri.startswith("sqlite:////")
    assert cat.airflow_sql_alchemy_conn.startswith("sqlite:////")
    for sub in ("rounds", "merged", "reports", "datasets", "models", "airflow"):
        assert (tmp_path / sub).is_dir()


def test_atomic_writes_replace_whole_files(tmp_path):
    target = tmp_path / "deep" / "f.txt"
    atomic_write_text(target, "a\r\nb")
    assert target.read_bytes() == b"a\r\nb"  # no newline translation
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    atomic_write_json(tmp_path / "x.json", {"b": 1, "a": [1, 2]})
    text = (tmp_path / "x.json").read_text()
    assert text == json.dumps({"a": [1, 2], "b": 1}, indent=2) + "\n"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp file left
    target.chmod(0o664)  # a file a team made group-writable stays so when rewritten
    atomic_write_bytes(target, b"again", durable=True)
    assert target.read_bytes() == b"again" and oct(target.stat().st_mode & 0o777) == "0o664"


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["f.txt"]

