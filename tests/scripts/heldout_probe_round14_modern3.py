"""The held-out probe, round 14, modern part, the end (imported at the end of heldout_probe_round14_modern2.py):
the LR schedule, the weight-decay groups and the short training run."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP, CausalSelfAttention

from heldout_probe_models import mistake, valid

# ------------------------------------------------------------------------------------------ LR schedule
L = ex.check_lr_schedule


def lr_with(warm="ok", prog="ok", amp=0.5, sign=1, floor="min", after="min", shape="cos", cmp="lt", kind=float):
    def f(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
        if (it < warmup_iters) if cmp == "lt" else (it <= warmup_iters):
            w = {"ok": (it + 1) / (warmup_iters + 1), "it": it / warmup_iters, "it1": (it + 1) / warmup_iters}[warm]
            return kind(learning_rate * w)
        lo = min_lr if floor == "min" else 0.0
        if it > lr_decay_iters:
            return kind(lo if after == "min" else learning_rate)
        span = lr_decay_iters - warmup_iters
        p = {"ok": (it - warmup_iters) / span, "zero": it / lr_decay_iters,
             "int": (it - warmup_iters) // span}[prog]
        c = {"cos": amp * (1 + sign * math.cos(math.pi * p)), "lin": 1 - p, "quarter": math.cos(math.pi * p / 2)}[shape]
        if floor == "nominus":
            return kind(min_lr + c * learning_rate)
        return kind(lo + c * (learning_rate - lo))
    return f


WARM = r"warm|\+ ?1|off by one|denominator|it ?\+ ?1|0 at the first step"  # (widened after the untuned count)
mistake(L, WARM)(lr_with(warm="it"))  # nanoGPT's first version: lr * it / warmup_iters
mistake(L, WARM)(lr_with(warm="it1"))  # nanoGPT's second: lr * (it + 1) / warmup_iters
mistake(L, r"0\.5|half|amplitude|coeff|factor|twice")(lr_with(amp=1.0))
mistake(L, r"warm|progress|offset|ratio|from 0|start")(lr_with(prog="zero"))
mistake(L, r"sign|increas|invert|upside|1 ?- ?cos|rises|goes up")  # (widened after the untuned count)(lr_with(sign=-1))
mistake(L, r"min_lr|floor|zero|\b0\b")(lr_with(floor="zero"))
mistake(L, r"min_lr|range|amplitude|lr ?- ?min_lr|minus")(lr_with(floor="nominus"))
mistake(L, r"after|beyond|end|min_lr|past|horizon")(lr_with(after="lr"))
mistake(L, r"integer|division|floor|//|round")(lr_with(prog="int"))
mistake(L, r"linear|cosine|shape")(lr_with(shape="lin"))
mistake(L, r"quarter|half|pi|cos|shape")(lr_with(shape="quarter"))
mistake(L, r"type|float|tensor|number")(lr_with(kind=torch.tensor))


@mistake(L, r"state|call|counter|step|\bit\b|argument")
def lr_counter(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, _n=[0]):  # counts its own calls
    step = _n[0]
    _n[0] += 1
    return lr_with()(step, learning_rate, min_lr, warmup_iters, lr_decay_iters)


valid(L)(lr_with(cmp="le"))  # `it <= warmup_iters`: at it == warmup both branches give learning_rate (written as a
# mistake first; it is not one)


@valid(L)
def lr_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * p / 2) ** 2  # (1 + cos 2a) / 2 = cos^2 a


# ------------------------------------------------------------------------------------------ weight-decay groups
W = ex.check_weight_decay_groups


def groups_of(rule, wd_value=None, fmt="dicts", dedupe=True, no_decay_key=True):
    def f(model, weight_decay):
        ps = model.named_parameters(remove_duplicate=dedupe)
        lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        dec, nod = [], []
        for n, p in ps:
            (dec if rule(n, p, lin) else nod).append(p)
        wd = weight_decay if wd_value is None else wd_value
        if fmt == "tuple":
            return dec, nod
        if fmt == "swapped":
            dec, nod = nod, dec
        second = {"params": nod, "weight_decay": 0.0} if no_decay_key else {"params": nod}
        return [{"params": dec, "weight_decay": wd}, second]
    return f


LINEAR = lambda n, p, lin: id(p) in lin  # noqa: E731
mistake(W, r"bias|every|all|norm|embedding|layernorm")(groups_of(lambda n, p, lin: True))
mistake(W, r"embedding|wte|wpe|2-?d|dim")(groups_of(lambda n, p, lin: p.dim() >= 2))  # nanoGPT's rule
mistake(W, r"embedding|wte|wpe|name")(groups_of(lambda n, p, lin: "bias" not in n and "ln" not in n))
mistake(W, r"weight_decay|value|hard|0\.1|given")(groups_of(LINEAR, wd_value=0.1))
mistake(W, r"swap|invert|opposite|wrong group|bias")(groups_of(LINEAR, fmt="swapped"))
mistake(W, r"dict|format|type|group|tuple|list")(groups_of(LINEAR, fmt="tuple"))
mistake(W, r"weight_decay|0\.0|key|default|no.decay")(groups_of(LINEAR, no_decay_key=False))
mistake(W, r"tied|twice|both|duplicate|lm_head|once")(groups_of(LINEAR, dedupe=False))
mistake(W, r"bias|linear")(groups_of(lambda n, p, lin: id(p) in lin or n.endswith("bias")))  # biases decayed too


@mistake(W, r"tied|twice|both|duplicate|lm_head|wte|embedding|once")
def groups_by_module(model, weight_decay):  # by module: a tied matrix is an Embedding's and a Linear's weight
    dec = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    nod = [p for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.Embedding)) for p in m.parameters(False)]
    nod += [m.bias for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    return [{"params": dec, "weight_decay": weight_decay}, {"params": nod, "weight_decay": 0.0}]


@mistake(W, r"missing|layernorm|ln|left out|every parameter|not in any")
def groups_forget_norms(model, weight_decay):  # only the Linear layers' parameters placed
    dec = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    nod = [m.bias for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    return [{"params": dec, "weight_decay": weight_decay}, {"params": nod, "weight_decay": 0.0}]


@valid(W)  # (written as a mistake first: AdamW reads each group's params once, into a list, so it is not one)
def groups_generators(model, weight_decay):  # filter objects: empty the second time they are read
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return [{"params": filter(lambda p: id(p) in lin, model.parameters()), "weight_decay": weight_decay},
            {"params": filter(lambda p: id(p) not in lin, model.parameters()), "weight_decay": 0.0}]


@valid(W)
def groups_reversed(model, weight_decay):  # the groups in the other order, the decayed set built by id
    lin = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    return [{"params": [p for p in model.parameters() if id(p) not in lin], "weight_decay": 0.0},
            {"params": list(lin.values()), "weight_decay": weight_decay}]


@mistake(W, r"tied|lm_head|wte")  # (written as valid first: named_parameters lists the tied matrix as wte's only)
def groups_by_name(model, weight_decay):  # the names of the Linear layers' weights, as nanoGPT-style code keeps them
    lin = {f"{mn}.weight" for mn, m in model.named_modules() if isinstance(m, nn.Linear)}
    named = dict(model.named_parameters())
    return [{"params": [p for n, p in named.items() if n in lin], "weight_decay": weight_decay},
            {"params": tuple(p for n, p in named.items() if n not in lin), "weight_decay": 0.0}]


# ------------------------------------------------------------------------------------------ training
def train_and_compare(component):
    """The row's checker: a short run of GPT with the student's component (a class with a `slot` attribute)."""
    return ex.train_and_compare(steps=40, **{component.slot: component})


class LeakyAttention(CausalSelfAttention):  # the assistant's "faster" attention: is_causal forgotten
    slot = "attention"

    def sdpa_attention(self, q, k, v, attn_mask=None):
        return F.scaled_dot_product_attention(q, k, v)

    def math_attention(self, q, k, v, attn_mask=None):
        return F.scaled_dot_product_attention(q, k, v)


class ListMLP(nn.Module):  # Linear layers kept in a plain list: not registered, never trained
    slot = "mlp"

    def __init__(self, config):
        super().__init__()
        self.layers = [nn.Linear(config.n_embd, 4 * config.n_embd), nn.Linear(4 * config.n_embd, config.n_embd)]

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x)))


class TimeNorm(nn.LayerNorm):  # normalised over the positions (axis 1) instead of the channels: sees the future
    slot = "layer_norm"

    def forward(self, x):
        mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + (0 if self.bias is None else self.bias)


class DetachedMLP(MLP):  # the hidden layer detached (a "fix" for a memory error): c_fc gets no gradient
    slot = "mlp"

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x)).detach()))


mistake(train_and_compare, r"future|later|causal|leak")(LeakyAttention)
mistake(train_and_compare, r"regist|gradient|chang|list|parameter|train")(ListMLP)
mistake(train_and_compare, r"future|later|leak|position|axis")(TimeNorm)
# (widened after the untuned count by "not learn", the checker's fair "parameters that do not learn")
mistake(train_and_compare, r"gradient|detach|no_grad|chang|c_fc|not learn")(DetachedMLP)


class SDPAAttention(CausalSelfAttention):  # always the fused kernel, causal
    slot = "attention"

    def math_attention(self, q, k, v, attn_mask=None):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class ManualNorm(nn.LayerNorm):
    slot = "layer_norm"

    def forward(self, x):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, correction=0)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + (0 if self.bias is None else self.bias)


valid(train_and_compare)(SDPAAttention)
valid(train_and_compare)(ManualNorm)


# ------------------------------------------------------------------------------------------ state that is right
# (added after the untuned count, with the checkers' "state kept across calls": state that never changes an output
# must pass: a cache keyed by everything its value depends on, a log of the calls)
@valid(ex.check_rotary)
def rot_keyed_cache(x, start, theta, _cache={}):
    T, hs = x.shape[1], x.shape[-1]
    key = (start, T, hs, theta)
    if key not in _cache:
        a = torch.outer(torch.arange(start, start + T).float(), 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs))
        _cache[key] = torch.cat((a, a), -1)[:, None, :]
    a = _cache[key]
    x1, x2 = x.chunk(2, -1)
    return x * a.cos() + torch.cat((-x2, x1), -1) * a.sin()


CALLS = []


@valid(L)
def lr_logged(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    CALLS.append(it)  # a log of the steps, never read back
    return lr_with()(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)
