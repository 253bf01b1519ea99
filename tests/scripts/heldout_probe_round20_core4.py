"""Round 20, core part, fourth file: Block, embedding and GPT rows (see heldout_probe_round20_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, CausalSelfAttention


# ------------------------------------------------------------------------------------------ Block
class Blk(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def blk_row(expect, name, forward):
    cls = type(name, (Blk,), {"forward": forward})
    if expect is None:
        valid(ex.check_block)(cls)
    else:
        mistake(ex.check_block, expect)(cls)
    return cls


def _post_ln(self, x, kv_cache=None):  # BERT / the original Transformer: LayerNorm after each add
    x = self.ln_1(x + self.attn(x))
    return self.ln_2(x + self.mlp(x))


def _parallel(self, x, kv_cache=None):  # GPT-NeoX use_parallel_residual: both branches read the same x
    return x + self.attn(self.ln_1(x)) + self.mlp(self.ln_2(x))


def _parallel_shared_ln(self, x, kv_cache=None):  # GPT-J: parallel branches off one LayerNorm
    h = self.ln_1(x)
    return x + self.attn(h) + self.mlp(h)


def _no_mlp_residual(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x))
    return self.mlp(self.ln_2(x))


def _normed_stream(self, x, kv_cache=None):  # the stream itself overwritten by its normalised copy
    x = self.ln_1(x)
    x = x + self.attn(x)
    x = self.ln_2(x)
    return x + self.mlp(x)


def _sandwich(self, x, kv_cache=None):  # Gemma 2's post-attention norm, made from ln_2 reused
    x = x + self.ln_2(self.attn(self.ln_1(x)))
    return x + self.mlp(self.ln_2(x))


def _functional_dropout(self, x, kv_cache=None):  # F.dropout on the branches: training=True by default
    x = x + F.dropout(self.attn(self.ln_1(x)), 0.1)
    return x + F.dropout(self.mlp(self.ln_2(x)), 0.1)


def _mlp_first(self, x, kv_cache=None):
    x = x + self.mlp(self.ln_2(x))
    return x + self.attn(self.ln_1(x))


def _ln1_twice(self, x, kv_cache=None):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_1(x))


def _attn_no_ln(self, x, kv_cache=None):
    x = x + self.attn(x)
    return x + self.mlp(self.ln_2(x))


def _branch_outputs_only(self, x, kv_cache=None):  # TL's attn_out + mlp_out returned without the stream
    a = self.attn(self.ln_1(x))
    m = self.mlp(self.ln_2(x + a))
    return a + m


def _hf_tuple_index(self, x, kv_cache=None):  # HF: attn returns (out, weights), so [0]; mingpt's returns a tensor
    x = x + self.attn(self.ln_1(x))[0]
    return x + self.mlp(self.ln_2(x))


def _mlp_reads_attn_out(self, x, kv_cache=None):  # the MLP fed the attention output instead of the stream
    a = self.attn(self.ln_1(x))
    x = x + a
    return x + self.mlp(self.ln_2(a))


def _deepnet_alpha(self, x, kv_cache=None):  # DeepNet's x * alpha + f(x) residual scaling, alpha = (2N)^0.25
    alpha = (2 * 2) ** 0.25
    x = x * alpha + self.attn(self.ln_1(x))
    return x * alpha + self.mlp(self.ln_2(x))


blk_row(r"post|after", "BlkPostLN", _post_ln)
blk_row(r"parallel", "BlkParallel", _parallel)
blk_row(r"parallel|shared|one LayerNorm|ln_1|same", "BlkParallelSharedLN", _parallel_shared_ln)
blk_row(r"residual", "BlkNoMlpResidual", _no_mlp_residual)
blk_row(r"residual|normali[sz]ed|overwrit|stream|ln_1", "BlkNormedStream", _normed_stream)
blk_row(r"post|sandwich|ln_2|norm", "BlkSandwichLn2", _sandwich)
blk_row(r"dropout|eval|random|training|determin", "BlkFunctionalDropout", _functional_dropout)
blk_row(r"swap|order|mlp first|before", "BlkMlpFirst", _mlp_first)
blk_row(r"ln_1|ln_2|same|shared|twice", "BlkLn1Twice", _ln1_twice)
blk_row(r"ln_1|LayerNorm|norm", "BlkAttnNoLN", _attn_no_ln)
blk_row(r"residual|stream", "BlkBranchesOnly", _branch_outputs_only)
blk_row(r"tuple|\[0\]|index|batch|first", "BlkHFTupleIndex", _hf_tuple_index)
blk_row(r"mlp.*(input|attention)|attention output|residual|stream", "BlkMlpReadsAttnOut", _mlp_reads_attn_out)
blk_row(r"scal|alpha|residual", "BlkDeepNetAlpha", _deepnet_alpha)


def _valid_tl_names(self, x, kv_cache=None):  # TransformerLens' resid_pre / resid_mid / resid_post
    resid_pre = x
    attn_out = self.attn(self.ln_1(resid_pre))
    resid_mid = resid_pre + attn_out
    mlp_out = self.mlp(self.ln_2(resid_mid))
    return resid_mid + mlp_out


def _valid_inplace_clone(self, x, kv_cache=None):  # in-place adds on a clone: the caller's x untouched
    h = x.clone()
    h += self.attn(self.ln_1(h))
    h += self.mlp(self.ln_2(h))
    return h


blk_row(None, "BlkValidTLNames", _valid_tl_names)
blk_row(None, "BlkValidInplaceClone", _valid_inplace_clone)


class BlkValidSdpaAttn(Blk):  # a Block built with its own SDPA attention (named attn, GPT-2 sublayer names)
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.attn = SdpaAttention(config)


class SdpaAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, -1)).transpose(1, 2) for t in self.c_attn(x).split(C, -1))
        return self.c_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2))


valid(ex.check_block)(BlkValidSdpaAttn)


# ------------------------------------------------------------------------------------------ embedding
class Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.n_embd = config.n_embd

    def positions(self, idx):
        return torch.arange(idx.size(1), device=idx.device)

    def forward(self, idx):
        return self.wte(idx) + self.wpe(self.positions(idx))


def emb_row(expect, name, **methods):
    cls = type(name, (Emb,), methods)
    if expect is None:
        valid(ex.check_embedding)(cls)
    else:
        mistake(ex.check_embedding, expect)(cls)
    return cls


def _sinusoid(T, C):
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, C, 2, dtype=torch.float32) * (-math.log(10000.0) / C))
    pe = torch.zeros(T, C)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


def _roberta_positions(self, idx):  # RoBERTa's create_position_ids_from_input_ids, padding_idx = 1
    mask = idx.ne(1).int()
    return (torch.cumsum(mask, dim=1) * mask + 1).long()


emb_row(r"offset|from 2|start|position|shift", "EmbOPTOffset2",  # OPT's learned positions carry offset 2
        positions=lambda self, idx: torch.arange(idx.size(1)) + 2)
emb_row(r"from 1|offset|start|position|shift", "EmbFrom1", positions=lambda self, idx: torch.arange(1, idx.size(1) + 1))
emb_row(r"position|padding|token id|cumsum|offset", "EmbRobertaPositions", positions=_roberta_positions)
emb_row(r"wpe|sinus|position table|learned|fixed", "EmbSinusoidal",
        forward=lambda self, idx: self.wte(idx) + _sinusoid(idx.size(1), self.n_embd))
emb_row(r"sqrt|scal|multipl|normali[sz]er", "EmbScaledBySqrtC",  # the Transformer / Gemma: wte(idx) * sqrt(C)
        forward=lambda self, idx: self.wte(idx) * math.sqrt(self.n_embd) + self.wpe(self.positions(idx)))
emb_row(r"batch", "EmbPositionsAlongBatch", positions=lambda self, idx: torch.arange(idx.size(0)).unsqueeze(1))
emb_row(r"position|wpe|missing|without", "EmbNoPositions", forward=lambda self, idx: self.wte(idx))
emb_row(r"concat|sum|add|shape", "EmbConcat",
        forward=lambda self, idx: torch.cat([self.wte(idx), self.wpe(self.positions(idx)).expand(idx.size(0), -1, -1)],
                                            -1))
emb_row(r"revers|end|backward|order", "EmbReversed", positions=lambda self, idx: torch.arange(idx.size(1) - 1, -1, -1))
emb_row(r"end|offset|right|align|block_size|last", "EmbRightAligned",  # left-padding habit: positions end at block_size
        positions=lambda self, idx: torch.arange(self.wpe.num_embeddings - idx.size(1), self.wpe.num_embeddings))
emb_row(r"dropout|eval|random|training|determin", "EmbFunctionalDropout",
        forward=lambda self, idx: F.dropout(self.wte(idx) + self.wpe(self.positions(idx)), 0.1))
emb_row(r"layer.?norm|normali[sz]", "EmbBertLayerNorm",  # BERT's embeddings end with a LayerNorm
        forward=lambda self, idx: F.layer_norm(self.wte(idx) + self.wpe(self.positions(idx)), (self.n_embd,)))
emb_row(r"multipl|product|sum|add", "EmbMultiplied",
        forward=lambda self, idx: self.wte(idx) * self.wpe(self.positions(idx)))
emb_row(r"position|token id|idx|wpe", "EmbPositionsAreIds", positions=lambda self, idx: idx)

emb_row(None, "EmbValidCumsumMask",  # HF: position_ids = attention_mask.cumsum(-1) - 1 (mask all ones)
        positions=lambda self, idx: torch.ones_like(idx).cumsum(-1) - 1)
emb_row(None, "EmbValidOneHot",  # one-hot @ table, TL style
        forward=lambda self, idx: F.one_hot(idx, self.wte.num_embeddings).to(self.wte.weight.dtype) @ self.wte.weight
        + self.wpe.weight[: idx.size(1)])
emb_row(None, "EmbValidExpandPositionIds",  # HF's position_ids of shape (1, T) expanded to (B, T)
        positions=lambda self, idx: torch.arange(idx.size(-1), dtype=torch.long).unsqueeze(0).expand_as(idx))


# ------------------------------------------------------------------------------------------ GPT
from mingpt.model import Block  # noqa: E402


class G(nn.Module):
    """The notebook's MyGPT (layers given), a correct nanoGPT-style forward; each row overrides one step."""

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

    def embed(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))

    def trunk(self, x):
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def head(self, x):
        return self.lm_head(x)

    def loss(self, logits, targets):
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    def forward(self, idx, targets=None):
        logits = self.head(self.trunk(self.embed(idx)))
        return logits, (None if targets is None else self.loss(logits, targets))


def gpt_row(expect, name, **methods):
    cls = type(name, (G,), methods)
    if expect is None:
        valid(ex.check_gpt)(cls)
    else:
        mistake(ex.check_gpt, expect)(cls)
    return cls


gpt_row(r"ignore|-1|-100", "GPTDefaultIgnoreIndex",  # F.cross_entropy's default ignore_index=-100
        loss=lambda self, logits, targets: F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)))


def _hf_shift_loss(self, logits, targets):  # GPT2LMHeadModel shifts labels itself; mingpt's targets are shifted
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1), ignore_index=-1)


gpt_row(r"shift|twice|already", "GPTHFShiftAgain", loss=_hf_shift_loss)


def _no_ln_f(self, x):  # the final LayerNorm forgotten
    for block in self.transformer.h:
        x = block(x)
    return x


gpt_row(r"ln_f|final", "GPTNoLnF", trunk=_no_ln_f)
gpt_row(r"sqrt|scal|embed", "GPTGemmaEmbedScale",  # Gemma's normalizer: embeddings * sqrt(C)
        embed=lambda self, idx: self.transformer.drop(self.transformer.wte(idx) * math.sqrt(self.config.n_embd)
                                                      + self.transformer.wpe(torch.arange(idx.size(1)))))
gpt_row(r"probab|softmax|logits|normali", "GPTReturnsLogProbs",
        head=lambda self, x: self.lm_head(x).log_softmax(-1))
gpt_row(r"position|offset|from 1|start", "GPTPositionsFrom1",
        embed=lambda self, idx: self.transformer.drop(self.transformer.wte(idx)
                                                      + self.transformer.wpe(torch.arange(1, idx.size(1) + 1))))
gpt_row(r"smooth", "GPTLabelSmoothing",
        loss=lambda self, logits, targets: F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                                           ignore_index=-1, label_smoothing=0.1))
gpt_row(r"sum|mean|reduction", "GPTLossSum",
        loss=lambda self, logits, targets: F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                                           ignore_index=-1, reduction="sum"))


def _reversed_blocks(self, x):
    for block in reversed(self.transformer.h):
        x = block(x)
    return self.transformer.ln_f(x)


gpt_row(r"revers|order", "GPTBlocksReversed", trunk=_reversed_blocks)


def _nanogpt_last_only(self, idx, targets=None):  # nanoGPT: without targets only the last position's logits
    x = self.trunk(self.embed(idx))
    if targets is None:
        return self.head(x[:, [-1], :]), None
    logits = self.head(x)
    return logits, self.loss(logits, targets)


gpt_row(r"last|position|shape|\[-1\]|every", "GPTNanoLastOnly", forward=_nanogpt_last_only)
gpt_row(r"ignore|-1|clamp|mask", "GPTClampedTargets",
        loss=lambda self, logits, targets: F.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                                           targets.reshape(-1).clamp(min=0)))


def _hf_output_order(self, idx, targets=None):  # HF's (loss, logits) order
    logits = self.head(self.trunk(self.embed(idx)))
    return (None if targets is None else self.loss(logits, targets)), logits


gpt_row(r"order|tuple|swap|return", "GPTLossLogitsOrder", forward=_hf_output_order)


def _per_sequence_loss(self, logits, targets):
    nll = F.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")
    m = (targets != -1).float()
    return ((nll * m).sum(1) / m.sum(1).clamp(min=1)).mean()


gpt_row(r"per.?(sequence|row|example)|mean of means|average|weight", "GPTPerSequenceLoss", loss=_per_sequence_loss)


def _ln_f_per_block(self, x):  # the final LayerNorm applied after every Block
    for block in self.transformer.h:
        x = self.transformer.ln_f(block(x))
    return x


gpt_row(r"ln_f|final|every|each", "GPTLnFEveryBlock", trunk=_ln_f_per_block)


def _lnf_after_head(self, idx, targets=None):  # the final normalisation put after lm_head (on the logits)
    x = self.embed(idx)
    for block in self.transformer.h:
        x = block(x)
    logits = F.layer_norm(self.lm_head(x), (self.config.vocab_size,))
    return logits, (None if targets is None else self.loss(logits, targets))


gpt_row(r"ln_f|final|order|before|after", "GPTLnFAfterHead", forward=_lnf_after_head)


# valid rows
gpt_row(None, "GPTValidFLinearTied", head=lambda self, x: F.linear(x, self.transformer.wte.weight))
gpt_row(None, "GPTValidEinsumHead", head=lambda self, x: torch.einsum("btc,vc->btv", x, self.transformer.wte.weight))


def _valid_hf_labels(self, logits, targets):  # -1 remapped to HF's -100 and CrossEntropyLoss's default
    return nn.CrossEntropyLoss()(logits.view(-1, logits.size(-1)), targets.masked_fill(targets == -1, -100).view(-1))


gpt_row(None, "GPTValidHFLabels", loss=_valid_hf_labels)
