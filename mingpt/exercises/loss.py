"""
Checking the next-token loss (the first notebook's second exercise; the bigram model is bigram.py).

The one idea: a language model's loss compares the prediction at position t with the token at position t + 1.
Forgetting the shift, shifting the wrong way, or counting positions that should be ignored all give a perfectly
plausible number, which is why these mistakes survive: the checker builds logits for which each of those
mistakes gives a *different* loss (several batch sizes, lengths, vocabularies and masks), and names a mistake only
when it reproduces the student's number on every one of them.

    from mingpt.exercises import check_loss
    check_loss(my_loss)     # my_loss(logits (B, T, V), tokens (B, T)) -> mean next-token cross-entropy
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, close, fail
from mingpt.exercises.compare import check_cases
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, refine
from mingpt.exercises.gradients import function_gradient_problem
from mingpt.model import IGNORE_INDEX

__all__ = ["check_loss", "LOSS_MISTAKES", "GPT_LOSS_MISTAKES"]


# ------------------------------------------------------------------------------------------ loss
def _ce(lg, tg, reduction="mean"):
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


def _reference_loss(logits, tokens):
    return _ce(logits[:, :-1], tokens[:, 1:])


def _nll(log_probs, lg, tk):
    """Per-position loss (B, T-1) from a log-probability function, 0 where the target is ignored."""
    tg = tk[:, 1:]
    picked = -log_probs(lg[:, :-1]).gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * (tg != IGNORE_INDEX)


def _mse(lg, tk):
    keep = tk[:, 1:] != IGNORE_INDEX
    return F.mse_loss(lg[:, :-1].softmax(-1)[keep], F.one_hot(tk[:, 1:][keep], lg.size(-1)).float())


LOSS_MISTAKES = [  # (name, f(logits, tokens), explanation, hint)
    ("squared error of the probabilities against one-hot targets (MSE, not cross-entropy)", _mse,
     "The loss is the cross-entropy -log p(target); yours is the mean squared difference between the softmax and a "
     "one-hot vector, which barely punishes a confident wrong prediction.",
     "F.cross_entropy(logits, targets, ignore_index=-1)"),
    ("ignore index not honoured", lambda lg, tk: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)),
                                                                 tk[:, 1:].reshape(-1)),
     "Targets equal to -1 mean 'no loss here'; your cross_entropy treated -1 as a class and failed.",
     "tell cross_entropy which target value to ignore (mingpt uses -1: ignore_index=-1)"),
    ("targets not shifted", lambda lg, tk: _ce(lg, tk),
     "logits[:, t] is the prediction of the *next* token, so its target is tokens[:, t + 1]; yours compares it "
     "with tokens[:, t], the token the model was given.", "drop one position at each end"),
    *[(f"targets shifted by {k} positions, not 1", (lambda k: lambda lg, tk: _ce(lg[:, :-k], tk[:, k:]))(k),
       f"logits[:, t] predicts the very next token, tokens[:, t + 1]; yours compares it with tokens[:, t + {k}].",
       "logits[:, :-1] against tokens[:, 1:]") for k in (2, 3)],
    ("ignore_index=0 instead of -1", lambda lg, tk: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)),
                                                                   tk[:, 1:].reshape(-1), ignore_index=0),
     "The positions to skip have target -1, which cross_entropy then takes for a class and fails on; token 0 is an "
     "ordinary token, and yours skips it.", "ignore_index=-1"),
    ("ignore_index=0: token 0 ignored as well", lambda lg, tk: F.cross_entropy(
        lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].clamp(min=0).reshape(-1), ignore_index=0),
     "The positions to skip have target -1; token 0 is an ordinary token, and yours skips it too.",
     "ignore_index=-1"),
    *[(f"logits scaled by {c:g} before the loss", (lambda c: lambda lg, tk: _ce(lg[:, :-1] * c, tk[:, 1:]))(c),
       f"The loss takes the model's logits as they are; yours multiplies them by {c:g} first (a temperature belongs "
       "to sampling, not to training).", "cross_entropy(logits, ...) with no factor") for c in (0.5, 2.0)],
    ("only the last position's prediction", lambda lg, tk: _ce(lg[:, -2:-1], tk[:, -1:]),
     "Every position predicts its next token, and the loss averages all of them; yours uses the last one only.",
     "logits[:, :-1] against tokens[:, 1:]"),
    ("targets shifted the wrong way", lambda lg, tk: _ce(lg[:, 1:], tk[:, :-1]),
     "Yours compares logits[:, t + 1] with tokens[:, t]: predicting the past.",
     "the *last* prediction has no target, the *first* token is never a target"),
    ("logits and targets both drop the first position", lambda lg, tk: _ce(lg[:, 1:], tk[:, 1:]),
     "Both are cut at the same end, so each position is compared with its own token, not the next one.",
     "logits lose the last position, tokens the first"),
    ("logits and targets both drop the last position", lambda lg, tk: _ce(lg[:, :-1], tk[:, :-1]),
     "Both are cut at the same end, so each position is compared with its own token, not the next one.",
     "logits lose the last position, tokens the first"),
    ("targets rolled: the last position wraps around", lambda lg, tk: _ce(lg, tk.roll(-1, dims=1)),
     "tokens.roll(-1) shifts correctly but moves the first token to the end: the last position is trained to "
     "predict the start of its own sequence, which is not the next token.", "slice instead: tokens[:, 1:]"),
    ("label smoothing", lambda lg, tk: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1),
                                                       ignore_index=IGNORE_INDEX, label_smoothing=0.1),
     "The next-token loss is plain cross-entropy; label_smoothing mixes a uniform target into it.",
     "leave label_smoothing at 0"),
    ("only the first sequence of the batch", lambda lg, tk: _ce(lg[:1, :-1], tk[:1, 1:]), "Your loss equals the "
     "reference's on batch row 0 alone: the other sequences add nothing (logits[0], or a loop that returns after its "
     "first row).", "flatten every row: logits (B*T, V) against targets (B*T,)"),
    ("sum instead of mean", lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:], reduction="sum"),
     "The loss is the mean over the predicted positions, so it does not grow with the batch size.",
     "average over the positions that have a target"),
    ("ignored positions counted in the mean",
     lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:], reduction="sum") / tk[:, 1:].numel(),
     "Positions whose target is -1 add no loss, and they must not count in the number you divide by either.",
     "divide by the number of targets that are not -1 (cross_entropy's ignore_index does it)"),
    ("averaged per sequence, then over the batch",
     lambda lg, tk: (_nll(lambda x: F.log_softmax(x, -1), lg, tk).sum(1) / (tk[:, 1:] != IGNORE_INDEX).sum(1)).mean(),
     "The mean runs over all predicted positions of the batch at once; averaging each sequence first gives the "
     "positions of a short (or mostly ignored) sequence more weight.", "one mean over (B*T) positions"),
    ("softmax applied before cross_entropy", lambda lg, tk: _ce(lg.softmax(-1)[:, :-1], tk[:, 1:]),
     "F.cross_entropy takes raw logits and applies log-softmax itself; giving it probabilities squashes the loss "
     "towards log(V).", "pass the logits straight in"),
    ("softmax over the time axis", lambda lg, tk: _nll(lambda x: F.log_softmax(x, dim=1), lg, tk).sum()
     / (tk[:, 1:] != IGNORE_INDEX).sum(),
     "The probabilities are over the vocabulary (the last axis), one distribution per position; yours normalises "
     "over the positions.", "log_softmax(dim=-1)"),
    ("minus the probability instead of minus its log",
     lambda lg, tk: _nll(lambda x: F.softmax(x, dim=-1), lg, tk).sum() / (tk[:, 1:] != IGNORE_INDEX).sum(),
     "Cross-entropy is -log p(target); -p(target) is not a likelihood and gives tiny gradients.", "take the log"),
    ("nll_loss on raw logits (no log_softmax)",
     lambda lg, tk: F.nll_loss(lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX),
     "F.nll_loss expects log-probabilities: given raw logits it returns minus the target's logit, not its "
     "cross-entropy.", "log_softmax the logits first, or use F.cross_entropy, which does both"),
    ("logits and targets flattened in different orders",
     lambda lg, tk: _ce(lg[:, :-1].transpose(0, 1), tk[:, 1:]),
     "Your logits were flattened time-major ((T, B, V) -> (T*B, V)) but the targets batch-major ((B, T) -> (B*T,)), "
     "so each prediction is compared with another sequence's token.", "flatten both the same way: (B*T, V), (B*T,)"),
    ("logits and targets flattened in different orders (targets time-major)",
     lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:].transpose(0, 1)),
     "Your targets were flattened time-major ((T, B) -> (T*B,), after a transpose or .T) but the logits batch-major "
     "((B, T, V) -> (B*T, V)), so each prediction is compared with another sequence's token.",
     "flatten both the same way: (B*T, V), (B*T,)"),
    ("shifted after flattening: each sequence's last prediction scored against the next sequence's first token",
     lambda lg, tk: F.cross_entropy(lg.reshape(-1, lg.size(-1))[:-1], tk.reshape(-1)[1:], ignore_index=IGNORE_INDEX),
     "Flattening first joins the sequences end to end, so a shift by one on the flat (B*T,) tokens crosses the "
     "boundaries: the last position of row b is trained to predict the first token of row b + 1, a token from "
     "another sequence that it never saw.", "shift within each row first (logits[:, :-1], tokens[:, 1:]), then "
     "flatten"),
    ("logits transposed to (B, V, T) and then flattened with reshape(-1, V): classes and positions scrambled",
     lambda lg, tk: _ce(lg[:, :-1].transpose(1, 2).reshape(-1, lg.size(-1)), tk[:, 1:]),
     "After transpose(1, 2) each row of memory runs over the positions, not the vocabulary; reshape(-1, V) then "
     "cuts rows of V numbers out of that order, so a 'row of logits' mixes positions and classes. The transpose "
     "is for cross_entropy's (B, V, T) input, without flattening; the flat form needs no transpose.",
     "either logits.reshape(-1, V) against targets.reshape(-1), or logits.transpose(1, 2) against (B, T) targets"),
    ("shifted along the batch axis (dim 0), not the time axis",
     lambda lg, tk: _ce(lg[:-1], tk[1:]),
     "logits[:-1] and tokens[1:] slice the first axis, the sequences of the batch: each sequence is compared with "
     "the next sequence's tokens. The shift runs along time, the second axis.", "logits[:, :-1] and tokens[:, 1:]"),
    ("summed over positions, averaged over the batch",
     lambda lg, tk: _nll(lambda x: F.log_softmax(x, -1), lg, tk).sum(1).mean(),
     "The loss is the mean over every predicted position; summing over each sequence makes it grow with the length.",
     "one mean over all (B*T) positions that have a target"),
    ("ignored targets clamped to token 0", lambda lg, tk: F.cross_entropy(
        lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].clamp(min=0).reshape(-1)),
     "Targets equal to -1 must add no loss; turning them into token 0 trains the model to predict token 0 there.",
     "keep the -1 and pass ignore_index=-1 to cross_entropy"),
    ("(B, T, V) logits passed to cross_entropy unflattened",
     lambda lg, tk: F.cross_entropy(lg[:, :-1], tk[:, 1:], ignore_index=IGNORE_INDEX),
     "cross_entropy reads dim 1 as the classes: given (B, T, V) it takes the T positions for classes and the V axis "
     "for positions, which fails or, when T - 1 happens to equal V, silently computes something else.",
     "flatten to (B*T, V) and (B*T,), or move the classes to dim 1 with logits.transpose(1, 2)"),
    ("divided by B*T (every token), not by the targets counted",
     lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:], reduction="sum") / tk.numel(),
     "The mean runs over the B*(T-1) predicted positions that have a target (not -1); dividing by B*T also counts "
     "the last position, which has no next token, and the ignored ones.",
     "divide by the number of targets that are not -1 (cross_entropy's ignore_index does it)"),
    ("log_softmax over the batch axis",
     lambda lg, tk: F.nll_loss(lg.log_softmax(0)[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1),
                               ignore_index=IGNORE_INDEX),
     "The probabilities are over the vocabulary (the last axis), one distribution per position; yours normalises "
     "over the sequences of the batch (dim 0).", "log_softmax(dim=-1)"),
    ("log_softmax over the time axis",
     lambda lg, tk: F.nll_loss(lg.log_softmax(1)[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1),
                               ignore_index=IGNORE_INDEX),
     "The probabilities are over the vocabulary (the last axis), one distribution per position; yours normalises "
     "over the positions of each sequence (dim 1).", "log_softmax(dim=-1)"),
    ("log base 2", lambda lg, tk: _reference_loss(lg, tk) / math.log(2),
     "PyTorch's cross-entropy (and every loss the course quotes) is in nats: natural log.", "use log, not log2"),
    ("the last position's prediction left out (a loop or slice one step short)",
     lambda lg, tk: _ce(lg[:, :-2], tk[:, 1:-1]),
     "Every position but the last has a next token to predict, T - 1 of them; yours stops one earlier, so the "
     "prediction of the final token is never trained (range(T - 2), or a slice [:-2]).",
     "logits[:, :-1] against tokens[:, 1:]: all T - 1 predictions"),
    ("the first position's prediction left out (a loop or slice starting one step late)",
     lambda lg, tk: _ce(lg[:, 1:-1], tk[:, 2:]),
     "Every position but the last has a next token to predict, T - 1 of them; yours starts at position 1, so the "
     "second token is never a target (range(1, T - 1), or slices [:, 1:-1] and [:, 2:]).",
     "logits[:, :-1] against tokens[:, 1:]: all T - 1 predictions"),
    ("positions skipped where the *input* token is -1, not the target",
     lambda lg, tk: (lambda per, keep: (per * keep).sum() / keep.sum())(
         F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].clamp(min=0).reshape(-1), reduction="none"),
         (tk[:, :-1] != IGNORE_INDEX).reshape(-1)),
     "A position adds no loss when the token it must predict, tokens[:, t + 1], is -1; your mask reads tokens[:, t], "
     "the token it was given, so it skips the wrong positions (and trains ignored targets as token 0).",
     "the mask (or ignore_index) goes with the targets: tokens[:, 1:] != -1"),
    ("reshape where a transpose is needed",
     lambda lg, tk: F.cross_entropy(lg[:, :-1].reshape(lg.shape[0], lg.shape[2], -1), tk[:, 1:],
                                    ignore_index=IGNORE_INDEX),
     "cross_entropy wants the classes on dim 1, (B, V, T); reshape keeps the memory order and mixes positions "
     "with classes, a transpose moves the axis.", "logits.transpose(1, 2), or flatten to (B*T, V)"),
]


def _parts_loss(lg, tk, cut=("last", "first"), ignored="skip", reduce="mean", probs=False, rows="all"):
    """The reference loss with a knob per part, so that compose.pairs can apply two slips at once: cut, which end
    the logits and the targets drop ("last", "first", or "none" for no shift); ignored, what happens to the -1
    targets ("skip", "clamp" to token 0 and count, "zero": clamped and ignore_index=0, "wrap": read as token
    V - 1); reduce ("mean" over the kept targets, "sum", "all": the sum over every position, ignored ones counted);
    probs: softmax first; rows: "all", or "first" (only the batch's first sequence, lg[0] taken for the batch). cut
    "last2" / "first2": the shift by two, so that it pairs with another slip (a shift by two and a sum)."""
    drop = {"last": slice(None, -1), "first": slice(1, None), "none": slice(None), "last2": slice(None, -2),
            "first2": slice(2, None)}
    lg, tk = (lg[:1], tk[:1]) if rows == "first" else (lg, tk)
    logits, targets = lg[:, drop[cut[0]]], tk[:, drop[cut[1]]]
    logits = logits.softmax(-1) if probs else logits
    skip = {"skip": IGNORE_INDEX, "clamp": -100, "zero": 0, "-100": -100, "wrap": -100}[ignored]
    # "wrap": a loop or gather by hand reads logp[..., -1], Python's last entry, for a -1 target: token V - 1
    targets = {"skip": targets, "-100": targets, "wrap": targets.remainder(lg.size(-1))}.get(ignored,
                                                                                              targets.clamp(min=0))
    per = F.cross_entropy(logits.reshape(-1, lg.size(-1)), targets.reshape(-1), ignore_index=skip, reduction="none")
    kept = (targets.reshape(-1) != skip).sum()
    return {"mean": per.sum() / kept, "sum": per.sum(), "all": per.sum() / per.numel()}[reduce]


LOSS_KNOBS = [  # (name, knobs of _parts_loss, explanation, hint): tried alone and two at a time
    ("targets not shifted", dict(cut=("none", "none")), "logits[:, t] predicts tokens[:, t + 1]; yours compares it "
     "with tokens[:, t].", "logits[:, :-1] against tokens[:, 1:]"),
    ("targets shifted the wrong way", dict(cut=("first", "last")), "Yours compares logits[:, t + 1] with "
     "tokens[:, t]: predicting the past.", "logits[:, :-1] against tokens[:, 1:]"),
    ("logits and targets both drop the first position", dict(cut=("first", "first")), "Each position is compared "
     "with its own token, not the next one.", "logits lose the last position, tokens the first"),
    ("logits and targets both drop the last position", dict(cut=("last", "last")), "Each position is compared "
     "with its own token, not the next one.", "logits lose the last position, tokens the first"),
    ("ignored targets clamped to token 0", dict(ignored="clamp"), "Targets equal to -1 must add no loss; turning "
     "them into token 0 trains the model to predict token 0 there.", "ignore_index=-1 on the targets as they are"),
    ("ignore_index=0: token 0 ignored as well", dict(ignored="zero"), "The positions to skip have target -1; token "
     "0 is an ordinary token, and yours skips it too.", "ignore_index=-1"),
    ("ignore_index=-100 (HF's labels) instead of -1", dict(ignored="-100"), "mingpt marks the positions to skip "
     "with -1; cross_entropy's default ignore_index, -100, leaves them as classes, and -1 is out of bounds.",
     "ignore_index=-1"),
    ("ignored targets (-1) read as the last token (negative indexing)", dict(ignored="wrap"), "A -1 target means "
     "'no loss here'; indexed by hand (logp[b, t, target]) it picks the last vocabulary entry, as Python's -1 "
     "does, so those positions train token V - 1.", "skip the positions whose target is -1 (mask, or "
     "F.cross_entropy(..., ignore_index=-1))"),
    ("sum instead of mean", dict(reduce="sum"), "The loss is the mean over the predicted positions.",
     "average over the positions that have a target"),
    ("ignored positions counted in the mean", dict(reduce="all"), "Positions whose target is -1 must not count in "
     "the number you divide by.", "ignore_index=-1 and the default mean"),
    ("softmax applied before cross_entropy", dict(probs=True), "F.cross_entropy takes raw logits.",
     "pass the logits straight in"),
    ("targets shifted by 2 positions, not 1", dict(cut=("last2", "first2")), "logits[:, t] predicts the very next "
     "token, tokens[:, t + 1]; yours compares it with tokens[:, t + 2].", "logits[:, :-1] against tokens[:, 1:]"),
    ("only the first sequence of the batch", dict(rows="first"), "Your loss equals the reference's on batch row 0 "
     "alone: the other sequences add nothing (logits[0], or a loop that returns after its first row).",
     "flatten every row: logits (B*T, V) against targets (B*T,)"),
]


def _loss_pairs() -> list[Variant]:
    singles = [knob(_parts_loss, name, kw, why, hint) for name, kw, why, hint in LOSS_KNOBS]
    return pairs(_parts_loss, singles)


def _loss_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for B, T, V, masked in ((2, 6, 5, []), (2, 6, 5, [(0, 1), (0, 2)]), (3, 4, 7, [(1, 2), (2, 1), (2, 3)])):
        logits = torch.randn(B, T, V, generator=g) * 2
        tokens = torch.randint(0, V, (B, T), generator=g)
        for b, t in masked:
            tokens[b, t] = IGNORE_INDEX  # e.g. the prompt part of a sequence: no loss for predicting it
        cases.append((logits, tokens))
    return cases


LOSS_FAMILIES = [  # fitted when no table row explains the loss (families.py)
    Family("log of the softmax plus {value} (log(p + eps)) instead of log_softmax",
           lambda e: lambda lg, tk: (lambda n: n.sum() / (tk[:, 1:] != IGNORE_INDEX).sum())(
               _nll(lambda z: torch.log(z.softmax(-1) + e), lg, tk)),
           "An eps added inside the log changes every loss value (most for unlikely targets); log_softmax (inside "
           "cross_entropy) is exact and stable without one.", "F.cross_entropy, or log_softmax, with no eps",
           lo=1e-12, hi=1.0, correct=0.0, log=True),
]


GPT_LOSS_MISTAKES = [  # check_gpt's (gpt.py) loss from the right logits: (name, f(logits, targets), explanation, hint)
    ("targets shifted twice", lambda lg, tg: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)),
                                                             tg[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX),
     "Here targets are already shifted (targets[:, t] is the token after idx[:, t]); shifting again compares "
     "position t with the token two steps ahead.", "cross_entropy(logits.view(-1, V), targets.view(-1))"),
    ("targets flattened in another order than the logits (targets.T)",
     lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.T.reshape(-1), ignore_index=IGNORE_INDEX),
     "logits.view(-1, V) runs over (b, t) row by row; targets.T.reshape(-1) runs over them column by column, so "
     "the pairs no longer line up.", "targets.view(-1), the same order as the logits"),
    ("logits flattened in another order than the targets (logits transposed to (T, B, V))",
     lambda lg, tg: F.cross_entropy(lg.transpose(0, 1).reshape(-1, lg.size(-1)), tg.reshape(-1),
                                    ignore_index=IGNORE_INDEX),
     "logits.transpose(0, 1).reshape(-1, V) runs over (t, b), time-major; targets.reshape(-1) runs over (b, t), "
     "batch-major, so each prediction is scored against another position's (or sequence's) token. cross_entropy "
     "wants the classes on dim 1 (B, V, T), which is transpose(1, 2), not (0, 1).",
     "logits.view(-1, V) against targets.view(-1), or F.cross_entropy(logits.transpose(1, 2), targets)"),
    ("sum instead of mean", lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1),
                                                           ignore_index=IGNORE_INDEX, reduction="sum"),
     "The loss is the mean over the positions that have a target.", "reduction='mean' (the default)"),
    ("ignored positions counted in the mean",
     lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=IGNORE_INDEX,
                                    reduction="sum") / tg.numel(),
     "Positions whose target is -1 must not count in the number you divide by.", "ignore_index=-1 does it"),
    ("ignored targets (-1) counted as token 0 (clamped instead of ignore_index)",
     lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.clamp(min=0).reshape(-1)),
     "Targets equal to -1 mean 'no loss here'; clamping them to 0 makes the model learn to predict token 0 there.",
     "cross_entropy(..., ignore_index=-1) on the targets as they are"),
    ("softmax applied before cross_entropy",
     lambda lg, tg: F.cross_entropy(lg.softmax(-1).reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1),
     "F.cross_entropy takes raw logits.", "pass the logits straight in"),
    ("averaged per sequence, then over the batch", lambda lg, tg: (F.cross_entropy(lg.transpose(1, 2), tg,
     ignore_index=IGNORE_INDEX, reduction="none").sum(1) / (tg != IGNORE_INDEX).sum(1)).mean(),
     "The mean runs over all positions of the batch that have a target, at once; averaging each sequence first gives "
     "the positions of a short (or mostly ignored) sequence more weight.", "one mean over the (B*T) positions"),
    ("label smoothing", lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1),
                                                       ignore_index=IGNORE_INDEX, label_smoothing=0.1),
     "The language-model loss is plain cross-entropy; label_smoothing mixes a uniform target into it.",
     "leave label_smoothing at 0"),
    ("minus the probability instead of minus its log (nll_loss given probabilities)",
     lambda lg, tg: F.nll_loss(lg.softmax(-1).reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=IGNORE_INDEX),
     "F.nll_loss expects log-probabilities and returns minus the target's entry; given softmax probabilities it "
     "returns -p(target), which is not a likelihood and barely trains.",
     "F.cross_entropy on the logits (or nll_loss on log_softmax)"),
]



def check_loss(fn, seed: int = 0) -> CheckResult:
    """
    Check fn(logits, tokens): logits (B, T, V) are the model's outputs for tokens (B, T); the loss is the mean
    cross-entropy of predicting tokens[:, t + 1] from logits[:, t], skipping target tokens equal to -1.
    """
    exercise = "next-token loss"
    if not callable(fn):
        raise TypeError(f"check_loss expects your loss function, got {type(fn).__name__}")
    cases = _loss_cases(seed)
    describe = lambda lg, tk: f"logits of shape {tuple(lg.shape)} (seeded random), tokens = {tk.tolist()}"  # noqa: E731
    variants = [Variant(*row) for row in LOSS_MISTAKES] + _loss_pairs()
    prepare = lambda case: tuple(t.clone() for t in case)  # noqa: E731
    problem = check_cases(exercise, fn, cases, _reference_loss, variants, describe, atol=1e-5,
                          hint="F.cross_entropy over (B*T, V) logits and (B*T,) targets, ignore_index=-1",
                          crash_hint="targets equal to -1 must be skipped; logits (B, T, V), tokens (B, T)",
                          prepare=prepare)
    problem = refine(problem, fn, cases, LOSS_FAMILIES, prepare=prepare)
    if problem is not None and problem.property == "your code raised an exception" and _swapped_fits(fn, cases):
        return fail(exercise, "parameters in the other order (tokens, logits)", "Your function is right when called "
                    "as fn(tokens, logits); the exercise (and every caller) passes fn(logits, tokens).",
                    problem.explanation, "def next_token_loss(logits, tokens): logits first")
    if problem is None:  # right values: does the gradient reach the logits? (torch.tensor(loss) would cut it)
        problem = function_gradient_problem(exercise, fn, _reference_loss, cases[0], describe(*cases[0]), seed)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["next-token shift", "targets equal to -1 ignored",
                                                "three batch shapes"])


def _swapped_fits(fn, cases) -> bool:
    """fn(tokens, logits) gives the reference's loss on every case: the parameters declared in the other order."""
    try:
        with torch.no_grad():
            return all(close(fn(tk.clone(), lg.clone()), _reference_loss(lg, tk), atol=1e-5) for lg, tk in cases)
    except Exception:
        return False
