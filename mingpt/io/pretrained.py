"""
GPT-2 weights in Hugging Face's format: loading them (from the Hub or a local folder), converting, saving back
(Llama, Qwen and GPT-NeoX weights take the same road, translated by open_weights.py).

The one idea: mingpt uses GPT-2's own parameter names, so converting is almost a rename. The one real difference
is that OpenAI's code (and so Hugging Face's GPT-2) stores its projections as "Conv1D" modules whose weight is
(in_features, out_features), the transpose of ``nn.Linear``'s (out_features, in_features).

A model in Hugging Face layout is a folder with ``config.json`` (the sizes) and ``model.safetensors`` (the
tensors; older repos have ``pytorch_model.bin`` instead). ``transformers`` is never imported here:

    model = GPT.from_pretrained("gpt2")                 # Hub, cached under <cache>/hub (see mingpt.io.hub)
    model = GPT.from_pretrained("./my-model")           # a local folder; "HuggingFaceTB/SmolLM2-135M" (Llama)...
    model.save_pretrained("./my-model")                 # transformers.GPT2LMHeadModel.from_pretrained reads it

Only safe formats are read: safetensors, and .bin through ``torch.load(weights_only=True)``, which refuses
anything but tensors (a pickle can run arbitrary code). A downloaded file enters the cache only after its checks
(size, the Hub's checksum, and for safetensors a header whose tensors fit the file); a cached file that still
fails to load is removed and downloaded again, once, with a warning that says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shutil

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from mingpt.atomic import atomic_path
from mingpt.cfgnode import CfgNode
from mingpt.config import default_config
from mingpt.io import hub, open_weights
from mingpt.io.data_files import cached_gpt2_vocab
from mingpt.io.gpt2_vocab import GPT2_SPLIT_PATTERN, write_hf_vocab
from mingpt.io.safe_load import UnsafeFileError, check_safetensors, load_plain_data
from mingpt.io.tokenizer_json import TOKENIZER_CONFIG, TOKENIZER_FILE
from mingpt.utils import choose_device

logger = logging.getLogger(__name__)

# The four matmuls that Hugging Face's GPT-2 stores transposed (Conv1D) relative to nn.Linear.
CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers some GPT-2 checkpoints carry (the causal mask); mingpt builds its mask on the fly.
IGNORED_HF_SUFFIXES = (".attn.bias", ".attn.masked_bias")
SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both are GPT-2's tanh-approximated GELU
REQUIRED_HF_KEYS = ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")
# The weight files we read, in order of preference. Safetensors is a plain tensor container; .bin is a pickle.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
# Config values that may be changed when loading, because they do not change the shape of any weight.
LOAD_OVERRIDES = ("embd_pdrop", "resid_pdrop", "attn_pdrop", "attention")
GPT2_VOCAB_SIZE = 50257  # GPT-2's 256 bytes + 50,000 merges + <|endoftext|>


def config_from_hf(hf_config: dict) -> CfgNode:
    """A mingpt model config from a Hugging Face GPT-2 ``config.json`` dict."""
    if not isinstance(hf_config, dict):
        raise TypeError(f"hf_config must be the dict read from config.json, got {type(hf_config).__name__}")
    model_type = hf_config.get("model_type")
    if model_type != "gpt2":  # Llama, Qwen2/3, GPT-NeoX: built from the modern parts (open_weights.py)
        return open_weights.config_from_hf(hf_config)
    missing = [key for key in REQUIRED_HF_KEYS if key not in hf_config]
    if missing:
        raise KeyError(f"config.json of a GPT-2 model must give {', '.join(REQUIRED_HF_KEYS)}; missing {missing}")
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise ValueError(f"unsupported activation_function {activation!r}; GPT-2 uses one of {SUPPORTED_ACTIVATIONS}")
    # Variants of GPT-2 that transformers can express but mingpt's Block does not implement: refuse, not guess.
    n_inner = hf_config.get("n_inner")
    if n_inner is not None and n_inner != 4 * hf_config["n_embd"]:
        raise ValueError(f"n_inner={n_inner} is not supported: mingpt's MLP is 4 * n_embd = {4 * hf_config['n_embd']}")
    if hf_config.get("scale_attn_by_inverse_layer_idx") or hf_config.get("scale_attn_weights") is False:
        raise ValueError("scale_attn_by_inverse_layer_idx / scale_attn_weights=False are not supported by mingpt")
    if hf_config.get("add_cross_attention"):
        raise ValueError("add_cross_attention=True (an encoder-decoder GPT-2) is not supported by mingpt")
    C = default_config()  # model_type None: the sizes below, not a preset
    C.n_layer = hf_config["n_layer"]
    C.n_head = hf_config["n_head"]
    C.n_embd = hf_config["n_embd"]
    C.vocab_size = hf_config["vocab_size"]
    C.block_size = hf_config["n_positions"]
    C.layer_norm_epsilon = float(hf_config.get("layer_norm_epsilon", 1e-5))
    C.embd_pdrop = float(hf_config.get("embd_pdrop", 0.1))
    C.resid_pdrop = float(hf_config.get("resid_pdrop", 0.1))
    C.attn_pdrop = float(hf_config.get("attn_pdrop", 0.1))
    C.tie_weights = bool(hf_config.get("tie_word_embeddings", True))
    return C


def config_to_hf(config: CfgNode) -> dict:
    """The Hugging Face ``config.json`` dict describing a mingpt model config."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "vocab_size": config.vocab_size,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "embd_pdrop": config.embd_pdrop,
        "resid_pdrop": config.resid_pdrop,
        "attn_pdrop": config.attn_pdrop,
        "tie_word_embeddings": config.tie_weights,
        # GPT-2's <|endoftext|>; only meaningful for a vocabulary that has it (transformers warns otherwise).
        "bos_token_id": 50256 if config.vocab_size > 50256 else None,
        "eos_token_id": 50256 if config.vocab_size > 50256 else None,
    }


def state_dict_from_hf(hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Convert a Hugging Face GPT-2 state dict (from GPT2LMHeadModel or GPT2Model) to mingpt's names and layouts.
    A missing lm_head (GPT2Model checkpoints, tied weights) is filled from the token embedding.
    """
    converted = {}
    for key, tensor in hf_state_dict.items():
        if key.endswith(IGNORED_HF_SUFFIXES):
            continue
        name = key if key.startswith(("transformer.", "lm_head.")) else "transformer." + key
        if name.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        converted[name] = tensor.contiguous()
    if "lm_head.weight" not in converted and "transformer.wte.weight" in converted:
        converted["lm_head.weight"] = converted["transformer.wte.weight"]
    return converted


def state_dict_to_hf(model: nn.Module) -> dict[str, torch.Tensor]:
    """mingpt's state dict with Hugging Face's GPT2LMHeadModel names and Conv1D layouts."""
    converted = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        converted[name] = tensor.detach().contiguous()
    return converted


def load_hf_state_dict(model: nn.Module, hf_state_dict: dict[str, torch.Tensor], family: str = "gpt2") -> None:
    """Copy Hugging Face weights (GPT-2's, or an open_weights.py family's) into a GPT, naming any mismatched key."""
    converted = (state_dict_from_hf(hf_state_dict) if family == "gpt2"
                 else open_weights.state_dict_from_hf(family, hf_state_dict, model.config))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise KeyError(f"checkpoint does not match the model: missing keys {missing}, unexpected keys {unexpected}")
    wrong = [
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if converted[k].shape != expected[k].shape
    ]
    if wrong:
        raise ValueError("shape mismatch between checkpoint and model: " + "; ".join(wrong))
    model.load_state_dict(converted)


# ------------------------------------------------------------------------------------------------ loading

def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from model.safetensors or pytorch_model.bin (the latter only as plain tensors)."""
    path = pathlib.Path(path)
    if path.name.endswith(".index.json"):  # a sharded checkpoint: the index names the files that hold the tensors
        return open_weights.load_sharded(path, load_weights_file)
    if path.name.endswith(".safetensors"):
        check_safetensors(path)  # a clear message for a cut file, before safetensors' own
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own types for a damaged file
            raise ValueError(f"could not read weights from {path} ({type(e).__name__}: {e})") from e
    # weights_only=True unpickles nothing but tensors and plain containers, so no code in the file can run.
    fix = ("Load weights only from sources you trust; a safe format for weights is model.safetensors, which "
           "holds tensors and nothing else.")
    state_dict = load_plain_data(path, "cpu", fix, what="weights file")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} does not hold a state dict (a dict of name -> tensor)")
    return state_dict


def _read_config(path: pathlib.Path) -> dict:
    try:
        hf_config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(hf_config, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(hf_config).__name__}")
    return hf_config


# The check each file gets before it enters the cache (a ValueError keeps it out).
VALIDATORS = {"config.json": _read_config, "model.safetensors": check_safetensors}


def _load_cached(source: hub.ModelSource, filename: str, path: pathlib.Path, load, progress: bool = False):
    """
    load(path); if a file from the Hub cache fails to load, remove it, download it once more and load that.
    Refusing an unsafe file is not damage: downloading it again would fetch the same file, so it is raised.
    """
    try:
        return load(path)
    except UnsafeFileError:
        raise
    except ValueError as e:
        if source.directory is not None:
            raise
        path = source.refetch(filename, f"the cached {path} was damaged ({e})", progress, VALIDATORS.get(filename))
    return load(path)


def _find_weights(source: hub.ModelSource, progress: bool) -> pathlib.Path:
    """The weights file of a model: one already on this machine first (no request), else download, safetensors first."""
    for filename in WEIGHT_FILES:
        path = source.cached(filename)
        if path is not None:
            return path
    if source.directory is None:
        for filename in WEIGHT_FILES:
            try:
                return source.fetch(filename, progress=progress, validate=VALIDATORS.get(filename))
            except FileNotFoundError:  # a 404: this repo does not have the file in that format; try the next
                logger.info("%r has no %s; trying the next format", source, filename)
    raise FileNotFoundError(f"{source!r} has neither {' nor '.join(WEIGHT_FILES)}")


def _check_load_options(overrides: dict, dtype) -> torch.dtype | None:
    unknown = sorted(set(overrides) - set(LOAD_OVERRIDES))
    if unknown:
        raise TypeError(
            f"from_pretrained got unexpected keyword argument(s) {unknown}; the config values that may be changed "
            f"when loading are {LOAD_OVERRIDES} (sizes are fixed by the weights)"
        )
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating point torch.dtype or its name (e.g. 'bfloat16'), got {dtype!r}")
    return dtype


def from_pretrained(
    model_class: type[nn.Module],
    name_or_path: str | os.PathLike,
    revision: str = "main",
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    tokenizer_class=None,
    **overrides,
) -> nn.Module:
    """
    A model_class (mingpt's GPT, or a subclass) with pretrained weights (GPT-2, or open_weights.FAMILIES), in eval mode.
    ``GPT.from_pretrained(name_or_path, ...)`` calls this with its own class, so this module needs no model.py.

    name_or_path: 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', 'distilgpt2', any Hub repo id of a GPT-2 model
        ('distilbert/distilgpt2'), or a local directory with config.json and model.safetensors / pytorch_model.bin.
        See `mingpt.io.hub.model_source` for the exact rule.
    revision, endpoint, cache_dir: which Hub revision, which Hub (default $MINGPT_HF_ENDPOINT, $HF_ENDPOINT or
        huggingface.co) and which cache (default $MINGPT_CACHE_DIR or ~/.cache/mingpt). Ignored for a directory.
    progress, timeout, retries: for downloads (a progress bar; seconds without data; extra attempts).
    device ('cpu', 'cuda', 'auto'...) and dtype (torch.bfloat16 or 'bfloat16'...) to move the model to.
    overrides: config values that do not change weight shapes: embd_pdrop, resid_pdrop, attn_pdrop, attention.
    tokenizer_class: GPT.from_pretrained passes mingpt.hub_tokenizer.HubTokenizer: a model with a tokenizer.json
        (a folder's; on the Hub, the open families') gets it as model.tokenizer (for to_tokens and the CLI).

        model = GPT.from_pretrained("gpt2", resid_pdrop=0.0, attention="math")
    """
    dtype = _check_load_options(overrides, dtype)
    device = choose_device(device) if device is not None else None
    source = hub.model_source(
        name_or_path, revision=revision, endpoint=endpoint, cache_dir=cache_dir, timeout=timeout, retries=retries
    )

    if source.directory is not None and not (source.directory / "config.json").is_file():
        # a local folder: name everything it lacks at once, not one file per try
        weights = [] if any((source.directory / f).is_file() for f in WEIGHT_FILES) else [" nor ".join(WEIGHT_FILES)]
        raise FileNotFoundError(f"{source!r} has no {' and neither '.join(['config.json', *weights])}; a local "
                                f"model is a directory holding config.json and model.safetensors (or "
                                f"pytorch_model.bin), as model.save_pretrained(directory) writes them")
    # The config first: it is tiny, and it tells us whether this is a GPT-2 at all before gigabytes of weights.
    try:
        config_path = source.fetch("config.json", validate=_read_config)
    except FileNotFoundError as e:
        hint = "" if source.directory is not None else f" (and no local directory named {str(name_or_path)!r} exists)"
        raise FileNotFoundError(f"{e}{hint}") from e
    hf_config = _load_cached(source, "config.json", config_path, _read_config)
    config = config_from_hf(hf_config)
    config.merge_from_dict(overrides)

    weights_path = _find_weights(source, progress)
    for shard in open_weights.shard_files(weights_path):  # a sharded checkpoint: each shard, checked
        source.fetch(shard, progress=progress, validate=check_safetensors)
    model = model_class(config)
    state_dict = _load_cached(source, weights_path.name, weights_path, load_weights_file, progress)
    try:
        load_hf_state_dict(model, state_dict, hf_config.get("model_type"))
    except KeyError as e:
        raise KeyError(f"{weights_path}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{weights_path}: {e}") from None
    logger.info("loaded %r (%s)", source, weights_path.name)
    if tokenizer_class is not None:
        _attach_tokenizer(model, source, hf_config.get("model_type", "gpt2"), tokenizer_class)
    model.to(device=device, dtype=dtype)
    return model.eval()


def _attach_tokenizer(model: nn.Module, source: hub.ModelSource, family: str, tokenizer_class) -> None:
    """model.set_tokenizer(tokenizer.json's tokenizer) when the model has one (see from_pretrained)."""
    if source.directory is None and family == "gpt2":
        return  # GPT-2's repos use GPT-2's vocabulary (mingpt.bpe): no extra download
    try:
        path = source.fetch(TOKENIZER_FILE)
    except FileNotFoundError:
        return
    except OSError as e:  # a download that failed: the weights are loaded, so go on without the tokenizer
        logger.warning("the model's %s could not be downloaded (%s); model.tokenizer is None", TOKENIZER_FILE, e)
        return
    if source.directory is None:  # its bos and eos tokens, when the repo names them there (beside it in the cache)
        with contextlib.suppress(OSError):
            source.fetch(TOKENIZER_CONFIG)
    tokenizer = tokenizer_class.from_file(path)
    if tokenizer.n_vocab > model.config.vocab_size:
        raise ValueError(f"{path} has {tokenizer.n_vocab} token ids but the model only {model.config.vocab_size}: "
                         f"is it this model's tokenizer?")
    model.set_tokenizer(tokenizer)


# ------------------------------------------------------------------------------------------------ saving


def save_pretrained(model: nn.Module, directory: str | os.PathLike, tokenizer=None) -> None:
    """
    Write `model` to `directory` in Hugging Face layout, GPT-2's (or Llama's, Qwen2/3's, GPT-NeoX's for a model of
    those parts: open_weights.py): config.json, model.safetensors and, for GPT-2, as Hugging Face does, the
    tokenizer's vocab.json and merges.txt, so the folder is all that `python -m mingpt.cli --model DIR` needs,
    offline. ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` and ``GPT.from_pretrained`` read it.
    tokenizer: a mingpt Tokenizer with GPT-2's split pattern (e.g. BPETokenizer), or a HubTokenizer (model.tokenizer
        by default), which writes tokenizer.json. None: GPT-2's own files when the model has GPT-2's vocabulary
        (50,257) and they are in mingpt's cache; otherwise no tokenizer files.
    """
    if not (isinstance(model, nn.Module) and isinstance(getattr(model, "config", None), CfgNode)):
        raise TypeError(f"save_pretrained expects a mingpt GPT (a module with a model .config), got "
                        f"{type(model).__name__}")
    if getattr(model.config, "attn_only", False):  # loaded as GPT-2, its blocks would get random MLPs, silently
        raise ValueError("an attention-only GPT (config.attn_only=True) has no Hugging Face GPT-2 layout: GPT-2's "
                         "blocks all have an MLP. Save it with torch.save(model.state_dict(), path) or the Trainer's "
                         "checkpoints instead")
    family = open_weights.family_of(model.config)  # 'gpt2', or the open family whose layout describes the model
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = state_dict_to_hf(model) if family == "gpt2" else open_weights.state_dict_to_hf(family, model)
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    if model.config.tie_weights and family == "gpt2":
        # lm_head and wte are one tensor. Safetensors refuses to store shared memory twice, and transformers
        # re-ties lm_head to wte when it loads (tie_word_embeddings), so the file stores it once, as wte.
        del tensors["lm_head.weight"]
    # metadata format=pt tells transformers these are PyTorch tensors.
    with atomic_path(directory / "model.safetensors") as tmp:  # never a half-written file, even on a crash
        save_file(tensors, tmp, metadata={"format": "pt"})
    with atomic_path(directory / "config.json") as tmp:
        hf_config = config_to_hf(model.config) if family == "gpt2" else open_weights.config_to_hf(family, model.config)
        pathlib.Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n", "utf-8")
    hub_tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if callable(getattr(hub_tokenizer, "save_pretrained", None)):  # a tokenizer.json's: mingpt.hub_tokenizer
        hub_tokenizer.save_pretrained(directory)
    elif family == "gpt2":  # the open families' tokenizers are not GPT-2's (docs/compatibility.md)
        _save_tokenizer_files(model, directory, tokenizer)
    logger.info("saved the model to %s", directory)


def _save_tokenizer_files(model: nn.Module, directory: pathlib.Path, tokenizer) -> None:
    if tokenizer is not None:
        # vocab.json + merges.txt cannot record a split pattern: readers assume GPT-2's.
        if getattr(tokenizer, "pattern", None) != GPT2_SPLIT_PATTERN or not hasattr(tokenizer, "merges"):
            raise ValueError(f"tokenizer must be a mingpt Tokenizer with GPT-2's split pattern (vocab.json and "
                             f"merges.txt cannot record another), got {type(tokenizer).__name__}")
        if tokenizer.n_vocab > model.config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.n_vocab} ids but the model only {model.config.vocab_size}")
        write_hf_vocab(tokenizer.merges, tokenizer.special_tokens, directory)
        return
    cached = cached_gpt2_vocab() if model.config.vocab_size == GPT2_VOCAB_SIZE else None
    if cached is None:
        logger.warning("saved no tokenizer files in %s: pass tokenizer= (e.g. BPETokenizer()) to save_pretrained so "
                       "that the folder carries vocab.json and merges.txt", directory)
        return
    for source, name in zip(cached, ("vocab.json", "merges.txt")):  # GPT-2's files under Hugging Face's names
        with atomic_path(directory / name) as tmp:
            shutil.copyfile(source, tmp)
