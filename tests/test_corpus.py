"""
Tests for mingpt.data.corpus and projects/gpt2/prepare.py: documents -> GPT-2 tokens -> shards, checked against
tiktoken; text/jsonl/parquet/directory inputs and a Hub dataset repo on a loopback server; parallel preparation
gives the same bytes; a run killed with SIGKILL and rerun gives identical shards; bad input is refused clearly.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib
import subprocess
import sys

import pytest

from mingpt.data import corpus
from mingpt.data.corpus import make_encoder, prepare_shards, split_document
from mingpt.data.token_shards import read_manifest, read_shard
from mingpt.io.download import ChecksumError, sha256_file
from mingpt.io.hub import dataset_file, git_blob_sha1

REPO = pathlib.Path(__file__).resolve().parents[1]
PREPARE = REPO / "projects" / "gpt2" / "prepare.py"
EOT = 50256


@pytest.fixture(scope="module")
def vocab(data_dir):
    return data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe"


@pytest.fixture(scope="module")
def reference(vocab):
    """tiktoken's GPT-2 encoding built from the same local files (the oracle)."""
    return make_encoder("tiktoken", *vocab)[0]


@pytest.fixture(scope="module")
def shakespeare(data_dir) -> str:
    return (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


def all_tokens(directory) -> list[int]:
    manifest = read_manifest(directory)
    return [int(t) for e in manifest["shards"] for t in read_shard(pathlib.Path(directory) / e["file"])]


def test_pieces_of_a_long_document_encode_to_the_ids_of_the_whole(shakespeare, reference):
    tricky = "end  \nnext\n\nword x\ny 's\n 't\n\n\nz" * 50  # spaces before newlines, blank lines, contractions
    for text in (shakespeare, tricky):
        pieces = split_document(text, 300)
        assert len(pieces) > 3 and "".join(pieces) == text
        assert [t for p in pieces for t in reference(p)] == reference(text)


def test_documents_become_eot_separated_shards_matching_tiktoken(tmp_path, vocab, reference, shakespeare):
    docs = ["First document.", "", "Second one, with ünïcode and 123 numbers.", shakespeare[:3000]]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(docs)))
    manifest = prepare_shards([tmp_path / "in"], tmp_path / "out", *vocab, shard_size=300, piece_chars=500)
    expected = [t for d in docs if d for t in [EOT, *reference(d)]]  # empty documents are skipped
    assert all_tokens(tmp_path / "out") == expected
    shards = manifest["shards"]
    assert [e["split"] for e in shards] == ["val"] + ["train"] * (len(shards) - 1)
    assert [e["tokens"] for e in shards[:-1]] == [300] * (len(shards) - 1)
    assert sum(e["tokens"] for e in shards) == manifest["tokens"] == len(expected)
    assert all(sha256_file(tmp_path / "out" / e["file"]) == e["sha256"] for e in shards)
    assert manifest["documents"] == 3 and manifest["complete"] and manifest["vocab_size"] == 50257
    # Preparing again is a no-op that returns the finished manifest.
    assert prepare_shards([tmp_path / "in"], tmp_path / "out", *vocab, shard_size=300, piece_chars=500)["shards"] \
        == shards


def test_text_parquet_and_two_processes_give_the_same_bytes(tmp_path, vocab, reference, shakespeare):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(shakespeare[:20000], encoding="utf-8")
    pq.write_table(pa.table({"content": ["A parquet row.", None, "Another row."]}), tmp_path / "in" / "b.parquet")
    kwargs = dict(shard_size=1000, piece_chars=2000, text_key="content")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "c.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="c.jsonl:1 has no string field 'content'"):
        prepare_shards([tmp_path / "bad"], tmp_path / "o0", *vocab, **kwargs)
    one = prepare_shards([tmp_path / "in"], tmp_path / "o1", *vocab, num_proc=1, **kwargs)
    two = prepare_shards([tmp_path / "in"], tmp_path / "o2", *vocab, num_proc=2, **kwargs)
    assert [e["sha256"] for e in one["shards"]] == [e["sha256"] for e in two["shards"]]
    expected = [EOT, *reference(shakespeare[:20000]), EOT, *reference("A parquet row."), EOT,
                *reference("Another row.")]
    assert all_tokens(tmp_path / "o2") == expected


KILLER = """
import os, signal, sys
import mingpt.data.corpus as corpus
real, calls = corpus.write_shard, [0]
def write_shard_then_die(path, tokens):
    real(path, tokens)
    calls[0] += 1
    if calls[0] == 4:  # the 4th shard is on disk but not yet in the manifest: the worst moment to die
        os.kill(os.getpid(), signal.SIGKILL)
corpus.write_shard = write_shard_then_die
sys.argv = sys.argv[1:]  # [prepare.py, its arguments...]
exec(compile(open(sys.argv[0]).read(), sys.argv[0], "exec"))
"""


def test_a_killed_preparation_resumes_to_identical_shards(tmp_path, data_dir, shakespeare, caplog):
    (tmp_path / "in.txt").write_text(shakespeare[:60000], encoding="utf-8")
    args = [f"--input={tmp_path / 'in.txt'}", f"--vocab-dir={data_dir / 'gpt2'}", "--shard-size=2500",
            "--piece-chars=4000", "--num-proc=1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLER, str(PREPARE), *args, f"--out={tmp_path / 'a'}"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    manifest = read_manifest(tmp_path / "a")
    assert len(manifest["shards"]) == 3 and not manifest["complete"] and manifest["resume"]["offset"] > 0
    assert (tmp_path / "a" / "shard_000003.bin").exists()  # written, but the manifest does not know it
    # Resume the killed run, and prepare a fresh one in one go (in this process: no second interpreter start).
    vocab = data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe"
    kwargs = dict(shard_size=2500, piece_chars=4000, num_proc=1)
    with caplog.at_level(logging.INFO, logger="mingpt.data.corpus"):
        prepare_shards([tmp_path / "in.txt"], tmp_path / "a", *vocab, **kwargs)
    assert "resuming after 3 finished shards" in caplog.text
    prepare_shards([tmp_path / "in.txt"], tmp_path / "b", *vocab, **kwargs)
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a["complete"] and len(a["shards"]) == len(b["shards"]) > 4
    assert [e["sha256"] for e in a["shards"]] == [e["sha256"] for e in b["shards"]]
    for e in a["shards"]:
        assert (tmp_path / "a" / e["file"]).read_bytes() == (tmp_path / "b" / e["file"]).read_bytes()


def test_bad_input_is_refused_clearly(tmp_path, vocab, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.jsonl").write_text('{"text": ""}\n\n')
    with pytest.raises(ValueError, match="the corpus is empty"):
        prepare_shards([tmp_path / "empty"], tmp_path / "o", *vocab)
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(ValueError, match=r"ending in one of \.txt, \.jsonl, \.parquet"):
        prepare_shards([tmp_path / "x.csv"], tmp_path / "o", *vocab)
    with pytest.raises(FileNotFoundError, match="no input file"):
        prepare_shards([tmp_path / "nope.txt"], tmp_path / "o", *vocab)
    (tmp_path / "a.txt").write_text("hello")
    real = corpus.make_encoder
    monkeypatch.setattr(corpus, "make_encoder", lambda *a: (real(*a)[0], 100_277, 100_257))  # a cl100k-sized vocab
    with pytest.raises(ValueError, match="100,277 ids but shards store uint16"):
        prepare_shards([tmp_path / "a.txt"], tmp_path / "o", *vocab)
    monkeypatch.undo()
    prepare_shards([tmp_path / "a.txt"], tmp_path / "o2", *vocab, shard_size=10)
    with pytest.raises(ValueError, match="other settings"):  # same --out, different shard size
        prepare_shards([tmp_path / "a.txt"], tmp_path / "o2", *vocab, shard_size=20)
    for bad in (dict(shard_size=True), dict(shard_size=0), dict(num_proc=0), dict(num_proc=2.0)):
        (name, value), = bad.items()
        with pytest.raises(ValueError, match=rf"^{name} must be an int >= 1.*, got {value!r}$"):
            prepare_shards([tmp_path / "a.txt"], tmp_path / "o3", *vocab, **bad)


def test_prepare_reads_a_hub_dataset_repo_from_a_loopback_server(tmp_path, vocab, reference, serve_directory,
                                                                 cache_dir, monkeypatch, data_dir):
    site = tmp_path / "site"
    repo = site / "datasets" / "someone" / "tiny-corpus" / "resolve" / "main" / "data"
    repo.mkdir(parents=True)
    (repo / "part-0.jsonl").write_text(json.dumps({"text": "Hub document one."}) + "\n"
                                       + json.dumps({"text": "And two."}) + "\n")
    (repo / "part-1.jsonl").write_text(json.dumps({"text": "Tampered after listing."}) + "\n")
    # The Hub API's listing: small files carry git's blob id (large ones an LFS sha256, checked by download()).
    api = site / "api" / "datasets" / "someone" / "tiny-corpus" / "revision"
    api.mkdir(parents=True)
    (api / "main").write_text(json.dumps({"siblings": [
        {"rfilename": "data/part-0.jsonl", "blobId": git_blob_sha1(repo / "part-0.jsonl")},
        {"rfilename": "data/part-1.jsonl", "blobId": "0" * 40}]}))
    monkeypatch.setenv("MINGPT_HF_ENDPOINT", serve_directory(site))
    spec = importlib.util.spec_from_file_location("gpt2_prepare", PREPARE)
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    common = [f"--vocab-dir={data_dir / 'gpt2'}", "--shard-size=4", "--num-proc=1", "--no-progress"]
    prepare.main(["--hf-dataset=someone/tiny-corpus", "--hf-files=data/part-0.jsonl", f"--out={tmp_path / 'o'}",
                  *common])
    assert all_tokens(tmp_path / "o") == [EOT, *reference("Hub document one."), EOT, *reference("And two.")]
    cached = cache_dir / "hub" / "datasets" / "someone" / "tiny-corpus" / "main" / "data"
    assert (cached / "part-0.jsonl").is_file()
    assert read_manifest(tmp_path / "o")["source"].startswith("hf://datasets/someone/tiny-corpus@main")
    prepare.main([f"--out={tmp_path / 'o'}", "--verify"])  # the shards match their manifest
    (tmp_path / "o" / "shard_000001.bin").write_bytes((tmp_path / "o" / "shard_000000.bin").read_bytes())
    with pytest.raises(SystemExit):
        prepare.main([f"--out={tmp_path / 'o'}", "--verify"])
    with pytest.raises(ChecksumError, match="the Hub lists 0{40}"):
        dataset_file("someone/tiny-corpus", "data/part-1.jsonl")
    assert not (cached / "part-1.jsonl").exists()  # a file that does not match the listing is not kept
    assert dataset_file("someone/tiny-corpus", "data/part-1.jsonl", verify=False).is_file()
    with pytest.raises(FileNotFoundError, match="not a file of dataset repo.*data/part-0.jsonl"):
        dataset_file("someone/tiny-corpus", "data/missing.jsonl")
    with pytest.raises(SystemExit):
        prepare.main(["--hf-dataset=someone/tiny-corpus", "--hf-files=data/missing.jsonl", f"--out={tmp_path / 'o3'}",
                      *common])
    # The server's 404 (DownloadError.status_code) becomes FileNotFoundError: a repo with no listing, a listed file
    # that is not there.
    with pytest.raises(FileNotFoundError, match=r"dataset repo 'nobody/nothing' at revision 'main' was not found"):
        dataset_file("nobody/nothing", "data/part-0.jsonl")
    with pytest.raises(FileNotFoundError, match=r"'data/gone.jsonl' of dataset repo .* \(HTTP 404 from"):
        dataset_file("someone/tiny-corpus", "data/gone.jsonl", verify=False)
