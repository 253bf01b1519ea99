"""
Byte-pair encoding: how GPT-2 turns text into token ids and back, readable top to bottom.

The idea to leave with: a BPE tokenizer is *a ranked list of merges*. To encode text,
  1. pre-tokenize: GPT-2's regex (GPT2_SPLIT_PATTERN) splits the text into chunks - words with their leading
     space, numbers, runs of punctuation, whitespace - so that no token ever spans two words;
  2. bytes: each chunk becomes its UTF-8 bytes, so no text is ever "unknown". GPT-2's files write every byte as a
     printable character (the space is 'Ġ', the newline 'Ċ'; see bytes_to_unicode), and so does this file:
     ' world' starts as the six symbols Ġ w o r l d;
  3. merge: inside a chunk, merge the adjacent pair that was learned *earliest* (the lowest rank), again and
     again, until no adjacent pair was ever learned: Ġ w o r l d -> Ġw o r l d -> ... -> Ġworld;
  4. look up: each merged piece is an entry of the vocabulary: 'Ġworld' -> 995.
Decoding goes back: ids -> pieces -> bytes -> text.

In reading order, this file holds:
  Encoder         the four steps above, written plainly (the original minGPT's class, under its own name)
  BPETokenizer    GPT-2's tokenizer on mingpt.tokenizer's fast engine, the one to use: the tests check that it
                  equals Encoder token for token, and that both equal tiktoken's GPT-2 encoding
  minGPT's corner get_encoder and get_file, the original's helper names, so code written for minGPT runs unchanged

    from mingpt.bpe import BPETokenizer
    tokenizer = BPETokenizer()              # GPT-2's encoder.json and vocab.bpe: $MINGPT_DATA_DIR, else downloaded once
    tokenizer.encode("Hello, world")        # [15496, 11, 995]
    tokenizer.show_tokens("Hello, world")   # 'Hello|,| world'
    x = tokenizer("Hello, world")           # (1, T) LongTensor ready for the model
    tokenizer.encoder.bpe("ĠKarpathy")      # 'ĠK arp athy': the plain Encoder's merged pieces

Special tokens, two APIs. `encode` follows tiktoken: text containing '<|endoftext|>' raises unless you say what
it means (allowed_special= makes it id 50256, disallowed_special=() makes it text). The original minGPT's entry
points - `BPETokenizer()(text)`, `get_encoder().encode(text)`, `tokenizer.encoder.encode(text)` - encode it as
ordinary text (seven tokens), exactly as minGPT (and tiktoken's `encode_ordinary`) did.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Mapping, Sequence

import regex
import torch

# The vocabulary files' format - the bytes<->unicode table, reading and checking encoder.json + vocab.bpe - is
# mingpt.io.gpt2_vocab's; its names are re-exported here because minGPT users import them from mingpt.bpe.
from mingpt.io.gpt2_vocab import (  # noqa: F401
    BYTE_TO_UNICODE,
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    UNICODE_TO_BYTE,
    bytes_of,
    bytes_to_unicode,
    check_vocab_pair,
    read_gpt2_vocab,
    symbols_of,
)
from mingpt.tokenizer import Tokenizer, merge_pair, utf8_bytes  # noqa: F401

__all__ = [
    "Encoder", "BPETokenizer", "Tokenizer", "get_encoder", "get_pairs", "get_file", "bytes_to_unicode",
    "symbols_of", "bytes_of", "GPT2_SPLIT_PATTERN", "ENDOFTEXT", "merge_pair",
]

logger = logging.getLogger(__name__)


# ---- 1. the algorithm, plainly ----------------------------------------------------------------------------------


def get_pairs(word: Sequence[str]) -> set[tuple[str, str]]:
    """All adjacent pairs of a sequence of symbols: ('a', 'b', 'c') -> {('a', 'b'), ('b', 'c')}."""
    return set(zip(word, word[1:]))


class Encoder:
    """
    GPT-2's BPE, step by step, with the original minGPT's attributes and methods:

        encoder      printable token -> id (encoder.json)      decoder      id -> printable token
        bpe_ranks    (left, right) printable pair -> rank      byte_encoder / byte_decoder   the bytes<->unicode table
        bpe(token)   'ĠKarpathy' -> its merged pieces joined by spaces: 'ĠK arp athy'
        encode(text) -> ids, '<|endoftext|>' as ordinary text  decode(ids) -> text

    Encoder(encoder, bpe_merges) builds one from encoder.json's dict and vocab.bpe's pairs of symbols, as minGPT's
    get_encoder did, and checks that the two agree. Encoder(tokenizer=t) reads the same tables from a Tokenizer.
    Either way `encoder.tokenizer` is the fast engine over the same merges.
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
        elif encoder is not None or bpe_merges is not None:
            raise TypeError("pass either encoder and bpe_merges, or tokenizer=, not both")
        self.tokenizer = tokenizer
        # printable token -> id: a copy of the caller's dict (in its order, as minGPT kept it), else the tokenizer's
        self.encoder = dict(encoder) if encoder is not None else tokenizer.vocab
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.byte_encoder = dict(BYTE_TO_UNICODE)  # byte -> printable symbol: 32 (space) -> 'Ġ'
        self.byte_decoder = dict(UNICODE_TO_BYTE)
        # A merge's rank is its position in vocab.bpe: ('Ġ', 't') was learned first, so it is merged first.
        self.bpe_ranks = {(symbols_of(left), symbols_of(right)): rank
                          for rank, (left, right) in enumerate(tokenizer.merges)}
        self.pat = regex.compile(tokenizer.pattern)  # step 1's regex, compiled once
        self.cache: dict[str, str] = {}  # bpe() results: text repeats its words, each is merged once

    def bpe(self, token: str) -> str:
        """Step 3 for one chunk, given as printable symbols ('Ġthere'): its merged pieces, joined by spaces."""
        if token in self.cache:
            return self.cache[token]
        word = list(token)  # one symbol per byte
        while len(word) > 1:
            # The adjacent pair learned earliest; a pair never learned ranks after every real merge.
            pair = min(get_pairs(word), key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if pair not in self.bpe_ranks:
                break  # no adjacent pair was ever learned: this chunk is done
            # Every occurrence of the pair becomes one symbol, left to right ('a a a' -> 'aa a').
            word = merge_pair(word, pair[0], pair[1], pair[0] + pair[1])
        self.cache[token] = " ".join(word)  # a space never occurs inside a symbol: it is written 'Ġ'
        return self.cache[token]

    def encode_chunk(self, chunk: str) -> list[int]:
        """Steps 2 to 4 for one chunk of text: ' world' -> 'Ġworld' -> [995]."""
        symbols = "".join(self.byte_encoder[b] for b in utf8_bytes(chunk))  # 2. bytes, as printable symbols
        return [self.encoder[piece] for piece in self.bpe(symbols).split(" ")]  # 3. merge, 4. look up

    def encode(self, text: str) -> list[int]:
        """Text to ids; special-token strings are ordinary text here (minGPT's and tiktoken's encode_ordinary)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = []
        for chunk in self.pat.findall(text):  # 1. pre-tokenize
            ids.extend(self.encode_chunk(chunk))
        return ids

    def decode(self, bpe_idx: Sequence[int] | torch.Tensor) -> str:
        """Ids back to text; bytes that are not valid UTF-8 (half a character) become U+FFFD, as in minGPT."""
        ids = bpe_idx.tolist() if hasattr(bpe_idx, "tolist") else list(bpe_idx)  # a 1-D tensor or array, or a list
        for position, i in enumerate(ids):
            if isinstance(i, bool) or i not in self.decoder:
                raise ValueError(f"token id {i!r} at position {position} is not in the vocabulary "
                                 f"(ids 0..{len(self.decoder) - 1})")
        symbols = "".join(self.decoder[i] for i in ids)  # the pieces, printable
        return bytes_of(symbols).decode("utf-8", errors="replace")  # their bytes, then the text

    def encode_and_show_work(self, text: str) -> dict:
        """Every step of encode, for teaching (minGPT's): per chunk, its bytes, symbols, merged pieces and ids."""
        parts = []
        for chunk in self.pat.findall(text):
            data = utf8_bytes(chunk)
            symbols = "".join(self.byte_encoder[b] for b in data)
            parts.append({"token": chunk, "token_bytes": data, "token_translated": symbols,
                          "token_merged": self.bpe(symbols).split(" "), "token_ix": self.encode_chunk(chunk)})
        return {"bpe_idx": [i for part in parts for i in part["token_ix"]], "tokens": [p["token"] for p in parts],
                "parts": parts}


# ---- 2. the tokenizer to use: the same BPE on the fast engine ------------------------------------------------------


class BPETokenizer(Tokenizer):
    """
    GPT-2's tokenizer (50,257 ids) on mingpt.tokenizer's engine: encode, decode, show_tokens, save, load, and the
    original minGPT's call, tokenizer(text) -> a (1, T) LongTensor. With no arguments GPT-2's vocabulary files
    come from $MINGPT_DATA_DIR or the download cache (downloaded once); pass both paths to use local copies.
    `tokenizer.encoder` is the plain Encoder over the same vocabulary.

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
                # Finding or downloading the files is plumbing (the network, the cache), imported only here, when
                # it is needed, so that `import mingpt.bpe` stays light: the original minGPT imported
                # transformers inside GPT.from_pretrained for the same reason.
                from mingpt.io.data_files import fetch_gpt2_vocab

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
        """The original minGPT's `tokenizer.encoder`: the plain Encoder over this tokenizer's merges."""
        return Encoder(tokenizer=self)


# ---- 3. minGPT's corner: the original's helper names -----------------------------------------------------------


def get_encoder(
    encoder_path: str | os.PathLike | None = None,
    vocab_path: str | os.PathLike | None = None,
    base_url: str | None = None,
) -> Encoder:
    """GPT-2's Encoder, as in the original minGPT: from local paths if given, else downloaded and cached."""
    return BPETokenizer(encoder_path, vocab_path, base_url=base_url).encoder


def get_file(local_file: str | os.PathLike, remote_file: str) -> None:
    """
    The original minGPT's helper: download `remote_file` to `local_file` unless that file exists already.
    Here the download is verified by length, retried and atomic (see mingpt.io.download), and logged, not printed.
    """
    if os.path.isfile(local_file):
        return
    # The network, imported only when a file must be fetched (the reason is BPETokenizer's, above).
    from mingpt.io.download import download

    logger.info("downloading %s to %s", remote_file, local_file)
    download(remote_file, local_file)
