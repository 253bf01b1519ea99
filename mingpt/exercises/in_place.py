"""
Inputs changed in place: a function or a forward that edits its argument (``x += ...``, ``q.div_(...)``,
``ids[i:i+2] = [n]``) can return exactly the right values and still be wrong, because the caller needs its tensor
afterwards: the residual stream goes on to the next block, autograd needs the input it saved for the backward pass,
and the checker itself reuses its inputs. Worse, a checker that hands the same tensor to the student twice sees a
*different* input the second time, and may then name a mistake the student never made.

The one idea: the student always works on a private copy of every input (`fresh`), and the copy is compared with the
original after the call (`unchanged`). For a function the checker does this around each call (compare.check_cases);
for a module an `InputWatch` does it in a forward pre-hook on the student's module, attached when the checker builds
it (loading.construct) inside `watching()`. The verdict (compare.in_place_verdict): right outputs from an input
changed in place are named "changes its input in place"; any other verdict is kept and the edit is said beside it.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

import torch
import torch.nn as nn

__all__ = ["fresh", "unchanged", "InputWatch", "watching", "watch"]


def fresh(args: tuple) -> tuple:
    """A copy of a call's arguments that the student may change freely: tensors cloned, lists and dicts copied."""
    def copy(a):
        if isinstance(a, torch.Tensor):
            return a.clone()
        if isinstance(a, (list, tuple)):
            return type(a)(copy(x) for x in a)
        return {k: copy(v) for k, v in a.items()} if isinstance(a, dict) else a
    return tuple(copy(a) for a in args)


def unchanged(a: Any, b: Any) -> bool:
    """b (the student's copy after the call) still equals a (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and bool(
            torch.equal(a, b) or a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(unchanged(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(unchanged(a[k], b[k]) for k in a)
    return True  # numbers, strings, modules: not compared


class InputWatch:
    """Gives a module's forward its own copy of each tensor argument and remembers the first one it changed, as
    (argument index, before, after). Two hooks, so the student's class stays exactly as written."""

    def __init__(self, module: nn.Module):
        self.changed: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._given: tuple = ()
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, module: nn.Module, args: tuple) -> tuple:
        copies = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
        self._given = tuple(zip(args, copies))
        return copies

    def _after(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.changed is None:
            self.changed = next(((n, a, b) for n, (a, b) in enumerate(self._given)
                                 if isinstance(a, torch.Tensor) and not unchanged(a, b)), None)
        self._given = ()  # the originals are not kept alive longer than one call


_WATCHES: contextvars.ContextVar[list | None] = contextvars.ContextVar("mingpt_input_watches", default=None)


@contextlib.contextmanager
def watching() -> Iterator[list[InputWatch]]:
    """Within the block, every module `watch` is given gets an InputWatch; the list holds them."""
    watches: list[InputWatch] = []
    token = _WATCHES.set(watches)
    try:
        yield watches
    finally:
        _WATCHES.reset(token)


def watch(module: nn.Module) -> None:
    """Attach an InputWatch to a student's module if a checker is `watching()`; nothing otherwise."""
    watches = _WATCHES.get()
    if watches is not None:
        watches.append(InputWatch(module))
