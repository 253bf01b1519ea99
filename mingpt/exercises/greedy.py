"""Checking a student's greedy decoding: the id of the most likely token of each row (sampling.py checks the
distribution that sampling draws from).

The one idea: greedy decoding is a function of the logits alone, so the checker asks two things of it: the right
ids, shape (B,) (ids held as floats are accepted: their values are right), and the same ids on every call (a
"greedy" that samples can hit the argmax by luck once, not three times with three seeds). Each wrong answer is named
only when a rebuilt slip gives exactly the student's output (argmin, the batch axis, keepdim, a flattened argmax,
the max value instead of its index).

    from mingpt.exercises import check_greedy
    check_greedy(my_greedy)            # my_greedy(logits (B, V)) -> ids (B,)
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, close, fail, run

__all__ = ["check_greedy"]


def check_greedy(fn) -> CheckResult:
    """Check fn(logits (B, V)) -> (B,) ids of the most likely token of each row."""
    exercise = "greedy decoding"
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, -2.0, 1.0, 2.5], [-1.0, -0.5, -3.0, -0.2]])
    out, problem = run(exercise, f"your function(logits {tuple(logits.shape)})", fn, logits)
    if problem is not None:
        return problem
    expected = logits.argmax(dim=-1)
    example = f"logits = {logits.tolist()}\nyours    {out.tolist() if isinstance(out, torch.Tensor) else out}\n" \
              f"expected {expected.tolist()}"
    again = _repeated(fn, logits)
    if again is not None:  # checked first: a sampler can hit the argmax by luck on one call
        return fail(exercise, "different tokens on repeated calls (it samples)", "Greedy decoding is deterministic: "
                    "the same logits must give the same ids every time; yours changed between calls with the random "
                    "seed, as sampling (torch.multinomial) does.", f"logits = {logits.tolist()}\n{again}",
                    "logits.argmax(dim=-1), no softmax or multinomial")
    if isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.equal(out.long(), expected):
        return CheckResult(exercise, True, checked=["the most likely token of each row",
                                                    "the same ids on repeated calls"])
    if isinstance(out, torch.Tensor) and out.shape == (1, logits.shape[1]) and \
            torch.equal(out.long(), logits.argmax(0, keepdim=True)):
        return fail(exercise, "argmax over the wrong axis (dim 0), with keepdim", "For each row pick the token with "
                    "the largest logit; yours picked, for each token, the row where it is largest, and kept that "
                    f"axis: shape {tuple(out.shape)} instead of {tuple(expected.shape)}.", example,
                    "logits.argmax(dim=-1)")
    if isinstance(out, torch.Tensor) and out.shape == (logits.shape[1],):
        return fail(exercise, "argmax over the wrong axis", "For each row (one sequence of the batch) pick the "
                    "token with the largest logit; yours picked, for each token, the row where it is largest.",
                    example, "the vocabulary is the last axis")
    if isinstance(out, torch.Tensor) and out.shape == (logits.shape[0], 1) and torch.equal(out[:, 0].long(), expected):
        return fail(exercise, "right tokens, wrong shape (keepdim)", f"The right ids, but shaped {tuple(out.shape)}; "
                    f"the function returns one id per row, shape {tuple(expected.shape)}.", example,
                    "argmax(dim=-1) without keepdim (or .squeeze(-1))")
    if isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.equal(out.long(), logits.argmin(-1)):
        return fail(exercise, "picked the least likely token (argmin)", "Greedy decoding picks the token with the "
                    "*largest* logit; yours picks the smallest.", example, "argmax, not argmin")
    if isinstance(out, torch.Tensor) and out.numel() in (1, len(expected)) and \
            bool((out.long() == logits.flatten().argmax()).all()):
        return fail(exercise, "argmax over the whole batch (flattened), not each row", "argmax without dim flattens "
                    "the (B, V) logits: one index into B * V numbers, not one token per row.", example,
                    "argmax(dim=-1)")
    if isinstance(out, (list, tuple)):
        return fail(exercise, "returned a list, not a tensor", f"Greedy decoding returns a tensor of ids, shape "
                    f"{tuple(expected.shape)}; yours is a {type(out).__name__}.", example, "drop the .tolist()")
    if isinstance(out, torch.Tensor) and out.shape == expected.shape and \
            torch.equal(out.long(), logits.softmax(0).argmax(-1)):
        return fail(exercise, "softmax over the batch axis before the argmax", "argmax of the logits needs no "
                    "softmax; yours normalised over the batch axis (dim 0), which changes each row's order.",
                    example, "logits.argmax(dim=-1)")
    if isinstance(out, torch.Tensor) and close(out.float(), logits.max(dim=-1).values):
        return fail(exercise, "returned the largest logit, not its token id", "Greedy decoding returns *which* "
                    "token is most likely.", example, "max gives values and indices; you need the indices")
    return fail(exercise, "wrong tokens", "Expected the index of the largest logit in each row.", example,
                hint="torch.argmax over the vocabulary axis (the last one)")


def _repeated(fn, logits) -> str | None:
    """None when fn gives the same output for the same logits under three random seeds; else the outputs seen."""
    seen = []
    for seed in (1, 2, 3):
        with torch.random.fork_rng():  # the student's own random stream left as it was
            torch.manual_seed(seed)
            try:
                out = fn(logits.clone())
            except Exception:  # the first call's crash is reported by the caller
                return None
        seen.append(out.tolist() if isinstance(out, torch.Tensor) else out)
    if all(s == seen[0] for s in seen):
        return None
    return "\n".join(f"call {n + 1}: {s}" for n, s in enumerate(seen))
