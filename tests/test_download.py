"""Tests for mingpt.io.download: real HTTP over loopback, checksums, atomic writes, retries and the cache."""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import logging
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from mingpt.io import download
from mingpt.io.download import ChecksumError, DownloadError, cached_download
from tests.conftest import REPO_ROOT

PAYLOAD = b"hello, cache\n" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def served(tmp_path, serve_directory):
    """A loopback server with files/payload.bin; returns its base URL."""
    root = tmp_path / "site"
    (root / "files").mkdir(parents=True)
    (root / "files" / "payload.bin").write_bytes(PAYLOAD)
    return serve_directory(root)


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers per a script: 'ok', a status like 503, 'short' (promises more bytes than it sends) or 'bad'."""

    script: list = []
    requests_seen = 0

    def do_GET(self):
        type(self).requests_seen += 1
        action = self.script.pop(0) if self.script else "ok"
        if isinstance(action, int):
            self.send_response(action)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if action == "bad":  # the right length, damaged bytes: only a checksum can tell
            self.wfile.write(PAYLOAD[:-1] + b"?")
            return
        self.wfile.write(PAYLOAD if action == "ok" else PAYLOAD[:100])

    def log_message(self, format, *args):
        pass


@pytest.fixture()
def flaky():
    """A loopback server whose answers follow _FlakyHandler.script; yields (url, handler class)."""
    handler = type("Handler", (_FlakyHandler,), {"script": [], "requests_seen": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/payload.bin", handler
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing-listens-here"


def leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("MINGPT_CACHE_DIR", raising=False)
    assert download.cache_dir() == pathlib.Path.home() / ".cache" / "mingpt"
    monkeypatch.setenv("MINGPT_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert download.cache_dir() == tmp_path / "elsewhere"


def test_download_writes_file_and_verifies(served, tmp_path):
    dest = tmp_path / "out" / "deep" / "payload.bin"
    path = download.download(f"{served}/files/payload.bin", dest, sha256=PAYLOAD_SHA)
    assert path == dest and dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["payload.bin"]  # no temp file left beside it
    assert download.sha256_file(dest) == PAYLOAD_SHA


def test_checksum_mismatch_keeps_nothing(served, tmp_path):
    dest = tmp_path / "out" / "payload.bin"
    with pytest.raises(ChecksumError, match="expected " + "0" * 64) as info:
        download.download(f"{served}/files/payload.bin", dest, sha256="0" * 64)
    assert isinstance(info.value, OSError) and str(dest) in str(info.value)
    assert leftovers(dest.parent) == []


def test_http_404_fails_at_once_with_a_manual_hint(served, tmp_path, flaky):
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download.download(f"{served}/files/missing.bin", dest, retries=3, backoff=5.0)  # a retry would take 5 s
    assert info.value.status_code == 404
    assert "place it at" in str(info.value) and str(dest) in str(info.value)
    assert not dest.exists()


def test_transient_errors_are_retried(flaky, tmp_path):
    url, handler = flaky
    handler.script[:] = [503, "short", "ok"]
    path = download.download(url, tmp_path / "p.bin", sha256=PAYLOAD_SHA, retries=2, backoff=0.01)
    assert path.read_bytes() == PAYLOAD
    assert handler.requests_seen == 3


def test_retries_are_bounded(flaky, tmp_path):
    url, handler = flaky
    handler.script[:] = [503] * 10
    with pytest.raises(DownloadError, match="after 3 attempts") as info:
        download.download(url, tmp_path / "p.bin", retries=2, backoff=0.01)
    assert handler.requests_seen == 3 and info.value.status_code == 503
    assert leftovers(tmp_path) == []


def test_short_read_is_never_kept(flaky, tmp_path):
    url, handler = flaky
    handler.script[:] = ["short"] * 10
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download.download(url, tmp_path / "p.bin", retries=1, backoff=0.01)
    assert leftovers(tmp_path) == []


def test_connection_refused_is_a_clear_oserror(tmp_path, caplog):
    dest = tmp_path / "x" / "file.bin"
    with caplog.at_level(logging.WARNING, logger="mingpt.io.download"):
        with pytest.raises(OSError, match="download .* elsewhere and place it at") as info:
            download.download(closed_port_url(), dest, retries=1, backoff=0.01, timeout=2)
    assert isinstance(info.value, DownloadError) and info.value.status_code is None
    assert "retry 1/1" in caplog.text
    assert not dest.exists()


def test_progress_bar(served, tmp_path, capsys):
    download.download(f"{served}/files/payload.bin", tmp_path / "p.bin", progress=True)
    bar = capsys.readouterr().err.split("\r")[-1]  # the bar's final state: it redraws in place with \r
    # The whole 13,000-byte file counted against the declared size: "payload.bin: 100%|...| 13.0k/13.0k [...]"
    assert bar.startswith("payload.bin: 100%") and " 13.0k/13.0k " in bar, bar
    assert (tmp_path / "p.bin").read_bytes() == PAYLOAD
    download.download(f"{served}/files/payload.bin", tmp_path / "quiet.bin", progress=False)
    assert capsys.readouterr().err == ""  # no bar unless asked for


def test_cached_download_uses_the_cache(served, cache_dir):
    url = f"{served}/files/payload.bin"
    path = cached_download(url, "things/payload.bin", sha256=PAYLOAD_SHA)
    assert path == cache_dir / "things" / "payload.bin" and path.read_bytes() == PAYLOAD
    # A second call needs no network: the server address is now dead.
    assert cached_download(closed_port_url(), "things/payload.bin", sha256=PAYLOAD_SHA) == path
    assert cached_download(closed_port_url(), "things/payload.bin") == path


def test_cached_download_replaces_a_corrupted_cache_entry(served, cache_dir):
    target = cache_dir / "payload.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    path = cached_download(f"{served}/files/payload.bin", "payload.bin", sha256=PAYLOAD_SHA)
    assert path.read_bytes() == PAYLOAD


def test_cached_download_failure_leaves_cache_empty(served, cache_dir):
    with pytest.raises(ChecksumError):
        cached_download(f"{served}/files/payload.bin", "a/payload.bin", sha256="f" * 64)
    assert leftovers(cache_dir / "a") == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(sha256="abc"), ValueError, "64 hex"),
        (dict(retries=-1), ValueError, r"^retries must be an int in \[0, 10\], got -1$"),
        (dict(retries=11), ValueError, r"retries must be an int in \[0, 10\], got 11"),
        (dict(retries=True), ValueError, r"retries must be an int in \[0, 10\], got True"),  # not one retry
        (dict(timeout=0), ValueError, "timeout"),
    ],
)
def test_download_rejects_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        download.download("http://127.0.0.1:9/x", tmp_path / "x", **kwargs)


@pytest.mark.parametrize("relative", ["/etc/passwd", "../outside.bin", ""])
def test_cached_download_rejects_paths_outside_the_cache(cache_dir, relative):
    with pytest.raises(ValueError, match="relative_path"):
        cached_download("http://127.0.0.1:9/x", relative)


def test_download_rejects_non_string_url(tmp_path):
    with pytest.raises(TypeError, match="url"):
        download.download(None, tmp_path / "x")


# ---- hardening: verified content, stale temp files, offline machines, damaged caches -----------------------------


def test_checksum_error_is_retried_once_then_raised(flaky, tmp_path):
    url, handler = flaky
    handler.script[:] = ["bad", "ok"]  # damaged in transit once: the second copy is good
    assert download.download(url, tmp_path / "p.bin", sha256=PAYLOAD_SHA, backoff=0.01).read_bytes() == PAYLOAD
    assert handler.requests_seen == 2
    handler.script[:], handler.requests_seen = ["bad"] * 10, 0  # damaged upstream: one retry, not `retries`
    with pytest.raises(ChecksumError, match="expected " + PAYLOAD_SHA):
        download.download(url, tmp_path / "q.bin", sha256=PAYLOAD_SHA, retries=5, backoff=0.01)
    assert handler.requests_seen == 2 and not (tmp_path / "q.bin").exists()


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Sends the first half of PAYLOAD, then stalls (long enough for the test to kill the client)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
        self.wfile.flush()
        self.server.release.wait(10)

    def log_message(self, format, *args):
        pass


def test_part_file_of_a_killed_download_is_removed_by_the_next_download(served, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads, server.release = True, threading.Event()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    folder = tmp_path / "dl"
    dest = folder / "payload.bin"
    # The child imports mingpt.io.download without mingpt/__init__ (and so without torch): it starts in a blink.
    url = f"http://127.0.0.1:{server.server_address[1]}/p"
    code = (f"import sys, types; package = sys.modules['mingpt'] = types.ModuleType('mingpt'); "
            f"package.__path__ = [{str(REPO_ROOT / 'mingpt')!r}]; "
            f"from mingpt.io.download import download; download({url!r}, {str(dest)!r})")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 30
        while not list(folder.glob(".payload.bin.*.part")):
            assert time.monotonic() < deadline and child.poll() is None, "the download never started"
            time.sleep(0.05)
        time.sleep(0.3)  # the first half of the bytes has arrived; the server now stalls
        with open(next(folder.glob(".payload.bin.*.part")), "rb") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live download holds its lock
        child.send_signal(signal.SIGKILL)  # killed mid-download: no cleanup code runs
        child.wait()
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
    stale = list(folder.glob(".payload.bin.*.part"))
    assert len(stale) == 1
    # A .part that a live download holds (locked) is left alone; the killed one is removed.
    live = folder / ".payload.bin.live.part"
    live.write_bytes(b"in progress")
    with open(live, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        download.download(f"{served}/files/payload.bin", dest, sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(folder) == [".payload.bin.live.part", "payload.bin"]


def test_failed_download_leaves_no_empty_folders(tmp_path):
    dest = tmp_path / "cache" / "hub" / "owner" / "name" / "file.bin"
    (tmp_path / "cache").mkdir()
    with pytest.raises(DownloadError):
        download.download(closed_port_url(), dest, retries=0, timeout=2)
    assert leftovers(tmp_path / "cache") == []  # the folders this call created are gone; the existing one stays


def test_offline_machine_fails_at_once_with_one_clear_line(monkeypatch, tmp_path, caplog):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(download.time, "sleep", lambda s: pytest.fail("an offline machine should not be retried"))
    with caplog.at_level(logging.INFO, logger="mingpt.io.download"):
        with pytest.raises(DownloadError, match="cannot resolve the server's host name") as info:
            download.download("https://huggingface.co/gpt2/resolve/main/config.json", tmp_path / "c.json")
    message = str(info.value)
    assert "urllib3" not in message and "NameResolutionError" not in message and "\n" not in message
    assert "place it at" in message and not caplog.records


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Like the Hub: /resolve/big redirects to /cdn/big with X-Linked-Etag (sha256); /resolve/small has a git ETag."""

    big, small, etag = PAYLOAD, b'{"n_layer": 2}', None

    def do_GET(self):
        if self.path == "/resolve/big":
            self.send_response(302)
            self.send_header("Location", "/cdn/big")
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(PAYLOAD).hexdigest()}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.big if self.path == "/cdn/big" else self.small
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if self.path == "/resolve/small":
            good = b'{"n_layer": 2}'
            self.send_header("ETag", f'"{hashlib.sha1(b"blob %d" % len(good) + bytes(1) + good).hexdigest()}"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


@pytest.fixture()
def fake_hub():
    handler = type("Handler", (_HubHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_hub_etags_are_verified(fake_hub, tmp_path):
    url, handler = fake_hub
    assert download.download(f"{url}/resolve/big", tmp_path / "big", hub_checksums=True).read_bytes() == PAYLOAD
    assert download.download(f"{url}/resolve/small", tmp_path / "small", hub_checksums=True).is_file()
    handler.big, handler.small = PAYLOAD[:-1] + b"?", b'{"n_layer": 3}'  # same sizes, different bytes
    with pytest.raises(ChecksumError, match="server's ETag says " + PAYLOAD_SHA):
        download.download(f"{url}/resolve/big", tmp_path / "big2", hub_checksums=True, backoff=0.01)
    with pytest.raises(ChecksumError, match="git blob id"):
        download.download(f"{url}/resolve/small", tmp_path / "small2", hub_checksums=True, backoff=0.01)
    assert leftovers(tmp_path) == ["big", "small"]
    download.download(f"{url}/resolve/small", tmp_path / "other", backoff=0.01)  # other servers' ETags: not checked


def test_git_blob_sha1_has_one_owner_that_streams_what_git_hash_object_gives(tmp_path, monkeypatch):
    from mingpt.io import hub

    assert hub.git_blob_sha1 is download.git_blob_sha1  # the Hub's blobId check and the ETag check: one function
    (tmp_path / "f").write_bytes(b"hello\n")
    assert download.git_blob_sha1(tmp_path / "f") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: pytest.fail("read the whole file at once"))
    big = tmp_path / "big"
    big.write_bytes(bytes(3 << 20))
    expected = hashlib.sha1(b"blob %d\0" % (3 << 20) + bytes(3 << 20)).hexdigest()
    assert download.git_blob_sha1(big) == expected


def test_validate_rejects_content_before_it_is_kept(served, tmp_path):
    def must_be_json(path):
        if not path.read_bytes().startswith(b"{"):
            raise ValueError("not a JSON object")

    with pytest.raises(ChecksumError, match="not a JSON object"):
        download.download(f"{served}/files/payload.bin", tmp_path / "out" / "p.json", validate=must_be_json,
                          backoff=0.01)
    assert not (tmp_path / "out").exists()


def test_damaged_cache_offline_says_the_cached_file_was_damaged(cache_dir):
    target = cache_dir / "payload.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    damaged = r"cached .*payload\.bin was damaged \(sha256 .*removed.*failed"
    with pytest.raises(download.DamagedCacheError, match=damaged) as e:
        cached_download(closed_port_url(), "payload.bin", sha256=PAYLOAD_SHA, retries=0)
    assert isinstance(e.value, DownloadError) and not target.exists()


def test_hub_unreachable_answers_at_once_from_one_name_lookup(caplog, monkeypatch):
    """An unresolvable host is not worth retrying: one lookup, one log line, at once; a reachable one is fine."""
    import logging
    import time

    from mingpt.io.hub import hub_unreachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="mingpt.io.hub"):
        assert hub_unreachable("http://nonexistent.invalid") is True
    assert time.perf_counter() - start < 5
    assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()] == [
        next(r.getMessage() for r in caplog.records)]
    assert "cannot resolve nonexistent.invalid" in caplog.records[0].getMessage()
    assert hub_unreachable("http://127.0.0.1:9") is False  # the name resolves: whether it answers is download's job
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable("http://127.0.0.1:9") is True
