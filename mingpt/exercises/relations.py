"""
Diagnoses from a *relation* between the student's output and the reference's, for mistakes no table lists.

A table of variants names the mistakes someone thought of. A relation names a whole family at once by testing a
property of the student's output against the reference's own output on the same input:

    output = c * reference          -> "output scaled by c" (sign flipped, doubled, 1/sqrt(C), bits not nats ...)
    output = reference + x          -> the input added once too often (a residual inside the module)
    output = reference - x          -> the input missing (a residual not added)
    output[:, t] = reference[:, t-1] -> every position shifted by one
    output = softmax(reference)     -> probabilities (or log-probabilities) returned instead of scores
    output = reference + noise      -> a float16/bfloat16 intermediate (only for checkers that pass precision=True)

The same rule as the variants (compare.py): a relation is the diagnosis only when it holds on *every* tested input,
within float32 rounding; one input can agree by chance, several different ones do not.

    from mingpt.exercises.relations import relation
    found = relation(inputs, outputs, expected)   # (property, explanation, hint) or None
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

__all__ = ["relation", "constant_name", "scale_note", "permuted"]

_KNOWN = [  # (factor, its short name, how a student gets it)
    (-1.0, "-1", "the negative of the reference: a sign flipped (a minus too many or too few)"),
    (2.0, "2", "twice the reference: a factor 2 (or 0.5 left out)"),
    (0.5, "0.5", "half the reference: a factor 0.5 too many"),
    (math.sqrt(2), "sqrt(2)", "sqrt(2) times the reference"),
    (1 / math.sqrt(2), "1/sqrt(2)", "1/sqrt(2) times the reference"),
    (1 / math.log(2), "1/ln 2", "the reference divided by ln 2: bits (log base 2) instead of nats (natural log)"),
    (math.log(2), "ln 2", "the reference multiplied by ln 2: nats converted the wrong way"),
]


def constant_name(c: float) -> tuple[str, str] | None:
    """(short name, description) of a factor a student's formula can contain: a known slip, or n, 1/n, sqrt(n),
    1/sqrt(n) for a whole n from 2 to 4096 (a size of the exercise). None for any other factor: an exact but
    arbitrary factor (1.01, say) is left unnamed and only reported as a fact (`scale_note`)."""
    for value, short, name in _KNOWN:
        if math.isclose(c, value, rel_tol=1e-4):
            return short, name
    for power, label in ((1, "{}"), (-1, "1/{}"), (2, "sqrt({})"), (-2, "1/sqrt({})")):
        n = c ** power if c > 0 else 0.0
        if n > 1.5 and abs(n - round(n)) < 1e-4 * n and round(n) <= 4096:
            short = f"{label.format(round(n))} = {c:.4g}"
            return short, f"{short} times the reference"
    return None


def scale_note(outputs: Sequence[Any], expected: Sequence[Any], atol: float = 1e-5) -> str:
    """'your output is c times the reference on every input' when that holds for a factor c, else ''."""
    pairs = _pairs(outputs, expected)
    c = _scale(pairs, atol) if pairs is not None else None
    return f"\nnote: on every tested input your output is exactly {c:.6g} times the reference's" if c else ""


_ELEMENTWISE = [  # (f, property, explanation): yours = f(reference) elementwise, on every input
    (torch.exp, "returned exp of the value (e.g. perplexity instead of the loss)",
     "Your output is exp(reference) on every tested input: e.g. the perplexity exp(loss), not the loss itself."),
    (torch.square, "returned the square of the value", "Your output is reference ** 2 on every tested input."),
    (lambda e: e.abs(), "returned the absolute value", "Your output is |reference| on every tested input, so some "
     "signs are lost."),
]


def _short(t: torch.Tensor) -> str:
    values = t.flatten().tolist()
    return "[" + ", ".join(f"{v:.4g}" for v in values[:4]) + (", ...]" if len(values) > 4 else "]")


def _pairs(outputs: Sequence[Any], expected: Sequence[Any]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """(yours, reference) as float64 tensors of one shape for every case, or None when some case cannot compare."""
    pairs = []
    for o, e in zip(outputs, expected):
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            o = torch.tensor(float(o))
        if isinstance(e, (int, float)) and not isinstance(e, bool):
            e = torch.tensor(float(e))
        if not (isinstance(o, torch.Tensor) and isinstance(e, torch.Tensor)) or o.shape != e.shape \
                or not (o.is_floating_point() and e.is_floating_point()):
            return None
        o, e = o.detach().double(), e.detach().double()
        if not (torch.isfinite(o).all() and torch.isfinite(e).all()):
            return None
        pairs.append((o, e))
    return pairs or None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def _scale(pairs, atol) -> float | None:
    """The one factor c with yours = c * reference on every case (c != 1), or None."""
    factors = []
    for o, e in pairs:
        energy = (e * e).sum()
        if energy < 1e-12:
            continue  # a zero reference says nothing about the factor
        c = float((o * e).sum() / energy)
        if not _close(o, c * e, atol):
            return None
        factors.append(c)
    if len(factors) < min(2, len(pairs)) or any(not math.isclose(c, factors[0], rel_tol=1e-3) for c in factors):
        return None
    return None if math.isclose(factors[0], 1.0, rel_tol=1e-3) else factors[0]


def _mixed_with_input(xs, pairs, atol) -> tuple[str, str, str] | None:
    """yours = a * reference + b * x on every case, for one pair of nameable constants (a, b) other than (1, 0):
    e.g. 0.5 * (x + branch(x)), a residual added and the sum halved. Fitted by least squares on each case."""
    fits = []
    for x, (o, e) in zip(xs, pairs):
        basis = torch.stack([e.flatten(), x.flatten()], 1)
        if torch.linalg.matrix_rank(basis) < 2:
            return None
        a, b = torch.linalg.lstsq(basis, o.flatten()[:, None]).solution.flatten().tolist()
        if not _close(o, a * e + b * x, atol * 10):
            return None
        fits.append((a, b))
    a, b = fits[0]
    if any(not (math.isclose(a, a2, rel_tol=1e-3) and math.isclose(b, b2, rel_tol=1e-3, abs_tol=1e-4))
           for a2, b2 in fits) or abs(b) < 1e-4:
        return None
    names = [("1", "") if math.isclose(c, 1.0, rel_tol=1e-4) else constant_name(c) for c in (a, b)]
    if None in names:
        return None
    if math.isclose(a, b, rel_tol=1e-4):
        prop = f"the input added to the output (an extra residual), and the sum scaled by {names[0][0]}"
    else:
        prop = f"output = {names[0][0]} * reference + {names[1][0]} * input"
    return (prop, f"On every tested input your output is exactly {a:.4g} times the reference's plus {b:.4g} times the "
            "input x: the input mixed into the module's own output.",
            "return the branch alone: no x added, no factor")


def relation(inputs: Sequence[Any], outputs: Sequence[Any], expected: Sequence[Any],
             atol: float = 1e-5, precision: bool = False) -> tuple[str, str, str] | None:
    """(property, explanation, hint) for the first relation that holds on every case, else None. inputs[i] is the
    first argument of case i (the x a module was called on), used for the residual relations."""
    pairs = _pairs(outputs, expected)
    if pairs is None or all(_close(o, e, atol) for o, e in pairs):
        return None
    c = _scale(pairs, atol)
    name = constant_name(c) if c is not None else None
    if name is not None:
        prop = "sign flipped" if name[0] == "-1" else f"output scaled by {name[0]}"
        return (prop, f"On every tested input your output is exactly {name[1]} ({c:.6g} x).",
                "look for a constant factor (a scale, a sign, a log base) that the formula does not have")
    xs = [x.detach().double() if isinstance(x, torch.Tensor) and x.is_floating_point() else None for x in inputs]
    if all(x is not None and x.shape == o.shape for x, (o, _) in zip(xs, pairs)):
        for sign, prop, why, hint in (
                (1, "the input added to the output (an extra residual)",
                 "Your output is the reference's plus the input x on every tested input: this module computes only "
                 "its branch; the residual x + ... is added by the caller.", "return the branch without adding x"),
                (-1, "the input missing from the output (a residual not added)",
                 "Your output is the reference's minus the input x on every tested input: a residual connection "
                 "x + ... is missing.", "each branch is *added* to the stream: x = x + branch(...)")):
            if all(_close(o, e + sign * x, atol * 10) for x, (o, e) in zip(xs, pairs)):
                return prop, why, hint
        mixed = _mixed_with_input(xs, pairs, atol)
        if mixed is not None:
            return mixed
    if all(o.dim() >= 2 for o, _ in pairs) and any(o.shape[1] > 1 for o, _ in pairs):
        for k, direction in ((1, "later"), (-1, "earlier")):
            ok = all(o.shape[1] < 2 or _close(o[:, k:] if k > 0 else o[:, :k], e[:, :-k] if k > 0 else e[:, -k:],
                                              atol) for o, e in pairs)
            if ok:
                return (f"positions shifted one step {direction}",
                        f"Your output at position t is the reference's at position t {'-' if k > 0 else '+'} 1 on "
                        "every tested input: everything is right but one position off.",
                        "check every slice and arange along the time axis ([:, 1:], [:, :-1], arange(1, T + 1))")
    offsets = [(o - e).reshape(-1, o.shape[-1]) for o, e in pairs if o.dim() >= 2]
    if len(offsets) == len(pairs) and any(len(d) > 1 for d in offsets):
        # One vector b with yours = reference + b at every position of every input, and b not one number repeated
        # (a per-channel vector is what a bias is; a single constant added everywhere is left unnamed).
        b = offsets[0][0]
        if b.abs().max() > 10 * atol and (b - b.mean()).abs().max() > 10 * atol \
                and all(d.shape[-1] == b.shape[-1] and _close(d, b.expand_as(d), atol * 10) for d in offsets):
            return ("output off by a constant vector (a bias added twice, or left out)",
                    "Your output minus the reference's is the same per-channel vector at every position of every "
                    f"tested input: {_short(b)}. That is what a bias added once too often (or missing) does.",
                    "check each layer's bias: used once, by calling the layer (not its .weight alone)")
    rounded = _rounded(pairs, atol)
    if rounded is not None:
        return rounded
    for fn, prop, why in _ELEMENTWISE:
        if all(_close(o, fn(e), atol) for o, e in pairs):
            return prop, why, "return the value itself"
    for fn, prop in ((lambda e: e.softmax(-1), "returned probabilities, not scores"),
                     (lambda e: e.log_softmax(-1), "returned log-probabilities, not scores")):
        if all(o.dim() >= 1 and _close(o, fn(e), atol) for o, e in pairs):
            return (prop, "Your output is the softmax (or log-softmax) of the reference's over the last axis: the "
                    "raw scores were normalised once too often.", "return the scores as they are")
    # Near misses last. Rounding noise of a 16-bit float is named as such only where the checker asks for it (a
    # checker that fits families afterwards, a hand-written GELU's constant, would otherwise see a near miss named
    # as noise); elsewhere an output right to about three digits is named as that fact, which families.py's exact
    # fits replace.
    return (_normalised_axis(pairs, atol) or (_rounding_noise(pairs, atol) if precision else None)
            or _low_precision(pairs, atol))


def _rounded(pairs, atol) -> tuple[str, str, str] | None:
    """Yours = floor(reference) (or round(reference)) on every input: a // where a / was meant, an int() or a
    round() on the value. Named only when some output is not 0 and some reference is not a whole number, so that
    an output of zeros against small references is not taken for a rounding."""
    if all((o == 0).all() for o, _ in pairs) or all((e == e.round()).all() for _, e in pairs):
        return None
    for fn, how in ((torch.floor, "rounded down (floor)"), (torch.round, "rounded to the nearest whole number")):
        if all(_close(o, fn(e), atol) for o, e in pairs):
            return (f"{how}: an integer division (//) or a rounding where a true division was meant",
                    f"Your output is the reference's {how} on every tested input: a // (floor division), int(), "
                    "round() or an integer tensor somewhere in the computation drops the fraction.",
                    "true division (/) and floating-point tensors throughout")
    return None


LOW_PRECISION = "right to only about three significant digits (precision lost, or a constant slightly off)"


def _low_precision(pairs, atol) -> tuple[str, str, str] | None:
    """Yours is within a few parts in a thousand of the reference on every input, but not within atol: a fact about
    the output (right to only about three significant digits), named with the usual causes, not as one of them."""
    def rel(o, e):
        return ((o - e).abs().max() / e.abs().max().clamp(min=1.0)).item()
    errs = [rel(o, e) for o, e in pairs]
    if max(errs) >= 1e-2 or max(errs) <= 20 * atol or min(o.numel() for o, _ in pairs) < 16:
        return None  # a scalar or a few numbers (a loss, a learning rate) a little off: too little to tell

    def unexplained(o, e):  # the error left after the best yours ~ a * reference + b: noise, not a factor or offset
        a = torch.stack([e.flatten(), torch.ones(e.numel(), dtype=e.dtype)], 1)
        coef = torch.linalg.lstsq(a, o.flatten().unsqueeze(1)).solution
        return (o.flatten() - (a @ coef).squeeze(1)).abs().max() / (o - e).abs().max()
    if any(unexplained(o, e) < 0.5 for o, e in pairs):
        return None
    return (LOW_PRECISION,
            f"Your output agrees with the reference's to within {max(errs):.1g} (relative) on every tested input, "
            "but not to the tolerance: a float16/bfloat16 intermediate (.half(), autocast), a numerically unstable "
            "formula (E[x^2] - E[x]^2, log of a softmax), or a constant slightly off (an eps, a rounded 0.0447).",
            "compute in float32 throughout, with the stable formula (log_softmax, (x - mean) ** 2)")


def _rounding_noise(pairs, atol) -> tuple[str, str, str] | None:
    """Yours = the reference plus rounding noise of a 16-bit float on every input: every difference within a few
    float16/bfloat16 roundings of the output's size, differences on many elements, with both signs (noise, not a
    systematic slip such as another eps, which moves every output the same way)."""
    diffs = [(o - e, e) for o, e in pairs]
    signs = torch.cat([(d * e.sign()).flatten()[d.flatten().abs() > atol] for d, e in diffs]).sign()
    if signs.numel() < 8 or not 0.2 <= (signs > 0).double().mean().item() <= 0.8:
        return None
    for d, _ in diffs:  # noise has no offset: a constant added (a bias, a + 0.01) moves every element alike
        d = d.flatten()
        if d.numel() < 2 or d.std() == 0 or d.mean().abs() > 0.5 * d.std():
            return None
    worst = max((d.abs().max() / e.abs().max().clamp_min(1e-3)).item() for d, e in diffs)
    if worst > 8 * 2 ** -8:  # beyond 8 bfloat16 roundings: a real difference, not rounding
        return None
    kind = "float16" if worst <= 8 * 2 ** -11 else "bfloat16"
    return (f"computed in low precision (a {kind} intermediate?)",
            f"Your output is the reference's plus rounding noise on every tested input (largest difference "
            f"{worst:.2g} of the output's size, both signs): about what one {kind} (16-bit) step in the middle "
            "of the computation loses, where float32 is asked.",
            "keep every intermediate in float32: no .half(), .bfloat16() or 16-bit tensors inside the function")


def _normalised_axis(pairs, atol) -> tuple[str, str, str] | None:
    """The reference is a distribution over its last axis (each row >= 0, summing to 1) and yours, on every input,
    sums to 1 along another axis d instead: a fact about your output, named as such (a softmax, or a division by a
    sum, over dim d), without claiming which formula made it."""
    def sums_to_one(t, d):
        return t.dim() > d and t.shape[d] > 1 and (t >= -atol).all() and _close(t.sum(d), torch.ones(()).expand_as(
            t.sum(d)).double(), atol * 10)
    if not all(e.dim() >= 2 and sums_to_one(e, e.dim() - 1) for _, e in pairs):
        return None
    for d in range(pairs[0][0].dim() - 1):
        if all(sums_to_one(o, d) and not sums_to_one(o, o.dim() - 1) for o, _ in pairs):
            return (f"normalised over dim {d} instead of the last axis",
                    f"Every slice of your output along dim {d} sums to 1 on every tested input, while each row of a "
                    "distribution over the vocabulary (the last axis) must: a softmax, or a division by a sum, over "
                    f"dim {d}.", "softmax(dim=-1): one distribution per row")
    return None


def permuted(out: Any, expected: Any, atol: float = 1e-5) -> tuple[int, int] | None:
    """(a, b) when out is expected with its axes a and b exchanged (out == expected.transpose(a, b), of another
    shape), else None: the right numbers, laid out with a transpose that was never undone."""
    if not (isinstance(out, torch.Tensor) and isinstance(expected, torch.Tensor)) or out.shape == expected.shape \
            or out.dim() != expected.dim():
        return None
    for a in range(expected.dim()):
        for b in range(a + 1, expected.dim()):
            swapped = expected.transpose(a, b)
            if swapped.shape == out.shape and torch.allclose(out.double(), swapped.double(), atol=atol, rtol=1e-4,
                                                             equal_nan=True):
                return a, b
    return None
