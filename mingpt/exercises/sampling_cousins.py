"""
Cousins of the sampling checker's textbook mistakes (sampling.py runs them): the same slip with another constant.

The one idea: "removed logits set to 0 instead of -inf" has cousins with any finite value (-10, -100, -1e4 is
already harmless in float32, -5 is not), and a cousin with a constant the table does not list would go unnamed. The
constant can be read back from the student's own output: for a removed token i and a kept token j of one row,
softmax gives log p_i - log p_j = c - x_j, so c = log p_i - log p_j + x_j. The rebuilt mistake with that c (in the
top-k filter, the top-p filter or both) is then a variant like any other: named only when it reproduces *every*
output. The top-p boundary has a cousin too: the reference keeps the token that crosses p; keeping the token after
it as well (a shift by two, or `above - probs >= p`) is one token too many, not "the crossing token dropped".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import Variant
from mingpt.exercises.sampling_edges import reference
from mingpt.generation import filter_logits

__all__ = ["COUSIN_MISTAKES", "fitted_fill_variants"]


def _top_p_drop(x, p):
    """The reference's top-p decision on logits x (B, V), in vocabulary order: the mass above a token reaches p."""
    s, order = x.sort(dim=-1, descending=True)
    probs = s.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return drop.scatter(-1, order, drop)


def _filled(lg, t, k, p, k_fill, p_fill):
    """The reference with top-k's removed logits set to k_fill and top-p's to p_fill (-inf: the reference's)."""
    x = lg / t
    if k is not None and k < x.size(-1):
        x = x.masked_fill(x < torch.topk(x, k, dim=-1).values[:, -1:], k_fill)
    if p is not None and p < 1.0:
        x = x.masked_fill(_top_p_drop(x, p), p_fill)
    return F.softmax(x, dim=-1)


def _one_past_crossing(lg, t, k, p):
    """top-p that keeps the crossing token *and* the one after it: a token goes when the mass above the token
    before it reaches p (the reference's decision shifted one place towards the unlikely tokens)."""
    x = filter_logits(lg / t, k, None)
    if p is not None and p < 1.0:
        s, order = x.sort(dim=-1, descending=True)
        probs = s.softmax(-1)
        drop = probs.cumsum(-1) - probs >= p
        drop = torch.cat([torch.zeros_like(drop[:, :1]), drop[:, :-1]], dim=-1)
        x = x.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return F.softmax(x, dim=-1)


COUSIN_MISTAKES = [  # (name, f(logits, temperature, top_k, top_p), explanation, hint), as sampling.py's table
    ("top-p keeps one token past the one that crosses p (the nucleus one token too large)", _one_past_crossing,
     "The nucleus is the smallest set of most likely tokens whose mass reaches p: the token that carries the running "
     "sum past p is the last one kept. Yours keeps the next one too: the drop decision is shifted one place too far "
     "(or compares the mass above the *previous* token with p).", "drop a token when the mass of the tokens above "
     "it is >= p (cumsum - probs >= p), shifted no further"),
]


def fitted_fill_variants(cases, outputs) -> list[Variant]:
    """'removed logits set to c instead of -inf' for the c read from the first output that has a removed token with
    a non-zero probability, in the top-k filter, the top-p filter or both; [] when no output shows one."""
    c = _read_fill(cases, outputs)
    if c is None or c == 0:  # 0: the table's own row ("removed logits set to 0 instead of -inf") names it
        return []
    shown = f"{c:g}"
    out = []
    for where, ck, cp in (("both filters", c, c), ("the top-k filter", c, float("-inf")),
                          ("the top-p filter", float("-inf"), c)):
        out.append(Variant(
            f"removed logits set to {shown} instead of -inf (in {where})",
            (lambda ck, cp: lambda lg, t, k, p: _filled(lg, t, k, p, ck, cp))(ck, cp),
            f"A removed token must get probability exactly 0, which only a logit of -inf gives; yours sets it to "
            f"{shown}, an ordinary (if small) score, so e^{shown} / sum of the removed tokens can still be sampled.",
            "masked_fill(..., float('-inf'))"))
    return out


def _read_fill(cases, outputs) -> float | None:
    """c = log p_i - log p_j + x_j for the first row with a removed token i (the reference gives it 0) that has a
    non-zero probability and a kept token j; rounded to a whole number or one decimal when that is within 1e-3."""
    for (lg, t, k, p), out in zip(cases, outputs):
        if not isinstance(out, torch.Tensor) or out.shape != lg.shape or not out.is_floating_point():
            continue
        want = reference(lg, t, k, p)
        for b in range(lg.size(0)):
            removed = ((want[b] == 0) & (out[b] > 0)).nonzero()
            kept = ((want[b] > 0) & (out[b] > 0)).nonzero()  # a token both keep: log p_j is finite
            if len(removed) and len(kept):
                i, j = int(removed[0]), int(kept[0])
                c = math.log(out[b, i].item()) - math.log(out[b, j].item()) + (lg[b, j] / t).item()
                if not math.isfinite(c):
                    return None
                for nice in (round(c), round(c, 1)):
                    if abs(nice - c) < 1e-3:
                        return float(nice)
                return c
    return None
