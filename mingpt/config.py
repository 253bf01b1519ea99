"""
A GPT's configuration: the default model config, the named architectures (presets), and `resolve_config`, which
checks a config and fills in a preset's sizes.

The one idea: a model is fully described by a handful of numbers (n_layer, n_head, n_embd, vocab_size,
block_size) and a few switches. Either name an architecture (``model_type = "gpt2"``) or give the three sizes
yourself; ``model_type = None``, the default, means "no preset: my own sizes". Everything is checked here, once,
with messages that say what to change, so the model's constructor (model.py) can trust what it reads.
"""

from __future__ import annotations

from mingpt.cfgnode import CfgNode
from mingpt.utils import check_int

__all__ = ["PRESETS", "PRESET_VOCAB", "ATTENTION_IMPLEMENTATIONS", "default_config", "resolve_config"]

# (n_layer, n_head, n_embd) of the named architectures. GPT-1 and GPT-2 sizes, Gopher's smallest, and tiny ones
# for teaching. The GPT-2 and GPT-1 entries also know their vocabulary size and context length.
PRESETS = {
    "openai-gpt": dict(n_layer=12, n_head=12, n_embd=768),  # 117M
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "gopher-44m": dict(n_layer=8, n_head=16, n_embd=512),
    "gpt-mini": dict(n_layer=6, n_head=6, n_embd=192),
    "gpt-micro": dict(n_layer=4, n_head=4, n_embd=128),
    "gpt-nano": dict(n_layer=3, n_head=3, n_embd=48),
}
PRESET_VOCAB = {  # (vocab_size, block_size) used when the config leaves them unset
    "openai-gpt": (40478, 512),
    **{name: (50257, 1024) for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")},
}
ATTENTION_IMPLEMENTATIONS = ("auto", "sdpa", "math")


def default_config() -> CfgNode:
    """The model config with every default; ``GPT.get_default_config()`` returns this."""
    C = CfgNode()
    # Either a preset name (see PRESETS) or explicit n_layer/n_head/n_embd, not both. None: no preset.
    C.model_type = None
    C.n_layer = None
    C.n_head = None
    C.n_embd = None
    # These two depend on the data, so the caller sets them.
    C.vocab_size = None
    C.block_size = None
    # Dropout probabilities: on the embeddings, on each residual branch, and on the attention weights.
    C.embd_pdrop = 0.1
    C.resid_pdrop = 0.1
    C.attn_pdrop = 0.1
    # Beyond the original minGPT:
    C.attention = "auto"  # 'sdpa' (fused kernel), 'math' (explicit, for teaching), 'auto' (the faster one)
    C.tie_weights = True  # share wte and lm_head, as GPT-2 does
    C.bias = True  # biases in Linear and LayerNorm, as GPT-2 has
    C.layer_norm_epsilon = 1e-5
    C.attn_only = False  # True: blocks without the MLP half (TransformerLens' attn_only), as toy circuit models
    return C


def resolve_config(config: CfgNode) -> CfgNode:
    """Check a model config and fill in a preset's sizes; returns a new CfgNode (the argument is left untouched)."""
    if not isinstance(config, CfgNode):
        raise TypeError(f"GPT expects a CfgNode from GPT.get_default_config(), got {type(config).__name__}")
    C = default_config()
    C.merge_from_dict(config.copy().to_dict())
    sizes = {k: getattr(C, k) for k in ("n_layer", "n_head", "n_embd")}
    if C.model_type is not None:
        if not isinstance(C.model_type, str) or C.model_type not in PRESETS:
            raise ValueError(f"unknown model_type {C.model_type!r}; valid ones are {', '.join(PRESETS)}, or None "
                             f"for explicit n_layer/n_head/n_embd")
        preset = PRESETS[C.model_type]
        if any(v is not None for v in sizes.values()) and sizes != preset:
            raise ValueError(
                f"give either model_type or n_layer/n_head/n_embd, not both (model_type={C.model_type!r}, "
                f"{sizes}); set model_type=None to use explicit sizes"
            )
        C.merge_from_dict(preset)
        vocab, block = PRESET_VOCAB.get(C.model_type, (None, None))
        C.vocab_size = C.vocab_size if C.vocab_size is not None else vocab
        C.block_size = C.block_size if C.block_size is not None else block
    elif any(v is None for v in sizes.values()):
        raise ValueError(
            f"set model_type to one of {', '.join(PRESETS)}, or leave model_type=None and set all of "
            f"n_layer, n_head, n_embd (got {sizes})"
        )
    for key in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size"):
        check_int(getattr(C, key), f"model config {key}", low=1, hint=" (a positive int)")
    if C.n_embd % C.n_head != 0:
        raise ValueError(f"n_embd ({C.n_embd}) must be divisible by n_head ({C.n_head}) so heads split it evenly")
    for key in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
        if not 0.0 <= getattr(C, key) < 1.0:
            raise ValueError(f"{key} must be in [0, 1), got {getattr(C, key)!r}")
    if not 0.0 < C.layer_norm_epsilon < 1.0:  # also refuses inf (nan never gets past CfgNode)
        raise ValueError(f"layer_norm_epsilon must be a small positive number (GPT-2: 1e-5), "
                         f"got {C.layer_norm_epsilon!r}")
    if C.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {C.attention!r}")
    return C
