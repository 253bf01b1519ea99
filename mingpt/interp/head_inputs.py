"""
Each head's own input: TransformerLens' (TL) ``hook_q_input``, ``hook_k_input``, ``hook_v_input``, ``hook_attn_in``
and ``hook_mlp_in``, off until a model's setter turns them on (TL's switches, same names):

    model.set_use_split_qkv_input(True)   blocks.{i}.hook_q_input (B, T, nh, C), hook_k_input / hook_v_input
                                          (B, T, nkv, C): the stream each head's queries, keys, values read
    model.set_use_attn_in(True)           blocks.{i}.hook_attn_in (B, T, nh, C): one input per head for all three
    model.set_use_hook_mlp_in(True)       blocks.{i}.hook_mlp_in (B, T, C): the stream entering ln2 and the MLP

The one idea: attention normally reads *one* normalised residual stream, ln1(resid_pre), and multiplies it by every
head's W_Q, W_K, W_V at once. Path patching asks "what if head 3's keys alone had read the clean stream?", so each
head needs its own copy of the stream to edit. TL makes one copy per head, resid_pre repeated along a new head axis,
applies ln1 to each copy and lets head n's projection read copy n only; an edit of copy n changes head n alone.

Here that is two stand-ins, put in place by the setters and taken out again, so the model's forward pass stays
the one in model.py and costs nothing more while the switches are off:
  - `HeadInputs` stands where the block's ``hook_ln1`` points are (it *is* those points, plus the new ones): it
    returns ln1 of the q, k and v copies side by side, (B, T, nh + 2 nkv, C), in c_attn's own order of heads;
  - `PerHeadProjection` stands where attention's ``c_attn`` is, holding the same weight and bias Parameters (the
    state dict, the optimizer and ``model.W_Q`` see no change): head n's rows of the weight multiply input n.
The attention code after c_attn (hook_q/k/v, QK-norm, rotary, the KV cache, GQA's repeats) is unchanged, so
generation with a KV cache works with the switches on. `MLPInput` stands where ``hook_ln2`` is and adds hook_mlp_in.

As in TL: ln1's hook points fire three times (q, then k, then v copies: a cache keeps the v copies'), each
(B, T, heads, ...); with both switches on, hook_attn_in is recorded but the q/k/v inputs are what the heads read.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mingpt.interp.hook_points import HookPoint, LayerNormHookPoints

__all__ = ["HeadInputs", "MLPInput", "PerHeadProjection", "apply_switches"]


def repeat_heads(x: torch.Tensor, heads: int, point: HookPoint) -> torch.Tensor:
    """(B, T, C) -> (B, T, heads, C) through point. A copy per head only if a function there may edit in place;
    otherwise a view (LayerNorm and the projection only read it)."""
    repeated = x.unsqueeze(2).expand(-1, -1, heads, -1)
    return point(repeated.clone() if point.active else repeated)


class HeadInputs(LayerNormHookPoints):
    """A block's ln1 hook points, plus TL's per-head inputs; called as ``points(ln_1, resid_pre)``."""

    def __init__(self, ln_points: LayerNormHookPoints, n_head: int, n_kv_head: int, split: bool, attn_in: bool):
        self.name = ln_points.name
        self.hook_scale, self.hook_normalized = ln_points.hook_scale, ln_points.hook_normalized
        self.ln_points = ln_points  # what the block gets back when the switches go off
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.hook_attn_in = HookPoint() if attn_in else None
        self.hook_q_input, self.hook_k_input, self.hook_v_input = (
            (HookPoint(), HookPoint(), HookPoint()) if split else (None, None, None))

    def block_points(self) -> dict[str, HookPoint]:
        names = ("hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def __call__(self, ln, x: torch.Tensor) -> torch.Tensor:
        nh, nkv = self.n_head, self.n_kv_head
        if self.hook_attn_in is not None:
            q_in = k_in = v_in = repeat_heads(x, nh, self.hook_attn_in)  # (B, T, nh, C), one per head
        if self.hook_q_input is not None:  # TL's order: attn_in first (then unused), q, k, v
            q_in = repeat_heads(x, nh, self.hook_q_input)
            k_in, v_in = repeat_heads(x, nkv, self.hook_k_input), repeat_heads(x, nkv, self.hook_v_input)
        normalize = super().__call__  # ln1 and its hook points, over the last axis of each copy
        return torch.cat([normalize(ln, q_in), normalize(ln, k_in), normalize(ln, v_in)], dim=2)


class MLPInput(LayerNormHookPoints):
    """A block's ln2 hook points, with TL's hook_mlp_in on the stream before ln2: ``points(ln_2, resid_mid)``."""

    def __init__(self, ln_points: LayerNormHookPoints):
        self.name = ln_points.name
        self.hook_scale, self.hook_normalized = ln_points.hook_scale, ln_points.hook_normalized
        self.ln_points = ln_points
        self.hook_mlp_in = HookPoint()

    def block_points(self) -> dict[str, HookPoint]:
        return {"hook_mlp_in": self.hook_mlp_in}

    def __call__(self, ln, x: torch.Tensor) -> torch.Tensor:
        # A copy (as TL's resid_mid.clone()) when a function may edit it in place: resid_mid itself goes on to
        # resid_post, and must not change with the MLP's input.
        return super().__call__(ln, self.hook_mlp_in(x.clone() if self.hook_mlp_in.active else x))


class PerHeadProjection(nn.Module):
    """
    Attention's c_attn, head by head: the input (B, T, H, C) holds one stream per output head (H = nh + 2 nkv:
    queries', keys', values' heads, c_attn's order), and head n's hs rows of the weight multiply stream n only.
    Returns (B, T, H * hs), what the Linear returns for one shared stream. Holds the Linear's own Parameters.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight  # the same Parameter objects: nothing is copied
        self.register_parameter("bias", linear.bias)
        self.__dict__["linear"] = linear  # put back when the switches go off; not a submodule (no duplicate keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"per-head inputs are (B, T, heads, C), got shape {tuple(x.shape)}: this c_attn stands "
                             f"in while set_use_split_qkv_input / set_use_attn_in are on; turn them off first")
        H = x.size(2)
        weight = self.weight.view(H, -1, x.size(3))  # (H, hs, C): head n's rows
        out = torch.einsum("bthc,hdc->bthd", x, weight)
        if self.bias is not None:
            out = out + self.bias.view(H, -1)
        return out.flatten(2)


def _plain(points):
    """The block's own hook points under any stand-in."""
    return getattr(points, "ln_points", points)


def apply_switches(model) -> None:
    """Put the stand-ins in place, or take them out, in every block, as model.use_split_qkv_input, use_attn_in and
    use_hook_mlp_in say (hooks attached to the per-head points are dropped when their switch goes off)."""
    config = model.config
    n_kv_head = getattr(config, "n_kv_head", None) or config.n_head
    per_head = model.use_split_qkv_input or model.use_attn_in
    for i, block in enumerate(model.transformer.h):
        ln1, ln2, attn = getattr(block, "hook_ln1", None), getattr(block, "hook_ln2", None), block.attn
        c_attn = getattr(attn, "c_attn", None)
        if per_head and not (isinstance(ln1, LayerNormHookPoints) and isinstance(c_attn, (nn.Linear,
                                                                                           PerHeadProjection))):
            raise ValueError(f"per-head attention inputs need mingpt's own Block and attention (hook_ln1 hook points "
                             f"and one c_attn Linear for q, k and v); block {i} is {type(block).__name__} with "
                             f"{type(attn).__name__}")
        if isinstance(ln1, LayerNormHookPoints):
            block.hook_ln1 = _plain(ln1)
            if per_head:
                block.hook_ln1 = HeadInputs(block.hook_ln1, config.n_head, n_kv_head, model.use_split_qkv_input,
                                            model.use_attn_in)
        if isinstance(c_attn, PerHeadProjection):
            attn.c_attn = c_attn.linear
        if per_head:
            attn.c_attn = PerHeadProjection(attn.c_attn)
        if model.use_hook_mlp_in and not isinstance(ln2, LayerNormHookPoints):
            raise ValueError(f"hook_mlp_in needs the ln2 hook points of mingpt's own Block; block {i} is "
                             f"{type(block).__name__}, without them")
        if isinstance(ln2, LayerNormHookPoints):
            block.hook_ln2 = MLPInput(_plain(ln2)) if model.use_hook_mlp_in else _plain(ln2)
