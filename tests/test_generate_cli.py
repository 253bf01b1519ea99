"""
`python -m mingpt.cli`: end to end through a subprocess with a
tiny model saved by transformers and GPT-2's real BPE files from ../shared/data/gpt2; the rest in-process through
main(argv) to stay fast. No network: the Hub endpoint points at a closed port, and the download cache is a
temporary folder.
"""

import argparse
import io
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
import transformers

from mingpt.bpe import BPETokenizer
from mingpt.cli import generate as cli
from mingpt.model import GPT
from tests.conftest import REPO_ROOT

PROMPT = "Hello, world. The weather today"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, initializer_range=0.3)
    hf = transformers.GPT2LMHeadModel(config).eval()  # GPT-2's vocabulary size, so GPT-2's tokenizer fits
    folder = tmp_path_factory.mktemp("cli") / "tiny-gpt2"
    hf.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer(data_dir):
    return BPETokenizer.from_files(data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe")


@pytest.fixture()
def offline(cache_dir, monkeypatch):
    monkeypatch.setenv("MINGPT_HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MINGPT_GPT2_VOCAB_URL", "http://127.0.0.1:9/nothing")  # nor for GPT-2's vocabulary files


@pytest.fixture()
def reuse_tokenizer(tokenizer, monkeypatch):
    """Skip re-reading the 50k-token vocabulary on each in-process run (the CLI still checks the folder)."""
    monkeypatch.setattr(cli.BPETokenizer, "from_files", classmethod(lambda cls, *paths: tokenizer))


def run_cli(*args, env_extra=None, module="mingpt.cli"):
    env = {**os.environ, "MINGPT_HF_ENDPOINT": "http://127.0.0.1:9", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=120)


def test_greedy_end_to_end_matches_transformers(model_dir, data_dir, tokenizer, tmp_path):
    result = run_cli("--model", str(model_dir), "--prompt", PROMPT, "--max-new-tokens", "20", "--greedy",
                     "--device", "cpu", "--dtype", "fp32", "--tokenizer", str(data_dir / "gpt2"),
                     env_extra={"MINGPT_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    hf = transformers.GPT2LMHeadModel.from_pretrained(model_dir).eval()
    idx = torch.tensor([tokenizer.encode(PROMPT)])
    expected = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=20, do_sample=False,
                           pad_token_id=50256, eos_token_id=None)
    assert result.stdout == PROMPT + tokenizer.decode(expected[0, idx.size(1):]) + "\n"
    assert len(result.stdout) > len(PROMPT) + 10


def test_bad_model_name_is_a_message_not_a_traceback():
    result = run_cli("--model", "gpt3", "--prompt", "hi")
    assert result.returncode == 1
    assert "unknown model 'gpt3'" in result.stderr and "gpt2-medium" in result.stderr
    assert "Traceback" not in result.stderr


def test_seeded_sampling_repeats_and_matches_transformers(model_dir, data_dir, tokenizer, offline, reuse_tokenizer,
                                                          capsys):
    args = ["--model", str(model_dir), "--prompt", PROMPT, "--max-new-tokens", "15", "--top-p", "0.5",
            "--temperature", "0.8", "--seed", "3", "--device", "cpu", "--dtype", "fp32",
            "--tokenizer", str(data_dir / "gpt2")]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert cli.main(args) == 0
    assert capsys.readouterr().out == first
    # transformers samples with the global RNG, one multinomial draw a step, as mingpt does with its generator.
    hf = transformers.GPT2LMHeadModel.from_pretrained(model_dir).eval()
    idx = torch.tensor([tokenizer.encode(PROMPT)])
    torch.manual_seed(3)
    expected = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=15, do_sample=True, top_p=0.5,
                           temperature=0.8, top_k=0, eos_token_id=50256, pad_token_id=50256)
    new = expected[0, idx.size(1):].tolist()
    new = new[: new.index(50256)] if 50256 in new else new  # the CLI stops printing at <|endoftext|>
    assert first == PROMPT + tokenizer.decode(new) + "\n"
    assert len(new) > 5 and len(set(new)) > 3


def test_tokenizer_found_in_model_dir_or_cache(model_dir, data_dir, offline, cache_dir, tmp_path, capsys):
    # 1. HF layout: the model folder carries vocab.json + merges.txt (same content as encoder.json + vocab.bpe).
    with_vocab = tmp_path / "with-vocab"
    shutil.copytree(model_dir, with_vocab)
    shutil.copy(data_dir / "gpt2" / "encoder.json", with_vocab / "vocab.json")
    shutil.copy(data_dir / "gpt2" / "vocab.bpe", with_vocab / "merges.txt")
    assert cli.main(["--model", str(with_vocab), "--prompt", PROMPT, "--max-new-tokens", "5", "--greedy",
                     "--device", "cpu"]) == 0
    from_model_dir = capsys.readouterr().out
    # 2. No tokenizer files anywhere but in mingpt's cache, where mingpt.bpe keeps GPT-2's (sha256-checked).
    (cache_dir / "gpt2").mkdir(parents=True)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(data_dir / "gpt2" / name, cache_dir / "gpt2" / name)
    assert cli.main(["--model", str(model_dir), "--prompt", PROMPT, "--max-new-tokens", "5", "--greedy",
                     "--device", "cpu"]) == 0
    assert capsys.readouterr().out == from_model_dir
    assert from_model_dir.startswith(PROMPT) and len(from_model_dir) > len(PROMPT) + 1


def test_multibyte_characters_split_across_tokens_are_never_printed_broken(tokenizer, monkeypatch):
    byte_id = {tokenizer.decode_bytes([i]): i for i in range(256)}
    text = "é😀!"  # 2 + 4 + 1 bytes, fed one byte-token at a time
    ids = [byte_id[bytes([b])] for b in text.encode("utf-8")]
    monkeypatch.setattr(cli, "generate_stream", lambda *a, **kw: iter(torch.tensor([[i] for i in ids])))

    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.writes = []

        def write(self, s):
            self.writes.append(s)
            return super().write(s)

    out = Recorder()
    args = argparse.Namespace(prompt="Hi ", max_new_tokens=len(ids), temperature=None, do_sample=False, top_k=None,
                              top_p=None, seed=None, ignore_eos=False)
    model = torch.nn.Module()  # stream_text only reads the model's config and its parameters' device
    model.config = argparse.Namespace(vocab_size=50257)
    model.weight = torch.nn.Parameter(torch.zeros(1))
    cli.stream_text(model, tokenizer, args, out)
    assert out.getvalue() == "Hi " + text + "\n"
    assert not any("\ufffd" in w for w in out.writes)
    assert out.writes.count("") == 4  # the three bytes before each character completes, and the 4-byte emoji's


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-new-tokens", "-1"], "max_new_tokens"),
        (["--top-p", "1.5"], "top_p"),
        (["--tokenizer", "/no/such/dir"], "--tokenizer"),
        (["--device", "tpu9"], "unknown device"),
    ],
)
def test_bad_arguments_exit_with_a_message(model_dir, data_dir, offline, reuse_tokenizer, capsys, extra, message):
    args = ["--model", str(model_dir), "--prompt", "hi", "--device", "cpu", "--tokenizer", str(data_dir / "gpt2")]
    assert cli.main(args + extra) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error:") and message in captured.err


def test_greedy_with_sampling_options_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--greedy", "--top-p", "0.9"])
    assert exit_info.value.code == 2
    assert "--top-p has no effect with --greedy" in capsys.readouterr().err


def test_endoftext_in_the_prompt_is_the_special_token(model_dir, data_dir, tokenizer, offline, reuse_tokenizer,
                                                      capsys):
    """`--prompt "<|endoftext|>"` is GPT-2's "start of a document": one token (50256), not seven text tokens."""
    args = ["--model", str(model_dir), "--prompt", "<|endoftext|>", "--max-new-tokens", "6", "--greedy",
            "--ignore-eos", "--device", "cpu", "--dtype", "fp32", "--tokenizer", str(data_dir / "gpt2")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    hf = transformers.GPT2LMHeadModel.from_pretrained(model_dir).eval()
    start = torch.tensor([[50256]])
    expected = hf.generate(start, attention_mask=torch.ones_like(start), max_new_tokens=6, do_sample=False,
                           eos_token_id=None, pad_token_id=50256)[0, 1:].tolist()
    assert out == "<|endoftext|>" + tokenizer.decode(expected) + "\n"


# ---- hardening: a saved folder is enough offline; offline errors are one message -----------------------------------


@pytest.fixture(scope="module")
def saved_with_tokenizer(tmp_path_factory, tokenizer):
    """A mingpt model (GPT-2's vocabulary) written by save_pretrained, tokenizer files included."""
    torch.manual_seed(0)
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=2, n_embd=16, vocab_size=50257, block_size=64))
    model = GPT(config)
    folder = tmp_path_factory.mktemp("saved") / "my-model"
    model.save_pretrained(folder, tokenizer=tokenizer)
    return folder


def test_save_pretrained_folder_generates_offline(saved_with_tokenizer, tokenizer, offline, monkeypatch, capsys):
    args = ["--model", str(saved_with_tokenizer), "--prompt", PROMPT, "--max-new-tokens", "8", "--greedy",
            "--device", "cpu", "--dtype", "fp32"]  # compared below with the fp32 model
    assert cli.main(args) == 0
    model = GPT.from_pretrained(saved_with_tokenizer)
    idx = torch.tensor([tokenizer.encode(PROMPT)])
    new = model.generate(idx, 8)[0, idx.size(1):].tolist()
    assert capsys.readouterr().out == PROMPT + tokenizer.decode([t for t in new if t != 50256]) + "\n"


def test_offline_without_tokenizer_names_every_missing_file_and_fix(model_dir, offline, cache_dir, monkeypatch,
                                                                     capsys):
    monkeypatch.setattr("mingpt.io.download.time.sleep", lambda seconds: None)  # no backoff between retries
    assert cli.main(["--model", str(model_dir), "--prompt", "hi", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no tokenizer for this model:") and err.count("\n") == 1  # one message
    for needed in ["vocab.json + merges.txt", str(cache_dir / "gpt2" / "encoder.json"),
                   str(cache_dir / "gpt2" / "vocab.bpe"), "--tokenizer DIR", "save_pretrained(DIR, tokenizer=",
                   f"into {cache_dir / 'gpt2'}", "internet access"]:
        assert needed in err, needed


def test_half_a_tokenizer_pair_names_the_missing_file(model_dir, data_dir, offline, tmp_path, capsys):
    half = tmp_path / "half"
    shutil.copytree(model_dir, half)
    shutil.copy(data_dir / "gpt2" / "encoder.json", half / "vocab.json")
    assert cli.main(["--model", str(half), "--prompt", "hi", "--device", "cpu"]) == 1
    assert "has vocab.json but not merges.txt" in capsys.readouterr().err


def test_offline_known_model_is_one_clear_message_and_leaves_no_debris(cache_dir, monkeypatch, capsys, caplog):
    import socket

    def no_dns(*args, **kwargs):  # an offline machine: no name resolves (and no request leaves this one)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.delenv("MINGPT_HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with caplog.at_level("INFO"):
        assert cli.main(["--model", "gpt2", "--prompt", "hi", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download 'config.json' of Hub repo 'openai-community/gpt2'")
    assert err.count("\n") == 1 and "cannot resolve the server's host name" in err
    assert "urllib3" not in err and "NameResolutionError" not in err and "HTTPSConnectionPool" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no WARNING lines before the error
    assert not cache_dir.exists() or not any(cache_dir.rglob("*"))  # no empty folders left in the cache


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())  # the option list, after the usage
    options = [a for a in cli.build_parser()._actions if a.option_strings and a.dest != "help"]
    for action in options:
        described = text.split(action.option_strings[-1], 1)[1].split(" --", 1)[0]
        assert "default" in described, action.option_strings
    assert "(default: gpt2)" in text and "(default: 50)" in text and "(default: auto)" in text


# ---- messages that point at the right thing (issue 27, item 10) ---------------------------------------------------
def test_temperature_zero_points_at_the_greedy_flag(capsys):
    """The CLI's greedy switch is --greedy: the Python API's do_sample=False means nothing on a command line."""
    with pytest.raises(SystemExit) as e:
        cli.main(["--model", "gpt2", "--prompt", "Hi", "--temperature", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--temperature must be > 0 and finite, got 0.0" in err and "use --greedy" in err
    assert "do_sample" not in err


def test_a_file_given_as_the_model_is_told_to_give_its_directory(model_dir, offline, capsys):
    assert cli.main(["--model", str(model_dir / "config.json"), "--prompt", "Hi"]) == 1
    err = capsys.readouterr().err
    assert "is a file, but a local model is the directory holding config.json" in err
    assert repr(str(model_dir)) in err and "no directory" not in err


def test_every_missing_model_file_is_named_at_once(tmp_path, offline, capsys):
    (tmp_path / "empty-model").mkdir()
    assert cli.main(["--model", str(tmp_path / "empty-model"), "--prompt", "Hi"]) == 1
    err = capsys.readouterr().err
    assert ("has no config.json and neither model.safetensors nor pytorch_model.bin nor "
            "model.safetensors.index.json;") in err  # every file it could have used, in one message
