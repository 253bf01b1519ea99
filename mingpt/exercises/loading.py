"""
Building a student's class and loading the reference's weights into it: every module checker starts here. The
checker compares the student's module with the reference *on the same weights*, so it matches the student's
parameters to the reference's by name, by the query/key/value names students give a split c_attn, and last by shape;
and before that it names what would make a match meaningless: a constructor that raises, layers PyTorch cannot see
(a plain list, a bare tensor), parameters of the wrong size, or no biases at all.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
import torch.nn as nn

from mingpt.exercises.checking import CheckResult, ReferenceWeightsError, crashed, fail
from mingpt.exercises.in_place import watch

__all__ = ["build", "construct", "load_reference_weights", "names_differ", "student_with_reference_weights",
           "unregistered"]


def build(cls: Any, *args: Any, **kwargs: Any) -> nn.Module:
    """
    cls(*args, **kwargs), dropping trailing positional args the constructor does not take (a student's attention
    may take (config) or (config, layer_idx)). Raises TypeError if cls is not an nn.Module class.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"expected your class (a subclass of nn.Module), got {cls!r}; "
                        "pass the class itself (not an instance or a function)")
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return cls(*args, **kwargs)
    if not any(p.kind == p.VAR_POSITIONAL for p in parameters):
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]  # no self
        args = args[: len(positional)]
    return cls(*args, **kwargs)


_ROLE_OF_NAME = {  # the names students give separate query/key/value projections
    "q": "q", "query": "q", "wq": "q", "q_proj": "q", "w_q": "q", "queries": "q",
    "k": "k", "key": "k", "wk": "k", "k_proj": "k", "w_k": "k", "keys": "k",
    "v": "v", "value": "v", "wv": "v", "v_proj": "v", "w_v": "v", "values": "v",
}


def _qkv_role(name: str) -> tuple[str, str] | None:
    """'attn.query.weight' -> ('q', 'weight'); None if the module's name is not a query/key/value name."""
    parts = name.split(".")
    if len(parts) < 2 or parts[-1] not in ("weight", "bias"):
        return None
    role = _ROLE_OF_NAME.get(parts[-2].lower())
    return (role, parts[-1]) if role else None


def load_reference_weights(student: nn.Module, reference: dict[str, torch.Tensor], what: str = "your module") -> None:
    """
    Copy the reference's weights into the student's parameters, matched in this order:
      1. the same name and shape (or the transposed shape: a weight stored for ``x @ W``);
      2. separate query/key/value projections (named q/k/v, query/key/value, q_proj...) take their third of the
         reference's fused ``c_attn``;
      3. whatever is left, by shape, in the order the parameters were defined.
    Raises ReferenceWeightsError with a table of both sides when some parameter cannot be matched.
    """
    targets = dict(student.named_parameters())
    remaining_ref = dict(reference)
    plan: dict[str, torch.Tensor] = {}

    def take(name: str, tensor: torch.Tensor) -> bool:
        shape = targets[name].shape
        if tensor.shape == shape:
            plan[name] = tensor
        elif tensor.dim() == 2 and tensor.t().shape == shape:
            plan[name] = tensor.t()
        else:
            return False
        return True

    for name in targets:  # 1. by name
        if name in remaining_ref and take(name, remaining_ref[name]):
            del remaining_ref[name]
    fused = [k for k in remaining_ref if k.endswith("c_attn.weight") or k.endswith("c_attn.bias")]
    for key in fused:  # 2. a fused c_attn split three ways
        thirds = dict(zip("qkv", remaining_ref[key].chunk(3, dim=0)))
        kind = key.rsplit(".", 1)[1]
        used = False
        for name in targets:
            role = _qkv_role(name)
            if name not in plan and role and role[1] == kind:
                used |= take(name, thirds[role[0]])
        if used:
            del remaining_ref[key]
    left_student = [n for n in targets if n not in plan]  # 3. by shape, in definition order
    for name in left_student:
        for key in list(remaining_ref):
            if take(name, remaining_ref[key]):
                del remaining_ref[key]
                break
    missing = [n for n in targets if n not in plan]
    used = {t.data_ptr() for t in plan.values()}
    for key in list(remaining_ref):  # a tied weight (lm_head = wte) is one tensor under two names: fine
        if remaining_ref[key].data_ptr() in used:
            del remaining_ref[key]
    if missing or remaining_ref:
        rows = [f"      yours     {n:32s} {tuple(p.shape)}" for n, p in targets.items()]
        rows += [f"      reference {n:32s} {tuple(t.shape)}" for n, t in reference.items()]
        unmatched = ", ".join(missing) if missing else "(all of yours matched)"
        raise ReferenceWeightsError(
            f"cannot load the reference weights into {what}: no reference weight fits {unmatched}; reference weights "
            f"left over: {', '.join(remaining_ref) or 'none'}.\n"
            + "\n".join(rows)
            + "\n    Give your layers the reference's names and shapes (see the table), e.g. a Linear of the same size."
        )
    with torch.no_grad():
        for name, tensor in plan.items():
            targets[name].copy_(tensor)
        for name, tensor in plan.items():
            if _stored_for_x_at_w(student, name, tensor):
                targets[name].copy_(tensor.t())
                targets[name].loaded_transposed = True  # so that its gradient is compared transposed (gradients.py)


def _stored_for_x_at_w(student: nn.Module, name: str, tensor: torch.Tensor) -> bool:
    """A square weight has no shape to tell its layout: nn.Linear stores (out, in) and computes x @ W.T, but a layer
    of the student's own (HF's Conv1D) may store (in, out) and compute x @ W. Ask the layer itself, once loaded:
    True when it is not an nn.Linear and computes exactly x @ W (+ bias) on the identity, and not x @ W.T, so the
    reference's (out, in) weight must go in transposed, as a non-square one already does."""
    prefix, _, leaf = name.rpartition(".")
    if leaf != "weight" or tensor.dim() != 2 or tensor.shape[0] != tensor.shape[1] or torch.equal(tensor, tensor.t()):
        return False
    try:
        layer = student.get_submodule(prefix)
        if isinstance(layer, (nn.Linear, nn.Embedding)) or len(list(layer.children())) > 0:
            return False
        W = layer.weight
        eye = torch.eye(W.shape[0], dtype=W.dtype)
        bias = getattr(layer, "bias", None)
        b = bias if isinstance(bias, torch.Tensor) and bias.shape == W.shape[:1] else 0.0
        out = layer(eye)
        return (isinstance(out, torch.Tensor) and out.shape == W.shape and torch.allclose(out, W + b, atol=1e-6)
                and not torch.allclose(out, W.t() + b, atol=1e-6))
    except Exception:
        return False


def _leaves(value: Any):
    """The items of a plain list, tuple or dict, nested ones opened too (an nn.ModuleList is a Module: a leaf)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def unregistered(exercise: str, student: nn.Module, reference: dict) -> CheckResult | None:
    """Name layers kept where PyTorch cannot see them (a plain list or dict, a bare tensor): their parameters are
    neither trained nor saved, and the reference weights cannot be loaded into them."""
    hidden = []
    for module in student.modules():
        for name, value in vars(module).items():
            items = list(_leaves(value))  # a list of (norm, layer) pairs hides its layers as well as a flat list
            if name.startswith("_") or not items or not all(isinstance(v, (nn.Module, torch.Tensor)) for v in items):
                continue
            if any(isinstance(v, nn.Module) or (isinstance(v, torch.Tensor) and v.is_floating_point()
                                                and not isinstance(v, nn.Parameter)) for v in items):
                hidden.append(f"{name} ({type(value).__name__})")
    registered = sum(p.numel() for p in student.parameters())
    wanted = sum(t.numel() for t in {t.data_ptr(): t for t in reference.values()}.values())
    if not hidden or registered >= wanted:
        return None
    return fail(exercise, "parameters not registered",
                f"{len(list(student.parameters()))} of your {type(student).__name__}'s parameters are registered "
                f"({registered} numbers; the reference has {wanted}): PyTorch does not see {', '.join(hidden)}.",
                f"unregistered: {', '.join(hidden)}",
                "use nn.Linear/nn.Parameter, or nn.ModuleList / nn.ModuleDict instead of a list or dict")


def names_differ(exercise: str, student: nn.Module, wanted: Sequence[str], hint: str) -> CheckResult | None:
    """A failed result when the exercise text names the parameters (LayerNorm's weight and bias) and the student's
    are named otherwise: loaded here by shape, a state dict is loaded by name elsewhere. None when they agree."""
    ours = [n for n, _ in student.named_parameters()]
    if sorted(ours) == sorted(wanted):
        return None
    return fail(exercise, "parameters named otherwise than the exercise's", f"Your numbers are right, but the "
                f"exercise names the parameters {', '.join(wanted)}; yours are {', '.join(ours) or 'none'}. A "
                "state dict (GPT-2's weights, a saved checkpoint) is loaded by name, so yours would not be found.",
                f"your parameters: {', '.join(ours) or 'none'}\nthe exercise's:  {', '.join(wanted)}", hint)


def _shared(ours: dict, reference: dict) -> list[tuple[str, str]]:
    """Pairs of the student's modules (by prefix) whose parameters are one tensor where the reference's are two (a
    tie the reference has too, lm_head and wte, is not one)."""
    pairs, names = [], list(ours)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            tied = a in reference and b in reference and reference[a].data_ptr() == reference[b].data_ptr()
            if ours[a] is ours[b] and not tied:
                pair = (a.rsplit(".", 1)[0], b.rsplit(".", 1)[0])
                if pair not in pairs:
                    pairs.append(pair)
    return pairs


def load_or_fail(exercise: str, student: nn.Module, reference: dict, what: str) -> CheckResult | None:
    """load_reference_weights, with its error turned into a failed result (None when it worked)."""
    try:
        load_reference_weights(student, reference, what)
    except ReferenceWeightsError as e:
        ours = dict(student.named_parameters(remove_duplicate=False))  # a tied weight under each of its names
        shared = _shared(ours, reference)
        if shared and all(n in ours for n in reference):  # every name there, but two of them one tensor
            said = ", ".join(f"{b} is {a}" for a, b in shared)
            return fail(exercise, f"one module under two names ({said}): its parameters shared",
                        f"Your parameters have every name of the reference, but {said}: one module (one set of "
                        "parameters) assigned to two attributes, so loading the weights of one overwrites the other "
                        "and both places compute with the same numbers.", str(e),
                        "build each layer separately: self.ln_2 = LayerNorm(...), not self.ln_2 = self.ln_1")
        resized = [f"{n} {tuple(ours[n].shape)} (reference {tuple(t.shape)})" for n, t in reference.items()
                   if n in ours and ours[n].shape not in (t.shape, t.mT.shape if t.dim() >= 2 else t.shape)]
        if resized:  # the same names, other sizes: a layer built with the wrong width
            return fail(exercise, "parameter shapes differ from the reference", "Your layers have the reference's "
                        f"names but other sizes; {e}", "\n".join(resized),
                        "check each layer's in/out sizes against the exercise (e.g. the MLP's hidden width 4 * C)")
        biases = [n for n in reference if n.endswith(".bias") or n == "bias"]
        if not [n for n in reference if n not in biases and n not in ours] and all(n not in ours for n in biases) \
                and biases and len(ours) == len(reference) - len(biases):  # every weight fits, no bias anywhere
            return fail(exercise, "layers built without a bias (bias=False)", f"Your layers have every weight "
                        f"of the reference but none of its biases ({', '.join(biases)}).", str(e),
                        hint="nn.Linear(..., bias=True), the default (the exercise's config has bias=True)")
        missing = [n for n in reference if n not in ours]
        if missing and all(n in biases for n in missing) and all(n in reference for n in ours):
            layers = ", ".join(n.rsplit(".", 1)[0] for n in missing)  # some layers' biases only: those layers
            return fail(exercise, f"{layers} built without its bias (bias=False)", f"Your parameters are the "
                        f"reference's except {', '.join(missing)}: {layers} has no bias.", str(e),
                        hint="nn.Linear(..., bias=True), the default (the exercise's config has bias=True)")
        extra = [n for n in ours if n not in reference]
        if extra and all(n.endswith(".bias") for n in extra) and all(n in ours for n in reference):
            layers = ", ".join(n.rsplit(".", 1)[0] for n in extra)  # the reference's weights, and a bias more
            return fail(exercise, f"{layers} with a bias the reference does not have", f"Your parameters are the "
                        f"reference's plus {', '.join(extra)}: a bias that the exercise's layer has no place for.",
                        str(e), hint="bias=False (or an nn.Embedding / a plain parameter, which have none)")
        biased = [n for n in extra if n.endswith(".bias")]
        weights = sorted(tuple(p.shape) for n, p in ours.items() if n not in biased)
        if biased and not biases and weights == sorted(tuple(t.shape) for t in reference.values()):
            layers = ", ".join(n.rsplit(".", 1)[0] for n in biased)  # nn.Linear's default bias=True, say
            return fail(exercise, f"{layers} with a bias the reference does not have", f"Your weights have the "
                        f"reference's shapes, plus {', '.join(biased)}: a bias that the exercise's layer has no place "
                        "for (nn.Linear adds one by default).", str(e),
                        hint="bias=False (or an nn.Embedding / a plain parameter, which have none)")
        return fail(exercise, "reference weights do not fit your parameters", str(e),
                    hint="a checker compares your module with the reference on the *same* weights, so your "
                         "parameters must have the same shapes (a different count means a missing or extra layer)")
    return None


def construct(exercise: str, cls: Any, *args: Any) -> tuple[nn.Module | None, CheckResult | None]:
    """(the student's module, None), or (None, a failed result) when their constructor raised."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"expected your class (a subclass of nn.Module), got {cls!r}; "
                        "pass the class itself (not an instance or a function)")
    shown = ", ".join(type(a).__name__ if not isinstance(a, (int, float)) else repr(a) for a in args)
    try:
        student = build(cls, *args)
    except Exception as e:
        return None, crashed(exercise, f"{cls.__name__}({shown})", e, f"the checker builds your class as "
                             f"{cls.__name__}({shown}), as the exercise text does: check what __init__ takes")
    if "_modules" not in vars(student):  # an __init__ that assigns nothing and never calls nn.Module's
        return None, fail(exercise, "super().__init__() not called first", "Your __init__ never called "
                          "nn.Module's, which sets up the registries that hold parameters and layers.",
                          f"{cls.__name__}({shown})", "call super().__init__() as the first line of your __init__")
    watch(student)  # its forward works on copies of its inputs when the checker is watching (in_place.py)
    return student, None


def student_with_reference_weights(exercise: str, cls: Any, reference: dict,
                                   *args: Any) -> tuple[nn.Module | None, CheckResult | None]:
    """cls(*args) with the reference's weights loaded, in eval mode, and None; or (None, the failed result) when the
    constructor raised or the weights do not fit. Every checker starts here."""
    student, problem = construct(exercise, cls, *args)
    if problem is None:
        problem = unregistered(exercise, student, reference)
    if problem is None:
        problem = load_or_fail(exercise, student, reference, f"your {cls.__name__}")
    return (None, problem) if problem is not None else (student.eval(), None)
