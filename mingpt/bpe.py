"""
GPT-2's tokenizer, under the names the original minGPT gave it: BPETokenizer, Encoder, get_encoder, get_pairs,
get_file. The byte-level BPE itself (merging, encoding, decoding, saving) is mingpt.tokenizer's `Tokenizer`; this
file adds GPT-2's vocabulary (50,257 ids, read from encoder.json + vocab.bpe by mingpt.io.gpt2_vocab) and minGPT's
API over it, so code written for minGPT runs unchanged.

    from mingpt.bpe import BPETokenizer
    tokenizer = BPETokenizer()              # downloads (once) GPT-2's encoder.json and vocab.bpe
    tokenizer.encode("Hello, world")        # [15496, 11, 995]
    tokenizer.show_tokens("Hello, world")   # 'Hello|,| world'
    x = tokenizer("Hello, world")           # (1, T) LongTensor ready for the model

Special tokens, two APIs. `encode` follows tiktoken: text containing '<|endoftext|>' raises unless you say what
it means (allowed_special= makes it id 50256, disallowed_special=() makes it text). The original minGPT's entry
points - `BPETokenizer()(text)`, `get_encoder().encode(text)`, `tokenizer.encoder.encode(text)` - encode it as
ordinary text (seven tokens), exactly as minGPT (and tiktoken's `encode_ordinary`) did, so code written for
minGPT runs unchanged on web text.

    from mingpt.bpe import get_encoder
    e = get_encoder()                      # minGPT's Encoder over the same vocabulary
    e.encode("Hello<|endoftext|>")         # [15496, 27, 91, 437, 1659, 5239, 91, 29]
    e.bpe("Ġthere"), e.bpe_ranks[("Ġ", "t")]   # ('Ġthere', 0)
"""

from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

# Names re-exported from the modules that own them, so `from mingpt.bpe import ...` keeps working.
from mingpt.io.gpt2_vocab import (  # noqa: F401
    BYTE_TO_UNICODE,
    ENDOFTEXT,
    UNICODE_TO_BYTE,
    bytes_of,
    bytes_to_unicode,
    check_vocab_pair,
    fetch_gpt2_vocab,
    get_file,
    read_gpt2_vocab,
    symbols_of,
)
from mingpt.tokenizer import GPT2_SPLIT_PATTERN, Tokenizer, merge_pair  # noqa: F401

__all__ = [
    "Tokenizer", "BPETokenizer", "Encoder", "get_encoder", "get_pairs", "get_file",
    "bytes_to_unicode", "symbols_of", "bytes_of", "GPT2_SPLIT_PATTERN", "ENDOFTEXT", "merge_pair", "fetch_gpt2_vocab",
]


class BPETokenizer(Tokenizer):
    """
    GPT-2's tokenizer (50,257 ids). With no arguments the vocabulary files are downloaded and cached (see
    mingpt.io.download); pass both paths to use local copies instead. `tokenizer.encoder` is the original minGPT's
    Encoder object over the same vocabulary.

    Like every Tokenizer it can also be built from parts already read, by keyword (that is how load builds one):
    BPETokenizer(merges=..., special_tokens=...).
    """

    def __init__(
        self,
        encoder_path: str | os.PathLike | None = None,
        vocab_path: str | os.PathLike | None = None,
        base_url: str | None = None,
        *,
        merges: Sequence[tuple[bytes, bytes]] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
    ):
        if merges is None:  # minGPT's way: GPT-2's two files, local or downloaded
            if (encoder_path is None) != (vocab_path is None):
                raise ValueError("pass both encoder_path and vocab_path, or neither to download GPT-2's files")
            if pattern != GPT2_SPLIT_PATTERN or special_tokens is not None:
                raise ValueError("pattern= and special_tokens= go with merges=; GPT-2's files carry their own")
            if encoder_path is None:
                encoder_path, vocab_path = fetch_gpt2_vocab(base_url)
            merges, special_tokens = read_gpt2_vocab(encoder_path, vocab_path)
        elif (encoder_path, vocab_path, base_url) != (None, None, None):
            raise ValueError("pass either GPT-2's files (encoder_path, vocab_path, base_url) or merges=, not both")
        super().__init__(merges, pattern, special_tokens)

    @classmethod
    def from_files(cls, encoder_json_path: str | os.PathLike, vocab_bpe_path: str | os.PathLike) -> BPETokenizer:
        """GPT-2's tokenizer from local copies of encoder.json and vocab.bpe (no network)."""
        return cls(encoder_json_path, vocab_bpe_path)

    @functools.cached_property
    def encoder(self) -> Encoder:
        """The original minGPT's `tokenizer.encoder`: an Encoder sharing this tokenizer's merges."""
        return Encoder(tokenizer=self)


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
    get_encoder did, and checks that the two agree. Encoder(tokenizer=t) wraps an existing tokenizer (no copy).
    """

    def __init__(
        self,
        encoder: Mapping[str, int] | None = None,
        bpe_merges: Sequence[tuple[str, str]] | None = None,
        *,
        tokenizer: Tokenizer | None = None,
    ):
        if tokenizer is None:  # minGPT's way: the two files' contents
            if encoder is None or bpe_merges is None:
                raise TypeError("Encoder needs encoder and bpe_merges (minGPT's arguments), or tokenizer=")
            merges = [(bytes_of(left), bytes_of(right)) for left, right in bpe_merges]
            special_tokens = check_vocab_pair(encoder, merges, "encoder", "bpe_merges")
            tokenizer = Tokenizer(merges, GPT2_SPLIT_PATTERN, special_tokens)
            self.encoder = dict(encoder)  # the caller's dict, as minGPT kept it (and its order)
        elif encoder is not None or bpe_merges is not None:
            raise TypeError("pass either encoder and bpe_merges, or tokenizer=, not both")
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
