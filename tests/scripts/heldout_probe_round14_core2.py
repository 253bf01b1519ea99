"""The held-out probe, round 14, core part 2 (LayerNorm, Block, embedding): see heldout_probe_round14_core.py,
which imports this file at its end."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import Block as RefBlock, CausalSelfAttention, MLP

from heldout_probe_models import mistake, valid
from heldout_probe_round14_core import DROP, STATE, both


# ------------------------------------------------------------------------------------------ LayerNorm
L = ex.check_layernorm


class Ln(nn.Module):
    """The notebook's LayerNorm with knobs for the variance, eps, axis and state."""
    var, eps_at, dim, keep, param, state = "biased", "inside", -1, True, "ok", None

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        if self.param == "tensor":  # not registered: no parameters, nothing to load
            self.weight, self.bias = torch.ones(ndim), torch.zeros(ndim)
        else:
            self.weight = nn.Parameter(torch.ones(ndim))
            self.bias = nn.Parameter(torch.zeros(ndim)) if (bias or self.param == "always_bias") else None
        self.saved = None

    def forward(self, x):
        d = self.dim
        if self.state == "running" and self.saved is not None:
            mean, var = self.saved
        else:
            mean = x.mean(dim=d, keepdim=self.keep)
            var = {"biased": lambda: x.var(dim=d, keepdim=self.keep, unbiased=False),
                   "torch.var": lambda: torch.var(x, dim=d, keepdim=self.keep)}[self.var]()
            if self.state == "running":
                self.saved = (mean, var)
        eps = 1e-5 if self.eps_at == "hard" else self.eps
        if self.state == "inplace":
            x -= mean
            centred = x
        else:
            centred = x - mean
        if self.eps_at == "both":
            y = centred / (torch.sqrt(var + eps) + eps)
        elif self.eps_at == "std":
            y = centred / (var.sqrt() + eps)
        elif self.eps_at == "none":
            y = centred * torch.rsqrt(var)
        else:
            y = centred / torch.sqrt(var + eps)
        if self.param == "swapped":
            return y * self.bias + self.weight
        y = y * self.weight
        return y + self.bias if self.bias is not None else y


def ln(**knobs):
    return type("StudentLayerNorm", (Ln,), knobs)


UNBIASED = r"unbiased|n ?- ?1|bessel|correction"
EPS = r"eps|epsilon"
mistake(L, UNBIASED)(ln(var="torch.var"))  # torch.var's default is the unbiased estimate
mistake(L, both(UNBIASED, EPS + r"|std|sqrt"))(ln(var="torch.var", eps_at="std"))  # x.std(-1) + eps
mistake(L, EPS + r"|sqrt|std")(ln(eps_at="std"))
mistake(L, EPS + r"|twice|both")(ln(eps_at="both"))  # eps moved inside and kept outside too
mistake(L, EPS + r"|nan|zero|constant")(ln(eps_at="none"))
mistake(L, EPS + r"|argument|self\.eps|default|1e-5")(ln(eps_at="hard"))  # only another eps shows it
mistake(L, r"param|regist|nn\.Parameter|state_dict|weight")(ln(param="tensor"))
mistake(L, r"swap|gain|bias|weight")(ln(param="swapped"))
mistake(L, r"dim|axis|channel|last|time|batch")(ln(dim=1))
mistake(L, r"dim|axis|channel|last|time|position")(ln(dim=(-2, -1)))
mistake(L, r"keepdim|dim|broadcast|shape")(ln(keep=False))
mistake(L, r"in.place|input|modif|mutat|-=")(ln(state="inplace"))
mistake(L, r"running|batch|cache|state|first|call|statistic")(ln(state="running"))


class LnFunctional(Ln):  # valid: F.layer_norm with the module's own parameters
    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class LnVarMean(Ln):  # valid: var_mean with correction=0, rsqrt, addcmul
    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias, y, self.weight) if self.bias is not None else y * self.weight


valid(L)(LnFunctional)
valid(L)(LnVarMean)
valid(L)(ln(param="always_bias"))  # (written as a mistake; earlier rounds count a bias kept with bias=False valid)

# ------------------------------------------------------------------------------------------ Block
K = ex.check_block


class Blk(nn.Module):
    """The notebook's Block, wiring as a knob."""
    wiring = "ok"

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)
        self.saved = None

    def forward(self, x, kv_cache=None):
        w, a, m = self.wiring, lambda h: self.attn(h, kv_cache), self.mlp
        if w == "post":  # the 2017 paper's order
            x = self.ln_1(x + a(x))
            return self.ln_2(x + m(x))
        if w == "parallel":  # GPT-J's wiring: both branches read the block's input
            return x + a(self.ln_1(x)) + m(self.ln_2(x))
        if w == "ln1_twice":
            x = x + a(self.ln_1(x))
            return x + m(self.ln_1(x))
        if w == "residual_twice":  # "the residual was missing", added back where it already was
            x = x + a(self.ln_1(x))
            return x + m(self.ln_2(x)) + x
        if w == "inplace":
            x += a(self.ln_1(x))
            x += m(self.ln_2(x))
            return x
        if w == "no_mlp_residual":
            x = x + a(self.ln_1(x))
            return m(self.ln_2(x))
        if w == "ln_on_output":
            x = x + self.ln_1(a(x))
            return x + self.ln_2(m(x))
        if w == "swapped":
            x = x + m(self.ln_2(x))
            return x + a(self.ln_1(x))
        if w == "ln2_on_input":
            h = x + a(self.ln_1(x))
            return h + m(self.ln_2(x))
        if w == "F.dropout":
            x = x + F.dropout(a(self.ln_1(x)), 0.1)
            return x + F.dropout(m(self.ln_2(x)), 0.1)
        if w == "cache":  # the attention output kept from the first call
            if self.saved is None:
                self.saved = a(self.ln_1(x))
            x = x + self.saved
            return x + m(self.ln_2(x))
        if w == "final_ln":
            x = x + a(self.ln_1(x))
            x = x + m(self.ln_2(x))
            return self.ln_2(x)
        x = x + a(self.ln_1(x))
        return x + m(self.ln_2(x))


def blk(wiring):
    return type("StudentBlock", (Blk,), {"wiring": wiring})


mistake(K, r"post|after|order")(blk("post"))
mistake(K, r"parallel|same x|input|both|original|residual")(blk("parallel"))
mistake(K, r"ln_1|twice|ln_2|same|one layer ?norm")(blk("ln1_twice"))
mistake(K, r"residual|twice|double|x \+ x|2 ?\*? ?x")(blk("residual_twice"))
mistake(K, r"in.place|input|modif|\+=|mutat")(blk("inplace"))
mistake(K, r"residual|skip|mlp")(blk("no_mlp_residual"))
mistake(K, r"ln|layer ?norm|output|after|before|order")(blk("ln_on_output"))
# (regexes widened after the untuned count: "MLP before attention" and "parallel branches" are fair names; the
# second wiring below is the parallel one written with a temporary)
mistake(K, r"swap|order|mlp.*att|att.*mlp|first")(blk("swapped"))
mistake(K, r"ln_2|input|block's input|x before|original|same|residual|parallel")(blk("ln2_on_input"))
mistake(K, DROP)(blk("F.dropout"))
mistake(K, STATE)(blk("cache"))
mistake(K, r"ln|final|extra|layer ?norm|output")(blk("final_ln"))


class BlkExplicit(RefBlock):  # valid: named temporaries, torch.add, the reference's parts built by the parent
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)

    def forward(self, x, kv_cache=None):
        h = torch.add(x, self.attn(self.ln_1(x), kv_cache))
        return torch.add(h, self.mlp(self.ln_2(h)), alpha=1.0)


class BlkFunctionalLn(Blk):  # valid: F.layer_norm on the modules' own parameters
    def forward(self, x, kv_cache=None):
        n1 = F.layer_norm(x, (x.size(-1),), self.ln_1.weight, self.ln_1.bias, 1e-5)
        x = x + self.attn(n1, kv_cache)
        return x + self.mlp(F.layer_norm(x, (x.size(-1),), self.ln_2.weight, self.ln_2.bias, 1e-5))


valid(K)(BlkExplicit)
valid(K)(BlkFunctionalLn)


# ------------------------------------------------------------------------------------------ embedding
E = ex.check_embedding


class Emb(nn.Module):
    pos, how, ids = "arange", "add", "ok"

    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.saved = None

    def forward(self, idx):
        T = idx.shape[-1]
        if self.ids == "byte":
            idx = idx.to(torch.uint8)  # "ids are small", ids >= 256 wrap
        elif self.ids == "squeeze":
            idx = idx.squeeze()
        elif self.ids == "clamp_":  # the IndexError "fixed" in place on the caller's tensor
            idx.clamp_(0, self.wte.num_embeddings - 1)
        if self.pos == "cumsum0":
            pos = torch.cumsum(torch.ones_like(idx), dim=0) - 1
        elif self.pos == "cumsum1":
            pos = torch.cumsum(torch.ones_like(idx), dim=1)
        elif self.pos == "cache":
            if self.saved is None:
                self.saved = torch.arange(T)
            pos = self.saved
        elif self.pos == "T-1":
            pos = torch.arange(T - 1)
        else:
            pos = torch.arange(idx.shape[-1])
        tok, p = self.wte(idx), self.wpe(pos)
        if self.how == "cat":
            return torch.cat([tok, p.expand_as(tok)], dim=-1)
        if self.how == "mean":
            return (tok + p) / 2
        if self.how == "sqrt":  # the 2017 paper's sqrt(d_model) on the token embedding
            return tok * math.sqrt(tok.size(-1)) + p
        if self.how == "F.dropout":
            return F.dropout(tok + p, 0.1)
        return tok + p


def emb(**knobs):
    return type("StudentEmbedding", (Emb,), knobs)


mistake(E, r"uint8|byte|255|256|overflow|wrap|dtype")(emb(ids="byte"))
mistake(E, r"squeeze|batch|shape|B ?= ?1|dim")(emb(ids="squeeze"))
mistake(E, r"batch|axis|dim|cumsum")(emb(pos="cumsum0"))
mistake(E, r"\b1\b|start|off by one|cumsum|first position")(emb(pos="cumsum1"))
mistake(E, STATE)(emb(pos="cache"))
mistake(E, r"length|T ?- ?1|arange|one|shape|fewer")(emb(pos="T-1"))
mistake(E, r"concat|cat|add|sum|shape")(emb(how="cat"))
mistake(E, r"half|/ ?2|average|mean|scale")(emb(how="mean"))
mistake(E, r"sqrt|scale|n_embd|\bC\b")(emb(how="sqrt"))
mistake(E, DROP)(emb(how="F.dropout"))


class EmbOneHot(Emb):  # valid: one-hot rows times the tables
    def forward(self, idx):
        tok = F.one_hot(idx, self.wte.num_embeddings).to(self.wte.weight.dtype) @ self.wte.weight
        return tok + self.wpe.weight[: idx.size(1)]


valid(E)(EmbOneHot)
valid(E)(emb(ids="clamp_"))  # (written as a mistake; the clamp changes nothing on valid ids, so it is valid)
valid(E)(type("StudentEmbedding", (Emb,), {"forward": lambda self, idx: self.wte(idx) + self.wpe(
    (torch.ones_like(idx).cumsum(1) - 1))}))
valid(E)(type("StudentEmbedding", (Emb,), {"forward": lambda self, idx: F.embedding(idx, self.wte.weight) + self.wpe(
    torch.arange(idx.size(1)).expand(idx.size(0), -1))}))

import heldout_probe_round14_core3  # noqa: E402,F401  (the rest of this part, in row order)
