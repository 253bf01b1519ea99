"""
The original minGPT's tokenizer surface, kept so code written for minGPT runs unchanged.

minGPT's bpe.py had an `Encoder` (built from encoder.json's dict and vocab.bpe's merges, with `encoder`,
`decoder`, `bpe_ranks`, `bpe(token)`, `encode`, `decode`), `get_encoder()`, `get_pairs(word)` and `get_file`,
and its `BPETokenizer` held an Encoder as `.encoder`. Here each is a thin layer over mingpt.bpe's Tokenizer, so
there is one implementation of BPE, checked token for token against tiktoken.

The one behaviour to know: minGPT's `encode` treats '<|endoftext|>' as ordinary text (seven tokens, like
tiktoken's `encode_ordinary`), so these entry points do too. mingpt's own `Tokenizer.encode` follows tiktoken's
safer rule instead and refuses the string unless you say whether it is the special token or text.

    from mingpt.bpe import get_encoder
    e = get_encoder()                      # downloads GPT-2's files once, like minGPT
    e.encode("Hello<|endoftext|>")         # [15496, 27, 91, 437, 1659, 5239, 91, 29]
    e.bpe("Ġthere"), e.bpe_ranks[("Ġ", "t")]   # ('Ġthere', 0)
"""

from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

from mingpt.bpe import GPT2_SPLIT_PATTERN, BPETokenizer, Tokenizer
from mingpt.gpt2_vocab import BYTE_TO_UNICODE, UNICODE_TO_BYTE, bytes_of, check_vocab_pair, get_file, symbols_of

__all__ = ["Encoder", "get_encoder", "get_pairs", "get_file"]


def get_pairs(word: Sequence[str]) -> set[tuple[str, str]]:
    """All adjacent pairs of a sequence of symbols (minGPT's helper): ('a','b','c') -> {('a','b'), ('b','c')}."""
    return set(zip(word, word[1:]))


class Encoder:
    """
    The original minGPT's Encoder, with its attributes and methods, as a thin layer over a Tokenizer:

        encoder      printable token -> id (encoder.json)      decoder      id -> printable token
        bpe_ranks    (left, right) printable pair -> rank      byte_encoder / byte_decoder   the bytes<->unicode table
        bpe(token)   'Ġthere' -> the merged symbols joined by spaces: 'Ġthere'
        encode(text) ids, with '<|endoftext|>' as ordinary text, as in minGPT  decode(ids) -> text

    Encoder(encoder, bpe_merges) builds one from encoder.json's dict and vocab.bpe's pairs of symbols, as minGPT's
    get_encoder did, and checks that the two agree.
    """

    def __init__(self, encoder: Mapping[str, int], bpe_merges: Sequence[tuple[str, str]]):
        merges = [(bytes_of(left), bytes_of(right)) for left, right in bpe_merges]
        special_tokens = check_vocab_pair(encoder, merges, "encoder", "bpe_merges")
        self._init(Tokenizer(merges, GPT2_SPLIT_PATTERN, special_tokens))
        self.encoder = dict(encoder)  # the caller's dict, as minGPT kept it (and its order)

    @classmethod
    def wrap(cls, tokenizer: Tokenizer) -> Encoder:
        """An Encoder over an existing tokenizer (no copy of its merges)."""
        encoder = cls.__new__(cls)
        encoder._init(tokenizer)
        return encoder

    def _init(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_encoder = dict(BYTE_TO_UNICODE)
        self.byte_decoder = dict(UNICODE_TO_BYTE)
        self.pat = tokenizer._regex  # the split pattern, compiled (minGPT: re.findall(self.pat, text))
        self.cache: dict[str, str] = {}  # bpe(token) results, as in minGPT

    # The three big dicts are built on first use: most callers only encode and decode.
    @functools.cached_property
    def encoder(self) -> dict[str, int]:
        return self.tokenizer.vocab

    @functools.cached_property
    def decoder(self) -> dict[int, str]:
        return {i: token for token, i in self.encoder.items()}

    @functools.cached_property
    def bpe_ranks(self) -> dict[tuple[str, str], int]:
        return {(symbols_of(left), symbols_of(right)): rank for rank, (left, right) in enumerate(self.tokenizer.merges)}

    def bpe(self, token: str) -> str:
        """Merge one pre-tokenized chunk, given in printable symbols ('Ġthere'); the pieces joined by spaces."""
        if token not in self.cache:
            self.cache[token] = " ".join(self.tokenizer.merge_steps(bytes_of(token))[-1])
        return self.cache[token]

    def encode(self, text: str) -> list[int]:
        """Text to ids, special-token strings included as ordinary text (minGPT's and tiktoken's encode_ordinary)."""
        return self.tokenizer.encode_ordinary(text)

    def encode_and_show_work(self, text: str) -> dict:
        """The regex chunks and, per chunk, its bytes, symbols, merged symbols and ids (see Tokenizer)."""
        return self.tokenizer.encode_and_show_work(text)

    def decode(self, bpe_idx: Sequence[int]) -> str:
        """Ids back to text (invalid UTF-8 becomes U+FFFD, as in minGPT)."""
        return self.tokenizer.decode(bpe_idx)


def get_encoder(
    encoder_path: str | os.PathLike | None = None,
    vocab_path: str | os.PathLike | None = None,
    base_url: str | None = None,
) -> Encoder:
    """GPT-2's Encoder, as in the original minGPT: from local paths if given, else downloaded and cached."""
    return BPETokenizer(encoder_path, vocab_path, base_url=base_url).encoder
