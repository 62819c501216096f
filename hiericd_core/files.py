"""Atomic file writes: temp file in the same folder, then rename.

Readers see the old file or the new one, never a partial one, and a step that
is re-run on the same input rewrites the same bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def _replacing(path: str | Path, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary handle on a temp file beside ``path``; renamed over ``path`` when the block ends without error.

    The file keeps the mode of the one it replaces (new files: 0644, where mkstemp gives 0600). With
    ``durable`` the data reach the disk before the rename. On any error the temp file is removed and
    ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder + rename.

    Readers see the old file or the new one, never a partial one. ``durable``: fsync before the rename
    (for files people edit, such as BRAT annotations).
    """
    with _replacing(path, durable) as handle:
        handle.write(data)
    return Path(path)


def atomic_copy(source: str | Path, path: str | Path) -> Path:
    """Copy the file ``source`` to ``path`` atomically (block by block: the file need not fit in memory)."""
    import shutil

    with _replacing(path) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle, 1 << 20)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 (no newline translation) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as stable JSON (sorted keys, 2-space indent, final newline)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
