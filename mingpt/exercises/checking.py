"""
What every checker shares: the result object, running the student's code (and reading their own line when it
raises), and writing a counter-example a student can read. Building a student's class and loading the reference
weights into it is loading.py.

The one idea: a checker does not stop at "mismatch". It owns the reference, so it can *rebuild the student's
likely mistake* (a "variant" of the reference with that one mistake in it) and test which property the student's
code breaks. A `CheckResult` names that property, shows a tiny concrete counter-example and hints at the fix
without giving the solution away. Its ``str`` is the whole message, so in a notebook the last line of a cell,
``check_attention(MyAttention)``, displays it; ``.raise_if_failed()`` turns a failure into an `ExerciseFailed`
(an AssertionError) for autograded test cells.
"""

from __future__ import annotations

import inspect
import os
import sysconfig
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

__all__ = ["CheckResult", "ExerciseFailed", "ReferenceWeightsError", "Variant", "fmt", "close", "first_match"]


@dataclass
class CheckResult:
    """The outcome of one checker. ``bool(result)`` is True when it passed; ``str(result)`` is the message."""

    exercise: str
    passed: bool
    property: str = ""  # the name of the broken property, e.g. "future leakage"
    explanation: str = ""  # one or two sentences: what the property is and what went wrong
    counterexample: str = ""  # small concrete inputs and the two outputs
    hint: str = ""  # where to look, without the solution
    checked: list[str] = field(default_factory=list)  # what was verified (shown on success)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"PASSED {self.exercise}: " + "; ".join(self.checked)
        lines = [f"FAILED {self.exercise}: {self.property}"]
        if self.explanation:
            lines.append(f"  {self.explanation}")
        if self.counterexample:
            lines.append("  counter-example:")
            lines += [f"    {line}" for line in self.counterexample.strip("\n").split("\n")]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    __repr__ = __str__  # a notebook shows the message, not a dataclass dump

    def raise_if_failed(self) -> "CheckResult":
        """Raise `ExerciseFailed` (an AssertionError whose message is this result) unless the check passed."""
        if not self.passed:
            raise ExerciseFailed(self)
        return self


class ExerciseFailed(AssertionError):
    """A failed check, raised; ``.result`` is the `CheckResult`. An AssertionError, so nbgrader scores it 0."""

    def __init__(self, result: CheckResult):
        super().__init__(str(result))
        self.result = result


class ReferenceWeightsError(ValueError):
    """The reference weights cannot be mapped onto the student's parameters (names and shapes both disagree)."""


@dataclass
class Variant:
    """The reference with one known mistake: if the student's output matches it, that mistake is the diagnosis."""

    property: str
    compute: Callable[..., Any]  # same call signature as the thing being checked
    explanation: str
    hint: str
    knobs: dict | None = None  # the reference's keyword arguments that make this mistake (compose.py pairs them)


def fail(exercise: str, property: str, explanation: str, counterexample: str = "", hint: str = "") -> CheckResult:
    return CheckResult(exercise, False, property, explanation, counterexample, hint)


def not_implemented(exercise: str, where: str) -> CheckResult:
    return fail(exercise, "not implemented yet", f"{where} raised NotImplementedError.",
                hint="replace the `raise NotImplementedError` placeholder with your code, then run the check again")


SHAPE_HINT = "read the exception: shapes in the comments, (B, T, C) and (B, nh, T, hs), help to find it"


def student_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback in the *student's* code: not torch's, not the checker's, not Python's."""
    skip = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)),
            sysconfig.get_paths()["stdlib"])
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not os.path.abspath(f.filename).startswith(skip)]
    return frames[-1] if frames else None


# Crashes whose cause torch's message itself states: (its words, the name, why, the fix).
TORCH_SAYS = [
    ("view size is not compatible with input tensor's size and stride",
     ".view on a non-contiguous tensor (after a transpose or a slice)",
     ".view needs a tensor whose elements lie in row order in memory; a transposed or sliced one does not.",
     "use .reshape(...), or .contiguous().view(...)"),
    *[(words, "float64 (double) tensors mixed with float32 ones", "torch does not mix float32 and float64 in one "
       "operation: something was made or stored as float64 (a .double(), torch.tensor of Python floats, NumPy's "
       "default float64) where the model works in float32.", "keep the dtype you were given (x.dtype): drop the "
       ".double() or dtype=torch.float64") for words in ("expected scalar type Float but found Double",
                                                          "expected scalar type Double but found Float",
                                                          "float != double", "double != float")],
    ("expected m1 and m2 to have the same dtype", "an integer tensor multiplied with a float one",
     "A matmul needs both sides of one dtype; F.one_hot and torch.arange give int64.",
     "convert the integer side with .float()"),
    ("Expected target size", "cross_entropy given 3-D logits (B, T, V): it reads axis 1 as the classes",
     "F.cross_entropy takes (N, V) logits with (N,) targets, or (B, V, T) with (B, T): axis 1 is always the class "
     "axis, so (B, T, V) logits are read as T classes.", "flatten: logits.view(-1, V), targets.view(-1)"),
    ("before Module.__init__() call", "super().__init__() not called first",
     "nn.Module's own __init__ sets up the registries that hold parameters and layers, so assigning a layer or a "
     "parameter before it runs fails.", "call super().__init__() as the first line of your __init__"),
    ("Expected weight to be of same shape as normalized_shape", "layer_norm's normalized_shape is not (C,)",
     "normalized_shape names the trailing axes normalised together: a LayerNorm over the channels needs just the "
     "last one, (C,), the shape of its weight.", "F.layer_norm(x, (C,), weight, bias, eps)"),
    ("masked_fill_ only supports boolean masks", "a float mask given to masked_fill (it needs a bool mask)",
     "masked_fill(mask, value) writes value where mask is True, so the mask must be a bool tensor; a mask of 0.0s "
     "and 1.0s (torch.tril(torch.ones(T, T)), 1 - mask) is refused.",
     "compare it into a bool: masked_fill(mask == 0, float('-inf')), or build it with dtype=torch.bool"),
    *[(f"Long, Int; but got torch.{kind}Tensor",
       f"{dtype} indices given to an embedding (token ids and positions must be int64)",
       f"An embedding looks its rows up by int64 (or int32) indices; yours are {dtype}, which it refuses, and which "
       f"could not hold every id anyway ({dtype} {span}).", "keep the ids int64 (idx as given, torch.arange(T)); "
       f"no .to({dtype}) / .{cast}()") for kind, dtype, cast, span in (
          ("Byte", "torch.uint8", "byte", "stops at 255"), ("Char", "torch.int8", "char", "stops at 127"),
          ("Short", "torch.int16", "short", "stops at 32767"))],
    ("Expected tensor for argument #1 'indices' to have one of the following scalar types",
     "float indices given to an embedding (token ids and positions must be integers)",
     "An embedding looks its rows up by integer index; a tensor of floats (torch.arange(T, dtype=torch.float), "
     "torch.arange(float(T)), a tensor built from floats) is refused.",
     "torch.arange(T) is int64 already; or convert with .long()"),
    ("expected target dtype to be Long", "cross_entropy's targets given as floats (class ids must be integers)",
     "F.cross_entropy takes class indices as int64; float targets are read as probabilities or refused.",
     "pass the targets as they are (int64), without .float()"),
    ("Cannot assign non-leaf Tensor to parameter", "a parameter updated in place with autograd on (no torch.no_grad())",
     "Adding a tensor that requires grad (made from trainable parameters) into a parameter records the addition in "
     "the graph, so the parameter is no longer a leaf and torch refuses to keep it.",
     "put the update under torch.no_grad() (or decorate the method with @torch.no_grad())"),
    ("Subtraction, the `-` operator, with a bool tensor is not supported", "1 - mask on a bool tensor (torch has no "
     "- for bools)", "A bool mask cannot be subtracted from (1 - mask, mask - 1): torch refuses arithmetic on bools; "
     "inverting a mask is its own operation.", "~mask (or mask.logical_not())"),
    ("only one element tensors can be converted to Python scalars",
     "a tensor of several numbers given to a function of one number (math.sqrt, math.log, float(), int())",
     "Python's math functions, float() and int() take one number; given a tensor of several, torch refuses the "
     "conversion. Elementwise on a tensor is torch's own function.", "torch.sqrt(t) / t.sqrt(), torch.log(t), "
     "t.exp(): torch's versions work on every element"),
    ("'tuple' object has no attribute", "a tuple used as a tensor (a call that returns several values, such as "
     "model(idx) -> (logits, loss), not unpacked)", "The value your code treats as a tensor is a tuple: a function "
     "or model that returns several values (mingpt's GPT returns (logits, loss)) was not unpacked.",
     "unpack it: logits, _ = model(idx), or model(idx)[0]"),
    ("a leaf Variable that requires grad is being used in an in-place operation",
     "a parameter updated in place with autograd on (no torch.no_grad())", "An in-place change of a parameter that "
     "requires grad would corrupt the graph that backward needs, so torch refuses it outside torch.no_grad().",
     "put the update under torch.no_grad() (or decorate the method with @torch.no_grad())"),
]


def crashed(exercise: str, where: str, error: BaseException, hint: str = SHAPE_HINT) -> CheckResult:
    """A student's code raised: show the exception and the student's own line (file, line, code), not torch's."""
    if isinstance(error, NotImplementedError):
        return not_implemented(exercise, where)
    frame = student_frame(error)
    at = (f"\n    at {os.path.basename(frame.filename)}, line {frame.lineno}: `{frame.line}`"
          if frame is not None and frame.line else "")
    if getattr(error, "diagnosis", None):  # a checker's own guard (an endless loop stopped) says what it caught
        name, why, fix = error.diagnosis
        return fail(exercise, name, why, f"{where} raised {type(error).__name__}: {error}{at}", hint=fix)
    for words, name, why, fix in TORCH_SAYS:  # torch's own words state the fact: name it (its own fix, not `hint`)
        if words in str(error):
            return fail(exercise, name, why, f"{where} raised {type(error).__name__}: {error}{at}", hint=fix)
    return fail(exercise, "your code raised an exception", f"{where} raised {type(error).__name__}: {error}{at}",
                hint=hint)


# ------------------------------------------------------------------------------------------ numbers and text
def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when a and b are tensors of the same shape and equal within tolerance (NaN never equals)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol))


def fmt(t: Any, n: int = 4) -> str:
    """A short readable tensor/list: the first n numbers, 4 significant digits, '...' if cut."""
    if isinstance(t, torch.Tensor):
        values = t.detach().flatten().tolist()
    else:
        values = list(t)
    shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values[:n])
    return "[" + shown + (", ..." if len(values) > n else "") + "]"


def first_match(student_output: Any, variants: Sequence[Variant], *args, atol: float = 1e-5) -> Variant | None:
    """The first variant whose output equals the student's on the same inputs, or None."""
    for variant in variants:
        try:
            expected = variant.compute(*args)
        except Exception:  # a variant that cannot run on these inputs simply does not match
            continue
        if close(student_output, expected, atol=atol, rtol=atol):
            return variant
    return None


def run(exercise: str, where: str, fn: Callable, *args: Any, hint: str = SHAPE_HINT) -> tuple[Any, CheckResult | None]:
    """(fn(*args), None), or (None, a failed result) when the student's code raised or cannot take these arguments."""
    try:
        inspect.signature(fn).bind(*args)
    except TypeError as e:  # the call itself cannot be made: say so, rather than let a table name the TypeError
        return None, fail(exercise, "your function takes other arguments than the exercise's", f"The checker calls "
                          f"it with {len(args)} arguments; yours takes {inspect.signature(fn)}: {e}.", where,
                          "use the signature given in the exercise text, default values included")
    except ValueError:  # no signature to read (a builtin): just call it
        pass
    try:
        return fn(*args), None
    except Exception as e:
        return None, crashed(exercise, where, e, hint)
