"""Round 20, modern part, third file: the LR schedule, weight-decay groups and train_and_compare (few steps)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, CausalSelfAttention


# ------------------------------------------------------------------------------------------ LR schedule
def _cos(it, lr, min_lr, warmup, decay, coeff=None):
    ratio = (it - warmup) / (decay - warmup)
    c = 0.5 * (1.0 + math.cos(math.pi * ratio)) if coeff is None else coeff(ratio)
    return min_lr + c * (lr - min_lr)


@mistake(ex.check_lr_schedule, r"warm|first step")  # "learning rate 0 at the first step": fair, widened
def lr_old_nanogpt_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # nanoGPT's first get_lr
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"min_lr|zero|floor|warm")
def lr_hf_cosine_with_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # transformers' get_cosine_schedule_with_warmup: it / warmup, then down to 0 (no min_lr)
    if it < warmup_iters:
        return learning_rate * it / max(1, warmup_iters)
    progress = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return learning_rate * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@mistake(ex.check_lr_schedule, r"min_lr|zero|floor")
def lr_decays_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"half|period|full|cos|2 ?pi|π")
def lr_full_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
                coeff=lambda r: 0.5 * (1 + math.cos(2 * math.pi * r)))


@mistake(ex.check_lr_schedule, r"ratio|warm|progress|offset|start|decay")
def lr_torch_cosine_annealing(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # CosineAnnealingLR's T_max = lr_decay_iters counted from 0, not from the end of the warm-up
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * it / lr_decay_iters)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"after|min_lr|end|past|beyond")
def lr_after_decay_peak(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # constant-schedule habit
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return learning_rate
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"linear|cos")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # get_linear_schedule_with_warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda r: 1 - r)


@mistake(ex.check_lr_schedule, r"0\.5|1 ?\+|half|cos|range|coeff|negative|below")
def lr_raw_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos() without 0.5 * (1 + .)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda r: math.cos(math.pi * r))


@mistake(ex.check_lr_schedule, r"direction|increas|invert|revers|up|swap|cos")
def lr_rising_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # 1 - coeff
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
                coeff=lambda r: 0.5 * (1 - math.cos(math.pi * r)))


@mistake(ex.check_lr_schedule, r"after|min_lr|end|clamp|past|beyond|rise")
def lr_no_clamp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # no branch after lr_decay_iters
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm|min_lr|start")
def lr_warmup_from_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # warm-up from min_lr, not 0
    if it < warmup_iters:
        return min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"integer|division|floor|//|ratio")
def lr_floor_division(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) // (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warm")
def lr_warmup_over_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm|min_lr|zero|floor")
def lr_old_warmup_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # double: it/warmup, no floor
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return 0.0
    return _cos(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


@valid(ex.check_lr_schedule)
def lr_valid_nanogpt(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # nanoGPT's current get_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_valid_lambda_multiplier(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # LambdaLR style factor
    def factor(step):
        if step < warmup_iters:
            return (step + 1) / (warmup_iters + 1)
        progress = min(1.0, (step - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
        floor = min_lr / learning_rate if learning_rate else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return learning_rate * factor(it) if learning_rate else min_lr


@valid(ex.check_lr_schedule)
def lr_valid_torch_tensor(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # clamp instead of branch
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    r = torch.tensor((it - warmup_iters) / max(1, lr_decay_iters - warmup_iters), dtype=torch.float64).clamp(0, 1)
    return float(min_lr + 0.5 * (1 + torch.cos(math.pi * r)) * (learning_rate - min_lr))


# ------------------------------------------------------------------------------------------ weight decay groups
def _groups(decay, no_decay, wd):
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe")
def wd_nanogpt_dim(model, weight_decay):  # nanoGPT: every p.dim() >= 2 decayed (embeddings too)
    ps = [p for p in model.parameters() if p.requires_grad]
    return _groups([p for p in ps if p.dim() >= 2], [p for p in ps if p.dim() < 2], weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias|norm|all|every")
def wd_everything(model, weight_decay):  # AdamW(model.parameters(), weight_decay=wd)
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"no.*decay|none|nothing|linear|zero")
def wd_nothing(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"norm|embed|ln|gain|layer")
def wd_hf_no_decay_names(model, weight_decay):  # HF Trainer: no_decay = ["bias", "LayerNorm.weight"]
    no = ["bias", "LayerNorm.weight"]
    named = [(n, p) for n, p in model.named_parameters()]
    return _groups([p for n, p in named if not any(nd in n for nd in no)],
                   [p for n, p in named if any(nd in n for nd in no)], weight_decay)


@mistake(ex.check_weight_decay_groups, r"swap|revers|invert|wrong group|opposite|bias|norm|linear")
def wd_swapped(model, weight_decay):
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) not in linear], [p for p in ps if id(p) in linear], weight_decay)


@mistake(ex.check_weight_decay_groups, r"weight_decay|value|given|hard|argument|0\.1")
def wd_hardcoded(model, weight_decay):  # 0.1 from nanoGPT's config
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in linear], [p for p in ps if id(p) not in linear], 0.1)


@mistake(ex.check_weight_decay_groups, r"default|0\.01|weight_decay|missing|key|not decayed")
def wd_missing_key(model, weight_decay):  # no "weight_decay" in the second group: AdamW's default 0.01 applies
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) in linear], "weight_decay": weight_decay},
            {"params": [p for p in ps if id(p) not in linear]}]


@mistake(ex.check_weight_decay_groups, r"tied|lm_head|head|wte|embed|linear")
def wd_embedding_first(model, weight_decay):  # Embedding checked first: the tied wte/lm_head matrix not decayed
    no = set()
    for m in model.modules():
        if isinstance(m, (nn.Embedding, nn.LayerNorm)):
            no |= {id(p) for p in m.parameters(recurse=False)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) not in no and p.dim() >= 2], [p for p in ps if id(p) in no or p.dim() < 2],
                   weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_linear_bias(model, weight_decay):  # every parameter of an nn.Linear decayed, its bias too
    lin = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in lin], [p for p in ps if id(p) not in lin], weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|group|bias|norm|embed|every param|all param")
def wd_only_decay_group(model, weight_decay):  # the no-decay group forgotten: those never trained
    lin = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return [{"params": lin, "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"twice|duplic|tied|more than once|once")
def wd_tied_duplicate(model, weight_decay):  # named_parameters(remove_duplicate=False): the tied matrix twice
    named = list(model.named_parameters(remove_duplicate=False))
    linear_names = {n + ".weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return _groups([p for n, p in named if n in linear_names],
                   [p for n, p in named if n not in linear_names], weight_decay)


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe|weight|norm|ln|gain")
def wd_name_endswith_weight(model, weight_decay):  # "weight" in name: LayerNorm gains and embeddings too
    named = list(model.named_parameters())
    return _groups([p for n, p in named if n.endswith("weight")], [p for n, p in named if not n.endswith("weight")],
                   weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_original_mingpt(model, weight_decay):  # the original minGPT's whitelist/blacklist by module
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            fpn = f"{mn}.{pn}" if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    params = dict(model.named_parameters())
    decay -= no_decay  # a tied weight seen as Embedding first and Linear later: the matmul wins in mingpt
    decay |= {n for n in no_decay if n in params and any(params[n] is m.weight for m in model.modules()
                                                         if isinstance(m, nn.Linear))}
    no_decay -= decay
    return _groups([params[n] for n in sorted(decay) if n in params],
                   [params[n] for n in sorted(no_decay) if n in params], weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_no_decay_first(model, weight_decay):  # groups in the other order
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0},
            {"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay}]


@valid(ex.check_weight_decay_groups)
def wd_valid_generators_by_id(model, weight_decay):  # ids, tuple groups
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return ({"params": (p for p in model.parameters() if id(p) in lin), "weight_decay": weight_decay},
            {"params": (p for p in model.parameters() if id(p) not in lin), "weight_decay": 0.0})


# ------------------------------------------------------------------------------------------ train_and_compare
STEPS = 30


def _train(kind):
    def train_and_compare(cls):  # named like the checker: the probe's table groups rows by this name
        return ex.train_and_compare(steps=STEPS, **{kind: cls})
    return train_and_compare


train_attention, train_mlp, train_norm = _train("attention"), _train("mlp"), _train("layer_norm")


class _Attn(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def qkv(self, x):
        B, T, C = x.shape
        return (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, 2))

    def out(self, y):
        B, nh, T, hs = y.shape
        return self.c_proj(y.transpose(1, 2).reshape(B, T, nh * hs))


@mistake(train_attention, r"future|later|causal|leak|mask")
class SDPANoCausal(_Attn):  # F.scaled_dot_product_attention's default is_causal=False
    def forward(self, x, kv_cache=None):
        return self.out(F.scaled_dot_product_attention(*self.qkv(x)))


@mistake(train_attention, r"future|later|causal|leak|mask")
class MHAMaskInverted(nn.Module):  # nn.MultiheadAttention: True means "masked"; a tril mask hides the past
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        T = x.size(1)
        mask = torch.ones(T, T, dtype=torch.bool).tril(-1)
        return self.mha(x, x, x, attn_mask=mask, need_weights=False)[0]


@mistake(train_attention, r"future|later|causal|leak|mask")
class MHANoMask(nn.Module):  # nn.MultiheadAttention without a mask
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        return self.mha(x, x, x, need_weights=False)[0]


@mistake(train_attention, r"regist|parameter|gradient|chang|train|learn")
class Conv1DPlainTensors(nn.Module):  # HF Conv1D weights held as plain tensors, never registered
    def __init__(self, config, layer_idx=0):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.w_attn = torch.randn(C, 3 * C) * 0.02  # (in, out), x @ W + b
        self.b_attn = torch.zeros(3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (x @ self.w_attn + self.b_attn).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


@mistake(train_attention, r"nan|diagonal|mask|itself|inf")
class MaskDiagonal(_Attn):  # triu(0): position 0 has nothing to attend to (NaN)
    def forward(self, x, kv_cache=None):
        q, k, v = self.qkv(x)
        T = q.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), float("-inf"))
        return self.out(att.softmax(-1) @ v)


@mistake(train_attention, r"gradient|detach|no_grad|chang|train|learn|c_attn")
class DetachedQKV(_Attn):  # qkv computed under no_grad (copied from an inference cache path)
    def forward(self, x, kv_cache=None):
        with torch.no_grad():
            q, k, v = self.qkv(x)
        return self.out(F.scaled_dot_product_attention(q, k, v, is_causal=True))


@mistake(train_mlp, r"gradient|frozen|requires_grad|chang|train|learn|c_fc")
class FrozenFcMLP(MLP):  # PEFT habit: base weights frozen
    def __init__(self, config):
        super().__init__(config)
        self.c_fc.weight.requires_grad_(False)


@mistake(train_mlp, r"regist|parameter|gradient|chang|list|train|learn")
class ListLayersMLP(nn.Module):  # layers kept in a Python list: not registered
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.layers = [nn.Linear(C, 4 * C), nn.Linear(4 * C, C)]
        self.scale = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x))) * self.scale


@mistake(train_norm, r"future|later|leak|position|axis|causal")
class NormOverTime(nn.Module):  # normalised over the sequence axis (BatchNorm-like habit): reads later tokens
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(ndim)), nn.Parameter(torch.zeros(ndim))
        self.eps = eps

    def forward(self, x):
        mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


@mistake(train_norm, r"regist|parameter|gradient|chang|train|learn|weight")
class NormPlainGain(nn.Module):  # gain and bias as plain tensors (not nn.Parameter)
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias = torch.ones(ndim), torch.zeros(ndim)
        self.eps = eps
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps) + 0 * self.dummy


@valid(train_attention)
class SDPACausal(_Attn):
    def forward(self, x, kv_cache=None):
        return self.out(F.scaled_dot_product_attention(*self.qkv(x), is_causal=True))


@valid(train_attention)
class MHACausal(nn.Module):  # nn.MultiheadAttention with the right boolean mask (True above the diagonal)
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        T = x.size(1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        return self.mha(x, x, x, attn_mask=mask, need_weights=False)[0]


@valid(train_attention)
class HFBufferMask(_Attn):  # GPT-2's registered mask buffer, masked with finfo.min
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        n = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n), persistent=False)

    def forward(self, x, kv_cache=None):
        q, k, v = self.qkv(x)
        T = q.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, torch.finfo(att.dtype).min)
        return self.out(att.softmax(-1) @ v)


@valid(train_norm)
class RMSLikeLayerNorm(nn.Module):  # a LayerNorm written by hand in float32 (Llama's cast habit)
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = ((xf - xf.mean(-1, keepdim=True)) * torch.rsqrt(xf.var(-1, keepdim=True, unbiased=False) + self.eps))
        y = y.type_as(x) * self.weight
        return y + self.bias if self.bias is not None else y


_ = CausalSelfAttention  # imported for readers comparing with the reference
