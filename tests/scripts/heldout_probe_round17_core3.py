"""The held-out probe, round 17, core part 3: check_block, check_embedding, check_gpt (see _core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import Block


# ---------------------------------------------------------------- check_block: forward(x, kv_cache=None)
def blk_post_ln(self, x, kv_cache=None):
    x = self.ln_1(x + self.attn(x, kv_cache))
    x = self.ln_2(x + self.mlp(x))
    return x


def blk_no_residual(self, x, kv_cache=None):
    x = self.attn(self.ln_1(x), kv_cache)
    x = self.mlp(self.ln_2(x))
    return x


def blk_residual_from_normed(self, x, kv_cache=None):
    h = self.ln_1(x)
    x = h + self.attn(h, kv_cache)
    h = self.ln_2(x)
    return h + self.mlp(h)


def blk_ln1_twice(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    x = x + self.mlp(self.ln_1(x))  # ln_2 never used
    return x


def blk_mlp_first(self, x, kv_cache=None):
    x = x + self.mlp(self.ln_2(x))
    x = x + self.attn(self.ln_1(x), kv_cache)
    return x


def blk_parallel(self, x, kv_cache=None):
    return x + self.attn(self.ln_1(x), kv_cache) + self.mlp(self.ln_2(x))


def blk_no_layernorm(self, x, kv_cache=None):
    x = x + self.attn(x, kv_cache)
    x = x + self.mlp(x)
    return x


def blk_second_residual_forgotten(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    return self.mlp(self.ln_2(x))


def blk_attn_without_ln(self, x, kv_cache=None):
    x = x + self.attn(x, kv_cache)
    x = x + self.mlp(self.ln_2(x))
    return x


def blk_residual_from_input(self, x, kv_cache=None):
    y = x + self.attn(self.ln_1(x), kv_cache)
    out = x + self.mlp(self.ln_2(y))  # adds the block's input again instead of y
    return out


def blk_ln_after_mlp(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    x = x + self.ln_2(self.mlp(x))
    return x


def blk_in_place(self, x, kv_cache=None):
    x += self.attn(self.ln_1(x), kv_cache)  # modifies the caller's tensor
    x += self.mlp(self.ln_2(x))
    return x


def blk_double_post_ln_swapped(self, x, kv_cache=None):
    x = self.ln_2(x + self.mlp(x))
    x = self.ln_1(x + self.attn(x, kv_cache))
    return x


def blk_double_no_attn_residual_ln1_twice(self, x, kv_cache=None):
    x = self.attn(self.ln_1(x), kv_cache)
    x = x + self.mlp(self.ln_1(x))
    return x


mistake(ex.check_block, r"post|pre|order|layer.?norm|ln")(cls_with(Block, forward=blk_post_ln))
mistake(ex.check_block, r"residual|skip|\+ ?x")(cls_with(Block, forward=blk_no_residual))
# widened with "overwritten by its norm": the checker's "the stream overwritten by its norm" names the cause
mistake(ex.check_block, r"residual|normali|ln|layer.?norm|overwritten by its norm")(
    cls_with(Block, forward=blk_residual_from_normed))
mistake(ex.check_block, r"ln_1|ln_2|layer.?norm|twice|same|ln")(cls_with(Block, forward=blk_ln1_twice))
mistake(ex.check_block, r"order|mlp.*first|swap|before")(cls_with(Block, forward=blk_mlp_first))
mistake(ex.check_block, r"parallel|sequential|order|residual|updated|same input")(cls_with(Block, forward=blk_parallel))
mistake(ex.check_block, r"layer.?norm|ln|normali")(cls_with(Block, forward=blk_no_layernorm))
mistake(ex.check_block, r"residual|skip|second|mlp")(cls_with(Block, forward=blk_second_residual_forgotten))
mistake(ex.check_block, r"ln_1|layer.?norm|ln|attn|attention")(cls_with(Block, forward=blk_attn_without_ln))
mistake(ex.check_block, r"residual|skip|input|updated|mlp")(cls_with(Block, forward=blk_residual_from_input))
mistake(ex.check_block, r"ln_2|layer.?norm|ln|after|order|post")(cls_with(Block, forward=blk_ln_after_mlp))
mistake(ex.check_block, r"in.?place|modif|input|\+=|mutat")(cls_with(Block, forward=blk_in_place))
mistake(ex.check_block, r"post|pre|order|layer.?norm|ln|swap|mlp")(cls_with(Block, forward=blk_double_post_ln_swapped))
mistake(ex.check_block, r"residual|skip|ln_1|ln_2|layer.?norm|ln")(
    cls_with(Block, forward=blk_double_no_attn_residual_ln1_twice))


def blk_valid_named_steps(self, x, kv_cache=None):
    attn_out = self.attn(self.ln_1(x), kv_cache)
    resid_mid = torch.add(x, attn_out)
    mlp_out = self.mlp(self.ln_2(resid_mid))
    return resid_mid + mlp_out


def blk_valid_loop(self, x, kv_cache=None):
    for norm, layer in ((self.ln_1, self.attn), (self.ln_2, self.mlp)):
        h = norm(x)
        x = x + (layer(h, kv_cache) if layer is self.attn else layer(h))
    return x


valid(ex.check_block)(cls_with(Block, forward=blk_valid_named_steps))
valid(ex.check_block)(cls_with(Block, forward=blk_valid_loop))


# ---------------------------------------------------------------- check_embedding: cls(config), forward(idx)
class Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.block_size = config.block_size

    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.wte(idx) + self.wpe(pos)


def emb_pos_block_size(self, idx):
    pos = torch.arange(self.block_size)  # every position, not the first T
    return self.wte(idx) + self.wpe(pos)


def emb_wpe_of_idx(self, idx):
    return self.wte(idx) + self.wpe(idx)


def emb_no_position(self, idx):
    return self.wte(idx)


def emb_pos_from_one(self, idx):
    T = idx.shape[1]
    pos = torch.arange(1, T + 1)
    return self.wte(idx) + self.wpe(pos)


def emb_concat(self, idx):
    tok = self.wte(idx)
    pos = self.wpe(torch.arange(idx.size(1))).unsqueeze(0).expand_as(tok)
    return torch.cat([tok, pos], dim=-1)


def emb_pos_from_batch(self, idx):
    pos = torch.arange(idx.size(0))  # the batch size, not T
    return self.wte(idx) + self.wpe(pos).unsqueeze(1)


def emb_tables_swapped(self, idx):
    pos = torch.arange(idx.size(1))
    return self.wpe(idx) + self.wte(pos)


def emb_multiply(self, idx):
    pos = torch.arange(idx.size(1))
    return self.wte(idx) * self.wpe(pos)


def emb_scaled_sqrt_c(self, idx):
    pos = torch.arange(idx.size(1))
    return self.wte(idx) * math.sqrt(self.wte.embedding_dim) + self.wpe(pos)  # "Attention is all you need"


def emb_dropout_always(self, idx):
    pos = torch.arange(idx.size(1))
    return F.dropout(self.wte(idx) + self.wpe(pos), p=0.1)


def emb_pos_reversed(self, idx):
    T = idx.size(1)
    pos = torch.arange(T - 1, -1, -1)  # counts down: last token gets position 0
    return self.wte(idx) + self.wpe(pos)


def emb_double_no_pos_scaled(self, idx):
    return self.wte(idx) * self.wte.embedding_dim ** 0.5


def emb_double_from_one_scaled(self, idx):
    pos = torch.arange(1, idx.size(1) + 1)
    return self.wte(idx) * math.sqrt(self.wte.weight.size(1)) + self.wpe(pos)


class EmbWpeVocab(Emb):
    def __init__(self, config):
        super().__init__(config)
        self.wpe = nn.Embedding(config.vocab_size, config.n_embd)  # sized by the vocabulary


mistake(ex.check_embedding, r"block_size|length|position|first T|T\b|shape|crop")(
    cls_with(Emb, forward=emb_pos_block_size))
mistake(ex.check_embedding, r"position|wpe|idx|index|token id")(cls_with(Emb, forward=emb_wpe_of_idx))
mistake(ex.check_embedding, r"position|wpe|missing")(cls_with(Emb, forward=emb_no_position))
mistake(ex.check_embedding, r"position|start|0|one|off.?by|shift")(cls_with(Emb, forward=emb_pos_from_one))
mistake(ex.check_embedding, r"concat|cat|sum|add|shape|size")(cls_with(Emb, forward=emb_concat))
mistake(ex.check_embedding, r"batch|position|T\b|dim|shape")(cls_with(Emb, forward=emb_pos_from_batch))
mistake(ex.check_embedding, r"swap|wte|wpe|table")(cls_with(Emb, forward=emb_tables_swapped))
mistake(ex.check_embedding, r"multipl|product|sum|add|\*")(cls_with(Emb, forward=emb_multiply))
mistake(ex.check_embedding, r"scal|sqrt")(cls_with(Emb, forward=emb_scaled_sqrt_c))
mistake(ex.check_embedding, r"dropout|eval|train|random")(cls_with(Emb, forward=emb_dropout_always))
mistake(ex.check_embedding, r"position|revers|order|flip")(cls_with(Emb, forward=emb_pos_reversed))
mistake(ex.check_embedding, r"position|wpe|scal|sqrt")(cls_with(Emb, forward=emb_double_no_pos_scaled))
mistake(ex.check_embedding, r"position|start|off.?by|shift|scal|sqrt")(
    cls_with(Emb, forward=emb_double_from_one_scaled))
mistake(ex.check_embedding, r"wpe|block_size|vocab|shape|size|position")(EmbWpeVocab)


def emb_valid_weight_slices(self, idx):
    return self.wte.weight[idx] + self.wpe.weight[: idx.shape[1]]


def emb_valid_one_hot(self, idx):
    onehot = F.one_hot(idx, self.wte.num_embeddings).to(self.wte.weight.dtype)
    pos = torch.arange(idx.size(1), device=idx.device).unsqueeze(0).expand_as(idx)
    return onehot @ self.wte.weight + self.wpe(pos)


valid(ex.check_embedding)(cls_with(Emb, forward=emb_valid_weight_slices))
valid(ex.check_embedding)(cls_with(Emb, forward=emb_valid_one_hot))


# ---------------------------------------------------------------- check_gpt: cls(config), forward(idx, targets)
class MyGPT(nn.Module):
    """The notebook's given __init__; each row writes forward."""

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

    def body(self, idx, pos=True, ln_f=True, blocks=None):
        tr = self.transformer
        x = tr.wte(idx)
        if pos:
            x = x + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        x = tr.drop(x)
        for block in (tr.h if blocks is None else blocks):
            x = block(x)
        return tr.ln_f(x) if ln_f else x


def _ce(logits, targets, **kw):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), **kw)


def gpt_shifts_targets(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    loss = None
    if targets is not None:  # targets are already the next tokens: shifting again skips one
        loss = _ce(logits[:, :-1], targets[:, 1:], ignore_index=-1)
    return logits, loss


def gpt_no_ln_f(self, idx, targets=None):
    logits = self.lm_head(self.body(idx, ln_f=False))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_no_position(self, idx, targets=None):
    logits = self.lm_head(self.body(idx, pos=False))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_no_ignore_index(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    loss = None
    if targets is not None:
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
    return logits, loss


def gpt_returns_logits_only_without_targets(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    if targets is None:
        return logits
    return logits, _ce(logits, targets, ignore_index=-1)


def gpt_softmax_logits(self, idx, targets=None):
    logits = F.softmax(self.lm_head(self.body(idx)), dim=-1)
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_first_block_only(self, idx, targets=None):
    logits = self.lm_head(self.body(idx, blocks=self.transformer.h[:1]))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_ln_f_in_loop(self, idx, targets=None):
    tr = self.transformer
    x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(idx.size(1))))
    for block in tr.h:
        x = tr.ln_f(block(x))
    logits = self.lm_head(x)
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_pos_block_size(self, idx, targets=None):
    tr = self.transformer
    x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(self.config.block_size)))
    for block in tr.h:
        x = block(x)
    logits = self.lm_head(tr.ln_f(x))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_flattened_logits(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    B, T, V = logits.shape
    logits = logits.view(B * T, V)
    loss = None
    if targets is not None:
        loss = F.cross_entropy(logits, targets.view(B * T), ignore_index=-1)
    return logits, loss


def gpt_extra_block_residual(self, idx, targets=None):
    tr = self.transformer
    x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(idx.size(1))))
    for block in tr.h:
        x = x + block(x)  # the Block already adds its own residual
    logits = self.lm_head(tr.ln_f(x))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_last_position_only(self, idx, targets=None):
    x = self.body(idx)
    logits = self.lm_head(x[:, [-1], :])  # the generation shortcut used for training too
    loss = None
    if targets is not None:
        loss = _ce(logits, targets[:, -1:], ignore_index=-1)
    return logits, loss


def gpt_double_no_ln_f_no_pos(self, idx, targets=None):
    logits = self.lm_head(self.body(idx, pos=False, ln_f=False))
    return logits, (None if targets is None else _ce(logits, targets, ignore_index=-1))


def gpt_double_shift_no_ignore(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    loss = None
    if targets is not None:
        loss = _ce(logits[:, :-1], targets[:, 1:])
    return logits, loss


mistake(ex.check_gpt, r"shift|offset|target|align")(cls_with(MyGPT, forward=gpt_shifts_targets))
mistake(ex.check_gpt, r"ln_f|final|layer.?norm")(cls_with(MyGPT, forward=gpt_no_ln_f))
mistake(ex.check_gpt, r"position|wpe")(cls_with(MyGPT, forward=gpt_no_position))
mistake(ex.check_gpt, r"ignore|-1|mask")(cls_with(MyGPT, forward=gpt_no_ignore_index))
mistake(ex.check_gpt, r"tuple|none|loss|return|type")(cls_with(MyGPT, forward=gpt_returns_logits_only_without_targets))
mistake(ex.check_gpt, r"softmax|probab|logit|normali")(cls_with(MyGPT, forward=gpt_softmax_logits))
mistake(ex.check_gpt, r"block|layer|loop|n_layer|first")(cls_with(MyGPT, forward=gpt_first_block_only))
mistake(ex.check_gpt, r"ln_f|final|layer.?norm|loop|each block|every")(cls_with(MyGPT, forward=gpt_ln_f_in_loop))
mistake(ex.check_gpt, r"block_size|position|length|T\b|crop|shape")(cls_with(MyGPT, forward=gpt_pos_block_size))
mistake(ex.check_gpt, r"shape|flat|view|reshape|\(B, T, V\)")(cls_with(MyGPT, forward=gpt_flattened_logits))
mistake(ex.check_gpt, r"residual|block|twice|skip|double")(cls_with(MyGPT, forward=gpt_extra_block_residual))
mistake(ex.check_gpt, r"last|position|every|shape|all")(cls_with(MyGPT, forward=gpt_last_position_only))
mistake(ex.check_gpt, r"ln_f|final|layer.?norm|position|wpe")(cls_with(MyGPT, forward=gpt_double_no_ln_f_no_pos))
mistake(ex.check_gpt, r"shift|offset|target|align|ignore|-1")(cls_with(MyGPT, forward=gpt_double_shift_no_ignore))


def gpt_valid_manual_loss(self, idx, targets=None):
    logits = self.lm_head(self.body(idx))
    if targets is None:
        return logits, None
    logp = F.log_softmax(logits, dim=-1)
    keep = targets != -1
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logits, -(picked * keep).sum() / keep.sum()


def gpt_valid_weight_slices(self, idx, targets=None):
    tr = self.transformer
    T = idx.shape[1]
    x = tr.drop(tr.wte.weight[idx] + tr.wpe.weight[:T])
    for i in range(len(tr.h)):
        x = tr.h[i](x)
    logits = tr.ln_f(x) @ self.lm_head.weight.T
    loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1) if targets is not None else None
    return logits, loss


valid(ex.check_gpt)(cls_with(MyGPT, forward=gpt_valid_manual_loss))
valid(ex.check_gpt)(cls_with(MyGPT, forward=gpt_valid_weight_slices))
