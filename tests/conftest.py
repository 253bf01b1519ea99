"""
Shared fixtures: where the real data lives, a private download cache, and a loopback HTTP server.

Tests never touch the network. Real data (GPT-2's vocabulary files, Tiny Shakespeare) is read from
``../shared/data`` beside the repository (override with MINGPT_DATA_DIR); code that downloads is pointed at a
``http.server`` on 127.0.0.1 that serves local files in the real URL layout.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import threading

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The folder holding gpt2/encoder.json, gpt2/vocab.bpe and tinyshakespeare/input.txt."""
    path = pathlib.Path(os.environ.get("MINGPT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "gpt2" / "encoder.json").is_file():
        raise FileNotFoundError(f"test data not found in {path}; set MINGPT_DATA_DIR to the shared data folder")
    return path


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty mingpt download cache for this test only (MINGPT_CACHE_DIR)."""
    path = tmp_path / "mingpt-cache"
    monkeypatch.setenv("MINGPT_CACHE_DIR", str(path))
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture()
def serve_directory():
    """
    Factory fixture: ``base_url = serve_directory(root)`` serves the files under `root` on 127.0.0.1 until the
    test ends. Lay files out under `root` in the real site's URL layout and point the code's base URL at it.
    """
    servers = []

    def start(root) -> str:
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
