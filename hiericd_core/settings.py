"""Settings files: one ``[table]`` of a TOML file, checked against a config dataclass.

``TrainConfig`` (``[train]``) and ``GateConfig`` (``[gate]``) read their files
here, so every config file gives the same messages: the file, the unknown key,
and the keys that are known.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path


def read_settings(path: str | Path, table: str, config_cls: type, error: type[Exception], what: str,
                  paths: Iterable[str] = ()) -> dict:
    """The ``[table]`` of a TOML file (or its top level when it has none), as keyword arguments of ``config_cls``.

    Args:
        path: the TOML file.
        table: the table holding the settings (``train``, ``gate``).
        config_cls: the dataclass the settings are for; a key that is not one of its fields is an error.
        error: the exception to raise.
        what: the settings' name in messages (``training``, ``gate``).
        paths: keys holding paths; a relative one is taken relative to the file's folder.

    Raises:
        error: unreadable TOML or an unknown key (the message names the file and the key).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} config ({exc})") from exc
    data = data.get(table, data)
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{path}: unknown {what} setting(s) {', '.join(unknown)}; "
                    f"known ones are {', '.join(sorted(known))}")
    for key in paths:
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(path.parent / data[key])
    return data
