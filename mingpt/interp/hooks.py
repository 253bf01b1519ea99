"""
Hook points: read or rewrite any intermediate activation of a GPT's forward pass, by TransformerLens' names.

The one idea: a *hook point* is a named place in the forward pass where a function may look at the activation
and hand back a replacement. Interpretability is mostly two moves built from that: record the activations
(``run_with_cache``), and change one and watch what happens downstream (``run_with_hooks``: ablation, steering,
activation patching). The names and shapes are TransformerLens' (TL), so its tutorials carry over; hook_points.py
lists them (``blocks.{i}.attn.hook_pattern``, ``blocks.{i}.hook_resid_post``, ...) with their shapes.

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
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from mingpt.interp.activation_cache import ActivationCache

# HookPoint, hook_names and get_act_name are part of this module's public face (``from mingpt.interp.hooks import
# get_act_name``, as in TL), but live in hook_points.py so that activation_cache.py can use them too.
from mingpt.interp.hook_points import HookFn, HookPoint, get_act_name, hook_names, resolve_names
from mingpt.utils import eval_mode

__all__ = ["HookPoint", "ActiveHooks", "hook_names", "get_act_name", "hooks", "run_with_hooks", "run_with_cache"]


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


def run_with_hooks(model, idx: torch.Tensor, fwd_hooks: Iterable = (), return_type: str | None = "logits"):
    """
    One forward pass of idx (B, T) in eval mode with fwd_hooks active, as TL's run_with_hooks. return_type:
    'logits' (B, T, V), 'loss' (mean next-token cross-entropy of idx itself, as TL), 'both' or None.
    """
    if return_type not in ("logits", "loss", "both", None):
        raise ValueError(f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}")
    with eval_mode(model), hooks(model, fwd_hooks):
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
    store: dict[str, torch.Tensor] = {}
    with eval_mode(model), hooks(model, fwd_hooks), hooks(model, names_filter=names_filter, cache=store):
        logits, _ = model(idx)
    return logits, ActivationCache(store, model)
