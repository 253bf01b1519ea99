"""
More rows of the sampling checker's table (sampling.py runs them): mistakes in *where* the numbers go, not in the
formula. A threshold taken over the flattened batch, or from one row for all, mixes the rows; a distribution
computed on sorted logits and never put back is right as a set of numbers but sits at the wrong token ids; a top-p
mask built in sorted order and applied to the unsorted logits masks the wrong tokens (here with the crossing token
dropped as well, a second slip students make in the same few lines).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.sampling_edges import reference
from mingpt.generation import filter_logits

__all__ = ["ORDER_MISTAKES"]


def _top_k_flattened(lg, t, k, p):
    """top-k with one threshold: the k-th largest of all B * V logits (topk of logits.flatten())."""
    x = lg / t
    if k is not None:
        x = x.masked_fill(x < torch.topk(x.flatten(), k).values[-1], float("-inf"))
    return F.softmax(filter_logits(x, None, p), dim=-1)


def _top_k_one_row(row):
    """top-k with one row's k-th largest logit (values[row, -1], a scalar) as every row's threshold: right at B = 1."""
    def compute(lg, t, k, p):
        x = lg / t
        if k is not None:
            x = x.masked_fill(x < torch.topk(x, k, dim=-1).values[row, -1], float("-inf"))
        return F.softmax(filter_logits(x, None, p), dim=-1)
    return compute


def _sorted_sliced(lg, t, k, p):
    """The distribution of the logits sorted (descending) and never put back; top-k as a slice of the sorted row,
    x[:, k:] = -inf, which keeps exactly k tokens even when others tie with the k-th."""
    x = (lg / t).sort(dim=-1, descending=True).values
    if k is not None:
        x[:, k:] = float("-inf")
    return F.softmax(filter_logits(x, None, p), dim=-1)


def _unsorted_mask_crossing_dropped(lg, t, k, p):
    """top-p's mask from the sorted logits applied to the unsorted ones, and built with running sum > p, so that
    the token crossing p goes too (the first sorted position always kept)."""
    x = filter_logits(lg / t, k, None)
    if p is not None:
        s = x.sort(dim=-1, descending=True).values
        drop = (s.softmax(-1).cumsum(-1) > p) & (torch.arange(s.shape[-1]) > 0)
        x = x.masked_fill(drop, float("-inf"))
    return F.softmax(x, dim=-1)


SORTED = ("probabilities returned in sorted order (not at their tokens' ids)", "Your numbers are the right "
          "probabilities sorted from the most to the least likely: the logits were sorted (for top-k or top-p) and "
          "the result never put back, so position j holds the j-th most likely token's probability, not token j's.",
          "filter with a mask in vocabulary order (scatter the sorted decision back with the sort's indices)")

ORDER_MISTAKES = [  # (name, f(logits, temperature, top_k, top_p), explanation, hint), as in sampling.py's table
    ("top-k's k-th value taken over the flattened batch (one threshold for every row)", _top_k_flattened,
     "torch.topk(logits.flatten(), k) ranks all B * V logits together: its k-th value is one threshold for every "
     "row, so a row of small logits keeps fewer than k tokens (or none) and a row of large ones more.",
     "kth = torch.topk(logits, k, dim=-1).values[:, -1:], one per row"),
    *[(f"top-k's k-th value taken from the {which} row only (values[{row}, -1]): one threshold for every row",
       _top_k_one_row(row), f"Each row is its own distribution with its own k-th largest logit; yours compares every "
       f"row with the {which} row's (a scalar index where a slice [:, -1:] is needed), so the other rows keep more "
       "or fewer than k tokens. Right only when B = 1.", "kth = torch.topk(logits, k, dim=-1).values[:, -1:], one per "
       "row") for row, which in ((0, "first"), (-1, "last"))],
    (SORTED[0], lambda lg, t, k, p: reference(lg.sort(dim=-1, descending=True).values, t, k, p), *SORTED[1:]),
    (SORTED[0], _sorted_sliced, *SORTED[1:]),
    ("two mistakes: top-p's decision left in sorted order (not scattered back); and top-p drops the token that "
     "crosses p", _unsorted_mask_crossing_dropped, "The drop mask is computed on the sorted logits, so position j of "
     "it is about the j-th most likely token, not token j: it must be scattered back before masking. And: the kept "
     "set must reach a mass of at least p, so the token whose probability carries the running sum past p stays.",
     "remove.scatter(-1, sorted_indices, remove); and drop a token when the mass *above* it is >= p"),
]
