"""Settings files: one ``[table]`` of a TOML file, checked against a config dataclass.

``TrainConfig`` (``[train]``) and ``GateConfig`` (``[gate]``) read their files
here, so every config file gives the same messages: the file, the unknown key,
and the keys that are known; a value of the wrong type (``lr = "fast"``) names
the file, the key and the type wanted. TOML has no null: ``""`` or ``"none"``
stands for None where a setting may be None.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

_NONE_WORDS = ("", "none")


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
        error: unreadable TOML, an unknown key or a value of the wrong type (the message names the file and the key).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} config ({exc})") from exc
    data = data.get(table, data)
    if not isinstance(data, dict):
        raise error(f"{path}: {table} must be a table ([{table}]) of {what} settings")
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{path}: unknown {what} setting(s) {', '.join(unknown)}; "
                    f"known ones are {', '.join(sorted(known))}")
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # a hint this module cannot resolve: leave the values to the class
        hints = {}
    for key, value in list(data.items()):
        allowed = _types(hints.get(key))
        if allowed is None:
            continue
        if type(None) in allowed and isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
            data[key] = None
        elif not _matches(value, allowed):
            wanted = " or ".join(sorted({t.__name__ for t in allowed if t is not type(None)}))
            raise error(f"{path}: {what} setting {key} = {_show(value)} should be {wanted}")
    for key in paths:
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(path.parent / data[key])
    return data


def _types(hint) -> tuple[type, ...] | None:
    """The plain types a field's hint allows (``float | None`` → ``(float, NoneType)``); None: not checked."""
    if hint is None:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [_types(h) for h in typing.get_args(hint)]
        return None if any(p is None for p in parts) else tuple(t for p in parts for t in p)
    if hint is type(None):
        return (type(None),)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        return (list,)  # TOML arrays; the config class checks the items
    if origin is dict:
        return (dict,)
    return (origin,) if origin in (bool, int, float, str) else None


def _matches(value, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to a config file
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, tuple(t for t in allowed if t is not bool))


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}…"
