"""
Checking a student's conversion of Hugging Face GPT-2 weights to mingpt's layout.

The one idea: OpenAI's GPT-2 was written with a "Conv1D" layer that stores its weight as (in, out), the
transpose of nn.Linear's (out, in). The four matmuls of each Block (c_attn, attn c_proj, c_fc, mlp c_proj)
must be transposed on the way in. Three of them change shape, so a forgotten transpose fails loudly; the
attention's c_proj is square (C, C), so forgetting *it* loads without complaint and gives a model that is
quietly wrong. The checker compares values, not only shapes, to catch exactly that.

    from mingpt.exercises import check_hf_conversion
    check_hf_conversion(my_convert)   # my_convert(hf_state_dict) -> state dict for mingpt.model.GPT
"""

from __future__ import annotations

import torch

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, close, fail, run
from mingpt.io.pretrained import state_dict_to_hf
from mingpt.model import GPT

__all__ = ["check_hf_conversion"]


def check_hf_conversion(fn, seed: int = 0) -> CheckResult:
    """Check fn(hf_state_dict) -> mingpt state dict on a small random GPT-2 written in Hugging Face's layout."""
    exercise = "GPT-2 weight conversion"
    config = attention_config()
    config.n_layer = 2
    torch.manual_seed(seed)
    model = GPT(config)
    want = model.state_dict()
    hf = state_dict_to_hf(model)
    hf_copy = {k: v.clone() for k, v in hf.items()}
    got, problem = run(exercise, "your conversion(hf_state_dict)", fn, hf_copy)
    if problem is not None:
        return problem
    if not isinstance(got, dict):
        return fail(exercise, "must return a dict", f"yours returned {type(got).__name__}",
                    hint="a state dict: {name: tensor}")
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        return fail(exercise, "names do not match mingpt's", "Every mingpt parameter needs exactly one tensor.",
                    f"missing: {missing[:4]}\nunexpected: {extra[:4]}",
                    "print both key lists side by side; the names are the same apart from any prefix")
    for name in want:
        a, b = got[name], want[name]
        if close(a, b):
            continue
        is_conv1d = name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
        if isinstance(a, torch.Tensor) and a.dim() == 2 and close(a.t(), b):
            if is_conv1d:
                square = " (it is square, so loading it would not even complain)" if a.shape[0] == a.shape[1] else ""
                return fail(exercise, "Conv1D weight not transposed",
                            "Hugging Face's GPT-2 stores c_attn, c_proj and c_fc weights as (in, out); nn.Linear "
                            f"wants (out, in).{square}",
                            f"{name}: yours has shape {tuple(a.shape)}, values equal to the expected transposed",
                            "transpose exactly the weights of those four layers")
            return fail(exercise, "transposed a weight that was already right",
                        f"{name} is not a Conv1D weight: embeddings and lm_head are stored the same way in both.",
                        f"{name}: yours {tuple(a.shape)}, expected {tuple(b.shape)}",
                        "transpose only c_attn, c_proj and c_fc weights")
        return fail(exercise, "wrong values", "A converted tensor does not match the original weights.",
                    f"{name}: shapes yours {tuple(getattr(a, 'shape', ()))}, expected {tuple(b.shape)}",
                    "copy tensors as they are, transposing only the Conv1D weights")
    return CheckResult(exercise, True, checked=["names", "Conv1D weights transposed (the square c_proj too)"])
