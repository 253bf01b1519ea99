"""
The mistakes of a GPT-2 weight conversion, one tensor or one key at a time (used by pretrained.py).

The one idea: a conversion is a function applied to each tensor separately, so its mistakes can be rebuilt per
tensor. For every tensor that differs, the checker rebuilds what each known slip would have produced from the
same Hugging Face tensor (left untransposed, transposed although it was right, reshaped instead of transposed,
q/k/v blocks reordered, cast to another dtype); for the key names, what each known slip would have left out or
added (the mask buffers kept, c_attn.bias dropped by a substring test, every bias dropped, lm_head not tied, a
prefix added or removed). A slip is named only when it reproduces every tensor and key it is blamed for; anything
left over makes the checker say it does not recognise the mistake and show where it is.
"""

from __future__ import annotations

import itertools

import torch

from mingpt.exercises.checking import close

__all__ = ["Finding", "key_findings", "tensor_findings", "BUFFERS", "CONV1D"]

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
BUFFERS = (".attn.bias", ".attn.masked_bias")  # the causal-mask buffers real GPT-2 checkpoints carry per layer
PREFIX = "transformer."


class Finding:
    """One named slip: its property (the name shown), what it is, an example, and where to look."""

    def __init__(self, property: str, explanation: str, example: str, hint: str):
        self.property, self.explanation, self.example, self.hint = property, explanation, example, hint


def _bare(key: str) -> str:
    while key.startswith(PREFIX):
        key = key[len(PREFIX):]
    return key


def key_findings(got: dict, want: dict) -> tuple[list[Finding], dict[str, str], list[str], list[str]]:
    """The key slips that explain the differences between the student's names and mingpt's, a map from mingpt's
    names to the student's (for comparing values under a wrong prefix), and the missing and unexpected keys that
    no known slip explains."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    found, rename = [], {k: k for k in want if k in got}
    buffers = [k for k in extra if k.endswith(BUFFERS)]
    if buffers:
        found.append(Finding("kept the attention-mask buffers",
                             "Hugging Face's GPT-2 checkpoints store each layer's causal mask as buffers; mingpt "
                             "builds its mask on the fly and has no such keys.", f"unexpected: {buffers[:2]}",
                             "skip keys ending in '.attn.bias' or '.attn.masked_bias'"))
        extra = [k for k in extra if k not in buffers]
    by_bare = {_bare(k): k for k in extra}
    moved = [m for m in missing if _bare(m) in by_bare]
    if moved:
        theirs = by_bare[_bare(moved[0])]
        found.append(Finding("wrong 'transformer.' prefix on the names",
                             "mingpt's names are Hugging Face's GPT2LMHeadModel names: 'transformer.h.0...', "
                             "'lm_head.weight'.", f"yours: {theirs!r}, mingpt's: {moved[0]!r}",
                             "keep the names as they are (add 'transformer.' only to a key that lacks it)"))
        for m in moved:
            rename[m] = by_bare.pop(_bare(m))
        missing, extra = [m for m in missing if m not in moved], sorted(by_bare.values())
    renamed = _renamed(missing, extra)
    if renamed:
        pairs = ", ".join(f"{a!r} -> {b!r}" for a, b in sorted(set(renamed.values())))
        found.append(Finding("names changed (" + pairs + ")", "mingpt keeps Hugging Face's module names (c_attn, "
                             "c_proj, c_fc, ln_1, ln_2, wte, wpe, ln_f); yours renames some of them.",
                             f"yours: {next(iter(renamed))[1]!r}, mingpt's: {next(iter(renamed))[0]!r}",
                             "keep every name as it is; only transpose the Conv1D weights"))
        for (m, e) in renamed:
            rename[m] = e
        missing = [m for m in missing if m not in {m for m, _ in renamed}]
        extra = [e for e in extra if e not in {e for _, e in renamed}]
    biases = [k for k in want if k.endswith(".bias")]
    c_attn_biases = [k for k in biases if k.endswith("attn.c_attn.bias")]
    if missing and set(biases) <= set(missing):
        found.append(Finding("every bias dropped", "Skipping the mask buffers with a test on 'bias' drops the "
                             "layers' real biases too.", f"missing: {missing[:3]}",
                             "skip only keys ending in '.attn.bias' or '.attn.masked_bias'"))
        missing = [k for k in missing if k not in biases]
    elif missing and set(c_attn_biases) <= set(missing):
        found.append(Finding("c_attn.bias dropped with the mask buffers",
                             "'attn.bias' in key is also true of 'h.0.attn.c_attn.bias': a substring test on the "
                             "buffer's name drops the query/key/value biases too.", f"missing: {c_attn_biases[:2]}",
                             "test key.endswith('.attn.bias'), not 'attn.bias' in key"))
        missing = [k for k in missing if k not in c_attn_biases]
    layers = sorted({k.split(".")[2] for k in missing if k.startswith(PREFIX + "h.")})
    whole = [k for k in want if k.startswith(tuple(f"{PREFIX}h.{i}." for i in layers))]
    if layers and set(whole) <= set(missing):
        found.append(Finding(f"layer(s) {', '.join(layers)} not converted", "Every Block of the checkpoint has "
                             "the same keys under transformer.h.<i>; yours leaves some blocks out (a loop over too "
                             "few layers?).", f"missing: {whole[:2]}", "loop over range(config.n_layer) (count the "
                             "h.<i> prefixes), or over every key of the checkpoint"))
        missing = [k for k in missing if k not in whole]
    if "lm_head.weight" in missing:
        found.append(Finding("lm_head.weight missing", "GPT-2 ties its output layer to the token embedding, but "
                             "mingpt's state dict still lists lm_head.weight: load_state_dict needs it.",
                             "missing: ['lm_head.weight']",
                             "out['lm_head.weight'] = out['transformer.wte.weight'] (the same tensor)"))
        missing.remove("lm_head.weight")
    if missing and not extra:  # the checkpoint holds these very names: the conversion filtered them out
        found.append(Finding(f"dropped {'a tensor' if len(missing) == 1 else 'tensors'} the checkpoint has: "
                             + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else ""),
                             "Every key of mingpt's state dict is in the Hugging Face checkpoint under the same name "
                             "(GPT-2 has a learned position table wpe, every LayerNorm a bias, ...); your conversion "
                             "left these out, so load_state_dict would fail on them.", f"missing: {missing[:4]}",
                             "skip only the mask buffers ('.attn.bias', '.attn.masked_bias'); keep every other key"))
        missing = []
    return found, rename, missing, extra


def _renamed(missing: list[str], extra: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """{(mingpt's key, yours): (old part, new part)} when every pairing renames one dotted part of the name (the same
    part count, all else equal), the same way wherever that part occurs; {} otherwise."""
    pairs, renames = {}, {}
    for m in missing:
        ms = m.split(".")
        for e in extra:
            es = e.split(".")
            diff = [i for i in range(len(ms)) if len(es) == len(ms) and ms[i] != es[i]]
            if len(diff) == 1 and renames.get(ms[diff[0]], es[diff[0]]) == es[diff[0]]:
                renames[ms[diff[0]]] = es[diff[0]]
                pairs[m, e] = (ms[diff[0]], es[diff[0]])
                break
    used = {e for _, e in pairs}
    return pairs if len(pairs) == len(missing) and used == set(extra) and missing else {}


def _qkv_orders(hf: torch.Tensor, want: torch.Tensor):
    """c_attn's weight (or bias) with its q, k, v blocks in every wrong order (rebuilt from three parts)."""
    blocks = want.chunk(3, dim=0)
    for order in itertools.permutations(range(3)):
        if order != (0, 1, 2):
            yield order, torch.cat([blocks[i] for i in order], dim=0)


def tensor_findings(name: str, mine, hf: torch.Tensor, want: torch.Tensor, others: dict | None = None) -> list[Finding]:
    """Every known slip that turns Hugging Face's tensor `hf` into the student's `mine` (mingpt wants `want`).
    Several can: for the square attn.c_proj, a reshape *is* no transpose. The checker keeps the slip that explains
    the most tensors. others: mingpt's whole state dict, to recognise a tensor stored under another key's name."""
    found = [f for f in _candidates(name, mine, hf, want) if f is not None]
    return found + ([] if found or others is None else _under_another_name(name, mine, others))


def _under_another_name(name: str, mine, others: dict) -> list[Finding]:
    """The student's tensor for `name` is exactly mingpt's tensor of another key (the checker's weights are random,
    so equality identifies that key): weight and bias of one module swapped, or two keys' tensors exchanged."""
    if not isinstance(mine, torch.Tensor):
        return []
    sources = [k for k, t in others.items() if k != name and t.shape == mine.shape and close(mine, t)]
    if len(sources) != 1:  # none, or ambiguous: name nothing
        return []
    module, _, own = name.rpartition(".")
    if sources[0] == f"{module}.{'bias' if own == 'weight' else 'weight'}":
        return [Finding("weight and bias swapped", "A module's weight (the LayerNorm gain, near 1) and its bias "
                        "(near 0) are stored under each other's names.", f"{name}: yours holds {sources[0]}",
                        "copy each key's tensor under its own name")]
    return [Finding("tensors stored under the wrong keys", "Each key must hold the checkpoint's tensor of the same "
                    "name; yours holds another key's.", f"{name}: yours holds {sources[0]}",
                    "copy each key's tensor under its own name")]


def _candidates(name: str, mine, hf: torch.Tensor, want: torch.Tensor):
    if not isinstance(mine, torch.Tensor):
        yield Finding("values are not tensors", "load_state_dict copies torch tensors; yours returned "
                       f"{type(mine).__name__} values.", f"{name}: {type(mine).__name__}",
                       "keep every value a torch.Tensor (no .numpy(), .tolist())")
        return
    if mine.dtype != want.dtype and mine.is_floating_point() and mine.shape == want.shape:
        tol = torch.finfo(mine.dtype).eps * 4
        if close(mine.double(), want.double(), atol=tol, rtol=tol):
            yield Finding(f"dtype changed to {str(mine.dtype).removeprefix('torch.')}",
                           f"The checkpoint is {want.dtype}; casting loses precision for every weight.",
                           f"{name}: yours {mine.dtype}, expected {want.dtype}", "keep the tensors' dtype")
    conv = name.endswith(CONV1D)
    if conv and close(mine, hf):
        square = " (it is square, so loading it would not even complain)" if hf.shape[0] == hf.shape[1] else ""
        yield Finding("Conv1D weight not transposed", "Hugging Face's GPT-2 stores c_attn, c_proj and c_fc "
                       f"weights as (in, out); nn.Linear wants (out, in).{square}",
                       f"{name}: yours has shape {tuple(mine.shape)}, values equal to the expected transposed",
                       "transpose exactly the weights of those four layers")
    if not conv and want.dim() == 2 and close(mine, want.t()):
        yield Finding("transposed a weight that was already right", f"{name} is not a Conv1D weight: "
                       "embeddings and lm_head are stored the same way in both.",
                       f"{name}: yours {tuple(mine.shape)}, expected {tuple(want.shape)}",
                       "transpose only c_attn, c_proj and c_fc weights")
    if conv and close(mine, hf.reshape(want.shape)):
        yield Finding("reshape/view instead of transpose", "reshape keeps the elements in memory order, so "
                       "(in, out) read as (out, in) scrambles the weight; only a transpose swaps the axes.",
                       f"{name}: yours equals hf.reshape{tuple(want.shape)}", "use .t() (or .transpose(0, 1))")
    if name.endswith("attn.c_attn.weight") and mine.shape == hf.shape:
        parts = torch.cat([w.t() for w in hf.split(hf.shape[0], dim=1)], dim=1)
        if close(mine, parts):
            yield Finding("q, k, v concatenated along the wrong axis", "Transposed one by one, the three (C, C) "
                          "blocks must be stacked along dim 0 into (3C, C); yours stacks them along dim 1.",
                          f"{name}: yours {tuple(mine.shape)}, expected {tuple(want.shape)}",
                          "torch.cat([...], dim=0), or simply transpose the whole (C, 3C) weight")
    if name.endswith(("attn.c_attn.weight", "attn.c_attn.bias")) and mine.shape == want.shape:  # the bias too:
        for order, wrong in _qkv_orders(hf, want):  # its 3C entries are q's, k's, v's like the weight's rows
            if close(mine, wrong):
                yield Finding("q, k, v blocks of c_attn in the wrong order", "c_attn's output is q, then k, then "
                               "v (C rows each after the transpose); yours has them as "
                               + ", ".join("qkv"[i] for i in order) + ".", f"{name}: block order {order}",
                               "keep the three blocks in the checkpoint's order: q, k, v")
