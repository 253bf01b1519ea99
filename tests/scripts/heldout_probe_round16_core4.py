"""The held-out probe, round 16, core part 4: Block, embedding (see heldout_probe_round16_core.py)."""

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


import heldout_probe_round16_core5  # noqa: E402,F401
