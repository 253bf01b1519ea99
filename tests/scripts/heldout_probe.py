"""
A held-out probe of the exercise checkers (issue 24): plausible single student mistakes and valid-but-unusual
implementations, written without reading tests/mistakes_*.py. For each checker it prints mistakes written, caught,
named (the checker's property matches what the mistake is), named otherwise (a diagnosis that does not match: a
misname unless it is a fair generic name), valid written and passed, then every mistake not named with the
checker's message. Run from the repository root: PYTHONPATH=. python tests/scripts/heldout_probe.py
"""

from __future__ import annotations

import collections
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.exercises.compare import NOT_RECOGNISED
from mingpt.model import GPT, MLP, Block, CausalSelfAttention

ROUND = [1]  # round 1 was run before any checker change; round 2 was written after round 1's fixes, run untuned
GENERIC = {NOT_RECOGNISED, "your code raised an exception", "wrong tokens"}  # the fallbacks: not a diagnosis
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


# ------------------------------------------------------------------------------------------ sampling
def topk(lg, k, keep_ties=True, smallest=False, fill=float("-inf")):
    if k is None or k >= lg.size(-1):
        return lg
    kth = torch.topk(lg, k, dim=-1, largest=not smallest).values[:, -1:]
    drop = (lg > kth) if smallest else ((lg < kth) if keep_ties else (lg <= kth))
    return lg.masked_fill(drop, fill)


def topp(lg, p, mode="ok", fill=float("-inf")):
    if p is None or p >= 1.0:
        return lg
    s, idx = torch.sort(lg, dim=-1, descending=True)
    probs = s.softmax(-1)
    cum = probs.cumsum(-1)
    drop = {"ok": cum - probs >= p, "crossing": cum > p, "ge": cum >= p, "logits": s.cumsum(-1) - s >= p}[mode]
    drop[:, 0] = False if mode != "zero" else drop[:, 0]
    return lg.masked_fill(drop.scatter(-1, idx, drop), fill)


def sampler(order="kp", temp="div", k_kw=None, p_kw=None, fill=None):
    def fn(logits, temperature=1.0, top_k=None, top_p=None):
        lg = logits / temperature if temp == "div" else (logits * temperature if temp == "mul" else logits)
        if order == "kp":
            lg = topp(topk(lg, top_k, **(k_kw or {})), top_p, **(p_kw or {}))
        else:
            lg = topk(topp(lg, top_p, **(p_kw or {})), top_k, **(k_kw or {}))
        probs = F.softmax(lg, dim=-1)
        if temp == "after":
            probs = probs ** (1 / temperature)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs
    return fn


for fn, expect in [(sampler(temp="mul"), r"temperature|multipl"),
                   (sampler(temp="none"), r"temperature"),
                   (sampler(k_kw={"keep_ties": False}), r"top-k|k - 1|one too few|<="),
                   (sampler(k_kw={"smallest": True}), r"end|smallest|least|top-k"),
                   (sampler(p_kw={"mode": "crossing"}), r"cross"),
                   (sampler(p_kw={"mode": "logits"}), r"logit|cumulative|probabilit"),
                   (sampler(order="pk"), r"order|before|top-p first"),
                   (lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(
                       topk(lg / temperature, top_k, fill=0.0), top_p, fill=0.0), -1), r"-inf|zero|0")]:
    mistake(ex.check_sampling_probs, expect)(fn)
valid(ex.check_sampling_probs)(sampler(temp="div"))


@valid(ex.check_sampling_probs)
def sampling_with_loop(logits, temperature=1.0, top_k=None, top_p=None):
    probs = []
    for row in logits / temperature:
        row = row.clone()
        if top_k is not None:
            row[row < row.sort(descending=True).values[min(top_k, len(row)) - 1]] = -math.inf
        if top_p is not None:
            order = row.argsort(descending=True)
            p = row.softmax(0)[order]
            total = 0.0
            for j, tok in enumerate(order.tolist()):
                if total >= top_p:
                    row[tok] = -math.inf
                total += p[j].item()
        probs.append(row.softmax(0))
    return torch.stack(probs)


mistake(ex.check_greedy, r"axis")(lambda lg: lg.argmax(0))
mistake(ex.check_greedy, r"shape|keepdim|dim")(lambda lg: lg.argmax(-1, keepdim=True))
mistake(ex.check_greedy, r"sampl|random")(lambda lg: torch.multinomial(lg.softmax(-1), 1, generator=torch.Generator()
                                                                       .manual_seed(0)).squeeze(-1))
mistake(ex.check_greedy, r"smallest|min|least")(lambda lg: lg.argmin(-1))
valid(ex.check_greedy)(lambda lg: lg.softmax(-1).argmax(-1))
valid(ex.check_greedy)(lambda lg: torch.tensor([max(range(len(r)), key=r.__getitem__) for r in lg.tolist()]))


# ------------------------------------------------------------------------------------------ KV cache
class Cache:
    def __init__(self, n_layer, max_length):
        self.k, self.v, self.length, self.max_length = [None] * n_layer, [None] * n_layer, 0, max_length

    def store(self, old, new):
        return new if old is None else torch.cat([old, new], dim=2)

    def update(self, layer, k, v):
        self.k[layer], self.v[layer] = self.store(self.k[layer], k), self.store(self.v[layer], v)
        return self.k[layer], self.v[layer]

    def advance(self, T):
        self.length += T


valid(ex.check_kv_cache)(Cache)
mistake(ex.check_kv_cache, r"axis|dim")(cls_with(Cache, store=lambda s, o, n: n if o is None else torch.cat([o, n], 1)))
mistake(ex.check_kv_cache, r"length|advance|count|position")(cls_with(Cache, advance=lambda s, T: None))


def counting_in_update(self, layer, k, v):
    self.length += k.shape[2]
    return Cache.update(self, layer, k, v)


mistake(ex.check_kv_cache, r"length|advance|count|position")(cls_with(Cache, update=counting_in_update))
mistake(ex.check_kv_cache, r"forget|earlier")(cls_with(Cache, store=lambda s, o, n: n))
mistake(ex.check_kv_cache, r"value|only the keys")(cls_with(Cache, update=lambda s, layer, k, v: (
    s.k.__setitem__(layer, s.store(s.k[layer], k)), (s.k[layer], v))[1]))
mistake(ex.check_kv_cache, r"share|one cache|layer")(cls_with(Cache, update=lambda s, layer, k, v: Cache.update(
    s, 0, k, v)))


def trimmed_to_block(self, layer, k, v):
    K, V = Cache.update(self, layer, k, v)
    return K[:, :, -4:], V[:, :, -4:]  # keeps only a 4-position window: forgets the oldest


mistake(ex.check_kv_cache, r"window|forget|earlier|trim|oldest")(cls_with(Cache, update=trimmed_to_block))


# ------------------------------------------------------------------------------------------ BPE merge
@mistake(ex.check_merge, r"first")
def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@mistake(ex.check_merge, r"overlap|skip|twice|second|right half")
def merge_overlapping(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1  # forgot to skip the pair's second element after a merge
    return out


@mistake(ex.check_merge, r"last")
def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"right|end|backward|revers")
def merge_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and ids[i - 1] == pair[0] and ids[i] == pair[1]:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"string|digit|text|str")
def merge_by_string(ids, pair, new_id):
    s = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()]


@valid(ex.check_merge)
def merge_with_skip_flag(ids, pair, new_id):
    out, skip = [], False
    for a, b in zip(ids, ids[1:] + [None]):
        if skip:
            skip = False
            continue
        if (a, b) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


# ------------------------------------------------------------------------------------------ BPE encode
def merge(ids, pair, new_id):
    return merge_with_skip_flag(ids, pair, new_id)


def pairs(ids):
    return list(zip(ids, ids[1:]))


@valid(ex.check_bpe_encode)
def encode_by_rank_order(ids, merges):
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def encode_minbpe(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(set(pairs(ids)), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def encode_choosing(choose, once=False):
    def encode(ids, merges):
        ids = list(ids)
        while True:
            cands = [p for p in pairs(ids) if p in merges]
            if not cands:
                return ids
            ids = merge(ids, choose(cands, merges), merges[choose(cands, merges)])
            if once:
                return ids
    return encode


mistake(ex.check_bpe_encode, r"highest|rank|latest")(encode_choosing(lambda c, m: max(c, key=m.get)))
mistake(ex.check_bpe_encode, r"leftmost|left|position|first pair")(encode_choosing(lambda c, m: c[0]))
mistake(ex.check_bpe_encode, r"once|one merge|single|stop|repeat")(
    encode_choosing(lambda c, m: min(c, key=m.get), once=True))
mistake(ex.check_bpe_encode, r"order|insertion|dict|rank")(lambda ids, merges: [
    ids := merge(ids, p, n) for p, n in merges.items()][-1] if merges else list(ids))
mistake(ex.check_bpe_encode, r"one pass|once|one merge|single|repeat")(lambda ids, merges: (lambda out: out)(
    [x for x in encode_choosing(lambda c, m: min(c, key=m.get), once=True)(ids, merges)]))


# ------------------------------------------------------------------------------------------ LR schedule
def lr_from(warm=None, decay=None, after=None):
    def fn(it, lr, mn, W, D):
        if it < W:
            return warm(it, lr, W) if warm else lr * (it + 1) / (W + 1)
        if it >= D:
            return after(lr, mn) if after else mn
        return decay(it, lr, mn, W, D) if decay else mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * (lr - mn)
    return fn


for fn, expect in [(lr_from(warm=lambda it, lr, W: lr * (it + 1) / W), r"warm"),
                   (lr_from(warm=lambda it, lr, W: lr * it / W), r"first step|0|warm"),
                   (lr_from(decay=lambda it, lr, mn, W, D: 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * lr),
                    r"min_lr|zero|0|floor"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * it / D)) * (lr - mn)),
                    r"warm|progress|start|it - warmup|from 0"),
                   (lr_from(after=lambda lr, mn: lr), r"after|flat|floor|restart"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + (1 + math.cos(math.pi * (it - W) / (D - W))) * (lr - mn)),
                    r"half|0.5|factor"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / D)) * (lr - mn)),
                    r"progress|decay|lr_decay|length|denominator"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + (lr - mn) * (1 - (it - W) / (D - W))), r"linear"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it + 1 - W) / (D - W)))
                            * (lr - mn)), r"off by one|it \+ 1|one step|early")]:
    mistake(ex.check_lr_schedule, expect)(fn)
valid(ex.check_lr_schedule)(lambda it, lr, mn, W, D: (lr * (it + 1) / (W + 1)) if it < W else (
    mn if it >= D else mn + (lr - mn) * math.cos(0.5 * math.pi * (it - W) / (D - W)) ** 2))


# ------------------------------------------------------------------------------------------ weight decay
def groups(rule):
    def fn(model, weight_decay):
        named = list(model.named_parameters())
        return [{"params": [p for n, p in named if rule(model, n, p)], "weight_decay": weight_decay},
                {"params": [p for n, p in named if not rule(model, n, p)], "weight_decay": 0.0}]
    return fn


for rule, expect in [(lambda m, n, p: p.dim() >= 2, r"embedding|wpe|wte|position"),
                     (lambda m, n, p: n.endswith("weight"), r"layernorm|norm"),
                     (lambda m, n, p: True, r"everything|all|bias|norm"),
                     (lambda m, n, p: p.dim() < 2, r"invert|swap|revers|opposite|bias"),
                     (lambda m, n, p: n.endswith("weight") and "ln" not in n, r"embedding|wpe|wte"),
                     (lambda m, n, p: "c_attn.weight" in n or "c_fc.weight" in n, r"missing|c_proj|some|not all|matmul weights")]:
    mistake(ex.check_weight_decay_groups, expect)(groups(rule))
mistake(ex.check_weight_decay_groups, r"only|missing|every parameter|all parameters|left out|forgot")(
    lambda model, weight_decay: [{"params": [p for m in model.modules() if isinstance(m, nn.Linear)
                                             for p in [m.weight]], "weight_decay": weight_decay}])
valid(ex.check_weight_decay_groups)(lambda model, weight_decay: [
    {"params": [m.weight for m in model.modules() if isinstance(m, nn.Linear)], "weight_decay": weight_decay},
    {"params": [p for mn, m in model.named_modules() for pn, p in m.named_parameters(recurse=False)
                if not (isinstance(m, nn.Linear) and pn == "weight")
                and all(p is not l.weight for l in model.modules() if isinstance(l, nn.Linear))], "weight_decay": 0.0}])


# ------------------------------------------------------------------------------------------ round 2
# Written after round 1's fixes, without looking at the checkers' tables again, and counted before any tuning.
ROUND[0] = 2
mistake(ex.check_mlp, r"dropout")(cls_with(MLP, forward=lambda s, x: s.c_proj(s.gelu(s.c_fc(s.dropout(x))))))
mistake(ex.check_mlp, r"erf|sqrt|gelu")(mlp(lambda h: 0.5 * h * (1 + torch.erf(h / 2))))
for knobs, expect in [({"scale": "mul"}, r"scal|sqrt")]:
    pass


class TriuAttn(Attn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = self.scores(q, k, C // self.n_head)
        att = att.masked_fill(self.hidden(T), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def scores(self, q, k, hs):
        return q @ k.transpose(-2, -1) / math.sqrt(hs)

    def hidden(self, T):
        return torch.ones(T, T, dtype=torch.bool).triu(1)


mistake(ex.check_attention, r"mask|triangle|past|future")(cls_with(TriuAttn, hidden=lambda s, T: torch.ones(
    T, T, dtype=torch.bool).tril(-1)))
mistake(ex.check_attention, r"itself|diagonal|nan")(cls_with(TriuAttn, hidden=lambda s, T: torch.ones(
    T, T, dtype=torch.bool).triu(0)))
mistake(ex.check_attention, r"scal|sqrt")(cls_with(TriuAttn, scores=lambda s, q, k, hs: q @ k.transpose(-2, -1)
                                                   * math.sqrt(hs)))
mistake(ex.check_attention, r"no causal mask|mask")(cls_with(TriuAttn, hidden=lambda s, T: torch.zeros(
    T, T, dtype=torch.bool)))
mistake(ex.check_attention, r"swap|q and k|transpos|k @ q")(cls_with(TriuAttn, scores=lambda s, q, k, hs:
                                                                    k @ q.transpose(-2, -1) / math.sqrt(hs)))
valid(ex.check_attention)(cls_with(TriuAttn, scores=lambda s, q, k, hs: torch.einsum("bhtd,bhsd->bhts", q / hs**0.25,
                                                                                    k / hs**0.25)))

for f, expect in [(lambda s, x: (h := x + s.mlp(s.ln_2(x))) + s.attn(s.ln_1(h)), r"swap|order|before"),
                  (lambda s, x: (h := x + s.attn(s.ln_2(x))) + s.mlp(s.ln_1(h)), r"swap|ln_1|ln_2|norm")]:
    mistake(ex.check_block, expect)(block(f))

mistake(ex.check_embedding, r"swap|position")(cls_with(Emb, forward=lambda s, i: s.wpe(i) + s.wte(
    torch.arange(i.shape[1]))))
mistake(ex.check_embedding, r"scal|sqrt")(cls_with(Emb, forward=lambda s, i: s.wte(i) * math.sqrt(s.wte.embedding_dim)
                                                   + s.wpe(torch.arange(i.shape[1]))))

mistake(ex.check_loss, r"transpos|class|axis|dim|flatten")(lambda lg, tk: F.cross_entropy(lg[:, :-1], tk[:, 1:],
                                                                                  ignore_index=-1))
mistake(ex.check_gpt, r"loss|none|type")(gpt(lambda s, i: s.lm_head(trunk(s, i)), lambda lg, tg: None))
mistake(ex.check_gpt, r"softmax|probabilit")(gpt(lambda s, i: s.lm_head(trunk(s, i)), lambda lg, tg: F.cross_entropy(
    lg.softmax(-1).reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1)))


def trunk_blocks(self, idx, blocks):
    tr = self.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    for b in blocks(tr.h):
        x = b(x)
    return self.lm_head(tr.ln_f(x))


mistake(ex.check_gpt, r"order|revers|block|layer")(gpt(lambda s, i: trunk_blocks(s, i, lambda h: list(h)[::-1])))
mistake(ex.check_gpt, r"block|layer")(gpt(lambda s, i: trunk_blocks(s, i, lambda h: list(h)[:1])))
mistake(ex.check_bigram, r"shape|last|position")(cls_with(Bigram, forward=lambda s, i: s.table(i[:, :-1])))

mistake(ex.check_sampling_probs, r"sort|order|cumulative")(lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(
    (lambda l: l if top_p is None else l.masked_fill(l.softmax(-1).cumsum(-1) - l.softmax(-1) >= top_p,
                                                     float("-inf")))(topk(lg / temperature, top_k)), -1))
valid(ex.check_sampling_probs)(lambda lg, temperature=1.0, top_k=None, top_p=None: (lambda p: p / p.sum(-1, keepdim=True))(
    F.softmax(topp(topk(lg, top_k), top_p), -1) ** (1 / temperature)) if top_k is None and top_p is None
    else F.softmax(topp(topk(lg / temperature, top_k), top_p), -1))


def topk_plus_one(lg, k):
    if k is None or k >= lg.size(-1):
        return lg
    kth = torch.sort(lg, -1, descending=True).values[:, k: k + 1] if k < lg.size(-1) else lg.min(-1, True).values
    return lg.masked_fill(lg < kth, float("-inf"))


mistake(ex.check_sampling_probs, r"top-k|one too many|k \+ 1")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(topk_plus_one(lg / temperature, top_k), top_p), -1))
mistake(ex.check_sampling_probs, r"order|temperature|before")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(topk(lg, top_k), top_p) / temperature, -1)
    if False else F.softmax(topp(topk(lg / temperature, top_k), None) if top_p is None else
                            topk(topp(lg, top_p), top_k) / temperature, -1))
mistake(ex.check_greedy, r"largest logit|value")(lambda lg: lg.max(-1).values)


def update_returns_old(self, layer, k, v):
    old = (self.k[layer], self.v[layer])
    Cache.update(self, layer, k, v)
    return old if old[0] is not None else (k, v)


mistake(ex.check_kv_cache, r"new|before|previous|old|forget")(cls_with(Cache, update=update_returns_old))


def advance_by_one(self, T):
    self.length += 1


mistake(ex.check_kv_cache, r"length|advance|count")(cls_with(Cache, advance=advance_by_one))


@mistake(ex.check_merge, r"nothing|list|tuple|type")
def merge_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if [ids[i], ids[i + 1] if i + 1 < len(ids) else None] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


mistake(ex.check_merge, r"revers|swap|order|pair")(lambda ids, pair, new_id: merge_with_skip_flag(
    ids, (pair[1], pair[0]), new_id))


@mistake(ex.check_bpe_encode, r"frequen|count|common")
def encode_most_frequent(ids, merges):
    ids = list(ids)
    while True:
        cands = [p for p in pairs(ids) if p in merges]
        if not cands:
            return ids
        best = max(set(cands), key=cands.count)
        ids = merge(ids, best, merges[best])


mistake(ex.check_lr_schedule, r"first step|0|warm")(lr_from(warm=lambda it, lr, W: lr * it / (W + 1)))
mistake(ex.check_lr_schedule, r"progress|decay|floor|early|reach")(lr_from(
    decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * min(1.0, (it - W) / (D - W - 1)))) * (lr - mn)))
mistake(ex.check_weight_decay_groups, r"bias|embedding")(groups(lambda m, n, p: "ln" not in n))
mistake(ex.check_weight_decay_groups, r"bias")(lambda model, weight_decay: [
    {"params": [p for mod in model.modules() if isinstance(mod, nn.Linear) for p in mod.parameters(recurse=False)],
     "weight_decay": weight_decay},
    {"params": [p for mod in model.modules() if not isinstance(mod, nn.Linear) for p in mod.parameters(recurse=False)
                if all(p is not l.weight for l in model.modules() if isinstance(l, nn.Linear))], "weight_decay": 0.0}])


# ------------------------------------------------------------------------------------------ report
def main() -> None:
    torch.manual_seed(0)
    stats = collections.defaultdict(lambda: [0] * 6)  # (round, checker) -> counts
    unnamed = []
    for checker, impl, expect, rnd in MISTAKES:
        row = stats[rnd, checker.__name__]
        row[0] += 1
        try:
            result = checker(impl)
        except Exception as e:  # a crash of the checker itself
            unnamed.append((rnd, checker.__name__, impl, f"CHECKER CRASHED: {type(e).__name__}: {e}"))
            continue
        row[1] += not result
        named = (not result) and re.search(expect, result.property, re.I) is not None
        row[2] += named
        other = (not result) and not named and result.property not in GENERIC
        row[3] += other
        if not named:
            unnamed.append((rnd, checker.__name__, impl,
                            f"expected /{expect}/ " + ("OTHER NAME " if other else "") + str(result)))
    for checker, impl, rnd in VALID:
        row = stats[rnd, checker.__name__]
        row[4] += 1
        try:
            result = checker(impl)
        except Exception as e:
            unnamed.append((rnd, checker.__name__, impl, f"VALID CRASHED THE CHECKER: {e}"))
            continue
        row[5] += bool(result)
        if not result:
            unnamed.append((rnd, checker.__name__, impl, "VALID REFUSED " + str(result)))
    widths = (8, 6, 5, 5, 5, 6)
    for rnd in sorted({r for r, _ in stats}):
        print(f"round {rnd}\n{'checker':28s} {'mistakes':>8s} {'caught':>6s} {'named':>5s} {'other':>5s} "
              f"{'valid':>5s} {'passed':>6s}")
        total = [0] * 6
        for (r, checker), row in stats.items():
            if r == rnd:
                print(f"{checker:28s} " + " ".join(f"{v:{w}d}" for v, w in zip(row, widths)))
                total = [a + b for a, b in zip(total, row)]
        print(f"{'total':28s} " + " ".join(f"{v:{w}d}" for v, w in zip(total, widths)) + "\n")
    for rnd, name, impl, message in unnamed:
        label = getattr(impl, "__name__", "") + " " + str({k: v for k, v in vars(impl).items()
                                                         if not k.startswith("_") and not callable(v)}
                                                        if isinstance(impl, type) else "")
        print(f"\n--- round {rnd} {name}: {label}\n{message}")


if __name__ == "__main__":
    main()
