"""
State kept across calls: a function that fills a cache on its first call (the angle table or the causal mask for that
call's length, the gain it was given), counts its own calls, or keeps a tensor from an earlier call can be right on
the first input and wrong, or crashing, on the next, for a reason no rebuilt mistake (compare.py) can reproduce: the
output depends on the calls *before* it, not on the arguments.

The one idea: the places such state lives are few and can be read before the checker's calls: the function's mutable
default arguments (``def f(x, cache={})``), its closure's cells, its own attributes (``f.cache``) and the mutable
globals its code names. When one of them changed during the calls, the checker puts it back as it was (or empty:
a cache starts empty) and calls again: a case that is right when called first but was wrong in the sequence, a
second call on the same input that differs from the first, or a wrong output when the cases come in another order,
shows that the state is the cause, and only then is it named (`state_problem`). The student's state is put back as
it was found.

A module's state is found the other way round (`module_state_problem`): build the student's module anew for each
input (the reference weights loaded); if each input alone is right, yet one module called on the inputs in turn goes
wrong, nothing but what the module carries from one call to the next can explain it (a mask or positions built at
the first call's length, an output or statistics cached on it, a counter).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch

from mingpt.exercises.checking import CheckResult, close, fail

__all__ = ["MODULE_STATE", "Slots", "module_state_problem", "state_problem"]

MODULE_STATE = "state kept across calls (right on a new module, wrong after an earlier call)"

MUTABLE = (dict, list, set, bytearray, torch.Tensor)


class Slots:
    """The mutable objects a function can keep state in, each with a deep copy of its content when read."""

    def __init__(self, fn: Callable):
        self.found: list[tuple[str, Any, Any]] = []  # (where, the object itself, a copy of its content)
        for where, obj in _places(fn):
            try:
                self.found.append((where, obj, copy.deepcopy(obj)))
            except Exception:  # something that cannot be copied cannot be restored either: left alone
                continue

    def changed(self) -> list[str]:
        return [where for where, obj, saved in self.found if not _equal(obj, saved)]

    def restore(self, empty: bool = False) -> None:
        """Put every object back to its saved content (empty=True: emptied, as a cache starts)."""
        for _, obj, saved in self.found:
            _put(obj, _emptied(saved) if empty else copy.deepcopy(saved))


def _places(fn: Callable):
    fn = getattr(fn, "__func__", fn)  # a bound method: its function
    if not hasattr(fn, "__code__"):
        return
    for i, value in enumerate(fn.__defaults__ or ()):
        if isinstance(value, MUTABLE):
            yield f"a mutable default argument (number {i + 1} of the defaults)", value
    for name, value in (fn.__kwdefaults__ or {}).items():
        if isinstance(value, MUTABLE):
            yield f"the mutable default of {name}", value
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, MUTABLE):
            yield f"{name}, a variable of the enclosing function", value
    if fn.__dict__:
        yield "an attribute of the function", fn.__dict__
    for name in fn.__code__.co_names:
        value = fn.__globals__.get(name)
        if isinstance(value, (dict, list, set)) and name != "__builtins__":
            yield f"the global {name}", value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            a.dtype == b.dtype and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _emptied(saved: Any) -> Any:
    return saved.clone() if isinstance(saved, torch.Tensor) else type(saved)()


def _put(obj: Any, content: Any) -> None:
    if isinstance(obj, torch.Tensor):
        obj.data = content
    elif isinstance(obj, dict):
        obj.clear()
        obj.update(content)
    elif isinstance(obj, (list, bytearray)):
        obj[:] = content
    elif isinstance(obj, set):
        obj.clear()
        obj.update(content)


def state_problem(exercise: str, fn: Callable, slots: Slots, cases: Sequence[tuple], outputs: Sequence[Any],
                  reference: Callable, prepare: Callable, describe: Callable, same: Callable,
                  fresh: Callable) -> CheckResult | None:
    """A failed result when state fn changed during the checker's calls makes its outputs depend on earlier calls."""
    where = slots.changed()
    if not where:
        return None

    def call(case):
        try:
            return fn(*fresh(prepare(case)))
        except Exception as e:
            return e

    def right(out, case):
        return not isinstance(out, Exception) and same(out, reference(*case))

    evidence = None
    try:
        for empty in (False, True):
            for n, case in enumerate(cases):
                slots.restore(empty)
                first, second = call(case), call(case)
                if right(first, case) and not right(outputs[n], case):
                    evidence = (f"{describe(*case)}: right when called first, wrong after the checker's earlier "
                                "calls")
                elif not isinstance(first, Exception) and not isinstance(second, Exception) and \
                        not same(first, second):
                    evidence = f"{describe(*case)}: called twice in a row, the second call returns another value"
                if evidence:
                    break
            if evidence is None and all(right(o, c) for o, c in zip(outputs, cases)):
                slots.restore(empty)  # right in the checker's order: and in the reverse order?
                wrong = next((c for c in reversed(cases) if not right(call(c), c)), None)
                if wrong is not None:
                    evidence = f"{describe(*wrong)}: wrong when the inputs come in another order"
            if evidence:
                break
    finally:
        slots.restore()
    if evidence is None:
        return None
    return fail(exercise, "state kept across calls (a cache, counter or value kept from an earlier call)",
                f"Your function changed {where[0]} while the checker called it, and its output depends on what "
                "earlier calls left there: a cache filled (or sized) by the first call is wrong for the next input, "
                "a counter replaces the argument it should read.", evidence,
                "compute each call from its own arguments: no mutable default (def f(x, cache={})), function "
                "attribute or global filled inside; a cache must be keyed by everything its value depends on")


# ------------------------------------------------------------------------------------------ a module's state
def _clone(case: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)


def _right(module, case: tuple, expected: Any, atol: float) -> bool:
    try:
        return close(module(*_clone(case)), expected, atol=atol, rtol=max(atol, 1e-4))
    except Exception:
        return False


def module_state_problem(exercise: str, fresh: Callable[[], Any] | None, cases: Sequence[tuple], reference: Callable,
                describe: Callable[..., str], atol: float = 1e-5) -> CheckResult | None:
    """The failed result naming state kept across calls, or None. fresh() builds the student's module anew with the
    reference weights (None when it cannot); reference(*case) is the right output for a case."""
    if fresh is None or len(cases) < 2:
        return None
    with torch.no_grad():
        expected = [reference(*case) for case in cases]
        for case, want in zip(cases, expected):  # each input alone, on a module of its own
            module = fresh()
            if module is None or not _right(module, case, want, atol):
                return None
        module = fresh()  # the inputs in turn, on one module
        wrong = next((n for n, (case, want) in enumerate(zip(cases, expected)) if not _right(module, case, want, atol)),
                     None)
    if not wrong:  # right in turn as well (None), or wrong on the first call (0): not state
        return None
    return fail(exercise, MODULE_STATE,
                "Each input alone gives the right output on a newly built module, but after an earlier call the same "
                "module gets this one wrong (or raises): it keeps something from the earlier call, e.g. a mask, "
                "positions or an output cached at the first call's size, or statistics saved on it.",
                f"a new module: first {describe(*cases[0])}, then {describe(*cases[wrong])}: wrong on the second; "
                f"{describe(*cases[wrong])} on a new module of its own: right",
                "compute everything that depends on the input inside forward, from the input's own shape; keep "
                "nothing on self between calls but the parameters (and buffers sized for block_size, sliced to T)")
