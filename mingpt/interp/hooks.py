"""
Hooks: read or rewrite any intermediate activation of a GPT's forward pass, by TransformerLens' names.

The one idea: a *hook point* is a named place in the forward pass where a function may look at the activation
and hand back a replacement. Interpretability is mostly two moves built from that: record the activations
(``run_with_cache``), and change one and watch what happens downstream (``run_with_hooks``: ablation, steering,
activation patching). The names and shapes are TransformerLens' (TL), so its tutorials carry over; hook_points.py
lists them (``blocks.{i}.attn.hook_pattern``, ``blocks.{i}.hook_resid_post``, ...) with their shapes.

The values are the model's own computation, weights as they are (TL folds and centers weights by default, which
changes the activations): ``hook_normalized`` is the LayerNorm's output with its weight and bias applied.

The model calls an identity `HookPoint` at every site (``model.hook_dict`` lists them); this file attaches
functions and caches to them for the length of a ``with model.hooks(...)`` block and detaches them on exit, so
outside such a block every point is idle again. Contexts nest: each adds its functions and cache, and removes
only those. Attention switches to the explicit path only while something is attached to the scores or pattern
(the fused kernel never forms them), and the per-head ``hook_result`` is computed only while asked for.

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
# get_act_name``, as in TL), but live in hook_points.py so that the model and activation_cache.py can use them too.
from mingpt.interp.hook_points import HookFn, HookPoint, find_hook_points, get_act_name, hook_names, resolve_names
from mingpt.utils import eval_mode

__all__ = ["HookPoint", "hook_names", "get_act_name", "attached_hook_names", "hooks", "run_with_hooks",
           "run_with_cache"]


def attached_hook_names(model) -> list[str]:
    """The hook points that have a function or a cache attached right now ([] outside every hooks block)."""
    return [name for name, point in find_hook_points(model).items() if point.active]


def _expand_fwd_hooks(model, fwd_hooks, what: str = "fwd_hooks", valid: list[str] | None = None
                      ) -> list[tuple[str, HookFn]]:
    if isinstance(fwd_hooks, tuple) and len(fwd_hooks) == 2 and callable(fwd_hooks[1]):
        fwd_hooks = [fwd_hooks]  # a single (name, fn) pair
    pairs = []
    for item in fwd_hooks:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[1])):
            raise TypeError(f"{what} must be a list of (name_or_predicate, fn) pairs, got item {item!r}")
        name, fn = item
        pairs += [(n, fn) for n in resolve_names(model, name, what="hook name", valid=valid)]
    return pairs


@contextlib.contextmanager
def hooks(model, fwd_hooks: Iterable = (), bwd_hooks: Iterable = (), names_filter=None,
          cache: dict | None = None) -> Iterator[dict | None]:
    """
    While inside, each fn of fwd_hooks=[(name_or_predicate, fn)] runs as fn(activation, hook) at its hook point,
    in every forward pass (generate's decoding steps included). If cache is a dict, the hook points selected by
    names_filter record their (detached) values into it; each forward pass overwrites them (in generate: the
    last decoding step's). Always removed on exit, also when the body raises.

    bwd_hooks=[(name_or_predicate, fn)], as TL's: fn(grad, hook) gets the gradient of the loss with respect to
    that hook point's output, (B, T, C) for hook_resid_pre, when backward runs; it may return a tensor of the same
    shape to replace the gradient flowing back. A backward hook is attached to the graph of each forward pass
    run inside the block, so it fires when that graph is backpropagated (TL detaches its backward hooks on exit:
    there, call .backward() inside the block, which works the same here).
    """
    points = find_hook_points(model)  # one walk of the modules: every name below is checked against it
    valid = list(points)
    pairs = [(points[name], fn) for name, fn in _expand_fwd_hooks(model, fwd_hooks, valid=valid)]  # checked first
    bwd_pairs = [(points[name], fn) for name, fn in _expand_fwd_hooks(model, bwd_hooks, "bwd_hooks", valid)]
    cached = [points[name] for name in resolve_names(model, names_filter, valid=valid)] if cache is not None else []
    for point, fn in pairs:
        point.add_hook(fn)
    for point, fn in bwd_pairs:
        point.add_backward_hook(fn)
    for point in cached:
        point.add_cache(cache)
    try:
        yield cache
    finally:
        for point, fn in reversed(pairs):
            point.remove(fn=fn)
        for point, fn in reversed(bwd_pairs):
            point.remove(bwd_fn=fn)
        for point in cached:
            point.remove(cache=cache)


class _Stopped(Exception):
    """Raised by the hook that ends a pass at stop_at_layer, carrying the residual stream there."""

    def __init__(self, residual: torch.Tensor):
        super().__init__("stopped at stop_at_layer")
        self.residual = residual


def _stop_hook(model, stop_at_layer):
    """[] or the (name, fn) pair that ends the pass before block stop_at_layer (TL's: blocks[:stop_at_layer] run)."""
    if stop_at_layer is None:
        return []
    n = model.config.n_layer
    if not isinstance(stop_at_layer, int) or isinstance(stop_at_layer, bool) or not -n <= stop_at_layer <= n:
        raise ValueError(f"stop_at_layer must be an int in [-{n}, {n}] (blocks[:stop_at_layer] run) or None, "
                         f"got {stop_at_layer!r}")
    layer = stop_at_layer % n if stop_at_layer != n else n
    if layer < n:  # the pass ends as it reaches block `layer`, before that block's first hook point records
        def stop(residual, hook):
            raise _Stopped(residual)

        return [(get_act_name("resid_pre", layer), stop)]
    seen = []  # every block ran: keep the last block's output, and end the pass at the final LayerNorm

    def keep(residual, hook):
        seen.append(residual)

    def stop_at_ln_final(normalized, hook):
        raise _Stopped(seen[-1])

    return [(get_act_name("resid_post", n - 1), keep), ("ln_final.hook_normalized", stop_at_ln_final)]


def _forward(model, idx: torch.Tensor, stop_at_layer):
    """Logits (B, T, V), or the residual stream (B, T, C) entering block stop_at_layer, which ends the pass."""
    try:
        with hooks(model, _stop_hook(model, stop_at_layer)):
            return model(idx)[0]
    except _Stopped as stopped:
        return stopped.residual


def _output(logits: torch.Tensor, idx: torch.Tensor, return_type, loss_per_token: bool, stopped: bool):
    if stopped or return_type == "logits":
        return logits
    if return_type is None:
        return None
    if idx.size(1) < 2:
        raise ValueError(f"a loss needs at least 2 tokens per row to predict one from another, got T={idx.size(1)}")
    loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), idx[:, 1:], reduction="none")  # (B, T - 1)
    loss = loss if loss_per_token else loss.mean()
    return loss if return_type == "loss" else (logits, loss)


def _check_return_type(return_type) -> None:
    if return_type not in ("logits", "loss", "both", None):
        raise ValueError(f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}")


def run_with_hooks(model, idx: torch.Tensor, fwd_hooks: Iterable = (), return_type: str | None = "logits",
                   bwd_hooks: Iterable = (), loss_per_token: bool = False, stop_at_layer: int | None = None):
    """
    One forward pass of idx (B, T) in eval mode with fwd_hooks active, as TL's run_with_hooks. return_type:
    'logits' (B, T, V), 'loss' (next-token cross-entropy of idx itself, as TL: the mean, or (B, T - 1) with
    loss_per_token), 'both' or None. stop_at_layer (TL's): only blocks[:stop_at_layer] run, and the residual
    stream after them (B, T, C) is returned, whatever return_type says. bwd_hooks fire when the returned logits
    or loss are backpropagated (``loss.backward()``), see `hooks`.
    """
    _check_return_type(return_type)
    with eval_mode(model), hooks(model, fwd_hooks, bwd_hooks):
        out = _forward(model, idx, stop_at_layer)
    return _output(out, idx, return_type, loss_per_token, stop_at_layer is not None)


def run_with_cache(model, idx: torch.Tensor, names_filter=None, fwd_hooks: Iterable = (),
                   return_type: str | None = "logits", loss_per_token: bool = False, stop_at_layer: int | None = None,
                   incl_bwd: bool = False):
    """
    ``logits, cache = run_with_cache(model, idx)``: one forward pass in eval mode recording every hook point
    (or those names_filter selects: a name, a list, or a predicate; None leaves out the costly per-head
    hook_result unless model.use_attn_result) into an ActivationCache. fwd_hooks, if given, run first, and the
    cache holds the values after them. return_type, loss_per_token, stop_at_layer: as run_with_hooks.
    incl_bwd (TL's): also backpropagate the returned scalar (return_type="loss") and record the gradient at each
    of those hook points as ``cache[name + "_grad"]``.
    """
    _check_return_type(return_type)
    if incl_bwd and (return_type != "loss" or loss_per_token or stop_at_layer is not None):
        raise ValueError(f"incl_bwd=True backpropagates the output, so it must be one number: use return_type='loss' "
                         f"(got return_type={return_type!r}, loss_per_token={loss_per_token}, "
                         f"stop_at_layer={stop_at_layer})")
    store: dict[str, torch.Tensor] = {}
    # TL stores each backward hook's gradient the same way; the ln1 points are the one place its numbers differ
    # (its block calls ln1 three times, for q, k and v, and keeps the last share; here it runs once)
    save_grad = [(name, lambda grad, hook: store.__setitem__(hook.name + "_grad", grad.detach()))
                 for name in resolve_names(model, names_filter)] if incl_bwd else []
    with eval_mode(model), hooks(model, fwd_hooks, save_grad), hooks(model, names_filter=names_filter, cache=store):
        out = _forward(model, idx, stop_at_layer)
        result = _output(out, idx, return_type, loss_per_token, stop_at_layer is not None)
        if incl_bwd:
            result.backward()
    if stop_at_layer is not None:  # TL's pass never reaches the final LayerNorm then
        store = {name: value for name, value in store.items() if not name.startswith("ln_final.")}
    return result, ActivationCache(store, model)
