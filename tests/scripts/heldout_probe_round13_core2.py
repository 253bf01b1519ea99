"""The held-out probe, round 13, core part, second half: the Block, the embedding, the whole GPT, the bigram model and
the next-token loss (heldout_probe_round13_core.py has the first half and says how the round was written)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP, Block, CausalSelfAttention

from heldout_probe_models import cls_with, mistake, valid


# ------------------------------------------------------------------------------------------ Block
K = ex.check_block


def block_with(fwd):
    return cls_with(Block, forward=lambda self, x, kv_cache=None: fwd(self, x))


def stale(s, x):  # ln_1's output reused for the MLP: h = ln_1(x) computed once
    h = s.ln_1(x)
    x = x + s.attn(h)
    return x + s.mlp(s.ln_2(h))


def normed_stream(s, x):  # x = self.ln_1(x), then the residual adds the normalised stream
    x = s.ln_1(x)
    x = x + s.attn(x)
    x = s.ln_2(x)
    return x + s.mlp(x)


for fwd, expect in [
        (lambda s, x: s.ln_2(s.ln_1(x + s.attn(x)) + s.mlp(s.ln_1(x + s.attn(x)))), r"post|after|order"),
        (lambda s, x: (lambda y: s.mlp(s.ln_2(y)))(x + s.attn(s.ln_1(x))), r"residual|mlp"),
        (lambda s, x: (lambda y: y + s.mlp(s.ln_1(y)))(x + s.attn(s.ln_1(x))), r"ln_1|twice|ln_2"),
        (normed_stream, r"normalis|residual|overwrit|reassign|stream"),
        (lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_2(x)), r"parallel|same input|both|GPT-J"),
        (lambda s, x: (lambda y: y + s.attn(s.ln_1(y)))(x + s.mlp(s.ln_2(x))), r"swap|order|mlp first|before"),
        (lambda s, x: (lambda y: y + s.mlp(y))(x + s.attn(s.ln_1(x))), r"ln_2"),
        (lambda s, x: s.ln_2((lambda y: y + s.mlp(s.ln_2(y)))(x + s.attn(s.ln_1(x)))), r"ln|final|end|extra|after"),
        (lambda s, x: (lambda y: y + s.attn(s.ln_2(y)))(x + s.attn(s.ln_1(x))), r"attn|twice|mlp|copy"),
        (stale, r"before|stale|old|original|parallel|updated|same"),
        (lambda s, x: (lambda y: (y + s.mlp(s.ln_2(y)), None))(x + s.attn(s.ln_1(x))), r"tuple|return"),
        (lambda s, x: F.dropout((lambda y: y + s.mlp(s.ln_2(y)))(x + s.attn(s.ln_1(x))), 0.1),
         r"dropout|random|train|eval"),
        (lambda s, x: (lambda y: y + s.mlp(y))(x + s.attn(x)), r"(?=.*ln_1)(?=.*ln_2)|layer ?norm|no norm"),
        (lambda s, x: (lambda y: s.mlp(s.ln_2(y)))(s.attn(s.ln_1(x))), r"residual")]:
    mistake(K, expect)(block_with(fwd))
valid(K)(block_with(lambda s, x: (lambda h: h + s.mlp(s.ln_2(h)))(x + s.attn(s.ln_1(x)))))
valid(K)(cls_with(Block, forward=lambda self, x: (lambda y: y.add(self.mlp(self.ln_2(y))))(
    torch.add(x, self.attn(self.ln_1(x))))))


class BlockOwn(nn.Module):  # the Block built from mingpt's parts, layer_idx ignored
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn, self.mlp = CausalSelfAttention(config, 0), MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_2(x))


valid(K)(BlockOwn)


# ------------------------------------------------------------------------------------------ embedding
E = ex.check_embedding


class Emb(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)


def emb_with(pos, combine=lambda t, p: t + p, pos_of=None):
    def forward(self, idx):
        B, T = idx.shape
        p = self.wpe(pos(idx, self.config)) if pos_of is None else pos_of(self, idx)
        return combine(self.wte(idx), p)
    return cls_with(Emb, forward=forward)


for pos, expect in [
        (lambda idx, c: torch.arange(1, idx.size(1) + 1), r"\b1\b|one|start|off"),
        (lambda idx, c: idx, r"token|\bid|idx"), (lambda idx, c: torch.arange(idx.size(1) - 1, -1, -1), r"revers|end"),
        (lambda idx, c: torch.arange(c.block_size - idx.size(1), c.block_size), r"end|right|block_size|offset|last"),
        (lambda idx, c: torch.arange(c.block_size), r"block_size|\bT\b|slice|length|shape"),
        (lambda idx, c: torch.arange(idx.size(0)), r"size\(0\)|batch|\bB\b|\bT\b|dim"),
        (lambda idx, c: torch.arange(idx.size(1), dtype=torch.float), r"long|int|dtype|float"),
        (lambda idx, c: torch.zeros(idx.size(1), dtype=torch.long), r"position|zero|\b0\b|same")]:
    mistake(E, expect)(emb_with(pos))
ARANGE = lambda idx, c: torch.arange(idx.size(1), device=idx.device)  # noqa: E731
mistake(E, r"position|wpe")(emb_with(ARANGE, combine=lambda t, p: t))
mistake(E, r"concat|cat|sum|add|shape")(emb_with(ARANGE, combine=lambda t, p: torch.cat(
    [t, p.expand(t.size(0), -1, -1)], -1)))
mistake(E, r"sqrt|scale|multipl")(emb_with(ARANGE, combine=lambda t, p: t * math.sqrt(t.size(-1)) + p))
mistake(E, r"dropout|random|train|eval")(emb_with(ARANGE, combine=lambda t, p: F.dropout(t + p, 0.1)))
mistake(E, r"multipl|product|sum|add")(emb_with(ARANGE, combine=lambda t, p: t * p))
mistake(E, r"squeeze|\bB\b|batch|shape|dim")(emb_with(ARANGE, combine=lambda t, p: (t + p).squeeze()))
mistake(E, r"wpe|name|Embedding|parameter|weight|load")(cls_with(Emb, __init__=lambda self, config: (
    Emb.__init__(self, config), setattr(self, "wpe", nn.Parameter(torch.zeros(config.block_size, config.n_embd))))
    and None, forward=lambda self, idx: self.wte(idx) + self.wpe[: idx.size(1)]))
mistake(E, r"block_size|vocab|size|wpe|shape")(cls_with(Emb, __init__=lambda self, config: (
    Emb.__init__(self, config), setattr(self, "wpe", nn.Embedding(config.vocab_size, config.n_embd))) and None,
    forward=lambda self, idx: self.wte(idx) + self.wpe(torch.arange(idx.size(1)))))
valid(E)(emb_with(ARANGE, pos_of=lambda s, idx: s.wpe.weight[: idx.size(1)]))
valid(E)(emb_with(lambda idx, c: torch.arange(idx.size(1), dtype=torch.int32).unsqueeze(0).repeat(idx.size(0), 1)))
valid(E)(cls_with(Emb, forward=lambda self, idx: F.one_hot(idx, self.wte.num_embeddings).float() @ self.wte.weight
                  + self.wpe(torch.arange(idx.shape[-1]))))


# ------------------------------------------------------------------------------------------ GPT
G = ex.check_gpt


class GPTBase(nn.Module):  # notebook 05's layers, as given
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd), wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.embd_pdrop), h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd)))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight


def gpt_with(pos0=0, blocks=lambda h: h, ln_f=True, head=None, post=lambda x: x, loss=None, logits_out=None,
             squeeze=False):
    def forward(self, idx, targets=None):
        tr, T, start = self.transformer, idx.size(1), pos0
        if pos0 == "B":  # idx.size(0) taken for the length
            T, start = idx.size(0), 0
        x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(start, start + T)) if pos0 is not None else tr.wte(idx))
        x = x.squeeze() if squeeze else x
        for block in blocks(list(tr.h)):
            x = block(x)
        x = tr.ln_f(x) if ln_f else x
        logits = head(self, x) if head else self.lm_head(x)
        logits = post(logits)
        out_loss = None
        if targets is not None:
            out_loss = (loss or (lambda lg, t: F.cross_entropy(lg.reshape(-1, lg.size(-1)), t.reshape(-1),
                                                                ignore_index=-1)))(logits, targets)
        return (logits if logits_out is None else logits_out(logits)), out_loss
    return cls_with(GPTBase, forward=forward)


def per_row_mean(lg, t):
    ce = F.cross_entropy(lg.transpose(1, 2), t, ignore_index=-1, reduction="none")  # (B, T)
    return (ce.sum(1) / (t != -1).sum(1)).mean()


for knobs, expect in [
        (dict(ln_f=False), r"ln_f|final"), (dict(pos0=None), r"position|wpe"), (dict(pos0=1), r"\b1\b|position|start"),
        (dict(loss=lambda lg, t: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), t[:, 1:].reshape(-1),
                                                 ignore_index=-1)), r"shift|twice|already"),
        (dict(post=lambda lg: F.softmax(lg, -1)), r"prob|softmax"),
        (dict(post=lambda lg: F.log_softmax(lg, -1)), r"log"),
        (dict(loss=lambda lg, t: F.cross_entropy(lg.reshape(-1, lg.size(-1)), t.reshape(-1).clamp(min=0))),
         r"ignore|-1"),
        (dict(blocks=lambda h: h[::-1]), r"revers|order"), (dict(blocks=lambda h: h[:1]), r"block|layer|first|loop"),
        (dict(loss=lambda lg, t: F.cross_entropy(lg.view(-1, lg.size(-1)), t.view(-1), ignore_index=-1,
                                                 reduction="sum")), r"sum|mean|average"),
        (dict(loss=per_row_mean), r"mean|average|row|per|ignore|-1|sequence"),
        (dict(loss=lambda lg, t: F.cross_entropy(lg.view(-1, lg.size(-1)), t.view(-1).float())),
         r"long|dtype|float|int|ignore"),
        (dict(logits_out=lambda lg: lg[:, [-1], :]), r"last|all positions|one position|\bT\b|shape"),
        (dict(pos0="B"), r"size\(0\)|batch|\bB\b|\bT\b|position"),
        (dict(squeeze=True), r"squeeze|\bB\b|batch|shape|dim"),
        (dict(head=lambda s, x: x @ s.transformer.wte.weight), r"transpos|wte|shape|lm_head|tied"),
        (dict(loss=lambda lg, t: -(F.log_softmax(lg, -1).gather(-1, t.clamp(min=0)[..., None])[..., 0]
                                    * (t != -1)).sum() / t.numel()), r"ignore|-1|mean|count|average|divid")]:
    mistake(G, expect)(gpt_with(**knobs))
mistake(G, r"ln_f|order|shape|lm_head")(gpt_with(ln_f=False, head=lambda s, x: s.transformer.ln_f(s.lm_head(x))))
valid(G)(gpt_with(head=lambda s, x: x @ s.transformer.wte.weight.T))
valid(G)(gpt_with(loss=lambda lg, t: F.nll_loss(F.log_softmax(lg, -1).flatten(0, 1), t.flatten(), ignore_index=-1)))
valid(G)(gpt_with(loss=lambda lg, t: -F.log_softmax(lg, -1)[t != -1].gather(-1, t[t != -1][:, None]).mean()))


# ------------------------------------------------------------------------------------------ bigram
BG = ex.check_bigram


class Big(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)


def big_with(fwd, init=None):
    methods = {"forward": fwd}
    if init:
        methods["__init__"] = init
    return cls_with(Big, **methods)


for fwd, expect in [
        (lambda s, idx: F.softmax(s.table(idx), -1), r"prob|softmax"),
        (lambda s, idx: s.table(idx).log_softmax(-1), r"log"),
        (lambda s, idx: s.table.weight[:, idx].permute(1, 2, 0), r"transpos|column|row"),
        (lambda s, idx: s.table(idx).view(-1, s.table.num_embeddings), r"shape|flat|view|B\*T|\(B, T, V\)"),
        (lambda s, idx: (s.table(idx), None), r"tuple|loss|return"),
        (lambda s, idx: s.table(idx).squeeze(), r"squeeze|shape|dim|B\s*=\s*1|T\s*=\s*1"),
        (lambda s, idx: s.table(idx[:, -1]), r"last|position|shape|all"),
        (lambda s, idx: s.table(idx).double(), r"float64|double|dtype"),
        (lambda s, idx: s.table(idx).detach(), r"detach|grad")]:
    mistake(BG, expect)(big_with(fwd))
mistake(BG, r"transpos|column|Linear")(big_with(
    lambda s, idx: s.table(F.one_hot(idx, s.table.in_features).float()),
    init=lambda s, V: (nn.Module.__init__(s), setattr(s, "table", nn.Linear(V, V, bias=False))) and None))
mistake(BG, r"size|vocab|\bV\b|shape")(big_with(lambda s, idx: s.table(idx),
                                                init=lambda s, V: (nn.Module.__init__(s), setattr(
                                                    s, "table", nn.Embedding(V + 1, V + 1))) and None))
valid(BG)(big_with(lambda s, idx: F.one_hot(idx, s.table.num_embeddings).to(s.table.weight.dtype) @ s.table.weight))
valid(BG)(big_with(lambda s, idx: s.table.weight[idx]))
valid(BG)(big_with(lambda s, idx: F.embedding(idx.long(), s.table.weight)))


# ------------------------------------------------------------------------------------------ loss
LS = ex.check_loss


def loss_with(x=lambda lg: lg[:, :-1], y=lambda t: t[:, 1:], ignore=-1, reduction="mean", flat="reshape", post=None):
    def f(logits, tokens):
        lg, t = x(logits), y(tokens)
        V = logits.size(-1)
        if flat == "none":
            out = F.cross_entropy(lg, t, ignore_index=ignore, reduction=reduction)
        else:
            out = F.cross_entropy(getattr(lg, flat)(-1, V), getattr(t, flat)(-1), ignore_index=ignore,
                                  reduction=reduction)
        return post(out) if post else out
    return f


for knobs, expect in [
        (dict(x=lambda lg: lg, y=lambda t: t), r"shift|t \+ 1|next|align"),
        (dict(x=lambda lg: lg[:, 1:], y=lambda t: t[:, :-1]), r"direction|wrong way|revers|shift|previous"),
        (dict(ignore=-100), r"-100|ignore|-1"), (dict(reduction="sum"), r"sum|mean|average"),
        (dict(flat="view"), r"view|reshape|contiguous"),
        (dict(flat="none"), r"class|dim|shape|transpos|reshape|unflatten"),
        (dict(y=lambda t: t[:, 1:].transpose(0, 1)), r"transpos|order|align|flatten|reshape"),
        (dict(x=lambda lg: lg[:, :-1], y=lambda t: t[:, :-1]), r"shift|t \+ 1|next|align|both drop|same end"),
        (dict(x=lambda lg: lg[:, 1:], y=lambda t: t[:, 1:]), r"shift|align|first|last|t \+ 1"),
        (dict(x=lambda lg: lg[:, -2:-1], y=lambda t: t[:, -1:]), r"last|all positions|every"),
        (dict(x=lambda lg: lg[:-1], y=lambda t: t[1:]), r"batch|time|dim|axis|shift"),
        (dict(post=lambda v: v.item()), r"item|float|tensor|grad|wrong type"),
        (dict(x=lambda lg: F.softmax(lg[:, :-1], -1)), r"softmax|prob|twice"),
        (dict(ignore=-1, post=lambda v: v.unsqueeze(0)), r"scalar|shape|dim"),
        (dict(ignore=-100, x=lambda lg: lg, y=lambda t: t), r"(?=.*(shift|t \+ 1|next))(?=.*(ignore|-1))")]:
    mistake(LS, expect)(loss_with(**knobs))
mistake(LS, r"log_softmax|nll|log|prob")(lambda lg, t: F.nll_loss(lg[:, :-1].flatten(0, 1), t[:, 1:].flatten(),
                                                                    ignore_index=-1))
mistake(LS, r"row|sequence|per|average|mean|count")(lambda lg, t: per_row_mean(lg[:, :-1], t[:, 1:]))
mistake(LS, r"ignore|-1|count|mean|divid")(lambda lg, t: (F.cross_entropy(
    lg[:, :-1].transpose(1, 2), t[:, 1:], ignore_index=-1, reduction="none")).mean())
mistake(LS, r"smooth")(lambda lg, t: F.cross_entropy(lg[:, :-1].transpose(1, 2), t[:, 1:], ignore_index=-1,
                                                     label_smoothing=0.1))
mistake(LS, r"batch|mean|shape|scalar|\bB\b")(lambda lg, t: F.cross_entropy(
    lg[:, :-1].transpose(1, 2), t[:, 1:].clamp(min=0), reduction="none").mean(1))
valid(LS)(lambda lg, t: F.cross_entropy(lg[:, :-1].transpose(1, 2), t[:, 1:], ignore_index=-1))
valid(LS)(lambda lg, t: (lambda lp, y: -lp[y != -1].gather(-1, y[y != -1, None]).mean())(
    lg[:, :-1].log_softmax(-1), t[:, 1:]))
valid(LS)(lambda lg, t: (lambda y, m: F.cross_entropy(lg[:, :-1][m], y[m]))(t[:, 1:], t[:, 1:] != -1))
