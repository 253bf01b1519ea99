"""The held-out probe, round 19, core part, fifth file: subtler GPT slips (imported by the fourth)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from heldout_probe_round19_core3 import R19GPT


# ------------------------------------------------------------------------------------------ GPT
@mistake(ex.check_gpt, r"softmax|prob")
class R19bGPTLossOnProbs(R19GPT):
    def loss(self, logits, targets):
        return F.cross_entropy(logits.softmax(-1).flatten(0, 1), targets.flatten(), ignore_index=-1)


@mistake(ex.check_gpt, r"position|offset|start|1")
class R19bGPTPosFromOne(R19GPT):
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(1, idx.size(1) + 1, device=idx.device))
        for blk in tr.h:
            x = blk(x)
        return tr.ln_f(x)


@mistake(ex.check_gpt, r"order|revers")
class R19bGPTReversedBlocks(R19GPT):
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in reversed(tr.h):
            x = blk(x)
        return tr.ln_f(x)


@mistake(ex.check_gpt, r"chain|input|embedding|each|last|only")
class R19bGPTUnchained(R19GPT):  # every block reads the embeddings; only the last one's output survives
    def hidden(self, idx):
        tr = self.transformer
        emb = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in tr.h:
            x = blk(emb)
        return tr.ln_f(x)


@mistake(ex.check_gpt, r"ln_f|final|every|each")
class R19bGPTLnfEveryBlock(R19GPT):
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in tr.h:
            x = tr.ln_f(blk(x))
        return x


@mistake(ex.check_gpt, r"ignore|mean|averag|count")
class R19bGPTMeanOverIgnored(R19GPT):
    def loss(self, logits, targets):
        per = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="none")
        return per.mean()


@mistake(ex.check_gpt, r"last|shape|one position")  # widened: "only one position returned"
class R19bGPTLastOnly(R19GPT):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.hidden(idx)[:, -1:, :])
        return logits, (None if targets is None else self.loss(logits, targets[:, -1:]))


@valid(ex.check_gpt)
class R19bGPTValidUntied(R19GPT):  # no weight tying: both tables load the same checkpoint values anyway
    def __init__(self, config):
        super().__init__(config)
        self.transformer.wte = nn.Embedding(config.vocab_size, config.n_embd)
