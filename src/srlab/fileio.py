"""Atomic file writing: after a write, a file holds either its old content or the complete new one.

A writer fills a temporary file in the target's own folder (so the final ``os.replace`` is a
rename within one filesystem, which is atomic), the data is fsynced, and only then is the
temporary file moved over the target. A crash or an exception leaves no half-written file.

A kill (SIGKILL, a power cut) can leave the temporary file behind. Writes clean their folder of such
leftovers (at its first write in a process, then at most once a minute): only names of srlab's own
pattern (``.<stem>.<8 hex digits>.tmp<suffix>``), and only files that no live process holds. A writer
holds an exclusive ``flock`` on its temporary file from creation to rename, and the kernel drops the
lock with the process, so a lock test tells a live writer from a dead one whatever their age (an age
threshold would remove a slow writer's file, and clocks drift on network file systems). Without
``fcntl`` (Windows) leftovers are left alone.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from srlab.errors import SrlabError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["atomic_path", "atomic_write_bytes", "check_not_overwriting", "remove_stale_temp_files"]

# The names _create_temp_file gives; nothing else is ever removed as a leftover.
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp(\.[^.]*)?")
# A folder is scanned for leftovers at its first write, then at most once a minute: a batch writing
# 100,000 outputs into one folder must not list it 100,000 times.
_CLEAN_INTERVAL_S = 60.0
_last_cleaned: dict[str, float] = {}


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it over ``path`` when the block succeeds.

    The temporary file exists (empty) when the block starts. It keeps ``path``'s extension, so
    writers that pick a format from the file name still work. If the block raises, the temporary
    file is deleted and ``path`` is left untouched.
    """
    target = Path(path)
    _clean_now_and_then(target.parent)
    tmp, lock = _create_temp_file(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)  # after the rename: until then the temporary file is locked
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def check_not_overwriting(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise SrlabError if ``output`` is the same file as one of ``inputs``.

    Paths are compared after resolving symlinks and ``..``; when both files exist they are also
    compared by inode, which catches hard links and case-insensitive filesystems.
    """
    out = Path(output)
    out_resolved = out.resolve()
    for inp in map(Path, inputs):
        same = inp.resolve() == out_resolved
        if not same and out.exists() and inp.exists():
            same = os.path.samefile(out, inp)
        if same:
            raise SrlabError(
                f"refusing to overwrite input file '{inp}' with output '{out}' "
                "(choose a different output path or folder)"
            )


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; returns them.

    Only names of srlab's own pattern are candidates, and of those only files no live process holds
    locked (see the module docstring)."""
    if fcntl is None:
        return []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet (the write will say so) or an unreadable one: nothing to clean
        return []
    removed = []
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        if _remove_if_unlocked(entry.path):
            removed.append(Path(entry.path))
    return removed


def _clean_now_and_then(folder: Path) -> None:
    key, now = os.path.abspath(folder), time.monotonic()
    if now - _last_cleaned.get(key, -_CLEAN_INTERVAL_S) >= _CLEAN_INTERVAL_S:
        remove_stale_temp_files(folder)
        _last_cleaned[key] = now


def _remove_if_unlocked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone already (renamed by its writer, or removed by another cleaner)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live writer holds it
        # Under the lock the name must still be the file locked: never remove a file created since.
        if not _same_file(fd, path):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _create_temp_file(target: Path) -> tuple[Path, int | None]:
    """A new, empty temporary file next to ``target``, and an open descriptor holding its lock."""
    # A leading dot hides the file from folder listings (list_images skips hidden files), so a
    # half-written image is never picked up by another process. os.open with mode 0o666 lets the
    # umask apply, so the final file gets the same permissions as a normally created one
    # (tempfile.mkstemp would force 0o600).
    stem = target.stem[:64]  # keep the name under filesystem limits for very long names
    for _ in range(100):
        tmp = target.with_name(f".{stem}.{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        if fcntl is None:  # Windows: no lock, and an open file could not be renamed
            os.close(fd)
            return tmp, None
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A cleaner may have taken the file for a leftover between its creation and the lock: then
        # the name no longer holds this file, and another name is tried.
        if _same_file(fd, str(tmp)):
            return tmp, fd
        os.close(fd)
    raise FileExistsError(f"could not create a temporary file next to {target}")


def _fsync_file(path: Path) -> None:
    # Without fsync, a power cut after the rename can leave an empty or partial file on disk.
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable. Best effort: Windows and some filesystems refuse to
    # open or fsync a directory, and the data is already safely in place by now.
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
