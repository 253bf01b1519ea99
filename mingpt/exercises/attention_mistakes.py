"""
The table of named attention mistakes: the reference computation with one knob per classic slip (`_attend`), and
the variants check_attention tries (attention.py), each a property, a setting of the knobs, an explanation and a
hint.

The one idea: every row is the *reference* with one keyword changed, so the table stays readable (a row says what
is different, not how to compute attention again) and two rows can be applied together (compose.py): a student
who forgets the scaling *and* the output projection is told both, and only when the pair reproduces the output on
every tested input. The masks form a family by width: a sliding window that keeps the last w keys is a row for
every w that a test sequence can show (one `mask` knob, so a window never pairs with another mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import Variant
from mingpt.exercises.compose import knob, pairs

__all__ = ["variants", "heads_not_transposed"]


def _attend(ref, x, scale=None, softmax_dim=-1, mask="causal", split="heads", merge="transpose", project=True,
            swap_qk=False, order="qkv", after_softmax=1.0, nh=None, proj_bias=True, out_relu=False,
            plus_one=False, fill=float("-inf"), normalise="softmax", proj_xw=False, layout="thirds", qkv_bias=True):
    """The reference computation with one knob per classic mistake (defaults: the correct attention)."""
    B, T, C = x.shape
    nh = nh or ref.n_head
    hs = C // nh
    qkv = ref.c_attn(x) if qkv_bias else F.linear(x, ref.c_attn.weight)  # no bias: Llama's projections have none
    thirds = qkv.split(C, dim=2)  # "thirds": [q | k | v], each C wide, as GPT-2's c_attn is laid out
    if layout == "per_head":  # read as each head's [q | k | v] block (Megatron's fused layout): (B, T, nh, 3 * hs)
        thirds = [t.reshape(B, T, C) for t in qkv.view(B, T, ref.n_head, 3 * (C // ref.n_head)).split(C // ref.n_head,
                                                                                                     dim=-1)]
    elif layout == "per_channel":  # read as (C, 3): q, k, v interleaved channel by channel
        thirds = qkv.view(B, T, C, 3).unbind(-1)
    parts = dict(zip("qkv", thirds), x=x)
    q, k, v = (parts[name] for name in order)  # order: which third of c_attn is q, k, v ("qkx": v = x itself)

    def heads(t):
        if split == "heads":  # (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs)
            return t.view(B, T, nh, hs).transpose(1, 2)
        if split == "hs_first":  # channels read as (hs, nh): head h gets channels h, h+nh, ...
            return t.view(B, T, hs, nh).permute(0, 3, 1, 2)
        return t.reshape(B, nh, T, hs)  # 'reshape': a view without the transpose, mixing time and channels

    q, k, v = heads(q), heads(k), heads(v)
    if swap_qk:  # k @ q^T: the scores transposed, query and key roles exchanged
        q, k = k, q
    att = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hs) if scale is None else scale)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "causal":
        att = att.masked_fill(~allowed, fill)  # fill: -inf, or a finite number (large_scores.py)
    elif isinstance(mask, int):  # a sliding window of `mask` keys: those more than mask - 1 positions back hidden too
        att = att.masked_fill(~(allowed & torch.ones(T, T, dtype=torch.bool).triu(1 - mask)), float("-inf"))
    elif mask == "inverted_diagonal":  # a boolean mask of the wrong polarity, triu(): the diagonal and future kept
        att = att.masked_fill(~allowed.T, float("-inf"))
    elif mask == "next":  # tril(diagonal=1): the mask off by one, each query also sees the next key
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(1), float("-inf"))
    elif mask == "strict":  # the diagonal masked too: a position cannot see itself
        att = att.masked_fill(~allowed.tril(-1), float("-inf"))
    elif mask == "inverted":  # the kept triangle masked: each position sees only later ones (the last sees none)
        att = att.masked_fill(allowed, float("-inf"))
    elif mask == "zero":  # masked scores set to 0 instead of -inf
        att = att.masked_fill(~allowed, 0.0)
    elif mask == "after_softmax":  # softmax over all keys, then the future zeroed (rows no longer sum to 1)
        att = F.softmax(att, dim=-1).masked_fill(~allowed, 0.0)
    if plus_one:  # 1 added to the softmax's denominator: exact, exp(s) / (1 + sum exp(s)), or after the max shift
        e = (att - att.amax(-1, keepdim=True)).exp()
        one = (-att.amax(-1, keepdim=True)).exp() if plus_one == "exact" else 1.0
        att = e / (e.sum(-1, keepdim=True) + one)
    elif normalise == "naive":  # exp / sum, no max subtracted: overflows on large scores (large_scores.py)
        att = att.exp() / att.exp().sum(softmax_dim, keepdim=True)
    elif mask != "after_softmax":
        att = F.softmax(att, dim=softmax_dim)
    y = att * after_softmax @ v  # (B, nh, T, hs)
    if merge == "transpose":
        y = y.transpose(1, 2).reshape(B, T, C)
    elif merge == "mean":  # every head replaced by the heads' average
        y = y.mean(1, keepdim=True).expand(-1, nh, -1, -1).transpose(1, 2).reshape(B, T, C)
    elif merge == "hs_first":
        y = y.permute(0, 2, 3, 1).reshape(B, T, C)
    else:  # 'reshape' without moving the head axis next to the channels
        y = y.reshape(B, T, C)
    if not project:
        return y
    if proj_xw:  # Keras' x @ W on a Linear's (out, in) weight: the projection's transpose
        y = y @ ref.c_proj.weight + (ref.c_proj.bias if proj_bias else 0)
    else:
        y = ref.c_proj(y) if proj_bias else F.linear(y, ref.c_proj.weight)
    return F.relu(y) if out_relu else y


SPLIT = ("heads split in the wrong order", "q, k, v of shape (B, T, C) were reshaped to (B, nh, T, hs) directly, which "
         "cuts the sequence into pieces instead of cutting each position's channels into heads",
         "split the channels first, (B, T, C) -> (B, T, nh, hs), then swap the T and nh axes")


def variants(ref, hs: int) -> list[Variant]:
    """Every single mistake (knob rows first), then every two of them at once (compose.pairs)."""
    root, nh = math.sqrt(hs), ref.n_head
    base = lambda x, **knobs: _attend(ref, x, **knobs)  # noqa: E731
    hs_first = (f"Your head 0 reads channels 0, {nh}, {2 * nh}, ... (viewed as (hs, nh)) instead of the contiguous "
                f"channels 0..{hs - 1}, so GPT-2's weights no longer line up with your heads.",
                "the channel axis splits as (nh, hs): each head owns a contiguous slice of hs channels")
    singles = [
        knob(base, "missing output projection", dict(project=False),
             "Your output equals the heads' outputs side by side, before the output projection c_proj.",
             "after re-assembling the heads into (B, T, C), attention ends with one more Linear layer"),
        knob(base, "heads merged in the wrong order", dict(merge="reshape"),
             "After attention, y has shape (B, nh, T, hs); reshaping it straight to (B, T, C) mixes positions and "
             "heads: the right numbers end up in the wrong places.",
             "bring the head axis next to the channel axis before the reshape (and mind .contiguous())"),
        knob(base, "every head's output replaced by the heads' mean", dict(merge="mean"),
             "Each head's output keeps its own hs channels, side by side; yours averages the heads and repeats the "
             "average, so the heads no longer say different things.", "y.transpose(1, 2).reshape(B, T, C), no mean"),
        knob(base, SPLIT[0], dict(split="reshape", merge="reshape"), SPLIT[1] + ".", SPLIT[2]),
        knob(base, SPLIT[0], dict(split="reshape", merge="transpose"), SPLIT[1] + " (the merge back is right).",
             SPLIT[2]),
        knob(base, SPLIT[0], dict(split="hs_first", merge="hs_first"), *hs_first),
        knob(base, SPLIT[0], dict(split="hs_first", merge="transpose"), hs_first[0] + " (The merge back is right.)",
             hs_first[1]),
        knob(base, "queries and keys swapped (k @ q^T)", dict(swap_qk=True),
             "scores[t, j] is how much query t attends to key j: q_t . k_j, i.e. q @ k^T. Yours computes k @ q^T, the "
             "transpose, so each position weighs the others by how they would attend to it. (Taking q and k from "
             "each other's third of c_attn, k, q, v = split(...), computes exactly the same.)",
             "q @ k.transpose(-2, -1), with q, k, v = self.c_attn(x).split(C, dim=2) in that order"),
        knob(base, "softmax over the wrong dimension", dict(softmax_dim=-2),
             "The attention weights of each query must sum to 1 over the *keys* (the last axis); yours are "
             "normalised over the queries.", "which axis of (B, nh, T_query, T_key) holds the keys?"),
        knob(base, "masked scores set to 0 instead of -inf", dict(mask="zero"),
             "A score of 0 still becomes exp(0) = 1 in the softmax, so future positions keep a share of the "
             "attention: position t sees the future.",
             "a masked score must give probability exactly 0 after the softmax"),
        knob(base, "mask applied after the softmax", dict(mask="after_softmax"),
             "The softmax ran over all keys, future included, and the future was zeroed afterwards, so each row of "
             "weights sums to less than 1.", "mask the scores before the softmax, so it normalises over the allowed "
             "keys only"),
        knob(base, "mask of the wrong polarity: the diagonal and the future kept, the past hidden",
             dict(mask="inverted_diagonal"), "A boolean mask keeps the entries that are True (SDPA's attn_mask); "
             "triu() keeps each key j >= t, so query t sees itself and the future, never the past.",
             "keep the lower triangle: torch.ones(T, T, dtype=torch.bool).tril()"),
        knob(base, "mask off by one (each query also sees the next key)", dict(mask="next"),
             "Query t may attend to keys 0..t; your mask keeps the diagonal above it too (tril(diagonal=1)), so "
             "each position sees one token of the future.", "torch.tril(torch.ones(T, T)), diagonal 0"),
        knob(base, "no causal mask", dict(mask="none"), "Nothing stops position t from attending to positions after t "
             "(a masked_fill whose result is not assigned does this too: it returns a new tensor).",
             "hide every key j > t from query t before the softmax: att = att.masked_fill(...), or masked_fill_"),
        knob(base, "scaling applied twice (1/hs instead of 1/sqrt(hs))", dict(scale=1 / hs),
             f"Your scores are multiplied by 1/hs = {1 / hs:.4g}; the reference multiplies by 1/sqrt(hs) = "
             f"{1 / root:.4g}.", "divide by the square root of the head size, once"),
        knob(base, "missing 1/sqrt(head_size) scaling", dict(scale=1.0),
             f"Your scores are not scaled; the reference multiplies q @ k^T by 1/sqrt(hs) = {1 / root:.4g} "
             f"(hs = {hs}).", "without the factor the softmax saturates as hs grows"),
        knob(base, "scaling applied after the softmax", dict(scale=1.0, after_softmax=1 / root),
             "Yours divides the attention *weights* by sqrt(hs) after the softmax, so they no longer sum to 1; the "
             "scaling belongs to the scores, before the softmax.", "(q @ k^T) / sqrt(hs), then softmax"),
        knob(base, "one head of size C instead of n_head heads", dict(nh=1),
             f"Your attention is a single head over all {hs * nh} channels; the reference splits them into n_head = "
             f"{nh} heads of hs = {hs}.", "view (B, T, C) as (B, T, n_head, hs)"),
        *[knob(base, f"{d} heads instead of config.n_head = {nh} (a head count typed in?)", dict(nh=d),
               f"Your attention splits the {hs * nh} channels into {d} heads of {hs * nh // d}; the config asks for "
               f"n_head = {nh} heads of hs = {hs}.", "take the head count from config.n_head, not a number")
          for d in range(2, hs * nh + 1) if (hs * nh) % d == 0 and d != nh],
        *[knob(base, f"the {name} used as values (v = {name[0]}, a copied line)", dict(order="qk" + name[0]),
               f"v is the last third of c_attn(x), its own projection; yours attends over the {name} instead.",
               "q, k, v = self.c_attn(x).split(C, dim=2): three different tensors") for name in ("keys", "queries")],
        *[knob(base, f"q, k, v taken from the wrong thirds of c_attn (yours: {', '.join(order)})", dict(order=order),
               "c_attn(x) holds q, k and v side by side, in that order: split(C, dim=2) gives q first, then k, then "
               f"v. Yours uses the thirds as {', '.join(order)}.", "q, k, v = self.c_attn(x).split(C, dim=2)")
          for order in ("qvk", "kqv", "kvq", "vqk", "vkq")],
        *[knob(base, f"q, k, v read interleaved {how} from c_attn's output, not as three blocks of C",
               dict(layout=layout), "c_attn(x) holds q, k and v as three consecutive blocks of C channels "
               f"([q | k | v], GPT-2's layout); yours reads them {how} ({shape}), so every head gets a mix of "
               "query, key and value channels.", "q, k, v = self.c_attn(x).split(C, dim=2), then split each into "
               "heads") for layout, how, shape in (("per_head", "per head", "a view as (B, T, nh, 3 * hs)"),
                                                   ("per_channel", "channel by channel", "a view as (B, T, C, 3)"))],
        knob(base, "values taken from x, not from c_attn", dict(order="qkx"),
             "v is the last third of c_attn(x), a learned projection; yours averages the input x itself.",
             "q, k, v = self.c_attn(x).split(C, dim=2)"),
        knob(base, "c_attn without its bias (q, k, v projected by the weight alone)", dict(qkv_bias=False),
             "c_attn is a Linear layer with a bias (GPT-2's has one; Llama's projections have none); yours multiplies "
             "by its weight alone, so q, k and v all lose their offsets.", "self.c_attn(x)"),
        knob(base, "c_proj without its bias", dict(proj_bias=False),
             "The output projection is a Linear layer with a bias; yours multiplies by its weight alone.",
             "self.c_proj(y)"),
        knob(base, "c_proj's weight used as x @ W (an nn.Linear stores it (out, in): transposed)", dict(proj_xw=True),
             "nn.Linear keeps its weight as (out_features, in_features) and computes x @ W.T + b; yours multiplies by "
             "the weight itself, the transpose (the layout of Keras' Dense or HF's Conv1D, not of nn.Linear).",
             "self.c_proj(y), or y @ self.c_proj.weight.T + self.c_proj.bias"),
        knob(base, "ReLU applied to the attention's output", dict(out_relu=True),
             "Attention ends with the output projection, whose result is added to the residual stream as it is; "
             "yours passes it through a ReLU.", "return self.c_proj(y), no activation"),
        *[knob(base, "softmax with 1 added to its denominator", dict(plus_one=where),
               "The weights are exp(s) / sum(exp(s)), summing to 1 over the allowed keys; yours divides by "
               f"{denominator} + 1, so each row sums to less than 1.", "F.softmax(att, dim=-1)")
          for where, denominator in (("exact", "sum(exp(s))"), ("shifted", "sum(exp(s - max s))"))],
        *[knob(base, f"attention limited to the last {w} key{'s' if w > 1 else ''} (a sliding-window mask)",
               dict(mask=w), f"Query t attends to every key 0..t; your mask also hides the keys more than {w - 1} "
               "positions back, as a sliding window does.", "hide only the future: keep the lower triangle, tril()")
          for w in range(1, 8)],
    ]
    # 1/sqrt(C) alone is named by attention._find_scale ("wrong scaling factor", any factor); it joins the pairs only.
    width = knob(base, "scaled by 1/sqrt(n_embd) instead of 1/sqrt(head_size)", dict(scale=1 / math.sqrt(nh * hs)),
                 "The scores are divided by the square root of the head size hs, not of the whole width C = nh * hs.",
                 "att / math.sqrt(hs)")
    return singles + pairs(base, singles + [width])


def heads_not_transposed(ref, x: torch.Tensor, error: BaseException, student) -> bool:
    """The student's forward raised `error` on x: True when it is the error of heads split with view(B, T, nh, hs)
    and never moved before the time axis, scores (B, T, nh, nh) meeting a (T, T) causal mask, *and* on a sequence of
    T = nh tokens (where that mask fits) the student's output is exactly that wiring's (merged back by a reshape)."""
    B, T, C = x.shape
    nh = ref.n_head
    if T == nh:
        return False
    scores, mask = torch.zeros(B, T, nh, nh), torch.ones(T, T, dtype=torch.bool).tril()
    messages = set()
    for attempt in (lambda: scores.masked_fill(~mask, 0.0), lambda: scores + mask, lambda: mask + scores):
        try:
            attempt()
        except Exception as e:
            messages.add((type(e), str(e)))
    if (type(error), str(error)) not in messages:
        return False
    square = torch.randn(B, nh, C, generator=torch.Generator().manual_seed(nh))
    q, k, v = (t.view(B, nh, nh, C // nh) for t in ref.c_attn(square).split(C, dim=2))  # (B, T=nh, nh, hs)
    att = (q @ k.transpose(-2, -1) / math.sqrt(C // nh)).masked_fill(~torch.ones(nh, nh, dtype=torch.bool).tril(),
                                                                      float("-inf"))
    want = ref.c_proj((F.softmax(att, dim=-1) @ v).reshape(B, nh, C))
    try:
        out = student(square)
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.shape == want.shape and torch.allclose(out, want, atol=1e-5)
