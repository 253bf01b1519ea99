"""
Checking a student's grouped-query attention (GQA), the last of Llama's four parts (modern.py has the other three).

The one idea, as in every checker (compare.py): rebuild each known mistake and name it only when it reproduces the
student's output on every tested input. Here most mistakes are one keyword of `_gqa`, the reference computation
with a knob per mistake, so two of them can also be rebuilt *together* (compose.py): a student who tiles the K/V
heads and forgets the scaling is told both. The mask knobs cover the family of wrong masks: a sliding window of
any width (the last w keys), the diagonal masked, and a boolean mask of the wrong polarity (SDPA's ``attn_mask``
keeps the entries that are True; ``triu`` there keeps the future and hides the past).

    from mingpt.exercises import check_gqa
    check_gqa(gqa_attention)     # gqa_attention(q (B, nh, T, hs), k, v (B, nkv, T, hs)) -> causal, (B, nh, T, hs)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, fail
from mingpt.exercises.compare import NOT_RECOGNISED, check_cases
from mingpt.exercises.families import Family, refine
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.gradients import function_gradient_problem
from mingpt.exercises.large_scores import large_score_slip
from mingpt.exercises.partial import localise

__all__ = ["check_gqa", "GQA_MISTAKES", "gqa_reference"]


def _rep(t, g, interleave=True):
    return t.repeat_interleave(g, dim=1) if interleave else t.repeat(1, g, 1, 1)


def _gqa(q, k, v, tile="", repeat=True, causal=True, scale_pow=0.5, softmax_dim=-1, diagonal=1, window=None,
         kv="kv", swap_qk=False, polarity=None, fill=float("-inf"), out_scale=False, mask_size=None, added=None,
         k_reshaped=False, nan_zeroed=False, sliced=False, post_mask=False, normalise=None):
    """The reference with one knob per mistake (defaults: correct). tile: which of "k", "v" are tiled (repeat) instead
    of repeated per group; kv: which tensors serve as keys and values ("kk": keys as values); fill: the masked scores'
    value; out_scale: 1/sqrt(hs) on the output instead of the scores; mask_size: a mask built for that length;
    added: a 0/1 mask *added* to the scores instead of -inf where hidden ("keep": 1 where a key may be seen, Hugging
    Face's attention_mask convention; "hide": 1 where it may not); k_reshaped: k reshaped to (.., hs, T) where a
    transpose was meant; nan_zeroed: the NaN a softmax over all -inf gives replaced by 0 (nan_to_num); sliced: the
    mask (of mask_size) cut to [:T, :T], right when mask_size >= T and an error when it is shorter; post_mask: the
    softmax taken over every key and the future's weights zeroed afterwards (not renormalised); normalise="naive":
    exp / sum without subtracting the row's maximum (large_scores.py)."""
    g = q.size(1) // k.size(1)
    src = {"k": k, "v": v}
    k, v = src[kv[0]], src[kv[1]]
    if repeat:
        k, v = _rep(k, g, "k" not in tile), _rep(v, g, "v" not in tile)
    if swap_qk:
        q, k = k, q
    T = q.size(-2)
    kt = k.reshape(*k.shape[:-2], k.size(-1), k.size(-2)) if k_reshaped else k.transpose(-2, -1)
    att = (q @ kt) / q.size(-1) ** scale_pow
    keep = torch.ones(mask_size or T, mask_size or T, dtype=torch.bool)
    if causal:
        keep = ~keep.triu(diagonal)
    if sliced:
        keep = keep[:T, :T]
    if window is not None:  # only the last `window` keys, t - window + 1 .. t
        keep = keep & torch.ones(T, T, dtype=torch.bool).triu(1 - window)
    if polarity is not None:  # a boolean mask of the wrong polarity: triu(polarity) kept, the rest hidden
        keep = torch.ones(T, T, dtype=torch.bool).triu(polarity)
    if out_scale:
        att = att * q.size(-1) ** scale_pow
    def softmax(s):
        if normalise == "naive":
            e = s.exp()
            return e / e.sum(dim=softmax_dim, keepdim=True)
        return s.softmax(dim=softmax_dim)
    if added is not None:  # nothing hidden: the mask's 0s and 1s only shift the scores
        p = softmax(att + (keep if added == "keep" else ~keep).to(att.dtype))
    elif post_mask:  # HF-style attention_mask multiplied in after the softmax: the kept weights sum to less than 1
        p = softmax(att) * keep
    else:
        p = softmax(att.masked_fill(~keep, fill))
    y = (p.nan_to_num() if nan_zeroed else p) @ v
    return y / q.size(-1) ** scale_pow if out_scale else y


def gqa_reference(q, k, v):
    """Causal attention with K/V head j // group serving query head j (mingpt.modern.attention)."""
    g = q.size(1) // k.size(1)
    return F.scaled_dot_product_attention(q, _rep(k, g), _rep(v, g), is_causal=True)


def _g(q, k):
    return q.size(1) // k.size(1)


SAME_REPEAT = ("K and V must be repeated the same way: head j reads K/V head j // group for both.",
               "the same repeat_interleave for k and v")
KNOBS = [
    ("K/V heads tiled (repeat) instead of repeated per group (repeat_interleave)", dict(tile="kv"),
     "Query heads 0 .. group-1 share K/V head 0, the next group K/V head 1, ...: head j reads K/V head j // group. "
     "`.repeat` tiles the heads, so head j reads j % n_kv_head.",
     "k.repeat_interleave(group, dim=1), or HF's repeat_kv (expand then reshape)"),
    ("K repeated per group, V tiled (repeat and repeat_interleave mixed up)", dict(tile="v"), *SAME_REPEAT),
    ("K tiled, V repeated per group (repeat and repeat_interleave mixed up)", dict(tile="k"), *SAME_REPEAT),
    ("K/V heads not repeated", dict(repeat=False),
     "n_kv_head key/value heads serve n_head query heads: each K/V head must be repeated for its group of "
     "n_head // n_kv_head queries before the matmul (broadcasting only works when n_kv_head is 1).",
     "k.repeat_interleave(n_head // n_kv_head, dim=1)"),
    ("no causal mask", dict(causal=False), "Position t may only attend to positions <= t.",
     "mask the scores above the diagonal with -inf"),
    ("the diagonal masked too (a token cannot see itself)", dict(diagonal=0),
     "Position t attends to positions <= t, itself included; masking the diagonal leaves the first row with nothing "
     "to attend to (NaN).", "triu(diagonal=1): only the future is masked"),
    ("the diagonal masked too (a token cannot see itself)", dict(diagonal=0, fill=-1e9),  # a finite fill: no NaN,
     "Position t attends to positions <= t, itself included; masking the diagonal leaves the first row with nothing "
     "to attend to (with a finite fill it averages every value, the future included).",  # row 0 averages all
     "triu(diagonal=1): only the future is masked"),
    ("causal mask applied after the softmax (future weights zeroed, the rest not renormalised)", dict(post_mask=True),
     "Masking after the softmax leaves each row's weights summing to less than 1: the future's share is lost, not "
     "given to the past. Mask the scores (-inf) before the softmax, so the visible keys' weights sum to 1.",
     "scores.masked_fill(future, float('-inf')), then softmax"),
    ("scores scaled by 1/hs instead of 1/sqrt(hs)", dict(scale_pow=1.0), "The scores are divided by sqrt(head_dim).",
     "/ math.sqrt(hs)"),
    ("scores not scaled", dict(scale_pow=0.0),
     "The scores are divided by sqrt(head_dim), or the softmax saturates as heads grow.", "/ math.sqrt(hs)"),
    ("softmax over the queries axis", dict(softmax_dim=-2),
     "Each query's weights over the keys sum to 1: softmax over the last axis.", "softmax(dim=-1)"),
    ("softmax over the heads axis (F.softmax without dim picks dim=1 on a 4-D tensor)", dict(softmax_dim=1),
     "Each query's weights over the keys sum to 1: softmax over the last axis. Without dim, F.softmax guesses dim=1 "
     "for a 4-D tensor (with a warning): the heads.", "softmax(dim=-1)"),
    ("softmax over the heads axis (F.softmax without dim picks dim=1 on a 4-D tensor)",
     dict(softmax_dim=1, nan_zeroed=True),  # its NaN (every head masked at once) turned into 0 afterwards
     "Each query's weights over the keys sum to 1: softmax over the last axis. Without dim, F.softmax guesses dim=1 "
     "for a 4-D tensor (with a warning): the heads. (The NaN this gives where every head is masked was zeroed.)",
     "softmax(dim=-1)"),
    ("a 0/1 mask added to the scores (1 = keep, Hugging Face's convention), not -inf", dict(added="keep"),
     "Adding 1 to the allowed scores hides nothing: every later key keeps its weight. A mask of 1 = keep must be "
     "turned into 0 where kept and -inf where hidden (or used with masked_fill on its zeros).",
     "scores.masked_fill(mask == 0, float('-inf'))"),
    ("a 0/1 mask added to the scores (1 = hide), not -inf", dict(added="hide"),
     "Adding 1 to the hidden scores only shifts them: the future keeps its weight. Hidden scores must be -inf.",
     "scores.masked_fill(mask, float('-inf'))"),
    ("k reshaped to (.., hs, T) instead of transposed (view/reshape, not transpose)", dict(k_reshaped=True),
     "reshape keeps the numbers in memory order and only regroups them: k.view(B, nh, hs, T) is not k's transpose, "
     "so each score mixes channels of different positions.", "k.transpose(-2, -1)"),
    ("keys used as values (v replaced by k)", dict(kv="kk"), "The weights average the *values*; yours averages the "
     "keys.", "att @ v, with v repeated like k"),
    ("values used as keys (k replaced by v)", dict(kv="vv"), "The scores compare queries with the *keys*; yours uses "
     "the values.", "q @ k.transpose(-2, -1)"),
    ("queries and keys swapped (k @ q^T)", dict(swap_qk=True),
     "scores[t, j] is how much query t attends to key j: q @ k^T. Yours computes k @ q^T, the transpose.",
     "q @ k.transpose(-2, -1)"),
    ("boolean mask of the wrong polarity (the future and the diagonal kept, the past hidden)", dict(polarity=0),
     "A boolean attn_mask (SDPA, masked_fill's complement) keeps the entries that are True: triu() keeps every "
     "later key and hides the past.", "keep the lower triangle: torch.ones(T, T, dtype=torch.bool).tril()"),
    ("boolean mask of the wrong polarity (the future kept, the past hidden)", dict(polarity=1),
     "A boolean attn_mask keeps the entries that are True: triu(1) keeps the later keys only, and the last "
     "position has none left (NaN).", "keep the lower triangle: torch.ones(T, T, dtype=torch.bool).tril()"),
    *[(f"attention limited to the last {w} key{'s' if w > 1 else ''} (a sliding-window mask)", dict(window=w),
       f"Query t attends to every key 0..t; your mask also hides the keys more than {w - 1} positions back, as a "
       "sliding window does.", "hide only the future: triu(diagonal=1) of a (T, T) matrix")
      for w in range(1, 5)],
    ("masked scores set to 0 instead of -inf", dict(fill=0.0),
     "A score of 0 still gets weight exp(0) in the softmax: the future stays visible. Masked scores must be -inf.",
     "masked_fill(mask, float('-inf'))"),
    ("1/sqrt(hs) applied to the output instead of the scores", dict(out_scale=True),
     "The scaling belongs inside the softmax, on q @ k^T; dividing the weighted values afterwards only shrinks the "
     "output, and the softmax sees unscaled scores.", "(q @ k.transpose(-2, -1)) / math.sqrt(hs), then softmax"),
]
SINGLES = [knob(_gqa, *row) for row in KNOBS]
GQA_MISTAKES = SINGLES + [
    Variant("K/V repeated along the time axis, not the heads",
            lambda q, k, v: _gqa(q, k.repeat_interleave(_g(q, k), 2), v.repeat_interleave(_g(q, k), 2), repeat=False),
            "k and v are (B, n_kv_head, T, hs): the heads are dim 1; repeating along dim 2 makes the sequence "
            "longer instead.", "repeat_interleave(group, dim=1)"),
    Variant("K/V repeated along the time axis, not the heads",  # and then repeated per group as well
            lambda q, k, v: _gqa(q, k.repeat_interleave(_g(q, k), 2), v.repeat_interleave(_g(q, k), 2)),
            "k and v are (B, n_kv_head, T, hs): the heads are dim 1; repeating along dim 2 makes the sequence "
            "longer instead.", "repeat_interleave(group, dim=1)"),
    Variant("K/V repeated along the time axis, not the heads",  # through the fused kernel: its own errors and mask
            lambda q, k, v: F.scaled_dot_product_attention(q, k.repeat_interleave(_g(q, k), 2),
                                                           v.repeat_interleave(_g(q, k), 2), is_causal=True),
            "k and v are (B, n_kv_head, T, hs): the heads are dim 1; repeating along dim 2 makes the sequence "
            "longer instead.", "repeat_interleave(group, dim=1)"),
    Variant("K/V heads averaged into one (multi-query attention) instead of repeated per group",
            lambda q, k, v: _gqa(q, k.mean(1, keepdim=True), v.mean(1, keepdim=True)),
            "Each group of query heads reads its own K/V head, j // group; averaging the K/V heads gives every query "
            "head the same keys and values.", "k.repeat_interleave(n_head // n_kv_head, dim=1)"),
    Variant("queries averaged over each group (one query per K/V head)", lambda q, k, v: _gqa(
                q.view(q.size(0), k.size(1), _g(q, k), *q.shape[2:]).mean(2).repeat_interleave(_g(q, k), 1), k, v),
            "Each query head keeps its own query; only the keys and values are shared within a group. Yours "
            "replaces the group's queries by their mean, so every head of a group computes the same attention.",
            "repeat k and v, leave q as it is"),
    *[Variant(f"causal mask built for a fixed length {n}, not for T", (lambda n: lambda q, k, v: _gqa(
        q, k, v, mask_size=n))(n), f"The mask must be (T, T) for the T of the input; yours is ({n}, {n}), which only "
        "fits sequences of exactly that length.", "build it from T = q.size(2), or slice a larger one: mask[:T, :T]")
      for n in (8, 16, 32, 64, 128, 256, 512, 1024)],
    Variant("group computed as n_kv_head // n_head (0 repeats: empty keys)",
            lambda q, k, v: F.scaled_dot_product_attention(q, _rep(k, k.size(1) // q.size(1)),
                                                           _rep(v, k.size(1) // q.size(1)), is_causal=True),
            "The group is the number of query heads per K/V head, n_head // n_kv_head; yours divides the other way, "
            "which is 0 whenever n_kv_head < n_head, so the keys and values are empty.",
            "group = q.size(1) // k.size(1)"),
    Variant("scaled by the number of query heads' group", lambda q, k, v: F.scaled_dot_product_attention(
                q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), is_causal=True, scale=1 / math.sqrt(q.size(-1) * _g(q, k))),
            "The scale is 1/sqrt(head_dim) whatever the grouping.", "/ math.sqrt(hs)"),
    Variant("scores scaled by 1/sqrt(n_head) (the number of heads) instead of 1/sqrt(hs)",
            lambda q, k, v: F.scaled_dot_product_attention(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), is_causal=True,
                                                           scale=1 / math.sqrt(q.size(1))),
            "The scores are divided by the square root of the head size hs = q.size(-1), not of the number of heads "
            "q.size(1).", "/ math.sqrt(q.size(-1))"),
    Variant("scores scaled by 1/sqrt(T) (the sequence length, q.size(2)) instead of 1/sqrt(hs)",
            lambda q, k, v: F.scaled_dot_product_attention(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), is_causal=True,
                                                           scale=1 / math.sqrt(q.size(2))),
            "q is (B, nh, T, hs): the head size is q.size(-1); q.size(2) is the sequence length T.",
            "/ math.sqrt(q.size(-1))"),
    Variant("causal mask built from the head size hs instead of T", lambda q, k, v: _gqa(q, k, v,
                                                                                       mask_size=q.size(-1)),
            "The mask is (T, T) with T = q.size(2), the sequence length; yours is (hs, hs), built from q.size(-1), "
            "which fits only when T happens to equal the head size.", "T = q.size(2); torch.ones(T, T).triu(1)"),
    Variant("causal mask built from the head size hs instead of T", lambda q, k, v: _gqa(  # then cut to [:T, :T]
                q, k, v, mask_size=q.size(-1), sliced=True),
            "The mask is (T, T) with T = q.size(2), the sequence length; yours is built (hs, hs) from q.size(-1) and "
            "cut to [:T, :T], which works while T <= hs and raises as soon as the sequence is longer than the head "
            "size.", "T = q.size(2); torch.ones(T, T).triu(1)"),
    Variant("scores scaled by 1/sqrt(n_head * hs) (the model width) instead of 1/sqrt(hs)",
            lambda q, k, v: F.scaled_dot_product_attention(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), is_causal=True,
                                                           scale=1 / math.sqrt(q.size(1) * q.size(-1))),
            "Each head's scores are scaled by its own head size: 1/sqrt(hs), not the square root of all the heads' "
            "width.", "/ math.sqrt(q.size(-1))"),
]


GQA_FAMILIES = [  # fitted when no table row explains the output (families.py)
    Family("causal mask triu(diagonal={value}) instead of triu(diagonal=1): each query sees future keys",
           lambda d: lambda q, k, v: _gqa(q, k, v, diagonal=int(d)),
           "Position t may attend to positions <= t only: the mask hides triu(diagonal=1). Yours hides from "
           "diagonal {value} on, so each query also sees the next {value} - 1 key(s).",
           "torch.ones(T, T, dtype=torch.bool).triu(1)", lo=2, hi=6, correct=1, integer=True),
]


def wrong_kv_heads(problem: CheckResult | None, fn, cases, prepare) -> CheckResult | None:
    """problem as it is, unless it is "not recognised" and every query head's output is exactly causal attention
    over *some* K/V head, the wrong one for at least one head (the group index computed another way: h % n_kv,
    h // group + 1, always head 0 ...). Then which K/V head each query head read is the diagnosis."""
    if problem is None or problem.passed or problem.property != NOT_RECOGNISED:
        return problem
    maps = []
    try:
        with torch.no_grad():
            for case in cases:
                q, k, v = prepare(case)
                out = fn(*prepare(case))
                if not isinstance(out, torch.Tensor) or out.shape != q.shape:
                    return problem
                nh, nkv = q.size(1), k.size(1)
                found = []
                for h in range(nh):
                    fits = [j for j in range(nkv) if torch.allclose(
                        out[:, h:h + 1], gqa_reference(q[:, h:h + 1], k[:, j:j + 1], v[:, j:j + 1]), atol=1e-4)]
                    if len(fits) != 1:  # none (another mistake), or ambiguous: name nothing
                        return problem
                    found.append(fits[0])
                maps.append((nh, nkv, found))
    except Exception:
        return problem
    wrong = [(nh, nkv, m) for nh, nkv, m in maps if m != [h // (nh // nkv) for h in range(nh)]]
    if not wrong:
        return problem
    nh, nkv, m = wrong[0]
    every = "every query head reads K/V head 0" if all(j == 0 for _, _, mm in maps for j in mm) else \
        "query heads read the wrong K/V heads"
    return fail(problem.exercise, every, f"Query head h shares K/V head h // group (group = n_head // n_kv_head): "
                f"with {nh} query and {nkv} K/V heads that is {[h // (nh // nkv) for h in range(nh)]}; yours reads "
                f"{m}. Each query head's attention is otherwise right.", problem.counterexample,
                "k.repeat_interleave(group, dim=1): head h gets K/V head h // group")


def check_gqa(fn, seed: int = 0) -> CheckResult:
    """Check gqa_attention(q (B, nh, T, hs), k, v (B, nkv, T, hs)) -> causal attention (B, nh, T, hs)."""
    exercise = "grouped-query attention"

    def randn(s, *shape):
        return torch.randn(*shape, generator=torch.Generator().manual_seed(s))

    def case(s, B, nh, nkv, T, hs):
        return randn(s, B, nh, T, hs), randn(s + 1, B, nkv, T, hs), randn(s + 2, B, nkv, T, hs)
    cases = [case(seed, 2, 6, 2, 5, 4), case(seed + 10, 1, 4, 4, 3, 4),  # n_kv_head = n_head: GPT-2's attention
             case(seed + 20, 1, 6, 3, 4, 8), case(seed + 30, 1, 4, 1, 4, 4)]  # and 1: multi-query attention
    problem = check_cases(exercise, fn, cases, gqa_reference, GQA_MISTAKES + pairs(_gqa, SINGLES),
                          lambda q, k, v: f"q of shape {tuple(q.shape)}, k and v {tuple(k.shape)}", atol=1e-4,
                          prepare=lambda c: tuple(t.clone() for t in c), precision=True)
    prepare = lambda c: tuple(t.clone() for t in c)  # noqa: E731
    problem = refine(problem, fn, cases, GQA_FAMILIES, atol=1e-4, prepare=prepare)
    problem = wrong_kv_heads(problem, fn, cases, prepare)
    # a slip on one head, one batch row or one position only (partial.py)
    problem = localise(problem, fn, cases, gqa_reference, SINGLES, [("head", 1), ("batch row", 0), ("position", 2)],
                       prepare, atol=1e-4)
    if problem is None:  # right on ordinary scores: and on large ones (a finite mask fill, an overflowing exp)?
        big = tuple(300 * t for t in case(seed + 40, 1, 4, 2, 6, 4))
        problem = large_score_slip(exercise, fn, _gqa, big, "q, k, v of shape (1, 4, 6, 4), (1, 2, 6, 4) scaled by "
                                   "300 (scores near a hundred thousand)")
    if problem is None:  # right outputs: are the gradients right too?
        problem = function_gradient_problem(exercise, fn, gqa_reference, cases[0], "q (2, 6, 5, 4), k and v "
                                                   "(2, 2, 5, 4)")
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["K/V head j // group serves query head j",
                                                "causal, scaled by 1/sqrt(hs)", "4 groupings"])
