"""
The tokenizer of a Hugging Face model folder: a byte-level BPE read from its tokenizer.json, for GPT-NeoX/Pythia,
Llama 3.x, SmolLM2, Qwen2/Qwen3 and GPT-2 itself. It gives the ids Hugging Face's `tokenizers` gives (the tests
compare them on many strings), on the same engine as GPT-2's tokenizer (mingpt.tokenizer).

    from mingpt.hub_tokenizer import HubTokenizer
    tokenizer = HubTokenizer.from_file("pythia-70m/tokenizer.json")
    tokenizer.encode("Hello  world")                            # ids, as tokenizers' encode(...).ids
    tokenizer.encode("<|endoftext|>Hi", allowed_special="all")  # special tokens as in mingpt.tokenizer
    model = GPT.from_pretrained("pythia-70m")                   # a folder with a tokenizer.json: model.tokenizer

The one idea: it is GPT-2's BPE (read mingpt.bpe first) with four things a file may change, each step of
mingpt.io.tokenizer_json's list:

  * ids: GPT-2's merge i creates id 256 + i, so the merges alone fix the ids (mingpt.tokenizer relies on it). Here
    the vocab gives every id: Pythia's '!' is id 3, not 0. So a merge is remembered as (left id, right id) -> its
    rank and the id of the token it creates; the merge loop is mingpt.tokenizer's, with one more lookup.
  * the pre-split: a list of regex splits (Llama 3's regex, digits one by one...) and a space put before each chunk
    (add_prefix_space), applied in the file's order, where GPT-2 has its one regex.
  * added tokens, matched before the pre-split: the special ones follow mingpt's rule (encode's allowed_special;
    to_tokens allows them all, as Hugging Face does); the others (GPT-NeoX's runs of 2 to 24 spaces) are always
    matched, as in Hugging Face, because they are ordinary text to the model.
  * ignore_merges (Llama 3): a chunk that is already a token is taken whole, without merging.

Known difference: Hugging Face merges by a priority queue, mingpt merges every occurrence of the earliest pair at
once; the two agree whenever a merge never creates a pair that ranks earlier than itself, which holds for files
that BPE training wrote (and the tiktoken conversions Llama 3 and Qwen2 ship).
"""

from __future__ import annotations

import json
import os
import pathlib
import unicodedata
from itertools import pairwise, repeat

import regex

from mingpt.atomic import atomic_path
from mingpt.io.gpt2_vocab import BYTE_TO_UNICODE, GPT2_SPLIT_PATTERN, UNICODE_TO_BYTE, bytes_of, symbols_of
from mingpt.io.tokenizer_json import TOKENIZER_CONFIG, TOKENIZER_FILE, TokenizerJSON, read_tokenizer_json
from mingpt.tokenizer import Tokenizer, merge_pair, utf8_bytes

__all__ = ["HubTokenizer"]

_NOT_A_MERGE = 1 << 62  # the rank of a pair that was never learned


def _token_bytes(token: str) -> bytes:
    """A token's bytes as the ByteLevel decoder gives them: printable symbols back to bytes, else its UTF-8."""
    return bytes_of(token) if all(c in UNICODE_TO_BYTE for c in token) else token.encode("utf-8")


def _split_isolated(pattern: regex.Pattern, text: str) -> list[str]:
    """Cut text by a regex keeping every character: the matches and the gaps between them (HF's 'Isolated')."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        if match.start() > start:
            pieces.append(text[start:match.start()])
        if match.end() > match.start():
            pieces.append(match.group())
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


class HubTokenizer(Tokenizer):
    """
    A byte-level BPE tokenizer from a Hugging Face tokenizer.json: `HubTokenizer.from_file(path)` (a file, or the
    folder holding it). Encodes, decodes and shows tokens like every mingpt Tokenizer; `save` writes the
    tokenizer.json back; `bos_token` / `eos_token` name the model's special tokens where the files say.
    """

    def __init__(self, spec: TokenizerJSON):
        # Not Tokenizer.__init__: that one derives every id from the merge order, and here the vocab gives them.
        self.spec, self.ignore_merges, self.nfc = spec, spec.ignore_merges, spec.nfc
        self.bos_token, self.eos_token = spec.bos_token, spec.eos_token
        self._token_ids = {data: i for token, i in spec.vocab.items()   # bytes -> id, what BPE can produce
                           if all(c in UNICODE_TO_BYTE for c in token) for data in [bytes_of(token)]}
        missing = [symbols_of(bytes([b])) for b in BYTE_TO_UNICODE if bytes([b]) not in self._token_ids]
        if missing:
            raise ValueError(f"the vocab has no token for {len(missing)} of the 256 bytes (first: {missing[0]!r}): "
                             f"not a byte-level BPE, whose vocab starts with every byte")
        self._byte_ids = [self._token_ids[bytes([b])] for b in range(256)]  # byte value -> its token's id
        self.merges, self._ranks, self._merge_of = [], {}, []
        for rank, (left, right) in enumerate(spec.merges):
            for token in (left, right, left + right):
                if token not in spec.vocab:
                    raise ValueError(f"merge {rank} ({left!r}, {right!r}) needs the token {token!r}, which is not "
                                     f"in the vocab; the tokenizer.json is inconsistent")
            ids = (spec.vocab[left], spec.vocab[right])
            self._ranks[ids] = rank  # a pair listed twice keeps its later rank, as in Hugging Face's dict
            self._merge_of.append((*ids, spec.vocab[left + right]))
            self.merges.append((_token_bytes(left), _token_bytes(right)))
        splits = [pattern for kind, pattern in spec.steps if kind == "split"]
        self.pattern = splits[0] if len(splits) == 1 else None  # the one regex, as on every mingpt Tokenizer
        self._steps = [(kind, regex.compile(p) if p else None) for kind, p in spec.steps]
        self._just_gpt2_regex = spec.steps == [("split", GPT2_SPLIT_PATTERN)]
        self._regex = self._steps[0][1] if self._just_gpt2_regex else None
        # Added tokens: the special ones go through encode's allowed_special; the others are always matched
        # (longest first: at a position the longest added token wins, Hugging Face's leftmost-longest rule).
        self.special_tokens = {t["content"]: t["id"] for t in spec.added_tokens if t["special"]}
        self._added_ids = {t["content"]: t["id"] for t in spec.added_tokens if not t["special"]}
        self._added_regex = regex.compile("(" + "|".join(
            regex.escape(t) for t in sorted(self._added_ids, key=len, reverse=True)) + ")") if self._added_ids else None
        size = 1 + max([*spec.vocab.values(), *(t["id"] for t in spec.added_tokens)])
        self._decode_table: list[bytes | None] = [None] * size  # id -> bytes; None: an id no token has
        for token, i in spec.vocab.items():
            self._decode_table[i] = _token_bytes(token)
        for t in spec.added_tokens:
            self._decode_table[t["id"]] = _token_bytes(t["content"])
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> HubTokenizer:
        """The tokenizer of a tokenizer.json (a path to the file, or to the folder holding it)."""
        return cls(read_tokenizer_json(path))

    # ---- encoding: mingpt.tokenizer's steps, with the vocab's ids -----------------------------------------------

    def _merge(self, ids: list[int], steps: list[list[int]] | None = None) -> list[int]:
        """BPE inside one chunk: merge the earliest-learned adjacent pair (all its occurrences), repeat."""
        ranks, not_learned = self._ranks, repeat(_NOT_A_MERGE)
        while len(ids) > 1:
            rank = min(map(ranks.get, pairwise(ids), not_learned))  # as mingpt.tokenizer's loop
            if rank == _NOT_A_MERGE:
                break
            left, right, new_id = self._merge_of[rank]  # the rank is no id here: one more lookup
            ids = merge_pair(ids, left, right, new_id)
            if steps is not None:
                steps.append(ids)
        return ids

    def _encode_chunk(self, chunk: str) -> list[int]:
        data = utf8_bytes(chunk)
        if self.ignore_merges and data in self._token_ids:  # only where the file asks: it can change the ids
            return [self._token_ids[data]]
        return self._merge([self._byte_ids[b] for b in data])

    def pre_tokenize(self, text: str) -> list[str]:
        """The chunks BPE merges inside, in order: the file's splits and prefix spaces, applied to text."""
        if self._just_gpt2_regex:
            return self._regex.findall(text)
        pieces = [text] if text else []
        for kind, pattern in self._steps:
            if kind == "prefix_space":
                pieces = [piece if piece.startswith(" ") else " " + piece for piece in pieces]
            else:
                pieces = [part for piece in pieces for part in _split_isolated(pattern, piece)]
        return pieces

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with special-token strings as text; the non-special added tokens are always matched."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        if self._added_regex is None:
            return self._encode_text(text)
        ids = []
        for i, part in enumerate(self._added_regex.split(text)):  # odd parts: the added tokens themselves
            ids.extend([self._added_ids[part]] if i % 2 else self._encode_text(part) if part else [])
        return ids

    def merge_steps(self, chunk: str | bytes) -> list[list[str]]:
        """How one chunk is merged, step by step, as printable symbols (mingpt.tokenizer's merge_steps)."""
        if not isinstance(chunk, (str, bytes)):
            raise TypeError(f"chunk must be a str or bytes, got {type(chunk).__name__}")
        data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        steps = [[self._byte_ids[b] for b in data]]
        self._merge(steps[0], steps)
        return [[symbols_of(self._decode_table[i]) for i in ids] for ids in steps]

    # ---- the file ----------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer.json this tokenizer was read from (atomically); `load` or Hugging Face reads it."""
        with atomic_path(pathlib.Path(path)) as tmp:
            pathlib.Path(tmp).write_text(json.dumps(self.spec.source, ensure_ascii=False, indent=2), encoding="utf-8")

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """tokenizer.json and a tokenizer_config.json naming the bos/eos tokens: what transformers' AutoTokenizer and
        GPT.from_pretrained read from a model folder (model.save_pretrained calls this with model.tokenizer)."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save(directory / TOKENIZER_FILE)
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": self.bos_token,
                  "eos_token": self.eos_token}
        with atomic_path(directory / TOKENIZER_CONFIG) as tmp:
            pathlib.Path(tmp).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> HubTokenizer:
        """Read a tokenizer.json (what save writes)."""
        return cls.from_file(path)
