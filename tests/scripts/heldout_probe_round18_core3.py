"""The held-out probe, round 18, core part 3: Block, embedding, GPT (see heldout_probe_round18_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention


# ------------------------------------------------------------------------------------------ check_block
class B0(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)


def blk(forward, name="Student"):
    return cls_with(B0, forward=lambda self, x, kv_cache=None: forward(self, x), name=name)


mistake(ex.check_block, r"post|pre|norm|order")(blk(
    lambda s, x: s.ln_2((lambda h: h + s.mlp(h))(s.ln_1(x + s.attn(x))))))
mistake(ex.check_block, r"ln_2|ln_1|norm|same|share|reuse")(blk(
    lambda s, x: (lambda h: h + s.mlp(s.ln_1(h)))(x + s.attn(s.ln_1(x)))))
mistake(ex.check_block, r"swap|ln_1|ln_2|norm")(blk(
    lambda s, x: (lambda h: h + s.mlp(s.ln_1(h)))(x + s.attn(s.ln_2(x)))))
mistake(ex.check_block, r"parallel|sequen|same x|input|wiring")(blk(
    lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_2(x))))
mistake(ex.check_block, r"residual|mlp|skip")(blk(
    lambda s, x: s.mlp(s.ln_2(x + s.attn(s.ln_1(x))))))
# the residual taken from the normalised stream: x = ln(x) + f(ln(x))
mistake(ex.check_block, r"residual|norm|skip|stream")(blk(
    lambda s, x: (lambda h: (lambda g: g + s.mlp(g))(s.ln_2(h)))((lambda g: g + s.attn(g))(s.ln_1(x)))))
mistake(ex.check_block, r"order|swap|mlp.*first|first|attn|before")(blk(  # widened: "MLP before attention"
    lambda s, x: (lambda h: h + s.attn(s.ln_1(h)))(x + s.mlp(s.ln_2(x)))))
# attention's output added twice (kept in a variable and added again at the end)
mistake(ex.check_block, r"twice|attn|residual|double")(blk(
    lambda s, x: (lambda a: (x + a) + s.mlp(s.ln_2(x + a)) + a)(s.attn(s.ln_1(x)))))
# the MLP fed the attention output instead of the residual stream
mistake(ex.check_block, r"mlp.*input|input|residual|wiring|attn|fed")(blk(  # widened: "MLP fed the attention output"
    lambda s, x: (lambda a: x + a + s.mlp(s.ln_2(a)))(s.attn(s.ln_1(x)))))
# hybrid: ln_2 applied to the stream itself after the first sum
mistake(ex.check_block, r"norm|post|ln_2|residual")(blk(
    lambda s, x: (lambda h: h + s.mlp(h))(s.ln_2(x + s.attn(s.ln_1(x))))))
# double slip: post-norm and parallel
mistake(ex.check_block, r"post|parallel|norm|order|wiring")(blk(
    lambda s, x: s.ln_1(x + s.attn(x) + s.mlp(x))))
# final extra LayerNorm on the output (as if each block ended with ln_f)
mistake(ex.check_block, r"norm|extra|final|output")(blk(
    lambda s, x: s.ln_2((lambda h: h + s.mlp(s.ln_2(h)))(x + s.attn(s.ln_1(x))))))


class BlockSharedLN(B0):
    # one LayerNorm object under two names: loading the weights, ln_2's overwrite ln_1's
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.ln_2 = self.ln_1

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


mistake(ex.check_block, r"ln_1|ln_2|share|same|tied|one layer.?norm")(BlockSharedLN)


class BlockValidSteps(B0):
    def forward(self, x, kv_cache=None):
        h = self.ln_1(x)
        attn_out = self.attn(h, kv_cache)
        resid = torch.add(x, attn_out)
        mlp_out = self.mlp.forward(self.ln_2(resid))
        return resid.add(mlp_out)


class BlockValidOwnLN(B0):
    # its own LayerNorm in float64 and an extra, harmless non-persistent buffer
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.register_buffer("calls", torch.zeros(()), persistent=False)

    def norm(self, ln, x):
        xd = x.double()
        xh = (xd - xd.mean(-1, keepdim=True)) / torch.sqrt(xd.var(-1, unbiased=False, keepdim=True) + ln.eps)
        return (xh * ln.weight.double() + ln.bias.double()).to(x.dtype)

    def forward(self, x, kv_cache=None):
        self.calls += 1
        x = x + self.attn(self.norm(self.ln_1, x))
        return x + self.mlp(self.norm(self.ln_2, x))


valid(ex.check_block)(BlockValidSteps)
valid(ex.check_block)(BlockValidOwnLN)
valid(ex.check_block)(Block)


# ------------------------------------------------------------------------------------------ check_embedding
class E0(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)


def emb(forward, name="Student"):
    return cls_with(E0, forward=forward, name=name)


def _pos(idx):
    return torch.arange(idx.size(1), device=idx.device)


# positions from 1: an off-by-one that looks like a shift (and fails at T == block_size)
mistake(ex.check_embedding, r"position|offset|start|shift|off.?by|1")(emb(
    lambda s, idx: s.wte(idx) + s.wpe(_pos(idx) + 1)))
mistake(ex.check_embedding, r"position|wpe|idx|token id")(emb(lambda s, idx: s.wte(idx) + s.wpe(idx)))
# positions counted over the batch: right for B == T only; for B == 1 every position gets wpe[0]
mistake(ex.check_embedding, r"position|size|batch|B\b|length|shape|wpe\[0\]")(emb(
    lambda s, idx: s.wte(idx) + s.wpe(torch.arange(idx.size(0)))))
mistake(ex.check_embedding, r"position|revers|order|flip")(emb(
    lambda s, idx: s.wte(idx) + s.wpe(_pos(idx).flip(0))))
# right-aligned positions (the last token at block_size - 1), as a left-padding habit
mistake(ex.check_embedding, r"position|offset|align|end|right")(emb(
    lambda s, idx: s.wte(idx) + s.wpe.weight[s.wpe.num_embeddings - idx.size(1):]))
mistake(ex.check_embedding, r"scal|sqrt")(emb(
    lambda s, idx: s.wte(idx) * math.sqrt(s.wte.embedding_dim) + s.wpe(_pos(idx))))
mistake(ex.check_embedding, r"position|wpe|missing|forgot")(emb(lambda s, idx: s.wte(idx)))
mistake(ex.check_embedding, r"token|wte|missing|forgot")(emb(
    lambda s, idx: s.wpe(_pos(idx)).expand(idx.size(0), -1, -1)))
mistake(ex.check_embedding, r"multipl|product|add|sum")(emb(lambda s, idx: s.wte(idx) * s.wpe(_pos(idx))))
# the two means instead of the sum: (wte + wpe) / 2
mistake(ex.check_embedding, r"scal|half|mean|average|sum|add|factor")(emb(
    lambda s, idx: (s.wte(idx) + s.wpe(_pos(idx))) / 2))


class EmbCached(E0):
    # positions computed at the first call and kept: a later, longer call breaks
    def forward(self, idx):
        if not hasattr(self, "pos"):
            self.pos = _pos(idx)
        p = self.pos if self.pos.numel() >= idx.size(1) else torch.zeros(idx.size(1), dtype=torch.long)
        return self.wte(idx) + self.wpe(p[: idx.size(1)])


mistake(ex.check_embedding, r"state|cache|second|call|position|length")(EmbCached)


class EmbWpeVocab(E0):
    # wpe sized vocab_size (copy-paste of the wte line)
    def __init__(self, config):
        super().__init__(config)
        self.wpe = nn.Embedding(config.vocab_size, config.n_embd)

    def forward(self, idx):
        return self.wte(idx) + self.wpe(_pos(idx))


mistake(ex.check_embedding, r"size|shape|block_size|vocab|wpe")(EmbWpeVocab)


class EmbValidBuffer(E0):
    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)

    def forward(self, idx):
        return F.embedding(idx.long(), self.wte.weight) + self.wpe(self.positions[: idx.size(1)]).unsqueeze(0)


class EmbValidCumsum(E0):
    # positions as a running count (ones.cumsum - 1), broadcast per row: the same as arange
    def forward(self, idx):
        pos = torch.ones_like(idx, dtype=torch.long).cumsum(1) - 1
        return self.wte.weight[idx] + self.wpe.weight[pos]


valid(ex.check_embedding)(EmbValidBuffer)
valid(ex.check_embedding)(EmbValidCumsum)


# ------------------------------------------------------------------------------------------ check_gpt
class G0(nn.Module):
    lm_bias = False

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
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=self.lm_bias)
        self.transformer.wte.weight = self.lm_head.weight

    # knobs, each a slip
    pos_from_idx = scale_emb = no_ln_f = shared_block = reversed_blocks = ln_f_first = False
    last_only = double_shift = zero_loss = sum_loss = no_ignore = False

    def forward(self, idx, targets=None):
        t = self.transformer
        pos = idx if self.pos_from_idx else torch.arange(idx.size(1), device=idx.device)
        tok = t.wte(idx) * (math.sqrt(self.config.n_embd) if self.scale_emb else 1.0)
        x = t.drop(tok + t.wpe(pos))
        if self.ln_f_first:
            x = t.ln_f(x)
        blocks = [t.h[0]] * len(t.h) if self.shared_block else list(t.h)
        for block in (reversed(blocks) if self.reversed_blocks else blocks):
            x = block(x)
        if not (self.no_ln_f or self.ln_f_first):
            x = t.ln_f(x)
        if targets is None:
            logits = self.lm_head(x[:, [-1]] if self.last_only else x)
            return logits, (logits.new_zeros(()) if self.zero_loss else None)
        logits = self.lm_head(x)
        lg, tg = logits, targets
        if self.double_shift:  # targets are already the next tokens; shifting again is off by one
            lg, tg = logits[:, :-1], targets[:, 1:]
        loss = F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-100 if self.no_ignore else -1,
                               reduction="sum" if self.sum_loss else "mean")
        return logits, loss


mistake(ex.check_gpt, r"ln_f|final|norm")(cls_with(G0, no_ln_f=True))
mistake(ex.check_gpt, r"ignore|-1|padding")(cls_with(G0, no_ignore=True))
mistake(ex.check_gpt, r"shift|offset|target|off.?by")(cls_with(G0, double_shift=True))
mistake(ex.check_gpt, r"None|loss|target")(cls_with(G0, zero_loss=True))
# widened: "reference weights do not fit your parameters", whose message names lm_head.bias as the one that fits none
mistake(ex.check_gpt, r"bias|lm_head|weights do not fit")(cls_with(G0, lm_bias=True))
mistake(ex.check_gpt, r"position|wpe|idx")(cls_with(G0, pos_from_idx=True))
# nanoGPT's inference shortcut: only the last position's logits without targets
mistake(ex.check_gpt, r"last|shape|position|all")(cls_with(G0, last_only=True))
mistake(ex.check_gpt, r"block|layer|same|share|h\[0\]|first")(cls_with(G0, shared_block=True))
mistake(ex.check_gpt, r"order|revers|block|layer")(cls_with(G0, reversed_blocks=True))
mistake(ex.check_gpt, r"sum|mean|reduction")(cls_with(G0, sum_loss=True))
mistake(ex.check_gpt, r"ln_f|norm|order|before|first")(cls_with(G0, ln_f_first=True))
mistake(ex.check_gpt, r"scal|sqrt|embed")(cls_with(G0, scale_emb=True))
# double slip: no ln_f, and the loss summed
mistake(ex.check_gpt, r"ln_f|final|norm|sum|mean|reduction")(cls_with(G0, no_ln_f=True, sum_loss=True))


class GPTUntiedCopy(G0):
    # a separate lm_head initialised as a copy of wte. Written as a mistake; moved to valid after tuning: an untied
    # head is a configuration the reference supports (config.tie_weights = False), and on the same weights the logits
    # and loss are the reference's, which is the exercise's contract (check_gpt compares gradients only when tied)
    def __init__(self, config):
        super().__init__(config)
        self.transformer.wte = nn.Embedding(config.vocab_size, config.n_embd)
        with torch.no_grad():
            self.transformer.wte.weight.copy_(self.lm_head.weight)


valid(ex.check_gpt)(GPTUntiedCopy)


class GPTValidCE(G0):
    def forward(self, idx, targets=None):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe.weight[: idx.size(1)])
        for block in t.h:
            x = block(x)
        logits = F.linear(t.ln_f(x), t.wte.weight)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)


class GPTValidGather(G0):
    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("pos", torch.arange(config.block_size), persistent=False)

    def forward(self, idx, targets=None):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe(self.pos[: idx.size(1)]))
        for i in range(len(t.h)):
            x = t.h[i](x)
        logits = self.lm_head(t.ln_f(x))
        loss = None
        if targets is not None:
            lp = logits.double().log_softmax(-1)
            keep = targets != -1
            nll = -lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
            loss = ((nll * keep).sum() / keep.sum()).float()
        return logits, loss


valid(ex.check_gpt)(GPTValidCE)
valid(ex.check_gpt)(GPTValidGather)
