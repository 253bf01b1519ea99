"""
Where a data file comes from: one rule for every project, notebook, test and tokenizer, so that a plain clone
works anywhere, online or off.

A user's machine and this repository's test machine get data the same way, in this order:
  1. an explicit path, when the caller passes one (a project's --data.path, BPETokenizer(encoder, vocab));
  2. $MINGPT_DATA_DIR, a folder of local copies laid out like the cache (gpt2/encoder.json, ...);
  3. mingpt's download cache: downloaded once from a pinned URL, sha256-verified, then reused offline.
No code outside the tests knows about any other folder.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Sequence

from mingpt.io.download import ChecksumError, DownloadError, cache_dir, cached_download, sha256_file

__all__ = ["DATA_DIR_ENV_VAR", "DataFile", "find_data", "read_text", "fetch_gpt2_vocab", "cached_gpt2_vocab",
           "gpt2_vocab_cache_paths"]

DATA_DIR_ENV_VAR = "MINGPT_DATA_DIR"  # a folder of local copies, laid out like the download cache
GPT2_VOCAB_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"
VOCAB_URL_ENV_VAR = "MINGPT_GPT2_VOCAB_URL"
GPT2_VOCAB_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


@dataclass(frozen=True)
class DataFile:
    """A file mingpt knows how to get: its path inside a data folder (and the cache), its URL and its sha256."""

    name: str  # e.g. "tinyshakespeare/input.txt"
    url: str
    sha256: str




def find_data(files: Sequence[DataFile], what: str) -> list[pathlib.Path]:
    """
    Local paths of `files`: in $MINGPT_DATA_DIR when it is set, else in mingpt's download cache, downloading
    (once, verified) whatever is not cached yet. `what` names the files for error messages ("Tiny Shakespeare").

    Offline with nothing cached, the DownloadError says in one line what is missing and the two ways to provide
    it: a local copy (MINGPT_DATA_DIR, or the file placed in the cache) or one run on a machine with network.
    """
    local = os.environ.get(DATA_DIR_ENV_VAR)
    if local:
        folder = pathlib.Path(local).expanduser()
        paths = [folder / f.name for f in files]
        missing = [f.name for f, p in zip(files, paths) if not p.is_file()]
        if missing:  # the user chose local copies: saying so beats a silent download
            raise FileNotFoundError(
                f"{DATA_DIR_ENV_VAR}={local} does not hold {', '.join(missing)} ({what}); copy the file(s) there, "
                f"or unset {DATA_DIR_ENV_VAR} to download them into mingpt's cache"
            )
        return paths
    paths = []
    for f in files:
        try:
            paths.append(cached_download(f.url, f.name, sha256=f.sha256))
        except ChecksumError:
            raise  # the bytes arrived but were wrong: its own message says so
        except DownloadError as e:
            raise DownloadError(_unavailable(files, what, f, e), status_code=e.status_code) from e
    return paths


def _unavailable(files: Sequence[DataFile], what: str, failed: DataFile, error: DownloadError) -> str:
    """One line: what is missing, why the download failed, and the two ways to provide it."""
    root = cache_dir()
    missing = [f for f in files if not (root / f.name).is_file()]
    names = ", ".join(f.name for f in missing)
    reason = _why(error)
    return (
        f"{what} is not available: {names} {'is' if len(missing) == 1 else 'are'} not in mingpt's download cache "
        f"and could not be downloaded from {failed.url} ({reason}). Either give a local copy (for each missing "
        f"file, place it at {', '.join(str(root / f.name) for f in missing)}, or set {DATA_DIR_ENV_VAR} to a "
        f"folder holding {', '.join(f.name for f in files)}), or run once on a machine with network access, "
        f"which downloads and caches {'it' if len(missing) == 1 else 'them'}"
    )


def _why(error: BaseException) -> str:
    """What made a download fail, in a few words: the cause that happened, not the most common one."""
    cause = error
    while cause is not None:  # a damaged cached copy wraps the error of its fresh download
        if isinstance(cause, ChecksumError):  # the server answered, with other bytes than the pinned ones
            return "the server answered, but with bytes whose sha256 is not the pinned one: a changed or wrong mirror"
        cause = cause.__cause__
    if error.status_code:
        return f"HTTP {error.status_code}"
    return "no connection"


def read_text(path: str | os.PathLike) -> str:
    """The contents of a UTF-8 text file, with errors that name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no text file at {os.fspath(path)!r}; check the path (a UTF-8 text file)")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{os.fspath(path)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None


# ---- GPT-2's vocabulary files (encoder.json, vocab.bpe; their format: mingpt.io.gpt2_vocab) -------------------------


def gpt2_vocab_url(base_url: str | None = None) -> str:
    return (base_url or os.environ.get(VOCAB_URL_ENV_VAR) or GPT2_VOCAB_URL).rstrip("/")


def gpt2_vocab_cache_paths() -> tuple[pathlib.Path, pathlib.Path]:
    """Where mingpt keeps GPT-2's encoder.json and vocab.bpe: <cache>/gpt2/ (see mingpt.io.download.cache_dir)."""
    return cache_dir() / "gpt2" / "encoder.json", cache_dir() / "gpt2" / "vocab.bpe"


def cached_gpt2_vocab() -> tuple[pathlib.Path, pathlib.Path] | None:
    """GPT-2's files if both are already in the cache with the right sha256 (no network), else None."""
    paths = gpt2_vocab_cache_paths()
    if all(p.is_file() and sha256_file(p) == GPT2_VOCAB_SHA256[p.name] for p in paths):
        return paths
    return None


def fetch_gpt2_vocab(base_url: str | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """GPT-2's encoder.json and vocab.bpe: local copies in $MINGPT_DATA_DIR, else downloaded once (verified) into
    the cache; base_url defaults to $MINGPT_GPT2_VOCAB_URL."""
    base_url = gpt2_vocab_url(base_url)
    files = [DataFile(f"gpt2/{name}", f"{base_url}/{name}", GPT2_VOCAB_SHA256[name])
             for name in ("encoder.json", "vocab.bpe")]
    encoder_path, vocab_path = find_data(files, "GPT-2's vocabulary")  # $MINGPT_DATA_DIR, else the cache
    return encoder_path, vocab_path
