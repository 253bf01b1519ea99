"""The held-out probe, round 12, post-training part (the SFT mask, the LoRA layer, the DPO loss and GRPO's group
advantages): written fresh by w24l before reading these checkers' tables, tests/mistakes_*.py or any earlier round,
from the exercises' docstrings, notebook 09 and mingpt.posttrain only, and counted untuned first. The angle: students
implementing post-training from the papers and blog posts (the DPO paper's equation, DeepSeekMath's GRPO, the LoRA
paper, chat-template SFT tutorials) and from TRL/PEFT source (-100 labels, get_batch_logps' own shift,
repeat_interleave, scale_rewards, rsLoRA's alpha / sqrt(r)). Some rows show only on odd sizes or non-default
arguments (a multi-turn conversation, alpha not divisible by r, P == G, all-equal rewards); about one in six
carries two slips (the regex asks for both). See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round11_tokens  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 12
IGNORE = -1  # mingpt's IGNORE_INDEX


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ SFT targets
S = ex.check_sft_targets
SHIFT = r"shift|is_assistant\[:-1\]|input|position|one (token|place)|off by one|next token"
FILL = r"-100|ignore|fill|-1\b"


def sft_with(keep="shifted", fill=IGNORE, x_mask=False):
    """The tutorial's two lines, with the slips: which mask (keep) and what fills the masked targets."""
    def f(ids, is_assistant):
        x, y = ids[:-1].clone(), ids[1:].clone()
        m = {"shifted": is_assistant[1:], "unshifted": is_assistant[:-1], "none": torch.ones_like(is_assistant[1:]),
             "inverted": ~is_assistant[1:], "both": is_assistant[1:] & is_assistant[:-1],
             "either": is_assistant[1:] | is_assistant[:-1]}[keep]
        y[~m] = fill
        if x_mask:  # the mask applied to the inputs as well, as if it were an attention mask
            x[~is_assistant[:-1]] = fill
        return x, y
    return f


mistake(S, FILL)(sft_with(fill=-100))  # HF's labels convention; mingpt's loss ignores -1
mistake(S, SHIFT)(sft_with(keep="unshifted"))  # the mask of the input position, not of the predicted token
mistake(S, r"prompt|user|no mask|every|all (the )?tokens|whole")(sft_with(keep="none"))
mistake(S, r"invert|user|the other|opposite|not the assistant|prompt")(sft_with(keep="inverted"))
mistake(S, both(FILL, SHIFT))(sft_with(keep="unshifted", fill=-100))
mistake(S, r"\b0\b|zero|fill|ignore")(sft_with(fill=0))  # masked with 0, as an attention mask is
mistake(S, r"input|\bx\b")(sft_with(x_mask=True))  # the inputs masked too: the model reads -1 ids
mistake(S, r"first|<assistant>|marker|both|previous|shift")(sft_with(keep="both"))  # first reply token lost
# (regex widened after the untuned count by "token after", the name given after the fixes: right, not a misname)
mistake(S, r"marker|<assistant>|special|either|shift|token after")(sft_with(keep="either"))  # trains on <user>/...


@mistake(S, r"in place|clone|view|\bx\b|modif")
def sft_no_clone(ids, is_assistant):
    x, y = ids[:-1], ids[1:]  # two views of ids: writing into y writes into ids, and so into x
    y[~is_assistant[1:]] = IGNORE
    return x, y


@mistake(S, both(r"in place|clone|view|\bx\b|modif", FILL))
def sft_no_clone_minus_100(ids, is_assistant):
    x, y = ids[:-1], ids[1:]
    y[~is_assistant[1:]] = -100
    return x, y


@mistake(S, r"not shifted|shift|same position|ids\[:-1\]|labels")
def sft_hf_labels_unshifted(ids, is_assistant):
    # "the model shifts the labels internally" (true of HF's LMHeadModel, not of mingpt's GPT)
    labels = torch.where(is_assistant, ids, torch.full_like(ids, IGNORE))
    return ids[:-1], labels[:-1]


@mistake(S, r"shape|length|T-1|\(T,\)|size|ids\[:-1\]")
def sft_full_length(ids, is_assistant):
    # HF style: input_ids and labels both of length T, the last label padded
    y = torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], IGNORE))
    return ids, torch.cat([y, y.new_full((1,), IGNORE)])


@mistake(S, r"shape|size|length|is_assistant\[1:\]|slice|mask")
def sft_mask_not_sliced(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant] = IGNORE  # a (T,) mask on a (T-1,) tensor: IndexError
    return ids[:-1], y


@mistake(S, r"first (assistant|reply|turn)|after the first|user'?s? (later|second)|later turn|every token after|"
             r"everything after|turn|multi")
def sft_completion_only_first(ids, is_assistant):
    # TRL's DataCollatorForCompletionOnlyLM without an instruction template: everything after the first response
    # starts is trained on, the user's later turns included (it shows only on a multi-turn conversation)
    y = ids[1:].clone()
    start = int(is_assistant.nonzero()[0])
    y[: start - 1] = IGNORE
    return ids[:-1], y


@mistake(S, r"last (assistant|reply|turn)|only the last|earlier turn|turn|multi")
def sft_last_turn_only(ids, is_assistant):
    # "train on the final answer only": the earlier assistant turns are masked (shows only on multi-turn)
    y = torch.full_like(ids[1:], IGNORE)
    flips = (is_assistant[1:] & ~is_assistant[:-1]).nonzero()
    start = int(flips[-1]) + 1  # index in ids of the last reply's first token
    y[start - 1:] = ids[start:]
    return ids[:-1], y


@mistake(S, r"end|<e>|stop|last token")
def sft_no_end(ids, is_assistant):
    # "the end token is template, not content": the reply's END is masked, so the model never learns to stop
    y = ids[1:].clone()
    y[~is_assistant[1:] | (ids[1:] == ids[-1])] = IGNORE
    return ids[:-1], y


@valid(S)
def sft_labels_then_shift(ids, is_assistant):
    labels = torch.where(is_assistant, ids, torch.full_like(ids, IGNORE))  # mask first, then shift both together
    return ids[:-1], labels[1:]


@valid(S)
def sft_masked_fill(ids, is_assistant):
    return ids[:-1].clone(), ids[1:].masked_fill(~is_assistant[1:], IGNORE)


@valid(S)
def sft_loop(ids, is_assistant):
    ids_l, m = ids.tolist(), is_assistant.tolist()
    y = [ids_l[t + 1] if m[t + 1] else IGNORE for t in range(len(ids_l) - 1)]
    return torch.tensor(ids_l[:-1]), torch.tensor(y)


# ------------------------------------------------------------------------------------------ LoRA
L = ex.check_lora_layer
SCALE = r"scal|alpha|rank|\br\b"


def lora_with(scale=lambda a, r: a / r, init="ok", freeze=True, bias=True, merge_scale=None, merge_add=True,
              merge_flag=True, forward_checks_flag=True, out_dropout=0.0, name="LoRA"):
    """The notebook's skeleton (nn.Parameter A and B, `self.base`), with the slips."""
    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = scale(alpha, r)
        self.merge_scale = self.scale if merge_scale is None else merge_scale(alpha, r)
        a_init, b_init = {"ok": ("kaiming", "zero"), "both_random": ("kaiming", "kaiming"),
                          "swapped": ("zero", "kaiming"), "both_zero": ("zero", "zero")}[init]
        for p, how in ((self.lora_A, a_init), (self.lora_B, b_init)):
            nn.init.kaiming_uniform_(p, a=math.sqrt(5)) if how == "kaiming" else nn.init.zeros_(p)
        self.dropout = nn.Dropout(out_dropout)
        if freeze:
            base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x) if bias else x @ self.base.weight.T
        if self.merged and forward_checks_flag:
            return out
        return out + self.dropout((x @ self.lora_A.T @ self.lora_B.T) * self.scale)

    @torch.no_grad()
    def merge(self):
        delta = self.merge_scale * (self.lora_B @ self.lora_A)
        if merge_add:
            self.base.weight += delta
        else:
            self.base.weight.copy_(delta)  # "the merged weight is the LoRA product"
        self.merged = merge_flag

    return type(name, (nn.Module,), {"__init__": __init__, "forward": forward, "merge": merge})


mistake(L, SCALE)(lora_with(scale=lambda a, r: a, name="ScaleAlpha"))
mistake(L, r"sqrt|rsLoRA|" + SCALE)(lora_with(scale=lambda a, r: a / math.sqrt(r), name="ScaleRsLoRA"))
mistake(L, SCALE)(lora_with(scale=lambda a, r: r / a, name="ScaleInverted"))
mistake(L, SCALE + r"|hard-?coded|2")(lora_with(scale=lambda a, r: 2.0, name="ScaleHardcoded2"))  # 16 / 8
mistake(L, SCALE + r"|integer|floor|//")(lora_with(scale=lambda a, r: a // r, name="ScaleFloorDiv"))
mistake(L, r"B .*non-?zero|B .*zero|B must start|init")(lora_with(init="both_random", name="BothRandom"))
mistake(L, r"swap|A .*zero|B .*random|init")(lora_with(init="swapped", name="InitSwapped"))
mistake(L, r"A .*zero|both .*zero|never learn|gradient|init")(lora_with(init="both_zero", name="BothZero"))
mistake(L, r"frozen|freeze|requires_grad|base")(lora_with(freeze=False, name="NotFrozen"))
mistake(L, r"bias")(lora_with(bias=False, name="NoBias"))
mistake(L, r"merge.*(scal|alpha)|(scal|alpha).*merge")(lora_with(merge_scale=lambda a, r: 1.0, name="MergeNoScale"))
mistake(L, r"twice|again|merged|flag")(lora_with(merge_flag=False, name="MergeNoFlag"))
mistake(L, r"twice|again|merged|flag")(lora_with(forward_checks_flag=False, name="ForwardIgnoresFlag"))
mistake(L, r"replac|overwr|instead of add|\+=|base weight|W \+|copy")(lora_with(merge_add=False, name="MergeReplaces"))
mistake(L, r"dropout|random|determin")(lora_with(out_dropout=0.1, name="OutputDropout"))
mistake(L, both(SCALE, r"frozen|freeze|requires_grad|base"))(
    lora_with(scale=lambda a, r: a, freeze=False, name="ScaleAlphaNotFrozen"))
# (regex corrected after the untuned count: the merge here is the exercise's, alpha / r, so the one mistake is the
# forward's scale; the row was unnamed either way)
mistake(L, r"sqrt|rsLoRA")(
    lora_with(scale=lambda a, r: a / math.sqrt(r), merge_scale=lambda a, r: a / r, name="RsForwardPlainMerge"))


class LoRATransposed(nn.Module):
    """A (in, r) and B (r, out): x @ A @ B computes the same forward, but the shapes are not LoRA's (nor PEFT's)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = nn.Parameter(torch.empty(base.in_features, r))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + x @ self.lora_A @ self.lora_B * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_A @ self.lora_B).T
        self.merged = True


mistake(L, r"shape|transpos|\(r, in\)|\(out, r\)")(LoRATransposed)


class LoRAWrongOrder(LoRATransposed):
    """The notebook's shapes, but the product written in the paper's order W + B A as x @ B.T @ A.T: a crash."""

    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + x @ self.lora_B.T @ self.lora_A.T * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A)
        self.merged = True


mistake(L, r"order|B A|A.T|shape|mat1|transpos")(LoRAWrongOrder)


class LoRAPlainTensors(LoRAWrongOrder):
    """A and B kept as plain tensors: not parameters, so the optimizer never sees them."""

    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = torch.empty(r, base.in_features)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.zeros(base.out_features, r)
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + x @ self.lora_A.T @ self.lora_B.T * self.scale


mistake(L, r"trainable|Parameter|regist|requires_grad")(LoRAPlainTensors)


@mistake(L, r"no_grad|gradient|leaf|requires_grad")
class LoRAMergeWithGrad(LoRAPlainTensors):
    """merge() without torch.no_grad(): the in-place add of a tensor that requires grad into the frozen weight."""

    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.requires_grad_(False)

    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A)
        self.merged = True


@valid(L)
class LoRAWithLinears(nn.Module):
    """PEFT's layout: A and B as bias-free nn.Linear layers, the product taken through the r channels."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scaling, self.merged = base, alpha / r, False
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        for p in self.base.parameters():
            p.requires_grad = False

    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.lora_B(self.lora_A(x)) * self.scaling

    def merge(self):
        with torch.no_grad():
            self.base.weight.add_(self.lora_B.weight @ self.lora_A.weight, alpha=self.scaling)
        self.merged = True


@valid(L)
class LoRAGaussianMergeZeroesB(nn.Module):
    """The paper's Gaussian A; merge() folds the product in and then zeroes B instead of keeping a flag."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.alpha, self.r = base, alpha, r
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / r)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    def forward(self, x):
        return F.linear(x, self.base.weight, self.base.bias) + F.linear(F.linear(x, self.lora_A), self.lora_B) \
            * (self.alpha / self.r)

    @torch.no_grad()
    def merge(self):
        self.base.weight.data += (self.alpha / self.r) * torch.einsum("or,ri->oi", self.lora_B, self.lora_A)
        self.lora_B.zero_()


@valid(L)
class LoRADeltaWeight(nn.Module):
    """Forward through the full delta matrix (out, in), as a merged layer would compute it."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale, self.merged = base, alpha / r, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.requires_grad_(False)

    def delta(self):
        return self.scale * self.lora_B @ self.lora_A

    def forward(self, x):
        w = self.base.weight if self.merged else self.base.weight + self.delta()
        return F.linear(x, w, self.base.bias)

    @torch.no_grad()
    def merge(self):
        self.base.weight.copy_(self.base.weight + self.delta())
        self.merged = True


# ------------------------------------------------------------------------------------------ DPO
D = ex.check_dpo_loss
MEAN = r"mean|average|length|per token"
REF = r"reference|ref"
SWAP = r"swap|chosen|rejected|sign|reversed"


def row_logps(model, idx, targets, reduce="sum", shift_again=False, mask_value=IGNORE, log=True, dim=-1):
    logits = model(idx)[0]
    if shift_again:  # TRL's get_batch_logps: labels = labels[:, 1:], logits = logits[:, :-1] (its labels are ids)
        logits, targets = logits[:, :-1], targets[:, 1:]
    mask = targets != mask_value
    targets = torch.where(mask, targets, torch.zeros_like(targets))
    lp = F.log_softmax(logits, dim=dim) if log else F.softmax(logits, dim=dim)
    token = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
    return token.sum(-1) / mask.sum(-1) if reduce == "mean" else token.sum(-1)


def dpo_with(reduce="sum", ref_sign="ok", swap=False, loss="logsigmoid", beta_where="inside", no_grad_ref=True,
             pair_reduce="mean", shift_again=False, mask_value=IGNORE, dim=-1):
    def f(policy, reference, x, y, beta):
        B, _, T = x.shape
        idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
        pi = row_logps(policy, idx, targets, reduce, shift_again, mask_value, dim=dim).view(B, 2)
        with torch.no_grad() if no_grad_ref else torch.enable_grad():
            ref = row_logps(reference, idx, targets, reduce, shift_again, mask_value, dim=dim).view(B, 2)
        c, r = (1, 0) if swap else (0, 1)
        if ref_sign == "ok":
            margin = (pi[:, c] - ref[:, c]) - (pi[:, r] - ref[:, r])
        elif ref_sign == "flipped":  # the reference's log-ratio added instead of subtracted
            margin = (pi[:, c] - pi[:, r]) + (ref[:, c] - ref[:, r])
        else:  # "none": no reference at all
            margin = pi[:, c] - pi[:, r]
        if beta_where == "inside":
            z = beta * margin
        elif beta_where == "policy_only":  # beta on the policy's terms, the reference's unscaled
            z = beta * (pi[:, c] - pi[:, r]) - (ref[:, c] - ref[:, r])
        else:  # "divide": beta as a temperature
            z = margin / beta
        losses = {"logsigmoid": -F.logsigmoid(z), "sigmoid": -torch.sigmoid(z),
                  "one_minus_sigmoid": 1 - torch.sigmoid(z), "ipo": (margin - 1 / (2 * beta)) ** 2,
                  "hinge": torch.relu(1 - z)}[loss]
        out = losses.mean() if pair_reduce == "mean" else losses.sum()
        return beta * out if beta_where == "outside" else out
    return f


mistake(D, REF + r"|sign")(dpo_with(ref_sign="flipped"))
mistake(D, MEAN)(dpo_with(reduce="mean"))
mistake(D, r"sigmoid|log")(dpo_with(loss="sigmoid"))
mistake(D, r"sigmoid|log")(dpo_with(loss="one_minus_sigmoid"))
mistake(D, r"beta")(dpo_with(beta_where="policy_only"))
mistake(D, r"beta")(dpo_with(beta_where="divide"))
mistake(D, SWAP)(dpo_with(swap=True))
mistake(D, r"no reference|without (the )?reference|reference")(dpo_with(ref_sign="none"))
mistake(D, r"gradient|no_grad|frozen|detach")(dpo_with(no_grad_ref=False))
mistake(D, r"sum|mean over pairs|pairs|batch")(dpo_with(pair_reduce="sum"))
mistake(D, r"shift|off by one|twice|again")(dpo_with(shift_again=True))
mistake(D, r"-100|ignore|mask|-1\b")(dpo_with(mask_value=-100))  # gather at -1: a crash
mistake(D, r"IPO|squared|loss type")(dpo_with(loss="ipo"))
mistake(D, r"hinge|relu|loss type")(dpo_with(loss="hinge"))
mistake(D, r"dim|axis|softmax over")(dpo_with(dim=1))
mistake(D, both(MEAN, r"sum|pairs|batch"))(dpo_with(reduce="mean", pair_reduce="sum"))
mistake(D, both(r"sigmoid|log", REF + "|sign"))(dpo_with(loss="sigmoid", ref_sign="flipped"))
mistake(D, both(SWAP, r"gradient|no_grad|frozen|detach"))(dpo_with(swap=True, no_grad_ref=False))


@mistake(D, r"prompt|padding|mask|every token|all tokens|x\b")
def dpo_targets_from_x(policy, reference, x, y, beta):
    # y ignored: the targets read off x, shifted by one, over the whole row (prompt and padding included)
    B, _, T = x.shape
    idx = x.reshape(2 * B, T)

    def logps(model):
        lp = F.log_softmax(model(idx)[0][:, :-1], -1)
        return lp.gather(-1, idx[:, 1:, None]).squeeze(-1).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(D, r"mean|average|batch|per (row|sequence|pair)|cross.?entropy|model's (own )?loss")
def dpo_model_loss(policy, reference, x, y, beta):
    # the model's own loss as "minus the log-prob": one mean over every answer token of all the chosen rows
    pc = -policy(x[:, 0], y[:, 0])[1]
    pr = -policy(x[:, 1], y[:, 1])[1]
    with torch.no_grad():
        rc = -reference(x[:, 0], y[:, 0])[1]
        rr = -reference(x[:, 1], y[:, 1])[1]
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr)))


@mistake(D, r"ignore|-100|-1\b|cross.?entropy|target")
def dpo_cross_entropy_default_ignore(policy, reference, x, y, beta):
    B, _, T = x.shape
    idx, t = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):  # cross_entropy's default ignore_index is -100: a target of -1 raises
        return -F.cross_entropy(model(idx)[0].transpose(1, 2), t, reduction="none").sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@valid(D)
def dpo_cross_entropy(policy, reference, x, y, beta):
    B, _, T = x.shape
    idx, t = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        logits = model(idx)[0]
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), t.reshape(-1), ignore_index=-1, reduction="none")
        return -nll.view(2 * B, T).sum(-1).view(B, 2)

    pi, ref = logps(policy), logps(reference).detach()  # detached: the reference is never in the graph
    chosen = beta * (pi[:, 0] - ref[:, 0])
    rejected = beta * (pi[:, 1] - ref[:, 1])
    return F.softplus(rejected - chosen).mean()  # -log sigmoid(z) = softplus(-z)


@valid(D)
def dpo_per_pair_loop(policy, reference, x, y, beta):
    losses = []
    for b in range(x.size(0)):
        lp = {}
        for name, model in (("pi", policy), ("ref", reference)):
            with torch.set_grad_enabled(model is policy):
                logp = torch.log(torch.softmax(model(x[b])[0], dim=-1))  # log of softmax: fine at these sizes
            for row in (0, 1):
                keep = y[b, row] != -1
                lp[name, row] = logp[row][keep].gather(-1, y[b, row][keep][:, None]).sum()
        z = beta * ((lp["pi", 0] - lp["pi", 1]) - (lp["ref", 0] - lp["ref", 1]))
        losses.append(-torch.log(torch.sigmoid(z)))
    return torch.stack(losses).mean()


# ------------------------------------------------------------------------------------------ GRPO advantages
G = ex.check_group_advantages
STD = r"unbiased|biased|population|std|G ?- ?1|n ?- ?1|correction|ddof"
EPS = r"eps|nan|zero|equal"
GROUP = r"group|batch|whole|all (the )?(prompts|rewards)|every prompt|dim|axis"


def adv_with(std="unbiased", eps_where="outside", over="group", ignore_flag=None, base="mean", eps=1e-4):
    def f(rewards, normalize_std=True):
        dim = (0, 1) if over == "batch" else 1
        centre = {"mean": rewards.mean(dim=dim, keepdim=True), "max": rewards.amax(dim=dim, keepdim=True),
                  "min": rewards.amin(dim=dim, keepdim=True)}[base]
        a = rewards - centre
        do_std = normalize_std if ignore_flag is None else ignore_flag
        if not do_std:
            return a
        sdim = (0, 1) if over in ("batch", "batch_std") else 1
        if std == "unbiased":
            s = rewards.std(dim=sdim, keepdim=True)
        elif std == "population":
            s = rewards.std(dim=sdim, keepdim=True, unbiased=False)
        elif std == "variance":
            s = rewards.var(dim=sdim, keepdim=True)
        else:  # "range": max - min
            s = rewards.amax(dim=sdim, keepdim=True) - rewards.amin(dim=sdim, keepdim=True)
        if eps_where == "outside":
            return a / (s + eps)
        if eps_where == "sqrt":  # as BatchNorm: sqrt(var + eps)
            return a / torch.sqrt(s ** 2 + eps)
        if eps_where == "precedence":  # a / s + eps: the parentheses forgotten
            return a / s + eps
        return a / s  # "none"
    return f


mistake(G, STD)(adv_with(std="population"))
# (re-judged after the untuned count, where it was not caught: the checker documents any small eps, or a clamp of
# the std, as valid (TOL), and sqrt(var + eps) is one more way to keep 0 / 0 away: a valid alternative, as below)
valid(G)(adv_with(eps_where="sqrt"))
mistake(G, GROUP)(adv_with(over="batch"))
mistake(G, GROUP + r"|scale")(adv_with(over="batch_std"))  # TRL's scale_rewards="batch": group mean, batch std
mistake(G, r"normali[sz]e_std|std|not divided|ignor|flag")(adv_with(ignore_flag=False))
mistake(G, r"normali[sz]e_std|std|always|ignor|flag")(adv_with(ignore_flag=True))
mistake(G, r"max|best|mean")(adv_with(base="max"))
mistake(G, r"min|worst|mean")(adv_with(base="min"))
mistake(G, EPS)(adv_with(eps_where="none"))  # all-equal rewards: 0 / 0
mistake(G, r"eps|parenthes|precedence|nan")(adv_with(eps_where="precedence"))
mistake(G, r"var|square|std")(adv_with(std="variance"))
mistake(G, r"range|max|min|std")(adv_with(std="range"))
mistake(G, STD)(adv_with(std="population", eps_where="sqrt"))  # one mistake (see the valid eps above)
mistake(G, both(GROUP, EPS))(adv_with(over="batch", eps_where="none"))


@mistake(G, r"keepdim|broadcast|shape|dim|axis|group")
def adv_no_keepdim(rewards, normalize_std=True):
    # mean(dim=1) is (P,): against (P, G) it broadcasts along the wrong axis (P == G) or raises (P != G)
    a = rewards - rewards.mean(dim=1)
    return a / (rewards.std(dim=1) + 1e-4) if normalize_std else a


@mistake(G, r"dim|axis|prompts|group|column")
def adv_wrong_axis(rewards, normalize_std=True):
    # the mean over the prompts (dim=0): each answer compared with the same slot of the other prompts
    a = rewards - rewards.mean(dim=0, keepdim=True)
    return a / (rewards.std(dim=0, keepdim=True) + 1e-4) if normalize_std else a


@mistake(G, r"repeat|interleave|group|order|assign")
def adv_trl_repeat(rewards, normalize_std=True):
    # TRL's flattened layout, with repeat where repeat_interleave is needed: answer i gets group (i % P)'s stats
    P, Gs = rewards.shape
    flat = rewards.reshape(-1)
    mean = flat.view(P, Gs).mean(dim=1).repeat(Gs)
    std = flat.view(P, Gs).std(dim=1).repeat(Gs)
    a = flat - mean
    if normalize_std:
        a = a / (std + 1e-4)
    return a.view(P, Gs)


@mistake(G, r"shape|flat|\(P, G\)|view|size")
def adv_flat(rewards, normalize_std=True):
    # TRL returns advantages flattened, one per completion: the (P, G) shape is lost
    a = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        a = a / (rewards.std(dim=1, keepdim=True) + 1e-4)
    return a.reshape(-1)


@mistake(G, STD + r"|binary|bernoulli")
def adv_bernoulli_std(rewards, normalize_std=True):
    # "rewards are 0/1, so std = sqrt(p (1 - p))": the population std for 0/1 rewards only, wrong for the others
    p = rewards.mean(dim=1, keepdim=True)
    a = rewards - p
    return a / (torch.sqrt(p * (1 - p)) + 1e-4) if normalize_std else a


@valid(G)
def adv_std_mean(rewards, normalize_std=True):
    std, mean = torch.std_mean(rewards, dim=-1, keepdim=True)
    return (rewards - mean) / (std + 1e-4) if normalize_std else rewards - mean


@valid(G)
def adv_loop_manual(rewards, normalize_std=True):
    out = torch.empty_like(rewards)
    for i, group in enumerate(rewards):
        m = group.sum() / len(group)
        s = torch.sqrt(((group - m) ** 2).sum() / (len(group) - 1))  # Bessel's correction by hand
        out[i] = (group - m) / (s + 1e-4) if normalize_std else group - m
    return out


@valid(G)
def adv_where_equal(rewards, normalize_std=True):
    a = rewards - rewards.mean(1, keepdim=True)
    if not normalize_std:
        return a
    s = rewards.std(1, keepdim=True)
    return torch.where(s > 0, a / (s + 1e-4), torch.zeros_like(a))  # equal groups: zeros, explicitly
