"""
Writing a file so that a crash never leaves half of it behind.

The one idea: never write into the real file name. Write a temporary file in the *same directory*, make sure its
bytes are on disk, then ``os.replace`` it over the destination. On one file system that rename is atomic: a reader
(or a run resumed after SIGKILL) sees either the old complete file or the new complete file, never a mix.

    with atomic_path("out/last.pt") as tmp:
        torch.save(checkpoint, tmp)          # any writer that takes a path: torch.save, savefig, save_file, ...
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """
    Yield a temporary path beside `path`. When the block ends normally the temp file is flushed to disk and moved
    onto `path`; if the block raises, the temp file is removed and `path` is left exactly as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
