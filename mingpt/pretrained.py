"""
GPT-2 weights in Hugging Face's format: mapping configs and converting state dicts both ways.

The one idea: mingpt uses GPT-2's own parameter names, so converting is almost a rename. The one real difference
is that OpenAI's code (and so Hugging Face's GPT-2) stores its projections as "Conv1D" modules whose weight is
(in_features, out_features), the transpose of ``nn.Linear``'s (out_features, in_features).
"""

from __future__ import annotations

import torch

from mingpt.config import CfgNode

# The four matmuls that Hugging Face's GPT-2 stores transposed (Conv1D) relative to nn.Linear.
CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers some GPT-2 checkpoints carry (the causal mask); mingpt builds its mask on the fly.
IGNORED_HF_SUFFIXES = (".attn.bias", ".attn.masked_bias")
SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both are GPT-2's tanh-approximated GELU


def config_from_hf(hf_config: dict) -> CfgNode:
    """A mingpt model config from a Hugging Face GPT-2 ``config.json`` dict."""
    from mingpt.model import GPT

    model_type = hf_config.get("model_type")
    if model_type != "gpt2":
        raise ValueError(f"only GPT-2 architecture models can be loaded, but config.json has model_type={model_type!r}")
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise ValueError(f"unsupported activation_function {activation!r}; GPT-2 uses one of {SUPPORTED_ACTIVATIONS}")
    C = GPT.get_default_config()
    C.model_type = None
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
        "bos_token_id": 50256,
        "eos_token_id": 50256,
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


def state_dict_to_hf(model) -> dict[str, torch.Tensor]:
    """mingpt's state dict with Hugging Face's GPT2LMHeadModel names and Conv1D layouts."""
    converted = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        converted[name] = tensor.detach().contiguous()
    return converted


def load_hf_state_dict(model, hf_state_dict: dict[str, torch.Tensor]) -> None:
    """Copy Hugging Face GPT-2 weights into a mingpt GPT, naming any missing, unexpected or mis-shaped key."""
    converted = state_dict_from_hf(hf_state_dict)
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
