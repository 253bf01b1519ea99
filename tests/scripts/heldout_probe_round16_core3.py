"""The held-out probe, round 16, core part 3: Block, embedding, GPT (see heldout_probe_round16_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import MLP as _RefMLP
from mingpt.model import Block, CausalSelfAttention


# ============================================================================================ check_block
def _blk_post_norm(self, x, kv_cache=None, attn_mask=None):  # the 2017 paper's post-norm
    x = self.ln_1(x + self.attn(x, kv_cache))
    return self.ln_2(x + self.mlp(x))


def _blk_no_attn_residual(self, x, kv_cache=None, attn_mask=None):
    x = self.attn(self.ln_1(x), kv_cache)
    return x + self.mlp(self.ln_2(x))


def _blk_no_mlp_residual(self, x, kv_cache=None, attn_mask=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    return self.mlp(self.ln_2(x))


def _blk_parallel(self, x, kv_cache=None, attn_mask=None):  # both branches read the block's input
    return x + self.attn(self.ln_1(x), kv_cache) + self.mlp(self.ln_2(x))


def _blk_ln_swapped(self, x, kv_cache=None, attn_mask=None):
    x = x + self.attn(self.ln_2(x), kv_cache)
    return x + self.mlp(self.ln_1(x))


def _blk_residual_from_normed(self, x, kv_cache=None, attn_mask=None):  # the residual carries ln_1(x), not x
    h = self.ln_1(x)
    x = h + self.attn(h, kv_cache)
    h = self.ln_2(x)
    return h + self.mlp(h)


def _blk_mlp_first(self, x, kv_cache=None, attn_mask=None):
    x = x + self.mlp(self.ln_2(x))
    return x + self.attn(self.ln_1(x), kv_cache)


def _blk_extra_final_norm(self, x, kv_cache=None, attn_mask=None):  # a ln_f inside every block
    x = x + self.attn(self.ln_1(x), kv_cache)
    x = x + self.mlp(self.ln_2(x))
    return self.ln_2(x)


def _blk_in_place_on_input(self, x, kv_cache=None, attn_mask=None):  # x += ... writes into the caller's tensor
    x += self.attn(self.ln_1(x), kv_cache)
    x += self.mlp(self.ln_2(x))
    return x


def _blk_ln_1_twice(self, x, kv_cache=None, attn_mask=None):
    x = x + self.attn(self.ln_1(x), kv_cache)
    return x + self.mlp(self.ln_1(x))


def _blk_dropout_hard_coded(self, x, kv_cache=None, attn_mask=None):
    x = x + F.dropout(self.attn(self.ln_1(x), kv_cache), 0.1)
    return x + F.dropout(self.mlp(self.ln_2(x)), 0.1)


def _blk_scaled_residual(self, x, kv_cache=None, attn_mask=None):  # branches scaled by 1/sqrt(2)
    x = x + self.attn(self.ln_1(x), kv_cache) / math.sqrt(2)
    return x + self.mlp(self.ln_2(x)) / math.sqrt(2)


def _blk_attn_no_grad(self, x, kv_cache=None, attn_mask=None):
    with torch.no_grad():
        a = self.attn(self.ln_1(x), kv_cache)
    x = x + a
    return x + self.mlp(self.ln_2(x))


def _blk_hf_tuple(self, x, kv_cache=None, attn_mask=None):  # HF's block returns a tuple of outputs
    x = x + self.attn(self.ln_1(x), kv_cache)
    return (x + self.mlp(self.ln_2(x)),)


for _name, _fwd, _expect in [
    ("BlockPostNorm", _blk_post_norm, r"post|pre.?norm|placement|order|after"),
    ("BlockNoAttnResidual", _blk_no_attn_residual, r"residual|skip"),
    ("BlockNoMlpResidual", _blk_no_mlp_residual, r"residual|skip"),
    ("BlockParallel", _blk_parallel, r"parallel|sequential|same input|order"),
    ("BlockLnSwapped", _blk_ln_swapped, r"swap|ln_1|ln_2"),
    ("BlockResidualFromNormed", _blk_residual_from_normed, r"residual|normali[sz]ed|norm"),
    ("BlockMlpFirst", _blk_mlp_first, r"order|first|swap|before"),
    ("BlockExtraFinalNorm", _blk_extra_final_norm, r"norm|extra|final|output"),
    ("BlockInPlaceOnInput", _blk_in_place_on_input, r"in.?place|input|modif"),
    ("BlockLn1Twice", _blk_ln_1_twice, r"ln_2|ln_1|same|shar|reuse"),
    ("BlockDropoutHardCoded", _blk_dropout_hard_coded, r"dropout|eval|train|random|determin"),
    ("BlockScaledResidual", _blk_scaled_residual, r"scal|residual|sqrt"),
    ("BlockAttnNoGrad", _blk_attn_no_grad, r"grad|detach|no_grad"),
    ("BlockHFTuple", _blk_hf_tuple, r"tuple|type|return"),
]:
    mistake(ex.check_block, _expect)(cls_with(Block, forward=_fwd, name=_name))


@mistake(ex.check_block, r"register|parameter|module|list")
class BlockPlainList(nn.Module):  # the sublayers in a Python list: unregistered, absent from the state dict
    def __init__(self, config, layer_idx=0):
        super().__init__()
        C = config.n_embd
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.sublayers = [CausalSelfAttention(config, layer_idx), _RefMLP(config)]

    def forward(self, x, kv_cache=None):
        attn, mlp = self.sublayers
        x = x + attn(self.ln_1(x), kv_cache)
        return x + mlp(self.ln_2(x))


@valid(ex.check_block)
class BlockNamedIntermediates(Block):  # out-of-place, every intermediate named
    def forward(self, x, kv_cache=None, attn_mask=None):
        attn_out = self.attn(self.ln_1(x), kv_cache)
        mid = torch.add(x, attn_out)
        mlp_out = self.mlp(self.ln_2(mid))
        return mid.add(mlp_out)


@valid(ex.check_block)
class BlockInPlaceOnClone(Block):  # += on its own copy, never on the caller's tensor
    def forward(self, x, kv_cache=None, attn_mask=None):
        h = x.clone()
        h += self.attn(self.ln_1(h), kv_cache)
        h += self.mlp(self.ln_2(h))
        return h


# ============================================================================================ check_embedding
class _Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

    def forward(self, idx):
        return self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))


def _emb_one_based(self, idx):  # positions counted from 1, as in the paper's notation
    T = idx.size(1)
    return self.wte(idx) + self.wpe(torch.arange(1, T + 1, device=idx.device).clamp(max=self.wpe.num_embeddings - 1))


def _emb_batch_positions(self, idx):  # arange over dim 0: one position per sequence
    return self.wte(idx) + self.wpe(torch.arange(idx.size(0), device=idx.device)).unsqueeze(1)


def _emb_no_positions(self, idx):
    return self.wte(idx)


def _emb_wpe_of_tokens(self, idx):  # the position table looked up with the token ids
    return self.wte(idx) + self.wpe(idx)


def _emb_scaled(self, idx):  # the 2017 paper multiplies the token embedding by sqrt(d_model)
    T = idx.size(1)
    return self.wte(idx) * math.sqrt(self.wte.embedding_dim) + self.wpe(torch.arange(T, device=idx.device))


def _emb_sinusoidal(self, idx):  # the paper's fixed sinusoids in place of the learned wpe
    T, C = idx.size(1), self.wte.embedding_dim
    pos = torch.arange(T, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, C, 2, dtype=torch.float32) * (-math.log(10000.0) / C))
    pe = torch.zeros(T, C)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : C // 2]
    return self.wte(idx) + pe


def _emb_reversed_positions(self, idx):  # positions counted from the end
    T = idx.size(1)
    return self.wte(idx) + self.wpe(torch.arange(T - 1, -1, -1, device=idx.device))


def _emb_right_aligned(self, idx):  # left-padding habit: the last token at position block_size - 1
    T, n = idx.size(1), self.wpe.num_embeddings
    return self.wte(idx) + self.wpe(torch.arange(n - T, n, device=idx.device))


def _emb_dropout_hard_coded(self, idx):
    return F.dropout(self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device)), 0.1)


def _emb_dot_data(self, idx):  # .data: the position table gets no gradient
    return self.wte(idx) + self.wpe.weight.data[: idx.size(1)]


def _emb_positions_column(self, idx):  # arange(T)[:, None]: (T, 1, C) broadcasts against (B, T, C)
    pos = torch.arange(idx.size(1), device=idx.device)[:, None]
    return self.wte(idx) + self.wpe(pos)


def _emb_channels_first(self, idx):  # Keras/conv habit: (B, C, T)
    return (self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))).transpose(1, 2)


for _name, _fwd, _expect in [
    ("EmbOneBased", _emb_one_based, r"position|1-based|offset|off.by.one|start|shift"),
    ("EmbBatchPositions", _emb_batch_positions, r"position|batch|dim"),
    ("EmbNoPositions", _emb_no_positions, r"position|missing|forg|wpe"),
    ("EmbWpeOfTokens", _emb_wpe_of_tokens, r"position|token|wpe"),
    ("EmbScaled", _emb_scaled, r"scal|sqrt"),
    ("EmbSinusoidal", _emb_sinusoidal, r"sinus|learned|wpe|position"),
    ("EmbReversedPositions", _emb_reversed_positions, r"position|revers|order"),
    ("EmbRightAligned", _emb_right_aligned, r"position|offset|start|end|align"),
    ("EmbDropoutHardCoded", _emb_dropout_hard_coded, r"dropout|eval|train|random|determin"),
    ("EmbDotData", _emb_dot_data, r"grad|detach|data|train"),
    ("EmbPositionsColumn", _emb_positions_column, r"shape|broadcast|extra dimension"),  # widened: names it
    ("EmbChannelsFirst", _emb_channels_first, r"shape|transpos|channel|layout"),
]:
    mistake(ex.check_embedding, _expect)(cls_with(_Emb, forward=_fwd, name=_name))


@mistake(ex.check_embedding, r"wpe|size|block_size|shape|position|vocab")
class EmbWpeVocabSized(_Emb):  # the position table sized by the vocabulary
    def __init__(self, config):
        super().__init__(config)
        self.wpe = nn.Embedding(config.vocab_size, config.n_embd)


@mistake(ex.check_embedding, r"register|parameter|train|learn")
class EmbPlainTensorWpe(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = torch.randn(config.block_size, config.n_embd) * 0.02

    def forward(self, idx):
        return self.wte(idx) + self.wpe[: idx.size(1)]


@valid(ex.check_embedding)
class EmbWeightSlice(_Emb):  # wpe.weight[:T] is the same rows as wpe(arange(T))
    def forward(self, idx):
        return self.wte.weight[idx] + self.wpe.weight[: idx.size(1)]


@valid(ex.check_embedding)
class EmbExpandedPositions(_Emb):  # (B, T) position ids, expand (a view) rather than repeat
    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device).unsqueeze(0).expand(B, T)
        return F.embedding(idx, self.wte.weight) + F.embedding(pos, self.wpe.weight)


# ============================================================================================ check_gpt
class _GPT(nn.Module):
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

    def embed(self, idx, offset=0):
        pos = torch.arange(offset, offset + idx.size(1), device=idx.device)
        return self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))

    def trunk(self, x):
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None):
        logits = self.lm_head(self.trunk(self.embed(idx)))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def _ce(logits, targets, **kw):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), **{"ignore_index": -1, **kw})


def _gpt_shifts_targets(self, idx, targets=None):  # HF's "labels are shifted inside the model", on shifted targets
    logits = self.lm_head(self.trunk(self.embed(idx)))
    loss = None if targets is None else _ce(logits[:, :-1], targets[:, 1:])
    return logits, loss


def _gpt_ignore_minus_100(self, idx, targets=None):  # HF's -100 convention
    logits = self.lm_head(self.trunk(self.embed(idx)))
    loss = None if targets is None else _ce(logits, targets, ignore_index=-100)
    return logits, loss


def _gpt_no_ln_f(self, idx, targets=None):
    x = self.embed(idx)
    for block in self.transformer.h:
        x = block(x)
    logits = self.lm_head(x)
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_ln_f_every_block(self, idx, targets=None):
    x = self.embed(idx)
    for block in self.transformer.h:
        x = self.transformer.ln_f(block(x))
    logits = self.lm_head(x)
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_dropout_hard_coded(self, idx, targets=None):
    T = idx.size(1)
    x = F.dropout(self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T)), 0.1)
    logits = self.lm_head(self.trunk(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_one_based_positions(self, idx, targets=None):
    T = idx.size(1)
    pos = torch.arange(1, T + 1).clamp(max=self.config.block_size - 1)
    x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
    logits = self.lm_head(self.trunk(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_zero_loss_without_targets(self, idx, targets=None):  # a 0 "loss" instead of None
    logits = self.lm_head(self.trunk(self.embed(idx)))
    return logits, torch.zeros(()) if targets is None else _ce(logits, targets)


def _gpt_returns_probabilities(self, idx, targets=None):
    logits = self.lm_head(self.trunk(self.embed(idx)))
    return F.softmax(logits, dim=-1), None if targets is None else _ce(logits, targets)


def _gpt_last_position_only(self, idx, targets=None):  # generation habit, in the training forward
    x = self.trunk(self.embed(idx))
    logits = self.lm_head(x[:, -1:, :])
    return logits, None if targets is None else _ce(self.lm_head(x), targets)


def _gpt_skips_last_block(self, idx, targets=None):  # range(n_layer - 1)
    x = self.embed(idx)
    for i in range(len(self.transformer.h) - 1):
        x = self.transformer.h[i](x)
    logits = self.lm_head(self.transformer.ln_f(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_first_block_repeated(self, idx, targets=None):
    x = self.embed(idx)
    for _ in self.transformer.h:
        x = self.transformer.h[0](x)
    logits = self.lm_head(self.transformer.ln_f(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_summed_loss(self, idx, targets=None):
    logits = self.lm_head(self.trunk(self.embed(idx)))
    return logits, None if targets is None else _ce(logits, targets, reduction="sum")


def _gpt_scaled_embedding(self, idx, targets=None):  # the paper's sqrt(d_model)
    T = idx.size(1)
    tok = self.transformer.wte(idx) * math.sqrt(self.config.n_embd)
    x = self.transformer.drop(tok + self.transformer.wpe(torch.arange(T)))
    logits = self.lm_head(self.trunk(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_embed_no_grad(self, idx, targets=None):  # "lookups need no gradient"
    with torch.no_grad():
        x = self.embed(idx)
    logits = self.lm_head(self.trunk(x))
    return logits, None if targets is None else _ce(logits, targets)


def _gpt_nll_on_softmax(self, idx, targets=None):  # nll_loss given probabilities
    logits = self.lm_head(self.trunk(self.embed(idx)))
    if targets is None:
        return logits, None
    p = F.softmax(logits, dim=-1)
    return logits, F.nll_loss(p.view(-1, p.size(-1)), targets.reshape(-1), ignore_index=-1)


for _name, _fwd, _expect in [
    ("GPTShiftsTargets", _gpt_shifts_targets, r"shift|target"),
    ("GPTIgnoreMinus100", _gpt_ignore_minus_100, r"ignore|-1|-100"),
    ("GPTNoLnF", _gpt_no_ln_f, r"ln_f|final|norm"),
    ("GPTLnFEveryBlock", _gpt_ln_f_every_block, r"ln_f|norm|each|every|block"),
    ("GPTDropoutHardCoded", _gpt_dropout_hard_coded, r"dropout|eval|train|random|determin"),
    ("GPTOneBasedPositions", _gpt_one_based_positions, r"position|1-based|offset|off.by.one|start|shift"),
    ("GPTZeroLossWithoutTargets", _gpt_zero_loss_without_targets, r"none|without targets|no targets"),
    ("GPTReturnsProbabilities", _gpt_returns_probabilities, r"prob|softmax|logit"),
    ("GPTLastPositionOnly", _gpt_last_position_only, r"last|shape|position"),
    ("GPTSkipsLastBlock", _gpt_skips_last_block, r"block|layer|loop|skip"),
    ("GPTFirstBlockRepeated", _gpt_first_block_repeated, r"block|layer|same|reuse|repeat"),
    ("GPTSummedLoss", _gpt_summed_loss, r"sum|mean|average"),
    ("GPTScaledEmbedding", _gpt_scaled_embedding, r"scal|sqrt|embed"),
    ("GPTEmbedNoGrad", _gpt_embed_no_grad, r"grad|detach|no_grad"),
    ("GPTNllOnSoftmax", _gpt_nll_on_softmax, r"log|softmax|prob"),
]:
    mistake(ex.check_gpt, _expect)(cls_with(_GPT, forward=_fwd, name=_name))


@valid(ex.check_gpt)
class GPTTiedMatmulTransposedCE(_GPT):  # logits through the tied wte by hand; cross_entropy's (B, V, T) form
    def forward(self, idx, targets=None):
        logits = self.trunk(self.embed(idx)) @ self.transformer.wte.weight.T
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)


@valid(ex.check_gpt)
class GPTLogSoftmaxNll(_GPT):  # log_softmax + nll_loss is cross_entropy
    def forward(self, idx, targets=None):
        logits = F.linear(self.trunk(self.embed(idx)), self.lm_head.weight)
        loss = None
        if targets is not None:
            logp = F.log_softmax(logits, dim=-1)
            loss = F.nll_loss(logp.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
