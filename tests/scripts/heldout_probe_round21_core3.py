"""Round 21, core part 3: Block, embedding, GPT. Imported by heldout_probe_round21_core2.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention


# ------------------------------------------------------------------------------------------ Block
class _B(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)


def _blk(name, fwd):
    return type(name, (_B,), {"forward": fwd})


def _b_halfpost(self, x, kv_cache=None):  # post-LN on the MLP half only
    x = x + self.attn(self.ln_1(x), kv_cache)
    return self.ln_2(x + self.mlp(x))


def _b_attn_twice(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    x = x + self.attn(self.ln_1(x), kv_cache)
    return x + self.mlp(self.ln_2(x))


def _b_parallel(self, x, kv_cache=None):
    return x + self.attn(self.ln_1(x), kv_cache) + self.mlp(self.ln_2(x))


def _b_resid_from_ln(self, x, kv_cache=None):  # the attention half's residual starts from ln_1(x)
    h = self.ln_1(x)
    x = h + self.attn(h, kv_cache)
    return x + self.mlp(self.ln_2(x))


def _b_mlp_first(self, x, kv_cache=None):
    x = x + self.mlp(self.ln_2(x))
    return x + self.attn(self.ln_1(x), kv_cache)


for _name, _rx, _f in [
    ("block_post_ln_mlp_half_only", r"post|ln_2|mlp", _b_halfpost),
    ("block_ln_1_for_both", r"ln_1|ln_2|share|same", lambda self, x, kv_cache=None: (lambda h: h + self.mlp(
        self.ln_1(h)))(x + self.attn(self.ln_1(x), kv_cache))),
    ("block_ln_swapped", r"swap|ln_1|ln_2", lambda self, x, kv_cache=None: (lambda h: h + self.mlp(self.ln_1(h)))(
        x + self.attn(self.ln_2(x), kv_cache))),
    ("block_attn_half_residual_scaled", r"scale|factor|0\.5|half", lambda self, x, kv_cache=None: (
        lambda h: h + self.mlp(self.ln_2(h)))(x + 0.5 * self.attn(self.ln_1(x), kv_cache))),
    ("block_attn_twice", r"twice|double|attn|two", _b_attn_twice),
    ("block_parallel", r"parallel|sequential|original|mid", _b_parallel),
    ("block_residual_from_ln", r"residual|ln_1|normali", _b_resid_from_ln),
    ("block_mlp_first", r"order|swap|first|before", _b_mlp_first),
    ("block_ln_2_on_attn_output", r"ln_2|output|norm", lambda self, x, kv_cache=None: (lambda h: h + self.mlp(
        self.ln_2(h)))(x + self.ln_2(self.attn(self.ln_1(x), kv_cache)))),
    ("block_residual_doubled", r"residual|double|2|scale|twice", lambda self, x, kv_cache=None: (lambda h: h + self.mlp(
        self.ln_2(h)))(2 * x + self.attn(self.ln_1(x), kv_cache))),
    ("block_no_attn_residual_and_ln_swapped", r"(residual.*(ln|swap))|((ln|swap).*residual)|and|also",
     lambda self, x, kv_cache=None: (lambda h: h + self.mlp(self.ln_1(h)))(self.attn(self.ln_2(x), kv_cache))),
    ("block_mlp_on_unnormed", r"ln_2|norm|mlp", lambda self, x, kv_cache=None: (lambda h: h + self.mlp(h))(
        x + self.attn(self.ln_1(x), kv_cache))),
    ("block_first_row_skips_mlp", r"batch|row|first|partial", lambda self, x, kv_cache=None: (lambda h: torch.cat(
        [h[:1], h[1:] + self.mlp(self.ln_2(h[1:]))]))(x + self.attn(self.ln_1(x), kv_cache))),
]:
    mistake(ex.check_block, _rx)(_blk(_name, _f))


@valid(ex.check_block)
class block_valid_temps(_B):
    def forward(self, x, kv_cache=None):
        a = self.attn(self.ln_1(x), kv_cache=kv_cache)
        h = torch.add(x, a)
        return h.add(self.mlp(self.ln_2(h)))


@valid(ex.check_block)
class block_valid_loop(_B):
    def forward(self, x, kv_cache=None):
        for ln, f in ((self.ln_1, lambda t: self.attn(t, kv_cache)), (self.ln_2, self.mlp)):
            x = x + f(ln(x))
        return x


@valid(ex.check_block)
class block_valid_reference_parts(nn.Module):  # the reference Block with its own sublayers: a valid alternative
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.inner = Block(config, layer_idx)
        self.ln_1, self.attn, self.ln_2, self.mlp = self.inner.ln_1, self.inner.attn, self.inner.ln_2, self.inner.mlp

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_2(x))


# ------------------------------------------------------------------------------------------ embedding
class _E(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)


def _emb(name, fwd):
    return type(name, (_E,), {"forward": fwd})


def _pos(idx, start=0):
    return torch.arange(start, start + idx.size(1), device=idx.device)


for _name, _rx, _f in [
    ("emb_pos_from_1", r"offset|position|shift|\+ ?1|start", lambda self, idx: self.wte(idx) + self.wpe(
        _pos(idx, 1))),
    ("emb_pos_from_2", r"offset|position|shift|\+ ?2|start", lambda self, idx: self.wte(idx) + self.wpe(
        _pos(idx, 2))),
    ("emb_pos_reversed", r"rever|flip|position|order", lambda self, idx: self.wte(idx) + self.wpe(
        _pos(idx).flip(0))),
    ("emb_scaled_sqrt_C", r"scale|sqrt", lambda self, idx: self.wte(idx) * math.sqrt(self.wte.embedding_dim)
     + self.wpe(_pos(idx))),
    ("emb_pos_first_row_only", r"batch|row|first|partial", lambda self, idx: self.wte(idx) + torch.cat(
        [self.wpe(_pos(idx))[None], torch.zeros(idx.size(0) - 1, idx.size(1), self.wpe.embedding_dim)])),
    ("emb_right_aligned", r"position|offset|align|block_size|end", lambda self, idx: self.wte(idx) + self.wpe(
        _pos(idx, self.wpe.num_embeddings - idx.size(1)))),
    ("emb_multiply", r"multipl|product|\*|add", lambda self, idx: self.wte(idx) * self.wpe(_pos(idx))),
    ("emb_subtract", r"sign|subtract|minus|scaled", lambda self, idx: self.wte(idx) - self.wpe(_pos(idx))),
    ("emb_pos_mod_4", r"position|wrap|modul|repeat|period", lambda self, idx: self.wte(idx) + self.wpe(
        _pos(idx) % 4)),
    ("emb_average", r"half|0\.5|average|mean|scale", lambda self, idx: 0.5 * (self.wte(idx) + self.wpe(_pos(idx)))),
    ("emb_pos_from_1_and_scaled", r"((offset|position|shift).*(scale|sqrt))|((scale|sqrt).*(offset|position))|and"
     r"|also", lambda self, idx: self.wte(idx) * math.sqrt(self.wte.embedding_dim) + self.wpe(_pos(idx, 1))),
    ("emb_pos_only_even", r"even|position|some|partial", lambda self, idx: self.wte(idx) + self.wpe(_pos(idx))
     * (_pos(idx) % 2 == 0).float()[:, None]),
    ("emb_last_position_no_pos", r"last|position|partial", lambda self, idx: self.wte(idx) + self.wpe(_pos(idx))
     * (_pos(idx) < idx.size(1) - 1).float()[:, None]),
]:
    mistake(ex.check_embedding, _rx)(_emb(_name, _f))

valid(ex.check_embedding)(_emb("emb_valid_F", lambda self, idx: F.embedding(idx, self.wte.weight)
                               + self.wpe.weight[: idx.size(1)]))
valid(ex.check_embedding)(_emb("emb_valid_onehot", lambda self, idx: F.one_hot(idx, self.wte.num_embeddings).to(
    self.wte.weight.dtype) @ self.wte.weight + self.wpe(_pos(idx)).expand(idx.size(0), -1, -1)))
valid(ex.check_embedding)(_emb("emb_valid_pos_reversed_twice", lambda self, idx: self.wte(idx) + self.wpe(
    _pos(idx).flip(0).flip(0)).unsqueeze(0)))


# ------------------------------------------------------------------------------------------ GPT
class _G(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.embd_pdrop),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def embed(self, idx, start=0):
        t = self.transformer
        return t.drop(t.wte(idx) + t.wpe(torch.arange(start, start + idx.size(1), device=idx.device)))

    def blocks(self, x):
        for b in self.transformer.h:
            x = b(x)
        return x

    def loss(self, logits, targets):
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    def forward(self, idx, targets=None):
        logits = self.lm_head(self.transformer.ln_f(self.blocks(self.embed(idx))))
        return logits, (None if targets is None else self.loss(logits, targets))


def _gpt(name, **methods):
    return type(name, (_G,), methods)


def _last_block_skipped(self, x):
    for b in self.transformer.h[:-1]:
        x = b(x)
    return x


def _reversed_blocks(self, x):
    for b in reversed(self.transformer.h):
        x = b(x)
    return x


def _first_block_twice(self, x):
    x = self.transformer.h[0](x)
    for b in self.transformer.h:
        x = b(x)
    return x


def _ln_f_each(self, x):
    for b in self.transformer.h:
        x = self.transformer.ln_f(b(x))
    return x


def _stack_residual(self, x):
    for b in self.transformer.h:
        x = x + b(x)
    return x


for _name, _rx, _m in [
    ("gpt_pos_from_1", r"position|offset|wpe", {"embed": lambda self, idx: _G.embed(self, idx, 1)}),
    ("gpt_last_block_skipped", r"last|layer|block|n_layer|Block", {"blocks": _last_block_skipped}),
    ("gpt_blocks_reversed", r"order|revers", {"blocks": _reversed_blocks}),
    ("gpt_first_block_twice", r"twice|first|block|layer", {"blocks": _first_block_twice}),
    ("gpt_ln_f_after_every_block", r"ln_f|final|norm|every", {"blocks": _ln_f_each}),
    ("gpt_stack_residual", r"residual|block", {"blocks": _stack_residual}),
    ("gpt_loss_shifted", r"shift|target|offset", {"loss": lambda self, logits, targets: F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1), ignore_index=-1)}),
    ("gpt_loss_sum", r"sum|mean|reduc", {"loss": lambda self, logits, targets: F.cross_entropy(
        logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction="sum")}),
    ("gpt_loss_ignore_0", r"ignore|-1|0", {"loss": lambda self, logits, targets: F.cross_entropy(
        logits.view(-1, logits.size(-1)), targets.reshape(-1).clamp(min=0), ignore_index=0)}),
    ("gpt_loss_label_smooth", r"smooth", {"loss": lambda self, logits, targets: F.cross_entropy(
        logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, label_smoothing=0.1)}),
    ("gpt_loss_first_row", r"batch|row|first", {"loss": lambda self, logits, targets: F.cross_entropy(
        logits[0], targets[0], ignore_index=-1)}),
]:
    mistake(ex.check_gpt, _rx)(_gpt(_name, **_m))


@mistake(ex.check_gpt, r"scale|temperature|logit|sqrt")
class gpt_logits_scaled(_G):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.transformer.ln_f(self.blocks(self.embed(idx)))) / math.sqrt(self.config.n_embd)
        return logits, (None if targets is None else self.loss(logits, targets))


@mistake(ex.check_gpt, r"None|zero|0|no targets|without")
class gpt_zero_loss_without_targets(_G):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.transformer.ln_f(self.blocks(self.embed(idx))))
        return logits, (torch.zeros(()) if targets is None else self.loss(logits, targets))


@mistake(ex.check_gpt, r"((wpe|position).*(ln_f|final))|((ln_f|final).*(wpe|position))|and|also")
class gpt_no_wpe_no_ln_f(_G):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.blocks(self.transformer.wte(idx)))
        return logits, (None if targets is None else self.loss(logits, targets))


@valid(ex.check_gpt)
class gpt_valid_wte_matmul(_G):
    def forward(self, idx, targets=None):
        x = self.transformer.ln_f(self.blocks(self.embed(idx)))
        logits = x @ self.transformer.wte.weight.T
        if targets is None:
            return logits, None
        lp = logits.log_softmax(-1)
        keep = targets != -1
        return logits, -lp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].mean()


@valid(ex.check_gpt)
class gpt_valid_enumerate(_G):
    def forward(self, idx, targets=None):
        x = self.embed(idx)
        for i, b in enumerate(self.transformer.h):
            x = self.transformer.h[i](x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="mean")
        return logits, loss


@valid(ex.check_gpt)
class gpt_valid_pos_broadcast(_G):
    def forward(self, idx, targets=None):
        t = self.transformer
        pos = torch.arange(idx.size(1)).unsqueeze(0).expand_as(idx)
        x = t.drop(t.wte(idx) + t.wpe(pos))
        logits = self.lm_head(t.ln_f(self.blocks(x)))
        return logits, (None if targets is None else self.loss(logits, targets))
