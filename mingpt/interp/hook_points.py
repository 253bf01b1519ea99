"""
Hook points: the identity objects a GPT's forward pass calls at each named place, their TransformerLens (TL)
names, and the checks that turn a user's names into them.

The one idea: the forward pass is written once and hands every activation worth seeing to a `HookPoint`, an
identity until a function is attached to it. Every such activation has one full name, and TL's short names map
onto it, so its tutorials carry over. Names and shapes (B batch, T time, C channels, nh heads, hs head size):

    hook_embed, hook_pos_embed                                  (B, T, C)
    blocks.{i}.hook_resid_pre / hook_resid_mid / hook_resid_post (B, T, C)
    blocks.{i}.hook_q_input / hook_k_input / hook_v_input / hook_attn_in (B, T, heads, C), hook_mlp_in (B, T, C):
                                                                 only while TL's switches are on (head_inputs.py)
    blocks.{i}.ln1.hook_scale (B, T, 1), ln1.hook_normalized    (B, T, C)   and ln2.*, before the MLP
    blocks.{i}.attn.hook_q / hook_k / hook_v / hook_z            (B, T, nh, hs)
    blocks.{i}.attn.hook_attn_scores / hook_pattern              (B, nh, T_q, T_k)  scores masked with -inf
    blocks.{i}.attn.hook_result                                  (B, T, nh, C)  each head's output, on request
    blocks.{i}.hook_attn_out / hook_mlp_out                      (B, T, C)
    blocks.{i}.mlp.hook_pre / hook_post                          (B, T, 4C)  before / after the GELU
    ln_final.hook_scale, ln_final.hook_normalized

    >>> get_act_name("pattern", 1)
    'blocks.1.attn.hook_pattern'

Attaching functions and caches for the length of a ``with`` block is hooks.py's job; reading a recorded cache is
activation_cache.py's. Both need these names, and the model needs the points, so they live here, below all three.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

import torch

__all__ = ["BLOCK_HOOKS", "SHORT_NAMES", "HookFn", "HookPoint", "LayerNormHookPoints", "find_hook_points", "has_scale",
           "norm_parts", "no_hook", "no_ln_hooks",
           "declared_hook_names", "hook_names", "get_act_name", "check_hook_name", "resolve_names"]

BLOCK_HOOKS = (
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out",
    "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
    "hook_resid_post",
)
# TL's short names (its `utils.get_act_name`): where each lives inside block i.
SHORT_NAMES = {
    "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z", "result": "attn.hook_result",
    "attn_scores": "attn.hook_attn_scores", "pattern": "attn.hook_pattern", "attn": "attn.hook_pattern",
    "pre": "mlp.hook_pre", "post": "mlp.hook_post",
    "rot_q": "attn.hook_rot_q", "rot_k": "attn.hook_rot_k", "pre_linear": "mlp.hook_pre_linear",
    "attn_in": "hook_attn_in", "q_input": "hook_q_input", "k_input": "hook_k_input", "v_input": "hook_v_input",
    "mlp_in": "hook_mlp_in",
}
# The points only the modern parts have (mingpt/modern: rotary attention, SwiGLU), after the point each follows.
MODERN_BLOCK_HOOKS = {"attn.hook_v": ("attn.hook_rot_q", "attn.hook_rot_k"), "mlp.hook_pre": ("mlp.hook_pre_linear",)}
# The points TL's switches add (model.set_use_split_qkv_input, set_use_attn_in, set_use_hook_mlp_in: head_inputs.py).
SWITCHED_BLOCK_HOOKS = {"hook_resid_pre": ("hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input"),
                        "hook_resid_mid": ("hook_mlp_in",)}

HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]


def hook_names(model) -> list[str]:
    """Every hook point of this model, in the order the forward pass reaches them."""
    return list(find_hook_points(model))


def get_act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """TL's short names to full ones: ("pattern", 1) -> 'blocks.1.attn.hook_pattern'; ("scale",) -> ln_final's."""
    if name in ("embed", "pos_embed"):
        return f"hook_{name}"
    if name in ("scale", "normalized"):
        if layer is None:
            return f"ln_final.hook_{name}"
        if layer_type not in ("ln1", "ln2"):
            raise ValueError(f"{name!r} at layer {layer} needs layer_type 'ln1' or 'ln2', got {layer_type!r}; "
                             f"e.g. cache[{name!r}, {layer}, 'ln1'] (no layer means ln_final)")
        return f"blocks.{layer}.{layer_type}.hook_{name}"
    if name not in SHORT_NAMES:
        raise KeyError(f"unknown activation name {name!r}; short names are embed, pos_embed, scale, normalized, "
                       f"{', '.join(SHORT_NAMES)}")
    if layer is None:
        raise ValueError(f"{name!r} lives in every block: give a layer, e.g. ({name!r}, 0)")
    return f"blocks.{layer}.{SHORT_NAMES[name]}"


class HookPoint:
    """
    An identity at one named place of the forward pass, TL's HookPoint: the model calls ``self.hook_z(z)`` and
    gets z back, unless functions or caches are attached. Attached functions run in order as ``fn(tensor, hook)``
    (``hook`` is this point: ``hook.name``, ``hook.layer()``) and may return a replacement of the same shape;
    then each attached cache records the value the rest of the forward pass will use.

    A plain object, not an nn.Module: nn.Module.__call__ runs its own hook machinery on every call, which costs
    many times this identity, and a model calls ~18 of these per block (bench/hooks_overhead.py measures it).
    """

    __slots__ = ("name", "fns", "caches", "bwd_fns", "active")

    def __init__(self, name: str = ""):
        self.name = name  # the full name, set by find_hook_points (e.g. 'blocks.0.attn.hook_z')
        self.fns: list[HookFn] = []
        self.caches: list[dict] = []
        self.bwd_fns: list[HookFn] = []  # backward hooks: fn(gradient of this point's output, hook)
        self.active = False  # anything attached? One attribute test is all an idle point costs

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return tensor
        for fn in self.fns:
            out = fn(tensor, self)
            if out is None:  # the function only looked, or edited in place
                continue
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"hook {getattr(fn, '__name__', fn)!r} at {self.name!r} returned "
                                f"{type(out).__name__}; return a tensor of shape {tuple(tensor.shape)} or None")
            if out.shape != tensor.shape:
                raise ValueError(f"hook {getattr(fn, '__name__', fn)!r} at {self.name!r} returned shape "
                                 f"{tuple(out.shape)}, but the activation has shape {tuple(tensor.shape)}; return a "
                                 f"tensor of the same shape (or None after editing in place)")
            tensor = out
        for cache in self.caches:
            cache[self.name] = tensor.detach()  # what the rest of the forward pass actually used
        if self.bwd_fns and tensor.requires_grad:
            # A new node (a view) stands for this point's output, so its gradient is what flows back from the
            # uses after this point only, as TL's HookPoint module sees it, even when the same tensor object also
            # passes another point (resid_post of block i is resid_pre of block i+1).
            tensor = tensor.view_as(tensor)
            for fn in self.bwd_fns:
                tensor.register_hook(self._backward(fn))
        return tensor

    def _backward(self, fn: HookFn):
        """The gradient hook that calls fn(grad, hook); a returned tensor replaces the gradient flowing back."""
        def call(grad: torch.Tensor) -> torch.Tensor | None:
            out = fn(grad, self)
            if out is not None and (not isinstance(out, torch.Tensor) or out.shape != grad.shape):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"backward hook {getattr(fn, '__name__', fn)!r} at {self.name!r} returned {got}; "
                                 f"return None or a gradient of shape {tuple(grad.shape)}")
            return out
        return call

    def add_hook(self, fn: HookFn, prepend: bool = False) -> None:
        self.fns.insert(0, fn) if prepend else self.fns.append(fn)
        self.active = True

    def add_cache(self, cache: dict) -> None:
        self.caches.append(cache)
        self.active = True

    def add_backward_hook(self, fn: HookFn) -> None:
        self.bwd_fns.append(fn)
        self.active = True

    def remove(self, fn: HookFn | None = None, cache: dict | None = None, bwd_fn: HookFn | None = None) -> None:
        """Detach the latest attachment of fn (or of cache), by identity: contexts nest, the inner one leaves first."""
        for attached, item in ((self.fns, fn), (self.caches, cache), (self.bwd_fns, bwd_fn)):
            if item is not None:
                last = max(i for i, x in enumerate(attached) if x is item)  # `==` would compare two caches' contents
                del attached[last]
        self.active = bool(self.fns or self.caches or self.bwd_fns)

    def layer(self) -> int:
        match = re.match(r"blocks\.(\d+)\.", self.name)
        if match is None:
            raise ValueError(f"hook point {self.name!r} is not inside a block, so it has no layer")
        return int(match.group(1))

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"


def has_scale(ln) -> bool:
    """Whether hook_scale can be computed for this norm: PyTorch's LayerNorm and RMSNorm, whose formula is known
    (a student's own norm, whose eps and weight we cannot know, gets no hook_scale)."""
    return isinstance(ln, (torch.nn.LayerNorm, torch.nn.RMSNorm))


def norm_parts(ln, dtype: torch.dtype = torch.float32):
    """
    What redoing a LayerNorm or RMSNorm by hand needs: (centres?, weight or None, bias or None, eps).
    LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias. RMSNorm: x / sqrt(mean(x^2) + eps) * weight, no
    centring and no bias (its eps, when None, is the dtype's machine epsilon, as in torch).
    """
    if isinstance(ln, torch.nn.RMSNorm):
        return False, ln.weight, None, ln.eps if ln.eps is not None else torch.finfo(dtype).eps
    return True, ln.weight, ln.bias, ln.eps


class LayerNormHookPoints:
    """
    TL's ``{name}.hook_scale`` (B, T, 1) and ``{name}.hook_normalized`` (B, T, C) around one LayerNorm or RMSNorm:
    ``points(ln, x)`` is ``ln(x)``, through them. PyTorch's fused norms never show their scale, so the scale is
    computed only when something is attached to it, and the normalisation is redone by hand only when a function
    there may have changed it; otherwise the output is the norm's own, bit for bit. hook_normalized is, as TL's,
    a LayerNorm's output (weight and bias applied), but an RMSNorm's x / scale, before its gain.
    with_scale=False (a student's own LayerNorm, whose eps and weight we cannot know): no hook_scale.
    """

    def __init__(self, name: str, with_scale: bool = True):
        self.name = name  # TL's: ln1, ln2 or ln_final
        self.hook_scale = HookPoint() if with_scale else None
        self.hook_normalized = HookPoint()

    def block_points(self) -> dict[str, HookPoint]:
        """Points of the block these stand beside (head_inputs.py's stand-ins add hook_q_input, ...): none here."""
        return {}

    def __call__(self, ln, x: torch.Tensor) -> torch.Tensor:
        scale_point, normalized_point = self.hook_scale, self.hook_normalized
        if scale_point is None:
            return normalized_point(ln(x))
        centres, weight, bias, eps = norm_parts(ln, x.dtype)
        # TL's RMSNorm shows x / scale at hook_normalized and multiplies by its gain afterwards (its LayerNorm
        # shows the output, gain and bias included): the same names, the same values.
        gain_after = not centres and weight is not None
        if not (scale_point.active or (gain_after and normalized_point.active)):
            return normalized_point(ln(x))
        centered = x - x.mean(dim=-1, keepdim=True) if centres else x
        scale = scale_point((centered.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt())
        edited = bool(scale_point.fns or scale_point.bwd_fns)  # a function there may have changed the scale
        if gain_after:
            normalized = normalized_point(centered / scale)
            edited = edited or bool(normalized_point.fns or normalized_point.bwd_fns)
            return normalized * weight if edited else ln(x)  # only recorded: the model's own norm, bit for bit
        if not edited:
            return normalized_point(ln(x))
        out = centered / scale  # normalise by the scale a hook may have changed
        out = out if weight is None else out * weight
        return normalized_point(out if bias is None else out + bias)


# Where a model has no such activation (an attention-only block has no MLP half, so TL gives it no hook_resid_mid,
# ln2.* or hook_mlp_out), the block holds these pass-throughs instead of hook points: plain functions, which
# find_hook_points does not list, so neither does hook_dict, a cache or a names_filter.
def no_hook(x: torch.Tensor) -> torch.Tensor:
    return x


def no_ln_hooks(ln, x: torch.Tensor) -> torch.Tensor:
    return ln(x)


def find_hook_points(model) -> dict[str, HookPoint]:
    """
    Every hook point of model by full name, in the order the forward pass reaches them (TL's ``model.hook_dict``).
    Found by walking the modules: a HookPoint attribute of module ``transformer.h.3.attn`` is
    ``blocks.3.attn.<attribute>``. A part without hook points (a student's own attention, say) simply has none.
    """
    found = {}
    for path, module in model.named_modules():
        prefix = re.sub(r"^(transformer\.)?h\.(\d+)", r"blocks.\2", path)
        prefix = prefix + "." if prefix else ""
        for attribute, value in vars(module).items():
            if isinstance(value, HookPoint):
                found[prefix + attribute] = value
            elif isinstance(value, LayerNormHookPoints):
                for kind in ("hook_scale", "hook_normalized"):
                    if getattr(value, kind) is not None:
                        found[f"{prefix}{value.name}.{kind}"] = getattr(value, kind)
                for attribute, point in value.block_points().items():  # a stand-in's own points (head_inputs.py)
                    found[prefix + attribute] = point
    order = {name: i for i, name in enumerate(declared_hook_names(model.config.n_layer, modern=True))}
    points = dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))
    for name, point in points.items():
        point.name = name
    return points


def declared_hook_names(n_layer: int, modern: bool = False) -> list[str]:
    """The hook points of a GPT-2 built from mingpt's own components, in forward order (modern: with the points
    the modern parts and TL's switches may add)."""
    names = ["hook_embed", "hook_pos_embed"]
    for i in range(n_layer):
        for name in BLOCK_HOOKS:
            extra = (*MODERN_BLOCK_HOOKS.get(name, ()), *SWITCHED_BLOCK_HOOKS.get(name, ())) if modern else ()
            names += [f"blocks.{i}.{n}" for n in (name, *extra)]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


def check_hook_name(model, name: str, valid: list[str] | None = None) -> str:
    """Return name if it is one of model's hook points (valid: hook_names(model), when the caller has it already);
    else a KeyError suggesting the closest real name."""
    valid = hook_names(model) if valid is None else valid
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "; mingpt.interp.hooks.hook_names(model) lists them all"
        raise KeyError(f"unknown hook point {name!r}{hint}")
    return name


def resolve_names(model, names_filter, what: str = "names_filter", valid: list[str] | None = None) -> list[str]:
    """
    A names_filter as a list of hook names: a name, a list of names, a predicate on names, or None: every hook
    point except the costly per-head hook_result, unless model.use_attn_result (TL's switch) asks for it too.
    valid: hook_names(model), when the caller has it (finding the hook points walks every module: once per call).
    """
    valid = hook_names(model) if valid is None else valid
    if names_filter is None:
        return [name for name in valid if getattr(model, "use_attn_result", False) or
                not name.endswith("attn.hook_result")]
    if isinstance(names_filter, str):
        return [check_hook_name(model, names_filter, valid)]
    if callable(names_filter):
        names = [name for name in valid if names_filter(name)]
        if not names:
            raise ValueError(f"{what} {names_filter!r} matches none of the {len(valid)} hook points, e.g. "
                             f"{valid[2]!r}; see mingpt.interp.hooks.hook_names(model)")
        return names
    names = [check_hook_name(model, name, valid) for name in names_filter]
    if not names:
        raise ValueError(f"{what} is an empty list: it would record nothing; pass None to record every hook point")
    return names
