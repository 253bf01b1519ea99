"""
State kept across calls: a module that is right on every input when it is new, and wrong (or raises) once it has
been called before, keeps something from an earlier call: a mask or positions built at the first call's length, an
output or statistics cached on the first call, a counter.

The one idea: build the student's module anew for each input (the reference weights loaded); if each input alone is
right, yet one new module called on the inputs in turn goes wrong, nothing but what the module carries from one call
to the next can explain it. Named only then, so a module that is wrong on some input by itself never gets this name.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from mingpt.exercises.checking import CheckResult, close, fail

__all__ = ["STALE_STATE", "stale_state"]

STALE_STATE = "state kept across calls (right on a new module, wrong after an earlier call)"


def _clone(case: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)


def _right(module, case: tuple, expected: Any, atol: float) -> bool:
    try:
        return close(module(*_clone(case)), expected, atol=atol, rtol=max(atol, 1e-4))
    except Exception:
        return False


def stale_state(exercise: str, fresh: Callable[[], Any] | None, cases: Sequence[tuple], reference: Callable,
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
    return fail(exercise, STALE_STATE,
                "Each input alone gives the right output on a newly built module, but after an earlier call the same "
                "module gets this one wrong (or raises): it keeps something from the earlier call, e.g. a mask, "
                "positions or an output cached at the first call's size, or statistics saved on it.",
                f"a new module: first {describe(*cases[0])}, then {describe(*cases[wrong])}: wrong on the second; "
                f"{describe(*cases[wrong])} on a new module of its own: right",
                "compute everything that depends on the input inside forward, from the input's own shape; keep "
                "nothing on self between calls but the parameters (and buffers sized for block_size, sliced to T)")
