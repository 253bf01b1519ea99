"""
A held-out probe of the exercise checkers (issue 24): plausible single student mistakes and valid-but-unusual
implementations, written without reading tests/mistakes_*.py. For each checker it prints mistakes written, caught,
named (the checker's property matches what the mistake is), named otherwise (a diagnosis that does not match: a
misname unless it is a fair generic name), valid written and passed, then every mistake not named with the
checker's message. Round 1 (heldout_probe_models.py, heldout_probe_tokens.py) was counted before any checker
change; round 2 (heldout_probe_round2.py) was written after round 1's fixes and counted before tuning for it.
Rounds 5, 6 and 7 of the tokens side (heldout_probe_round5_tokens.py, ..._round6_tokens.py, ..._round7_tokens.py)
also cover the post-training checkers; their before/after counts are in the commit messages that add them. Round 8
(heldout_probe_round8_models.py) was written before reading the model checkers' tables and counted untuned; so was
round 9, in two parts by two writers: heldout_probe_round9_unprobed.py, for the four checkers no round had probed,
and heldout_probe_round9_fresh.py, for the model, sampling, cache, BPE and optimiser checkers.
Round 10 (heldout_probe_round10_models.py, 93 mistakes and 27 valid for the thirteen model checkers) was written
the same way by one writer and counted untuned (80 named by judgment, 0 misnamed).
Round 10's tokens part (heldout_probe_round10_tokens.py) covers the token, training and post-training checkers,
written before reading their tables and counted untuned (110 of 127 named, 0 misnamed).
Round 11 (heldout_probe_round11_models.py, 113 mistakes and 29 valid for the thirteen model checkers: code translated
from papers and notebooks by an assistant or a hurried student) was counted untuned: 90 named by judgment, 2 in
part, 0 misnamed, 29 of 29 valid passed.
Round 11's tokens part (heldout_probe_round11_tokens.py, which imports its second and third parts,
heldout_probe_round11_post.py and heldout_probe_round11_train.py) was written by w24h from the angle of code
copied from popular repos (HF's top_k_top_p_filtering, nanoGPT's get_lr, configure_optimizers and from_pretrained,
minbpe, TRL, PEFT), before reading these checkers, and counted untuned (112 of 125 named, 1 misnamed).
Round 12's post-training part (heldout_probe_round12_post.py, the SFT, LoRA, DPO and group-advantage checkers) was
written by w24l from the angle of code written from the papers and from TRL/PEFT source, and counted untuned
(49 of 77 named, 0 misnamed, 11 of 11 valid passed).
Round 13 covers all 26 checkers in four parts by four writers, each written before reading its checkers' tables and
counted untuned (judged; caught / named / misnamed, valid passed): core (heldout_probe_round13_core.py and _core2,
the model parts) 155 / 136 / 0 of 160, 30 of 30; modern (_modern and _modern_train: Llama's parts, conversion,
training, schedule, weight decay) 133 / 110 / 0 of 136, 25 of 25; tokens (_tokens and _bpe) 85 / 68 / 1 of 88,
18 of 19; post 90 / 75 / 1 of 95, 17 of 17. In all 389 of 479 named (81 %), 3 mistakes crashed a checker.
Round 14, the same four parts by four new writers (core in _core, _core2, _core3; modern in _modern to _modern3;
tokens in _tokens to _tokens3; post in _post and _post2), took the angle of code an assistant would write, fixes that
over-correct, state kept across calls and edge sizes, and was counted untuned the same way: core 112 / 99 / 3 of 118,
24 of 24; modern 100 / 91 / 0 of 101, 19 of 19; tokens 71 / 64 / 1 of 75, 16 of 16; post 69 / 59 / 0 of 80, 11 of 11.
In all 313 of 374 named (84 %).
Round 15, four parts by four new writers (core in _core to _core3, modern in _modern and _modern2, tokens in _tokens
and _tokens2, post in _post and _post2), took the angle of the course notebooks' own fill-in cells, interface slips
(a tuple or None returned, arguments in another order) and low precision, and was counted untuned: core 119 / 97 / 0
of 122 (106 counting 'returned the wrong type' for a tuple or a float, a fair fact), 16 of 16; modern 103 / 89 / 0 of
103, 18 of 18; tokens 74 / 66 / 1 of 76, 11 of 11; post 73 / 68 / 2 of 74, 10 of 10. In all 320 of 375 named (85 %).
Round 16, four parts by four new writers (core in _core to _core5, modern in _modern to _modern4, tokens in _tokens to
_tokens3, post in _post to _post3), took the angle of habits carried over from numpy, Keras, JAX, Hugging Face and
paper notation, and beginner torch slips (results of out-of-place ops discarded, .T on 3-D tensors, softmax without
dim, torch.var's unbiased default, Python builtins on tensors, loops off by one, floor division), and was counted
untuned: core 123 / 107 / 1 of 128 (109 by regex), 24 of 24; modern 122 / 110 / 0 of 122, 19 of 19; tokens 87 / 74 / 0
of 91 (one checker crash), 16 of 16; post 68 / 62 / 0 of 75, 13 of 13. In all 353 of 416 named (85 %). Five of the
rows not caught or misnamed were later judged valid by contracts earlier rounds set (a Conv1D-layout weight,
LayerNorm's bias kept, float greedy ids, eps inside the sqrt, -log(sigmoid)) and moved to the valid rows.
Round 17, four parts by four new writers (core in _core to _core3, modern in _modern and _modern2, tokens in _tokens to
_tokens5, post in _post to _post3), took the opposite angle: the mistakes most common in class, as a teaching
assistant who has marked a hundred submissions of each exercise would list them, in the varied forms different
students write, with a few double slips; counted untuned and judged: core 127 / 118 / 0 of 127, 22 of 22; modern 105 /
103 / 0 of 105, 18 of 18; tokens 83 / 75 / 1 of 83, 17 of 17; post 69 / 68 / 0 of 69, 13 of 13. In all 364 of 384
named (95 %), every mistake caught, no checker crash; by the regexes as first written, before the commented widenings
where a message named the cause in other words, about 345 (90 %).
Round 18, four parts by four new writers (core in _core to _core3, modern in _modern to _modern3, tokens in _tokens to
_tokens3, post in _post and _post2), took the angle of look-alikes and hidden bugs: mistakes whose symptom resembles
another well-known mistake, bugs seen only on some inputs (B = 1 or B > 1, T = 1, ties, large values, a second call,
float64 or bfloat16), double slips, and valid code that looks wrong; the writers could run the checkers as black boxes
while writing, not read them. Counted untuned and judged: core 119 / 108 / 1 of 122, 23 of 23; modern 101 / 94 / 0 of
103, 21 of 21; tokens 65 / 62 / 0 of 68, 13 of 14; post 69 / 66 / 0 of 70, 12 of 12. In all 330 of 363 named (91 %),
354 caught, 1 misnamed (LayerNorm's running statistics in eval mode, named a missing mean), 69 of 70 valid passed
(top-p in log space, refused at an exact-sum boundary), no checker crash; about 316 (87 %) by the regexes as first
written. Four rows were later judged valid by the exercises' contracts (the last of tied greedy ids, exactly k kept on
a tie with the k-th, an untied copy of wte as lm_head, rotary angles in the input's dtype) and moved.
Round 19, four parts by four new writers (core in _core to _core5, modern in _modern to _modern3, tokens in _tokens to
_tokens3, post in _post and _post2), wrote new instances of the issue's own categories (the set the issue was filed
from, as a different teacher would write it again), without reading the checkers, and counted untuned: core 142 / 138
/ 0 of 143, 23 of 24; modern 93 / 93 / 0 of 94, 21 of 22; tokens 61 / 59 / 0 of 63, 17 of 17; post 72 / 67 / 1 of 72,
12 of 12. In all 357 of 372 named (96 %), 368 caught, 1 misnamed (an SFT loop that stops one early, named "wrong
dtype" from the empty float tensor it returns for T = 2), 73 of 75 valid passed, no checker crash. Of the two valid
rows refused, one was a mistake (weights copied into new layers under no_grad: nothing trains them) and one the
one-pass variance E[x^2] - E[x]^2 in LayerNorm, which round 15 had already judged a mistake (it loses the variance of
activations with a large mean); both were moved to the mistakes, and a warm-up written `it <= warmup_iters` (valid:
both branches agree there) to the valid rows. Greedy ids returned as floats, accepted since round 6 and written as a
mistake by the writers of rounds 15, 16 and 19, are named a wrong dtype since this round (an id indexes the
embedding): the four such rows of rounds 6, 15, 16 and 19 are mistakes again.
Round 20, four parts by four new writers (core in _core to _core3, modern in _modern to _modern3, tokens in _tokens to
_tokens3, post in _post and _post2), took the angle of convention transplants: code carried over from nanoGPT, Hugging
Face (Conv1D's (in, out) weights, -100 labels, -1e4 masks, gelu_new, DynamicCache), TransformerLens / ARENA (einsum,
W_Q per head, IGNORE = -1e5), Llama (complex or interleaved rotary, float32 statistics, a static cache), Gemma,
GPT-NeoX (rotate_half, partial rotary, parallel residual), PEFT (rsLoRA), TRL (label-smoothed DPO, completion-only
collators, Dr.GRPO), minbpe and tiktoken, and the PyTorch docs (nn.MultiheadAttention, SDPA), where the other
convention changes this exercise's output, plus correct code in those styles. Written without reading the checkers and
counted untuned: core 127 / 113 / 0 of 127, 30 of 31; modern 107 / 98 / 0 of 108, 26 of 27; tokens 69 / 67 / 0 of
70, 24 of 24; post 60 / 55 / 1 of 60, 15 of 15. In all 333 of 365 named (91 %), 363 caught (a finite mask fill of
-1e4 passed sampling and GQA: no tested logits were low enough to leak), 1 misnamed (a LoRA merge that scales twice,
named "2 * reference - input", a coincidence of the one alpha/r tested), 95 of 97 valid passed (an attention built
from HF's Conv1D, whose square c_proj could not tell its orientation by shape; an nn.MultiheadAttention component,
whose in_proj_weight the optimizer could not place), no checker crash.
Round 21, four parts by four new writers (core in _core to _core3, modern in _modern to _modern3, tokens in _tokens to
_tokens3, post in _post and _post2), wrote cousins of the textbook mistakes and mistakes confined to part of the input,
to hunt wrong names: the textbook slip with another constant, axis or offset (off by two, a factor 3, sqrt(C), eps
1e-3, top-k with k + 1, a floor at 2 min_lr, beta^2), a slip on one head, one layer, one batch row, the last position
or half the channels only, two different slips at once, and valid code that looks like a cousin. Counted untuned and
judged strictly (a textbook name given to its cousin counts as misnamed): core 125 / 86 / 1 of 125, 28 of 28; modern
101 / 75 / 1 of 102, 27 of 27; tokens 69 / 48 / 1 of 70, 19 of 19; post 69 / 50 / 3 of 71, 14 of 14. In all 259 of
368 named (70 %), 364 caught, 6 misnamed (softmax over the heads named "future leakage" with a mask or reshape as its
causes; a warm-up (it + 2) / (W + 1) named "cosine one step behind"; a KV cache only in layer 0 named a sliding
window; a LoRA merge at half scale named "forgets the scale"; a LoRA whose base bias alone trains named "base not
frozen"; a double LoRA slip named by one of its parts), all 88 valid passed, no checker crash. Cousins are less
likely in class than the textbook slips, and most went "not recognised", which is the honest answer; the misnames are
the finding: each came from a name judged at one setting or on the whole output. After tuning: 343 of 368 named,
none wrongly (three attention rows say "future leakage" without saying which head or row), 88 of 88 valid.
Round 22, three parts by three new writers (models: MLP, Block, embedding, GPT; tokens: loss, sampling, KV cache,
merge, BPE encoding; train: schedule, weight decay, greedy, bigram, training runs), wrote again the issue's own ten
checkers as a new teacher would, the mistakes their class made most often, without reading the checkers (one writer
read round 1's first MLP rows). Counted untuned and judged: models 53 / 52 / 49 / 0, 12 of 12; tokens 64 / 64 / 60 /
0, 13 of 13; train 51 / 51 / 48 / 0, 9 of 10. In all 157 of 168 named (93 %), 167 caught (a GPT whose lm_head was
rebuilt after the tie line: untied, which round 18 judged valid), none misnamed, 34 of 35 valid passed (an MLP with
raw 2-D nn.Parameters, stopped by mingpt's own weight-decay grouping), no checker crash. After tuning (the untied
GPT moved to the valid rows): 167 of 167 named, none wrongly, 36 of 36 valid (the Block's plain list of (norm,
layer) pairs named unregistered; both norms without their gain; a loss shifted after flattening or transposed before
it; logits flattened time-major inside a GPT; values prepended in a KV cache; a BPE loop that stops on the first
pair; bigram rows of idx + 1, reversed in time or divided by their sum).
tests/mistakes_heldout.py turns every row into a test. Run from the repository root:
PYTHONPATH=. python tests/scripts/heldout_probe.py [ROUND ...]   (only the rounds given; all by default)
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # the probe's parts beside this file

from mingpt.exercises.compare import NOT_RECOGNISED  # noqa: E402

import heldout_probe_round4  # noqa: E402,F401  (imported for its registrations: rounds 1 to 4, in order)
import heldout_probe_round5_tokens  # noqa: E402,F401  (round 5, tokens side)
import heldout_probe_round6_tokens  # noqa: E402,F401  (round 6, tokens side)
import heldout_probe_round7_tokens  # noqa: E402,F401  (round 7, tokens side)
import heldout_probe_round5_models  # noqa: E402,F401  (round 5: the model checkers)
import heldout_probe_round6_models  # noqa: E402,F401  (round 6: the model checkers)
import heldout_probe_round7_models  # noqa: E402,F401  (round 7: the model checkers, untuned)
import heldout_probe_round8_models  # noqa: E402,F401  (round 8: the model checkers, written before reading them)
import heldout_probe_round9_unprobed  # noqa: E402,F401  (round 9: conversion, attention weights, bigram, training)
import heldout_probe_round9_fresh  # noqa: E402,F401  (round 9: twelve model and token checkers, written before reading)
import heldout_probe_round10_models  # noqa: E402,F401  (round 10: the thirteen model checkers, written before reading)
import heldout_probe_round10_tokens  # noqa: E402,F401  (round 10: token, training, post-training checkers, w24f)
import heldout_probe_round11_models  # noqa: E402,F401  (round 11: the thirteen model checkers, written before reading, w24g)
import heldout_probe_round11_tokens  # noqa: E402,F401  (round 11: token, training, post-training checkers, w24h)
import heldout_probe_round12_post  # noqa: E402,F401  (round 12: SFT, LoRA, DPO, group advantages, w24l)
import heldout_probe_round13_core  # noqa: E402,F401  (round 13, core part)
import heldout_probe_round13_modern  # noqa: E402,F401  (round 13, modern part)
import heldout_probe_round13_tokens  # noqa: E402,F401  (round 13, tokens part)
import heldout_probe_round13_post  # noqa: E402,F401  (round 13, post part)
import heldout_probe_round14_core  # noqa: E402,F401  (round 14, core part)
import heldout_probe_round14_modern  # noqa: E402,F401  (round 14, modern part)
import heldout_probe_round14_tokens  # noqa: E402,F401  (round 14, tokens part)
import heldout_probe_round14_post  # noqa: E402,F401  (round 14, post part)
import heldout_probe_round15_core  # noqa: E402,F401  (round 15, core part)
import heldout_probe_round15_modern  # noqa: E402,F401  (round 15, modern part)
import heldout_probe_round15_tokens  # noqa: E402,F401  (round 15, tokens part)
import heldout_probe_round15_post  # noqa: E402,F401  (round 15, post part)
import heldout_probe_round16_core  # noqa: E402,F401  (round 16, core part)
import heldout_probe_round16_modern  # noqa: E402,F401  (round 16, modern part)
import heldout_probe_round16_tokens  # noqa: E402,F401  (round 16, tokens part)
import heldout_probe_round16_post  # noqa: E402,F401  (round 16, post part)
import heldout_probe_round17_core  # noqa: E402,F401  (round 17, core part)
import heldout_probe_round17_modern  # noqa: E402,F401  (round 17, modern part)
import heldout_probe_round17_tokens  # noqa: E402,F401  (round 17, tokens part)
import heldout_probe_round17_post  # noqa: E402,F401  (round 17, post part)
import heldout_probe_round18_core  # noqa: E402,F401  (round 18, core part)
import heldout_probe_round18_modern  # noqa: E402,F401  (round 18, modern part)
import heldout_probe_round18_tokens  # noqa: E402,F401  (round 18, tokens part)
import heldout_probe_round18_post  # noqa: E402,F401  (round 18, post part)
import heldout_probe_round19_core  # noqa: E402,F401  (round 19, core part)
import heldout_probe_round19_modern  # noqa: E402,F401  (round 19, modern part)
import heldout_probe_round19_tokens  # noqa: E402,F401  (round 19, tokens part)
import heldout_probe_round19_post  # noqa: E402,F401  (round 19, post part)
import heldout_probe_round20_core  # noqa: E402,F401  (round 20, core part)
import heldout_probe_round20_modern  # noqa: E402,F401  (round 20, modern part)
import heldout_probe_round20_tokens  # noqa: E402,F401  (round 20, tokens part)
import heldout_probe_round20_post  # noqa: E402,F401  (round 20, post part)
import heldout_probe_round21_core  # noqa: E402,F401  (round 21, core part)
import heldout_probe_round21_modern  # noqa: E402,F401  (round 21, modern part)
import heldout_probe_round21_tokens  # noqa: E402,F401  (round 21, tokens part)
import heldout_probe_round21_post  # noqa: E402,F401  (round 21, post part)
import heldout_probe_round22_models  # noqa: E402,F401  (round 22, models part)
import heldout_probe_round22_tokens  # noqa: E402,F401  (round 22, tokens part)
import heldout_probe_round22_train  # noqa: E402,F401  (round 22, train part)
from heldout_probe_models import MISTAKES, VALID  # noqa: E402

GENERIC = {NOT_RECOGNISED, "your code raised an exception", "wrong tokens"}  # the fallbacks: not a diagnosis


# ------------------------------------------------------------------------------------------ report
def main() -> None:
    torch.manual_seed(0)
    stats = collections.defaultdict(lambda: [0] * 6)  # (round, checker) -> counts
    unnamed = []
    only = {int(a) for a in sys.argv[1:]}
    for checker, impl, expect, rnd in MISTAKES:
        if only and rnd not in only:
            continue
        row = stats[rnd, checker.__name__]
        row[0] += 1
        try:
            result = checker(impl)
        except Exception as e:  # a crash of the checker itself
            unnamed.append((rnd, checker.__name__, impl, f"CHECKER CRASHED: {type(e).__name__}: {e}"))
            continue
        row[1] += not result
        named = (not result) and re.search(expect, result.property, re.I) is not None
        row[2] += named
        other = (not result) and not named and result.property not in GENERIC
        row[3] += other
        if not named:
            unnamed.append((rnd, checker.__name__, impl,
                            f"expected /{expect}/ " + ("OTHER NAME " if other else "") + str(result)))
    for checker, impl, rnd in VALID:
        if only and rnd not in only:
            continue
        row = stats[rnd, checker.__name__]
        row[4] += 1
        try:
            result = checker(impl)
        except Exception as e:
            unnamed.append((rnd, checker.__name__, impl, f"VALID CRASHED THE CHECKER: {e}"))
            continue
        row[5] += bool(result)
        if not result:
            unnamed.append((rnd, checker.__name__, impl, "VALID REFUSED " + str(result)))
    widths = (8, 6, 5, 5, 5, 6)
    for rnd in sorted({r for r, _ in stats}):
        print(f"round {rnd}\n{'checker':28s} {'mistakes':>8s} {'caught':>6s} {'named':>5s} {'other':>5s} "
              f"{'valid':>5s} {'passed':>6s}")
        total = [0] * 6
        for (r, checker), row in stats.items():
            if r == rnd:
                print(f"{checker:28s} " + " ".join(f"{v:{w}d}" for v, w in zip(row, widths)))
                total = [a + b for a, b in zip(total, row)]
        print(f"{'total':28s} " + " ".join(f"{v:{w}d}" for v, w in zip(total, widths)) + "\n")
    for rnd, name, impl, message in unnamed:
        label = getattr(impl, "__name__", "") + " " + str({k: v for k, v in vars(impl).items()
                                                         if not k.startswith("_") and not callable(v)}
                                                        if isinstance(impl, type) else "")
        print(f"\n--- round {rnd} {name}: {label}\n{message}")


if __name__ == "__main__":
    main()

