"""Checking a student's greedy decoding: the id of the most likely token of each row (sampling.py checks the
distribution that sampling draws from).

The one idea: greedy decoding is a function of the logits alone, so the checker asks two things of it: the right
ids, shape (B,), as integers (an id indexes the embedding table), and the same ids on every call (a
"greedy" that samples can hit the argmax by luck once, not three times with three seeds). It runs four batches of
logits: B = 3, B = 1, B = 4 with the largest logit in the last column of some rows and a large negative one
elsewhere, so that the batch axis, the first row, the last column and the sign each change the answer (row 2 of
the first batch is all negative: a running maximum started at 0 never moves there), and B = 3 with near-ties that
float16 / bfloat16 rounding turns into ties (the third row in bfloat16 only). Each wrong answer is named only when a
rebuilt slip (the table below, alone or with an extra keepdim axis) gives exactly the student's output on all four
(compare.py's rule); a function that keeps its first answer (a memo) is named by state.py, from the state as it
was before the checker's first call. Last, a batch with tied maxima: any one of a row's tied tokens is right
(argmax takes the first, a flipped argmax the last), but one id per row, so that code that returns every tied
maximum (the nonzero() of a comparison with the row's max) shows.

    from mingpt.exercises import check_greedy
    check_greedy(my_greedy)            # my_greedy(logits (B, V)) -> ids (B,)
"""

from __future__ import annotations

from typing import Any

import torch

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import NOT_RECOGNISED, check_cases
from mingpt.exercises.state import Slots

__all__ = ["check_greedy"]

CASES = [  # (logits,) per case: B = 3; B = 1; B = 4 with the maximum in the last column of rows 0 and 3
    (torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, -2.0, 1.0, 2.5], [-1.0, -0.5, -3.0, -0.2]]),),
    (torch.tensor([[-4.0, 1.0, 0.5, -0.5, 2.0]]),),
    (torch.tensor([[0.5, -3.0, 1.5, 0.0, 2.0, 2.5], [1.0, 0.2, -0.7, 3.5, -4.0, 0.1],
                   [-2.0, 2.2, 0.3, -0.1, 1.9, -0.6], [0.0, -1.0, -2.5, 0.4, 0.3, 4.0]]),),
    # Near-ties, the larger logit second: distinct in float32, equal once rounded to float16 or bfloat16 (about 3
    # significant digits), where argmax then takes the first of the now tied pair; 4.01 survives float16, not bfloat16.
    (torch.tensor([[4.0, 4.001, -1.0, 2.0], [0.3, -0.2, 1.5, 1.5004], [4.0, 4.01, 0.0, -3.0]]),),
]


def _v(property: str, compute, explanation: str, hint: str) -> Variant:
    return Variant(property, compute, explanation, hint)


ARGMAX = "logits.argmax(dim=-1)"
VARIANTS = [
    _v("argmax over the wrong axis (dim 0), with keepdim", lambda lg: lg.argmax(0, keepdim=True), "For each row "
       "pick the token with the largest logit; yours picked, for each token, the row where it is largest, and kept "
       "that axis.", ARGMAX),
    _v("argmax over the wrong axis", lambda lg: lg.argmax(0), "For each row (one sequence of the batch) pick the "
       "token with the largest logit; yours picked, for each token, the row where it is largest.",
       "the vocabulary is the last axis"),
    _v("right tokens, wrong shape (keepdim)", lambda lg: lg.argmax(-1, keepdim=True), "The right ids, but with an "
       "extra axis: the function returns one id per row, shape (B,).", "argmax(dim=-1) without keepdim (or "
       ".squeeze(-1))"),
    _v("picked the least likely token (argmin)", lambda lg: lg.argmin(-1), "Greedy decoding picks the token with the "
       "*largest* logit; yours picks the smallest.", "argmax, not argmin"),
    _v("argmax over the whole batch (flattened), not each row", lambda lg: lg.argmax(), "argmax without dim "
       "flattens the (B, V) logits: one index into B * V numbers, not one token per row.", "argmax(dim=-1)"),
    _v("argmax over the whole batch (flattened), not each row", lambda lg: lg.argmax().expand(lg.size(0)),
       "argmax without dim flattens the (B, V) logits: one index into B * V numbers, not one token per row.",
       "argmax(dim=-1)"),
    _v("softmax over the batch axis before the argmax", lambda lg: lg.softmax(0).argmax(-1), "argmax of the logits "
       "needs no softmax; yours normalised over the batch axis (dim 0), which changes each row's order.", ARGMAX),
    _v("returned the largest logit, not its token id", lambda lg: lg.max(dim=-1).values, "Greedy decoding returns "
       "*which* token is most likely.", "max gives values and indices; you need the indices"),
    _v("returned the most likely token's probability (softmax(...).max), not its id",
       lambda lg: lg.softmax(-1).max(dim=-1).values, "Greedy decoding returns *which* token is most likely; yours "
       "returns how likely it is (the largest probability of each row).", "softmax(...).argmax(dim=-1), or simply "
       "logits.argmax(dim=-1): the softmax does not change which token is largest"),
    *[_v(f"logits rounded to {name} before the argmax: near-equal logits tie", (lambda d: lambda lg: lg.to(d).argmax(
        -1))(d), f"Two logits that differ in the 4th significant digit are equal in {name} (about 3 significant "
         "digits), and argmax then takes the first of them, not the larger one.", "argmax of the logits as they "
         "come (float32), no .half() / .bfloat16() on the way") for d, name in ((torch.bfloat16, "bfloat16"),
                                                                                 (torch.float16, "float16"))],
    _v("the first row's token given to every row", lambda lg: lg[0].argmax().expand(lg.size(0)), "Each row of the "
       "batch is its own sequence and gets its own token; yours took the first row's argmax for all of them (right "
       "only when B = 1).", "argmax(dim=-1) over the whole (B, V) tensor, not logits[0]"),
    _v("the last token of the vocabulary can never be picked (a slice such as logits[:, :-1])",
       lambda lg: lg[:, :-1].argmax(-1), "Yours never returns id V - 1, even where its logit is the largest: a "
       "slice dropped the last column (logits[:, :-1] belongs to (B, T, V) targets, not to (B, V) logits).", ARGMAX),
    _v("logits[:, -1] taken first (as if the logits were (B, T, V)): one id for the whole batch",
       lambda lg: lg[:, -1].argmax(-1), "The function gets the last position's logits already, (B, V); "
       "logits[:, -1] (the generate loop's step) then takes each row's logit of the last *vocabulary* entry, and "
       "the argmax over those B numbers is one index into the batch.", "logits.argmax(dim=-1), with no [:, -1]"),
    _v("the largest absolute logit (abs), not the largest logit", lambda lg: lg.abs().argmax(-1), "A large "
       "negative logit is the *least* likely token; yours picked by magnitude.", "argmax of the logits themselves"),
    _v("ids counted from 1 (argmax + 1): token ids start at 0", lambda lg: lg.argmax(-1) + 1, "Your ids are the "
       "right tokens' ids plus one: token ids index the vocabulary from 0 (the embedding's row 0 is token 0), as "
       "Python and torch count, not from 1 as a paper's or MATLAB's notation does.", "logits.argmax(dim=-1), no + 1"),
    _v("a running maximum started at 0 (not -inf): a row of negative logits gets id 0",
       lambda lg: torch.where(lg.max(-1).values > 0, lg.argmax(-1), 0), "A loop that keeps the best logit so far must "
       "start below every logit (float('-inf'), or the row's first logit); started at 0, no negative logit beats it, "
       "so a row whose logits are all negative keeps the starting id 0.", "best = float('-inf') (or row[0]), or "
       "logits.argmax(dim=-1)"),
    _v("only the first row's token returned (one id, not one per row)", lambda lg: lg[:1].argmax(-1), "Each row of "
       "the batch is its own sequence and gets its own token; yours returns the first row's alone (.item() or "
       "logits[0]), right only when B = 1.", "logits.argmax(dim=-1): one id per row"),
    # Cousins of the slips above: another offset, another slice, the runner-up, one row's answer for every row.
    *[_v(f"ids off by {d:+d} (argmax {d:+d}): token ids start at 0", (lambda d: lambda lg: lg.argmax(-1) + d)(d),
         f"Your ids are the right tokens' ids {d:+d}: the argmax is the id itself, with nothing added.",
         "logits.argmax(dim=-1), nothing added") for d in (2, -1, -2)],
    *[_v(f"argmax over logits[:, {s}:] without adding {s} back: ids off by -{s}, and token{'s' * (s > 1)} "
         f"{'0' if s == 1 else f'0..{s - 1}'} never picked", (lambda s: lambda lg: lg[:, s:].argmax(-1))(s),
         f"Slicing off the first {s} column(s) renumbers the rest: the argmax of logits[:, {s}:] is an index into "
         f"the slice, {s} less than the token's id, and the sliced-off tokens can never be chosen.", ARGMAX)
      for s in (1, 2)],
    _v("the last two tokens of the vocabulary can never be picked (a slice such as logits[:, :-2])",
       lambda lg: lg[:, :-2].argmax(-1), "Yours never returns ids V - 2 or V - 1, even where their logit is the "
       "largest: a slice dropped the last two columns.", ARGMAX),
    _v("only every other token considered (a ::2 slice over the vocabulary)", lambda lg: lg[:, ::2].argmax(-1) * 2,
       "Yours only ever returns even ids: the argmax ran over logits[:, ::2] (mapped back to ids), so the odd "
       "tokens are never chosen.", ARGMAX),
    _v("the second most likely token (topk(2)'s index 1), not the most likely", lambda lg: lg.topk(2, -1).indices[
        :, 1], "torch.topk's indices are sorted largest first: index 0 is the most likely token, index 1 the "
       "runner-up.", "torch.topk(logits, 1).indices[:, 0], or logits.argmax(dim=-1)"),
    _v("the last row's token given to every row", lambda lg: lg[-1].argmax().expand(lg.size(0)), "Each row of the "
       "batch is its own sequence and gets its own token; yours took the last row's argmax for all of them (right "
       "only when B = 1).", "argmax(dim=-1) over the whole (B, V) tensor, not logits[-1]"),
    _v("the column of the batch's largest logit given to every row (argmax of the flattened logits % V)",
       lambda lg: (lg.argmax() % lg.size(-1)).expand(lg.size(0)), "argmax without dim runs over all B * V logits; "
       "taking its index modulo V gives the token of the single largest logit in the batch, the same for every "
       "row.", "argmax(dim=-1): one argmax per row"),
    _v("two mistakes: the largest logit returned, not its id; and over the wrong axis (dim 0)",
       lambda lg: lg.max(dim=0).values, "Greedy decoding returns *which* token is most likely, for each row; yours "
       "returns the largest logit of each column (torch.max(logits, 0)[0]: values, over the batch axis).",
       "torch.max(logits, dim=-1).indices, or logits.argmax(dim=-1)"),
]
_EXTRA_AXIS = ("with keepdim (an extra axis: shape (B, 1))", "And the ids keep an extra axis: one id per row is "
               "shape (B,).", "no keepdim (or .squeeze(-1))")
VARIANTS += [  # each slip above, also with an extra keepdim axis (two mistakes at once)
    _v(f"{v.property}, {_EXTRA_AXIS[0]}", (lambda f: lambda lg: f(lg).unsqueeze(-1))(v.compute),
       f"{v.explanation} {_EXTRA_AXIS[1]}", f"{v.hint}; {_EXTRA_AXIS[2]}")
    for v in VARIANTS if "keepdim" not in v.property and "flattened" not in v.property]


def check_greedy(fn) -> CheckResult:
    """Check fn(logits (B, V)) -> (B,) ids of the most likely token of each row."""
    exercise = "greedy decoding"
    logits = CASES[0][0]
    slots = Slots(fn)  # what the function keeps between calls, read before the checker's first call (state.py)
    out, problem = run(exercise, f"your function(logits {tuple(logits.shape)})", fn, logits.clone())
    if problem is not None:
        return problem
    expected = logits.argmax(dim=-1)
    example = f"logits = {logits.tolist()}\nyours    {_plain(out)}\nexpected {expected.tolist()}"
    again = _repeated(fn, logits)
    if again is not None:  # checked first: a sampler can hit the argmax by luck on one call
        return fail(exercise, "different tokens on repeated calls (it samples)", "Greedy decoding is deterministic: "
                    "the same logits must give the same ids every time; yours changed between calls with the random "
                    "seed, as sampling (torch.multinomial) does.", f"logits = {logits.tolist()}\n{again}",
                    "logits.argmax(dim=-1), no softmax or multinomial")
    if isinstance(out, tuple) and hasattr(out, "indices"):  # torch.max / torch.topk: a named (values, indices)
        return fail(exercise, "returned max's (values, indices) pair, not the ids", "torch.max(logits, dim=-1) and "
                    "torch.topk return two tensors, the values and the indices; greedy decoding returns only the "
                    "indices, one tensor of shape (B,).", example, "torch.max(logits, dim=-1).indices, or "
                    "logits.argmax(dim=-1)")
    if isinstance(out, (list, tuple)):
        return fail(exercise, "returned a list, not a tensor", f"Greedy decoding returns a tensor of ids, shape "
                    f"{tuple(expected.shape)}; yours is a {type(out).__name__}.", example, "drop the .tolist()")
    result = check_cases(exercise, fn, CASES, lambda lg: lg.argmax(dim=-1), VARIANTS,
                         lambda lg: f"logits = {lg.tolist()}", hint="torch.argmax over the vocabulary axis (the last "
                         "one)", slots=slots)
    if result is not None and result.property == NOT_RECOGNISED:
        confined = _one_row_wrong(exercise, fn, result)  # (a failed result is falsy: no `or`)
        result = result if confined is None else confined
    if result is not None:
        return result
    if isinstance(out, torch.Tensor) and (out.is_floating_point() or out.is_complex()):
        # The values are right, but an id indexes the embedding table: wte(ids) refuses floats, and appending float
        # ids to the (long) context with torch.cat turns the whole context into floats.
        return fail(exercise, f"ids returned as {out.dtype}, not integers (wrong dtype)", "Your ids have the right "
                    f"values, but they are {out.dtype}: a token id indexes the embedding table, which takes integer "
                    "ids (torch.long, what argmax returns); the next step of generation would fail or turn the "
                    "whole context into floats.", example, "return logits.argmax(dim=-1) as it is, without "
                    ".float() or .to(logits.dtype) (ids written into a torch.zeros(B) are floats too: use "
                    "torch.zeros(B, dtype=torch.long))")
    tied = _ties_problem(exercise, fn)
    if tied is not None:
        return tied
    return CheckResult(exercise, True, checked=["the most likely token of each row (B = 3, 1 and 4)",
                                                "the same ids on repeated calls", "ties: one of the tied ids per row"])


# Rows 0 and 1 have tied maxima (two and three of them), row 2 one maximum.
TIES = torch.tensor([[1.0, 3.0, 3.0, 0.5, -1.0], [2.0, -1.0, 2.0, 2.0, 0.5], [0.0, 0.5, -0.5, 0.25, 0.1]])


def _ties_problem(exercise: str, fn) -> CheckResult | None:
    """None when fn gives one id per row of TIES, each one of that row's tied maxima; else what went wrong."""
    out, problem = run(exercise, f"your function(logits {tuple(TIES.shape)}, with tied maxima)", fn, TIES.clone())
    if problem is not None:
        return problem
    best = TIES == TIES.max(dim=-1, keepdim=True).values
    example = f"logits = {TIES.tolist()}\nyours    {_plain(out)}\nany of   {[r.nonzero()[:, 0].tolist() for r in best]}"
    if isinstance(out, torch.Tensor) and out.shape == TIES.shape[:1] and _among(out.tolist(), best):
        return None
    if isinstance(out, torch.Tensor) and out.dim() == 1 and out.tolist() == best.nonzero()[:, 1].tolist():
        return fail(exercise, "every tied maximum returned (nonzero of the row's max), not one id per row",
                    "Where a row's largest logit is tied, yours returns the id of each tied token: more ids than "
                    "rows, so the ids no longer line up with the batch. Greedy picks one of them (argmax: the first).",
                    example, "logits.argmax(dim=-1)")
    return fail(exercise, NOT_RECOGNISED, "Right on logits without ties, but where a row's largest logit is tied, "
                "yours is not one of the tied ids, one per row.", example, "logits.argmax(dim=-1)")


def _among(ids: list, best: torch.Tensor) -> bool:
    """Whether ids[b] is one of row b's tied maxima (best: a (B, V) mask) for every row; ids may be floats."""
    try:
        return all(i == int(i) and 0 <= int(i) < best.size(1) and bool(best[b, int(i)]) for b, i in enumerate(ids))
    except (ValueError, TypeError, OverflowError):  # NaN, inf or a non-number: not an id
        return False


def _plain(out: Any) -> Any:
    """Tensors, NumPy arrays and tuples of them as plain lists, so that outputs can be shown and compared with ==."""
    if hasattr(out, "tolist"):
        return out.tolist()
    if isinstance(out, (list, tuple)):
        return [_plain(o) for o in out]
    return out


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
        seen.append(_plain(out))
    if all(s == seen[0] for s in seen):
        return None
    return "\n".join(f"call {n + 1}: {s}" for n, s in enumerate(seen))


def _one_row_wrong(exercise: str, fn, unrecognised: CheckResult) -> CheckResult | None:
    """A failed result when, on every case, all rows but the first (or all but the last) are right: a slip confined
    to one row of the batch (a loop's first or last pass, an index off by one). Named with the table's slip that
    gives exactly that row on every case, when one does; else by where it is. None when the wrong rows are elsewhere."""
    outs = []
    for (lg,) in CASES:
        try:
            out = fn(lg.clone())
        except Exception:
            return None
        if not (isinstance(out, torch.Tensor) and out.shape == lg.shape[:1]) or out.is_floating_point():
            return None
        outs.append(out.long())
    right = [out == lg.argmax(-1) for out, (lg,) in zip(outs, CASES)]
    for row, which in ((0, "first"), (-1, "last")):
        others = [torch.cat([r[:row], r[row + 1:]]) if row == 0 else r[:-1] for r in right]
        if not all(o.all() for o in others):
            continue
        slip = next((v for v in VARIANTS if all(_same_id(v.compute, lg, out, row) for out, (lg,) in zip(outs, CASES))),
                    None)
        name = f"only the {which} row of the batch wrong (the other rows right)"
        if slip is not None:
            return fail(exercise, f"{name}: {slip.property} there", f"Every row but the {which} gets its argmax; "
                        f"the {which} row's id is the one this slip gives: {slip.explanation}",
                        unrecognised.counterexample, f"{slip.hint}, for every row alike")
        return fail(exercise, name, f"Every row but the {which} gets its argmax; the {which} row's id differs in a "
                    "way no mistake the checker knows explains (a loop's first or last pass handled apart? an "
                    "index off by one over the batch?).", unrecognised.counterexample, "treat every row alike: "
                    "logits.argmax(dim=-1)")
    return None


def _same_id(compute, lg, out, row) -> bool:
    try:
        ids = compute(lg)
        return ids.shape == out.shape and int(ids[row]) == int(out[row])
    except Exception:
        return False
