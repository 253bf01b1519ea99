"""
Benchmark: mingpt's GPT-2 tokenizer against tiktoken on Tiny Shakespeare, and the BPE trainer.

    python bench/bpe.py            # data: $MINGPT_DATA_DIR, else mingpt's cache (downloaded once)

Encode throughput is measured cold (a fresh tokenizer, empty chunk cache) and warm (the same text again), each
the best of a few repeats. tiktoken is built from the same vocabulary files, so it downloads nothing of its own.
Targets on a 2-core CPU: warm >= 0.45x tiktoken, cold >= 0.2x, 256 merges learned in <= 5 s.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import tiktoken

from mingpt.bpe import ENDOFTEXT, GPT2_SPLIT_PATTERN, BPETokenizer, bytes_of
from mingpt.io.data_files import fetch_gpt2_vocab
from mingpt.bpe_train import ByteLevelBPE
from mingpt.data import tiny_shakespeare

REPEATS = 5


def best_time(fn, repeats: int = REPEATS) -> float:
    """The fastest of `repeats` calls: the run least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def tiktoken_from_files(encoder_path: pathlib.Path) -> tiktoken.Encoding:
    with open(encoder_path, encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes_of(token): i for token, i in encoder.items() if token != ENDOFTEXT}
    return tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: 50256})


def main() -> None:
    encoder_path, vocab_path = fetch_gpt2_vocab()  # $MINGPT_DATA_DIR, else the cache (downloaded once)
    text = tiny_shakespeare()
    megabytes = len(text.encode("utf-8")) / 1e6

    reference = tiktoken_from_files(encoder_path)
    tokenizer = BPETokenizer.from_files(encoder_path, vocab_path)
    ids = tokenizer.encode(text)
    assert ids == reference.encode_ordinary(text), "mingpt and tiktoken disagree: the benchmark would be meaningless"

    # Each cold run gets a tokenizer that has never encoded anything, so its chunk cache starts empty.
    cold = iter([BPETokenizer.from_files(encoder_path, vocab_path) for _ in range(REPEATS)])
    ours_cold = best_time(lambda: next(cold).encode(text))
    ours_warm = best_time(lambda: tokenizer.encode(text))
    fresh = iter([tiktoken_from_files(encoder_path) for _ in range(REPEATS)])
    theirs_cold = best_time(lambda: next(fresh).encode_ordinary(text))
    theirs_warm = best_time(lambda: reference.encode_ordinary(text))

    train_time = best_time(lambda: ByteLevelBPE.train(text, vocab_size=512), repeats=3)
    trained = ByteLevelBPE.train(text, vocab_size=512)
    bytes_per_token = len(text.encode("utf-8")) / len(trained.encode(text))

    print(f"Tiny Shakespeare: {megabytes:.2f} MB, {len(ids):,} GPT-2 tokens; best of {REPEATS} runs; "
          f"{os.cpu_count()} CPUs")
    print()
    print(f"{'encode':<8} {'mingpt MB/s':>12} {'tiktoken MB/s':>14} {'ratio':>7} {'target':>7}")
    for name, ours, theirs, target in [("cold", ours_cold, theirs_cold, 0.2), ("warm", ours_warm, theirs_warm, 0.45)]:
        ratio = theirs / ours  # our throughput as a fraction of tiktoken's
        verdict = "ok" if ratio >= target else "MISSED"
        speeds = f"{megabytes / ours:>12.2f} {megabytes / theirs:>14.2f}"
        print(f"{name:<8} {speeds} {ratio:>6.2f}x {target:>5.2f}x {verdict}")
    print()
    print(f"train 256 merges: {train_time:.2f} s (target <= 5 s) {'ok' if train_time <= 5 else 'MISSED'}")
    print(f"trained vocab 512: {bytes_per_token:.2f} bytes/token "
          f"(GPT-2's 50,257: {megabytes * 1e6 / len(ids):.2f} bytes/token)")


if __name__ == "__main__":
    main()
