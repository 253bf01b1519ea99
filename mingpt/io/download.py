"""
Cached, verified, atomic HTTP downloads: the one place mingpt touches the network.

The idea to leave with: a file in the cache is either complete and verified, or absent. Bytes are streamed into
a temporary ``.part`` file *in the destination folder*, checked (length; sha256 when the caller or the server
gives one; a format check the caller passes), and only then moved into place with ``os.replace``, which is
atomic on one filesystem. A crash, a dropped connection or a corrupted transfer therefore never leaves a
half-written file that a later run would trust. While it downloads, a process holds a lock on its ``.part``
file; the lock dies with the process, so the next download of the same file can tell a ``.part`` left by a
killed run (no lock: removed) from one still being written by another process (locked: left alone).

    from mingpt.io.download import cached_download
    path = cached_download("https://example.com/gpt2/vocab.bpe", "gpt2/vocab.bpe", sha256="1ce1...")

The cache lives in ``~/.cache/mingpt`` unless the environment variable ``MINGPT_CACHE_DIR`` names another folder.
Every failure raises :class:`DownloadError` (a subclass of ``OSError``), whose message says where to put the
file by hand on a machine without internet.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import pathlib
import re
import socket
import time
from typing import Callable

try:
    import fcntl  # POSIX file locks; absent on Windows, where stale .part files are left for the user
except ImportError:  # pragma: no cover
    fcntl = None

import requests
from tqdm import tqdm

from mingpt.atomic import atomic_path
from mingpt.utils import check_int

__all__ = ["DownloadError", "ChecksumError", "DamagedCacheError", "cache_dir", "sha256_file", "download",
           "cached_download", "git_blob_sha1"]

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
    """The downloaded bytes do not have the expected sha256 (or fail the caller's format check); nothing was kept."""


class DamagedCacheError(DownloadError):
    """A cached file was damaged, so it was removed, and a fresh copy could not be downloaded."""


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


def _causes(error: BaseException):
    """The error and what it wraps, outermost first: requests hides the real OS error under urllib3's layers."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        nested = [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
        error = getattr(error, "reason", None) or (nested[0] if nested else None) or error.__context__


def _short_reason(error: BaseException) -> str:
    """One line saying why a request failed (no DNS, refused, timed out), instead of urllib3's paragraph."""
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror):
            return "cannot resolve the server's host name (no network or DNS?)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno is not None and cause.strerror:
            return cause.strerror.lower()
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke mid-transfer"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}"


def _is_offline(error: BaseException) -> bool:
    """No DNS or no route: another attempt a second later will not help, so we fail at once."""
    return any(isinstance(cause, socket.gaierror)
               or (isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH))
               for cause in _causes(error))


def _server_digest(response: requests.Response) -> tuple[str, str] | None:
    """
    The checksum a Hugging Face Hub answer carries, as (algorithm, hex). For a large (LFS) file, the Hub's first
    answer (a redirect to its CDN) has X-Linked-Etag: the file's sha256; a small file's ETag is its git blob id
    (sha1 of b"blob <size>\\0" + content). Weak or other-shaped ETags say nothing about the bytes: None.
    """
    for answer in [*response.history, response]:
        for header in ("X-Linked-Etag", "ETag"):
            value = answer.headers.get(header, "")
            if value.startswith("W/"):
                continue
            value = value.strip('"').lower()
            if re.fullmatch(r"[0-9a-f]{64}", value):
                return "sha256", value
            if re.fullmatch(r"[0-9a-f]{40}", value):
                return "git-sha1", value
    return None


def _fetch_once(url: str, tmp, timeout: float, progress: bool, hub_checksums: bool) -> tuple[str, tuple | None]:
    """
    One attempt: stream `url` into the open file `tmp`. Returns the sha256 of what was received and, with
    hub_checksums, the (algorithm, hex) the server says it should have. Raises _TransientError for failures
    worth a retry.
    """
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code in TRANSIENT_STATUS:
                raise _TransientError(f"HTTP {response.status_code} for {url}", status_code=response.status_code)
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code} for {url}", status_code=response.status_code)
            # Only trust Content-Length when the body is not re-encoded (gzip would change the byte count).
            declared = response.headers.get("Content-Length")
            expected = int(declared) if declared and not response.headers.get("Content-Encoding") else None
            server = _server_digest(response) if hub_checksums else None
            sha256 = hashlib.sha256()
            bar = None
            if progress:
                bar = tqdm(total=expected, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
            received = 0
            try:
                for block in response.iter_content(chunk_size=CHUNK_SIZE):
                    tmp.write(block)
                    sha256.update(block)  # hashed as it arrives: a multi-GB file is not read twice
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if expected is not None and received != expected:
                raise _TransientError(f"connection closed after {received} of {expected} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
        if _is_offline(e):
            raise DownloadError(f"could not reach {url}: {_short_reason(e)}") from e
        raise _TransientError(_short_reason(e)) from e
    except requests.RequestException as e:  # a malformed URL and the like: retrying will not help
        raise DownloadError(f"could not request {url}: {e}") from e
    return sha256.hexdigest(), server


def git_blob_sha1(path: str | os.PathLike) -> str:
    """
    The id git gives a file's contents, which the Hub reports as a small file's ETag and ``blobId``: the sha1 of
    ``b"blob <size>\\0"`` followed by the bytes (read in 1 MiB pieces, so a large file is never held whole).
    """
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_stale_parts(dest: pathlib.Path) -> None:
    """Remove .part files of `dest` left by killed downloads: those whose writer no longer holds their lock."""
    if fcntl is None or not dest.parent.is_dir():
        return
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        try:
            with open(part, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live download holds it
                part.unlink()
            logger.info("removed %s, left by an interrupted download", part)
        except OSError:  # locked by a download in progress, or already gone
            pass


def _created_folders(folder: pathlib.Path) -> list[pathlib.Path]:
    """The folders, deepest first, that creating `folder` will create (so a failure can remove them again)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _verify(url: str, dest: pathlib.Path, tmp_name: str, got_sha256: str, sha256: str | None, server,
            validate: Callable | None) -> None:
    """Raise ChecksumError unless the bytes in tmp_name are what the caller and the server say they should be."""
    problem = None
    if sha256 is not None and got_sha256 != sha256:
        problem = f"sha256 {got_sha256}, expected {sha256}"
    elif server is not None and server[0] == "sha256" and got_sha256 != server[1]:
        problem = f"sha256 {got_sha256}, but the server's ETag says {server[1]}"
    elif server is not None and server[0] == "git-sha1" and git_blob_sha1(tmp_name) != server[1]:
        problem = f"git blob id {git_blob_sha1(tmp_name)}, but the server's ETag says {server[1]}"
    elif validate is not None:
        try:
            validate(pathlib.Path(tmp_name))
        except ValueError as e:
            problem = str(e)
    if problem:
        raise ChecksumError(f"{url} downloaded with {problem}: the file is corrupted or has changed upstream, so "
                            f"it was not kept. {_manual_hint(url, dest)}")


def download(
    url: str,
    dest_path: str | os.PathLike,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
    progress: bool = False,
    hub_checksums: bool = False,
    validate: Callable[[pathlib.Path], None] | None = None,
) -> pathlib.Path:
    """
    Download `url` to `dest_path` atomically and return the path.

    sha256: expected hex digest; on mismatch nothing is written and ChecksumError is raised.
    timeout: seconds to wait for the connection and between received bytes (not for the whole file).
    retries: extra attempts after a transient failure (connection error, timeout, HTTP 5xx/429, short read),
        waiting backoff, 2*backoff, 4*backoff... seconds in between. Other HTTP errors, and a machine with no
        network (no DNS, no route), fail at once. Bytes that fail verification are fetched once more, at most.
    progress: show a tqdm progress bar.
    hub_checksums: also check the checksum a Hugging Face Hub answer carries (its ETag; see _server_digest).
    validate: called with the downloaded temp file before it is kept; raises ValueError if the content is bad
        (e.g. a weights file whose header does not fit its size).
    """
    if not isinstance(url, str) or not url:
        raise TypeError(f"url must be a non-empty string, got {url!r}")
    check_int(retries, "retries", low=0, high=10)
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    sha256 = _check_sha256(sha256)
    dest = pathlib.Path(dest_path)
    created = _created_folders(dest.parent)
    _remove_stale_parts(dest)
    try:
        return _download_with_retries(url, dest, sha256, timeout, retries, backoff, progress, hub_checksums, validate)
    except BaseException:
        for folder in created:  # leave no empty folders behind (deepest first; a non-empty one stops us)
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _download_with_retries(url, dest, sha256, timeout, retries, backoff, progress, hub_checksums, validate):
    last_problem, last_status, bad_content = "no attempt made", None, 0
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
                    if fcntl is not None:
                        fcntl.flock(tmp.fileno(), fcntl.LOCK_EX)  # "a download is writing this": see the docstring
                    got_sha256, server = _fetch_once(url, tmp, timeout, progress, hub_checksums)
                    tmp.flush()
                    _verify(url, dest, tmp_name, got_sha256, sha256, server, validate)  # still locked: still ours
            logger.info("downloaded %s to %s", url, dest)
            return dest
        except _TransientError as e:
            last_problem, last_status = str(e), e.status_code
        except ChecksumError as e:
            bad_content += 1  # bytes can be damaged in transit: one more try, but never loop on a bad upstream file
            if bad_content > 1 or attempt == retries:
                raise
            last_problem = str(e).split(": the file is", 1)[0]
        except DownloadError as e:
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

    With `sha256`, a cached file is re-verified; one that fails (e.g. edited or truncated by hand) is removed
    and replaced by a fresh download; if that download fails too, DamagedCacheError says both things.
    Example: ``cached_download(url, "gpt2/encoder.json", sha256=...)``.
    """
    relative = pathlib.PurePath(relative_path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"relative_path must be a relative path inside the cache, got {str(relative_path)!r}")
    sha256 = _check_sha256(sha256)
    dest = cache_dir() / relative
    if not dest.is_file():
        return download(url, dest, sha256=sha256, timeout=timeout, retries=retries, progress=progress)
    if sha256 is None:
        return dest
    actual = sha256_file(dest)
    if actual == sha256:
        return dest
    damage = f"the cached {dest} was damaged (sha256 {actual}, expected {sha256})"
    return redownload_damaged(dest, damage, lambda: download(url, dest, sha256=sha256, timeout=timeout,
                                                             retries=retries, progress=progress))


def redownload_damaged(path: pathlib.Path, damage: str, fetch: Callable[[], pathlib.Path]) -> pathlib.Path:
    """
    Remove a damaged cached file and fetch it again, once. `damage` says what was wrong ("the cached X was
    damaged (...)"); it is logged, and it opens the DamagedCacheError raised if the fresh download fails (e.g.
    offline), so the user learns what happened to the file and not only that the network is down.
    """
    logger.warning("%s; removed it and downloading it again", damage)
    path.unlink(missing_ok=True)
    try:
        return fetch()
    except DownloadError as e:
        raise DamagedCacheError(f"{damage}, so it was removed, and downloading a fresh copy failed: {e}",
                                status_code=e.status_code) from e
