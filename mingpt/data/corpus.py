"""
Preparing a corpus: documents from text / jsonl / parquet files, tokenized in parallel into token shards.

The one idea: preparation is a pipeline of pure, ordered steps, so it can run on many cores and be killed and
resumed without changing a single byte of the result.

    files -> documents -> units (a document, or a piece of a long one) -> token ids (worker processes, in order)
          -> one stream: <|endoftext|> doc0 <|endoftext|> doc1 ... -> shards of shard_size tokens (+ manifest)

* Every document is preceded by ``<|endoftext|>`` (GPT-2's document separator), so the model learns where a
  document starts. Shard 0 is the validation split, the others train.
* A long text file is cut into pieces of about ``piece_chars`` characters, only at a newline that has a
  non-space character on both sides: GPT-2's pre-tokenizer never joins tokens across such a point, so pieces
  encode to exactly the ids of the whole text (a test checks this), and one big file still uses every core.
* Units are numbered; after each shard the manifest records which unit (and how many of its tokens) the next
  shard starts at. Shards and manifest are written atomically, so a killed run restarts at the last finished
  shard and produces identical files.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import pathlib
import re
import time
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from mingpt.bpe import BPETokenizer
from mingpt.data.token_shards import MANIFEST, read_manifest, shard_name, write_manifest, write_shard
from mingpt.io.download import sha256_file
from mingpt.io.gpt2_vocab import ENDOFTEXT, bytes_of
from mingpt.tokenizer import GPT2_SPLIT_PATTERN
from mingpt.utils import check_int

__all__ = ["INPUT_SUFFIXES", "list_input_files", "iter_documents", "split_document", "iter_units",
           "make_encoder", "prepare_shards"]

logger = logging.getLogger(__name__)

INPUT_SUFFIXES = (".txt", ".jsonl", ".parquet")
ENCODERS = ("mingpt", "tiktoken")
# A safe cut: after a newline that follows a non-space character and precedes one (see the module docstring).
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


# ---------------------------------------------------------------------------------------------- reading
def list_input_files(inputs: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
    """Files and directories (searched recursively, sorted) -> the input files, in a fixed order."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[pathlib.Path] = []
    for item in inputs:
        path = pathlib.Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in INPUT_SUFFIXES)
            if not found:
                raise ValueError(f"directory {os.fspath(path)!r} holds no {'/'.join(INPUT_SUFFIXES)} files")
            files.extend(found)
        elif path.is_file():
            if path.suffix not in INPUT_SUFFIXES:
                raise ValueError(f"cannot read {os.fspath(path)!r}: expected a file ending in one of "
                                 f"{', '.join(INPUT_SUFFIXES)} (or a directory of them)")
            files.append(path)
        else:
            raise FileNotFoundError(f"no input file or directory at {os.fspath(path)!r}")
    if not files:
        raise ValueError("no input files given")
    return files


def iter_documents(path: pathlib.Path, text_key: str = "text") -> Iterator[str]:
    """The documents of one file: a .txt file is one document; each jsonl line / parquet row is one."""
    if path.suffix == ".txt":
        try:
            yield path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{os.fspath(path)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{os.fspath(path)}:{line_number} is not valid JSON ({e.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get(text_key), str):
                    raise ValueError(f"{os.fspath(path)}:{line_number} has no string field {text_key!r}; "
                                     "pass --text-key=<the field that holds the document>")
                yield record[text_key]
    elif path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("reading parquet needs pyarrow: pip install pyarrow (or mingpt[gpt2])") from None
        parquet = pq.ParquetFile(path)
        if text_key not in parquet.schema_arrow.names:
            raise ValueError(f"{os.fspath(path)!r} has no column {text_key!r} (columns: {parquet.schema_arrow.names});"
                             " pass --text-key=<the column that holds the documents>")
        for batch in parquet.iter_batches(columns=[text_key], batch_size=1024):
            yield from (text for text in batch.column(0).to_pylist() if text is not None)
    else:
        raise ValueError(f"unsupported input {os.fspath(path)!r}")


def split_document(text: str, piece_chars: int) -> list[str]:
    """Cut a long document into pieces of at least ~piece_chars characters at safe points (no token changes)."""
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        cut = _SAFE_CUT.search(text, start + piece_chars)
        if cut is None:
            break
        pieces.append(text[start : cut.start()])
        start = cut.start()
    pieces.append(text[start:])
    return pieces


def iter_units(files: Sequence[pathlib.Path], text_key: str, piece_chars: int) -> Iterator[tuple[bool, str]]:
    """(starts_document, text) for every unit of the corpus, in order. Empty documents are skipped."""
    for path in files:
        for document in iter_documents(path, text_key):
            if document:
                for i, piece in enumerate(split_document(document, piece_chars)):
                    yield i == 0, piece


# ---------------------------------------------------------------------------------------------- encoding
@functools.lru_cache(maxsize=4)  # built once per process; forked workers inherit it ready-made
def make_encoder(kind: str, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike):
    """GPT-2's tokenizer from its two local vocabulary files: mingpt's own BPE, or tiktoken built from the same
    files (no network); both give the same ids. Returns (encode_ordinary, n_vocab, eot_id)."""
    if kind not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {kind!r}")
    if kind == "mingpt":
        tokenizer = BPETokenizer.from_files(encoder_json, vocab_bpe)
        return tokenizer.encode_ordinary, tokenizer.n_vocab, tokenizer.special_tokens[ENDOFTEXT]
    import tiktoken  # an optional dependency (the "gpt2" extra): imported only when asked for

    with open(encoder_json, encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes_of(token): i for token, i in encoder.items() if token != ENDOFTEXT}
    encoding = tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={ENDOFTEXT: encoder[ENDOFTEXT]})
    return encoding.encode_ordinary, encoding.n_vocab, encoder[ENDOFTEXT]


_worker: dict = {}  # each worker process's tokenizer, built once by _init_worker


def _init_worker(spec: tuple) -> None:
    encode, _, eot = make_encoder(*spec)
    _worker.update(encode=encode, eot=eot)


def _encode_unit(unit: tuple[bool, str]) -> tuple[np.ndarray, int, bool]:
    """(starts_document, text) -> (uint16 ids, <|endoftext|> first if a document starts; bytes of text; starts)."""
    starts, text = unit
    ids = _worker["encode"](text)
    if starts:
        ids = [_worker["eot"], *ids]
    return np.asarray(ids, dtype=np.uint16), len(text.encode("utf-8", "surrogatepass")), starts


def _encode_batch(units: list[tuple[bool, str]]) -> list[tuple[np.ndarray, int, bool]]:
    """A worker's task: several units at once, so that sending work and results costs little per document."""
    return [_encode_unit(unit) for unit in units]


def _batched(units: Iterable[tuple[bool, str]], chars: int) -> Iterator[list[tuple[bool, str]]]:
    """Group consecutive units into lists of about `chars` characters (a long piece travels alone)."""
    batch, size = [], 0
    for unit in units:
        batch.append(unit)
        size += len(unit[1])
        if size >= chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------- the pipeline
def _input_record(files: Sequence[pathlib.Path]) -> list[dict]:
    return [{"path": os.fspath(p), "bytes": p.stat().st_size} for p in files]


def _text_bytes(path: pathlib.Path, text_key: str) -> int:
    """About how many bytes of text a file holds, for the progress bar's total: its size, except for parquet,
    whose compressed size says little (its metadata has the text column's uncompressed size)."""
    if path.suffix != ".parquet":
        return path.stat().st_size
    import pyarrow.parquet as pq  # an optional dependency (the "gpt2" extra), needed only for parquet files

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(g).column(c).total_uncompressed_size for g in range(meta.num_row_groups)
               for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema == text_key)


def _resume_point(out: pathlib.Path, settings: dict) -> dict | None:
    """The manifest of an earlier run with the same settings (its shards checked), or None for a fresh start."""
    if not (out / MANIFEST).is_file():
        return None
    manifest = read_manifest(out)
    if manifest.get("settings") != settings:
        raise ValueError(f"{os.fspath(out)!r} holds shards prepared with other settings ({manifest.get('settings')});"
                         " use another --out directory, or delete this one to start over")
    for entry in manifest["shards"]:
        if sha256_file(out / entry["file"]) != entry["sha256"]:
            raise ValueError(f"{out / entry['file']} does not match its sha256 in the manifest; delete {out} and "
                             "prepare again")
    return manifest


def prepare_shards(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, encoder_json, vocab_bpe,
                   encoder: str = "mingpt", shard_size: int = 100_000_000, num_proc: int = 1, text_key: str = "text",
                   piece_chars: int = 1 << 16, progress: bool = False, source: str | None = None) -> dict:
    """
    Tokenize `inputs` (files or directories) into ``out_dir/shard_000000.bin, ...`` plus manifest.json; returns
    the manifest. Rerunning after a kill continues at the last complete shard; a finished directory is returned
    as it is. num_proc worker processes tokenize (1 = in this process).
    """
    check_int(shard_size, "shard_size", low=1, hint=" (tokens per shard)")
    check_int(num_proc, "num_proc", low=1)
    files = list_input_files(inputs)
    spec = (encoder, os.fspath(encoder_json), os.fspath(vocab_bpe))  # what a worker needs to build the tokenizer
    _, n_vocab, eot = make_encoder(*spec)
    if n_vocab > 65536:
        raise ValueError(f"the tokenizer has {n_vocab:,} ids but shards store uint16 (at most 65,536 ids); "
                         "use a GPT-2-sized vocabulary")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"inputs": _input_record(files), "text_key": text_key, "shard_size": shard_size,
                "piece_chars": piece_chars, "tokenizer": "gpt2", "vocab_size": n_vocab, "eot_token": eot}
    manifest = _resume_point(out, settings) or {
        "format": "mingpt-token-shards", "version": 1, "dtype": "uint16", "settings": settings,
        "vocab_size": n_vocab, "tokenizer": "gpt2", "source": source or ", ".join(os.fspath(p) for p in files),
        "shards": [], "resume": {"unit": 0, "offset": 0}, "complete": False,
    }
    if manifest["complete"]:
        logger.info("%s is already prepared (%d shards); nothing to do", out, len(manifest["shards"]))
        return manifest
    if manifest["shards"]:
        logger.info("resuming after %d finished shards", len(manifest["shards"]))
    manifest["encoder"] = encoder
    _run(files, out, manifest, spec, num_proc, progress)
    return manifest


def _run(files, out: pathlib.Path, manifest: dict, spec: tuple, num_proc: int, progress: bool) -> None:
    settings, resume = manifest["settings"], manifest["resume"]
    shard_size = settings["shard_size"]
    start_unit, skip = resume["unit"], resume["offset"]
    bar = None
    if progress:
        total_bytes = sum(_text_bytes(p, settings["text_key"]) for p in files)
        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizing", smoothing=0.1)
    t0, done_bytes, done_documents = time.perf_counter(), 0, 0
    documents = [0]  # every document of the corpus, counted as it is read (skipped ones too)

    def units() -> Iterator[tuple[bool, str]]:
        for index, unit in enumerate(iter_units(files, settings["text_key"], settings["piece_chars"])):
            documents[0] += unit[0]
            if index >= start_unit:
                yield unit
            elif bar is not None:
                bar.update(len(unit[1].encode("utf-8", "surrogatepass")))  # skipped: done by the earlier run

    buffer, fill = np.empty(shard_size, dtype=np.uint16), 0

    def finish_shard(n_tokens: int, next_unit: int, next_offset: int) -> None:
        index = len(manifest["shards"])
        name = shard_name(index)
        write_shard(out / name, buffer[:n_tokens])  # atomic: a kill leaves the old state, never half a shard
        manifest["shards"].append({"file": name, "split": "val" if index == 0 else "train", "tokens": n_tokens,
                                   "sha256": sha256_file(out / name)})
        manifest["resume"] = {"unit": next_unit, "offset": next_offset}
        write_manifest(out, manifest)  # written after the shard: the manifest never names a missing shard

    pool = None
    if num_proc > 1:
        pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(
            num_proc, initializer=_init_worker, initargs=(spec,))
        # Tasks of ~256k characters: large enough that pickling and pipes cost little per document (bench/prepare.py
        # measures the main process's CPU time against small tasks), small enough to balance the workers.
        batches = pool.imap(_encode_batch, _batched(units(), 1 << 18))  # results in order, whoever finishes first
        encoded: Iterable = (result for batch in batches for result in batch)
    else:
        _init_worker(spec)
        encoded = map(_encode_unit, units())
    try:
        unit_index = start_unit
        for unit_index, (ids, n_bytes, starts) in enumerate(encoded, start=start_unit):
            base = skip if unit_index == start_unit else 0  # tokens of this unit already in earlier shards
            ids = ids[base:]
            pos = 0
            while pos < ids.size:
                take = min(shard_size - fill, ids.size - pos)
                buffer[fill : fill + take] = ids[pos : pos + take]
                fill, pos = fill + take, pos + take
                if fill == shard_size:
                    more = pos < ids.size
                    finish_shard(fill, unit_index if more else unit_index + 1, base + pos if more else 0)
                    fill = 0
            done_bytes, done_documents = done_bytes + n_bytes, done_documents + starts
            if bar is not None:  # tqdm shows bytes/s and the ETA; documents/s goes beside them
                bar.update(n_bytes)
                bar.set_postfix_str(f"{done_documents / (time.perf_counter() - t0):,.0f} docs/s", refresh=False)
        if fill:
            finish_shard(fill, unit_index + 1, 0)
        if bar is not None and bar.n < bar.total:  # the total was an estimate (jsonl syntax, parquet encoding)
            bar.update(bar.total - bar.n)
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    if not manifest["shards"]:
        raise ValueError(f"the corpus is empty: {len(files)} input file(s) hold no text to tokenize")
    manifest["complete"] = True
    manifest["tokens"] = int(sum(e["tokens"] for e in manifest["shards"]))
    manifest["documents"] = documents[0]
    manifest["seconds"] = round(time.perf_counter() - t0, 3)
    write_manifest(out, manifest)
    logger.info("wrote %d shards, %s tokens, to %s", len(manifest["shards"]), f"{manifest['tokens']:,}", out)
