"""
Open weights beyond GPT-2: Llama (Llama 3.x, SmolLM2), Qwen2, Qwen3 and GPT-NeoX (Pythia), read from a Hugging Face
layout (config.json + model.safetensors, or a sharded model.safetensors.index.json) into mingpt's one GPT, built
from the modern parts (mingpt/modern) that each family's config.json asks for. ``transformers`` is never imported.

The one idea: every family is "GPT-2 with some parts swapped", so loading one is two translations.

1. **config.json -> mingpt config** (`config_from_hf`): hidden_size -> n_embd, num_key_value_heads -> n_kv_head,
   rope_theta -> rotary_theta, rms_norm_eps -> layer_norm_epsilon, ... and the parts: Llama and Qwen are RMSNorm +
   SwiGLU + rotary, Qwen2 adds q/k/v biases, Qwen3 QK-norm, GPT-NeoX keeps LayerNorm and GELU but rotates only a
   quarter of each head (rotary_pct) and adds attention and MLP in parallel. A field mingpt cannot honour (sliding
   windows, mixtures of experts, another RoPE scaling...) is refused by name, never ignored.
2. **tensor names -> mingpt's names** (`state_dict_from_hf`), e.g. for Llama

       model.embed_tokens.weight                 transformer.wte.weight
       model.layers.{i}.input_layernorm          transformer.h.{i}.ln_1
       model.layers.{i}.self_attn.q/k/v_proj     transformer.h.{i}.attn.c_attn  (q, k, v stacked: one matmul)
       model.layers.{i}.self_attn.o_proj         transformer.h.{i}.attn.c_proj
       model.layers.{i}.mlp.gate/up/down_proj    transformer.h.{i}.mlp.c_gate / c_fc / c_proj
       model.norm, lm_head                       transformer.ln_f, lm_head

   GPT-NeoX already fuses q, k and v, but head by head ([q0 k0 v0 q1 k1 v1 ...]); mingpt's c_attn is [q | k | v],
   so its rows are regrouped. All of these are nn.Linear (out, in) layouts: no transposes, unlike GPT-2's Conv1D.

Tokenizers: these families do not use GPT-2's vocabulary but their own tokenizer.json, which tokenizer_json.py reads
and from_pretrained attaches as model.tokenizer (mingpt.hub_tokenizer; docs/compatibility.md, "Open weights beyond
GPT-2").
"""

from __future__ import annotations

import json
import pathlib
import re

import torch

from mingpt.cfgnode import CfgNode
from mingpt.config import default_config

__all__ = ["FAMILIES", "config_from_hf", "state_dict_from_hf", "shard_files", "load_sharded", "config_to_hf",
           "family_of", "state_dict_to_hf"]

FAMILIES = ("llama", "qwen2", "qwen3", "gpt_neox")
# Buffers some checkpoints carry that mingpt computes instead (masks, rotary frequencies).
IGNORED_SUFFIXES = (".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")
ACTIVATIONS = {"silu": "swiglu", "gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu"}


def _refuse(field: str, value, why: str):
    raise ValueError(f"config.json has {field}={value!r}: {why}; mingpt cannot load this model (its supported "
                     f"families: {', '.join(FAMILIES)})")


def config_from_hf(hf: dict) -> CfgNode:
    """A mingpt model config from the config.json of a Llama, Qwen2, Qwen3 or GPT-NeoX model."""
    family = hf.get("model_type")
    if family not in FAMILIES:
        _refuse("model_type", family, f"mingpt loads gpt2 and {', '.join(FAMILIES)}")
    C = default_config()
    C.n_layer, C.n_head, C.n_embd = hf["num_hidden_layers"], hf["num_attention_heads"], hf["hidden_size"]
    C.vocab_size, C.block_size = hf["vocab_size"], hf["max_position_embeddings"]
    C.embd_pdrop = C.resid_pdrop = 0.0  # these families train without dropout on embeddings or residuals
    C.attn_pdrop = float(hf.get("attention_dropout", 0.0))
    C.position, C.mlp_hidden = "rotary", hf["intermediate_size"]
    n_kv_head = hf.get("num_key_value_heads") or C.n_head
    C.n_kv_head = n_kv_head if n_kv_head != C.n_head else None
    head_dim = hf.get("head_dim") or C.n_embd // C.n_head
    C.head_dim = head_dim if head_dim * C.n_head != C.n_embd else None
    C.tie_weights = bool(hf.get("tie_word_embeddings", family != "gpt_neox"))
    activation = hf.get("hidden_act", "silu" if family != "gpt_neox" else "gelu")
    if activation not in ACTIVATIONS or (family == "gpt_neox") == (activation == "silu"):
        _refuse("hidden_act", activation, "not an activation this family's MLP is built with here")
    C.mlp = ACTIVATIONS[activation]
    if family == "gpt_neox":
        C.norm, C.parallel_residual = "layernorm", bool(hf.get("use_parallel_residual", True))
        C.layer_norm_epsilon = float(hf.get("layer_norm_eps", 1e-5))
        C.rotary_theta = float(hf.get("rotary_emb_base", hf.get("rope_theta", 10000.0)))
        C.rotary_fraction = float(hf.get("rotary_pct", hf.get("partial_rotary_factor", 0.25)))
        C.bias = bool(hf.get("attention_bias", True))
    else:
        C.norm, C.layer_norm_epsilon = "rmsnorm", float(hf.get("rms_norm_eps", 1e-6))
        C.rotary_theta = float(hf.get("rope_theta", 10000.0))
        C.qk_norm = family == "qwen3"
        attention_bias = bool(hf.get("attention_bias", False))
        if family == "qwen2":
            C.bias, C.qkv_bias = False, True  # Qwen2: biases on q, k, v only
        elif family == "llama" and attention_bias != bool(hf.get("mlp_bias", False)):
            _refuse("mlp_bias", hf.get("mlp_bias"), f"mingpt's one `bias` switch needs it equal to attention_bias="
                                                    f"{attention_bias}")
        elif family == "qwen3" and attention_bias:
            _refuse("attention_bias", True, "Qwen3's MLP has no biases, and mingpt's `bias` switch covers both")
        else:
            C.bias = attention_bias
        if hf.get("use_sliding_window") or (family != "llama" and "sliding_attention" in (hf.get("layer_types") or ())):
            _refuse("use_sliding_window", True, "sliding-window attention is not implemented in mingpt")
    C.rotary_scaling = _rope_scaling(hf.get("rope_scaling"))
    for field in ("num_experts", "num_local_experts", "moe_intermediate_size"):
        if hf.get(field):
            _refuse(field, hf[field], "mixtures of experts are not implemented in mingpt")
    return C


def _rope_scaling(scaling):
    if not scaling:
        return None
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "default":
        return None
    if kind != "llama3":
        _refuse("rope_scaling.rope_type", kind, "mingpt implements RoPE scaling 'llama3' only")
    return ("llama3", float(scaling["factor"]), float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"]),
            int(scaling["original_max_position_embeddings"]))


# ------------------------------------------------------------------ tensor names
# (Hugging Face name, mingpt name) for each family, {i} the layer; q/k/v (and GPT-NeoX's fused qkv) apart below.
LLAMA_NAMES = [
    ("model.embed_tokens.weight", "transformer.wte.weight"),
    ("model.layers.{i}.input_layernorm.weight", "transformer.h.{i}.ln_1.weight"),
    ("model.layers.{i}.post_attention_layernorm.weight", "transformer.h.{i}.ln_2.weight"),
    ("model.layers.{i}.self_attn.o_proj.", "transformer.h.{i}.attn.c_proj."),
    ("model.layers.{i}.self_attn.q_norm.weight", "transformer.h.{i}.attn.q_norm.weight"),
    ("model.layers.{i}.self_attn.k_norm.weight", "transformer.h.{i}.attn.k_norm.weight"),
    ("model.layers.{i}.mlp.gate_proj.", "transformer.h.{i}.mlp.c_gate."),
    ("model.layers.{i}.mlp.up_proj.", "transformer.h.{i}.mlp.c_fc."),
    ("model.layers.{i}.mlp.down_proj.", "transformer.h.{i}.mlp.c_proj."),
    ("model.norm.weight", "transformer.ln_f.weight"),
    ("lm_head.weight", "lm_head.weight"),
]
NEOX_NAMES = [
    ("gpt_neox.embed_in.weight", "transformer.wte.weight"),
    ("gpt_neox.layers.{i}.input_layernorm.", "transformer.h.{i}.ln_1."),
    ("gpt_neox.layers.{i}.post_attention_layernorm.", "transformer.h.{i}.ln_2."),
    ("gpt_neox.layers.{i}.attention.dense.", "transformer.h.{i}.attn.c_proj."),
    ("gpt_neox.layers.{i}.mlp.dense_h_to_4h.", "transformer.h.{i}.mlp.c_fc."),
    ("gpt_neox.layers.{i}.mlp.dense_4h_to_h.", "transformer.h.{i}.mlp.c_proj."),
    ("gpt_neox.final_layer_norm.", "transformer.ln_f."),
    ("embed_out.weight", "lm_head.weight"),
]


def _renamer(pairs, source: int):
    """A function name -> translated name (or None), from the (hf, mingpt) pairs read from side `source`."""
    patterns = [(re.compile(re.escape(p[source]).replace(r"\{i\}", r"(\d+)")), p[1 - source]) for p in pairs]

    def rename(name: str):
        for pattern, target in patterns:
            match = pattern.match(name)
            if match:
                layer = match.groups()[0] if match.groups() else None
                return target.replace("{i}", layer or "") + name[match.end():]
        return None

    return rename


def state_dict_from_hf(family: str, hf_state_dict: dict[str, torch.Tensor], config: CfgNode) -> dict:
    """Hugging Face tensors of one family under mingpt's names (q, k, v stacked into c_attn)."""
    neox = family == "gpt_neox"
    rename = _renamer(NEOX_NAMES if neox else LLAMA_NAMES, source=0)
    converted, qkv, unknown = {}, {}, []
    for key, tensor in hf_state_dict.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        match = re.match(r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", key)
        if match and not neox:
            qkv[(match[1], match[3], match[2])] = tensor
            continue
        match = re.match(r"gpt_neox\.layers\.(\d+)\.attention\.query_key_value\.(weight|bias)$", key)
        if match and neox:  # rows per head [q_h, k_h, v_h] -> [all q | all k | all v]
            nh = config.n_head
            regrouped = tensor.view(nh, 3, tensor.size(0) // (3 * nh), *tensor.shape[1:]).transpose(0, 1)
            converted[f"transformer.h.{match[1]}.attn.c_attn.{match[2]}"] = regrouped.reshape(tensor.shape)
            continue
        name = rename(key)
        if name is None:
            unknown.append(key)
        else:
            converted[name] = tensor
    for (layer, kind, _), _ in sorted(qkv.items()):
        parts = [qkv.get((layer, kind, x)) for x in "qkv"]
        if any(p is None for p in parts):
            raise KeyError(f"layer {layer} has {kind}s for only some of q_proj, k_proj, v_proj")
        converted[f"transformer.h.{layer}.attn.c_attn.{kind}"] = torch.cat(parts)
    if unknown:
        raise KeyError(f"tensors mingpt has no place for in a {family} model: {unknown[:5]}"
                       f"{' ...' if len(unknown) > 5 else ''}")
    if "lm_head.weight" not in converted and "transformer.wte.weight" in converted:
        converted["lm_head.weight"] = converted["transformer.wte.weight"]  # a tied model stores it once
    return converted


# ------------------------------------------------------------------ sharded checkpoints

def shard_files(path: pathlib.Path) -> list[str]:
    """The shard file names a model.safetensors.index.json lists ([] for any other weights file)."""
    if not path.name.endswith(".index.json"):
        return []
    weight_map = json.loads(path.read_text(encoding="utf-8")).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(f, str) and "/" not in f for f in weight_map.values()):
        raise ValueError(f"{path} has no valid weight_map (tensor name -> shard file in the same folder)")
    return sorted(set(weight_map.values()))


def load_sharded(path: pathlib.Path, load_file) -> dict[str, torch.Tensor]:
    """All tensors of a sharded checkpoint: each shard beside the index, read with load_file(shard path)."""
    state_dict = {}
    for shard in shard_files(path):
        state_dict.update(load_file(path.parent / shard))
    return state_dict


# ------------------------------------------------------------------ saving back: the same two translations, reversed
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "gpt_neox": "GPTNeoXForCausalLM"}


def config_to_hf(family: str, C: CfgNode) -> dict:
    """The config.json of `family` describing mingpt config C (family_of says whether it describes it exactly)."""
    hs = C.head_dim or C.n_embd // C.n_head
    hf = dict(architectures=[ARCHITECTURES[family]], model_type=family, vocab_size=C.vocab_size,
              hidden_size=C.n_embd, intermediate_size=C.mlp_hidden or 4 * C.n_embd, num_hidden_layers=C.n_layer,
              num_attention_heads=C.n_head, max_position_embeddings=C.block_size,
              tie_word_embeddings=C.tie_weights, attention_dropout=C.attn_pdrop, torch_dtype="float32")
    if family == "gpt_neox":
        return {**hf, "layer_norm_eps": C.layer_norm_epsilon, "rotary_pct": C.rotary_fraction,
                "rotary_emb_base": C.rotary_theta, "use_parallel_residual": C.parallel_residual,
                "hidden_act": {"gelu_exact": "gelu", "gelu": "gelu_new"}.get(C.mlp, C.mlp), "attention_bias": C.bias,
                "hidden_dropout": 0.0}
    scaling = C.rotary_scaling
    rope_scaling = None if scaling is None else dict(
        rope_type="llama3", factor=scaling[1], low_freq_factor=scaling[2], high_freq_factor=scaling[3],
        original_max_position_embeddings=scaling[4])
    hf.update(num_key_value_heads=C.n_kv_head or C.n_head, head_dim=hs, rms_norm_eps=C.layer_norm_epsilon,
              rope_theta=C.rotary_theta, rope_scaling=rope_scaling, hidden_act="silu" if C.mlp == "swiglu" else C.mlp)
    if family == "llama":
        hf.update(attention_bias=C.bias, mlp_bias=C.bias)
    elif family == "qwen3":
        hf.update(attention_bias=C.bias)
    return hf


# The modern switches at GPT-2's values (mingpt/config.py's defaults).
GPT2_SWITCHES = dict(position="learned", norm="layernorm", mlp="gelu", mlp_hidden=None, n_kv_head=None, head_dim=None,
                     qk_norm=False, qkv_bias=None, logit_softcap=None, parallel_residual=False)


def _architecture(C: CfgNode) -> dict:
    """What fixes a model's function, with defaults spelled out (None n_kv_head is n_head, and so on)."""
    keys = ("n_layer", "n_head", "n_embd", "vocab_size", "block_size", "position", "rotary_theta", "rotary_fraction",
            "norm", "norm_weight", "mlp", "qk_norm", "logit_softcap", "parallel_residual", "tie_weights", "bias",
            "layer_norm_epsilon")
    arch = {key: getattr(C, key) for key in keys}
    arch.update(rotary_scaling=tuple(C.rotary_scaling) if C.rotary_scaling else None,
                mlp_hidden=C.mlp_hidden or 4 * C.n_embd, n_kv_head=C.n_kv_head or C.n_head,
                head_dim=C.head_dim or C.n_embd // C.n_head, qkv_bias=C.bias if C.qkv_bias is None else C.qkv_bias)
    if C.position == "learned":
        arch.update(rotary_theta=None, rotary_fraction=None, rotary_scaling=None)
    return arch


def family_of(C: CfgNode) -> str:
    """
    'gpt2' for GPT-2's architecture (no modern switch set), else the family whose config.json describes C exactly
    (it translates back to the same architecture), else a ValueError naming the switches.
    """
    wanted = _architecture(C)
    if all(getattr(C, key) == value for key, value in GPT2_SWITCHES.items()):
        return "gpt2"
    for family in FAMILIES:
        try:
            if _architecture(config_from_hf(config_to_hf(family, C))) == wanted:
                return family
        except ValueError:
            continue
    raise ValueError(f"no Hugging Face family describes this model (position={C.position!r}, norm={C.norm!r}, "
                     f"norm_weight={C.norm_weight}, mlp={C.mlp!r}, qk_norm={C.qk_norm}, logit_softcap="
                     f"{C.logit_softcap}, parallel_residual={C.parallel_residual}, bias={C.bias}, qkv_bias="
                     f"{C.qkv_bias}); save its state dict with torch / safetensors instead")


def state_dict_to_hf(family: str, model) -> dict[str, torch.Tensor]:
    """mingpt's tensors under `family`'s Hugging Face names: c_attn split into q/k/v (or regrouped per head)."""
    C, neox = model.config, family == "gpt_neox"
    rename = _renamer(NEOX_NAMES if neox else LLAMA_NAMES, source=1)
    nh, nkv = C.n_head, C.n_kv_head or C.n_head
    hs = C.head_dim or C.n_embd // nh
    converted = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        match = re.match(r"transformer\.h\.(\d+)\.attn\.c_attn\.(weight|bias)$", name)
        if match and neox:  # [all q | all k | all v] -> per head [q_h, k_h, v_h]
            grouped = tensor.view(3, nh, hs, *tensor.shape[1:]).transpose(0, 1)
            name = f"gpt_neox.layers.{match[1]}.attention.query_key_value.{match[2]}"
            converted[name] = grouped.reshape(tensor.shape)
        elif match:
            for x, part in zip("qkv", tensor.split([nh * hs, nkv * hs, nkv * hs])):
                converted[f"model.layers.{match[1]}.self_attn.{x}_proj.{match[2]}"] = part
        elif not (name == "lm_head.weight" and C.tie_weights):  # a tied head is stored once, as the embedding
            converted[rename(name)] = tensor
    return {name: t.contiguous() for name, t in converted.items()}
