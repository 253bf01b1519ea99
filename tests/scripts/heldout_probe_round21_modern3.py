"""The held-out probe, round 21, modern part 3: weight-decay groups and short training runs (train_and_compare)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention


# ------------------------------------------------------------------------------------------ weight-decay groups
def _groups(model, decay_pred, wd_decay, wd_rest=0.0, drop=lambda n, p: False, extra=None):
    dec, rest = [], []
    seen = set()
    for n, p in model.named_parameters():
        if id(p) in seen or drop(n, p):
            continue
        seen.add(id(p))
        (dec if decay_pred(model, n, p) else rest).append(p)
    groups = [{"params": dec, "weight_decay": wd_decay}, {"params": rest, "weight_decay": wd_rest}]
    if extra:
        groups[0]["params"] = groups[0]["params"] + extra(model)
    return groups


def _linear_weights(model):
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


def _is_linear_w(model, n, p):
    return id(p) in _linear_weights(model)


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe|2-?d|dim|matri")
def wd_all_matrices(model, weight_decay):  # nanoGPT's dim >= 2 rule: the embeddings decayed too
    return _groups(model, lambda m, n, p: p.dim() >= 2, weight_decay)


@mistake(ex.check_weight_decay_groups, r"wpe|position|embedding")
def wd_linear_plus_wpe(model, weight_decay):  # partial: the Linear weights and the position table decayed
    return _groups(model, lambda m, n, p: _is_linear_w(m, n, p) or n.endswith("wpe.weight"), weight_decay)


@mistake(ex.check_weight_decay_groups, r"value|given|hard|0\.1|ignor|fixed")
def wd_hardcoded(model, weight_decay):  # the argument ignored, 0.1 used
    return _groups(model, _is_linear_w, 0.1)


@mistake(ex.check_weight_decay_groups, r"half|value|factor|/ ?2|0\.5|wrong")
def wd_half(model, weight_decay):  # cousin: weight_decay / 2
    return _groups(model, _is_linear_w, weight_decay / 2)


@mistake(ex.check_weight_decay_groups, r"both|no.?decay|rest|other group|every|all|biases and layernorm")  # fair
def wd_rest_decayed(model, weight_decay):  # the no-decay group given weight_decay too
    return _groups(model, _is_linear_w, weight_decay, wd_rest=weight_decay)


@mistake(ex.check_weight_decay_groups, r"rest|no.?decay|other group|small|0\.01|bias|norm")
def wd_rest_small(model, weight_decay):  # cousin: the no-decay group decayed by 0.01
    return _groups(model, _is_linear_w, weight_decay, wd_rest=0.01)


@mistake(ex.check_weight_decay_groups, r"layer|block|first|h\.0|only|some|not decayed")
def wd_first_block_only(model, weight_decay):  # partial: only block 0's Linear weights decayed
    return _groups(model, lambda m, n, p: _is_linear_w(m, n, p) and (".h.0." in n or "lm_head" in n), weight_decay)


@mistake(ex.check_weight_decay_groups, r"layernorm|norm|ln|gain|weight")
def wd_every_weight(model, weight_decay):  # every parameter named "weight" decayed (LayerNorm gains, embeddings)
    return _groups(model, lambda m, n, p: n.endswith("weight"), weight_decay)


@mistake(ex.check_weight_decay_groups, r"layernorm|norm|ln|gain")
def wd_linear_plus_ln(model, weight_decay):  # Linear weights and LayerNorm gains decayed (not the embeddings)
    ln = {id(mod.weight) for mod in model.modules() if isinstance(mod, nn.LayerNorm)
          or type(mod).__name__ == "LayerNorm"}
    return _groups(model, lambda m, n, p: _is_linear_w(m, n, p) or id(p) in ln, weight_decay)


@mistake(ex.check_weight_decay_groups, r"mlp|attn|attention|some|not decayed|missing")
def wd_mlp_only(model, weight_decay):  # partial: only the MLP's Linear weights decayed
    return _groups(model, lambda m, n, p: _is_linear_w(m, n, p) and ".mlp." in n, weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|bias|every parameter|dropped|left out")
def wd_biases_dropped(model, weight_decay):  # biases in no group at all
    return _groups(model, _is_linear_w, weight_decay, drop=lambda n, p: n.endswith("bias"))


@mistake(ex.check_weight_decay_groups, r"twice|both groups|duplicate|once")
def wd_duplicate(model, weight_decay):  # the Linear weights in both groups
    g = _groups(model, _is_linear_w, weight_decay)
    g[1]["params"] = g[1]["params"] + g[0]["params"][:2]
    return g


@mistake(ex.check_weight_decay_groups,
         r"(embedding|wte).*(value|given|hard)|(value|given|hard).*(embedding|wte)|two|and")
def wd_matrices_hardcoded(model, weight_decay):  # combination: dim >= 2 rule and 0.1 hard-coded
    return _groups(model, lambda m, n, p: p.dim() >= 2, 0.1)


@mistake(ex.check_weight_decay_groups, r"bias|decay")
def wd_linear_biases_too(model, weight_decay):  # every parameter of a Linear (weights and biases) decayed
    lin = {id(p) for mod in model.modules() if isinstance(mod, nn.Linear) for p in mod.parameters()}
    return _groups(model, lambda m, n, p: id(p) in lin, weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_by_module(model, weight_decay):  # by module type, parameter names recursing each module itself
    decay, no_decay = set(), set()
    for mod in model.modules():
        for pn, p in mod.named_parameters(recurse=False):
            (decay if isinstance(mod, nn.Linear) and pn == "weight" else no_decay).add(p)
    no_decay -= decay
    key = {id(p): i for i, p in enumerate(model.parameters())}
    return [{"params": sorted(decay, key=lambda p: key[id(p)]), "weight_decay": weight_decay},
            {"params": sorted(no_decay, key=lambda p: key[id(p)]), "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_valid_three_groups(model, weight_decay):  # biases and the rest in two separate no-decay groups, extra keys
    lin = _linear_weights(model)
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay, "lr": 1e-3},
            {"params": [p for p in ps if id(p) not in lin and p.dim() == 1], "weight_decay": 0.0},
            {"params": [p for p in ps if id(p) not in lin and p.dim() != 1], "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_valid_no_decay_first(model, weight_decay):  # the no-decay group first
    g = _groups(model, _is_linear_w, weight_decay)
    return [g[1], g[0]]


# ------------------------------------------------------------------------------------------ training runs
STEPS = 20


def train_attention(cls):
    return ex.train_and_compare(steps=STEPS, attention=cls)


def train_block(cls):
    return ex.train_and_compare(steps=STEPS, block=cls)


def train_mlp(cls):
    return ex.train_and_compare(steps=STEPS, mlp=cls)


def train_layer_norm(cls):
    return ex.train_and_compare(steps=STEPS, layer_norm=cls)


for _wrapper in (train_attention, train_block, train_mlp, train_layer_norm):  # counted as the checker they call
    _wrapper.__name__ = "train_and_compare"


def _attn_cls(diag=1, rows=None):
    class Attn(CausalSelfAttention):
        def forward(self, x, kv_cache=None):
            q, k, v = self.queries_keys_values(x, kv_cache)
            T = q.size(2)
            mask = torch.ones(T, T, dtype=torch.bool).triu(diag)
            if rows is not None:  # only these query rows get the shifted mask, the others the right one
                right = torch.ones(T, T, dtype=torch.bool).triu(1)
                sel = torch.zeros(T, dtype=torch.bool)
                sel[rows] = True
                mask = torch.where(sel[:, None], mask, right)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            y = att.masked_fill(mask, float("-inf")).softmax(-1) @ v
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).flatten(2)))
    return Attn


mistake(train_attention, r"look.?ahead|future|later|causal|mask")(_attn_cls(diag=2))  # sees the next token
mistake(train_attention, r"look.?ahead|future|later|causal|mask")(_attn_cls(diag=2, rows=[0]))  # only query 0 peeks


class MLPProjNoGrad(MLP):  # c_proj applied to a detached weight: it never learns
    def forward(self, x):
        return self.dropout(F.linear(self.gelu(self.c_fc(x)), self.c_proj.weight.detach(), self.c_proj.bias))


class MLPFunctional(MLP):  # valid: the same MLP written with F.linear on its own layers' parameters
    def forward(self, x):
        h = F.gelu(F.linear(x, self.c_fc.weight, self.c_fc.bias), approximate="tanh")
        return self.dropout(F.linear(h, self.c_proj.weight, self.c_proj.bias))


valid(train_mlp)(MLPFunctional)
mistake(train_mlp, r"gradient|learn|detach|c_proj|frozen|changed")(MLPProjNoGrad)


class LNBiasUnused(nn.Module):  # the bias created but never added
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, None, self.eps)


mistake(train_layer_norm, r"gradient|learn|bias|unused|changed")(LNBiasUnused)


class BlockLn1Twice(Block):  # ln_1 used before both sublayers: ln_2 never learns
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_1(x))


mistake(train_block, r"gradient|learn|ln_2|unused|changed")(BlockLn1Twice)


class BlockNoCache(Block):  # valid: a Block that refuses a cache it does not support
    def forward(self, x, kv_cache=None):
        if kv_cache is not None:
            raise NotImplementedError("no cache")
        return super().forward(x)


valid(train_block)(BlockNoCache)
valid(train_attention)(_attn_cls(diag=1))  # the explicit causal softmax


class LNFunctional(nn.Module):  # valid: F.layer_norm with its own parameters
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


valid(train_layer_norm)(LNFunctional)
