"""
The sampling checker's mistakes in one argument (sampling.py combines them with its table, two at a time): how the
temperature is applied (ignored, multiplied, twice, a constant), which k (off by one or more, ignored), which p
(ignored, a constant, or its complement 1 - p).

The one idea: many slips leave the formula right and feed it the wrong number. Rebuilding the reference with the
argument rewritten names them exactly, and alone or next to a slip in the formula.
"""

from __future__ import annotations

import torch

from mingpt.exercises.compare import Part

__all__ = ["ARGUMENT_MISTAKES"]


def _power(a):  # the temperature applied as T ** a: the logits divided by T ** (a - 1) before the usual / T
    return lambda lg, t, k, p: (lg / t ** (a - 1), t, k, p)


# Mistakes in one argument (how the temperature is applied, which k, which p): each one alone, and combined with
# every other mistake of the table (two at once), see compare.part_variants.
ARGUMENT_MISTAKES = [
    Part("temperature", _power(0), "temperature ignored", "The temperature must change the distribution: logits / "
         "temperature, sharper below 1 and flatter above.", "divide the logits by the temperature"),
    Part("temperature", _power(-1), "temperature multiplied instead of divided", "A temperature below 1 must make "
         "the distribution sharper; yours makes it flatter.", "logits / temperature"),
    Part("temperature", _power(2), "temperature applied twice", "Your distribution is the one for temperature T "
         "squared: the logits were divided by T twice.", "divide by the temperature once"),
    Part("temperature", _power(0.5), "temperature applied as its square root",
         "Your logits are divided by sqrt(T), not by T.", "logits / temperature"),
    Part("temperature", lambda lg, t, k, p: (torch.div(lg, t, rounding_mode="floor") * t, t, k, p),
         "temperature applied with floor division (logits // temperature)", "// is floor division: it rounds each "
         "scaled logit down to a whole number, so tokens whose logits differ by less than the temperature can tie.",
         "logits / temperature, one slash"),
] + [Part("temperature", lambda lg, t, k, p, a=a: (lg, 1.0 if (k, p)[a] is not None else t, k, p),
          f"temperature ignored when {name} is given (applied only without it)", f"Your distribution has the "
          f"temperature's effect when {name} is None, and none when it is given: the temperature sits in a branch "
          f"(an if/else) that only the unfiltered path runs.", "divide by the temperature first, before any "
          "filter, on every path") for a, name in ((0, "top_k"), (1, "top_p"))] + [
    Part("temperature", lambda lg, t, k, p, c=c: (lg, c, k, p), f"a fixed temperature, not the temperature argument "
          f"(your outputs match temperature = {c})", f"Your distribution is the one for temperature {c} whatever "
          f"temperature is passed: a constant, a default left in place of the argument, or a value kept from an "
          f"earlier call (state on the function).", "use this call's temperature argument")
     for c in (0.5, 2.0, 0.7, 0.8, 1.5, 0.9)] + [
    Part("top_k", lambda lg, t, k, p, d=d: (lg, t, k if k is None or k + d < 1 else k + d, p),
          f"top-k keeps {'one token' if abs(d) == 1 else f'{abs(d)} tokens'} too {'many' if d > 0 else 'few'}",
          "top_k = k must leave exactly k tokens with non-zero probability.", "compare with the k-th largest")
     for d in (1, -1, 2, -2, 3)] + [
    Part("top_k", lambda lg, t, k, p: (lg, t, None, p), "top-k ignored", "With top_k given, only the k most likely "
         "tokens may be sampled.", "apply the top-k filter when top_k is not None"),
    Part("top_p", lambda lg, t, k, p: (lg, t, k, None), "top-p ignored", "With top_p given, only the most likely "
         "tokens whose mass reaches p stay; yours keeps every token.", "apply the top-p filter when top_p is not None"),
    # HF's TopPLogitsWarper sorts ascending and drops the tail whose running sum is <= 1 - top_p: comparing with top_p
    # there (or with 1 - top_p in the descending sort) keeps the nucleus of mass 1 - p instead of p.
    Part("top_p", lambda lg, t, k, p: (lg, t, k, None if p is None else 1 - p), "top-p uses 1 - p (the tail's mass "
         "compared with p, or the nucleus with 1 - p)", "Your nucleus is the one for 1 - top_p: in an ascending sort "
         "the running sum is the mass of the unlikely tail, which must be compared with 1 - top_p (or, descending, the "
         "mass above each token with top_p).", "descending: drop a token when the mass above it is >= top_p; "
         "ascending (Hugging Face): drop while the running sum is <= 1 - top_p"),
] + [Part("top_p", lambda lg, t, k, p, f=f: (lg, t, k, None if p is None else p * f), f"top-p compared with "
          f"{name} (the threshold scaled by {f:g})", f"Your nucleus is the one for {name}: the running mass must be "
          f"compared with top_p itself.", "drop a token when the mass above it is >= top_p")
     for f, name in ((0.5, "p / 2"), (2.0, "2 p"))] + [
    Part("top_p", lambda lg, t, k, p, c=c: (lg, t, k, None if p is None else c),
          f"top-p uses a fixed p, not the top_p argument (your outputs match p = {c})", f"Your nucleus is the one for "
          f"p = {c} (or a value near it) whatever top_p is: a constant or a default left in place of the argument.",
          "use the top_p argument")  # the roundest values first: the name gives the first value that fits
     for c in (0.9, 0.5, 0.8, 0.95, 0.99, 0.7, 0.6, 0.75, 0.85, 0.3, 0.4, 0.25, 0.2, 0.1, 0.92, 0.98, 0.65, 0.55,
               0.45, 0.35, 0.15, 0.05)]
