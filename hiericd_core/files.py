"""Atomic writes: a file through a temp file in the same folder, a folder through a scratch folder beside it.

Readers see the old file or the new one, never a partial one, and a step that
is re-run on the same input rewrites the same bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import os
import shutil
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
    with _replacing(path) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle, 1 << 20)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 (no newline translation) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as stable JSON (sorted keys, 2-space indent, final newline)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- whole folders
#
# A folder is built in a hidden scratch folder (``.tmp-hiericd-*``) beside its
# destination, on the same file system, and moved into place with renames, so
# a reader sees the old folder or the new one, never a half-built one. The
# scratch folder is locked (flock) while its process lives: the kernel drops
# the lock when the process dies, however it dies, so the next step that
# stages in the same parent knows which leftovers are dead and removes them.

# hidden, and specific enough that cleaning never touches a user's own folder beside an ``--out DIR``
SCRATCH_PREFIX = ".tmp-hiericd-"


def _lock(folder: Path) -> int:
    """An open descriptor on ``folder`` holding an exclusive flock (blocks while another process holds it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def clean_scratch(parent: str | Path) -> list[Path]:
    """Remove the scratch folders in ``parent`` whose process has died (killed, crashed); return them.

    A scratch folder still locked belongs to a step running now and is left alone.
    """
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for folder in sorted(parent.glob(f"{SCRATCH_PREFIX}*")):
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # gone meanwhile, or a stray file
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


@contextmanager
def staging_dir(parent: str | Path, tag: str = "") -> Iterator[Path]:
    """A fresh, locked, hidden scratch folder ``parent/.tmp-hiericd-<tag>-<random>/``, removed when the block ends.

    Dead scratch folders of earlier runs in ``parent`` are removed first. Build
    the output at a path inside the scratch folder and move it into place with
    :func:`replace_dir` before the block ends: whatever is left in the scratch
    folder (everything, when the block raises) is deleted with it. Because the
    output sits one level down, a ``parent/*/<file>`` glob never sees it.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    clean_scratch(parent)
    while True:
        folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{tag}-" if tag else SCRATCH_PREFIX, dir=parent))
        fd = _lock(folder)
        # another process's clean_scratch may have taken the lock between mkdtemp and flock and removed the folder
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)
    try:
        yield folder
    finally:
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(source: str | Path, target: str | Path) -> Path:
    """Move the folder ``source`` to ``target``, replacing a folder there, by renames only.

    When ``source`` was built in a :func:`staging_dir` (its parent is a scratch
    folder) and the system can, the two folders are swapped in one atomic
    rename, and a reader always finds a whole ``target``, old or new.
    Otherwise the old ``target`` is first renamed into a scratch folder beside
    it: ``target`` is absent for an instant, never half-written, and a process
    killed in that instant leaves ``source`` where it was. The old folder is
    then deleted. A ``source`` on another file system is first copied beside
    ``target`` (a rename cannot cross file systems).

    Returns:
        ``target``.
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(target.parent, target.name) as scratch:
        new, old = source, scratch / "old"
        if source.stat().st_dev != target.parent.stat().st_dev:
            new = scratch / "new"
            shutil.copytree(source, new, symlinks=True)
        disposable = new.parent.name.startswith(SCRATCH_PREFIX)
        if not target.exists():
            os.rename(new, target)
        elif disposable and _exchange(new, target):
            os.rename(new, old)  # the old folder, now where ``new`` was: deleted with the scratch folder
        else:
            os.rename(target, old)
            try:
                os.rename(new, target)
            except BaseException:
                os.rename(old, target)
                raise
        if new != source:
            shutil.rmtree(source)
    return target
