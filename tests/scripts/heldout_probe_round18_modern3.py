"""Round 18, modern part 3: the LR schedule, the weight-decay groups and training (see the first part)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention


# ------------------------------------------------------------------------------------------ LR schedule
def _cos(it, lr, min_lr, w, d):
    p = (it - w) / max(1, d - w)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)


@mistake(ex.check_lr_schedule, r"warmup|\+ ?1|off.by.one|zero|0")
def lr_warmup_from_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # lr * it / warmup: step 0 at 0
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    return min_lr if it >= lr_decay_iters else _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm-?up|\+ ?1|off.by.one|denominator")  # widened: "warm-up"
def lr_warmup_over_w(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it+1)/w: reaches lr one step early
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    return min_lr if it >= lr_decay_iters else _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"progress|warmup|decay|start|offset|shift")
def lr_progress_from_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # it / decay: ignores warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = it / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"0\.5|half|factor|coefficient|amplitude")
def lr_no_half(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos) without 0.5: starts at 2 lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"min_lr|floor|zero|0")
def lr_decays_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # the cosine ignores min_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"after|end|min_lr|zero|beyond|past")
def lr_zero_after_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return 0.0
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"quarter|pi|half|cos|shape")
def lr_quarter_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos(pi p / 2): jumps at the end
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + math.cos(math.pi * p / 2) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"linear|cos")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return learning_rate - p * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"integer|floor|division|//|int")
def lr_integer_progress(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # // in the progress: steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) // (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"progress|off.by.one|decay|\+ ?1|denominator")
def lr_progress_plus_one(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # / (d - w + 1): never reaches min
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters + 1)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"invert|revers|increas|swap|upside|direction|up instead")  # widened
def lr_inverted(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # lr and min_lr swapped in the cosine
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return learning_rate + 0.5 * (1 + math.cos(math.pi * p)) * (min_lr - learning_rate)


@mistake(ex.check_lr_schedule, r"degree|radian|pi|180|cos")
def lr_degrees(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos(180 p): degrees into math.cos
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(180 * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warmup|min_lr|start")
def lr_warmup_from_min_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # warmup min_lr -> lr
    if it < warmup_iters:
        return min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)
    return min_lr if it >= lr_decay_iters else _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warmup|min_lr|\+ ?1|zero|floor")
def lr_double_warmup_and_zero_floor(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # two slips
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return 0.0
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@valid(ex.check_lr_schedule)
def lr_valid_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # 0.5 (1 + cos x) = cos^2(x / 2)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:  # '>' not '>=': at it == lr_decay_iters the cosine is at min_lr anyway
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * p / 2) ** 2


@valid(ex.check_lr_schedule)
def lr_valid_le_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # '<=' warmup: equal at it == w
    if it <= warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    return min_lr + (learning_rate - min_lr) * (1 + math.cos(math.pi * p)) / 2


@valid(ex.check_lr_schedule)
def lr_valid_torch(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # tensors inside, a float out
    it_t = torch.tensor(float(it), dtype=torch.float64)
    warm = learning_rate * (it_t + 1) / (warmup_iters + 1)
    p = ((it_t - warmup_iters) / max(1, lr_decay_iters - warmup_iters)).clamp(0, 1)
    cos = min_lr + 0.5 * (1 + torch.cos(torch.pi * p)) * (learning_rate - min_lr)
    return float(torch.where(it_t < warmup_iters, warm, cos))


# ------------------------------------------------------------------------------------------ weight-decay groups
def _groups(decay, no_decay, wd):
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _by_module(model):
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    decay, rest = [], []
    for _, p in model.named_parameters():
        (decay if id(p) in lin else rest).append(p)
    return decay, rest


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe|dim|2-?d")
def wd_by_dim(model, weight_decay):  # nanoGPT's rule: every matrix decayed, the embeddings too
    ps = [p for p in model.parameters() if p.requires_grad]
    return _groups([p for p in ps if p.dim() >= 2], [p for p in ps if p.dim() < 2], weight_decay)


@mistake(ex.check_weight_decay_groups, r"layer ?norm|ln|norm|gain|embedding")
def wd_not_bias_by_name(model, weight_decay):  # everything not named bias is decayed (LayerNorm gains too)
    named = list(model.named_parameters())
    return _groups([p for n, p in named if not n.endswith("bias")], [p for n, p in named if n.endswith("bias")],
                   weight_decay)


@mistake(ex.check_weight_decay_groups, r"weight_decay|hard|value|0\.1|argument|given")
def wd_hard_coded(model, weight_decay):  # right on the default 0.1 only
    return _groups(*_by_module(model), 0.1)


@mistake(ex.check_weight_decay_groups, r"twice|duplicat|both|tied|once")
def wd_tied_twice(model, weight_decay):  # Linear weights, then Embedding weights: a tied matrix lands in both
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    no = [p for m in model.modules() if isinstance(m, (nn.Embedding, nn.LayerNorm)) for p in m.parameters()]
    no += [m.bias for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    return _groups(decay, no, weight_decay)


@mistake(ex.check_weight_decay_groups, r"swap|revers|invert|opposite|wrong group")
def wd_swapped(model, weight_decay):
    d, n = _by_module(model)
    return _groups(n, d, weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|layer ?norm|ln|norm|not in any|left out|forgot")
def wd_forgets_norms(model, weight_decay):  # Linear weights and biases and embeddings; LayerNorms forgotten
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    ids = {id(p) for p in decay}
    no = [m.bias for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    no += [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and id(m.weight) not in ids]
    return _groups(decay, no, weight_decay)


@mistake(ex.check_weight_decay_groups, r"twice|duplicat|both|once|recurs")
def wd_recursive_modules(model, weight_decay):  # m.parameters() recurses: containers add everything again
    decay, no, seen_decay = [], [], set()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            decay.append(m.weight)
            seen_decay.add(id(m.weight))
    for m in model.modules():
        if not isinstance(m, nn.Linear):
            no += [p for p in m.parameters() if id(p) not in seen_decay]
    no += [m.bias for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    return _groups(decay, no, weight_decay)


@mistake(ex.check_weight_decay_groups, r"name|string|str|tensor|type")
def wd_names_not_tensors(model, weight_decay):  # groups of parameter names
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    named = list(model.named_parameters())
    return _groups([n for n, p in named if id(p) in lin], [n for n, p in named if id(p) not in lin], weight_decay)


@mistake(ex.check_weight_decay_groups, r"optimi|adamw|type|list|group")
def wd_returns_optimizer(model, weight_decay):  # builds the AdamW itself
    return torch.optim.AdamW(_groups(*_by_module(model), weight_decay), lr=1e-3)


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_decays_linear_biases(model, weight_decay):  # all of a Linear's parameters decayed
    lin = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in lin], [p for p in ps if id(p) not in lin], weight_decay)


@mistake(ex.check_weight_decay_groups, r"weight_decay|key|missing|default|0\.01")
def wd_group_without_key(model, weight_decay):  # the decayed group relies on AdamW's default (0.01)
    d, n = _by_module(model)
    return [{"params": d}, {"params": n, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"tied|lm_head|wte|embedding|head")
def wd_excluded_by_name(model, weight_decay):  # names "wte", "wpe", "ln" excluded: the tied matrix is listed as wte
    named = list(model.named_parameters())
    skip = lambda n: any(s in n for s in ("wte", "wpe", "ln_", "bias"))  # noqa: E731
    return _groups([p for n, p in named if not skip(n)], [p for n, p in named if skip(n)], weight_decay)


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe|dim|weight_decay|0\.1")
def wd_double_dim_and_hard_coded(model, weight_decay):  # two slips
    ps = list(model.parameters())
    return _groups([p for p in ps if p.dim() >= 2], [p for p in ps if p.dim() < 2], 0.1)


@valid(ex.check_weight_decay_groups)
def wd_valid_reverse_order(model, weight_decay):  # the not-decayed group first
    d, n = _by_module(model)
    return [{"params": n, "weight_decay": 0.0}, {"params": d, "weight_decay": weight_decay}]


@valid(ex.check_weight_decay_groups)
def wd_valid_three_groups(model, weight_decay):  # biases and gains in two groups, both undecayed, extra keys
    d, n = _by_module(model)
    ones = [p for p in n if p.dim() == 1]
    others = [p for p in n if p.dim() != 1]
    return [{"params": d, "weight_decay": weight_decay, "name": "decay"},
            {"params": ones, "weight_decay": 0.0, "name": "1-d"}, {"params": others, "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_valid_named_modules(model, weight_decay):  # by full names via named_modules, dedup through a dict
    params = dict(model.named_parameters())
    decay = set()
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            if isinstance(m, nn.Linear) and pn == "weight":
                decay.add(f"{mn}.{pn}" if mn else pn)
    decay &= params.keys()  # a tied matrix's second name is not in params: decided by its first name's module
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    decay |= {n for n, p in params.items() if id(p) in lin}
    return _groups([params[n] for n in sorted(decay)], [params[n] for n in sorted(params.keys() - decay)],
                   weight_decay)


# ------------------------------------------------------------------------------------------ training
def train_and_compare(components):
    """The probe's row for train_and_compare: a dict of components, trained 20 steps."""
    return ex.train_and_compare(steps=20, **components)


class _Attn(CausalSelfAttention):
    diag = 1  # torch.triu(..., diag): 1 masks the future

    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(self.diag), -1e9)
        y = self.attn_dropout(att.softmax(-1)) @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class _SDPA(CausalSelfAttention):
    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v)  # is_causal forgotten
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


mistake(train_and_compare, r"future|later|causal|leak|mask")({"attention": _SDPA})
mistake(train_and_compare, r"future|later|causal|leak|mask")({"attention": cls_with(_Attn, diag=2)})  # sees t + 1
mistake(train_and_compare, r"future|later|causal|leak|mask|diagonal")({"attention": cls_with(_Attn, diag=0)})


class _FrozenLN(nn.Module):  # the gain and bias kept as buffers: they never train
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(ndim))
        self.register_buffer("bias", torch.zeros(ndim))
        self.extra = nn.Parameter(torch.zeros(ndim))  # a parameter that is never used

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


mistake(train_and_compare, r"gradient|chang|unused|train|parameter")({"layer_norm": _FrozenLN})
mistake(train_and_compare, r"gradient|chang|detach|train|parameter")(
    {"mlp": cls_with(MLP, forward=lambda self, x: self.c_proj(self.gelu(self.c_fc(x).detach())))})
mistake(train_and_compare, r"gradient|chang|mlp|unused|train|parameter")(
    {"block": cls_with(Block, forward=lambda self, x, kv_cache=None, attn_mask=None:
                       x + self.attn(self.ln_1(x), kv_cache))})  # the MLP half forgotten


class _BottomRightMask(CausalSelfAttention):  # a block_size mask sliced [-T:, -T:]: still lower-triangular
    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        bs = config.block_size
        self.register_buffer("tri", torch.tril(torch.ones(bs, bs, dtype=torch.bool)), persistent=False)

    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(~self.tri[-T:, -T:], float("-inf"))
        y = self.attn_dropout(att.softmax(-1)) @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


valid(train_and_compare)({"attention": _BottomRightMask})
