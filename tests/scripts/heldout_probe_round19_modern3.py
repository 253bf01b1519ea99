"""The held-out probe, round 19, modern part 3: train_and_compare with components whose parameters do not train."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, CausalSelfAttention

STEPS = 20  # short runs: every row below is caught (or passed) by facts that do not need a long run (40 gave the same)


def trained(kind):
    """A checker-like callable: train_and_compare with the student's class as the `kind` component."""
    def train_and_compare(cls):
        return ex.train_and_compare(steps=STEPS, **{kind: cls})
    return train_and_compare


train_attention, train_mlp, train_norm, train_block = (trained(k) for k in ("attention", "mlp", "layer_norm", "block"))


class Heads(nn.Module):
    """A plain multi-head causal attention a student writes (notebook 3), with switches for the slips below."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.nh = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.out = nn.Linear(config.n_embd, config.n_embd)

    def project(self, x):
        return self.qkv(x)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.project(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        y = self.attend(q, k, v)
        return self.out(y.transpose(1, 2).reshape(B, T, C))

    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@mistake(train_attention, r"grad|detach|train|frozen|chang|learn")  # "parameters that do not learn": fair
class AttnDetachedKeys(Heads):  # keys detached: c_attn's key rows get no gradient
    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q, k.detach(), v, is_causal=True)


@mistake(train_attention, r"causal|future|later|leak|mask")
class AttnNoMask(Heads):
    def attend(self, q, k, v):
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        return att.softmax(-1) @ v


@mistake(train_attention, r"grad|data|train|frozen|chang|learn")  # "do not learn": fair
class AttnProjData(Heads):  # .data: the projection is used outside autograd
    def project(self, x):
        return F.linear(x, self.qkv.weight.data, self.qkv.bias)


@mistake(train_attention, r"transpos|reshape|head|view|layout|causal|future|later|leak")
class AttnReshapeHeads(Heads):  # heads split with a reshape where a transpose is needed: positions mix
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.reshape(B, self.nh, T, C // self.nh) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.reshape(B, T, C))


@mistake(train_mlp, r"grad|no_grad|train|frozen|chang|learn")  # "do not learn": fair
class MlpNoGradExpansion(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        with torch.no_grad():
            h = self.fc(x)
        return self.proj(F.gelu(h, approximate="tanh"))


@mistake(train_mlp, r"regist|list|ModuleList|parameter|no param")
class MlpListOfLayers(nn.Module):  # a Python list: the optimizer never sees these layers
    def __init__(self, config):
        super().__init__()
        self.layers = [nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                       nn.Linear(4 * config.n_embd, config.n_embd)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


@mistake(train_norm, r"regist|parameter|plain|tensor|no param|grad")
class NormPlainTensors(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.gain = torch.ones(ndim, requires_grad=True)
        self.shift = torch.zeros(ndim, requires_grad=True)

    def forward(self, x):
        return F.layer_norm(x, (x.size(-1),), self.gain, self.shift, self.eps)


@mistake(train_norm, r"super|init|raised|exception")
class NormNoSuperInit(nn.Module):  # no super().__init__(): nn.Module refuses the first Parameter
    def __init__(self, ndim, eps=1e-5, bias=True):
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)


@mistake(train_block, r"grad|detach|train|frozen|chang|learn")  # "parameters that do not learn": fair
class BlockDetachedMlp(nn.Module):  # the MLP's branch detached before it joins the stream
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn, self.mlp = CausalSelfAttention(config, layer_idx), MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_2(x)).detach()


@mistake(train_block, r"regist|list|ModuleList|parameter|no param")
class BlockPlainListNorms(nn.Module):  # the two norms kept in a plain list
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.norms = [nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)]
        self.attn, self.mlp = CausalSelfAttention(config, layer_idx), MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.norms[0](x), kv_cache)
        return x + self.mlp(self.norms[1](x))


@valid(train_attention)
class AttnValidEinsum(Heads):  # explicit einsum attention with a registered tril buffer
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.register_buffer("tril", torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)

    def attend(self, q, k, v):
        T = q.size(-2)
        att = torch.einsum("bhtd,bhsd->bhts", q, k) * q.size(-1) ** -0.5
        att = att.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        return torch.einsum("bhts,bhsd->bhtd", att.softmax(-1), v)


@valid(train_mlp)
class MlpValidSequential(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * config.n_embd, config.n_embd), nn.Dropout(config.resid_pdrop))

    def forward(self, x):
        return self.net(x)


class MlpProjInForward(nn.Module):  # the output layer built inside forward: a new random layer every call
    def __init__(self, config):
        super().__init__()
        self.n_embd = config.n_embd
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)

    def forward(self, x):
        self.c_proj = nn.Linear(4 * self.n_embd, self.n_embd).to(x.device)
        return self.c_proj(F.gelu(self.c_fc(x)))


# "not deterministic in eval mode", whose hint names a layer built inside forward: fair
mistake(train_mlp, r"forward|regist|learn|new|recreat|grad|chang|train|determin|random")(MlpProjInForward)


@mistake(train_norm, r"grad|data|learn|train|frozen|chang")
class NormGainData(nn.Module):  # nn.Parameters, but read through .data in forward
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(ndim)), nn.Parameter(torch.zeros(ndim)), eps

    def forward(self, x):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight.data + self.bias.data


# ------------------------------------------------------------------------------------------ more, other checkers
@mistake(ex.check_rmsnorm, r"weight|gain|before|order")
def rms_gain_first(x, weight, eps):  # gain applied before normalising: it cancels out of the ratio (almost)
    h = x * weight
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)


@mistake(ex.check_rmsnorm, r"(eps.*(weight|gain))|((weight|gain).*eps)")
def rms_two_slips(x, weight, eps):  # eps outside the root and no gain
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)


@mistake(ex.check_rotary, r"(start|offset|position).*(pair|adjacent)|(pair|adjacent).*(start|offset|position)")
def rope_two_slips(x, start, theta):  # neighbour pairs and positions from 0
    B, T, nh, hs = x.shape
    ang = torch.outer(torch.arange(T).float(), 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs))[:, None]
    xe, xo = x[..., ::2], x[..., 1::2]
    return torch.stack((xe * ang.cos() - xo * ang.sin(), xo * ang.cos() + xe * ang.sin()), -1).reshape(x.shape)


@mistake(ex.check_gqa, r"mask|invert|revers|future|causal|past")
def gqa_inverted_mask(q, k, v):  # the lower triangle masked instead of the upper: each token sees only the future
    g = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    T = q.size(-2)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))
    s = s.masked_fill(torch.tril(torch.ones(T, T), -1) == 1, float("-inf"))
    return s.softmax(-1) @ v


@mistake(ex.check_gqa, r"(tile|repeat|interleav|group).*(scale|sqrt)|(scale|sqrt).*(tile|repeat|interleav|group)")
def gqa_two_slips(q, k, v):  # K/V heads tiled and the scores not scaled
    g = q.size(1) // k.size(1)
    k, v = torch.cat([k] * g, 1), torch.cat([v] * g, 1)
    T = q.size(-2)
    s = (q @ k.transpose(-1, -2)).masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    return s.softmax(-1) @ v


@mistake(ex.check_hf_conversion, r"(prefix|name).*(mask|buffer)|(mask|buffer).*(prefix|name)")
def conv_two_slips_prefix(sd):  # keeps the masks and strips "transformer."
    conv = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    return {k.replace("transformer.", "", 1): (v.t() if k.endswith(conv) else v) for k, v in sd.items()}


@mistake(ex.check_lr_schedule, r"(warm|first step).*(flat|clamp|after|floor)|(flat|clamp|after|floor).*(warm|first)")
def lr_two_slips(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # warm-up from 0, no floor after the end
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_weight_decay_groups, r"name|string|tensor|param")
def wd_returns_names(model, weight_decay):  # groups of parameter names, not the parameters
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    d = [n for n, p in model.named_parameters() if id(p) in lin]
    nd = [n for n, p in model.named_parameters() if id(p) not in lin]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


@valid(ex.check_gqa)
def gqa_valid_expand(q, k, v):  # expand a group axis after the K/V heads, then merge: repeat_interleave's order
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    v = v[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    mask = torch.full((T, T), float("-inf")).triu(1)
    return torch.softmax(q @ k.transpose(2, 3) / hs ** 0.5 + mask, dim=-1) @ v


# Written as valid; really a mistake (the checker's refusal is right): copy_ under no_grad cuts w_gate, w_up and
# w_down out of the graph, so training through this function would never update them.
@mistake(ex.check_swiglu, r"grad|detach|block")
def swiglu_copied_into_modules(x, w_gate, w_up, w_down):  # nn.Linear layers loaded with copies of the weights
    H, C = w_gate.shape
    gate, up, down = nn.Linear(C, H, bias=False), nn.Linear(C, H, bias=False), nn.Linear(H, C, bias=False)
    with torch.no_grad():
        gate.weight.copy_(w_gate), up.weight.copy_(w_up), down.weight.copy_(w_down)
    return down(nn.SiLU()(gate(x)) * up(x))
