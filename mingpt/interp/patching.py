"""
Activation patching: which activations carry the information that makes a clean prompt's answer differ from a
corrupted one's? TransformerLens' functions, names, signatures and axis order, computed faster and exactly.

The one idea: run the *corrupted* prompt, but overwrite one activation (a layer's residual stream at one
position, one head's output...) with its value from the *clean* run, and measure how far the output moves back
towards the clean answer. Each such overwrite is a *cell*; a sweep fills a (layer, position) or (layer, head) grid.

    >>> _, clean_cache = model.run_with_cache(clean_tokens)
    >>> metric = lambda logits: logits[0, -1, answer] - logits[0, -1, wrong]
    >>> grid = get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)   # (n_layer, T)

TL runs one full forward pass per cell. The same numbers cost much less, because a patch at layer l, position
p changes nothing before it:
  - *positions before p* are the corrupted run's (causality): their keys and values are reused from the
    corrupted run, as a KV cache, and only positions p.. are recomputed. p is the first position where the
    patched activation differs from the corrupted one, and not before the first position where the tokens
    differ (up to there both runs compute the same function of the same tokens). A cell that changes nothing
    is not run at all: its value is the corrupted metric;
  - *layers before l* are the corrupted run's: a cell's row joins the batch at block l, from the corrupted
    residual stream there;
  - cells that share p run together as one batch (chunked to ``max_tokens`` rows x positions, to bound memory).
The results equal the one-pass-per-cell loop (``method="loop"``, kept as the reference) to float rounding.

Hooks active around the call (``with model.hooks(fwd_hooks=...)``: noise on the embeddings for causal tracing, a
head ablated, an edit at one position) define the corrupted run, as in TL. The batched pass cannot honour them
exactly (it starts rows at block l and position p, and stacks cells along the batch, so a hook would see other
shapes and positions), so when any hook point has something attached at call time the sweep runs the loop.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from mingpt.interp.activation_cache import ActivationCache
from mingpt.interp.hook_points import get_act_name
from mingpt.interp.hooks import attached_hook_names, hooks
from mingpt.interp.prefix_cache import PrefixCache, StoredKeysValues
from mingpt.utils import check_int, eval_mode

__all__ = ["get_act_patch_resid_pre", "get_act_patch_resid_mid", "get_act_patch_attn_out", "get_act_patch_mlp_out",
           "get_act_patch_attn_head_out_all_pos", "get_act_patch_attn_head_q_all_pos",
           "get_act_patch_attn_head_k_all_pos", "get_act_patch_attn_head_v_all_pos",
           "get_act_patch_attn_head_out_by_pos", "get_act_patch_attn_head_q_by_pos", "get_act_patch_attn_head_k_by_pos",
           "get_act_patch_attn_head_v_by_pos", "get_act_patch_attn_head_pattern_all_pos",
           "get_act_patch_attn_head_pattern_by_pos", "get_act_patch_attn_head_pattern_dest_src_pos",
           "get_act_patch_block_every", "get_act_patch_attn_head_all_pos_every", "get_act_patch_attn_head_by_pos_every",
           "generic_activation_patch"]

logger = logging.getLogger(__name__)
Metric = Callable[[torch.Tensor], "torch.Tensor | float"]


@dataclass
class _Cell:
    index: tuple  # where its metric goes in the result grid
    layer: int
    name: str  # the hook point it patches
    region: tuple  # the index into the (B, ...) activation that takes the clean run's values
    start: int  # first position the patch changes; -1: it changes nothing

    def patched(self, clean_cache, corrupted) -> torch.Tensor:
        """The corrupted run's activation with this cell's region from the clean run (made when needed: memory)."""
        value = corrupted[self.name].clone()
        value[self.region] = clean_cache[self.name][self.region].to(value.dtype)
        return value


def _pos_dim(name: str) -> int:
    return 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1  # (B, nh, T_q, T_k) vs (B, T, ...)


def generic_activation_patch(model, corrupted_tokens: torch.Tensor, clean_cache, patching_metric: Metric,
                             site: str, grid: tuple[int, ...], region: Callable[[tuple], tuple], *,
                             method: str = "batched", max_tokens: int = 4096, progress: bool | None = None):
    """
    Patch every cell of a grid (its first axis is the layer): for grid index i, the activation ``site`` at layer
    i[0] takes the clean value on ``region(i)`` (an index into the (B, ...) activation). Returns a grid of
    patching_metric(patched logits). method: 'batched' (default) or 'loop' (TL's one forward per cell); with hooks
    attached around the call, batched runs the loop (see the top of this file).
    """
    if method not in ("batched", "loop"):
        raise ValueError(f"method must be 'batched' or 'loop', got {method!r}")
    attached = attached_hook_names(model)
    if method == "batched" and attached:
        logger.info("patching %s: hooks are attached at %s, so each cell runs its own forward pass", site, attached)
        method = "loop"
    check_int(max_tokens, "max_tokens", low=1)
    names = sorted({get_act_name(site, layer) for layer in range(model.config.n_layer)})
    for name in names:
        if name not in clean_cache:
            raise KeyError(f"clean_cache has no {name!r}; record it: model.run_with_cache(clean_tokens) with "
                           f"names_filter=None (all) or including it")
    n_layer = model.config.n_layer
    keep = set(names) | {"hook_embed"} | {get_act_name("resid_pre", i) for i in range(n_layer)}
    # The corrupted run, recording the activations the sweep reads and, in a KV cache, the keys and values as the
    # attention stores them (rotated, normalised...: what a patched run's positions p.. attend to before p).
    stored, store = StoredKeysValues(n_layer), {}
    with torch.no_grad(), eval_mode(model):
        with hooks(model, names_filter=lambda n: n in keep, cache=store):
            logits, _ = model(corrupted_tokens, kv_cache=stored)
        corrupted = ActivationCache(store, model)
        base = _scalar(patching_metric(logits))
        same_prefix = _same_token_prefix(clean_cache, corrupted)
        cells = []
        for index in itertools.product(*(range(n) for n in grid)):
            name = get_act_name(site, index[0])
            clean, bad = clean_cache[name], corrupted[name]
            if clean.shape != bad.shape:
                raise ValueError(f"clean_cache[{name!r}] has shape {tuple(clean.shape)} but the corrupted run's is "
                                 f"{tuple(bad.shape)}: clean and corrupted tokens must have the same (B, T)")
            changed = torch.zeros_like(clean, dtype=torch.bool)
            changed[region(index)] = clean[region(index)] != bad[region(index)]
            changed = changed.movedim(_pos_dim(name), 0).flatten(1).any(1)  # (T,): positions the patch changes
            changed[:same_prefix] = False  # causality: both runs compute the same values there, up to rounding
            changed = changed.nonzero()
            cells.append(_Cell(index, index[0], name, region(index), int(changed[0]) if len(changed) else -1))
        result = torch.full(grid, base)
        if method == "loop":
            for cell in _progress(cells, progress, f"patching {site}"):
                result[cell.index] = _scalar(patching_metric(_loop_one(model, corrupted_tokens, clean_cache, cell)))
            return result
        todo = sorted((c for c in cells if c.start >= 0), key=lambda c: (c.start, c.layer))
        logger.info("patching %s: %d cells, %d change something", site, len(cells), len(todo))
        B, T = corrupted_tokens.shape
        chunks = []
        for start, group in itertools.groupby(todo, key=lambda c: c.start):
            group = list(group)
            size = max(1, max_tokens // (B * (T - start)))
            chunks += [group[i:i + size] for i in range(0, len(group), size)]
        for chunk in _progress(chunks, progress, f"patching {site}"):
            for cell, cell_logits in zip(chunk, _run_chunk(model, chunk, clean_cache, corrupted, stored, logits, site,
                                                           B)):
                result[cell.index] = _scalar(patching_metric(cell_logits))
    return result


def _loop_one(model, corrupted_tokens, clean_cache, cell: _Cell) -> torch.Tensor:
    """TL's way, the reference: one full forward pass of the corrupted tokens with the cell's region patched."""
    def patch(act, hook):
        act = act.clone()
        act[cell.region] = clean_cache[cell.name][cell.region].to(act.dtype)
        return act

    return model.run_with_hooks(corrupted_tokens, [(cell.name, patch)])


def _same_token_prefix(clean_cache, corrupted) -> int:
    """How many leading positions hold the same tokens in every row of both runs (their embeddings are equal)."""
    if "hook_embed" not in clean_cache or clean_cache["hook_embed"].shape != corrupted["hook_embed"].shape:
        return 0
    differs = (clean_cache["hook_embed"] != corrupted["hook_embed"]).any(-1).any(0).nonzero()  # (T,) -> positions
    return int(differs[0]) if len(differs) else clean_cache["hook_embed"].size(1)


def _run_chunk(model, cells: list[_Cell], clean_cache, corrupted, stored, corrupted_logits: torch.Tensor,
               site: str, B: int):
    """
    The patched forward passes of cells sharing a start position p, as one batch: cell k owns rows k*B..(k+1)*B.
    Only positions p.. are computed (earlier keys/values come from the corrupted run), and a cell's rows join at
    its own layer (cells are sorted by layer, so the rows computed at block j are always a prefix of the batch).
    Yields each cell's full (B, T, V) logits.
    """
    p = cells[0].start
    dim = _pos_dim(cells[0].name)
    patched = []  # each cell's patched activation, positions p.. only
    for cell in cells:
        value = cell.patched(clean_cache, corrupted)
        patched.append(value.narrow(dim, p, value.size(dim) - p))

    def patch_rows(act, hook):
        act = act.clone()
        for k, cell in enumerate(cells):
            if cell.name == hook.name:
                act[k * B:(k + 1) * B] = patched[k]
        return act

    in_block = site != "resid_pre"  # resid_pre is patched by starting the row from the patched value
    fwd_hooks = [(name, patch_rows) for name in {c.name for c in cells}] if in_block else []
    x = corrupted["resid_pre", 0][:0, p:]  # (0, T - p, C): no rows yet
    with hooks(model, fwd_hooks):
        for j, block in enumerate(model.transformer.h):
            joining = [k for k, cell in enumerate(cells) if cell.layer == j]
            if joining:
                start = [patched[k] if not in_block else corrupted["resid_pre", j][:, p:] for k in joining]
                x = torch.cat([x] + start)
            if x.size(0) == 0:
                continue
            # the attached patch_rows hooks run inside, at their hook points
            x = block(x, PrefixCache(stored, p, copies=x.size(0) // B))
    logits = model.lm_head(model.transformer.ln_f(x))  # (len(cells) * B, T - p, V)
    for k in range(len(cells)):
        yield torch.cat([corrupted_logits[:, :p], logits[k * B:(k + 1) * B]], dim=1)


def _scalar(value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"patching_metric must return a scalar, got a tensor of shape {tuple(value.shape)}")
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"patching_metric must return a scalar tensor or number, got {value!r}") from error


def _progress(items: list, progress: bool | None, description: str):
    """A tqdm bar for long sweeps (more than 50 forward passes) unless progress=False; progress=True forces it."""
    if progress is False or (progress is None and len(items) <= 50):
        return items
    return tqdm(items, desc=description, unit="pass")


# ------------------------------------------------------------------ TransformerLens' functions
def _patch_each_layer_and_position(model, corrupted_tokens, clean_cache, patching_metric, act, **kwargs):
    """The (n_layer, T) sweep shared by the residual-stream and sublayer-output patches: cell (layer, position)
    patches activation `act` of that layer at that position, for every example in the batch."""
    shape = (model.config.n_layer, corrupted_tokens.size(1))
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, act, shape,
                                    lambda i: (slice(None), i[1]), **kwargs)


def get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> torch.Tensor:
    """Patch the residual stream entering each block at each position: (n_layer, T)."""
    return _patch_each_layer_and_position(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", **kwargs)


def get_act_patch_resid_mid(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> torch.Tensor:
    """Patch the residual stream between each block's attention and MLP, at each position: (n_layer, T)."""
    return _patch_each_layer_and_position(model, corrupted_tokens, clean_cache, patching_metric, "resid_mid", **kwargs)


def get_act_patch_attn_out(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> torch.Tensor:
    """Patch each attention sublayer's output at each position: (n_layer, T)."""
    return _patch_each_layer_and_position(model, corrupted_tokens, clean_cache, patching_metric, "attn_out", **kwargs)


def get_act_patch_mlp_out(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> torch.Tensor:
    """Patch each MLP sublayer's output at each position: (n_layer, T)."""
    return _patch_each_layer_and_position(model, corrupted_tokens, clean_cache, patching_metric, "mlp_out", **kwargs)


def _n_heads(model, clean_cache, act: str) -> int:
    """The heads act has: n_head, but a grouped-query model's keys and values have its n_kv_head K/V heads."""
    name = get_act_name(act, 0)
    return clean_cache[name].size(2) if name in clean_cache else model.config.n_head


def _each_head(model, corrupted_tokens, clean_cache, patching_metric, act, **kwargs) -> torch.Tensor:
    """(n_layer, heads): cell (layer, head) patches that head's act (q, k, v or z) at every position."""
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, act,
                                    (model.config.n_layer, _n_heads(model, clean_cache, act)),
                                    lambda i: (slice(None), slice(None), i[1]), **kwargs)


def _each_position_and_head(model, corrupted_tokens, clean_cache, patching_metric, act, **kwargs) -> torch.Tensor:
    """(n_layer, T, heads): cell (layer, position, head) patches that head's act (q, k, v or z) there."""
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, act,
                                    (model.config.n_layer, corrupted_tokens.size(1), _n_heads(model, clean_cache, act)),
                                    lambda i: (slice(None), i[1], i[2]), **kwargs)


def get_act_patch_attn_head_out_all_pos(model, corrupted_tokens, clean_cache, patching_metric,
                                        **kwargs) -> torch.Tensor:
    """Patch each head's output (hook_z) at every position at once: (n_layer, n_head)."""
    return _each_head(model, corrupted_tokens, clean_cache, patching_metric, "z", **kwargs)


def get_act_patch_attn_head_q_all_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's queries (hook_q) at every position at once: (n_layer, n_head)."""
    return _each_head(model, corrupted_tokens, clean_cache, patching_metric, "q", **kwargs)


def get_act_patch_attn_head_k_all_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's keys (hook_k) at every position at once: (n_layer, n_head), n_kv_head with GQA."""
    return _each_head(model, corrupted_tokens, clean_cache, patching_metric, "k", **kwargs)


def get_act_patch_attn_head_v_all_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's values (hook_v) at every position at once: (n_layer, n_head), n_kv_head with GQA."""
    return _each_head(model, corrupted_tokens, clean_cache, patching_metric, "v", **kwargs)


def get_act_patch_attn_head_out_by_pos(model, corrupted_tokens, clean_cache, patching_metric,
                                       **kwargs) -> torch.Tensor:
    """Patch each head's output (hook_z) at each position: (n_layer, T, n_head)."""
    return _each_position_and_head(model, corrupted_tokens, clean_cache, patching_metric, "z", **kwargs)


def get_act_patch_attn_head_q_by_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's query (hook_q) at each position: (n_layer, T, n_head)."""
    return _each_position_and_head(model, corrupted_tokens, clean_cache, patching_metric, "q", **kwargs)


def get_act_patch_attn_head_k_by_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's key (hook_k) at each position: (n_layer, T, n_head), n_kv_head with GQA."""
    return _each_position_and_head(model, corrupted_tokens, clean_cache, patching_metric, "k", **kwargs)


def get_act_patch_attn_head_v_by_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's value (hook_v) at each position: (n_layer, T, n_head), n_kv_head with GQA."""
    return _each_position_and_head(model, corrupted_tokens, clean_cache, patching_metric, "v", **kwargs)


def get_act_patch_attn_head_pattern_all_pos(model, corrupted_tokens, clean_cache, patching_metric,
                                            **kwargs) -> torch.Tensor:
    """Patch each head's attention pattern (all query positions): (n_layer, n_head)."""
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, "pattern",
                                    (model.config.n_layer, model.config.n_head),
                                    lambda i: (slice(None), i[1]), **kwargs)


def get_act_patch_attn_head_pattern_by_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's attention pattern row of each query (destination) position: (n_layer, n_head, T)."""
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, "pattern",
                                    (model.config.n_layer, model.config.n_head, corrupted_tokens.size(1)),
                                    lambda i: (slice(None), i[1], i[2]), **kwargs)


def get_act_patch_attn_head_pattern_dest_src_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
    """Patch each head's attention weight from each destination to each source position: (n_layer, n_head, T, T).
    Weights to later sources are 0 in both runs (causality), so those cells cost nothing: the corrupted metric."""
    T = corrupted_tokens.size(1)
    return generic_activation_patch(model, corrupted_tokens, clean_cache, patching_metric, "pattern",
                                    (model.config.n_layer, model.config.n_head, T, T),
                                    lambda i: (slice(None), i[1], i[2], i[3]), **kwargs)


# TL's "every" sweeps: several of the above stacked along a new first axis, in TL's order.
def get_act_patch_block_every(model, corrupted_tokens, clean_cache, metric, **kwargs) -> torch.Tensor:
    """resid_pre, attn_out and mlp_out at each layer and position: (3, n_layer, T)."""
    return torch.stack([f(model, corrupted_tokens, clean_cache, metric, **kwargs) for f in (
        get_act_patch_resid_pre, get_act_patch_attn_out, get_act_patch_mlp_out)])


def _one_key_per_query_head(model, clean_cache, what: str) -> None:
    """The "every" sweeps stack q, k and v grids, which have the same heads only without grouped-query attention."""
    kv_heads = _n_heads(model, clean_cache, "k")
    if kv_heads != model.config.n_head:
        raise ValueError(f"{what} stacks grids of q, k and v heads, but this model's attention is grouped: "
                         f"{model.config.n_head} query heads share {kv_heads} key/value heads, so the grids differ "
                         f"in size; call the per-activation functions instead (get_act_patch_attn_head_k_..., "
                         f"with one cell per key/value head)")


def get_act_patch_attn_head_all_pos_every(model, corrupted_tokens, clean_cache, metric, **kwargs) -> torch.Tensor:
    """Each head's output, q, k, v and pattern, at all positions at once: (5, n_layer, n_head)."""
    _one_key_per_query_head(model, clean_cache, "get_act_patch_attn_head_all_pos_every")
    return torch.stack([f(model, corrupted_tokens, clean_cache, metric, **kwargs) for f in (
        get_act_patch_attn_head_out_all_pos, get_act_patch_attn_head_q_all_pos, get_act_patch_attn_head_k_all_pos,
        get_act_patch_attn_head_v_all_pos, get_act_patch_attn_head_pattern_all_pos)])


def get_act_patch_attn_head_by_pos_every(model, corrupted_tokens, clean_cache, metric, **kwargs) -> torch.Tensor:
    """Each head's output, q, k, v and pattern at each position: (5, n_layer, T, n_head) (pattern by query
    position, moved from its (n_layer, n_head, T) to that order, as TL does)."""
    _one_key_per_query_head(model, clean_cache, "get_act_patch_attn_head_by_pos_every")
    grids = [f(model, corrupted_tokens, clean_cache, metric, **kwargs) for f in (
        get_act_patch_attn_head_out_by_pos, get_act_patch_attn_head_q_by_pos, get_act_patch_attn_head_k_by_pos,
        get_act_patch_attn_head_v_by_pos)]
    pattern = get_act_patch_attn_head_pattern_by_pos(model, corrupted_tokens, clean_cache, metric, **kwargs)
    return torch.stack(grids + [pattern.transpose(1, 2)])
