"""
Gradients: what a forward pass cannot show. A `.detach()`, a `torch.no_grad()` block or a `.data` inside `forward`
leaves every output right and every test of outputs passing, while training would never update the parameters
behind it. So a checker whose outputs already match backpropagates one fixed loss through the student's module
and the reference, and compares the gradients of the input and of every parameter, matched by name.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from mingpt.exercises.checking import CheckResult, close, fail


def gradient_problem(exercise: str, student: nn.Module, ref: nn.Module, x: torch.Tensor,
                     seed: int = 0) -> CheckResult | None:
    """For a module whose outputs already match the reference's: backpropagate the same random projection of the
    output through both and compare the gradients of the input and of every parameter (matched by name). The
    forward pass cannot show a `.detach()`, a `torch.no_grad()` block or an in-place edit of a saved tensor;
    training would. None when the gradients agree (or the comparison cannot be made)."""
    float_input = x.is_floating_point()  # token ids (a bigram, an embedding) have no gradient of their own
    mine, theirs = (x.clone().requires_grad_(float_input) for _ in range(2))
    try:
        with torch.enable_grad():
            out_s, out_r = student(mine), ref(theirs)
            r = torch.randn(out_r.shape, generator=torch.Generator().manual_seed(seed))
            if out_s.requires_grad:  # an output cut from the graph altogether leaves every gradient None
                (out_s * r).sum().backward()
            (out_r * r).sum().backward()
    except Exception:
        return None  # a backward that fails is not what this check judges
    params, refs = dict(student.named_parameters()), dict(ref.named_parameters())
    shapes = {tuple(p.shape) for p in refs.values() if p.grad is not None and p.grad.abs().sum() > 0}
    frozen = [n for n, p in params.items() if not p.requires_grad and tuple(p.shape) in shapes]
    if frozen:  # a table of the reference's shape that training would never move
        for module in (student, ref):
            module.zero_grad(set_to_none=True)
        return fail(exercise, "parameter frozen (requires_grad=False)",
                    f"Your outputs equal the reference's, but {', '.join(frozen)} does not require a gradient, so "
                    "training would never change it (the reference's parameter of that shape learns).",
                    f"{frozen[0]}.requires_grad is False", "drop requires_grad=False (nn.Parameter and nn.Embedding "
                    "learn by default)")
    wrong = [] if not float_input or close(mine.grad, theirs.grad, atol=1e-4) else ["the input x"]
    if out_r.requires_grad and not out_s.requires_grad:  # the whole output cut from the graph (a no_grad forward)
        wrong.append("every parameter (your output does not require a gradient)")
    partners = _partners(params, refs)
    for name, p in refs.items():
        q = partners.get(name)
        g, h = (q.grad if q is not None else None), p.grad
        if g is not None and h is not None and g.dim() == 2 and g.mT.shape == h.shape and (
                g.shape != h.shape or getattr(q, "loaded_transposed", False)):
            g = g.mT  # a weight stored (in, out) for x @ W, loaded transposed (loading.py): its gradient is too
        if q is not None and h is not None and (g is None or not close(g, h, atol=1e-4)):
            wrong.append(name)
    padded = _padding_rows(student, refs, wrong)
    for module in (student, ref):
        module.zero_grad(set_to_none=True)
    if not wrong:
        return None
    if padded is not None:
        return fail(exercise, f"padding_idx={padded[1]} set: token {padded[1]}'s row never learns",
                    f"Your outputs equal the reference's, but {padded[0]} gets no gradient in row {padded[1]} (every "
                    "other row's gradient is right): nn.Embedding(..., padding_idx) freezes that row, a convention "
                    "for padding tokens, and here token "
                    f"{padded[1]} is an ordinary token that must learn.",
                    f"x of shape {tuple(x.shape)}: the gradient of {padded[0]} is 0 in row {padded[1]} only",
                    "nn.Embedding(num, dim) without padding_idx")
    return fail(exercise, "gradient blocked (a .detach() or no_grad in forward)",
                "Your outputs equal the reference's, but the gradients do not: backpropagating the same loss gives "
                f"different (or no) gradients for {', '.join(wrong)}. Training would not update them properly.",
                f"x of shape {tuple(x.shape)}: the gradient of sum(output * r) for a fixed random r differs at "
                f"{', '.join(wrong[:3])}", "no .detach(), .data or torch.no_grad() inside forward")


def _partners(params: dict, refs: dict) -> dict:
    """The student's parameter for each reference name: the same name, else (a table called `t` where the reference
    says `table`) the one left-over parameter of that shape, where exactly one of each side has it: a shape shared
    by two left-over parameters would be a guess, and a guessed pair could blame a right gradient."""
    pairs = {name: params[name] for name in refs if name in params}
    left_s = [p for n, p in params.items() if n not in refs]
    left_r = [n for n in refs if n not in params]
    for name in left_r:
        shape = refs[name].shape
        mine = [p for p in left_s if p.shape == shape]
        if len(mine) == 1 and sum(refs[n].shape == shape for n in left_r) == 1:
            pairs[name] = mine[0]
    return pairs


def function_gradient_problem(exercise: str, fn, reference, case: tuple, describe: str,
                              seed: int = 0) -> CheckResult | None:
    """The same comparison for a function whose outputs already match the reference's (rms_norm(x, weight, eps),
    swiglu(x, w_gate, ...)): the gradients of every floating-point tensor argument under the same loss. A scale
    computed under torch.no_grad() or a .detach() gives right outputs and wrong training. None when they agree (or
    the comparison cannot be made)."""
    def leaves():
        return [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point()
                else a for a in case]
    mine, theirs = leaves(), leaves()
    try:
        with torch.enable_grad():
            out_s, out_r = fn(*mine), reference(*theirs)
            r = torch.randn(out_r.shape, generator=torch.Generator().manual_seed(seed))
            (out_r * r).sum().backward()
            if out_s.requires_grad:  # an output cut from the graph (torch.tensor(x), .item() re-wrapped): no grads
                (out_s * r).sum().backward()
    except Exception:
        return None  # a backward that fails is not what this check judges
    try:
        names = list(inspect.signature(reference).parameters)
    except (TypeError, ValueError):
        names = []
    wrong = [names[i] if i < len(names) else f"argument {i + 1}" for i, (a, b) in enumerate(zip(mine, theirs))
             if isinstance(b, torch.Tensor) and b.grad is not None
             and (a.grad is None or not close(a.grad, b.grad, atol=1e-4))]
    if not wrong:
        return None
    return fail(exercise, "gradient blocked (a .detach() or no_grad in the computation)",
                "Your outputs equal the reference's, but the gradients do not: backpropagating the same loss gives "
                f"different (or no) gradients for {', '.join(wrong)}. Training through your function would go wrong.",
                f"{describe}: the gradient of sum(output * r) for a fixed random r differs for {', '.join(wrong)}",
                "no .detach(), .data or torch.no_grad() in the computation: every step must stay in the graph")


def _padding_rows(student: nn.Module, refs: dict, wrong: list) -> tuple[str, int] | None:
    """(name, row) when the only wrong gradient is an nn.Embedding's with padding_idx set, and it differs from the
    reference's in that row alone, where it is 0: the row frozen by padding_idx, nothing detached."""
    if len(wrong) != 1:
        return None
    for prefix, module in student.named_modules():
        name = f"{prefix}.weight" if prefix else "weight"
        if not (isinstance(module, nn.Embedding) and module.padding_idx is not None and name == wrong[0]):
            continue
        g, h, row = module.weight.grad, refs[name].grad, module.padding_idx
        if g is None or h is None or g.shape != h.shape:
            return None
        others = torch.ones(g.shape[0], dtype=torch.bool)
        others[row] = False
        if (g[row] == 0).all() and close(g[others], h[others], atol=1e-4):
            return name, row
    return None
