"""
LoRA (low-rank adaptation): fine-tune a big matrix by learning a small correction beside it.

A linear layer computes ``y = x W^T + b`` with W of shape (out, in). Fine-tuning all of W trains out*in numbers.
LoRA freezes W and learns two thin matrices instead, A (r, in) and B (out, r), with r much smaller than in and out:

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T          the correction B A has rank at most r

Three choices make this work, and each is a mistake a student can make:
  * B starts at zero, so at step 0 the wrapped model computes exactly what the pretrained one did (A starts random,
    as in the paper and PEFT: if both were zero neither would ever get a gradient).
  * The correction is scaled by alpha / r, not by r or alpha alone: changing the rank then keeps the update's size
    roughly the same, so a learning rate tuned for one rank still works for another.
  * Only A and B are trainable (and saved): the optimizer keeps moments for them alone, and an adapter file holds
    a few thousand numbers instead of the model.

After training, ``merge`` folds (alpha / r) B A into W, so inference costs nothing extra; ``unmerge`` takes it out
again (to keep training, or to compare with the base model).

The adapter is saved in PEFT's format (``adapter_config.json`` + ``adapter_model.safetensors``), so that
``peft.PeftModel.from_pretrained`` loads it onto the transformers GPT-2 built from the same weights. Two facts of
GPT-2 make that work with no conversion of the adapters themselves: Hugging Face's GPT-2 stores its projections as
``Conv1D`` (weight (in, out), the transpose of nn.Linear's), and PEFT handles that with ``fan_in_fan_out=True``,
which transposes only the merged delta; A and B keep nn.Linear shapes (r, in) and (out, r) in both. And the fused
``c_attn`` (q, k and v in one matmul) is one layer in both, so it gets one adapter in both.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from mingpt.atomic import atomic_path

__all__ = ["LoRALinear", "apply_lora", "HF_LAYER_NAMES", "mark_only_lora_as_trainable", "lora_state_dict", "merge_lora",
           "unmerge_lora", "save_lora_adapter", "load_lora_adapter", "save_adapter_on_checkpoint", "ADAPTER_CONFIG",
           "ADAPTER_WEIGHTS"]

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"  # PEFT's file names
PEFT_PREFIX = "base_model.model."  # PEFT saves keys as the wrapped model's names, under its LoraModel


class LoRALinear(nn.Module):
    """
    An nn.Linear `base_layer` (frozen) plus a trainable low-rank correction: lora_A (r, in), lora_B (out, r).
    The attribute names are PEFT's, so state-dict keys read ``...c_attn.base_layer.weight`` and
    ``...c_attn.lora_A.weight``.
    """

    def __init__(self, base_layer: nn.Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base_layer).__name__}")
        if not (isinstance(r, int) and r > 0):
            raise ValueError(f"the LoRA rank r must be a positive int, got {r!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.base_layer, self.r, self.alpha = base_layer, r, alpha
        self.scaling = alpha / r  # alpha / r: the update's size does not depend on the rank
        factory = dict(device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.lora_A = nn.Linear(base_layer.in_features, r, bias=False, **factory)  # (r, in)
        self.lora_B = nn.Linear(r, base_layer.out_features, bias=False, **factory)  # (out, r)
        # no-op when dropout is 0 (PEFT does the same), so the forward has one path
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_lora_parameters()
        base_layer.requires_grad_(False)

    def reset_lora_parameters(self) -> None:
        """A as nn.Linear's default (Kaiming uniform, as PEFT), B zero: the wrapped layer starts as the base."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    # the base layer's tensors under the names code reading a Linear expects (PEFT's tuner layers do the same)
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A, shape (out, in): what merging adds to the base weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)  # (..., out)
        if self.merged:  # the correction is already inside base_layer.weight
            return out
        return out + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling  # through r channels

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the correction into the base weight (inference at the base layer's cost)."""
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged; call unmerge() first")
        self.base_layer.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the correction back out of the base weight (equal to before merge, up to rounding)."""
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged; nothing to unmerge")
        self.base_layer.weight -= self.delta_weight()
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


# Hugging Face's layer names for the open families (what a PEFT config for Llama, Qwen or Pythia names) -> mingpt's
# (mingpt.io.open_weights maps the weights the same way). "attn.c_proj" matches "transformer.h.0.attn.c_proj".
HF_LAYER_NAMES = {"gate_proj": "mlp.c_gate", "up_proj": "mlp.c_fc", "down_proj": "mlp.c_proj", "o_proj": "attn.c_proj",
                  "query_key_value": "attn.c_attn", "dense": "attn.c_proj", "dense_h_to_4h": "mlp.c_fc",
                  "dense_4h_to_h": "mlp.c_proj"}


def _mingpt_names(model: nn.Module, target_modules) -> tuple[str, ...]:
    """target_modules as mingpt's layer names: PEFT's "all-linear" and Hugging Face's names translated."""
    if target_modules == "all-linear":  # PEFT's shortcut: every Linear but the output layer
        return tuple(sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                             if isinstance(m, nn.Linear) and name != "lm_head"}))
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    fused = [t for t in target_modules if t in ("q_proj", "k_proj", "v_proj")]
    if fused:
        raise ValueError(f"target_modules names {fused[0]!r}, but mingpt computes q, k and v in one matmul, "
                         f"'c_attn' (also with grouped-query attention): target 'c_attn' instead, one adapter over "
                         f"all three")
    return tuple(HF_LAYER_NAMES.get(t, t) for t in target_modules)


def apply_lora(model: nn.Module, target_modules=("c_attn",), r: int = 8, alpha: float = 16,
               dropout: float = 0.0) -> list[str]:
    """
    Wrap every nn.Linear whose name ends with one of `target_modules` (as PEFT matches: "c_attn" matches
    "transformer.h.0.attn.c_attn") in a LoRALinear, then freeze everything but the adapters. Returns the wrapped
    module names. The model is changed in place.

        apply_lora(model, target_modules=("c_attn", "c_proj"), r=4, alpha=8)

    The modern models' layers (mingpt/modern: SwiGLU's c_gate, c_fc, c_proj; grouped-query attention's c_attn and
    c_proj) are nn.Linear with the same names, so the same call adapts them. Also accepted, as PEFT accepts them:
    "all-linear" (every Linear but lm_head), and Hugging Face's names (gate_proj, up_proj, down_proj, o_proj;
    GPT-NeoX's query_key_value, dense...), translated to mingpt's by HF_LAYER_NAMES.
    """
    target_modules = _mingpt_names(model, target_modules)
    wrapped = []
    names_of = {}  # a tied matrix (GPT's lm_head and wte) is listed under each of its names
    for pname, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(pname)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in target_modules):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            if isinstance(parent, LoRALinear):
                continue  # the base layer of an earlier apply_lora
            if len(names_of[id(module.weight)]) > 1:  # merging would silently change the other module too
                raise ValueError(f"{name}'s weight is tied to {names_of[id(module.weight)]}: merging a LoRA "
                                 f"correction into it would change those as well; leave {name!r} out of "
                                 "target_modules (or untie the weights first)")
            setattr(parent, child, LoRALinear(module, r=r, alpha=alpha, dropout=dropout))
            wrapped.append(name)
    if not wrapped:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear in the model matches target_modules={list(target_modules)}; "
                         f"its Linear layers are named {linears}")
    mark_only_lora_as_trainable(model)
    model.lora_config = {"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": sorted(set(
        t for t in target_modules if any(w == t or w.endswith("." + t) for w in wrapped)))}
    return wrapped


def mark_only_lora_as_trainable(model: nn.Module) -> None:
    """requires_grad on lora_A/lora_B weights only: the optimizer (param_groups skips frozen tensors) sees those."""
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_A." in name or ".lora_B." in name)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors only, under the model's own names (``transformer.h.0.attn.c_attn.lora_A.weight``)."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def merge_lora(model: nn.Module) -> None:
    """merge() every LoRA layer: the model then computes the same outputs at the base model's cost."""
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """unmerge() every LoRA layer."""
    for layer in lora_layers(model).values():
        layer.unmerge()


def save_lora_adapter(model: nn.Module, directory: str | os.PathLike) -> None:
    """
    Write the adapter in PEFT's format: `directory`/adapter_config.json and adapter_model.safetensors, with
    PEFT's key names (``base_model.model.transformer.h.0.attn.c_attn.lora_A.weight``), loadable by
    ``peft.PeftModel.from_pretrained(transformers.GPT2LMHeadModel, directory)``.
    """
    if not lora_layers(model):
        raise ValueError("the model has no LoRA layers; call apply_lora(model, ...) first")
    if any(layer.merged for layer in lora_layers(model).values()):
        raise ValueError("save the adapter unmerged: call unmerge_lora(model) first (a merged base weight is no "
                         "longer the base that the adapter file is meant to be loaded onto)")
    directory = pathlib.Path(directory)
    tensors = {PEFT_PREFIX + k: v.detach().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, "bias": "none",
        # Hugging Face's GPT-2 holds these matrices as Conv1D, (in, out): PEFT then transposes the merged delta
        "fan_in_fan_out": True,
        "inference_mode": True, "init_lora_weights": True, "modules_to_save": None,
        **model.lora_config,
    }
    with atomic_path(directory / ADAPTER_WEIGHTS) as tmp:  # never a half-written file
        save_file(tensors, tmp, metadata={"format": "pt"})
    with atomic_path(directory / ADAPTER_CONFIG) as tmp:
        pathlib.Path(tmp).write_text(json.dumps(config, indent=2) + "\n", "utf-8")


def load_lora_adapter(model: nn.Module, directory: str | os.PathLike) -> None:
    """
    Load a PEFT-format LoRA adapter (ours or PEFT's) onto `model`: wrap the layers its config names (if
    apply_lora has not been called yet), then copy the adapter tensors. Raises on a missing or unexpected key.
    """
    directory = pathlib.Path(directory)
    if not (directory / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"no {ADAPTER_CONFIG} in {directory}: is this a PEFT LoRA adapter folder?")
    config = json.loads((directory / ADAPTER_CONFIG).read_text("utf-8"))
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{directory} holds a {config.get('peft_type')!r} adapter; only LORA is supported")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise ValueError(f"adapter bias={config.get('bias')!r}, modules_to_save={config.get('modules_to_save')!r} "
                         "are not supported: only LoRA matrices (bias='none', no modules_to_save)")
    if not lora_layers(model):
        apply_lora(model, config["target_modules"], r=config["r"], alpha=config["lora_alpha"],
                   dropout=config.get("lora_dropout", 0.0))
    tensors = {k.removeprefix(PEFT_PREFIX): v for k, v in load_file(directory / ADAPTER_WEIGHTS).items()}
    # PEFT writes keys without the adapter name ("default"); some versions keep it: accept both
    tensors = {k.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B."): v
               for k, v in tensors.items()}
    expected = set(lora_state_dict(model))
    if set(tensors) != expected:
        raise KeyError(f"the adapter's tensors do not match the model's LoRA layers: missing "
                       f"{sorted(expected - set(tensors))[:4]}, unexpected {sorted(set(tensors) - expected)[:4]}")
    model.load_state_dict(tensors, strict=False)


def save_adapter_on_checkpoint(trainer) -> None:
    """
    A Trainer callback for "on_checkpoint": beside each checkpoint it writes the adapter alone, in PEFT's format
    (``out/last.pt`` -> ``out/last_adapter/``, ``best.pt`` -> ``best_adapter/``), a few thousand numbers to share.

        trainer.add_callback("on_checkpoint", save_adapter_on_checkpoint)

    The checkpoint itself keeps the whole model: resuming needs the frozen base too, and with it a resumed run is
    bit-for-bit the unbroken one. A DPO or GRPO module's adapters are its ``policy``'s (its reference is not saved).
    """
    model = getattr(trainer.model, "policy", trainer.model)
    path = pathlib.Path(trainer.last_checkpoint_path)
    save_lora_adapter(model, path.with_name(path.stem + "_adapter"))
