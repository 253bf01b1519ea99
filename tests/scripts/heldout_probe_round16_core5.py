"""The held-out probe, round 16, core part 5: GPT (see heldout_probe_round16_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import Block


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
