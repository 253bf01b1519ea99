"""
Hook points: read or rewrite any intermediate activation of a GPT's forward pass, by TransformerLens' names.

The one idea: a *hook point* is a named place in the forward pass where a function may look at the activation
and hand back a replacement. Interpretability is mostly two moves built from that: record the activations
(``run_with_cache``), and change one and watch what happens downstream (``run_with_hooks``: ablation, steering,
activation patching). The names and shapes are TransformerLens' (TL), so its tutorials carry over:

    hook_embed, hook_pos_embed                                  (B, T, C)
    blocks.{i}.hook_resid_pre / hook_resid_mid / hook_resid_post (B, T, C)
    blocks.{i}.ln1.hook_scale (B, T, 1), ln1.hook_normalized    (B, T, C)   and ln2.*, before the MLP
    blocks.{i}.attn.hook_q / hook_k / hook_v / hook_z            (B, T, nh, hs)
    blocks.{i}.attn.hook_attn_scores / hook_pattern              (B, nh, T_q, T_k)  scores masked with -inf
    blocks.{i}.attn.hook_result                                  (B, T, nh, C)  each head's output, on request
    blocks.{i}.hook_attn_out / hook_mlp_out                      (B, T, C)
    blocks.{i}.mlp.hook_pre / hook_post                          (B, T, 4C)  before / after the GELU
    ln_final.hook_scale, ln_final.hook_normalized

The values are the model's own computation, weights as they are (TL folds and centers weights by default, which
changes the activations): ``hook_normalized`` is the LayerNorm's output with its weight and bias applied.

Nothing costs anything when no hook is active: ``GPT.active_hooks`` is None and the forward pass takes its plain
path. While a ``with model.hooks(...)`` block is open it holds an `ActiveHooks`, and each module passes its
activations through it. Attention switches to the explicit path only when someone wants the scores or pattern
(the fused kernel never forms them), and the per-head ``hook_result`` is computed only when asked for.

    >>> logits, cache = model.run_with_cache(idx)
    >>> cache["pattern", 0].shape                       # (B, nh, T, T)
    >>> def ablate_head(z, hook): z[:, :, 3] = 0        # edit in place and return None, or return a new tensor
    >>> logits = model.run_with_hooks(idx, fwd_hooks=[("blocks.1.attn.hook_z", ablate_head)])
    >>> with model.hooks(fwd_hooks=[("blocks.4.hook_resid_pre", lambda x, hook: x + steer)]):
    ...     out = model.generate(idx, 20)              # the hook runs at every decoding step too
"""

from __future__ import annotations

import contextlib
import difflib
import re
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

__all__ = ["HookPoint", "ActiveHooks", "hook_names", "get_act_name", "hooks", "run_with_hooks", "run_with_cache"]

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
}

HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]


def hook_names(model) -> list[str]:
    """Every hook point of this model, in the order the forward pass reaches them."""
    names = ["hook_embed", "hook_pos_embed"]
    for i in range(model.config.n_layer):
        names += [f"blocks.{i}.{name}" for name in BLOCK_HOOKS]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


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
    """The second argument of a hook function, as in TL: ``hook.name`` and ``hook.layer()``."""

    def __init__(self, name: str):
        self.name = name

    def layer(self) -> int:
        match = re.match(r"blocks\.(\d+)\.", self.name)
        if match is None:
            raise ValueError(f"hook point {self.name!r} is not inside a block, so it has no layer")
        return int(match.group(1))

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"


def _check_name(model, name: str) -> str:
    valid = hook_names(model)
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "; mingpt.hooks.hook_names(model) lists them all"
        raise KeyError(f"unknown hook point {name!r}{hint}")
    return name


def resolve_names(model, names_filter, what: str = "names_filter") -> list[str]:
    """A names_filter (None = all, a name, a list of names, or a predicate on names) as a list of hook names."""
    valid = hook_names(model)
    if names_filter is None:
        return valid
    if isinstance(names_filter, str):
        return [_check_name(model, names_filter)]
    if callable(names_filter):
        names = [name for name in valid if names_filter(name)]
        if not names:
            raise ValueError(f"{what} {names_filter!r} matches none of the {len(valid)} hook points, e.g. "
                             f"{valid[2]!r}; see mingpt.hooks.hook_names(model)")
        return names
    names = [_check_name(model, name) for name in names_filter]
    if not names:
        raise ValueError(f"{what} is an empty list: it would record nothing; pass None to record every hook point")
    return names


class ActiveHooks:
    """
    What the forward pass talks to while hooks are active: ``hooks(name, tensor)`` runs the hook functions
    registered at that name, records the value for any open cache, and returns the (possibly replaced) tensor.
    Contexts (``with model.hooks(...)``) nest: each adds its functions and cache, and removes them on exit.
    """

    def __init__(self, model):
        self.model = model
        self.contexts: list[tuple[list[tuple[str, HookFn]], dict | None, set]] = []  # (fwd_hooks, cache, cached)
        self.prefix = ""
        self._rebuild()

    def _rebuild(self) -> None:
        self.functions: dict[str, list[HookFn]] = {}
        self.caches: dict[str, list[dict]] = {}
        for fwd_hooks, cache, cached in self.contexts:
            for name, fn in fwd_hooks:
                self.functions.setdefault(name, []).append(fn)
            for name in cached:
                self.caches.setdefault(name, []).append(cache)
        self.wanted = set(self.functions) | set(self.caches)
        self.blocks = [self._scoped(f"blocks.{i}.") for i in range(self.model.config.n_layer)]

    def _scoped(self, prefix: str) -> "ActiveHooks":
        view = object.__new__(ActiveHooks)
        view.__dict__.update(self.__dict__)
        view.prefix = prefix
        return view

    def at_block(self, i: int) -> "ActiveHooks":
        """The same hooks, with names relative to block i ('hook_resid_pre' means 'blocks.{i}.hook_resid_pre')."""
        return self.blocks[i]

    def wants(self, name: str) -> bool:
        """Whether any hook function or cache is attached at this (relative) name."""
        return self.prefix + name in self.wanted

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        full = self.prefix + name
        if full not in self.wanted:
            return tensor
        for fn in self.functions.get(full, ()):
            out = fn(tensor, HookPoint(full))
            if out is None:  # the function only looked, or edited in place
                continue
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"hook {getattr(fn, '__name__', fn)!r} at {full!r} returned "
                                f"{type(out).__name__}; return a tensor of shape {tuple(tensor.shape)} or None")
            if out.shape != tensor.shape:
                raise ValueError(f"hook {getattr(fn, '__name__', fn)!r} at {full!r} returned shape "
                                 f"{tuple(out.shape)}, but the activation has shape {tuple(tensor.shape)}; return a "
                                 f"tensor of the same shape (or None after editing in place)")
            tensor = out
        for cache in self.caches.get(full, ()):
            cache[full] = tensor.detach()  # what the rest of the forward pass actually used
        return tensor

    def layer_norm(self, name: str, ln: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        """ln(x) through '{name}.hook_scale' (B, T, 1) and '{name}.hook_normalized' (weight and bias included)."""
        scale_name = f"{name}.hook_scale"
        out = None
        if self.wants(scale_name):
            centered = x - x.mean(dim=-1, keepdim=True)
            scale = self(scale_name, (centered.pow(2).mean(dim=-1, keepdim=True) + ln.eps).sqrt())
            if self.prefix + scale_name in self.functions:  # a hook may have changed the scale: normalise by it
                out = centered / scale * ln.weight
                out = out if ln.bias is None else out + ln.bias
        if out is None:
            out = ln(x)  # bit for bit the model's own LayerNorm
        return self(f"{name}.hook_normalized", out)


def _expand_fwd_hooks(model, fwd_hooks) -> list[tuple[str, HookFn]]:
    if isinstance(fwd_hooks, tuple) and len(fwd_hooks) == 2 and callable(fwd_hooks[1]):
        fwd_hooks = [fwd_hooks]  # a single (name, fn) pair
    pairs = []
    for item in fwd_hooks:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[1])):
            raise TypeError(f"fwd_hooks must be a list of (name_or_predicate, fn) pairs, got item {item!r}")
        name, fn = item
        pairs += [(n, fn) for n in resolve_names(model, name, what="hook name")]
    return pairs


@contextlib.contextmanager
def hooks(model, fwd_hooks: Iterable = (), names_filter=None, cache: dict | None = None) -> Iterator[dict | None]:
    """
    While inside, each fn of fwd_hooks=[(name_or_predicate, fn)] runs as fn(activation, hook) at its hook point,
    in every forward pass (generate's decoding steps included). If cache is a dict, the hook points selected by
    names_filter record their (detached) values into it; each forward pass overwrites them (in generate: the
    last decoding step's). Always removed on exit, also when the body raises.
    """
    pairs = _expand_fwd_hooks(model, fwd_hooks)
    cached = set(resolve_names(model, names_filter)) if cache is not None else set()
    if model.active_hooks is None:
        model.active_hooks = ActiveHooks(model)
    active = model.active_hooks
    context = (pairs, cache, cached)
    active.contexts.append(context)
    active._rebuild()
    try:
        yield cache
    finally:
        active.contexts = [c for c in active.contexts if c is not context]  # by identity: == would compare caches
        active._rebuild()
        if not active.contexts:
            model.active_hooks = None  # back to the plain path: zero cost


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def run_with_hooks(model, idx: torch.Tensor, fwd_hooks: Iterable = (), return_type: str | None = "logits"):
    """
    One forward pass of idx (B, T) in eval mode with fwd_hooks active, as TL's run_with_hooks. return_type:
    'logits' (B, T, V), 'loss' (mean next-token cross-entropy of idx itself, as TL), 'both' or None.
    """
    if return_type not in ("logits", "loss", "both", None):
        raise ValueError(f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}")
    with _eval_mode(model), hooks(model, fwd_hooks):
        logits, _ = model(idx)
    if return_type is None:
        return None
    if return_type == "logits":
        return logits
    if idx.size(1) < 2:
        raise ValueError(f"a loss needs at least 2 tokens per row to predict one from another, got T={idx.size(1)}")
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), idx[:, 1:].reshape(-1))
    return loss if return_type == "loss" else (logits, loss)


def run_with_cache(model, idx: torch.Tensor, names_filter=None, fwd_hooks: Iterable = ()):
    """
    ``logits, cache = run_with_cache(model, idx)``: one forward pass in eval mode recording every hook point
    (or those names_filter selects: a name, a list, or a predicate) into an ActivationCache. fwd_hooks, if
    given, run first, and the cache holds the values after them.
    """
    from mingpt.activation_cache import ActivationCache

    store: dict[str, torch.Tensor] = {}
    with _eval_mode(model), hooks(model, fwd_hooks), hooks(model, names_filter=names_filter, cache=store):
        logits, _ = model(idx)
    return logits, ActivationCache(store, model)
