"""The held-out probe, round 19, core part, third file: Block, embedding, GPT (imported by the second)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention


# ------------------------------------------------------------------------------------------ Block
class R19Block(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)


@mistake(ex.check_block, r"overwrit|norm|residual|stream")
class R19BlockOverwrite(R19Block):
    def forward(self, x, kv_cache=None):
        x = self.ln_1(x)  # the stream itself is normalised
        x = x + self.attn(x, kv_cache)
        return x + self.mlp(self.ln_2(x))


@mistake(ex.check_block, r"parallel")
class R19BlockParallel(R19Block):
    def forward(self, x, kv_cache=None):
        a = self.attn(self.ln_1(x), kv_cache)
        m = self.mlp(self.ln_2(x))
        return x + a + m


@mistake(ex.check_block, r"ln_2|norm|missing")
class R19BlockNoLn2(R19Block):
    def forward(self, x, kv_cache=None):
        h = x + self.attn(self.ln_1(x), kv_cache)
        return h + self.mlp(h)


@mistake(ex.check_block, r"post")
class R19BlockPostLN(R19Block):
    def forward(self, x, kv_cache=None):
        x = self.ln_1(x + self.attn(x, kv_cache))
        return self.ln_2(x + self.mlp(x))


@mistake(ex.check_block, r"ln_1|ln_2|shared|same|norm")
class R19BlockOneNorm(R19Block):
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_1(x))


@mistake(ex.check_block, r"residual|skip")
class R19BlockNoMlpResidual(R19Block):
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return self.mlp(self.ln_2(x))


@mistake(ex.check_block, r"order|swap|mlp.*first|before")
class R19BlockMlpFirst(R19Block):
    def forward(self, x, kv_cache=None):
        x = x + self.mlp(self.ln_2(x))
        return x + self.attn(self.ln_1(x), kv_cache)


@mistake(ex.check_block, r"regist|param|list")
class R19BlockList(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        C = config.n_embd
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.sublayers = [CausalSelfAttention(config, layer_idx), MLP(config)]  # not registered

    def forward(self, x, kv_cache=None):
        attn, mlp = self.sublayers
        x = x + attn(self.ln_1(x))
        return x + mlp(self.ln_2(x))


@mistake(ex.check_block, r"super|init")
class R19BlockNoSuper(nn.Module):
    def __init__(self, config, layer_idx=0):
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@mistake(ex.check_block, r"norm|final|extra|output")
class R19BlockNormsOutput(R19Block):  # normalises what it returns
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return self.ln_2(x)


@mistake(ex.check_block, r"residual|normed|norm|skip")
class R19BlockResidualFromNormed(R19Block):  # adds the branch to the normalised input, keeps x aside
    def forward(self, x, kv_cache=None):
        h = self.ln_1(x)
        x = h + self.attn(h, kv_cache)
        h = self.ln_2(x)
        return h + self.mlp(h)


@valid(ex.check_block)
class R19BlockValidLoop(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        for norm, branch in ((self.ln_1, lambda h: self.attn(h, kv_cache)), (self.ln_2, self.mlp)):
            x = x + branch(norm(x))
        return x


@valid(ex.check_block)
class R19BlockValidReuse(Block):  # the reference's parts, a forward of its own with a residual helper
    def forward(self, x, kv_cache=None, attn_mask=None):
        def residual(h, norm, fn):
            return h.add(fn(norm(h)))
        x = residual(x, self.ln_1, lambda h: self.attn(h, kv_cache))
        return residual(x, self.ln_2, self.mlp)


# ------------------------------------------------------------------------------------------ embedding
class R19Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)


@mistake(ex.check_embedding, r"position|pos")
class R19EmbPosFromIds(R19Emb):
    def forward(self, idx):
        return self.wte(idx) + self.wpe(idx)


@mistake(ex.check_embedding, r"position|offset|start|one|1")
class R19EmbPosFromOne(R19Emb):
    def forward(self, idx):
        T = idx.shape[1]
        return self.wte(idx) + self.wpe(torch.arange(1, T + 1, device=idx.device))


@mistake(ex.check_embedding, r"position|revers|flip")
class R19EmbPosReversed(R19Emb):
    def forward(self, idx):
        T = idx.shape[1]
        return self.wte(idx) + self.wpe(torch.arange(T - 1, -1, -1, device=idx.device))


@mistake(ex.check_embedding, r"concat|shape|sum|cat")
class R19EmbConcat(R19Emb):
    def forward(self, idx):
        B, T = idx.shape
        pos = self.wpe(torch.arange(T, device=idx.device)).expand(B, T, -1)
        return torch.cat([self.wte(idx), pos], dim=-1)


@mistake(ex.check_embedding, r"param|regist")
class R19EmbPlainPos(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_table = torch.zeros(config.block_size, config.n_embd).normal_(std=0.02)  # plain tensor

    def forward(self, idx):
        return self.wte(idx) + self.pos_table[: idx.size(1)]


@mistake(ex.check_embedding, r"scale|sqrt")
class R19EmbScaled(R19Emb):
    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.wte(idx) * math.sqrt(self.wte.embedding_dim) + self.wpe(pos)


@mistake(ex.check_embedding, r"position|missing|wpe")
class R19EmbNoPos(R19Emb):
    def forward(self, idx):
        return self.wte(idx)


@mistake(ex.check_embedding, r"position|batch|axis|dim")
class R19EmbPosPerBatch(R19Emb):  # arange over the batch axis
    def forward(self, idx):
        B = idx.size(0)
        return self.wte(idx) + self.wpe(torch.arange(B, device=idx.device))[:, None, :]


@mistake(ex.check_embedding, r"shape|dim|extra|unsqueeze")
class R19EmbExtraDim(R19Emb):
    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return (self.wte(idx) + self.wpe(pos)).unsqueeze(1)


@valid(ex.check_embedding)
class R19EmbValidSlice(R19Emb):
    def forward(self, idx):
        return self.wte(idx) + self.wpe.weight[: idx.shape[-1]].unsqueeze(0)


@valid(ex.check_embedding)
class R19EmbValidOneHot(R19Emb):
    def forward(self, idx):
        onehot = F.one_hot(idx, self.wte.num_embeddings).type_as(self.wte.weight)
        pos = torch.arange(idx.size(1), device=idx.device).expand_as(idx)
        return onehot @ self.wte.weight + F.embedding(pos, self.wpe.weight)


# ------------------------------------------------------------------------------------------ GPT
class R19GPT(nn.Module):
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

    def hidden(self, idx):
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device)))
        for blk in tr.h:
            x = blk(x)
        return tr.ln_f(x)

    def loss(self, logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)

    def forward(self, idx, targets=None):
        logits = self.lm_head(self.hidden(idx))
        return logits, (None if targets is None else self.loss(logits, targets))


@mistake(ex.check_gpt, r"prob|softmax")
class R19GPTProbs(R19GPT):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.hidden(idx))
        loss = None if targets is None else self.loss(logits, targets)
        return logits.softmax(-1), loss


@mistake(ex.check_gpt, r"log")
class R19GPTLogProbs(R19GPT):
    def forward(self, idx, targets=None):
        logp = F.log_softmax(self.lm_head(self.hidden(idx)), dim=-1)
        return logp, (None if targets is None else F.nll_loss(logp.flatten(0, 1), targets.flatten(),
                                                              ignore_index=-1))


@mistake(ex.check_gpt, r"ln_f|final|norm")
class R19GPTNoFinalNorm(R19GPT):
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in tr.h:
            x = blk(x)
        return x


@mistake(ex.check_gpt, r"position|pos")
class R19GPTPosIds(R19GPT):
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(idx)
        for blk in tr.h:
            x = blk(x)
        return tr.ln_f(x)


@mistake(ex.check_gpt, r"ignore")
class R19GPTNoIgnore(R19GPT):
    def loss(self, logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@mistake(ex.check_gpt, r"shift|align|offset")
class R19GPTShiftsAgain(R19GPT):  # targets are already the next tokens: shifting again is off by one
    def loss(self, logits, targets):
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten(), ignore_index=-1)


@mistake(ex.check_gpt, r"regist|param|list|load|missing")
class R19GPTBlocksInList(R19GPT):
    def __init__(self, config):
        super().__init__(config)
        self.stack = [Block(config, i) for i in range(config.n_layer)]
        del self.transformer["h"]

    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in self.stack:
            x = blk(x)
        return tr.ln_f(x)


@mistake(ex.check_gpt, r"None|loss|target")
class R19GPTZeroLoss(R19GPT):
    def forward(self, idx, targets=None):
        logits = self.lm_head(self.hidden(idx))
        loss = torch.zeros(()) if targets is None else self.loss(logits, targets)
        return logits, loss


@mistake(ex.check_gpt, r"tuple|return|loss")
class R19GPTLogitsOnly(R19GPT):
    def forward(self, idx, targets=None):
        return self.lm_head(self.hidden(idx))


@mistake(ex.check_gpt, r"mean|sum|reduc")
class R19GPTSumLoss(R19GPT):
    def loss(self, logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="sum")


@mistake(ex.check_gpt, r"block|layer|first|only|one")
class R19GPTFirstBlockOnly(R19GPT):  # a stray return in the loop: only block 0 runs
    def hidden(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device))
        for blk in tr.h:
            return tr.ln_f(blk(x))


@valid(ex.check_gpt)
class R19GPTValidManualLoss(R19GPT):
    def loss(self, logits, targets):
        keep = targets >= 0
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
        return nll.masked_select(keep).mean()


@valid(ex.check_gpt)
class R19GPTValidReduce(R19GPT):  # functools.reduce over the blocks, dict-style access
    def hidden(self, idx):
        import functools
        tr = self.transformer
        T = idx.shape[1]
        x = tr["drop"](tr["wte"](idx) + tr["wpe"].weight[:T])
        return tr["ln_f"](functools.reduce(lambda h, blk: blk(h), tr["h"], x))


import heldout_probe_round19_core4  # noqa: E402,F401  (harder rows for every checker)
