"""
GPT-2's vocabulary files: how they write bytes as printable text, how to read them, and how to check them.

GPT-2's tokenizer ships as two files, and Hugging Face model folders carry the same two under other names:

    encoder.json  (vocab.json)   every token as printable text -> its id        {"!": 0, ..., "Ġworld": 995, ...}
    vocab.bpe     (merges.txt)   a version line, then one merge per line        "#version: 0.2", "Ġ t", "Ġ a", ...

The idea to leave with: the two files are *redundant*. Merge i creates token id 256 + i, so the merges alone fix
every id but those of the special tokens, which follow them (<|endoftext|> is 50256 = 256 + 50,000). That
redundancy is what lets us check a pair of files and say which one is wrong: a vocab.bpe cut short leaves
encoder.json with tens of thousands of tokens no merge creates; an encoder.json cut short is not valid JSON; a
pair given in the wrong order is a JSON object where merges were expected.

The printable text exists because a JSON/text file cannot hold arbitrary bytes: each byte is shown as a visible
character (the bytes<->unicode table below; the space byte is 'Ġ', newline 'Ċ'), so the token b" world" is
written 'Ġworld'.

Only the format lives here (no network, so the tokenizer that reads it stays light to import); where the two files
come from (the pinned URL, their sha256, $MINGPT_DATA_DIR, the cache) is mingpt.io.data_files.fetch_gpt2_vocab.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Mapping, Sequence

from mingpt.atomic import atomic_path

ENDOFTEXT = "<|endoftext|>"
# GPT-2's pre-tokenization (as written by tiktoken; same matches as OpenAI's original): contractions,
# an optional space + letters, an optional space + digits, an optional space + other symbols, then whitespace.
# `\s+(?!\S)` leaves the last space of a run to start the next word, which is why " world" is one token.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_N_MERGES = 50_000
MERGES_HEADER = "#version: 0.2"  # the first line of GPT-2's vocab.bpe and of Hugging Face's merges.txt
# What a special token looks like in the files we know: <|endoftext|>, <s>, </s>, <pad>, [PAD], [CLS]...
# An ordinary token left over without a merge (a vocab.bpe cut short) almost never has this shape.
_SPECIAL_SHAPE = re.compile(r"^(<[^<>\s]+>|\[[^\[\]\s]+\])$")


def bytes_to_unicode() -> dict[int, str]:
    """
    GPT-2's table from each byte (0..255) to a printable unicode character.

    Bytes that are already visible (ASCII '!'..'~', Latin-1 '¡'..'¬' and '®'..'ÿ') map to themselves; the other
    68 (controls, space, soft hyphen...) map to chr(256), chr(257), ... in order. The dict's order (visible
    bytes first) is also the order of the 256 byte tokens' ids.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in visible}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}
_LATIN1_TO_SYMBOL = {b: ord(c) for b, c in BYTE_TO_UNICODE.items()}  # for str.translate on latin-1 text


def symbols_of(data: bytes) -> str:
    """Bytes as GPT-2's printable symbols: b' world' -> 'Ġworld'."""
    return data.decode("latin-1").translate(_LATIN1_TO_SYMBOL)  # latin-1 maps byte b to chr(b) one to one


def bytes_of(symbols: str) -> bytes:
    """The inverse of symbols_of: 'Ġworld' -> b' world'. Raises ValueError on a character outside the table."""
    try:
        return bytes(UNICODE_TO_BYTE[c] for c in symbols)
    except KeyError as e:
        raise ValueError(f"{symbols!r} contains {e.args[0]!r}, which is not in GPT-2's bytes<->unicode table") from None


# ---- reading and checking a pair of files ---------------------------------------------------------------------------


def _looks_like_json(path) -> bool:
    with open(path, "rb") as f:
        return f.read(64).lstrip()[:1] == b"{"


def _check_not_swapped(encoder_path, vocab_path) -> None:
    """Name the file that holds the wrong kind of content, and say so when the two were simply given swapped."""
    encoder_is_json, vocab_is_json = _looks_like_json(encoder_path), _looks_like_json(vocab_path)
    if vocab_is_json and not encoder_is_json:
        raise ValueError(
            f"the two paths look swapped: {vocab_path} (given as vocab.bpe, the merges) holds a JSON object like "
            f"encoder.json, and {encoder_path} (given as encoder.json) does not. Pass encoder.json (vocab.json) "
            f"first and vocab.bpe (merges.txt) second."
        )
    if vocab_is_json:
        raise ValueError(f"{vocab_path} should be vocab.bpe / merges.txt (one merge 'left right' per line), but it "
                         f"holds JSON; pass the merges file as the second path")
    if not encoder_is_json:
        raise ValueError(f"{encoder_path} should be encoder.json / vocab.json (a JSON object token -> id), but it is "
                         f"not JSON; pass the vocabulary file as the first path")


def read_merges(vocab_path) -> list[tuple[bytes, bytes]]:
    """The merges of a vocab.bpe / merges.txt file, as (left bytes, right bytes), earliest first."""
    merges = []
    with open(vocab_path, encoding="utf-8", errors="replace") as f:  # bad bytes become U+FFFD, rejected below
        for lineno, line in enumerate(f.read().split("\n"), start=1):
            if not line or (lineno == 1 and line.startswith("#version")):
                continue
            try:
                left, right = line.split(" ")
                merges.append((bytes_of(left), bytes_of(right)))
            except ValueError as e:
                problem = f"expected a merge 'left right', got {line[:80]!r} ({e})"
                raise ValueError(f"{vocab_path}:{lineno}: {problem}") from None
    return merges


def check_vocab_pair(
    encoder: Mapping[str, int],
    merges: Sequence[tuple[bytes, bytes]],
    encoder_name: str = "encoder.json",
    vocab_name: str = "vocab.bpe",
) -> dict[str, int]:
    """
    Check an encoder (token -> id) against merges and return the special tokens (the entries no merge explains).

    Raises ValueError naming the file that is wrong: a missing or renumbered token, or leftovers that are not
    special tokens (what a vocab.bpe cut short leaves behind).
    """
    expected = {symbols_of(bytes([b])): i for i, b in enumerate(BYTE_TO_UNICODE)}
    expected.update({symbols_of(left + right): 256 + rank for rank, (left, right) in enumerate(merges)})
    missing = [token for token in expected if token not in encoder]
    if missing:
        raise ValueError(
            f"{encoder_name} has no entry for {len(missing):,} token(s) that {vocab_name} creates (first: "
            f"{missing[0]!r}, id {expected[missing[0]]}); it holds {len(encoder):,} entries for {len(merges):,} "
            f"merges. "
            f"{encoder_name} looks incomplete or from another vocabulary: fetch it again."
        )
    for token, idx in expected.items():
        if encoder[token] != idx:
            raise ValueError(
                f"{encoder_name} and {vocab_name} disagree: token {token!r} has id {encoder[token]!r} "
                f"in {encoder_name} but {idx} by the merge order; are they from the same vocabulary?"
            )
    leftovers = {token: idx for token, idx in encoder.items() if token not in expected}
    ordinary = [token for token in leftovers if not _SPECIAL_SHAPE.match(token)]
    if ordinary:
        ids = sorted(leftovers.values())
        hint = (f" GPT-2's has {GPT2_N_MERGES:,} merges and {GPT2_N_MERGES + 257:,} tokens."
                if len(encoder) == GPT2_N_MERGES + 257 else "")
        raise ValueError(
            f"{vocab_name} has {len(merges):,} merges, too few for {encoder_name}'s {len(encoder):,} tokens: "
            f"{len(leftovers):,} tokens (ids {ids[0]}..{ids[-1]}, e.g. {ordinary[0]!r}) have no merge, and they are "
            f"not special tokens like {ENDOFTEXT!r}. {vocab_name} looks truncated: fetch it again.{hint}"
        )
    too_low = {token: idx for token, idx in leftovers.items() if idx < 256 + len(merges)}
    if too_low:
        token, idx = next(iter(too_low.items()))
        raise ValueError(f"{encoder_name} gives special token {token!r} id {idx}, which merge {idx - 256} of "
                         f"{vocab_name} already creates; are they from the same vocabulary?")
    return leftovers


def read_gpt2_vocab(encoder_path: str | os.PathLike, vocab_path: str | os.PathLike) -> tuple[list, dict]:
    """Parse GPT-2's vocab.bpe (the merges) and check encoder.json against it; returns (merges, special_tokens)."""
    for path in (encoder_path, vocab_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"GPT-2 vocabulary file not found: {path}. Pass the paths of encoder.json and vocab.bpe, or call "
                f"BPETokenizer() without arguments to download them."
            )
    _check_not_swapped(encoder_path, vocab_path)
    merges = read_merges(vocab_path)
    try:
        with open(encoder_path, encoding="utf-8") as f:
            encoder = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{encoder_path} is not valid JSON ({e}); the file may be truncated: fetch it again") from None
    if not isinstance(encoder, dict):
        raise ValueError(f"{encoder_path} should hold a JSON object (token -> id), got {type(encoder).__name__}")
    return merges, check_vocab_pair(encoder, merges, str(encoder_path), str(vocab_path))


def write_hf_vocab(merges: Sequence[tuple[bytes, bytes]], special_tokens: Mapping[str, int],
                   directory: str | os.PathLike) -> list[pathlib.Path]:
    """
    Write vocab.json and merges.txt into `directory` the way Hugging Face's GPT-2 tokenizer saves them (each file
    atomically); transformers' AutoTokenizer and mingpt both read them back. Returns the two paths.
    """
    directory = pathlib.Path(directory)
    vocab = {symbols_of(bytes([b])): i for i, b in enumerate(BYTE_TO_UNICODE)}
    vocab.update({symbols_of(left + right): 256 + rank for rank, (left, right) in enumerate(merges)})
    vocab.update(special_tokens)
    lines = [MERGES_HEADER] + [f"{symbols_of(left)} {symbols_of(right)}" for left, right in merges]
    paths = [directory / "vocab.json", directory / "merges.txt"]
    with atomic_path(paths[0]) as tmp:
        pathlib.Path(tmp).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with atomic_path(paths[1]) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return paths
