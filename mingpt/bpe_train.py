"""
Learning a byte-level BPE from text: the merges that GPT-2 shipped in vocab.bpe, made from your own data.

The idea to leave with: training is the encoder run in reverse. Start with every chunk of text as single bytes;
count every adjacent pair; merge the most frequent pair everywhere into a new token; repeat until the vocabulary
is big enough. The recorded merges, in order, *are* the tokenizer (see mingpt.tokenizer).

Two tricks make this fast enough for a classroom laptop:
  * text repeats itself, so we split it with the same regex as the encoder and keep each *distinct* chunk once,
    with its frequency ("the" appears thousands of times but is counted as one chunk of weight N);
  * after a merge only the chunks that contain the merged pair change, so an index pair -> chunks tells us
    which ones to update, and only their pair counts are adjusted (no full recount per merge). A heap of
    (count, pair) finds the most frequent pair; entries made stale by later updates are skipped when popped.

Ties are broken deterministically: among pairs with the same count, the one whose (left bytes, right bytes) is
smallest in byte order wins (so b'a' + b'b' beats b'b' + b'a'). The result depends on the text only.

    from mingpt.bpe_train import ByteLevelBPE
    tokenizer = ByteLevelBPE.train(open("input.txt").read(), vocab_size=512, special_tokens=["<|endoftext|>"])
    tokenizer.save("shakespeare.bpe")
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict
from typing import Iterable

import regex

from mingpt.tokenizer import GPT2_SPLIT_PATTERN, Tokenizer, merge_pair
from mingpt.utils import check_int

__all__ = ["ByteLevelBPE", "learn_merges"]

logger = logging.getLogger(__name__)


def learn_merges(text: str, n_merges: int, pattern: str = GPT2_SPLIT_PATTERN) -> list[tuple[bytes, bytes]]:
    """The first `n_merges` BPE merges of `text` (fewer if every chunk becomes a single token first)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_int(n_merges, "n_merges")

    # Distinct chunks, each a list of token ids, with how often it occurs. During training id b < 256 is byte b.
    chunk_counts = Counter(regex.findall(pattern, text))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    vocab = [bytes([b]) for b in range(256)]  # id -> bytes

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)  # pair -> occurrences in the text
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> indices of the words that contain it
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(w)

    def entry(pair: tuple[int, int], count: int) -> tuple:
        # heapq pops the smallest: highest count first, then the smallest (left bytes, right bytes).
        return (-count, vocab[pair[0]], vocab[pair[1]], pair)

    heap = [entry(pair, count) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < n_merges and heap:
        neg_count, left_bytes, right_bytes, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -neg_count:
            continue  # stale: this pair's count changed after the entry was pushed (a fresher entry exists)
        new_id = len(vocab)
        vocab.append(left_bytes + right_bytes)
        merges.append((left_bytes, right_bytes))

        # Re-merge only the words that contain the pair, and collect how each pair's count changes.
        delta: dict[tuple[int, int], int] = defaultdict(int)
        for w in where.pop(pair):
            old, freq = words[w], freqs[w]
            new = merge_pair(old, pair[0], pair[1], new_id)
            words[w] = new
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                delta[p] -= freq
            for p in new_pairs:
                delta[p] += freq
            for p in set(old_pairs).difference(new_pairs):
                if p != pair:
                    where[p].discard(w)
            for p in new_pairs:
                where[p].add(w)
        for p, change in delta.items():
            if change == 0:
                continue
            count = pair_counts[p] + change
            if count > 0:
                pair_counts[p] = count
                heapq.heappush(heap, entry(p, count))
            else:  # the pair no longer occurs (always true of the merged pair itself)
                del pair_counts[p]
                where.pop(p, None)
    if len(merges) < n_merges:
        logger.warning("text ran out of pairs to merge after %d of %d merges", len(merges), n_merges)
    return merges


class ByteLevelBPE(Tokenizer):
    """A byte-level BPE learned from your own text; encodes, decodes, saves and loads like GPT-2's tokenizer."""

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Iterable[str] = (),
    ) -> ByteLevelBPE:
        """
        Learn a tokenizer with `vocab_size` ordinary tokens (256 bytes + vocab_size - 256 merges); special tokens
        come on top, numbered after them in the order given.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_int(vocab_size, "vocab_size", low=256, hint=" (the 256 single bytes come first)")
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a list of strings, got the string {special_tokens!r}")
        merges = learn_merges(text, vocab_size - 256, pattern)
        first_special = 256 + len(merges)
        specials = {name: first_special + k for k, name in enumerate(dict.fromkeys(special_tokens))}
        return cls(merges=merges, pattern=pattern, special_tokens=specials)
