"""
Hugging Face's ``tokenizer.json``: reading the file that GPT-NeoX/Pythia, Llama 3.x, SmolLM2, Qwen2/Qwen3 (and GPT-2)
ship their tokenizer in, for the byte-level BPE tokenizers among them. mingpt.hub_tokenizer builds the tokenizer.

The one idea: these tokenizers are all GPT-2's algorithm (bytes, a regex pre-split, ranked merges) with four knobs
turned, and the file spells out each knob. A tokenizer.json holds, in the order the text meets them:

    added_tokens    strings matched in the text *before* anything else: special tokens (<|endoftext|>,
                    <|begin_of_text|>, <|im_start|>) and, in GPT-NeoX, runs of spaces ("  " ... 24 spaces)
    normalizer      a rewrite of the text first (null, or NFC: composed unicode)
    pre_tokenizer   how the text is cut into chunks: GPT-2's regex (ByteLevel with use_regex), or another regex
                    (Split, as Llama 3 and Qwen2 do, then ByteLevel with use_regex false), digits one by one
                    (Digits, SmolLM2); add_prefix_space puts a space before each chunk that lacks one
    model           type "BPE": vocab (printable token -> id; the ids need not follow the merges, unlike GPT-2's
                    files) and merges, earlier = merged first, as "a b" strings or, in newer files, [a, b] lists;
                    ignore_merges: a chunk that is already a token is taken whole
    decoder         ByteLevel: printable symbols back to bytes (GPT-2's bytes<->unicode table)
    post_processor  what `encode` adds around the ids (Llama 3's <|begin_of_text|> first); mingpt's encode adds
                    nothing, and to_tokens(prepend_bos=True) reads the bos token from here

Everything this reader does not implement - WordPiece, Unigram, a Metaspace (SentencePiece) pre-tokenizer, a
Lowercase normalizer, padding, byte_fallback... - is refused with the field and its value, never ignored: a
tokenizer that silently skipped a step would give other ids than the model was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import regex

from mingpt.io.gpt2_vocab import GPT2_SPLIT_PATTERN

__all__ = ["TOKENIZER_CONFIG", "TOKENIZER_FILE", "TokenizerJSON", "parse_tokenizer_json", "read_tokenizer_json"]

TOKENIZER_FILE, TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"


@dataclasses.dataclass
class TokenizerJSON:
    """What a byte-level BPE tokenizer.json says, as plain Python values (token strings in GPT-2's printable form)."""

    vocab: dict[str, int]                 # printable token -> id ('Ġworld' -> 995)
    merges: list[tuple[str, str]]         # earliest first: ('Ġ', 't'), ('h', 'e'), ...
    # The pre-tokenizer as steps, in order: ("split", regex) cuts every chunk by the regex, keeping both the matches
    # and the text between them (Hugging Face's behavior "Isolated"); ("prefix_space", None) puts a space before a
    # chunk that does not start with one.
    steps: list[tuple[str, str | None]]
    added_tokens: list[dict]              # each: id, content, special, normalized
    nfc: bool = False                     # the normalizer: NFC, or none
    ignore_merges: bool = False
    bos_token: str | None = None
    eos_token: str | None = None
    source: dict = dataclasses.field(default_factory=dict, repr=False)  # the file's JSON, to save it back unchanged


def _refuse(where: str, field: str, value, why: str = "mingpt reads byte-level BPE tokenizers only"):
    raise ValueError(f"{where} has {field}={json.dumps(value)[:200]}: {why}. mingpt's tokenizer.json reader "
                     f"implements GPT-2, GPT-NeoX, Llama 3, SmolLM2 and Qwen2/3-style tokenizers; use the "
                     f"`tokenizers` package for this one and pass mingpt the ids")


def _pattern(where: str, pattern: dict) -> str:
    if not isinstance(pattern, dict) or len(pattern) != 1:
        _refuse(where, "pre_tokenizer.pattern", pattern, "expected {\"Regex\": ...} or {\"String\": ...}")
    (kind, value), = pattern.items()
    if kind == "Regex":
        try:
            regex.compile(value)
        except regex.error as e:
            _refuse(where, "pre_tokenizer.pattern.Regex", value, f"Python's regex module cannot compile it ({e})")
        return value
    if kind == "String":
        return regex.escape(value)
    _refuse(where, "pre_tokenizer.pattern", pattern, "expected a Regex or a String")


def _steps(where: str, pre: dict | None) -> list[tuple[str, str | None]]:
    """The pre-tokenizer as ("split", regex) / ("prefix_space", None) steps; anything else is refused."""
    if pre is None:
        return []
    kind = pre.get("type")
    if kind == "Sequence":
        return [step for inner in pre.get("pretokenizers", []) for step in _steps(where, inner)]
    if kind == "ByteLevel":
        # add_prefix_space first, then (use_regex) GPT-2's pattern: Hugging Face's ByteLevel.pre_tokenize order
        steps = [("prefix_space", None)] if pre.get("add_prefix_space", True) else []
        return steps + ([("split", GPT2_SPLIT_PATTERN)] if pre.get("use_regex", True) else [])
    if kind == "Split":
        if pre.get("behavior") != "Isolated":
            _refuse(where, "pre_tokenizer.behavior", pre.get("behavior"), "only Split with behavior Isolated is "
                    "implemented (Llama 3's and Qwen2's)")
        if pre.get("invert", False):
            _refuse(where, "pre_tokenizer.invert", True, "an inverted Split is not implemented")
        return [("split", _pattern(where, pre.get("pattern")))]
    if kind == "Digits":  # Rust's char::is_numeric is unicode's \p{N}
        return [("split", r"\p{N}" if pre.get("individual_digits", False) else r"\p{N}+")]
    _refuse(where, "pre_tokenizer.type", kind, "not a pre-tokenizer of the byte-level BPE families")


def _check_normalizer(where: str, normalizer: dict | None) -> bool:
    """True for NFC, False for none; any other normalizer (Lowercase, NFKC, Replace...) is refused."""
    if normalizer is None:
        return False
    kind = normalizer.get("type")
    if kind == "NFC":
        return True
    if kind == "Sequence":
        found = [_check_normalizer(where, inner) for inner in normalizer.get("normalizers", [])]
        return any(found)
    _refuse(where, "normalizer.type", kind, "only no normalizer or NFC is implemented")


def _check_decoder(where: str, decoder: dict | None) -> None:
    kinds = ([d.get("type") for d in decoder.get("decoders", [])] if decoder and decoder.get("type") == "Sequence"
             else [decoder and decoder.get("type")])
    if kinds != ["ByteLevel"]:
        _refuse(where, "decoder", decoder, "a byte-level BPE decodes with the ByteLevel decoder alone")


def _bos_of(where: str, post: dict | None) -> str | None:
    """The special token the post-processor puts first (Llama 3's <|begin_of_text|>), if any."""
    if post is None or post.get("type") == "ByteLevel":  # ByteLevel's post-processing only trims offsets
        return None
    kind = post.get("type")
    if kind == "Sequence":
        found = [_bos_of(where, inner) for inner in post.get("processors", [])]
        return next((bos for bos in found if bos), None)
    if kind == "TemplateProcessing":
        first = (post.get("single") or [{}])[0]
        return first["SpecialToken"]["id"] if "SpecialToken" in first else None
    _refuse(where, "post_processor.type", kind, "only ByteLevel and TemplateProcessing post-processors are known")


def _added(where: str, tokens: list) -> list[dict]:
    out = []
    for token in tokens or []:
        for flag in ("single_word", "lstrip", "rstrip"):
            if token.get(flag, False):
                _refuse(where, f"added_tokens[{token.get('content')!r}].{flag}", True,
                        "added tokens that strip or need word boundaries are not implemented")
        if not isinstance(token.get("content"), str) or not token["content"]:
            _refuse(where, "added_tokens.content", token.get("content"), "an added token needs a non-empty string")
        out.append({"id": int(token["id"]), "content": token["content"], "special": bool(token.get("special")),
                    "normalized": bool(token.get("normalized", not token.get("special")))})
    return out


def _merges(where: str, merges: list) -> list[tuple[str, str]]:
    out = []
    for rank, merge in enumerate(merges):
        pair = merge.split(" ") if isinstance(merge, str) else merge  # "a b" (older files) or ["a", "b"] (newer)
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
            _refuse(where, f"model.merges[{rank}]", merge, "a merge is \"left right\" or [left, right]")
        out.append((pair[0], pair[1]))
    return out


def parse_tokenizer_json(data: dict, where: str = TOKENIZER_FILE, config: dict | None = None) -> TokenizerJSON:
    """A TokenizerJSON from the parsed JSON of a tokenizer.json (and optionally of its tokenizer_config.json)."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TypeError(f"{where} is not a Hugging Face tokenizer.json: it has no \"model\" object")
    model = data["model"]
    if model.get("type", "BPE") != "BPE":  # very old files omit the type; their model is BPE if it has merges
        _refuse(where, "model.type", model.get("type"), "only BPE is implemented (not WordPiece or Unigram)")
    if "merges" not in model:
        _refuse(where, "model", sorted(model), "a BPE model needs vocab and merges")
    for field in ("truncation", "padding"):
        if data.get(field) is not None:
            _refuse(where, field, data[field], "mingpt's encode neither truncates nor pads; set it to null")
    if model.get("dropout") not in (None, 0, 0.0):
        _refuse(where, "model.dropout", model["dropout"], "BPE dropout makes encoding random")
    for field in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(field):
            _refuse(where, f"model.{field}", model[field], "a byte-level BPE has none")
    if model.get("byte_fallback"):
        _refuse(where, "model.byte_fallback", True, "byte fallback is SentencePiece's, not byte-level BPE's")
    steps = _steps(where, data.get("pre_tokenizer"))
    if not _has_byte_level(data.get("pre_tokenizer")):
        _refuse(where, "pre_tokenizer", data.get("pre_tokenizer"), "a byte-level BPE ends with ByteLevel")
    _check_decoder(where, data.get("decoder"))
    config = config or {}
    return TokenizerJSON(
        vocab=dict(model["vocab"]), merges=_merges(where, model["merges"]), steps=steps,
        added_tokens=_added(where, data.get("added_tokens")),
        nfc=_check_normalizer(where, data.get("normalizer")), ignore_merges=bool(model.get("ignore_merges", False)),
        bos_token=_bos_of(where, data.get("post_processor")) or _token_name(config.get("bos_token")),
        eos_token=_token_name(config.get("eos_token")), source=data,
    )


def _has_byte_level(pre: dict | None) -> bool:
    if pre is None:
        return False
    if pre.get("type") == "Sequence":
        return any(_has_byte_level(inner) for inner in pre.get("pretokenizers", []))
    return pre.get("type") == "ByteLevel"


def _token_name(value) -> str | None:
    """tokenizer_config.json writes a token as "<s>" or as {"content": "<s>", ...}."""
    return value.get("content") if isinstance(value, dict) else value


def read_tokenizer_json(path: str | os.PathLike) -> TokenizerJSON:
    """
    Read a tokenizer.json, and the tokenizer_config.json beside it when there is one (for the bos and eos tokens,
    which some files, like GPT-NeoX's, name only there).
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}: expected a Hugging Face {TOKENIZER_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        config_path = path.with_name(TOKENIZER_CONFIG)
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} (or its {TOKENIZER_CONFIG}) is not valid JSON ({e}); the file may be truncated: "
                         f"fetch it again") from None
    return parse_tokenizer_json(data, str(path), config if isinstance(config, dict) else {})
