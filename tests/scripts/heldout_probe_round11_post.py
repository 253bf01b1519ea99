"""The held-out probe, round 11, second part (schedule, weight decay, HF conversion, SFT, LoRA, DPO, GRPO and a
training run): written with heldout_probe_round11_tokens.py, which imports it, before reading these checkers."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.exercises.dpo import check_dpo_loss
from mingpt.exercises.lora import check_lora_layer
from mingpt.exercises.posttrain import check_group_advantages, check_sft_targets

from heldout_probe_models import mistake, valid


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ LR schedule (nanoGPT)
def get_lr(warm="ok", denom="ok", numer="ok", shape="ok", after="ok", floor="ok"):
    def lr_at(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
        if it < warmup_iters:
            return learning_rate * {"ok": (it + 1) / (warmup_iters + 1), "it": it / warmup_iters,
                                    "it1": (it + 1) / warmup_iters}[warm]
        if it > lr_decay_iters:
            return learning_rate if after == "peak" else min_lr if floor == "ok" else 0.0
        num = it - warmup_iters if numer == "ok" else it
        ratio = num / ((lr_decay_iters - warmup_iters) if denom == "ok" else lr_decay_iters)
        coeff = {"ok": 0.5 * (1.0 + math.cos(math.pi * ratio)), "full": 0.5 * (1.0 + math.cos(2 * math.pi * ratio)),
                 "linear": 1.0 - ratio}[shape]
        if floor == "zero":
            return coeff * learning_rate
        if floor == "add":
            return min_lr + coeff * learning_rate
        return min_lr + coeff * (learning_rate - min_lr)
    return lr_at


L = ex.check_lr_schedule
mistake(L, r"warm|first step")(get_lr(warm="it"))
mistake(L, r"warm")(get_lr(warm="it1"))
mistake(L, r"progress|denominator|ratio|lr_decay_iters|floor")(get_lr(denom="all"))
mistake(L, r"progress|numerator|ratio|warm")(get_lr(numer="it"))
mistake(L, r"full|2 ?\*? ?pi|period|half|whole")(get_lr(shape="full"))
mistake(L, r"\b0\b|zero|min_lr|floor")(get_lr(floor="zero"))
mistake(L, r"after|peak|learning_rate")(get_lr(after="peak"))
mistake(L, r"linear")(get_lr(shape="linear"))
mistake(L, r"min_lr|range|peak|added|above")(get_lr(floor="add"))
mistake(L, both(r"warm|first step", r"\b0\b|zero|floor"))(get_lr(warm="it", floor="zero"))
mistake(L, both(r"progress|denominator|ratio|floor", r"linear"))(get_lr(denom="all", shape="linear"))


@mistake(L, r"tensor|float|cos")
def lr_torch_cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    ratio = min(1.0, (it - warmup_iters) / (lr_decay_iters - warmup_iters))
    return min_lr + 0.5 * (1 + torch.cos(math.pi * ratio)) * (learning_rate - min_lr)  # TypeError on a float


valid(L)(get_lr())


@valid(L)
def lr_clamped(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    t = min(max((it - warmup_iters) / (lr_decay_iters - warmup_iters), 0.0), 1.0)
    return min_lr + (learning_rate - min_lr) * (1 + math.cos(math.pi * t)) / 2


# ------------------------------------------------------------------------------------------ weight decay groups
def groups_by(rule, wd_fixed=None, dup=False, drop_nodecay=False):
    def fn(model, weight_decay):
        params = list(model.named_parameters(remove_duplicate=not dup))
        dec = [p for n, p in params if rule(n, p)]
        nod = [p for n, p in params if not rule(n, p)]
        out = [{"params": dec, "weight_decay": weight_decay if wd_fixed is None else wd_fixed}]
        return out if drop_nodecay else out + [{"params": nod, "weight_decay": 0.0}]
    return fn


W = ex.check_weight_decay_groups
mistake(W, r"embed|wpe|wte")(groups_by(lambda n, p: p.dim() >= 2))  # nanoGPT's rule
mistake(W, r"bias|all|every|layernorm")(groups_by(lambda n, p: True))
mistake(W, r"bias|1-d|layernorm|invert|swap|gain")(groups_by(lambda n, p: p.dim() < 2))
mistake(W, r"hard|weight_decay|value|0\.1")(groups_by(lambda n, p: n.endswith("weight") and "ln" not in n
                                                  and "wte" not in n and "wpe" not in n, wd_fixed=0.1))
mistake(W, r"layernorm|ln|embed|gain")(groups_by(lambda n, p: n.endswith("weight")))
mistake(W, r"missing|every param|not in any|group")(groups_by(lambda n, p: p.dim() >= 2 and "wpe" not in n
                                                             and "wte" not in n, drop_nodecay=True))
mistake(W, both(r"hard|weight_decay|value|0\.1", r"bias|1-d|all"))(groups_by(lambda n, p: True, wd_fixed=0.1))


@mistake(W, r"named_parameters|unpack|tuple")
def groups_unpack(model, weight_decay):
    dec = [p for n, p in model.parameters() if p.dim() >= 2]  # parameters() gives tensors, not (name, p)
    return [{"params": dec, "weight_decay": weight_decay}]


@mistake(W, r"tied")  # minGPT's rule on a tied model: wte's name puts the shared matrix in no_decay
def mingpt_original(model, weight_decay):  # minGPT's configure_optimizers: by module type, sets of names
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
    pd = dict(model.named_parameters())
    decay &= set(pd)
    no_decay = (no_decay & set(pd)) - decay
    return [{"params": [pd[n] for n in sorted(decay)], "weight_decay": weight_decay},
            {"params": [pd[n] for n in sorted(no_decay)], "weight_decay": 0.0}]


@valid(W)
def nodecay_first_by_id(model, weight_decay):
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0},
            {"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay}]


# ------------------------------------------------------------------------------------------ HF conversion (nanoGPT)
ALL4 = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert(keys=ALL4, keep_mask=False, prefix=True, lm_head="fill", extra_t=()):
    def fn(sd):
        out = {}
        for k, v in sd.items():
            if not keep_mask and k.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            v = v.t() if k.endswith(tuple(keys) + tuple(extra_t)) else v
            out[k if prefix else k.removeprefix("transformer.")] = v
        if lm_head == "fill" and "lm_head.weight" not in out and "transformer.wte.weight" in out:
            out["lm_head.weight"] = out["transformer.wte.weight"]
        if lm_head == "drop":
            out.pop("lm_head.weight", None)
        return out
    return fn


H = ex.check_hf_conversion
mistake(H, r"c_proj|conv1d weight not transposed")(convert(keys=ALL4[:1] + ALL4[2:]))
mistake(H, r"c_proj|mlp|conv1d weight not transposed")(convert(keys=ALL4[:3]))
mistake(H, r"lm_head|already right")(convert(extra_t=("lm_head.weight",)))
mistake(H, r"wte|embed|wpe|already right")(
    convert(extra_t=("wte.weight", "wpe.weight")))
mistake(H, r"bias|mask|buffer")(convert(keep_mask=True))
mistake(H, r"transpos|conv1d")(convert(keys=()))
mistake(H, r"prefix|transformer|name|key")(convert(prefix=False))
mistake(H, both(r"attn.c_proj|c_proj|not transposed", r"bias|mask|buffer"))(
    convert(keys=ALL4[:1] + ALL4[2:], keep_mask=True))
valid(H)(convert())
valid(H)(lambda sd: {k: (v.t().clone() if any(k.endswith(s) for s in ALL4) else v.clone())
                     for k, v in sd.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))})
mistake(H, r"c_attn.bias|dropped")(lambda sd: {k: (v.t().clone() if any(k.endswith(s) for s in ALL4) else v.clone())
                     for k, v in sd.items() if not k.endswith(("attn.bias", "attn.masked_bias"))})


# ------------------------------------------------------------------------------------------ SFT targets
def sft(mask_from="next", labels="next", fill=-1, invert=False, no_mask=False, dtype=None):
    def fn(ids, is_assistant):
        x = ids[:-1]
        y = (ids[1:] if labels == "next" else ids[:-1]).clone()
        keep = is_assistant[1:] if mask_from == "next" else is_assistant[:-1]
        if invert:
            keep = ~keep
        if not no_mask:
            y = y.masked_fill(~keep, fill)
        return x, (y.to(dtype) if dtype else y)
    return fn


T = check_sft_targets
mistake(T, r"shift|off by one|is_assistant\[:-1\]|position")(sft(mask_from="same"))
mistake(T, r"shift|label|target|ids\[:-1\]|copy|input")(sft(labels="same"))
mistake(T, r"-100|ignore")(sft(fill=-100))
mistake(T, r"invert|user|prompt|opposite|not the assistant")(sft(invert=True))
mistake(T, r"\b0\b|ignore|zero")(sft(fill=0))
mistake(T, r"mask|every|all|prompt")(sft(no_mask=True))
mistake(T, both(r"-100|ignore", r"shift|off by one|is_assistant\[:-1\]"))(sft(fill=-100, mask_from="same"))
mistake(T, r"dtype|long|float|integer")(sft(dtype=torch.float32))


@mistake(T, r"shift|length|T-1|shape|is_assistant\[1:\]")
def sft_unshifted_index(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant] = -1  # a (T,) mask on a (T-1,) tensor: IndexError
    return ids[:-1], y


valid(T)(sft())


@valid(T)
def sft_where(ids, is_assistant):
    return ids[:-1].clone(), torch.where(is_assistant[1:].bool(), ids[1:], torch.full_like(ids[1:], -1))


# ------------------------------------------------------------------------------------------ LoRA (PEFT style)
class PeftLoRA(nn.Module):
    scale_rule, out_dropout, b_zero, freeze, merge_scale, merge_sign, merged_flag = "ok", 0.0, True, True, True, 1, True

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.r, self.alpha = base, r, alpha
        if self.freeze:
            self.base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        if self.b_zero:
            nn.init.zeros_(self.lora_B.weight)
        self.scaling = {"ok": alpha / r, "inv": r / alpha, "alpha": alpha}[self.scale_rule]
        self.drop = nn.Dropout(self.out_dropout)
        self.merged = False

    def forward(self, x):
        out = self.base(x)
        if self.merged and self.merged_flag:
            return out
        return self.drop(out + self.lora_B(self.lora_A(x)) * self.scaling)

    @torch.no_grad()
    def merge(self):
        delta = self.lora_B.weight @ self.lora_A.weight * (self.scaling if self.merge_scale else 1.0)
        self.base.weight += self.merge_sign * delta
        self.merged = True


LR = check_lora_layer
mistake(LR, r"r ?/ ?alpha|scal")(type("InvScale", (PeftLoRA,), {"scale_rule": "inv"}))
mistake(LR, r"alpha|scal")(type("AlphaScale", (PeftLoRA,), {"scale_rule": "alpha"}))
mistake(LR, r"dropout|random|determin|same")(type("OutDropout", (PeftLoRA,), {"out_dropout": 0.2}))
mistake(LR, r"B.*(zero|non-zero)|initiali")(type("BRandom", (PeftLoRA,), {"b_zero": False}))
mistake(LR, r"frozen|freez|requires_grad")(type("NotFrozen", (PeftLoRA,), {"freeze": False}))
mistake(LR, r"merge.*scal|scal.*merge|without.*scal")(type("MergeNoScale", (PeftLoRA,), {"merge_scale": False}))
mistake(LR, r"sign|subtract|merge")(type("MergeSubtracts", (PeftLoRA,), {"merge_sign": -1}))
mistake(LR, r"after merg|twice|double|again")(type("MergedStillAdds", (PeftLoRA,), {"merged_flag": False}))
mistake(LR, both(r"r ?/ ?alpha|scal", r"frozen|freez|requires_grad"))(
    type("InvScaleNotFrozen", (PeftLoRA,), {"scale_rule": "inv", "freeze": False}))
valid(LR)(PeftLoRA)


class ParamLoRA(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.s = alpha / r

    def forward(self, x):
        return F.linear(x, self.base.weight + self.s * self.lora_B @ self.lora_A, self.base.bias)

    def merge(self):
        with torch.no_grad():
            self.base.weight.add_(self.s * self.lora_B @ self.lora_A)
            self.lora_B.zero_()


valid(LR)(ParamLoRA)


class ParamLoRATransposed(ParamLoRA):  # A stored (in, r), B (r, out): the math-on-paper layout
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.lora_A = nn.Parameter(torch.randn(base.in_features, r))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        return self.base(x) + self.s * (x @ self.lora_A @ self.lora_B)

    def merge(self):
        with torch.no_grad():
            self.base.weight.add_(self.s * (self.lora_A @ self.lora_B).T)


mistake(LR, r"shape|transpos|\(r, ?in\)|layout")(ParamLoRATransposed)


# ------------------------------------------------------------------------------------------ DPO (TRL style)
def seq_logps(model, x, y, mean=False, mask=True, probs=False, clamp=True):
    logits = model(x.flatten(0, 1))[0]
    t = y.flatten(0, 1)
    lp = (F.softmax if probs else F.log_softmax)(logits, -1)
    tok = lp.gather(-1, (t.clamp(min=0) if clamp else t)[..., None]).squeeze(-1)
    m = (t != -1).float() if mask else torch.ones_like(tok)
    s = (tok * m).sum(-1)
    return (s / m.sum(-1) if mean else s).view(-1, 2)


def trl_dpo(sign=1.0, ref="nograd", beta_out=False, swap=False, reduce="mean", **lp):
    def fn(policy, reference, x, y, beta):
        pi = seq_logps(policy, x, y, **lp)
        if ref == "none":
            rf = torch.zeros_like(pi)
        elif ref == "grad":
            rf = seq_logps(reference, x, y, **lp)
        else:
            with torch.no_grad():
                rf = seq_logps(reference, x, y, **lp)
        c, r = (1, 0) if swap else (0, 1)
        margin = (pi[:, c] - rf[:, c]) - (pi[:, r] - rf[:, r])
        losses = -beta * F.logsigmoid(sign * margin) if beta_out else -F.logsigmoid(sign * beta * margin)
        return losses.mean() if reduce == "mean" else losses.sum()
    return fn


D = check_dpo_loss
mistake(D, r"sign|negat|minus")(trl_dpo(sign=-1.0))
mistake(D, r"reference.*grad|no_grad|detach|gradient")(trl_dpo(ref="grad"))
mistake(D, r"mean|average|per token|length")(trl_dpo(mean=True))
mistake(D, r"mask|prompt|every token|padding")(trl_dpo(mask=False))
mistake(D, r"beta")(trl_dpo(beta_out=True))
mistake(D, r"reference")(trl_dpo(ref="none"))
mistake(D, r"swap|chosen|rejected|order")(trl_dpo(swap=True))
mistake(D, r"sum|mean|reduc|batch")(trl_dpo(reduce="sum"))
mistake(D, r"prob|log")(trl_dpo(probs=True))
mistake(D, r"-1|ignore|clamp|index")(trl_dpo(clamp=False))
mistake(D, both(r"mean|average|per token|length", r"beta"))(trl_dpo(mean=True, beta_out=True))
mistake(D, both(r"sign|negat|minus", r"sum|reduc"))(trl_dpo(sign=-1.0, reduce="sum"))
valid(D)(trl_dpo())


@valid(D)
def dpo_softplus_ce(policy, reference, x, y, beta):
    def lp(model):
        logits = model(x.flatten(0, 1))[0]
        t = y.flatten(0, 1)
        ce = F.cross_entropy(logits.transpose(1, 2), t, ignore_index=-1, reduction="none")
        return -ce.sum(-1).view(-1, 2)
    pi = lp(policy)
    with torch.no_grad():
        rf = lp(reference)
    z = beta * ((pi - rf) @ torch.tensor([1.0, -1.0]))
    return F.softplus(-z).mean()


# ------------------------------------------------------------------------------------------ GRPO advantages (TRL)
def adv(centre="group", std="group", unbiased=True, use_flag=True, eps=1e-4, var=False, keepdim=True):
    def fn(rewards, normalize_std):
        mean = rewards.mean() if centre == "global" else rewards.mean(0 if centre == "dim0" else 1, keepdim=keepdim)
        a = rewards - mean
        if normalize_std or not use_flag:
            s = rewards.std(unbiased=unbiased) if std == "global" else rewards.std(1, unbiased=unbiased,
                                                                                   keepdim=keepdim)
            a = a / ((s * s if var else s) + eps)
        return a
    return fn


A = check_group_advantages
mistake(A, r"global|group|whole|batch")(adv(centre="global"))
mistake(A, r"std|global|group|whole")(adv(std="global"))
mistake(A, r"biased|unbiased|correction|bessel|population")(adv(unbiased=False))
mistake(A, r"dim|axis|prompt|column|group")(adv(centre="dim0"))
mistake(A, r"normalize_std|flag|always")(adv(use_flag=False))
mistake(A, r"eps|zero|nan|equal")(adv(eps=0.0))
mistake(A, r"var")(adv(var=True))
mistake(A, both(r"global|whole|batch", r"biased|unbiased|correction|population"))(adv(centre="global", unbiased=False))
mistake(A, r"keepdim|broadcast|shape")(adv(keepdim=False))
valid(A)(adv())


@valid(A)
def adv_std_mean(rewards, normalize_std):
    s, m = torch.std_mean(rewards, dim=-1, keepdim=True)
    return (rewards - m) / (s + 1e-4) if normalize_std else rewards - m


