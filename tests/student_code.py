"""
Student-style implementations for the checkers' tests: correct ones (including valid alternatives) and
deliberately buggy ones, each with one classic mistake. They are written here independently of the checkers'
own rebuilt variants, the way students write them, so that a diagnosis is tested against real code.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.generation import KVCache
from mingpt.model import MLP, Block
from mingpt.tokenizer import merge_pair


# ---------------------------------------------------------------------------------------------- attention
class Attention(nn.Module):
    """A student's attention; each class attribute is a place where students go wrong."""

    scale_power, softmax_dim, fill, diagonal, project, merge, split = 0.5, -1, float("-inf"), 0, True, "ok", "ok"

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        if self.split == "ok":
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, nh, T, hs) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / hs**self.scale_power
        att = att.masked_fill(torch.tril(torch.ones(T, T), diagonal=self.diagonal) == 0, self.fill)
        att = self.attn_dropout(F.softmax(att, dim=self.softmax_dim))
        y = att @ v
        y = y.transpose(1, 2).reshape(B, T, C) if self.merge == "ok" and self.split == "ok" else y.reshape(B, T, C)
        return self.c_proj(y) if self.project else y


def attention_with(**mistake):
    return type("Buggy", (Attention,), mistake)


class MaskAfterSoftmax(Attention):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1) * torch.tril(torch.ones(T, T))
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class DropoutInEval(Attention):
    def forward(self, x, kv_cache=None):
        return F.dropout(super().forward(x), 0.1)  # F.dropout defaults to training=True


class ScaledByEmbeddingSize(Attention):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1) / math.sqrt(C)).masked_fill(~torch.ones(T, T).tril().bool(), -math.inf)
        return self.c_proj((att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))


class EinsumAttention(nn.Module):
    """Valid alternative: separate q/k/v projections, einsum, a boolean upper-triangle mask."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (m(x).view(B, T, nh, hs) for m in (self.query, self.key, self.value))
        att = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hs)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(dim=-1)
        return self.c_proj(torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, T, C))


class LoopAttention(nn.Module):
    """Valid alternative: one head at a time and one query at a time, in plain Python loops."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        heads = []
        for h in range(self.n_head):
            cols = slice(h * hs, (h + 1) * hs)
            rows = []
            for t in range(T):
                scores = q[:, t, cols].unsqueeze(1) @ k[:, : t + 1, cols].transpose(1, 2) / math.sqrt(hs)
                rows.append(scores.softmax(dim=-1) @ v[:, : t + 1, cols])  # (B, 1, hs)
            heads.append(torch.cat(rows, dim=1))
        return self.c_proj(torch.cat(heads, dim=-1))


class TransposedWeightsAttention(Attention):
    """Valid alternative: the fused weight stored as an (C, 3C) Parameter used as x @ W (a transposed layout)."""

    def __init__(self, config):
        super().__init__(config)
        C = config.n_embd
        del self.c_attn
        self.w_attn = nn.Parameter(torch.randn(C, 3 * C))
        self.b_attn = nn.Parameter(torch.zeros(3 * C))

    def forward(self, x, kv_cache=None):
        self.c_attn = lambda t: t @ self.w_attn + self.b_attn
        return super().forward(x)


ATTENTION_MUTATIONS = [
    (attention_with(scale_power=1.0), "scaling applied twice (1/hs instead of 1/sqrt(hs))"),
    (attention_with(scale_power=0.0), "missing 1/sqrt(head_size) scaling"),
    (ScaledByEmbeddingSize, "wrong scaling factor"),
    (attention_with(softmax_dim=-2), "softmax over the wrong dimension"),
    (attention_with(fill=0.0), "masked scores set to 0 instead of -inf"),
    (attention_with(diagonal=-1), "position t cannot attend to itself"),
    (attention_with(diagonal=1), "mask off by one (each query also sees the next key)"),
    (attention_with(diagonal=100), "no causal mask"),
    (attention_with(project=False), "missing output projection"),
    (attention_with(merge="reshape"), "heads merged in the wrong order"),
    (attention_with(split="reshape"), "heads split in the wrong order"),
    (MaskAfterSoftmax, "mask applied after the softmax"),
    (DropoutInEval, "dropout active in eval mode"),
]


# ---------------------------------------------------------------------------------------------- LayerNorm
class LayerNorm(nn.Module):
    unbiased, eps_outside, dim, affine, use_eps = False, False, -1, True, True

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        mean = x.mean(dim=self.dim, keepdim=True)
        var = x.var(dim=self.dim, keepdim=True, unbiased=self.unbiased)
        eps = self.eps if self.use_eps else 0.0
        y = (x - mean) / (var.sqrt() + eps) if self.eps_outside else (x - mean) / (var + eps).sqrt()
        return y * self.weight + self.bias if self.affine else y


def layernorm_with(**mistake):
    return type("BuggyLN", (LayerNorm,), mistake)


LAYERNORM_MUTATIONS = [
    (layernorm_with(unbiased=True), "unbiased variance"),
    (layernorm_with(eps_outside=True), "epsilon outside the square root"),
    (layernorm_with(use_eps=False), "epsilon missing"),
    (layernorm_with(dim=1), "normalised over the wrong axis (time)"),
    (layernorm_with(affine=False), "gain and bias not applied"),
]


# ---------------------------------------------------------------------------------------------- MLP and Block
def mlp_with(activation):
    class BuggyMLP(MLP):
        def forward(self, x):
            return self.c_proj(activation(self.c_fc(x)))
    return BuggyMLP


def block_with(forward):
    return type("BuggyBlock", (Block,), {"forward": lambda self, x, kv_cache=None: forward(self, x)})


class ListBlock(nn.Module):
    """The sublayers in a plain list of (norm, layer) pairs: PyTorch registers none of their parameters."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.pairs = [(nn.LayerNorm(config.n_embd), Block(config, layer_idx).attn),
                      (nn.LayerNorm(config.n_embd), MLP(config))]

    def forward(self, x, kv_cache=None):
        for norm, layer in self.pairs:
            x = x + layer(norm(x))
        return x


BLOCK_MUTATIONS = [
    (block_with(lambda b, x: b.ln_2((h := b.ln_1(x + b.attn(x))) + b.mlp(h))),
     "LayerNorm after the residual add (post-LN)"),
    (block_with(lambda b, x: (h := b.attn(b.ln_1(x))) + b.mlp(b.ln_2(h))), "attention branch without its residual"),
    (block_with(lambda b, x: (h := x + b.attn(b.ln_1(x))) + b.mlp(b.ln_1(h))), "ln_1 used for both sublayers"),
    (block_with(lambda b, x: (h := x + b.mlp(b.ln_2(x))) + b.attn(b.ln_1(h))), "MLP before attention"),
    (block_with(lambda b, x: (h := x + b.attn(F.layer_norm(x, x.shape[-1:]))) + b.mlp(F.layer_norm(h, h.shape[-1:]))),
     "ln_1 and ln_2 without their gain and bias (F.layer_norm without weight)"),
    (ListBlock, "parameters not registered"),
]


# ---------------------------------------------------------------------------------------------- embedding, loss
class Embedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

    def positions(self, idx):
        return torch.arange(idx.shape[1])

    def forward(self, idx):
        return self.wte(idx) + self.wpe(self.positions(idx))


class NoPositions(Embedding):
    def forward(self, idx):
        return self.wte(idx)


class PositionsFromTokens(Embedding):
    def positions(self, idx):
        return idx


def loss_ok(logits, tokens):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1), ignore_index=-1)


def loss_unshifted(logits, tokens):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens.reshape(-1), ignore_index=-1)


def loss_no_ignore(logits, tokens):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1))


def loss_summed(logits, tokens):
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=-1, reduction="sum")


def loss_on_probabilities(logits, tokens):
    return loss_ok(logits.softmax(dim=-1), tokens)


# ---------------------------------------------------------------------------------------------- sampling
def probs_ok(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # the mass of the tokens ranked above
        remove = torch.zeros_like(before, dtype=torch.bool).scatter(-1, order, before >= top_p)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits.softmax(dim=-1)


def probs_temperature_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    probs = probs_ok(logits, 1.0, top_k, top_p) / temperature
    return probs / probs.sum(dim=-1, keepdim=True)


def probs_top_p_tail(logits, temperature=1.0, top_k=None, top_p=None):
    if top_p is None:
        return probs_ok(logits, temperature, top_k)
    sorted_logits, order = (logits / temperature).sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    keep_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keeps the tail: the wrong side
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return (logits / temperature).masked_fill(~keep, float("-inf")).softmax(dim=-1)


def probs_top_p_drops_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    if top_p is None:
        return probs_ok(logits, temperature, top_k)
    sorted_logits, order = (logits / temperature).sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative > top_p
    remove_sorted[:, 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return (logits / temperature).masked_fill(remove, float("-inf")).softmax(dim=-1)


def probs_top_k_off_by_one(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is None:
        return probs_ok(logits, temperature, None, top_p)
    scaled = logits / temperature
    kth = scaled.topk(top_k, dim=-1).values[:, -1:]
    return probs_ok(scaled.masked_fill(scaled <= kth, float("-inf")), 1.0, None, top_p)  # drops the k-th


# ---------------------------------------------------------------------------------------------- KV cache
class ForgetfulCache(KVCache):
    def update(self, layer, k, v):
        return k, v  # never keeps the past


class SharedCache:
    def __init__(self, n_layer, max_length):
        self.length, self.k, self.v = 0, None, None

    def update(self, layer, k, v):  # ignores the layer: every layer appends to one store
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def advance(self, T):
        self.length += T


class WrongAxisCache(KVCache):
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.store = {}

    def update(self, layer, k, v):
        old = self.store.get(layer)
        self.store[layer] = (k, v) if old is None else (torch.cat([old[0], k], dim=1), torch.cat([old[1], v], dim=1))
        return self.store[layer]


class NotCountingCache(KVCache):
    def advance(self, T):
        pass


# ---------------------------------------------------------------------------------------------- BPE
def merge_overlapping(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)  # the bug: a pair starting on the right half of the previous one merges again
        elif not (i > 0 and (ids[i - 1], ids[i]) == tuple(pair)):
            out.append(ids[i])
    return out


def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def encode_by_frequency(ids, merges):
    while True:
        counts = {}
        for p in zip(ids, ids[1:]):
            if p in merges:
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            return ids
        best = max(counts, key=lambda p: (counts[p], -merges[p]))  # most frequent, ties by rank
        ids = merge_pair(ids, *best, merges[best])


def encode_ok(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_pair(ids, *pair, merges[pair])
    return ids


# ---------------------------------------------------------------------------------------------- optimiser
def groups_ok(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]


def groups_by_dimension(model, weight_decay):
    """nanoGPT's rule, decay every tensor with 2+ dims, also decays wpe: mingpt's rule does not."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def groups_everything(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


def groups_by_name_twice(model, weight_decay):
    named = dict(model.named_parameters(remove_duplicate=False))  # lists the tied matrix under both names
    return [{"params": [p for n, p in named.items() if n.endswith("weight") and ".ln_" not in n and "ln_f" not in n
                        and "wpe" not in n], "weight_decay": weight_decay},
            {"params": [p for n, p in named.items() if not (n.endswith("weight") and ".ln_" not in n
                        and "ln_f" not in n and "wpe" not in n)], "weight_decay": 0.0}]


def lr_ok(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def lr_not_flat(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return lr_ok(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)
    progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def lr_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    return lr_ok(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


def lr_no_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    return lr_ok(max(it, warmup_iters), learning_rate, min_lr, warmup_iters, lr_decay_iters)


def lr_zero_start(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    return lr_ok(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


# ---------------------------------------------------------------------------------------------- bigram, GPT-2 weights
class Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx)


class BigramProbabilities(Bigram):
    def forward(self, idx):
        return F.softmax(self.table(idx), dim=-1)


def weights_with(softmax_dim=-1, causal=True):
    def weights(q, k):
        scores = torch.einsum("btd,bsd->bts", q, k) / math.sqrt(q.shape[-1])
        if causal:
            scores = scores + torch.full(scores.shape[-2:], float("-inf")).triu(1)
        return scores.softmax(dim=softmax_dim)
    return weights


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _weights_only(hf):  # a checkpoint's causal-mask buffers have no place in mingpt
    return {k: v for k, v in hf.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}


def convert_ok(hf):
    return {k: v.t() if k.endswith(CONV1D) else v for k, v in _weights_only(hf).items()}


def convert_without_transpose(hf):
    return _weights_only(hf)


def convert_where_shapes_complain(hf):
    """Transposes only the weights whose shape gave an error when loading: the square attn.c_proj is missed."""
    return {k: v.t() if k.endswith(CONV1D) and v.shape[0] != v.shape[1] else v for k, v in _weights_only(hf).items()}


def convert_every_matrix(hf):
    return {k: v.t() if v.dim() == 2 else v for k, v in _weights_only(hf).items()}
