"""
Attribution patching: the whole activation-patching grid from one backward pass, by a first-order Taylor expansion.

The one idea (Neel Nanda, "Attribution Patching", 2023; Syed et al. 2023): patching cell c replaces an activation
a by its clean value, and the metric moves by

    metric(a_corrupted + (a_clean - a_corrupted)) - metric(a_corrupted)  ~  (a_clean - a_corrupted) . d metric / d a

with the gradient taken on the corrupted run. One forward and one backward pass of the corrupted tokens give that
gradient at every hook point at once; the clean activations come from the clean cache the exact sweep needs too.
So every cell of every grid (each layer x position of the residual stream, each head...) costs one dot product,
instead of a forward pass per cell (TL) or per group of cells (mingpt.interp.patching's batched sweep).

The functions mirror TransformerLens' exact ones (``get_act_patch_resid_pre`` -> ``get_attr_patch_resid_pre``):
same arguments, same axes, and the same quantity, the metric of the patched run, here *estimated*:
``metric(corrupted) + (clean - corrupted) . gradient``. So ``attr - exact`` is the approximation's error, and a
metric normalised to 0 = corrupted, 1 = clean reads the same in both grids.

    >>> _, clean_cache = model.run_with_cache(clean_tokens)
    >>> approx = get_attr_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)   # (n_layer, T), 1 backward
    >>> exact = get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)     # (n_layer, T), exact

Exact where the metric is linear in the patched activation (on the path from it to the output). It is wrong where
the model is far from linear between the two runs: a saturated softmax (an attention head that switches from one
source to another has a near-zero gradient at either end, so attribution misses the switch), the LayerNorms (a
patch that changes the residual stream's norm rescales everything after it), and a metric that saturates
(log-probabilities near 0). docs/inspection.md shows how far off it is on the induction model.
"""

from __future__ import annotations

from typing import Callable

import torch

from mingpt.interp.hook_points import get_act_name
from mingpt.utils import eval_mode

__all__ = ["attribution_patch", "get_attr_patch_resid_pre", "get_attr_patch_resid_mid", "get_attr_patch_attn_out",
           "get_attr_patch_mlp_out", "get_attr_patch_attn_head_out_all_pos", "get_attr_patch_attn_head_out_by_pos"]

Metric = Callable[[torch.Tensor], torch.Tensor]


def attribution_patch(model, corrupted_tokens: torch.Tensor, clean_cache, patching_metric: Metric,
                      names) -> tuple[float, dict[str, torch.Tensor]]:
    """
    One forward + backward pass of corrupted_tokens (B, T). Returns (the corrupted metric, {name: (clean -
    corrupted) * gradient}) for each hook name: the per-element terms, same shape as the activation, that the
    grids below sum over the axes a cell patches together (a cell's estimate is the corrupted metric plus the
    sum of its terms). patching_metric must return a scalar tensor differentiable in the logits.
    """
    names = list(names)
    for name in names:
        if name not in clean_cache:
            raise KeyError(f"clean_cache has no {name!r}; record it: model.run_with_cache(clean_tokens) with "
                           f"names_filter=None (all) or including it")
    corrupted, activations, unembedded = {}, {}, []

    def graph_input(x: torch.Tensor, hook) -> torch.Tensor:
        # A frozen model's embeddings need no gradient: the graph starts here, so that one reaches every point.
        return x if x.requires_grad else x.detach().requires_grad_(True)

    def keep(x: torch.Tensor, hook) -> None:  # the tensor the rest of the pass reads: its gradient is the point's
        activations[hook.name] = x

    forward = [("hook_embed", graph_input), ("hook_pos_embed", graph_input)] + [(name, keep) for name in names]
    # What lm_head reads (the final norm's output), seen by a PyTorch pre-hook: no hook point is that tensor on
    # every model (an RMSNorm's hook_normalized is taken before its gain, as in TL).
    reading = model.lm_head.register_forward_pre_hook(lambda module, args: unembedded.append(args[0]))
    try:
        with eval_mode(model), torch.enable_grad(), model.hooks(forward, names_filter=names, cache=corrupted):
            logits, _ = model(corrupted_tokens)
            value = patching_metric(logits)
    finally:
        reading.remove()
    if not (isinstance(value, torch.Tensor) and value.numel() == 1 and value.requires_grad):
        raise TypeError(f"patching_metric must return a scalar tensor computed from the logits (so that it has a "
                        f"gradient), got {value!r}")
    # The gradient at every named point, by autograd.grad (not .backward(): the weights' .grad stay untouched),
    # which runs the backward pass only as far down as the earliest of them. In two steps, to skip the pass's
    # largest matmul where it multiplies zeros: a metric usually reads the logits of a few positions (the last,
    # say), but lm_head's backward would multiply the whole (B, T, V) gradient by the (V, C) unembedding. So first
    # the metric's gradient at the logits, then lm_head's backward for the positions that have one, and on from
    # there: the same gradients, in less time (bench/attribution.py).
    (logits_grad,) = torch.autograd.grad(value.reshape(()), logits)
    logits_grad = logits_grad.flatten(0, -2)  # (B * T, V)
    rows = logits_grad.any(dim=-1)  # (B * T,): the positions whose logits the metric reads (a nonzero gradient)
    final = unembedded[-1].flatten(0, -2)[rows]  # what lm_head read there, still in the graph
    if type(model.lm_head) is torch.nn.Linear:  # GPT-2's: d metric / d input = d metric / d output @ W
        final_grad = logits_grad[rows] @ model.lm_head.weight.detach()
    else:  # any other head (soft-capped logits...): run it again on those rows, and back through it
        final, final_grad = model.lm_head(final), logits_grad[rows]
    found = [name for name in names if name in activations]
    grads = dict(zip(found, torch.autograd.grad(final, [activations[name] for name in found], final_grad,
                                                allow_unused=True)))
    terms = {}
    for name in names:
        clean = clean_cache[name]
        if clean.shape != corrupted[name].shape:
            raise ValueError(f"clean_cache[{name!r}] has shape {tuple(clean.shape)} but the corrupted run's is "
                             f"{tuple(corrupted[name].shape)}: clean and corrupted tokens must have the same (B, T)")
        # No gradient arrives where the metric does not depend on the activation: its first-order effect is zero.
        grad = grads.get(name)
        grad = torch.zeros_like(corrupted[name]) if grad is None else grad
        terms[name] = (clean.to(grad.dtype) - corrupted[name]) * grad
    return float(value.detach()), terms


def _estimate(model, corrupted_tokens, clean_cache, patching_metric, short_name: str, keep) -> torch.Tensor:
    """Per layer, the corrupted metric plus the attribution terms summed over all axes but those `keep` names
    (axes of the (B, ...) activation); stacked over layers: (n_layer, *kept axes)."""
    names = [get_act_name(short_name, layer) for layer in range(model.config.n_layer)]
    base, terms = attribution_patch(model, corrupted_tokens, clean_cache, patching_metric, names)
    grids = []
    for name in names:
        term = terms[name]
        drop = [d for d in range(term.dim()) if d not in keep]
        grids.append(term.sum(dim=drop) if drop else term)
    return base + torch.stack(grids).float()


def get_attr_patch_resid_pre(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_resid_pre: the residual stream entering each block at each position, (n_layer, T)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", keep=(1,))


def get_attr_patch_resid_mid(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_resid_mid: the stream between attention and MLP, (n_layer, T)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "resid_mid", keep=(1,))


def get_attr_patch_attn_out(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_attn_out: each attention sublayer's output at each position, (n_layer, T)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "attn_out", keep=(1,))


def get_attr_patch_mlp_out(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_mlp_out: each MLP sublayer's output at each position, (n_layer, T)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "mlp_out", keep=(1,))


def get_attr_patch_attn_head_out_all_pos(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_attn_head_out_all_pos: each head's output (hook_z), all positions, (n_layer, nh)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "z", keep=(2,))


def get_attr_patch_attn_head_out_by_pos(model, corrupted_tokens, clean_cache, patching_metric) -> torch.Tensor:
    """Estimate of get_act_patch_attn_head_out_by_pos: each head's output at each position, (n_layer, T, nh)."""
    return _estimate(model, corrupted_tokens, clean_cache, patching_metric, "z", keep=(1, 2))
