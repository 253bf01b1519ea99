"""
How every checker decides what to say: run the student's code on several inputs, compare with the reference, and
name a mistake only when it explains *everything*.

The rule that keeps a checker honest: a variant (the reference with one known mistake) is the diagnosis only if it
reproduces the student's output on *every* tested input, not just on the one that failed. A variant that matches
one input and not another is a coincidence, and a wrong name sends a student to fix the wrong line, which is worse
than no name. When no variant explains the outputs, the checker says so and shows *where* the output differs: the
input, the first differing element with both values, and the largest difference. Shape and type mistakes (an extra
dimension, a flattened output, float64) are named from the shapes themselves, and mistakes no table lists from a
relation to the reference's output that holds on every input (relations.py: scaled by a constant, the input added,
positions shifted, a bias-like offset, ...).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable, Sequence

import torch

from mingpt.exercises.checking import SHAPE_HINT, CheckResult, Variant, fail, fmt, run
from mingpt.exercises.compose import knob
from mingpt.exercises.in_place import fresh, unchanged, watching
from mingpt.exercises.compose import pairs as knob_pairs
from mingpt.exercises.relations import relation, scale_note
from mingpt.exercises.state import Slots, state_problem

__all__ = ["reports_in_place_edits", "in_place_verdict", "TYPE_HINT", "same", "shape_problem", "where_it_differs",
           "explain", "check_cases", "NOT_RECOGNISED"]

TYPE_HINT = "return the output tensor itself: one tensor, not a tuple, a NumPy array, a list or None"
NOT_RECOGNISED = "a mistake the checker does not recognise"
WRONG_TYPE = "returned the wrong type"
TYPE_PROBLEMS = (WRONG_TYPE, "returned a tuple, not one tensor (a second value beside the output?)",
                 "returned None (a missing return?)")
LIST_HINT = "return a plain list of ints (your_tensor.tolist() converts one)"


def same(a: Any, b: Any, atol: float = 1e-5) -> bool:
    """Equal within tolerance: tensors of one shape (NaN where the other has NaN), numbers, or anything else by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        if a.is_floating_point() and b.is_floating_point() and a.dtype != b.dtype:
            return False  # float64 where float32 is expected doubles the memory: a mistake of its own
        return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=atol, equal_nan=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=atol, abs_tol=atol)
    try:
        return bool(a == b)
    except (ValueError, RuntimeError):  # compared element by element (a NumPy array against a list): not the same
        return False


def shape_problem(out: Any, expected: Any) -> tuple[str, str] | None:
    """(property, explanation) when out has the wrong type, dtype or shape for expected; None when they agree."""
    if isinstance(expected, list) and hasattr(out, "tolist") and not isinstance(out, (list, tuple)):
        return f"returned a {'tensor' if isinstance(out, torch.Tensor) else type(out).__name__}, not a list", \
            f"expected a plain Python list of {len(expected)} ints; yours is a {type(out).__name__} (a list goes on " \
            "working as a list: appended to, compared with ==, used as a dict key's part)"
    if not isinstance(expected, torch.Tensor):
        return None
    if not isinstance(out, torch.Tensor):
        how = {"ndarray": " (a .numpy() converted it: return the tensor itself)",
               "list": " (a .tolist() or a Python loop built it: return a tensor)",
               "tuple": " (a second value returned beside the output?)",
               "NoneType": " (a missing return statement?)"}.get(type(out).__name__, "")
        # A tuple and None have causes of their own, so they get names of their own; other types share one.
        name = {"tuple": "returned a tuple, not one tensor (a second value beside the output?)",
                "NoneType": "returned None (a missing return?)"}.get(type(out).__name__, WRONG_TYPE)
        return name, f"expected a tensor of shape {tuple(expected.shape)}; yours is a {type(out).__name__}{how}"
    if out.shape == expected.shape:
        if out.dtype != expected.dtype and out.is_floating_point() and expected.is_floating_point():
            return "wrong dtype", f"expected {expected.dtype}, yours is {out.dtype} (a .double() or a float64 " \
                                  "tensor built with torch.tensor of Python floats?)"
        return None
    shapes = f"expected shape {tuple(expected.shape)}, yours {tuple(out.shape)}"
    if [s for s in out.shape if s != 1] == [s for s in expected.shape if s != 1]:
        more = out.dim() > expected.dim()
        return ("extra dimension of size 1" if more else "a dimension of size 1 missing",
                shapes + (": a keepdim=True, unsqueeze or [None] too many" if more else
                          ": a squeeze or an index such as [:, -1] dropped a dimension"))
    if out.numel() == expected.numel():
        return "output reshaped", shapes + ": same numbers of elements, laid out differently (view/reshape/flatten " \
                                           "where the shape should stay, or a transpose)"
    if out.dim() == expected.dim() >= 3 and out.shape[1] == 1 < expected.shape[1] \
            and out.shape[:1] + out.shape[2:] == expected.shape[:1] + expected.shape[2:]:
        return "only one position returned", shapes + ": the time axis has length 1 (e.g. logits[:, -1:])"
    if out.dim() == expected.dim() - 1 and out.shape == expected.shape[:-2] + expected.shape[-1:]:
        return "only one position returned", shapes + ": the time axis is gone (e.g. only the last position)"
    return "wrong output shape", shapes


def where_it_differs(out: Any, expected: Any, atol: float = 1e-5) -> str:
    """The first differing element with both values, and the largest difference (for tensors and lists)."""
    if isinstance(out, torch.Tensor) and isinstance(expected, torch.Tensor) and out.shape == expected.shape == ():
        return where_it_differs(out.item(), expected.item(), atol)
    if isinstance(out, torch.Tensor) and isinstance(expected, torch.Tensor) and out.shape == expected.shape:
        diff = (out.double() - expected.double()).abs().nan_to_num(float("inf"))
        bad = (diff > atol + atol * expected.double().abs()).nonzero()
        if len(bad) == 0:
            return "every element is within tolerance"
        first = tuple(bad[0].tolist())
        worst = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        return (f"first differing element {list(first)}: yours {out[first].item():.6g}, expected "
                f"{expected[first].item():.6g}\nlargest difference {diff.max().item():.4g} at {list(worst)}")
    if isinstance(out, (list, tuple)) and isinstance(expected, (list, tuple)):
        at = next((i for i, (a, b) in enumerate(zip(out, expected)) if a != b), min(len(out), len(expected)))
        return f"first difference at position {at} (lengths: yours {len(out)}, expected {len(expected)})"
    if isinstance(out, (int, float)) and isinstance(expected, (int, float)):
        return f"difference {abs(out - expected):.4g} (relative {abs(out - expected) / max(abs(expected), 1e-30):.3g})"
    return "this is the first input on which your output differs"


def shown(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}: {fmt(value, 6)}" if value.dim() else f"{value.item():.6g}"
    if hasattr(value, "shape") and hasattr(value, "flatten"):  # a NumPy array: short, like a tensor
        return f"{type(value).__name__} of shape {tuple(value.shape)}: {fmt(value.flatten().tolist(), 6)}"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + " ..."  # a long list or dict: its start is enough


def explain(exercise: str, cases: Sequence[tuple], outputs: Sequence[Any], reference: Callable,
            variants: Sequence[Variant], describe: Callable[..., str], atol: float = 1e-5,
            hint: str = "", precision: bool = False) -> CheckResult | None:
    """
    None when every output equals the reference's. Otherwise a failed result: the variant that reproduces *every*
    output, or a shape/type mistake, or "not recognised" with where the first wrong output differs.
    """
    expected = [reference(*case) for case in cases]
    wrong = [i for i, (o, e) in enumerate(zip(outputs, expected)) if not same(o, e, atol)]
    if not wrong:
        return None
    i = wrong[0]
    example = f"{describe(*cases[i])}\nyours    {shown(outputs[i])}\nexpected {shown(expected[i])}"
    # A variant must reproduce every output; the wrong ones first, because most variants equal the reference on
    # the cases the student got right and are ruled out at once only where the student's output differs.
    order = wrong + [n for n in range(len(cases)) if n not in wrong]
    for variant in variants:
        if all(_variant_matches(variant, cases[n], outputs[n], atol) for n in order):
            return fail(exercise, variant.property, variant.explanation, example, variant.hint)
    problem = shape_problem(outputs[i], expected[i])
    if problem is not None and problem[0] == "wrong dtype":  # float64 *and* another mistake: is it a known one?
        cast = [o.to(e.dtype) if isinstance(o, torch.Tensor) and isinstance(e, torch.Tensor) and o.shape == e.shape
                and o.is_floating_point() else o for o, e in zip(outputs, expected)]
        for variant in variants if not all(same(c, e, atol) for c, e in zip(cast, expected)) else ():
            if all(_variant_matches(variant, case, out, atol) for case, out in zip(cases, cast)):
                return fail(exercise, f"two mistakes: {problem[0]}; and {variant.property}", f"{problem[1]}. And: "
                            f"{variant.explanation}", example, variant.hint)
    if problem is not None:
        return fail(exercise, problem[0], problem[1] + ".", example,
                    LIST_HINT if problem[0].endswith("not a list") else TYPE_HINT
                    if problem[0] in TYPE_PROBLEMS else hint or SHAPE_HINT)
    try:
        found = relation([case[0] if case else None for case in cases], outputs, expected, atol, precision)
    except Exception:  # a relation that cannot be tested on these outputs names nothing
        found = None
    if found is not None:  # a relation to the reference's output that holds on every input (relations.py)
        return fail(exercise, found[0], found[1], example, found[2])
    return fail(exercise, NOT_RECOGNISED,
                "Your output differs from the reference, and no mistake the checker knows reproduces your outputs on "
                "every tested input, so it names none. Here is where it differs:",
                example + "\n" + where_it_differs(outputs[i], expected[i], atol)
                + scale_note(outputs, expected, atol), hint)


def _variant_matches(variant: Variant, case: tuple, out: Any, atol: float) -> bool:
    try:
        return same(out, variant.compute(*case), atol)
    except Exception:  # a variant that cannot run on this input does not explain it
        return False


def check_cases(exercise: str, fn: Callable, cases: Sequence[tuple], reference: Callable,
                variants: Sequence[Variant], describe: Callable[..., str], atol: float = 1e-5, hint: str = "",
                crash_hint: str = SHAPE_HINT, prepare: Callable[[tuple], tuple] = lambda case: case,
                slots: Slots | None = None, precision: bool = False) -> CheckResult | None:
    """
    Run fn on every case (a fresh copy of it from prepare), then `explain`; None when all outputs are right.
    When fn raises on some cases, a variant that raises the same exception there and matches every other case is
    the diagnosis (e.g. positions numbered from 1 run past the table at T = block_size); else the crash is shown.
    A result no table row gives (a pass, a crash, a shape or a relation) is replaced by "state kept across calls" when
    state the function keeps changed during the calls and is shown to be the cause (state.py); slots: that state as
    read before the checker's first call of fn, when it made calls of its own before this one.
    """
    slots, outputs = slots or Slots(fn), []
    result = _compare_cases(exercise, fn, cases, reference, variants, describe, atol, hint, crash_hint, prepare,
                            outputs, precision)
    if result is None or result.property not in {variant.property for variant in variants}:  # no rebuilt slip
        kept = state_problem(exercise, fn, slots, cases, outputs, reference, prepare, describe,
                             lambda a, b: same(a, b, atol), fresh)
        return kept if kept is not None else result
    return result


def _compare_cases(exercise, fn, cases, reference, variants, describe, atol, hint, crash_hint, prepare, outputs,
                   precision=False):
    crashes, changed = {}, None
    for n, case in enumerate(cases):
        args = prepare(case)
        given = fresh(args)  # the student's own copy: an in-place edit must not reach the checker's cases
        out, problem = run(exercise, describe(*case), fn, *given, hint=crash_hint)
        if problem is not None:  # (the result, "TypeName: message" of the exception)
            # "where raised TypeName: message" is the explanation, or the example when crashed() named the error
            text = problem.explanation if " raised " in problem.explanation else problem.counterexample
            crashes[n] = (problem, text.split(" raised ", 1)[-1].split("\n", 1)[0])
        elif changed is None:
            changed = next(((n, i, a, b) for i, (a, b) in enumerate(zip(args, given)) if not unchanged(a, b)), None)
        outputs.append(out)
    if not crashes:
        result = explain(exercise, cases, outputs, reference, variants, describe, atol, hint, precision)
        if result is not None and result.property == NOT_RECOGNISED:
            randomness = _random(exercise, fn, cases, outputs, prepare, describe, atol)
            result = result if randomness is None else randomness
        if changed is None:
            return result
        return in_place_verdict(exercise, result, describe(*cases[changed[0]]), *changed[1:])
    n, (problem, error_type) = next(iter(crashes.items()))
    for variant in variants:
        if all(_variant_raises(variant, cases[i], crashes[i][1]) if i in crashes
               else _variant_matches(variant, cases[i], outputs[i], atol) for i in range(len(cases))):
            raised = problem.explanation if " raised " in problem.explanation else problem.counterexample
            return fail(exercise, variant.property, variant.explanation, raised, variant.hint)
    return problem


def _random(exercise: str, fn: Callable, cases: Sequence[tuple], outputs: Sequence[Any],
            prepare: Callable[[tuple], tuple], describe: Callable[..., str], atol: float) -> CheckResult | None:
    """A failed result when a second call on the same input gives another output (F.dropout's training=True default,
    a random tensor drawn inside): no rebuilt mistake can explain an output that changes from call to call."""
    for case, first in zip(cases, outputs):
        try:
            again = fn(*fresh(prepare(case)))
            differs = not same(again, first, atol)
        except Exception:
            return None
        if differs:
            return fail(exercise, "random output: a second call on the same input gives another result",
                        "Your function is not deterministic: called twice on the same input it returns different "
                        "values, so it cannot equal the reference on any input.",
                        f"{describe(*case)}\nfirst call  {shown(first)}\nsecond call {shown(again)}",
                        "look for F.dropout (its training=True default), torch.rand*/randn or a layer built inside "
                        "the function")
    return None


# nn.Embedding's and tensor indexing's words for an index past the end of a table
_PAST_THE_TABLE = re.compile(r"index out of range in self"
                             r"|index -?\d+ is out of bounds for dimension \d+ with size \d+")


def _variant_raises(variant: Variant, case: tuple, error: str) -> bool:
    """The variant raises the student's exception: the same type, and the same sizes when the messages name sizes
    (a matmul of (10x10 and 6x10) is another mistake than one of (10x6 and 10x6)), else the same words: two
    TypeErrors without sizes ("takes 3 positional arguments", "unsupported operand ... 'NoneType'") are not one
    mistake because both are TypeErrors."""
    try:
        variant.compute(*case)
    except Exception as e:
        error_type, _, message = error.partition(": ")
        rebuilt = str(e).split("\n", 1)[0]
        if type(e).__name__ != error_type:
            return False
        if _PAST_THE_TABLE.fullmatch(rebuilt) and _PAST_THE_TABLE.fullmatch(message):
            return True  # wpe(t) and wpe.weight[t] word one lookup past the table differently
        ours, theirs = re.findall(r"\d+", rebuilt), re.findall(r"\d+", message)
        return ours == theirs if ours and theirs else rebuilt == message
    return False


def in_place_verdict(exercise: str, result: CheckResult | None, example: str, n: int, before: Any, after: Any,
                     what: str = "argument {n} of your function") -> CheckResult:
    """The verdict when the student's code changed argument n: named when the outputs are right (result None or
    passed), and said beside any other verdict (the outputs were compared fairly: each call had its own copy)."""
    what = what.format(n=n + 1)
    where = f"{example}\n{what} before the call {_brief(before)}\n{what} after the call  {_brief(after)}"
    hint = "build new values (x = x + y, a new list) instead of changing an argument (x += y, x.mul_(s), " \
           "x[...] = ..., ids.pop())"
    if result is None or result:
        return fail(exercise, "changes its input in place", f"Your outputs are right, but {what} was changed by the "
                    "call: the caller still needs it unchanged (the next layer reads it, and autograd needs the "
                    "input it saved for the backward pass).", where, hint)
    result.explanation += f" (Also: {what} was changed in place by your code; each call was given its own copy, " \
                          "so the comparison shown is fair.)"
    return result


def reports_in_place_edits(checker: Callable) -> Callable:
    """Decorate a checker of a student's module class: every module it builds works on copies of its inputs
    (in_place.InputWatch), and an input changed in place is reported with the checker's verdict."""
    @functools.wraps(checker)
    def checked(cls, *args, **kwargs):
        with watching() as watches:
            result = checker(cls, *args, **kwargs)
        changed = next((w.changed for w in watches if w.changed is not None), None)
        if changed is None:
            return result
        return in_place_verdict(result.exercise, result, f"{getattr(cls, '__name__', cls)}.forward", *changed,
                                what="the tensor your forward got as argument {n}")
    return checked


def _brief(value: Any) -> str:
    return shown(value) if isinstance(value, torch.Tensor) else (repr(value)[:200])


def modified_in_place(exercise: str, fn: Callable, args: tuple, describe: str, hint: str) -> CheckResult | None:
    """
    A failed result when fn changes one of its tensor or list arguments (e.g. logits.div_(t), ids[i:i+2] = [n]);
    None otherwise, or when fn raises (the checker's own cases then show the crash). The caller's logits are
    still used after sampling (the next step's cache, a beam's score): changing them is a mistake even when the
    returned value is right.
    """
    copies = [a.clone() if isinstance(a, torch.Tensor) else list(a) if isinstance(a, list) else a for a in args]
    try:
        fn(*copies)
    except Exception:
        return None
    for n, (before, after) in enumerate(zip(args, copies)):
        if isinstance(before, torch.Tensor) and not torch.equal(before, after) or \
                isinstance(before, list) and before != after:
            return fail(exercise, "changes its input in place", f"Argument {n + 1} of your function was changed by "
                        "the call: the caller still needs it unchanged.", f"{describe}\nbefore {fmt(before, 6)}\n"
                        f"after  {fmt(after, 6)}", hint)
    return None


# ------------------------------------------------------------------------------------------ two mistakes at once
# A student often makes two small mistakes at once (no warm-up *and* a cosine towards 0). No single rebuilt variant
# reproduces that, and naming one of the two would hide the other. When a reference is built from replaceable parts
# (the warm-up, the progress, the shape of the decay; the temperature, top-k, top-p), two mistakes in two different
# parts compose exactly: build the reference with both parts replaced. Such a pair is named only when it reproduces
# every tested output, like any variant, and only after no single variant did (the variants are tried in order).
class Part:
    """One known mistake in one replaceable part of a reference: build(**{kind: value}) rebuilds it."""

    def __init__(self, kind: str, value: Any, property: str, explanation: str, hint: str):
        self.kind, self.value, self.property, self.explanation, self.hint = kind, value, property, explanation, hint


def two_mistakes(a: Any, b: Any, compute: Callable) -> Variant:
    """A variant made of two mistakes (Parts or Variants), named by both: 'two mistakes: A; and B'."""
    return Variant(f"two mistakes: {a.property}; and {b.property}", compute, f"{a.explanation} And: {b.explanation}",
                   f"{a.hint}; and {b.hint}")


def part_variants(build: Callable[..., Callable], parts: Sequence[Part], pairs: bool = True) -> list[Variant]:
    """
    Every part's mistake alone, then (pairs=True) every two mistakes in two different parts at once. build(**kw)
    returns the reference with the parts named in kw replaced, as a function of one case's arguments. A part is a
    knob of compose.py ({kind: value}), so the pairs are compose.pairs', named as two_mistakes names them.
    """
    def base(*case, **kw):
        return build(**kw)(*case)

    singles = [knob(base, p.property, {p.kind: p.value}, p.explanation, p.hint) for p in parts]
    return singles + (knob_pairs(base, singles, combine=two_mistakes) if pairs else [])
