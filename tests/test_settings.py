"""Settings files: a TOML table checked against a config dataclass."""

from dataclasses import dataclass

import pytest

from hiericd_core.settings import read_settings


@dataclass
class _Config:
    rate: float = 0.1
    source: str | None = None


class _Oops(Exception):
    pass


def test_table_or_top_level_and_relative_paths(tmp_path):
    (tmp_path / "a.toml").write_text('[mine]\nrate = 0.5\nsource = "data/x.txt"\n')
    (tmp_path / "b.toml").write_text('rate = 0.25\nsource = "/abs/y.txt"\n')
    assert read_settings(tmp_path / "a.toml", "mine", _Config, _Oops, "test", paths=("source",)) == \
        {"rate": 0.5, "source": str(tmp_path / "data" / "x.txt")}
    assert read_settings(tmp_path / "b.toml", "mine", _Config, _Oops, "test", paths=("source",)) == \
        {"rate": 0.25, "source": "/abs/y.txt"}


def test_unknown_keys_and_bad_files_name_the_file(tmp_path):
    (tmp_path / "c.toml").write_text("[mine]\nrat = 0.5\n")
    with pytest.raises(_Oops, match=r"c.toml: unknown test setting\(s\) rat; known ones are rate, source"):
        read_settings(tmp_path / "c.toml", "mine", _Config, _Oops, "test")
    (tmp_path / "d.toml").write_text("[mine\n")
    with pytest.raises(_Oops, match="d.toml: cannot read the test config"):
        read_settings(tmp_path / "d.toml", "mine", _Config, _Oops, "test")
    with pytest.raises(_Oops, match="missing.toml: cannot read"):
        read_settings(tmp_path / "missing.toml", "mine", _Config, _Oops, "test")
