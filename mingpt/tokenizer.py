"""
The fast engine of byte-level BPE: text -> bytes -> merged tokens -> integer ids, and back. `Tokenizer` is the
machinery every tokenizer in mingpt shares (GPT-2's BPETokenizer in mingpt.bpe, the trained ByteLevelBPE in
mingpt.bpe_train). Read mingpt.bpe's Encoder first: the same algorithm written plainly, on printable strings. This
file computes the same tokens (the tests check it) with integer ids instead of strings, bytes.translate instead of a
per-byte loop, one rank lookup per pair and a cache of encoded chunks; bench/bpe.py times it against tiktoken.

The idea to leave with: a byte-level BPE is *fully defined by its ranked list of merges*. Text is UTF-8 encoded,
so every string is a sequence of the 256 possible bytes (nothing is ever "unknown"). A regex first splits the
text into chunks (words, numbers, punctuation runs, whitespace) so merges never cross a word boundary. Inside a
chunk we repeatedly merge the adjacent pair that was learned *earliest* (lowest rank) until no learned pair is
left. Token ids follow from the merge list alone:

    ids 0..255     the single bytes, in the order of GPT-2's bytes<->unicode table (mingpt.io.gpt2_vocab)
    id 256 + i     the token created by merge i
    after those    special tokens such as <|endoftext|> (50256 in GPT-2), which never come out of merging

    from mingpt.tokenizer import Tokenizer
    tokenizer = Tokenizer([(b"h", b"e"), (b"l", b"l"), (b"he", b"ll"), (b"hell", b"o")])  # ids 256..259
    tokenizer.encode("hello")        # [259]
    tokenizer.merge_steps("hello")   # [['h','e','l','l','o'], ['he','l','l','o'], ['he','ll','o'], ..., ['hello']]

Special tokens follow tiktoken's rule in `encode`: text containing one raises unless you say what it means
(allowed_special= makes it its id, disallowed_special=() makes it text), because a document that smuggles in the
end-of-text id can change what a model does. `encode_ordinary` always treats them as text.
"""

from __future__ import annotations

import json
import numbers
import os
import pathlib
from itertools import repeat
from typing import Iterable, Mapping, Sequence

import regex
import torch

from mingpt.atomic import atomic_path
from mingpt.io.gpt2_vocab import BYTE_TO_UNICODE, GPT2_SPLIT_PATTERN, bytes_of, symbols_of

__all__ = ["Tokenizer", "merge_pair", "utf8_bytes", "read_tokenizer_file", "GPT2_SPLIT_PATTERN", "FILE_HEADER"]

FILE_HEADER = "mingpt-bpe v1"
_NOT_A_MERGE = 1 << 62  # the rank of a pair that was never learned: larger than any real one
CACHE_SIZE = 1 << 18  # chunks remembered by encode; the cache is simply emptied when it fills up


def utf8_bytes(text: str) -> bytes:
    """text as UTF-8; lone surrogates ('\\ud800', which have no UTF-8) become U+FFFD first, as tiktoken does."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def merge_pair(ids: list[int], left: int, right: int, new_id: int) -> list[int]:
    """Replace each (left, right) in ids by new_id, left to right without overlap: 'a a a' -> 'aa a'."""
    merged, i, n = [], 0, len(ids)
    while i < n:
        if ids[i] == left and i + 1 < n and ids[i + 1] == right:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


class Tokenizer:
    """
    A byte-level BPE tokenizer defined by its ranked merges, a split pattern and special tokens.

    The contract every tokenizer here keeps:
        train(text, vocab_size)   classmethod: learn merges from text (see mingpt.bpe_train.ByteLevelBPE)
        encode(text) -> ids       with tiktoken's rules for special tokens
        decode(ids) -> str        invalid UTF-8 (e.g. half a character) becomes U+FFFD instead of an error
        save(path) / load(path)   a small text file: header, pattern, special tokens, one merge per line

    merges: (left bytes, right bytes) pairs, earliest learned first; merge i creates token id 256 + i.
    pattern: the regex that splits text into chunks before merging (GPT-2's by default).
    special_tokens: name -> id, each id above those of the ordinary tokens, e.g. {"<|endoftext|>": 50256}.

    Every subclass can be built as cls(merges=..., pattern=..., special_tokens=...): load and train build
    whatever class they are called on that way. (BPETokenizer also takes GPT-2's file paths, as in minGPT.)
    """

    def __init__(
        self,
        merges: Sequence[tuple[bytes, bytes]],
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
    ):
        if any(not isinstance(token, bytes) for pair in merges for token in pair):
            raise TypeError("merges must be a sequence of (bytes, bytes) pairs, e.g. [(b' ', b't'), (b'h', b'e')]")
        self.merges = [(left, right) for left, right in merges]
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        # Byte b gets the id of its position in GPT-2's table; bytes.translate maps a whole chunk in one call.
        byte_ids = {b: i for i, b in enumerate(BYTE_TO_UNICODE)}
        self._byte_table = bytes(byte_ids[b] for b in range(256))
        token_id = {bytes([b]): i for b, i in byte_ids.items()}
        self._ranks: dict[tuple[int, int], int] = {}  # (left id, right id) -> merged id; smaller id = earlier merge
        for rank, (left, right) in enumerate(self.merges):
            if left not in token_id or right not in token_id:
                raise ValueError(f"merge {rank} {(left, right)!r} uses a token that no earlier merge created")
            if left + right in token_id:
                raise ValueError(f"merge {rank} {(left, right)!r} creates {left + right!r}, which already exists")
            token_id[left + right] = 256 + rank
            self._ranks[(token_id[left], token_id[right])] = 256 + rank
        self._token_ids = token_id  # bytes -> id, for the ordinary (non-special) tokens
        self._pair_of = [(token_id[a], token_id[b]) for a, b in self.merges]  # merge rank -> (left id, right id)
        self._decode_table: list[bytes | None] = sorted(token_id, key=token_id.get)  # id -> bytes
        self.special_tokens: dict[str, int] = {}
        for name, idx in (special_tokens or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token names must be non-empty strings, got {name!r}")
            if not isinstance(idx, int) or idx < len(token_id) or idx in self.special_tokens.values():
                raise ValueError(f"special token {name!r} needs an unused id >= {len(token_id)}, got {idx!r}")
            self.special_tokens[name] = idx
            self._decode_table.extend([None] * (idx + 1 - len(self._decode_table)))
            self._decode_table[idx] = name.encode("utf-8")
        self._cache: dict[str, list[int]] = {}

    @property
    def n_vocab(self) -> int:
        """Number of ids (largest id + 1), special tokens included."""
        return len(self._decode_table)

    @property
    def vocab(self) -> dict[str, int]:
        """The encoder.json view: printable token string -> id (special tokens included)."""
        return {**{symbols_of(data): i for data, i in self._token_ids.items()}, **self.special_tokens}

    # ---- encoding ----------------------------------------------------------------------------------------------

    def _merge(self, ids: list[int], steps: list[list[int]] | None = None) -> list[int]:
        """BPE inside one chunk: merge the earliest-learned adjacent pair (all its occurrences), repeat."""
        ranks, not_learned = self._ranks, repeat(_NOT_A_MERGE)
        while len(ids) > 1:
            # Why map and not a generator expression: this is the hot loop of encoding, and map(ranks.get, pairs,
            # defaults) runs no Python code per pair, which is measurably faster (bench/bpe.py times encoding).
            pairs = zip(ids, ids[1:])                           # every adjacent pair, left to right
            pair_ranks = map(ranks.get, pairs, not_learned)     # ranks.get(pair, _NOT_A_MERGE) for each pair
            new_id = min(pair_ranks)                            # the earliest merge among them (its id = its rank)
            if new_id == _NOT_A_MERGE:
                break  # no adjacent pair was ever learned: done
            left, right = self._pair_of[new_id - 256]
            ids = merge_pair(ids, left, right, new_id)
            if steps is not None:
                steps.append(ids)
        return ids

    def _encode_chunk(self, chunk: str) -> list[int]:
        data = utf8_bytes(chunk)
        # A chunk that is itself a token stays one token, as in tiktoken. For GPT-2 this changes no result (each
        # of its tokens merges back into itself; see the tests), it only skips the merge loop for about half of
        # the distinct words of English text.
        whole = self._token_ids.get(data)
        if whole is not None:
            return [whole]
        return self._merge(list(data.translate(self._byte_table)))

    def pre_tokenize(self, text: str) -> list[str]:
        """The chunks BPE merges inside, in order: GPT-2's regex cuts words, numbers, punctuation and spaces apart."""
        return self._regex.findall(text)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings like any other text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._encode_text(text)

    def _encode_text(self, text: str) -> list[int]:
        cache, ids = self._cache, []
        for chunk in self.pre_tokenize(text):
            chunk_ids = cache.get(chunk)  # text repeats words a lot: each distinct chunk is merged only once
            if chunk_ids is None:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                chunk_ids = cache[chunk] = self._encode_chunk(chunk)
            ids.extend(chunk_ids)
        return ids

    def _special_set(self, value: str | Iterable[str], argument: str) -> set[str]:
        if value == "all":
            return set(self.special_tokens)
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TypeError(f"{argument} must be 'all' or a set of special token strings, got {value!r}")
        chosen = set(value)
        unknown = sorted(chosen - set(self.special_tokens), key=str)
        if unknown:
            known = sorted(self.special_tokens)
            raise ValueError(f"unknown special token {unknown[0]!r} in {argument}; this tokenizer knows {known}")
        return chosen

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """
        Encode text to ids, with tiktoken's rules for special tokens like '<|endoftext|>':
        allowed ones become their single id; disallowed ones (by default: every special token not allowed)
        raise ValueError; ones in neither set are encoded as ordinary text.

            encode("a<|endoftext|>", allowed_special="all")   # [64, 50256]
            encode("a<|endoftext|>", disallowed_special=())   # seven ordinary tokens after 'a'
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        for token in sorted(disallowed):
            if token in text:
                raise ValueError(
                    f"text contains the special token {token!r}. Pass allowed_special={{{token!r}}} (or 'all') to "
                    f"encode it as id {self.special_tokens[token]}, or disallowed_special=() to encode it as text."
                )
        allowed = {token for token in allowed if token in text}
        if not allowed:
            return self.encode_ordinary(text)
        # Split around the allowed special tokens (longest first, so one that contains another wins).
        splitter = "(" + "|".join(regex.escape(t) for t in sorted(allowed, key=len, reverse=True)) + ")"
        ids = []
        for i, part in enumerate(regex.split(splitter, text)):
            ids.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return ids

    def encode_batch(self, texts: Sequence[str], **special) -> list[list[int]]:
        """Encode each text of a list; keyword arguments as in encode."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}; for one text use encode")
        return [self.encode(text, **special) for text in texts]

    def __call__(self, text: str, return_tensors: str = "pt", **special) -> torch.Tensor:
        """
        Encode one text as a (1, T) LongTensor, ready to feed a GPT (the original minGPT API). As in minGPT,
        special-token strings are ordinary text unless allowed_special= / disallowed_special= are given (then
        the rules of `encode` apply).
        """
        if return_tensors != "pt":
            raise ValueError(f"only return_tensors='pt' is supported, got {return_tensors!r}")
        ids = self.encode(text, **special) if special else self.encode_ordinary(text)
        return torch.tensor([ids], dtype=torch.long)

    # ---- decoding ----------------------------------------------------------------------------------------------

    def decode_bytes(self, ids: Sequence[int] | torch.Tensor) -> bytes:
        """The raw bytes of a list (or 1-D tensor) of ids."""
        ids = _id_list(ids)
        try:
            data = b"".join([self._decode_table[i] for i in ids])  # None (an unused id) or a non-int: TypeError
        except (IndexError, TypeError):
            data = None
        # Indexing accepts two things that are not token ids: True (= 1: a mask passed where ids were meant) and
        # negative numbers (-1 = the last id). Checking the whole list at once keeps decoding at C speed.
        if data is None or bool in set(map(type, ids)) or min(ids, default=0) < 0:
            raise self._bad_id_error(ids)
        return data

    def _bad_id_error(self, ids: Sequence) -> Exception:
        """The error for the first id decode_bytes cannot decode, naming it and its position."""
        table = self._decode_table

        def is_token_id(i) -> bool:
            return (isinstance(i, numbers.Integral) and not isinstance(i, bool)
                    and 0 <= i < len(table) and table[i] is not None)

        position, bad = next((position, i) for position, i in enumerate(ids) if not is_token_id(i))
        if isinstance(bad, bool):
            return TypeError(f"token ids must be ints, got the bool {bad!r} at position {position}; "
                             f"was a mask passed instead of ids?")
        if not isinstance(bad, numbers.Integral):
            return TypeError(f"token ids must be ints, got {bad!r} at position {position}")
        return ValueError(f"token id {bad} at position {position} is out of range: valid ids are 0..{len(table) - 1}")

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Ids back to text; bytes that are not valid UTF-8 (e.g. a cut-off emoji) become U+FFFD ('�')."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- showing the work (for teaching) -----------------------------------------------------------------------

    def token_pieces(self, text: str, **special) -> list[tuple[int, bytes, str]]:
        """Each token of `text` as (id, its bytes, its text): [(15496, b'Hello', 'Hello'), (11, b',', ','), ...]."""
        return [(i, self.decode_bytes([i]), self.decode([i])) for i in self.encode(text, **special)]

    def show_tokens(self, text: str, separator: str = "|", **special) -> str:
        """Text with token boundaries marked: 'Hello|,| world'."""
        return separator.join(piece for _, _, piece in self.token_pieces(text, **special))

    def merge_steps(self, chunk: str | bytes) -> list[list[str]]:
        """
        How one chunk is merged, step by step, as printable symbols: the single bytes first, then the state after
        each merge. merge_steps(" world") -> [['Ġ','w','o','r','l','d'], ['Ġw','o','r','l','d'], ..., ['Ġworld']]
        """
        if not isinstance(chunk, (str, bytes)):
            raise TypeError(f"chunk must be a str or bytes, got {type(chunk).__name__}")
        data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        start = list(data.translate(self._byte_table))
        steps = [start]
        self._merge(start, steps)
        return [[symbols_of(self._decode_table[i]) for i in ids] for ids in steps]

    # ---- the contract: train, save, load -------------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, **options) -> Tokenizer:
        """Learn merges from text. This class has a fixed vocabulary; see mingpt.bpe_train.ByteLevelBPE.train."""
        raise TypeError(f"{cls.__name__} cannot be trained; use mingpt.bpe_train.ByteLevelBPE.train")

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as readable text (atomically: a temp file, then os.replace)."""
        path = pathlib.Path(path)
        lines = [FILE_HEADER, f"pattern {json.dumps(self.pattern)}"]
        lines += [f"special {json.dumps(name)} {idx}" for name, idx in self.special_tokens.items()]
        lines += [f"merges {len(self.merges)}"]
        lines += [f"{symbols_of(left)} {symbols_of(right)}" for left, right in self.merges]
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by save; raises ValueError naming the line if it is not in that format."""
        merges, pattern, special_tokens = read_tokenizer_file(path)
        # By keyword: the one constructor signature every tokenizer class accepts (see the class docstring).
        return cls(merges=merges, pattern=pattern, special_tokens=special_tokens)


def read_tokenizer_file(path: str | os.PathLike) -> tuple[list[tuple[bytes, bytes]], str, dict[str, int]]:
    """(merges, pattern, special_tokens) from a file written by Tokenizer.save."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    pattern, special_tokens, merges, i = None, {}, [], 0
    try:
        if lines[0] != FILE_HEADER:
            raise ValueError(f"expected the header {FILE_HEADER!r}")
        i = 1
        while not lines[i].startswith("merges "):
            key, value = lines[i].split(" ", 1)
            if key == "pattern":
                pattern = json.loads(value)
            elif key == "special":
                name, idx = value.rsplit(" ", 1)
                special_tokens[json.loads(name)] = int(idx)
            else:
                raise ValueError(f"unknown entry {key!r}")
            i += 1
        n_merges = int(lines[i].split(" ", 1)[1])
        for i in range(i + 1, i + 1 + n_merges):
            left, right = lines[i].split(" ")
            merges.append((bytes_of(left), bytes_of(right)))
        if pattern is None:
            raise ValueError("no pattern line")
    except (ValueError, IndexError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a valid {FILE_HEADER} file (line {i + 1}): {e}") from None
    return merges, pattern, special_tokens


def _id_list(ids) -> Sequence:
    """A 1-D tensor, numpy array, list, tuple or other iterable of ids as a plain list (what decoding indexes)."""
    if isinstance(ids, torch.Tensor):
        if ids.dtype == torch.bool or ids.dtype.is_floating_point:
            raise TypeError(f"token ids must be ints, got a tensor of dtype {ids.dtype}; use .long() on ids")
        if ids.dim() != 1:
            raise ValueError(f"decode takes a 1-D tensor of ids, got shape {tuple(ids.shape)}; pick a row: x[0]")
        return ids.tolist()
    if hasattr(ids, "tolist"):  # numpy arrays
        return ids.tolist()
    if isinstance(ids, (list, tuple)):
        return ids
    if not isinstance(ids, Iterable) or isinstance(ids, (str, bytes)):
        raise TypeError(f"ids must be a list or 1-D tensor of ints, got {type(ids).__name__}")
    return list(ids)
