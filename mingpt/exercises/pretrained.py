"""
Checking a student's conversion of Hugging Face GPT-2 weights to mingpt's layout.

The one idea: OpenAI's GPT-2 was written with a "Conv1D" layer that stores its weight as (in, out), the
transpose of nn.Linear's (out, in). The four matmuls of each Block (c_attn, attn c_proj, c_fc, mlp c_proj)
must be transposed on the way in. Three of them change shape, so a forgotten transpose fails loudly; the
attention's c_proj is square (C, C), so forgetting *it* loads without complaint and gives a model that is
quietly wrong. The checker compares values, not only shapes, to catch exactly that. Its checkpoint also carries
the causal-mask buffers (attn.bias, attn.masked_bias) that real GPT-2 files hold and mingpt has no place for; every
slip it names is rebuilt per key and per tensor in pretrained_mistakes.py.

    from mingpt.exercises import check_hf_conversion
    check_hf_conversion(my_convert)   # my_convert(hf_state_dict) -> state dict for mingpt.model.GPT
"""

from __future__ import annotations

import collections
import re

import torch

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, close, fail, run
from mingpt.exercises.compare import NOT_RECOGNISED, where_it_differs
from mingpt.exercises.pretrained_mistakes import CONV1D, Finding, key_findings, tensor_findings
from mingpt.io.pretrained import state_dict_to_hf
from mingpt.model import GPT

__all__ = ["check_hf_conversion"]

EXERCISE = "GPT-2 weight conversion"


def hf_checkpoint(model: GPT) -> dict:
    """model's weights as a Hugging Face GPT-2 checkpoint holds them: Conv1D layouts, and each layer's causal-mask
    buffers (attn.bias, attn.masked_bias), which mingpt does not have."""
    hf, T = {}, model.config.block_size
    for name, tensor in state_dict_to_hf(model).items():
        hf[name] = tensor
        if name.endswith("attn.c_proj.bias"):
            layer = name.removesuffix("c_proj.bias")
            hf[layer + "bias"] = torch.ones(T, T, dtype=torch.bool).tril().view(1, 1, T, T)
            hf[layer + "masked_bias"] = torch.tensor(-1e4)
    return hf


def _changed(before: dict, after: dict) -> str | None:
    """The first key of the caller's dict that the conversion changed (added, removed, reshaped or rewritten)."""
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None or not isinstance(b, torch.Tensor) or a.shape != b.shape or not torch.equal(a, b):
            return key
    return None


def check_hf_conversion(fn, seed: int = 0) -> CheckResult:
    """Check fn(hf_state_dict) -> mingpt state dict on a small random GPT-2 written in Hugging Face's layout (with
    the mask buffers a real checkpoint carries). Every differing key and tensor must be explained by a known slip
    for the checker to name it (two slips are named together); otherwise it shows where the conversion differs."""
    config = attention_config()
    config.n_layer = 2
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():  # gains and biases away from 1 and 0, so that each tensor is told from every other
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    want = model.state_dict()
    hf = hf_checkpoint(model)
    hf_copy = {k: v.clone() for k, v in hf.items()}
    got, problem = run(EXERCISE, "your conversion(hf_state_dict)", fn, hf_copy,
                       hint="print each key with its shape before and after your conversion")
    if problem is not None:
        return _past_the_layers(problem, config.n_layer)
    if not isinstance(got, dict):
        return fail(EXERCISE, "must return a dict", f"yours returned {type(got).__name__}",
                    f"your conversion(hf_state_dict) returned {type(got).__name__}: {repr(got)[:120]}",
                    hint="a state dict: {name: tensor} (dict(pairs) turns a list of (name, tensor) into one)")
    found, rename, missing, extra = key_findings(got, want)
    unexplained, candidates = [], {}
    for name, theirs in rename.items():
        if not close(got[theirs], want[name]):
            candidates[name] = tensor_findings(name, got[theirs], hf[name], want[name], want)
            if not candidates[name]:
                unexplained.append(name)
    # each differing tensor is blamed on the slip that explains the most tensors (one slip, not two, for a reshape
    # that on the square c_proj is indistinguishable from no transpose)
    counts = collections.Counter(f.property for fs in candidates.values() for f in fs)
    for fs in candidates.values():
        if fs:
            best = max(fs, key=lambda f: counts[f.property])
            if best.property not in {f.property for f in found}:
                found.append(best)
    found = [_where_untransposed(f, candidates, want) for f in found]
    changed = _changed(hf, hf_copy)
    if changed is not None:
        found.append(_in_place_finding(changed))
    if missing or extra or unexplained:
        return _not_recognised(missing, extra, unexplained, got, rename, want, found)
    if found:
        first = found[0]
        if len(found) == 1:
            return fail(EXERCISE, first.property, first.explanation, first.example, first.hint)
        return fail(EXERCISE, f"{len(found)} mistakes: " + "; and ".join(f.property for f in found),
                    " ".join(f.explanation for f in found), "\n".join(f.example for f in found),
                    "; and ".join(f.hint for f in found))
    return CheckResult(EXERCISE, True, checked=["names", "Conv1D weights transposed (the square c_proj too)",
                                                "mask buffers dropped", "input left unchanged"])


def _where_untransposed(finding: Finding, candidates: dict, want: dict) -> Finding:
    """The finding "Conv1D weight not transposed", saying where when only some Conv1D weights were left (a loop over
    the attention's names only, a condition on the layer): the other weights being right is a fact the student needs,
    or they would transpose everything again."""
    if finding.property != "Conv1D weight not transposed":
        return finding
    left = sorted(n for n, fs in candidates.items() if any(f.property == finding.property for f in fs))
    layers = sorted({n.split(".")[2] for n in want if n.startswith("transformer.h.")})
    kinds = sorted({".".join(n.split(".")[3:5]) for n in left})
    in_layers = sorted({n.split(".")[2] for n in left})
    total = {f"transformer.h.{i}.{k}.weight" for i in layers for k in ("attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                                       "mlp.c_proj")}
    if set(left) >= total:  # all of them: the textbook slip, no place to name
        return finding
    if set(left) == {f"transformer.h.{i}.{k}.weight" for i in layers for k in kinds}:
        where = f"{', '.join(kinds)} only (in every layer)"
    elif set(left) == {f"transformer.h.{i}.{k}.weight" for i in in_layers for k in ("attn.c_attn", "attn.c_proj",
                                                                                    "mlp.c_fc", "mlp.c_proj")}:
        where = f"every Conv1D weight of layer {', '.join(in_layers)} only"
    else:
        where = ", ".join(left[:4]) + (" ..." if len(left) > 4 else "") + " only"
    return Finding(f"Conv1D weight not transposed: {where}", finding.explanation + " Yours transposes the other "
                   "Conv1D weights; these are left as Hugging Face stores them.", finding.example, finding.hint)


def _past_the_layers(problem: CheckResult, n_layer: int) -> CheckResult:
    """The crash, named when it is a KeyError for a layer the checkpoint does not have: a loop over a fixed number
    of layers (GPT-2 small's 12) instead of over the keys the checkpoint holds."""
    said = re.search(r"KeyError: '(?:transformer\.)?h\.(\d+)\.", problem.explanation)
    if said is None or int(said.group(1)) < n_layer:
        return problem
    return fail(EXERCISE, "a fixed number of layers: the loop asks for a layer the checkpoint does not have",
                f"This checkpoint has {n_layer} layers (h.0 .. h.{n_layer - 1}); your conversion asked for layer "
                f"{said.group(1)}, as a loop over a fixed count (GPT-2 small's 12) does. Models of other sizes have "
                "other counts.", problem.explanation, "loop over the checkpoint's own keys (for name, tensor in "
                "hf_state_dict.items()), or read the count from the keys or the config")


def _in_place_finding(key: str) -> Finding:
    return Finding("changes the Hugging Face state dict in place", "Your conversion changed the dict it was "
                   "given (a tensor transposed in place with t_(), or a key added, removed or replaced): the "
                   "Hugging Face model that owns those tensors is now broken.", f"changed: {key!r}",
                   "build a new dict; use .t() (a new view), never .t_() or assignments into the input")


def _not_recognised(missing, extra, unexplained, got, rename, want, found) -> CheckResult:
    """Where the conversion differs in a way no known slip explains (the named slips found beside it listed too)."""
    lines = []
    if missing or extra:
        lines.append(f"missing: {missing[:4]}\nunexpected: {extra[:4]}")
    if unexplained:
        name = unexplained[0]
        mine = got[rename[name]]
        if isinstance(mine, torch.Tensor) and mine.shape == want[name].shape:
            lines.append(f"{name}: " + where_it_differs(mine, want[name]))
        else:
            shape = tuple(mine.shape) if isinstance(mine, torch.Tensor) else type(mine).__name__
            lines.append(f"{name}: yours {shape}, expected {tuple(want[name].shape)}")
    also = (" Besides: " + "; ".join(f.property for f in found) + ".") if found else ""
    names = "names do not match mingpt's" if (missing or extra) and not unexplained else NOT_RECOGNISED
    return fail(EXERCISE, names, "Every mingpt parameter needs exactly one tensor, converted from the checkpoint's;"
                " no known slip explains what differs, so the checker names none." + also, "\n".join(lines),
                "copy tensors as they are, transposing only the Conv1D weights "
                f"({', '.join(s.split('.')[-2] for s in CONV1D[:3])}, c_proj); print both key lists side by side")
