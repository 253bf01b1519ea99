"""
Corpus preparation throughput (projects/gpt2/prepare.py's pipeline): 1 process against N, and mingpt's BPE against
tiktoken, on the same corpus in the same run.

The corpus is Tiny Shakespeare cut into ~2,000-character documents, shuffled and repeated --copies times into one
jsonl file (so that it is large enough to time and has many documents, as a web corpus does). Every configuration
writes the same shards (checked by sha256); each is timed --repeat times and the best time is kept. The CPU
seconds of the main process and of the worker processes are printed beside the wall time: on a shared machine
they show whether a missing speed-up is lost work or lost cores.

    python bench/prepare.py                          # mingpt and tiktoken, 1 and 2 processes
    python bench/prepare.py --procs 1 2 4 --copies 16

Data: Tiny Shakespeare and GPT-2's vocabulary from --data-dir when given, else as mingpt finds them
($MINGPT_DATA_DIR, else mingpt's cache, downloaded once).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import random
import resource
import shutil
import tempfile
import time

from mingpt.data import tiny_shakespeare
from mingpt.data.corpus import prepare_shards
from mingpt.io.data_files import fetch_gpt2_vocab


def make_corpus(path: pathlib.Path, copies: int, text: str) -> int:
    documents, start = [], 0
    while start < len(text):  # ~2,000-character documents, cut at blank lines
        end = text.find("\n\n", start + 2000)
        end = len(text) if end < 0 else end + 2
        documents.append(text[start:end])
        start = end
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            rng.shuffle(documents)
            for doc in documents:
                f.write(json.dumps({"text": doc}) + "\n")
    return path.stat().st_size


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def available_parallelism(procs: int, n: int = 3_000_000) -> float:
    """
    The control experiment: how much faster `procs` processes finish `procs` equal pure-Python jobs than one
    process finishes one of them, times procs. An idle machine with that many free cores gives ~procs; a machine
    whose cores are busy with other jobs gives less, and no preparation can beat it there.
    """
    t0 = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - t0
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        t0 = time.perf_counter()
        pool.map(_spin, [n] * procs)
        many = time.perf_counter() - t0
    return procs * one / many


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) used so far by this process and by its finished children (the pool's workers).
    Unlike wall time it does not grow when other jobs take the cores, so it shows where the work goes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a folder with tinyshakespeare/input.txt and gpt2/{encoder.json,"
                                           "vocab.bpe} (default: $MINGPT_DATA_DIR, else mingpt's cache)")
    parser.add_argument("--copies", type=int, default=8, help="how many shuffled copies of Tiny Shakespeare")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--encoders", nargs="+", default=["mingpt", "tiktoken"])
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration; the best is reported")
    args = parser.parse_args()
    if args.data_dir:
        data = pathlib.Path(args.data_dir)
        text = tiny_shakespeare(data / "tinyshakespeare" / "input.txt")
        vocab = data / "gpt2" / "encoder.json", data / "gpt2" / "vocab.bpe"
    else:
        text, vocab = tiny_shakespeare(), fetch_gpt2_vocab()
    work = pathlib.Path(tempfile.mkdtemp(prefix="mingpt-bench-prepare-"))
    try:
        corpus = work / "corpus.jsonl"
        size = make_corpus(corpus, args.copies, text)
        control_before = {p: available_parallelism(p) for p in args.procs if p > 1}
        rows, digests = [], set()
        for encoder in args.encoders:
            for procs in args.procs:
                best, cpu = float("inf"), (0.0, 0.0)
                for r in range(args.repeat):
                    out = work / f"{encoder}-{procs}-{r}"
                    before = cpu_seconds()
                    t0 = time.perf_counter()
                    manifest = prepare_shards([corpus], out, *vocab, encoder=encoder, num_proc=procs,
                                              shard_size=1_000_000)
                    seconds = time.perf_counter() - t0
                    if seconds < best:
                        best, cpu = seconds, tuple(a - b for a, b in zip(cpu_seconds(), before))
                    digests.add(tuple(e["sha256"] for e in manifest["shards"]))
                    shutil.rmtree(out)
                rows.append((encoder, procs, best, size / best / 1e6, manifest["tokens"] / best, *cpu))
        assert len(digests) == 1, "configurations wrote different shards"
        control_after = {p: available_parallelism(p) for p in args.procs if p > 1}
        print(f"corpus: {size / 1e6:.1f} MB, {manifest['tokens']:,} tokens, {manifest['documents']:,} documents; "
              f"{os.cpu_count()} CPUs; best of {args.repeat}")
        print(f"{'encoder':<9} {'procs':>5} {'seconds':>8} {'MB/s':>7} {'tokens/s':>11} {'vs 1 proc':>9} "
              f"{'CPU s main':>10} {'CPU s workers':>13}")
        for encoder, procs, seconds, mb_s, tok_s, cpu_main, cpu_workers in rows:
            one = next(r[3] for r in rows if r[0] == encoder and r[1] == min(args.procs))
            print(f"{encoder:<9} {procs:>5} {seconds:>8.2f} {mb_s:>7.2f} {tok_s:>11,.0f} {mb_s / one:>8.2f}x "
                  f"{cpu_main:>10.2f} {cpu_workers:>13.2f}")
        for procs in control_before:
            print(f"control: {procs} processes running {procs} pure-Python jobs finish {control_before[procs]:.2f}x "
                  f"(before) and {control_after[procs]:.2f}x (after) as fast as one: about the most a {procs}-process preparation "
                  "could reach on this machine at the time")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
