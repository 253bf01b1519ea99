"""
Shared fixtures: the small random GPTs the tests build, where the real data lives, a private download cache, and a
loopback HTTP server.

Real data (GPT-2's vocabulary files, Tiny Shakespeare) comes from local copies when $MINGPT_DATA_DIR (default:
``../shared/data`` beside the repository) holds them, so a machine without network runs every test; otherwise from
the same cached, verified downloads a user's first run makes. Code that downloads is tested against a
``http.server`` on 127.0.0.1 that serves local files in the real URL layout. `plain_clone` is the repository as a
user's clone: copied into an empty folder, with no data folder beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import pathlib
import shutil
import subprocess
import threading

import pytest
import torch

from mingpt.cfgnode import CfgNode
from mingpt.model import GPT
from mingpt.utils import set_seed

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Several test processes share the cores (pytest.ini runs one per core): one torch thread each, for this
    # process and the notebooks, projects and scripts it starts. Threads that outnumber the cores wait on each
    # other, and tiny models then train many times slower than on a single thread.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- tiny GPTs
@pytest.fixture(scope="session")
def tiny_gpt_config():
    """A factory of small GPT configs, ``tiny_gpt_config(n_layer=3, vocab_size=97)``: what a test does not name is
    a 2-layer, 4-head, 32-wide model over 50 tokens with a block of 16 (and GPT's default dropout, 0.1)."""

    def make(**overrides) -> CfgNode:
        config = GPT.get_default_config()
        config.merge_from_dict(dict(n_layer=2, n_head=4, n_embd=32, vocab_size=50, block_size=16))
        config.merge_from_dict(overrides)
        return config

    return make


@pytest.fixture(scope="session")
def tiny_gpt(tiny_gpt_config):
    """
    The one factory every test file builds its models with: ``tiny_gpt(seed=0, dropout=None, ln_noise=0.0,
    bias_noise=0.0, **config)`` seeds everything with `seed`, then builds ``GPT(tiny_gpt_config(**config))``, in
    training mode as GPT's constructor leaves it. `dropout` sets all three dropout rates. `ln_noise`/`bias_noise`
    redraw LayerNorm gains as 1 + ln_noise * N(0, 1) and biases as bias_noise * N(0, 1): GPT starts with gains of
    one and biases of zero, so a computation that forgot a gain or a bias would still pass on a fresh model.
    """

    def make(seed: int = 0, dropout: float | None = None, ln_noise: float = 0.0, bias_noise: float = 0.0,
             **config) -> GPT:
        if dropout is not None:
            config.update(embd_pdrop=dropout, resid_pdrop=dropout, attn_pdrop=dropout)
        set_seed(seed)
        model = GPT(tiny_gpt_config(**config))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ln_noise and name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                    p.copy_(1 + ln_noise * torch.randn_like(p))
                elif bias_noise and name.endswith("bias"):
                    p.copy_(bias_noise * torch.randn_like(p))
        return model

    return make


# ---------------------------------------------------------------------------------------------- data
DATA_FILES = ("gpt2/encoder.json", "gpt2/vocab.bpe", "tinyshakespeare/input.txt")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """
    A folder holding gpt2/encoder.json, gpt2/vocab.bpe and tinyshakespeare/input.txt: $MINGPT_DATA_DIR (default
    ../shared/data) when it holds them, else mingpt's download cache after the downloads a user's first run makes.
    """
    local = pathlib.Path(os.environ.get("MINGPT_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if all((local / name).is_file() for name in DATA_FILES):
        return local
    from mingpt.data import TINY_SHAKESPEARE
    from mingpt.io.data_files import fetch_gpt2_vocab, find_data
    from mingpt.io.download import cache_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MINGPT_DATA_DIR", raising=False)  # it did not hold the files: download them instead
        fetch_gpt2_vocab()
        find_data([TINY_SHAKESPEARE], "Tiny Shakespeare")
    return cache_dir()  # the cache has the data folder's layout


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty mingpt download cache for this test only (MINGPT_CACHE_DIR), and no local data folder."""
    path = tmp_path / "mingpt-cache"
    monkeypatch.setenv("MINGPT_CACHE_DIR", str(path))
    monkeypatch.delenv("MINGPT_DATA_DIR", raising=False)  # else local copies would be found before the cache
    return path


@dataclasses.dataclass
class PlainClone:
    root: pathlib.Path  # the copied repository
    cache: pathlib.Path  # a mingpt download cache holding what a first online run downloads
    env: dict  # the environment to run it in: that cache, the copy's mingpt, no MINGPT_DATA_DIR


@pytest.fixture(scope="session")
def plain_clone(tmp_path_factory, data_dir) -> PlainClone:
    """
    The repository as a user's `git clone`: its files (tracked, plus new ones not ignored) copied into an empty
    folder with no data folder beside it, and a MINGPT_CACHE_DIR pre-filled as a previous online run leaves it
    (the files at their cache paths). Nothing in it may look anywhere else for data.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    root = tmp_path_factory.mktemp("plain-clone") / "mingpt"  # the folder beside it stays empty
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():  # a file deleted in the working tree is still listed until committed
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    cache = tmp_path_factory.mktemp("first-run-cache")
    for name in DATA_FILES:
        (cache / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / name, cache / name)
    env = {key: value for key, value in os.environ.items() if key != "MINGPT_DATA_DIR"}
    env.update(MINGPT_CACHE_DIR=str(cache), PYTHONPATH=str(root), MINGPT_GPT2_VOCAB_URL="http://127.0.0.1:9")
    return PlainClone(root, cache, env)


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
