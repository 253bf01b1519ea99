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

__all__ = ["PRESETS", "PRESET_VOCAB", "PRESET_SWITCHES", "ATTENTION_IMPLEMENTATIONS", "default_config",
           "resolve_config"]

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
    "modern-mini": dict(n_layer=6, n_head=6, n_embd=192),  # gpt-mini's sizes with today's parts (PRESET_SWITCHES)
}
PRESET_VOCAB = {  # (vocab_size, block_size) used when the config leaves them unset
    "openai-gpt": (40478, 512),
    **{name: (50257, 1024) for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")},
}
# Presets that are more than sizes: the architecture switches they set (a switch you changed from its default wins).
# modern-mini is nanochat's recipe at gpt-mini's size: rotary positions, RMSNorm without a weight, ReLU^2, QK-norm,
# no biases, an untied head and soft-capped logits (the parts: mingpt/modern).
PRESET_SWITCHES = {
    "modern-mini": dict(position="rotary", norm="rmsnorm", norm_weight=False, mlp="relu2", qk_norm=True, bias=False,
                        tie_weights=False, logit_softcap=15.0),
}
ATTENTION_IMPLEMENTATIONS = ("auto", "sdpa", "math")
POSITIONS, NORMS, MLPS = ("learned", "rotary"), ("layernorm", "rmsnorm"), ("gelu", "gelu_exact", "swiglu", "relu2")


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
    # The parts of models after GPT-2 (mingpt/modern; the defaults are GPT-2's own, so GPT-2 is built as before):
    C.position = "learned"  # 'learned' (a wpe table, GPT-2) or 'rotary' (RoPE: q and k rotated by position)
    C.rotary_theta = 10000.0  # RoPE's base: the slowest pair turns once every ~2*pi*theta positions
    C.rotary_fraction = 1.0  # share of each head's channels that rotate (Pythia's rotary_pct: 0.25)
    C.rotary_scaling = None  # None, or ("llama3", factor, low_freq_factor, high_freq_factor, original_length)
    C.norm = "layernorm"  # 'layernorm' (GPT-2) or 'rmsnorm' (Llama: no centring, no bias)
    C.norm_weight = True  # False: RMSNorm without a learned gain (nanochat)
    C.mlp = "gelu"  # 'gelu' (GPT-2's tanh GELU), 'gelu_exact' (Pythia), 'swiglu' (Llama), 'relu2' (nanochat)
    C.mlp_hidden = None  # the MLP's inner width; None: 4 * n_embd
    C.n_kv_head = None  # grouped-query attention: heads of keys/values shared by n_head // n_kv_head queries each
    C.head_dim = None  # channels per head; None: n_embd // n_head (Qwen3 sets it apart from n_embd)
    C.qk_norm = False  # RMSNorm each head's queries and keys before attention (Qwen3, nanochat)
    C.qkv_bias = None  # biases on the q/k/v projection only (Qwen2); None: follow `bias`
    C.logit_softcap = None  # logits squashed into (-cap, cap) by cap * tanh(logits / cap) (Gemma 2, nanochat)
    C.parallel_residual = False  # x + attn(ln_1(x)) + mlp(ln_2(x)) in one step (GPT-NeoX / Pythia, GPT-J)
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
        defaults = default_config()
        C.merge_from_dict({k: v for k, v in PRESET_SWITCHES.get(C.model_type, {}).items()
                           if getattr(C, k) == getattr(defaults, k)})
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
    if C.head_dim is None and C.n_embd % C.n_head != 0:
        raise ValueError(f"n_embd ({C.n_embd}) must be divisible by n_head ({C.n_head}) so heads split it evenly")
    for key in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
        if not 0.0 <= getattr(C, key) < 1.0:
            raise ValueError(f"{key} must be in [0, 1), got {getattr(C, key)!r}")
    if not 0.0 < C.layer_norm_epsilon < 1.0:  # also refuses inf (nan never gets past CfgNode)
        raise ValueError(f"layer_norm_epsilon must be a small positive number (GPT-2: 1e-5), "
                         f"got {C.layer_norm_epsilon!r}")
    if C.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {C.attention!r}")
    check_modern_switches(C)
    return C


def check_modern_switches(C: CfgNode) -> None:
    """The switches of the modern parts (mingpt/modern), each with what a valid value looks like."""
    for key, valid in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
        if getattr(C, key) not in valid:
            raise ValueError(f"{key} must be one of {valid}, got {getattr(C, key)!r}")
    for key in ("mlp_hidden", "n_kv_head", "head_dim"):
        if getattr(C, key) is not None:
            check_int(getattr(C, key), f"model config {key}", low=1, hint=" (a positive int, or None)")
    n_kv_head = C.n_kv_head or C.n_head
    if C.n_head % n_kv_head != 0:
        raise ValueError(f"n_head ({C.n_head}) must be a multiple of n_kv_head ({n_kv_head}): each key/value head "
                         f"serves n_head // n_kv_head query heads")
    head_dim = C.head_dim or C.n_embd // C.n_head
    rotated = int(head_dim * C.rotary_fraction)
    if not (0.0 < C.rotary_fraction <= 1.0 and (C.position != "rotary" or rotated > 0 and rotated % 2 == 0)):
        raise ValueError(f"rotary_fraction={C.rotary_fraction!r} must be in (0, 1] and rotate an even number of "
                         f"channels of the head's {head_dim} (channels rotate in pairs)")
    if not C.rotary_theta > 0:
        raise ValueError(f"rotary_theta must be positive (Llama 2: 10000, Llama 3: 500000), got {C.rotary_theta!r}")
    scaling = C.rotary_scaling
    llama3 = isinstance(scaling, (tuple, list)) and len(scaling) == 5 and scaling[0] == "llama3"
    if scaling is not None and not llama3:
        raise ValueError(f"rotary_scaling must be None or ('llama3', factor, low_freq_factor, high_freq_factor, "
                         f"original_max_position_embeddings), got {scaling!r}")
    if not C.norm_weight and C.norm != "rmsnorm":
        raise ValueError("norm_weight=False needs norm='rmsnorm' (a LayerNorm without gain is not built here)")
    if C.logit_softcap is not None and not C.logit_softcap > 0:
        raise ValueError(f"logit_softcap must be None or a positive number (nanochat: 15), got {C.logit_softcap!r}")
