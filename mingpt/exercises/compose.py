"""
Two mistakes at once: a student's code often has two small slips (no scaling *and* no output projection, an
unbiased variance *and* eps outside the root). No table of single mistakes explains such an output, so a checker
would only say "not recognised", although it knows both slips.

The one idea: most of a checker's variants are its reference computation with one keyword argument changed (a
"knob": ``unbiased=True``, ``project=False``). Two variants whose knobs touch different arguments can be applied
together: the reference called with both knobs. `pairs` builds every such combination from the checker's own
table; the checker tries them after every single mistake, and names a pair (both mistakes) only when the pair
reproduces the student's output on every tested input, the rule that keeps every name honest (compare.py).

    from mingpt.exercises.compose import knob, pairs
    base = lambda x, **k: my_reference(x, **k)
    singles = [knob(base, "unbiased variance", dict(unbiased=True), "why", "hint"), ...]
    variants = singles + pairs(base, singles)     # singles first: one mistake is the likelier explanation
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

from mingpt.exercises.checking import Variant

__all__ = ["knob", "pairs"]


def knob(base: Callable[..., Any], property: str, knobs: dict, explanation: str, hint: str) -> Variant:
    """The variant base(*case, **knobs): one mistake, described by the reference's keyword arguments."""
    return Variant(property, lambda *case: base(*case, **knobs), explanation, hint, knobs=dict(knobs))


def pairs(base: Callable[..., Any], variants: Sequence[Variant],
          combine: Callable[[Variant, Variant, Callable], Variant] | None = None) -> list[Variant]:
    """Every two knob variants that change different arguments, applied together (singles without knobs, or two
    values of one argument, cannot combine). combine(a, b, compute) makes the pair's Variant; by default it is
    named "A, and B", and the explanation and the hint carry both."""
    combine = combine or _named_together
    out, seen = [], set()
    for a, b in itertools.combinations([v for v in variants if v.knobs], 2):
        if set(a.knobs) & set(b.knobs) or a.property == b.property:
            continue
        both = {**a.knobs, **b.knobs}
        key = tuple(sorted((k, repr(v)) for k, v in both.items()))
        if key in seen:  # one combination reachable from two pairs of rows: tried once
            continue
        seen.add(key)
        pair = combine(a, b, (lambda kw: lambda *case: base(*case, **kw))(both))
        pair.knobs = both
        out.append(pair)
    return out


def _named_together(a: Variant, b: Variant, compute: Callable) -> Variant:
    return Variant(f"{a.property}, and {b.property}", compute, f"Two mistakes at once. {a.explanation} And: "
                   f"{b.explanation}", f"{a.hint}; {b.hint}")
