"""
Cached, verified, atomic HTTP downloads: the one place mingpt touches the network.

The idea to leave with: a file in the cache is either complete and verified, or absent. Bytes are streamed into
a temporary file *in the destination folder*, checked (length, then sha256 when one is given), and only then
moved into place with ``os.replace``, which is atomic on one filesystem. A crash, a dropped connection or a
corrupted transfer therefore never leaves a half-written file that a later run would trust.

    from mingpt.download import cached_download
    path = cached_download("https://example.com/gpt2/vocab.bpe", "gpt2/vocab.bpe", sha256="1ce1...")

The cache lives in ``~/.cache/mingpt`` unless the environment variable ``MINGPT_CACHE_DIR`` names another folder.
Every failure raises :class:`DownloadError` (a subclass of ``OSError``), whose message says where to put the
file by hand on a machine without internet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import time

import requests

from mingpt.atomic import atomic_path

__all__ = ["DownloadError", "ChecksumError", "cache_dir", "sha256_file", "download", "cached_download"]

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "MINGPT_CACHE_DIR"
CHUNK_SIZE = 1 << 20  # stream 1 MiB at a time: bounded memory for multi-GB weight files

# HTTP statuses worth another try: the server is busy or briefly broken. Anything else (404, 403) will not heal.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(OSError):
    """
    A file could not be fetched (network failure, HTTP error, or content that failed verification).

    status_code: the HTTP status when the server answered with an error (e.g. 404), else None.
    """

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class ChecksumError(DownloadError):
    """The downloaded (or cached) bytes do not have the expected sha256; nothing was kept."""


class _TransientError(Exception):
    """Internal: a failure that another attempt might fix (connection reset, timeout, 503, short read)."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def cache_dir() -> pathlib.Path:
    """The root of mingpt's download cache: $MINGPT_CACHE_DIR, else ~/.cache/mingpt (not created here)."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return pathlib.Path(override).expanduser()
    return pathlib.Path.home() / ".cache" / "mingpt"


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_hint(url: str, dest: pathlib.Path) -> str:
    return (
        f"If this machine has no internet access, download {url} elsewhere and place it at {dest} "
        f"(or point {CACHE_ENV_VAR} at a folder that already holds it)."
    )


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise ValueError(f"sha256 must be 64 hex characters, got {sha256!r}")
    return sha256.lower()


def _fetch_once(url: str, tmp, timeout: float, progress: bool) -> None:
    """One attempt: stream `url` into the open file `tmp`. Raises _TransientError for failures worth a retry."""
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code in TRANSIENT_STATUS:
                raise _TransientError(f"HTTP {response.status_code} for {url}", status_code=response.status_code)
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code} for {url}", status_code=response.status_code)
            # Only trust Content-Length when the body is not re-encoded (gzip would change the byte count).
            declared = response.headers.get("Content-Length")
            expected = int(declared) if declared and not response.headers.get("Content-Encoding") else None
            bar = None
            if progress:
                from tqdm import tqdm  # imported lazily: only progress bars need it

                bar = tqdm(total=expected, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
            received = 0
            try:
                for block in response.iter_content(chunk_size=CHUNK_SIZE):
                    tmp.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if expected is not None and received != expected:
                raise _TransientError(f"connection closed after {received} of {expected} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
        raise _TransientError(f"{type(e).__name__}: {e}") from e
    except requests.RequestException as e:  # a malformed URL and the like: retrying will not help
        raise DownloadError(f"could not request {url}: {e}") from e


def download(
    url: str,
    dest_path: str | os.PathLike,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
    progress: bool = False,
) -> pathlib.Path:
    """
    Download `url` to `dest_path` atomically and return the path.

    sha256: expected hex digest; on mismatch nothing is written and ChecksumError is raised.
    timeout: seconds to wait for the connection and between received bytes (not for the whole file).
    retries: extra attempts after a transient failure (connection error, timeout, HTTP 5xx/429, short read),
        waiting backoff, 2*backoff, 4*backoff... seconds in between. Other HTTP errors fail at once.
    progress: show a tqdm progress bar.
    """
    if not isinstance(url, str) or not url:
        raise TypeError(f"url must be a non-empty string, got {url!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise ValueError(f"retries must be an int in [0, 10], got {retries!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    sha256 = _check_sha256(sha256)
    dest = pathlib.Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)

    last_problem, last_status = "no attempt made", None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, last_problem, attempt, retries,
                           delay)
            time.sleep(delay)
        try:
            # A failed or corrupt download raises inside the block, so the temp file never becomes `dest`.
            with atomic_path(dest, suffix=".part") as tmp_name:
                with open(tmp_name, "wb") as tmp:
                    _fetch_once(url, tmp, timeout, progress)
                if sha256 is not None:
                    actual = sha256_file(tmp_name)
                    if actual != sha256:
                        raise ChecksumError(
                            f"{url} downloaded with sha256 {actual}, expected {sha256}: the file is corrupted or "
                            f"has changed upstream, so it was not kept. {_manual_hint(url, dest)}"
                        )
            logger.info("downloaded %s to %s", url, dest)
            return dest
        except _TransientError as e:
            last_problem, last_status = str(e), e.status_code
        except DownloadError as e:
            if isinstance(e, ChecksumError):
                raise
            raise DownloadError(f"{e}. {_manual_hint(url, dest)}", status_code=e.status_code) from e
    raise DownloadError(
        f"could not download {url} after {retries + 1} attempts ({last_problem}). {_manual_hint(url, dest)}",
        status_code=last_status,
    )


def cached_download(
    url: str,
    relative_path: str | os.PathLike,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = False,
) -> pathlib.Path:
    """
    Return ``cache_dir() / relative_path``, downloading `url` there first if it is not cached yet.

    With `sha256`, a cached file is re-verified; one that fails (e.g. edited or truncated by hand) is
    replaced by a fresh download. Example: ``cached_download(url, "gpt2/encoder.json", sha256=...)``.
    """
    relative = pathlib.PurePath(relative_path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"relative_path must be a relative path inside the cache, got {str(relative_path)!r}")
    sha256 = _check_sha256(sha256)
    dest = cache_dir() / relative
    if dest.is_file():
        if sha256 is None or sha256_file(dest) == sha256:
            return dest
        logger.warning("cached %s does not match its sha256; downloading it again", dest)
    return download(url, dest, sha256=sha256, timeout=timeout, retries=retries, progress=progress)
