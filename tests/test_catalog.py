"""Catalog paths and atomic writes."""

import json
import os
from pathlib import Path

import pytest

from hiericd_core.catalog import Catalog, UnsafeIdError, check_id
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



@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/abs", "a\\b", ".hidden", "a..b", "-x", "a b",
                                 "x" * 129, "caf\u00e9"])
def test_every_catalog_path_refuses_an_id_that_is_a_path(tmp_path, bad):
    cat = Catalog.from_env(tmp_path)
    for method in (cat.round, cat.merged, cat.report, cat.dataset, cat.model):
        with pytest.raises(UnsafeIdError, match="is not a safe id"):
            method(bad)
    assert isinstance(UnsafeIdError(""), ValueError)


def test_ids_the_pipeline_writes_are_safe(tmp_path):
    cat = Catalog.from_env(tmp_path)
    for good in ("synth-5-300", "codiesp-train", "codiesp-dev", "2026-11-round-07", "x" * 128):
        assert cat.merged(good) == tmp_path / "merged" / good
    # a data set version (16 hex digits) and a model run named after an Airflow run id (dags/hiericd_train.py)
    assert cat.dataset("0123456789abcdef") == tmp_path / "datasets" / "0123456789abcdef"
    run = "0123456789abcdef-manual__2026-12-07T22_49_45.123_00_00"
    assert cat.model(run) == tmp_path / "models" / run


def test_check_id_names_the_file_and_key(tmp_path):
    assert check_id("r-1", "[round] id") == "r-1"
    with pytest.raises(UnsafeIdError) as info:
        check_id("../../x", "[round] id", "round.toml")
    assert str(info.value) == ("round.toml: [round] id '../../x' is not a safe id; use letters, digits, '.', '_' "
                               "and '-', starting with a letter or digit, at most 128 characters, no '..'")


def test_catalog_never_leaves_its_folders_through_a_link(tmp_path):
    cat = Catalog.from_env(tmp_path / "home").ensure()
    os.symlink(tmp_path, cat.merged("x"))  # merged/x leads out of the catalog
    with pytest.raises(UnsafeIdError, match="leads outside"):
        cat.merged("x")
    os.symlink(cat.merged("y"), cat.merged("z"))  # a link within merged/ is fine
    assert cat.merged("z") == tmp_path / "home" / "merged" / "z"
