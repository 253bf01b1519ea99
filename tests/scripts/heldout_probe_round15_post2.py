"""Round 15, post part, continued: the LoRA layer, the DPO loss and GRPO's group advantages (see
heldout_probe_round15_post.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid

IGNORE = -1


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ LoRA (the skeleton)
def lora(init="ok", scale="ok", freeze=True, merge="ok", check_merged=True, fwd="ok", order="r_alpha"):
    class LoRALinear(nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            if order == "alpha_r":  # the signature read as (base, alpha, r)
                r, alpha = alpha, r
            self.base, self.merged = base, False
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
            self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
            self.scale = {"ok": alpha / r, "inv": r / alpha, "alpha": alpha, "floor": alpha // r,
                          "sqrt": alpha / math.sqrt(r)}[scale]
            a, b = {"ok": (self.lora_A, self.lora_B), "swap": (self.lora_B, self.lora_A)}.get(init, (None, None))
            if init == "both_random":
                nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
                nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))
            elif init == "both_zero":
                nn.init.zeros_(self.lora_A)
                nn.init.zeros_(self.lora_B)
            else:
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                nn.init.zeros_(b)
            if freeze == "all":
                self.requires_grad_(False)
            elif freeze:
                base.requires_grad_(False)

        def forward(self, x):
            out = self.base(x)
            if self.merged and check_merged:
                return out
            delta = x @ self.lora_A.T @ self.lora_B.T
            if fwd == "no_base":
                return delta * self.scale
            if fwd == "scale_all":
                return (out + delta) * self.scale
            if fwd == "tuple":
                return out + delta * self.scale, delta
            return out + delta * self.scale

        @torch.no_grad()
        def merge(self):
            ba = self.lora_B @ self.lora_A
            delta = {"noscale": ba, "sub": -self.scale * ba, "T": self.scale * ba.T}.get(merge, self.scale * ba)
            self.base.weight += delta
            if merge != "noflag":
                self.merged = True
    return LoRALinear


L = ex.check_lora_layer
INIT = r"init|zero|B .*zero|start"
mistake(L, INIT)(lora(init="swap"))
mistake(L, INIT)(lora(init="both_random"))
mistake(L, INIT + r"|random|kaiming|gradient|never (learn|train)")(lora(init="both_zero"))
mistake(L, r"scal|alpha ?/ ?r|r ?/ ?alpha")(lora(scale="inv"))
mistake(L, r"scal|alpha|rank|/ ?r")(lora(scale="alpha"))
mistake(L, r"integer|//|floor|divis|round")(lora(scale="floor"))
mistake(L, r"sqrt|rsLoRA|scal")(lora(scale="sqrt"))
mistake(L, r"freez|requires_grad|frozen|base")(lora(freeze=False))
mistake(L, r"requires_grad|train|frozen|gradient|lora_A|adapter")(lora(freeze="all"))
mistake(L, r"merge.*(scal|alpha)|scal.*merge")(lora(merge="noscale"))
mistake(L, r"merge.*(sign|subtract|minus)|subtract|sign")(lora(merge="sub"))
mistake(L, r"merged|flag|twice|double|again")(lora(merge="noflag"))
mistake(L, r"merged|twice|double|again|flag")(lora(check_merged=False))
mistake(L, r"transpos|shape|\.T|merge")(lora(merge="T"))
mistake(L, r"base|W ?x|original|frozen layer")(lora(fwd="no_base"))
mistake(L, r"scal.*(base|whole|everything)|base.*scal")(lora(fwd="scale_all"))
mistake(L, r"tuple|extra|return")(lora(fwd="tuple"))
mistake(L, r"order|argument|rank|shape|\br\b|swap")(lora(order="alpha_r"))


@valid(L)
class LoRAModules(nn.Module):  # the package's style: lora_A / lora_B as bias-free nn.Linear
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.r, self.alpha, self.merged = base, r, alpha, False
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.lora_B(self.lora_A(x)) * (self.alpha / self.r)

    def merge(self):
        with torch.no_grad():
            self.base.weight.add_(self.lora_B.weight @ self.lora_A.weight, alpha=self.alpha / self.r)
        self.merged = True


@valid(L)
class LoRAGaussian(lora()):  # the LoRA paper's Gaussian A, einsum forward, .data merge
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        with torch.no_grad():
            self.lora_A.normal_(0.0, 1.0 / r)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scale * torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B)

    def merge(self):
        self.base.weight.data = self.base.weight.data + self.scale * self.lora_B.data @ self.lora_A.data
        self.merged = True


# ------------------------------------------------------------------------------------------ DPO loss (the skeleton)
def dpo(tok="sum", mask="ok", ref_grad=False, sign=1, sigmoid="logsigmoid", reduce="mean", beta_at="in",
        view="B2", dtype=None, item=False, out="loss", models="pr", unwrap=True):
    def fn(policy, reference, x, y, beta):
        if models == "rp":
            policy, reference = reference, policy
        B, _, T = x.shape
        idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
        keep = {"ok": targets != IGNORE, "none": torch.ones_like(targets, dtype=torch.bool), "pos": targets > 0,
                "m100": targets != -100}[mask]

        def logps(model):
            logits = model(idx)[0] if unwrap else model(idx)
            if dtype is not None:
                logits = logits.to(dtype)
            lp = F.softmax(logits, dim=-1) if tok == "prob" else F.log_softmax(logits, dim=-1)
            t = lp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1).float()
            s = (t * keep).sum(-1)
            if tok == "mean":
                s = s / keep.sum(-1)
            return s.view(B, 2) if view == "B2" else s.view(2, B).T

        pi = logps(policy)
        if ref_grad:
            ref = logps(reference)
        else:
            with torch.no_grad():
                ref = logps(reference)
        margin = sign * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))
        z = {"in": beta * margin, "none": margin, "out": margin}[beta_at]
        losses = -F.logsigmoid(z) if sigmoid == "logsigmoid" else -torch.log(torch.sigmoid(z))
        if beta_at == "out":
            losses = beta * losses
        loss = losses.mean() if reduce == "mean" else losses.sum()
        if item:
            return torch.tensor(loss.item())
        return (loss, margin) if out == "tuple" else loss
    return fn


D = ex.check_dpo_loss
mistake(D, r"mean|average|sum|length|normali")(dpo(tok="mean"))
mistake(D, r"mask|prompt|-1|ignore|padding")(dpo(mask="none"))
mistake(D, r"id 0|token 0|> ?0|>= ?0|zero|mask")(dpo(mask="pos"))
mistake(D, r"-100|ignore|mask|prompt and padding")(dpo(mask="m100"))  # widened: -100 masks nothing, a fair name
mistake(D, r"no_grad|reference|detach|frozen")(dpo(ref_grad=True))
mistake(D, r"swap|sign|chosen.*rejected|rejected.*chosen|order")(dpo(sign=-1))
mistake(D, r"sum|mean|pairs|batch|average")(dpo(reduce="sum"))
mistake(D, r"beta")(dpo(beta_at="out"))
mistake(D, r"beta")(dpo(beta_at="none"))
mistake(D, r"softmax|probab|log")(dpo(tok="prob"))
mistake(D, r"view|reshape|pair|order|\(2, ?B\)|interleav|row")(dpo(view="2B"))
mistake(D, r"half|float16|precision|dtype|round")(dpo(dtype=torch.float16))
mistake(D, r"item|gradient|detach|graph")(dpo(item=True))
mistake(D, r"tuple|extra|return")(dpo(out="tuple"))
mistake(D, r"reference|policy|swap|gradient|order|argument")(dpo(models="rp"))
mistake(D, r"tuple|\[0\]|logits|\(logits, loss\)")(dpo(unwrap=False))


@mistake(D, r"shift|off by one|already|twice")
def dpo_double_shift(policy, reference, x, y, beta):  # shifts logits and targets again (as for raw sequences)
    B, _, T = x.shape
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        lp = F.log_softmax(model(idx)[0][:, :-1], dim=-1)
        t = targets[:, 1:]
        tok = lp.gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (tok * (t != IGNORE)).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(D, r"reference|pi_ref|ratio|log pi_ref")
def dpo_no_reference(policy, reference, x, y, beta):  # the reference forgotten in the margin
    B, _, T = x.shape
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
    lp = F.log_softmax(policy(idx)[0], dim=-1)
    tok = lp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    pi = (tok * (targets != IGNORE)).sum(-1).view(B, 2)
    return -F.logsigmoid(beta * (pi[:, 0] - pi[:, 1])).mean()


@mistake(D, r"clamp|-1|index|negative|ignore|gather")
def dpo_no_clamp(policy, reference, x, y, beta):  # gathers at -1 without clamping: an index error
    B, _, T = x.shape
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        lp = F.log_softmax(model(idx)[0], dim=-1)
        tok = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (tok * (targets != IGNORE)).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


def _ce_logps(model, x, y):
    B, _, T = x.shape
    logits = model(x.reshape(2 * B, T))[0]
    nll = F.cross_entropy(logits.transpose(1, 2), y.reshape(2 * B, T), ignore_index=IGNORE, reduction="none")
    return -nll.sum(-1).view(B, 2)


# -log(sigmoid(z)): written as a mistake (it overflows for large margins) and counted untuned as not caught; the
# checker deliberately tries no large beta (earlier rounds judge it a valid way to write the loss), so it is valid here
valid(D)(dpo(sigmoid="log_sigmoid"))


@valid(D)
def dpo_cross_entropy(policy, reference, x, y, beta):  # log p from cross_entropy(ignore_index=-1), softplus loss
    pi = _ce_logps(policy, x, y)
    with torch.no_grad():
        ref = _ce_logps(reference, x, y)
    logratio = pi - ref
    return F.softplus(-beta * (logratio[:, 0] - logratio[:, 1])).mean()


@valid(D)
def dpo_per_side(policy, reference, x, y, beta):  # chosen and rejected run separately, reference detached
    def side(model, k):
        lp = F.log_softmax(model(x[:, k])[0], dim=-1)
        t = y[:, k]
        tok = torch.where(t != IGNORE, lp.gather(-1, t.clamp(min=0)[..., None])[..., 0], torch.zeros(()))
        return tok.sum(-1)

    pc, pr = side(policy, 0), side(policy, 1)
    rc, rr = side(reference, 0).detach(), side(reference, 1).detach()
    return -F.logsigmoid(beta * ((pc - pr) - (rc - rr))).mean()


# ------------------------------------------------------------------------------------------ GRPO group advantages
def adv(dim=1, keepdim=True, unbiased=True, eps=1e-4, flag="ok", centre=True, inplace=False, out="adv",
        dtype=None, std_dim=None):
    def fn(rewards, normalize_std=True):
        r = rewards.to(dtype) if dtype is not None else rewards
        mean = r.mean() if dim is None else r.mean(dim=dim, keepdim=keepdim)
        if inplace:
            r -= mean
            centred = r
        else:
            centred = r - mean if centre else r
        sd = std_dim if std_dim is not None else dim
        std = r.std() if sd is None else (r if not inplace else rewards).std(dim=sd, keepdim=True, unbiased=unbiased)
        do = {"ok": normalize_std, "always": True, "inverted": not normalize_std}[flag]
        a = centred / (std + eps) if do else centred
        return {"adv": a, "tuple": (a, std), "numpy": a.numpy() if isinstance(a, torch.Tensor) else a,
                "none": None}[out]
    return fn


G = ex.check_group_advantages
mistake(G, r"unbiased|biased|correction|population|n ?- ?1|ddof")(adv(unbiased=False))
mistake(G, r"dim|axis|group|prompt|column")(adv(dim=0))
mistake(G, r"keepdim|broadcast|shape|P ?== ?G")(adv(keepdim=False))
mistake(G, r"eps|nan|zero|equal|divide")(adv(eps=0.0))
mistake(G, r"group|global|all|whole|dim|batch")(adv(dim=None))
mistake(G, r"normalize_std|flag|argument|always")(adv(flag="always"))
mistake(G, r"normalize_std|flag|argument|invert|opposite")(adv(flag="inverted"))
mistake(G, r"mean|centr|subtract")(adv(centre=False))
mistake(G, r"in.place|modif|input|alias")(adv(inplace=True))
mistake(G, r"tuple|extra|return")(adv(out="tuple"))
mistake(G, r"numpy|tensor|type|ndarray")(adv(out="numpy"))
mistake(G, r"None|return")(adv(out="none"))
mistake(G, r"half|float16|precision|dtype|round")(adv(dtype=torch.float16))
mistake(G, r"dtype|float64|double")(adv(dtype=torch.float64))
mistake(G, r"std.*(dim|axis)|axis|dim|group")(adv(std_dim=0))


@mistake(G, r"math\.sqrt|torch\.sqrt|tensor|element|sqrt")
def adv_math_sqrt(rewards, normalize_std=True):  # math.sqrt on a (P, 1) tensor
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        var = (centred ** 2).sum(dim=1, keepdim=True) / (rewards.size(1) - 1)
        centred = centred / (math.sqrt(var) + 1e-4)
    return centred


@mistake(G, r"std|range|max|min|scale")
def adv_range(rewards, normalize_std=True):  # scaled by the group's range instead of its std
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        centred = centred / (rewards.amax(1, keepdim=True) - rewards.amin(1, keepdim=True) + 1e-4)
    return centred


@valid(G)
def adv_transposed(rewards, normalize_std=True):  # groups as columns, then back
    r = rewards.T
    a = r - r.mean(dim=0)
    if normalize_std:
        a = a / (r.std(dim=0) + 1e-4)
    return a.T.contiguous()


@valid(G)
def adv_std_mean(rewards, normalize_std=True):  # torch.std_mean and indexing with None
    std, mean = torch.std_mean(rewards, dim=1)
    a = rewards - mean[:, None]
    return a / (std[:, None] + 1e-4) if normalize_std else a


@valid(G)
def adv_numpy_style(rewards, normalize_std=True):  # a hand-written unbiased std
    n = rewards.shape[1]
    mu = rewards.sum(1, keepdim=True) / n
    a = rewards - mu
    if normalize_std:
        a = a / (torch.sqrt((a * a).sum(1, keepdim=True) / (n - 1)) + 1e-4)
    return a
