"""The held-out probe, round 1, part 1: the registry (mistake / valid) and the modules' mistakes (MLP,
attention, LayerNorm, Block, embedding, loss, GPT, bigram). See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import GPT, MLP, Block

ROUND = [1]  # round 1 was run before any checker change; round 2 was written after round 1's fixes, run untuned
MISTAKES, VALID = [], []


def mistake(checker, expect):
    """Register impl as a mistake for checker; expect: a regex the checker's property must match to count as named."""
    def register(impl):
        MISTAKES.append((checker, impl, expect, ROUND[0]))
        return impl
    return register


def valid(checker):
    def register(impl):
        VALID.append((checker, impl, ROUND[0]))
        return impl
    return register


def cls_with(base, **methods):
    return type(methods.pop("name", "Student"), (base,), methods)


# ------------------------------------------------------------------------------------------ MLP
def mlp(act, where="ok"):
    def forward(self, x):
        h = self.c_fc(x)
        if where == "after":
            return self.dropout(act(self.c_proj(h)))
        if where == "both":
            return self.dropout(act(self.c_proj(act(h))))
        return self.dropout(self.c_proj(act(h)))
    return cls_with(MLP, forward=forward)


for act, expect in [(F.relu, r"relu"), (F.gelu, r"exact|erf|tanh"), (F.silu, r"silu|swish|sigmoid"),
                    (lambda h: h, r"activation|gelu|linear"),
                    (lambda h: h * torch.sigmoid(1.702 * h), r"sigmoid|approximat|gelu"),
                    (lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(math.pi / 2) * (h + 0.044715 * h**3))),
                     r"constant|sqrt|gelu"),
                    (lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**2))),
                     r"constant|cube|gelu|h\^3|x\^3|x³"),
                    (torch.tanh, r"tanh")]:
    mistake(ex.check_mlp, expect)(mlp(act))
mistake(ex.check_mlp, r"after|output|order|c_proj")(mlp(lambda h: F.gelu(h, approximate="tanh"), "after"))
mistake(ex.check_mlp, r"bias")(cls_with(MLP, forward=lambda self, x: self.dropout(
    F.linear(self.gelu(self.c_fc(x)), self.c_proj.weight))))
valid(ex.check_mlp)(mlp(lambda h: F.gelu(h, approximate="tanh")))
valid(ex.check_mlp)(mlp(lambda h: 0.5 * h * (1.0 + torch.tanh(0.7978845608028654 * (h + 0.044715 * torch.pow(h, 3))))))


# ------------------------------------------------------------------------------------------ attention
class Attn(nn.Module):
    scale, fill, split, merge, project, sm_dim, premask = "hs", "-inf", "ok", "ok", True, -1, False

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        if self.split == "ok":
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, nh, T, hs) for t in (q, k, v))
        att = q @ k.transpose(-2, -1)
        att = {"hs": att / math.sqrt(hs), "C": att / math.sqrt(C), "none": att, "hs1": att / hs}[self.scale]
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        if self.premask:
            att = F.softmax(att, dim=-1).masked_fill(~mask, 0.0)
        else:
            att = att.masked_fill(~mask, {"-inf": float("-inf"), "0": 0.0, "-1e9": -1e9}[self.fill])
            att = F.softmax(att, dim=self.sm_dim)
        y = self.attn_dropout(att) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C) if self.merge == "ok" else y.reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y)) if self.project else y


for knobs, expect in [({"scale": "C"}, r"scal|sqrt"), ({"scale": "none"}, r"scal|sqrt"),
                      ({"scale": "hs1"}, r"scal|sqrt"), ({"fill": "0"}, r"mask|0|zero|-inf"),
                      ({"split": "bad"}, r"head|split|transpose|reshape|view"),
                      ({"merge": "bad"}, r"head|merge|transpose|reshape|re-assembl"),
                      ({"project": False}, r"proj"), ({"sm_dim": -2}, r"softmax|axis|dim"),
                      ({"premask": True}, r"softmax|mask|renormal|order")]:
    mistake(ex.check_attention, expect)(cls_with(Attn, **knobs))
valid(ex.check_attention)(cls_with(Attn, fill="-1e9"))


class SDPAAttn(Attn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


valid(ex.check_attention)(SDPAAttn)


# ------------------------------------------------------------------------------------------ LayerNorm
class LN(nn.Module):
    unbiased, eps_out, axes, no_affine = False, False, (-1,), False

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(ndim)), nn.Parameter(torch.zeros(ndim)), eps

    def forward(self, x):
        mu = x.mean(dim=self.axes, keepdim=True)
        var = x.var(dim=self.axes, keepdim=True, unbiased=self.unbiased)
        xhat = (x - mu) / (var.sqrt() + self.eps) if self.eps_out else (x - mu) / torch.sqrt(var + self.eps)
        return xhat if self.no_affine else xhat * self.weight + self.bias


for knobs, expect in [({"unbiased": True}, r"unbiased|bessel|n - 1|n-1"), ({"eps_out": True}, r"eps"),
                      ({"axes": (-2, -1)}, r"axis|axes|last|dim"), ({"no_affine": True}, r"scale|weight|affine|gain")]:
    mistake(ex.check_layernorm, expect)(cls_with(LN, **knobs))
valid(ex.check_layernorm)(cls_with(LN, forward=lambda self, x: F.layer_norm(x, x.shape[-1:], self.weight, self.bias,
                                                                           self.eps)))


# ------------------------------------------------------------------------------------------ Block
def block(f):
    return cls_with(Block, forward=lambda self, x, kv_cache=None, attn_mask=None: f(self, x))


for f, expect in [(lambda s, x: s.ln_2((h := s.ln_1(x + s.attn(x))) + s.mlp(h)), r"post"),
                  (lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_1(h)), r"ln_1|same|norm|twice"),
                  (lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_2(x)), r"parallel"),
                  (lambda s, x: s.mlp(s.ln_2(x + s.attn(s.ln_1(x)))), r"residual"),
                  (lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(h), r"norm|ln_2"),
                  (lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(x)), r"input|mlp|stream|parallel|x"),
                  (lambda s, x: (h := s.ln_1(x) + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)), r"norm|overwrit|stream")]:
    mistake(ex.check_block, expect)(block(f))
valid(ex.check_block)(block(lambda s, x: (lambda a: a + s.mlp(s.ln_2(a)))(x + s.attn(s.ln_1(x)))))


# ------------------------------------------------------------------------------------------ embedding
class Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

    def forward(self, idx):
        return self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)).unsqueeze(0)


for f, expect in [(lambda s, i: s.wte(i) + s.wpe(i), r"position"),
                  (lambda s, i: s.wte(i), r"position"),
                  (lambda s, i: s.wte(i) * s.wpe(torch.arange(i.shape[1])), r"multipl|product|add"),
                  (lambda s, i: s.wte(i) + s.wpe(torch.arange(i.shape[0]))[:, None], r"batch|position|dim"),
                  (lambda s, i: s.wte(i) + s.wpe(torch.arange(i.shape[1]).flip(0)), r"revers|position"),
                  (lambda s, i: s.wte(i) + s.wpe.weight[: i.shape[1]].mean(0), r"position|mean")]:
    mistake(ex.check_embedding, expect)(cls_with(Emb, forward=f))
valid(ex.check_embedding)(cls_with(Emb, forward=lambda s, i: s.wte.weight[i] + s.wpe.weight[: i.size(1)]))


# ------------------------------------------------------------------------------------------ loss
def ce(lg, tg, **kw):
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), **kw)


for f, expect in [(lambda lg, tk: ce(lg, tk, ignore_index=-1), r"shift"),
                  (lambda lg, tk: ce(lg[:, :-1], tk[:, 1:]), r"ignore|-1"),
                  (lambda lg, tk: ce(lg[:, 1:], tk[:, :-1], ignore_index=-1), r"shift|direction|wrong way|previous"),
                  (lambda lg, tk: ce(lg[:, :-1], tk[:, 1:], ignore_index=-1, reduction="sum"), r"sum"),
                  (lambda lg, tk: F.nll_loss(lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1),
                                             ignore_index=-1), r"log_softmax|log-softmax|nll|log"),
                  (lambda lg, tk: F.cross_entropy(lg[:, :-1].transpose(0, 1).reshape(-1, lg.size(-1)),
                                                  tk[:, 1:].reshape(-1), ignore_index=-1), r"order|flatten|transpos"),
                  (lambda lg, tk: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)).softmax(-1),
                                                  tk[:, 1:].reshape(-1), ignore_index=-1), r"probabilit|softmax"),
                  (lambda lg, tk: F.cross_entropy(lg[:, :-1].transpose(1, 2), tk[:, 1:], ignore_index=-1,
                                                  reduction="none").sum(1).mean(), r"mean|sum|average|per sequence"),
                  (lambda lg, tk: ce(lg[:, :-1], tk[:, 1:].clamp(min=0)), r"ignore|-1|clamp|0")]:
    mistake(ex.check_loss, expect)(f)


@valid(ex.check_loss)
def loss_gather(logits, tokens):
    logp = logits[:, :-1].log_softmax(-1)
    tgt = tokens[:, 1:]
    keep = tgt != -1
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum()


valid(ex.check_loss)(lambda lg, tk: F.cross_entropy(lg[:, :-1].permute(0, 2, 1), tk[:, 1:], ignore_index=-1))


# ------------------------------------------------------------------------------------------ GPT
def gpt(body, loss=None):
    """body(self, idx) -> logits; loss(logits, targets) -> loss."""
    loss = loss or (lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1))

    def forward(self, idx, targets=None, kv_cache=None):
        logits = body(self, idx)
        return logits, (None if targets is None else loss(logits, targets))
    return cls_with(GPT, forward=forward)


def trunk(self, idx, pos=True, ln_f=True):
    tr = self.transformer
    x = tr.wte(idx) + (tr.wpe(torch.arange(idx.size(1))) if pos else 0)
    for b in tr.h:
        x = b(x)
    return tr.ln_f(x) if ln_f else x


for g, expect in [(gpt(lambda s, i: s.lm_head(trunk(s, i)).softmax(-1)), r"probabilit"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i)).log_softmax(-1)), r"log"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i, ln_f=False))), r"ln_f|final"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i, pos=False))), r"position"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i)),
                       lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1))), r"ignore|-1"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i)),
                       lambda lg, tg: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), tg[:, 1:].reshape(-1),
                                                      ignore_index=-1)), r"shift"),
                  (gpt(lambda s, i: s.lm_head(trunk(s, i)) @ s.transformer.wte.weight.T[:, :0].sum()
                       if False else trunk(s, i) @ s.transformer.wte.weight.T * 1.0), None)]:
    if expect is None:  # ln_f then the tied matrix: the same as lm_head, a valid alternative
        valid(ex.check_gpt)(g)
    else:
        mistake(ex.check_gpt, expect)(g)


# ------------------------------------------------------------------------------------------ bigram
class Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx)


mistake(ex.check_bigram, r"log")(cls_with(Bigram, forward=lambda s, i: s.table(i).log_softmax(-1)))
mistake(ex.check_bigram, r"column|transpos")(cls_with(Bigram, forward=lambda s, i: s.table.weight.T[i]))
mistake(ex.check_bigram, r"probabilit")(cls_with(Bigram, forward=lambda s, i: s.table(i).softmax(-1)))
valid(ex.check_bigram)(cls_with(Bigram, forward=lambda s, i: F.one_hot(i, s.table.num_embeddings).float()
                                @ s.table.weight))


