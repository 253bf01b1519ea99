"""
Checking a student's next-token choice: greedy, and the distribution sampled from (temperature, top-k, top-p).

The one idea: sampling is random, but the *distribution* it samples from is not. So the exercise asks for the
probabilities, and the checker tests their properties: they sum to 1, a lower temperature makes them sharper,
top-k leaves exactly k tokens, and top-p keeps the most likely tokens up to and *including* the one that crosses
p (so the kept mass is at least p), never the unlikely tail.

    from mingpt.exercises import check_greedy, check_sampling_probs
    check_greedy(my_greedy)            # my_greedy(logits (B, V)) -> ids (B,)
    check_sampling_probs(my_probs)     # my_probs(logits (B, V), temperature, top_k=None, top_p=None) -> probs (B, V)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, close, fail, first_match, fmt, run
from mingpt.generation import filter_logits

__all__ = ["check_greedy", "check_sampling_probs"]


def check_greedy(fn) -> CheckResult:
    """Check fn(logits (B, V)) -> (B,) ids of the most likely token of each row."""
    exercise = "greedy decoding"
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, -2.0, 1.0, 2.5], [-1.0, -0.5, -3.0, -0.2]])
    out, problem = run(exercise, f"your function(logits {tuple(logits.shape)})", fn, logits)
    if problem is not None:
        return problem
    expected = logits.argmax(dim=-1)
    if isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.equal(out.long(), expected):
        return CheckResult(exercise, True, checked=["the most likely token of each row"])
    example = f"logits = {logits.tolist()}\nyours    {out.tolist() if isinstance(out, torch.Tensor) else out}\n" \
              f"expected {expected.tolist()}"
    if isinstance(out, torch.Tensor) and out.shape == (logits.shape[1],):
        return fail(exercise, "argmax over the wrong axis", "For each row (one sequence of the batch) pick the "
                    "token with the largest logit; yours picked, for each token, the row where it is largest.",
                    example, "the vocabulary is the last axis")
    if isinstance(out, torch.Tensor) and close(out.float(), logits.max(dim=-1).values):
        return fail(exercise, "returned the largest logit, not its token id", "Greedy decoding returns *which* "
                    "token is most likely.", example, "max gives values and indices; you need the indices")
    return fail(exercise, "wrong tokens", "Expected the index of the largest logit in each row.", example,
                hint="torch.argmax over the vocabulary axis (the last one)")


def _reference(logits, temperature=1.0, top_k=None, top_p=None):
    return F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)


def _top_p_variant(logits, temperature, top_p, keep):
    """Nucleus filtering with a configurable rule for which sorted positions to keep."""
    probs = F.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cumulative = sorted_probs.cumsum(dim=-1)
    keep_sorted = keep(cumulative, sorted_probs)
    kept = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    filtered = probs * kept
    return filtered / filtered.sum(dim=-1, keepdim=True)


def _variants() -> list[Variant]:
    return [
        Variant("temperature applied after the softmax", lambda lg, t, k, p: _reference(lg, 1.0, k, p) ** 1.0 / t,
                "Dividing the probabilities by the temperature only rescales them (they no longer sum to 1, and "
                "after renormalising nothing changed); temperature must divide the *logits*.",
                "divide the logits by the temperature, then softmax"),
        Variant("temperature applied after the softmax", lambda lg, t, k, p: _reference(lg, 1.0, k, p),
                "Your distribution does not change with the temperature: dividing probabilities by T and "
                "renormalising undoes itself. Temperature must divide the *logits* before the softmax.",
                "divide the logits by the temperature, then softmax"),
        Variant("temperature multiplied instead of divided", lambda lg, t, k, p: _reference(lg * t * t, t, k, p),
                "A temperature below 1 must make the distribution sharper; yours makes it flatter.",
                "logits / temperature"),
        Variant("top-p keeps the wrong side of the threshold",
                lambda lg, t, k, p: _top_p_variant(lg, t, p, lambda c, s: (c - s) >= p),
                "Nucleus sampling keeps the *most* likely tokens whose mass reaches p; yours keeps the unlikely tail.",
                "sort in descending order and keep the head of the list"),
        Variant("top-p drops the token that crosses p",
                lambda lg, t, k, p: _top_p_variant(lg, t, p, lambda c, s: (c <= p) | (c - s <= 0)),
                "The kept set must reach a mass of at least p, so the token whose probability carries the running "
                "sum past p stays; yours stops just before it.",
                "decide on the mass *before* each token: keep a token while the tokens above it sum to < p"),
        Variant("top-k keeps one token too many", lambda lg, t, k, p: _reference(lg, t, k + 1, p),
                "top_k = k must leave exactly k tokens with non-zero probability.", "compare with the k-th largest"),
        Variant("top-k keeps one token too few", lambda lg, t, k, p: _reference(lg, t, k - 1, p),
                "top_k = k must leave exactly k tokens with non-zero probability.", "compare with the k-th largest"),
        Variant("filtered after the softmax without renormalising",
                lambda lg, t, k, p: F.softmax(lg / t, -1) * (_reference(lg, t, k, p) > 0),
                "Removing tokens after the softmax leaves probabilities that sum to less than 1.",
                "set the removed logits to -inf *before* the softmax"),
    ]


def check_sampling_probs(fn) -> CheckResult:
    """Check fn(logits, temperature, top_k=None, top_p=None) -> the probabilities to sample the next token from."""
    exercise = "sampling distribution"
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -2.0], [0.3, 2.5, -0.5, 1.5, 0.0, 1.0]])
    cases = [(1.0, None, None), (0.5, None, None), (2.0, None, None), (1.0, 3, None), (1.0, None, 0.6),
             (0.8, None, 0.9), (1.0, 2, 0.8)]
    for temperature, top_k, top_p in cases:
        call = f"your function(logits, temperature={temperature}, top_k={top_k}, top_p={top_p})"
        out, problem = run(exercise, call, fn, logits, temperature, top_k, top_p)
        if problem is not None:
            return problem
        expected = _reference(logits, temperature, top_k, top_p)
        if close(out, expected, atol=1e-5):
            continue
        yours = fmt(out[0], 6) if isinstance(out, torch.Tensor) else repr(out)
        example = f"logits[0] = {fmt(logits[0], 6)}\n{call[5:]}\nyours    {yours}\nexpected {fmt(expected[0], 6)}"
        variant = first_match(out, _variants(), logits, temperature, top_k, top_p)
        if variant is not None:
            if variant.property.startswith("top-p"):
                cumulative = F.softmax(logits[0] / temperature, -1).sort(descending=True).values.cumsum(0)
                example += f"\nrunning sum of the sorted probabilities: {fmt(cumulative, 6)}, p = {top_p}"
            return fail(exercise, variant.property, variant.explanation, example, variant.hint)
        if isinstance(out, torch.Tensor) and not close(out.sum(-1), torch.ones(2), atol=1e-4):
            return fail(exercise, "probabilities do not sum to 1", "A distribution's probabilities add up to 1.",
                        example + f"\nyour row sums: {fmt(out.sum(-1))}",
                        hint="filter with -inf on the logits, then one softmax at the end")
        return fail(exercise, "wrong distribution", "No known mistake explains the difference.", example,
                    "order: divide by the temperature, filter (top-k, top-p) with -inf, then softmax")
    return CheckResult(exercise, True, checked=["temperature", "top-k", "top-p (the crossing token kept)",
                                                "each row sums to 1"])
