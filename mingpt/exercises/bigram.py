"""
Checking the bigram model (the first notebook's first exercise): one (V, V) table whose row for a token holds the
logits of the next one. The checker loads a known table into the student's model and compares the logits on several
batches (one without the largest id, which F.one_hot without num_classes gets wrong); a mistake is named only when
a rebuilt variant reproduces every output. Training must reach the table (a .detach() would not show in the
logits), and bigram_entropy gives the loss a perfect bigram model reaches on a text, the floor a trained one nears.

    from mingpt.exercises import check_bigram
    check_bigram(Bigram)    # Bigram(vocab_size) with one (V, V) table; forward(idx) -> logits (B, T, V)
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, fail
from mingpt.exercises.loading import student_with_reference_weights
from mingpt.exercises.compare import TYPE_PROBLEMS, check_cases, reports_in_place_edits, same
from mingpt.exercises.gradients import gradient_problem
from mingpt.exercises.state import module_state_problem

__all__ = ["check_bigram", "bigram_entropy", "BIGRAM_MISTAKES"]


BIGRAM_MISTAKES = [  # (name, f(table, idx), explanation, hint)
    ("returned probabilities, not logits", lambda tb, i: tb[i].softmax(-1),
     "The model returns raw scores (logits); the loss (cross_entropy) applies the softmax itself.",
     "return the table rows as they are"),
    ("returned log-probabilities, not logits", lambda tb, i: tb[i].log_softmax(-1),
     "The model returns raw scores (logits); the loss applies log-softmax itself.",
     "return the table rows as they are"),
    ("table read by column", lambda tb, i: tb.t()[i],
     "Row idx of the table holds the scores of the token that follows idx; yours reads column idx.",
     "table(idx), or table.weight[idx]"),
    ("softmax over the positions (dim=1), not the vocabulary", lambda tb, i: tb[i].softmax(1),
     "The model returns raw scores (logits); yours also normalises them, and over the time axis at that.",
     "return the table rows as they are"),
    ("log-softmax over the positions (dim=1), not the vocabulary", lambda tb, i: tb[i].log_softmax(1),
     "The model returns raw scores (logits); yours also takes a log-softmax, and over the time axis at that.",
     "return the table rows as they are"),
    ("probabilities normalised down the table's columns (softmax(dim=0)) before the lookup",
     lambda tb, i: tb.softmax(0)[i], "The model returns raw scores (logits); yours normalises the table, and over "
     "its first axis, so the rows are not even distributions.", "return the table rows as they are"),
    ("returned exp(logits) (counts), not logits", lambda tb, i: tb[i].exp(),
     "The table holds log-counts (logits); exponentiating gives the unnormalised counts, which the loss would "
     "take for logits.", "return the table rows as they are"),
    ("each position's row averaged with the earlier positions' rows (a running mean)",
     lambda tb, i: tb[i].cumsum(1) / torch.arange(1, i.shape[1] + 1).view(1, -1, 1),
     "A bigram model predicts the next token from the current one alone: logits[b, t] = table[idx[b, t]]. Yours "
     "averages the rows of tokens 0..t, mixing in the earlier context (that is the next notebook's idea).",
     "table(idx), nothing mixed across positions"),
    ("every position predicted from the sequence's first token", lambda tb, i: tb[i[:, :1]].expand(-1, i.shape[1], -1),
     "A bigram model predicts each next token from the current one: logits[b, t] = table[idx[b, t]]. Yours gives "
     "every position the row of idx[b, 0], the first token (an idx[:, 0] or idx[:, :1] where idx was meant).",
     "table(idx): one row per position"),
    ("F.one_hot without num_classes (too few columns when the batch lacks the largest id)",
     lambda tb, i: F.one_hot(i).to(tb.dtype) @ tb,
     "F.one_hot(idx) makes max(idx) + 1 columns, not vocab_size: the product with the (V, V) table fails (or "
     "reads the wrong rows) on a batch without the largest token id.", "F.one_hot(idx, num_classes=vocab_size)"),
    # "the model predicts the NEXT token" read as "look up the next token's row": the shift belongs to the targets
    # (the loss compares logits[:, t] with idx[:, t + 1]), never to the lookup
    ("looked up the row of id idx + 1 (the next id), not of idx", lambda tb, i: tb[(i + 1) % tb.shape[0]],
     "Row idx of the table already holds the scores of the token that follows idx; the shift to the next token is "
     "in the targets of the loss, not in the lookup. Yours reads the row of id idx + 1 (wrapping round at V).",
     "table(idx): the row of the current token itself"),
    ("sequence reversed in time (idx.flip(1)) before the lookup", lambda tb, i: tb[i.flip(1)],
     "logits[b, t] must be the row of idx[b, t], the token at position t; yours reads the positions right to left, "
     "so position t gets the row of the token at T - 1 - t (only a middle position, when T is odd, stays right).",
     "table(idx), positions in their order"),
    # the counts -> probabilities habit of the counting bigram (N / N.sum(1)) applied to logits, which can be negative
    ("each row divided by its sum (counts normalised to probabilities), not logits",
     lambda tb, i: tb[i] / tb[i].sum(-1, keepdim=True),
     "The model returns raw scores (logits), which may be negative and need not sum to anything; dividing a row by "
     "its sum is the counting bigram's step (counts -> probabilities), and the loss applies the softmax itself.",
     "return the table rows as they are"),
]
# A student can read the table by column *and* normalise the rows: each output transform paired with the column read.
BIGRAM_PAIRS = [(n, lambda tb, i, f=f: f(tb.t(), i), "Two mistakes: the table is read by column (row idx holds "
                 "the next token's scores), and " + why[0].lower() + why[1:], "table(idx), as it is")
                for n, f, why, _ in BIGRAM_MISTAKES if n != "table read by column"]


@reports_in_place_edits
def check_bigram(cls, vocab_size: int = 6, seed: int = 0) -> CheckResult:
    """Check a bigram model: cls(vocab_size) with one (V, V) table; forward(idx) -> logits[b, t] = table[idx[b, t]]."""
    exercise = "bigram model"
    table = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed))
    student, problem = student_with_reference_weights(exercise, cls, {"table.weight": table}, vocab_size)
    if problem is not None:
        return problem
    # the last case has no id V - 1: F.one_hot(idx) without num_classes makes too few columns there
    cases = [(torch.tensor([[0, 3, 3, 5], [2, 1, 4, 0]]),), (torch.tensor([[5, 4, 1]]),), (torch.tensor([[1, 0, 2]]),)]
    variants = [Variant(name, (lambda f: lambda i: f(table, i))(f), why, hint)
                for name, f, why, hint in BIGRAM_MISTAKES]
    variants += [Variant(f"two mistakes: table read by column; and {name}", (lambda f: lambda i: f(table, i))(f),
                         why, hint) for name, f, why, hint in BIGRAM_PAIRS]
    with torch.no_grad():
        problem = check_cases(exercise, student, cases, lambda i: table[i], variants,
                              lambda i: f"idx = {i.tolist()}", atol=1e-5,
                              hint="an nn.Embedding(vocab_size, vocab_size) indexed by idx gives (B, T, V)",
                              crash_hint="idx is (B, T) token ids and the table (V, V): table(idx) is (B, T, V)")
        if problem is not None and problem.property not in {v.property for v in variants}:
            # no rebuilt slip explains it: is each batch right on a new model, and wrong only after an earlier
            # call (logits or ids cached on the module)? Then that state is the cause, not the shape it shows.
            fresh = lambda: student_with_reference_weights(exercise, cls, {"table.weight": table}, vocab_size)[0]  # noqa
            kept = module_state_problem(exercise, fresh, cases, lambda i: table[i], lambda i: f"idx = {i.tolist()}")
            problem = problem if kept is None else kept
        if problem is not None and problem.property in TYPE_PROBLEMS:
            tupled = _logits_in_a_tuple(exercise, student, cases, table)
            problem = problem if tupled is None else tupled  # (a failed CheckResult is falsy: no `or` here)
    if problem is None:  # right logits: does training reach the table? (a .detach() would not show above)
        ref = _Bigram(vocab_size)
        with torch.no_grad():
            ref.table.weight.copy_(table)
        problem = gradient_problem(exercise, student, ref, cases[0][0], seed)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["logits[b, t] is the table row of token idx[b, t]"])


class _Bigram(nn.Module):
    """The reference bigram model, for the gradient comparison (its parameter is named as the exercise's)."""

    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx)


def _logits_in_a_tuple(exercise, student, cases, table):
    """The right logits as the first item of a tuple on every case: the (logits, loss) of a training-ready forward."""
    for (idx,) in cases:
        out = student(idx)
        if not (isinstance(out, (tuple, list)) and out and same(out[0], table[idx])):
            return None
    return fail(exercise, "returned a tuple (logits, ...), not the logits", "Your forward returns a "
                f"{type(out).__name__} of {len(out)} whose first item is right; the checker (and the loss exercise) "
                "calls model(idx) and expects the logits tensor alone.", f"idx = {idx.tolist()}: yours is a "
                f"{type(out).__name__}, item 0 has the expected shape {tuple(out[0].shape)}",
                "return logits only here; compute the loss outside the model (or behind an optional targets=)")


def bigram_entropy(data: torch.Tensor, vocab_size: int) -> float:
    """The lowest loss a bigram model can reach on data (nats): the entropy of the next token given the current one.
    A training loss far *below* it means the model was trained on the wrong task (e.g. an unshifted loss)."""
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((data[:-1].long(), data[1:].long()), torch.ones(len(data) - 1, dtype=torch.float64),
                      accumulate=True)
    p = counts / counts.sum(1, keepdim=True).clamp(min=1)
    return float(-(counts * p.clamp(min=1e-300).log()).sum() / counts.sum())
