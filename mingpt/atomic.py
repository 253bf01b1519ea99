"""
Writing a file so that a crash never leaves half of it behind.

The one idea: never write into the real file name. Write a temporary file in the *same directory*, make sure its
bytes are on disk, then ``os.replace`` it over the destination. On one file system that rename is atomic: a reader
(or a run resumed after SIGKILL) sees either the old complete file or the new complete file, never a mix.

    with atomic_path("out/last.pt") as tmp:
        torch.save(checkpoint, tmp)          # any writer that takes a path: torch.save, savefig, save_file, ...

Two details a classroom notices:

* **Permissions.** The temp file is created the way ``open(path, "w")`` creates a file (mode 0o666 minus the
  umask, typically ``-rw-r--r--``), not ``tempfile.mkstemp``'s private 0o600, so a shared output folder stays
  readable. Replacing an existing file keeps that file's mode. The mode is set again when the block ends, so a
  third-party writer that replaces the temp file with a private one of its own cannot change it.
* **Debris.** A process killed mid-write leaves its temp file behind. The name records the writer's process id
  (``.last.pt.<pid>.<8 hex digits>.tmp``), so the next write of the same target removes the temp files of writers
  that no longer exist, and never those of a writer that is still running.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import secrets
import stat
from typing import Iterator

__all__ = ["atomic_path", "remove_stale_temp_files"]

logger = logging.getLogger(__name__)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the call only checks that the process exists
    except OSError as e:
        return e.errno == errno.EPERM  # it exists, but belongs to another user
    return True


def remove_stale_temp_files(path: str | os.PathLike, suffix: str = ".tmp") -> list[str]:
    """Remove the temp files that killed writers of `path` left behind; returns the removed paths."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    removed = []
    for candidate in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(base)}.*{glob.escape(suffix)}")):
        name = os.path.basename(candidate)
        mine = re.fullmatch(r"(\d+)\.[0-9a-f]{8}", name[len(base) + 2 : len(name) - len(suffix)])
        if not mine or _process_exists(int(mine.group(1))):
            continue  # another target's file (e.g. 'last.pt.1'), or its writer may still be writing
        try:
            size = os.path.getsize(candidate)
            os.remove(candidate)
        except FileNotFoundError:  # another writer cleaned it up first
            continue
        removed.append(candidate)
        logger.info("removed %s (%d bytes), left behind by a killed write of %s", candidate, size, path)
    return removed


def _create_temp(directory: str, base: str, suffix: str) -> str:
    """A new empty file beside the target: O_EXCL makes the name ours alone, mode 0o666 lets the umask decide."""
    while True:
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """
    Yield a temporary path beside `path`. When the block ends normally the temp file is flushed to disk and moved
    onto `path`; if the block raises, the temp file is removed and `path` is left exactly as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temp_files(path, suffix)
    tmp = _create_temp(directory, os.path.basename(path), suffix)
    usual_mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 minus the umask, read without touching the umask
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        # Set the mode again: a writer may have replaced our temp file with its own (safetensors' save_file
        # writes a private 0o600 file and renames it over the path it was given).
        if os.path.exists(path):  # replacing a file keeps its permissions (someone may have chosen them)
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        else:
            os.chmod(tmp, usual_mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
