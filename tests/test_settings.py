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


@dataclass
class _Typed:
    rate: float = 0.1
    epochs: int = 3
    name: str = "x"
    flag: bool = False
    floor: float | None = 0.4
    sizes: tuple[int, ...] = (1, 2)


def test_values_of_the_wrong_type_name_the_file_the_key_and_the_type(tmp_path):
    cases = {'rate = "fast"': "rate = 'fast' should be float", "epochs = 2.5": "epochs = 2.5 should be int",
             "epochs = true": "epochs = True should be int", "flag = 1": "flag = 1 should be bool",
             "name = 3": "name = 3 should be str", "sizes = 3": "sizes = 3 should be list",
             "floor = [1]": r"floor = \[1\] should be float"}
    for line, message in cases.items():
        (tmp_path / "t.toml").write_text(f"[mine]\n{line}\n")
        with pytest.raises(_Oops, match=f"t.toml: test setting {message}"):
            read_settings(tmp_path / "t.toml", "mine", _Typed, _Oops, "test")
    # an int is a float; "none" (TOML has no null) is None where a setting may be None
    (tmp_path / "ok.toml").write_text('[mine]\nrate = 1\nfloor = "none"\nsizes = [3, 4]\n')
    assert read_settings(tmp_path / "ok.toml", "mine", _Typed, _Oops, "test") == \
        {"rate": 1, "floor": None, "sizes": [3, 4]}


def test_a_table_that_is_not_a_table_is_an_error(tmp_path):
    (tmp_path / "t.toml").write_text("mine = 3\n")
    with pytest.raises(_Oops, match=r"t.toml: mine must be a table \(\[mine\]\)"):
        read_settings(tmp_path / "t.toml", "mine", _Typed, _Oops, "test")
