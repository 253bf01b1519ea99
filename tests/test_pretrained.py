"""
Loading GPT-2 weights without transformers, from disk and from a (loopback) Hub, and saving them back.

transformers is the oracle: a tiny random GPT2LMHeadModel is saved by transformers, loaded by mingpt, and both
must give the same logits and the same greedy tokens; mingpt's export must load in transformers. The Hub is a
local http.server serving files in the Hub's URL layout, {root}/{repo}/resolve/{revision}/{file}, with a handler
that counts requests, answers 401 for "gated" repos and can drop a connection half-way through a file.
"""

import functools
import hashlib
import http.server
import json
import pathlib
import shutil
import subprocess
import sys
import threading

import pytest
import safetensors.torch as safetensors_torch
import torch
import transformers

from mingpt.io.download import DownloadError
from mingpt.io.hub import model_source
from mingpt.io.safe_load import UnsafeFileError
from mingpt.model import GPT
from tests.conftest import REPO_ROOT
from tests.test_checkpoint import load_unsafely, write_malicious_pickle

VOCAB, BLOCK = 320, 48


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=BLOCK,
        initializer_range=0.3,  # large random weights, so greedy decoding wanders instead of repeating
        bos_token_id=0, eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def saved(hf_model, tmp_path_factory):
    """Folders written from the same weights: transformers' safetensors, a .bin-only one, a GPT2Model (no prefix)."""
    root = tmp_path_factory.mktemp("saved")
    hf_model.save_pretrained(root / "safetensors")
    # transformers 5 writes only safetensors; older versions wrote this (a pickled state dict) by default.
    (root / "bin").mkdir()
    shutil.copy(root / "safetensors" / "config.json", root / "bin" / "config.json")
    torch.save(hf_model.state_dict(), root / "bin" / "pytorch_model.bin")
    # The official gpt2 checkpoints are GPT2Model weights: keys like 'h.0.attn.c_attn.weight', no lm_head.
    hf_model.transformer.save_pretrained(root / "base")
    return root


def prompt(T=16, B=2, seed=1):
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def assert_same_logits(model, hf_model, idx=None):
    idx = prompt() if idx is None else idx
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf_model(idx).logits, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ a fake Hub


@pytest.fixture()
def hub(tmp_path):
    """hub(files={'owner/name': folder}, drop=('model.safetensors',), etags={'model.safetensors': sha256}) -> server
    with .url and .requests."""
    servers = []

    def start(files, revision="main", drop=(), etags=None):
        root = tmp_path / "hub-root"
        for repo, folder in files.items():
            dest = root / repo / "resolve" / revision
            dest.mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                shutil.copy(path, dest / path.name)
        requested = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                requested.append(self.path)
                if self.path.startswith("/gated/"):
                    return self.send_error(401)
                if etags and self.path.rsplit("/", 1)[-1] in etags:  # the Hub's checksum header for LFS files
                    data = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("X-Linked-Etag", f'"{etags[self.path.rsplit("/", 1)[-1]]}"')
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if self.path.rsplit("/", 1)[-1] in drop:  # promise the whole file, send half, hang up
                    data = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                return super().do_GET()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        server.requests = requested
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------ from disk


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_local_safetensors_gives_transformers_logits(saved, hf_model, attention):
    model = GPT.from_pretrained(saved / "safetensors", attention=attention)
    assert not model.training  # loaded for inference, like transformers
    assert model.config.attention == attention
    assert_same_logits(model, hf_model)


def test_local_bin_is_read_safely(saved, hf_model, monkeypatch):
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    model = GPT.from_pretrained(str(saved / "bin"))
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    assert_same_logits(model, hf_model)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pytorch_model_bin_is_refused_and_never_runs(saved, hf_model, tmp_path, writer):
    folder, marker = tmp_path / "evil", tmp_path / "pwned"
    folder.mkdir()
    shutil.copy(saved / "bin" / "config.json", folder / "config.json")
    write_malicious_pickle(folder / "pytorch_model.bin", hf_model.state_dict(), marker, writer)
    with pytest.raises(UnsafeFileError, match="refusing to load .*pytorch_model.bin.*can run arbitrary code"):
        GPT.from_pretrained(folder)
    assert not marker.exists()
    load_unsafely(folder / "pytorch_model.bin", writer)  # the payload is real: an unsafe load does run it
    assert marker.exists()


NO_TRANSFORMERS = """
import json, sys
sys.modules["transformers"] = None  # from here on, any `import transformers` raises ImportError
try:
    import transformers
    raise SystemExit("transformers is still importable")
except ImportError:
    pass
import torch
from mingpt.model import GPT
model = GPT.from_pretrained(sys.argv[1])
print(json.dumps(model.generate(torch.tensor(json.loads(sys.argv[2])), 12).tolist()))
"""


def test_from_pretrained_works_without_transformers(saved, hf_model, tmp_path):
    """A save_pretrained folder loads and generates in a Python where transformers cannot be imported."""
    GPT.from_pretrained(saved / "safetensors").save_pretrained(tmp_path / "export")
    idx = prompt(T=6, B=2, seed=5)
    result = subprocess.run([sys.executable, "-c", NO_TRANSFORMERS, str(tmp_path / "export"), json.dumps(idx.tolist())],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = hf_model.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=12, do_sample=False,
                                 pad_token_id=0, eos_token_id=None)
    assert json.loads(result.stdout) == expected.tolist()


def test_gpt2model_keys_without_prefix_and_lm_head(saved, hf_model):
    keys = safetensors_torch.load_file(saved / "base" / "model.safetensors").keys()
    assert "h.0.attn.c_attn.weight" in keys and not any(k.startswith(("transformer.", "lm_head")) for k in keys)
    assert_same_logits(GPT.from_pretrained(saved / "base"), hf_model)


def test_greedy_generation_matches_transformers(saved, hf_model):
    model = GPT.from_pretrained(saved / "safetensors")
    idx = prompt(T=8, B=2, seed=3)
    expected = hf_model.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=24, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    ours = model.generate(idx, 24)
    assert torch.equal(ours, expected)
    assert len(set(ours[0, 8:].tolist())) > 4  # not a degenerate repeat of one token


def test_config_overrides_and_dtype(saved):
    model = GPT.from_pretrained(saved / "safetensors", resid_pdrop=0.0, embd_pdrop=0.0, dtype="bfloat16")
    assert model.config.resid_pdrop == 0.0 and model.config.embd_pdrop == 0.0 and model.config.attn_pdrop == 0.1
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    with pytest.raises(TypeError, match="n_layer"):
        GPT.from_pretrained(saved / "safetensors", n_layer=4)
    with pytest.raises(ValueError, match="dtype"):
        GPT.from_pretrained(saved / "safetensors", dtype="int8")


# ------------------------------------------------------------------------------------------------ saving


@pytest.mark.parametrize("tie_weights", [True, False])
def test_save_pretrained_loads_in_transformers(tmp_path, tie_weights):
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, block_size=BLOCK,
                                tie_weights=tie_weights))
    torch.manual_seed(0)
    model = GPT(config).eval()
    out = tmp_path / "export"
    model.save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"

    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    assert_same_logits(model, hf)
    assert (hf.lm_head.weight is hf.transformer.wte.weight) == tie_weights
    again = GPT.from_pretrained(out)
    assert again.config.tie_weights == tie_weights
    assert_same_logits(again, hf)


def test_save_pretrained_rejects_non_gpt(tmp_path):
    with pytest.raises(TypeError, match="GPT"):
        GPT.save_pretrained(torch.nn.Linear(2, 2), tmp_path)


# ------------------------------------------------------------------------------------------------ from the Hub


def test_hub_download_then_cache_makes_no_request(saved, hf_model, hub, cache_dir):
    server = hub({"tiny/gpt2": saved / "safetensors"})
    model = GPT.from_pretrained("tiny/gpt2", endpoint=server.url, progress=False)
    assert_same_logits(model, hf_model)
    assert server.requests == ["/tiny/gpt2/resolve/main/config.json", "/tiny/gpt2/resolve/main/model.safetensors"]
    assert (cache_dir / "hub" / "tiny" / "gpt2" / "main" / "model.safetensors").is_file()

    server.shutdown()  # a second load must not need the network at all
    assert_same_logits(GPT.from_pretrained("tiny/gpt2", endpoint=server.url), hf_model)
    assert len(server.requests) == 2


def test_known_name_maps_to_official_repo_via_env_endpoint(saved, hf_model, hub, cache_dir, monkeypatch):
    server = hub({"openai-community/gpt2": saved / "base"})  # the official checkpoint's layout: no prefix
    monkeypatch.setenv("MINGPT_HF_ENDPOINT", server.url)
    assert_same_logits(GPT.from_pretrained("gpt2", progress=False), hf_model)
    assert server.requests[0] == "/openai-community/gpt2/resolve/main/config.json"


def test_hub_falls_back_to_bin_only_when_safetensors_is_absent(saved, hf_model, hub, cache_dir):
    server = hub({"old/gpt2": saved / "bin"})
    assert_same_logits(GPT.from_pretrained("old/gpt2", endpoint=server.url, progress=False), hf_model)
    assert [r.rsplit("/", 1)[-1] for r in server.requests] == ["config.json", "model.safetensors", "pytorch_model.bin"]
    GPT.from_pretrained("old/gpt2", endpoint=server.url)  # the cached .bin is used: no new 404 for safetensors
    assert len(server.requests) == 3


def test_revision_and_cache_dir_arguments(saved, hub, tmp_path):
    server = hub({"tiny/gpt2": saved / "safetensors"}, revision="v1.0")
    GPT.from_pretrained("tiny/gpt2", revision="v1.0", endpoint=server.url, cache_dir=tmp_path / "c", progress=False)
    assert (tmp_path / "c" / "hub" / "tiny" / "gpt2" / "v1.0" / "config.json").is_file()


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="gpt2-medium.*gpt2-xl"):
        GPT.from_pretrained("gpt3")
    with pytest.raises(FileNotFoundError, match="no directory"):
        GPT.from_pretrained("./no/such/model")
    with pytest.raises(ValueError, match="revision"):
        GPT.from_pretrained("tiny/gpt2", revision="../../etc")


def test_an_unsupported_architecture_is_refused_before_downloading_weights(saved, hub, cache_dir, tmp_path):
    folder = tmp_path / "mixtral"
    shutil.copytree(saved / "safetensors", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "mixtral"}))
    server = hub({"mistralai/mixtral": folder})
    with pytest.raises(ValueError, match="model_type='mixtral'"):
        GPT.from_pretrained("mistralai/mixtral", endpoint=server.url)
    assert server.requests == ["/mistralai/mixtral/resolve/main/config.json"]
    with pytest.raises(ValueError, match="model_type='mixtral'"):
        GPT.from_pretrained(folder)


def test_missing_key_is_named(saved, tmp_path):
    folder = tmp_path / "missing"
    shutil.copytree(saved / "safetensors", folder)
    tensors = safetensors_torch.load_file(folder / "model.safetensors")
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    safetensors_torch.save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KeyError, match=r"transformer\.h\.1\.mlp\.c_fc\.bias"):
        GPT.from_pretrained(folder)


def test_shape_mismatch_is_named(saved, tmp_path):
    folder = tmp_path / "mismatch"
    shutil.copytree(saved / "safetensors", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_positions": BLOCK * 2}))
    expected = rf"transformer\.wpe\.weight: checkpoint \({BLOCK}, 32\) vs model \({BLOCK * 2}, 32\)"
    with pytest.raises(ValueError, match=expected):
        GPT.from_pretrained(folder)


def test_missing_config_key_and_missing_weights(saved, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    config = json.loads((saved / "safetensors" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "n_head"}))
    with pytest.raises(KeyError, match="n_head"):
        GPT.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="model.safetensors nor pytorch_model.bin"):
        GPT.from_pretrained(folder)


def test_unknown_revision_names_repo_and_revision(saved, hub, cache_dir):
    server = hub({"tiny/gpt2": saved / "safetensors"})
    with pytest.raises(FileNotFoundError, match=r"'tiny/gpt2' at revision 'nope'.*404"):
        GPT.from_pretrained("tiny/gpt2", revision="nope", endpoint=server.url)


def test_gated_repo_is_a_permission_error(hub, cache_dir, tmp_path):
    server = hub({})
    with pytest.raises(PermissionError, match="401"):
        GPT.from_pretrained("gated/model", endpoint=server.url)


def test_connection_dropped_mid_download_leaves_no_file(saved, hf_model, hub, cache_dir):
    server = hub({"tiny/gpt2": saved / "safetensors"}, drop=("model.safetensors",))
    with pytest.raises(DownloadError, match="local directory"):
        GPT.from_pretrained("tiny/gpt2", endpoint=server.url, retries=1, progress=False)
    assert server.requests.count("/tiny/gpt2/resolve/main/model.safetensors") == 2  # tried again once
    folder = cache_dir / "hub" / "tiny" / "gpt2" / "main"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]  # no partial weights, no temp file
    # Once the network behaves, the same call succeeds and reuses the cached config.
    healthy = hub({"tiny/gpt2": saved / "safetensors"})
    assert_same_logits(GPT.from_pretrained("tiny/gpt2", endpoint=healthy.url), hf_model)
    assert healthy.requests == ["/tiny/gpt2/resolve/main/model.safetensors"]


def test_offline_error_says_what_to_do(cache_dir):
    with pytest.raises(DownloadError, match="local directory and pass"):
        GPT.from_pretrained("tiny/gpt2", endpoint="http://127.0.0.1:9", retries=0)


def test_model_source_rule(tmp_path):
    assert model_source(tmp_path).directory == tmp_path
    assert model_source("gpt2-xl").repo_id == "openai-community/gpt2-xl"
    assert model_source("distilbert/distilgpt2").repo_id == "distilbert/distilgpt2"
    with pytest.raises(TypeError):
        model_source(None)


# ------------------------------------------------------------------------------------------------ hardening


def copy_with(folder, tmp_path, name, change):
    """A copy of a model folder whose file `name` has its bytes replaced by change(bytes)."""
    out = tmp_path / f"changed-{name}"
    shutil.copytree(folder, out)
    (out / name).write_bytes(change((out / name).read_bytes()))
    return out


def test_truncated_safetensors_from_the_hub_never_enters_the_cache(saved, hub, cache_dir, tmp_path):
    cut = copy_with(saved / "safetensors", tmp_path, "model.safetensors", lambda data: data[: len(data) - 1000])
    server = hub({"tiny/gpt2": cut})  # the server's copy is itself cut: its Content-Length agrees with it
    with pytest.raises(DownloadError, match=r"is truncated: tensor .* needs bytes"):
        GPT.from_pretrained("tiny/gpt2", endpoint=server.url, progress=False)
    assert server.requests.count("/tiny/gpt2/resolve/main/model.safetensors") == 2  # bad content: one retry
    assert sorted(p.name for p in (cache_dir / "hub" / "tiny" / "gpt2" / "main").iterdir()) == ["config.json"]


def test_tampered_weights_fail_the_hubs_sha256(saved, hub, cache_dir, tmp_path):
    good = (saved / "safetensors" / "model.safetensors").read_bytes()
    flipped = copy_with(saved / "safetensors", tmp_path, "model.safetensors", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    server = hub({"tiny/gpt2": flipped}, etags={"model.safetensors": hashlib.sha256(good).hexdigest()})
    with pytest.raises(DownloadError, match="server's ETag says " + hashlib.sha256(good).hexdigest()):
        GPT.from_pretrained("tiny/gpt2", endpoint=server.url, progress=False)  # a well-formed file: only sha256 tells
    assert not (cache_dir / "hub" / "tiny" / "gpt2" / "main" / "model.safetensors").exists()


def test_damaged_cached_file_is_removed_and_downloaded_again_once(saved, hf_model, hub, cache_dir, caplog):
    server = hub({"tiny/gpt2": saved / "safetensors"})
    GPT.from_pretrained("tiny/gpt2", endpoint=server.url, progress=False)
    cached = cache_dir / "hub" / "tiny" / "gpt2" / "main"
    for name in ("model.safetensors", "config.json"):
        data = (cached / name).read_bytes()
        (cached / name).write_bytes(data[: len(data) // 2])  # damaged on disk after it was cached
        with caplog.at_level("WARNING", logger="mingpt.io.download"):
            assert_same_logits(GPT.from_pretrained("tiny/gpt2", endpoint=server.url, progress=False), hf_model)
        assert f"the cached {cached / name} was damaged" in caplog.text
        assert server.requests.count(f"/tiny/gpt2/resolve/main/{name}") == 2
        caplog.clear()
    # Offline with a damaged cache, the error says the cached file was damaged (and what was done about it).
    data = (cached / "model.safetensors").read_bytes()
    (cached / "model.safetensors").write_bytes(data[:-7])
    server.shutdown()
    server.server_close()  # nothing listens any more: offline
    with pytest.raises(DownloadError, match=r"the cached .*model\.safetensors was damaged \(.*\), so it was removed, "
                                            r"and downloading a fresh copy failed"):
        GPT.from_pretrained("tiny/gpt2", endpoint=server.url, retries=0)
    assert not (cached / "model.safetensors").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pytorch_model_bin_is_refused_without_torch_advice(saved, hub, cache_dir, tmp_path, protocol):
    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (tmp_path / "pwned",))

    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(saved / "bin" / "config.json", folder / "config.json")
    torch.save({"transformer.wte.weight": torch.zeros(1), "x": Payload()}, folder / "pytorch_model.bin",
               pickle_protocol=protocol)
    for load in (lambda: GPT.from_pretrained(folder),
                 lambda: GPT.from_pretrained("evil/gpt2", endpoint=hub({"evil/gpt2": folder}).url, progress=False)):
        with pytest.raises(UnsafeFileError, match="refusing to load .*can run arbitrary code") as info:
            load()
        message = str(info.value)
        assert "weights_only" not in message and "Re-running" not in message and "corrupt" not in message
        assert not (tmp_path / "pwned").exists()


def test_save_pretrained_writes_the_tokenizer_files(tmp_path, data_dir, cache_dir, caplog):
    from mingpt.bpe import BPETokenizer

    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=1, n_embd=8, vocab_size=50257, block_size=16))
    model = GPT(config)
    gpt2 = data_dir / "gpt2"
    model.save_pretrained(tmp_path / "given", tokenizer=BPETokenizer.from_files(gpt2 / "encoder.json",
                                                                                gpt2 / "vocab.bpe"))
    names = ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert sorted(p.name for p in (tmp_path / "given").iterdir()) == names
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "given")  # the oracle reads them
    text = "Hello, world! é😀\n\n  <|endoftext|> the end"
    expected = tiktoken_gpt2(gpt2).encode(text, allowed_special="all")
    assert hf_tokenizer(text)["input_ids"] == expected
    assert (tmp_path / "given" / "merges.txt").read_bytes() == (gpt2 / "vocab.bpe").read_bytes()  # the same file
    assert json.loads((tmp_path / "given" / "vocab.json").read_text("utf-8")) == json.loads(
        (gpt2 / "encoder.json").read_text("utf-8"))
    # No tokenizer given: GPT-2's own files when they are in mingpt's cache (byte for byte), else a warning.
    with caplog.at_level("WARNING", logger="mingpt.io.pretrained"):
        model.save_pretrained(tmp_path / "bare")
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["config.json", "model.safetensors"]
    assert "pass tokenizer=" in caplog.text
    (cache_dir / "gpt2").mkdir(parents=True)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(gpt2 / name, cache_dir / "gpt2" / name)
    model.save_pretrained(tmp_path / "cached")
    assert (tmp_path / "cached" / "vocab.json").read_bytes() == (gpt2 / "encoder.json").read_bytes()
    assert (tmp_path / "cached" / "merges.txt").read_bytes() == (gpt2 / "vocab.bpe").read_bytes()


def tiktoken_gpt2(gpt2_dir):
    import tiktoken

    from mingpt.bpe import GPT2_SPLIT_PATTERN, bytes_of

    encoder = json.loads((gpt2_dir / "encoder.json").read_text(encoding="utf-8"))
    ranks = {bytes_of(t): i for t, i in encoder.items() if t != "<|endoftext|>"}
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})
