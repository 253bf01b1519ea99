"""
A slip confined to some groups of the GRPO advantages (advantages.py): a loop over the prompts that skips some of
them leaves those rows as they were before the loop, the raw rewards (out = rewards.clone()) or zeros
(torch.zeros_like). Named only when every row of every tested output is either the reference's row or that
untouched row, and the rows left untouched follow one pattern (the last, the first, all but the first).
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, fail
from mingpt.exercises.compare import same

__all__ = ["groups_left"]

_PATTERNS = (  # (rows untouched, given P; the name's words; the loop that does it)
    (lambda P: {P - 1}, "the last group", "a loop over range(P - 1) stops one short"),
    (lambda P: {0}, "the first group", "a loop over range(1, P) starts one late"),
    (lambda P: set(range(1, P)), "every group but the first", "a loop that ends after its first group: a return "
     "or break inside it, or range(1)"),
)


def groups_left(exercise: str, cases, outputs, reference, tol: float) -> CheckResult | None:
    """The groups a loop never reached, named when every output is the reference's in the other rows and exactly
    the untouched rows (raw rewards, or zeros) in those; None otherwise."""
    for before, words in ((lambda r: r, "its raw rewards"), (torch.zeros_like, "zeros")):
        for rows_of, which, why in _PATTERNS:
            shown, exact = None, True
            for (r, s), o in zip(cases, outputs):
                if not (isinstance(o, torch.Tensor) and o.shape == r.shape):
                    exact = False
                    break
                ref, left = reference(r, s), before(r)
                rows = rows_of(r.size(0))
                for p in range(r.size(0)):
                    want = left[p] if p in rows else ref[p]
                    if not same(o[p], want, tol):
                        exact = False
                        break
                    if p in rows and shown is None and not same(o[p], ref[p], tol):
                        shown = (r, s, o, ref)
                if not exact:
                    break
            if exact and shown is not None:
                r, s, o, ref = shown
                return fail(exercise, f"{which} left as {words}: the advantages not computed there ({why}?)",
                            "Every group (row) of rewards gets its advantages; in yours some rows are exactly what "
                            f"they were before any computation ({words}), and every other row is right.",
                            f"rewards {r.tolist()}\nfunction(rewards, normalize_std={s})\nyours    "
                            f"{[[round(v, 4) for v in row] for row in o.tolist()]}\nexpected "
                            f"{[[round(v, 4) for v in row] for row in ref.tolist()]}",
                            "loop over every prompt, range(P), or no loop: (rewards - mean) / (std + eps) on the "
                            "whole (P, G) tensor")
    return None
