"""
Checking the token + position embedding (split from gpt.py, which checks the whole GPT).

The one idea: the embedding is the only place a transformer learns *where* a token is, so its mistakes are about
positions (missing, numbered from the token ids, from 1, from the wrong end, counted along the batch axis). Each is
rebuilt from the reference's tables and named only when it reproduces the student's output (or the student's very
exception) on every tested input.

    from mingpt.exercises import check_embedding
    check_embedding(MyEmbedding)   # MyEmbedding(config) with wte, wpe; forward(idx (B, T)) -> (B, T, C)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.state import module_state_problem
from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.loading import names_differ, student_with_reference_weights
from mingpt.exercises.compare import NOT_RECOGNISED, check_cases, reports_in_place_edits
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.gradients import gradient_problem

__all__ = ["check_embedding", "EMBEDDING_MISTAKES"]


# ------------------------------------------------------------------------------------------ embedding
def _pos(i, offset=0):
    return torch.arange(i.shape[1]) + offset


EMBEDDING_MISTAKES = [  # (name, f(wte, wpe, idx), explanation, hint)
    ("position embedding missing", lambda te, pe, i: te[i],
     "Your output depends on the token only: the same token at positions 0 and 3 gets the same vector, so the "
     "model cannot know the order of its input.", "add a learned vector for each position t"),
    ("token embedding missing", lambda te, pe, i: pe[_pos(i)].expand(i.shape[0], -1, -1),
     "Your output depends on the position only: every token at position t gets the same vector.",
     "add the token's own vector, wte(idx)"),
    ("positions looked up by token id", lambda te, pe, i: te[i] + pe[i],
     "The position table must be indexed by the position t = 0, 1, ..., T-1, not by the token id.",
     "build the positions with torch.arange"),
    ("positions start at 1", lambda te, pe, i: te[i] + pe[_pos(i, 1)], "The first position is 0.",
     "torch.arange(T) starts at 0"),
    ("positions start at 2 (OPT's offset)", lambda te, pe, i: te[i] + F.embedding(_pos(i, 2), pe),
     "OPT's learned position table keeps two extra rows and starts at 2; GPT-2's first position is 0.",
     "torch.arange(T) starts at 0"),
    ("positions start at 1 (and are clamped to the table's last row)",
     lambda te, pe, i: te[i] + pe[_pos(i, 1).clamp(max=pe.shape[0] - 1)],
     "The first position is 0; yours counts from 1, and the clamp that stops a full block running past the table "
     "gives the last two positions the same vector.", "torch.arange(T) starts at 0; no clamp needed"),
    ("positions reversed", lambda te, pe, i: te[i] + pe[_pos(i).flip(0)],
     "Position 0 is the first token of the sequence; yours gives it the last position's vector.",
     "torch.arange(T), not counting down"),
    ("positions taken from the end of the table", lambda te, pe, i: te[i] + pe[pe.shape[0] - i.shape[1]:],
     "The first token gets wpe[0] whatever the sequence length; yours uses the last T rows of the table.",
     "wpe(torch.arange(T))"),
    ("every position gets position 0", lambda te, pe, i: te[i] + pe[0],
     "Each position t has its own vector wpe[t]; yours adds wpe[0] everywhere.", "wpe(torch.arange(T))"),
    ("positions numbered along the batch axis", lambda te, pe, i: te[i] + pe[torch.arange(i.shape[0])][:, None],
     "Positions count along the time axis (dim 1 of idx), not the batch axis.", "torch.arange(idx.shape[1])"),
    ("positions counted with idx.size(0), the batch size, instead of T = idx.size(1)",
     lambda te, pe, i: te[i] + pe[torch.arange(i.shape[0])], "torch.arange(idx.size(0)) has B positions: added to "
     "(B, T, C) it fails when B != T, gives every token wpe[0] when B is 1, and is right only when B == T.",
     "T = idx.size(1) (idx is (B, T))"),
    ("token and position embeddings multiplied", lambda te, pe, i: te[i] * pe[_pos(i)],
     "GPT adds the two vectors.", "x = token vectors + position vectors"),
    ("token embedding scaled by sqrt(C)", lambda te, pe, i: te[i] * math.sqrt(te.shape[1]) + pe[_pos(i)],
     "The 2017 transformer scales its token embeddings by sqrt(C); GPT-2 does not.", "no scaling"),
    ("token and position tables swapped", lambda te, pe, i: pe[i] + te[_pos(i)],
     "wte is indexed by the token ids, wpe by the positions; yours uses each table for the other's job.",
     "wte(idx) + wpe(positions)"),
    ("token and position embeddings concatenated instead of added",
     lambda te, pe, i: torch.cat([te[i], pe[_pos(i)].expand(i.shape[0], -1, -1)], dim=-1)[..., : te.shape[1]],
     "GPT adds the two vectors; both have C channels.", "x = token vectors + position vectors"),
    ("token and position embeddings concatenated (B, T, 2C) instead of added",
     lambda te, pe, i: torch.cat([te[i], pe[_pos(i)].expand(i.shape[0], -1, -1)], dim=-1),
     "torch.cat puts the two vectors side by side, 2C channels; GPT adds them, keeping C.",
     "x = token vectors + position vectors"),
    ("every position gets the last position's vector", lambda te, pe, i: te[i] + pe[i.shape[1] - 1],
     "Each position t has its own vector wpe[t]; yours adds wpe[T - 1] everywhere.", "wpe(torch.arange(T))"),
    ("the whole position table added (not cut to T rows)", lambda te, pe, i: te[i] + pe,
     "wpe.weight has block_size rows; a sequence of T tokens uses the first T of them.",
     "wpe(torch.arange(T)), or wpe.weight[:T]"),
    ("positions looked up in the token table (wte)", lambda te, pe, i: te[i] + te[_pos(i)],
     "Both lookups use wte: the position vectors must come from the position table wpe.", "wpe(torch.arange(T))"),
    ("token ids shifted by one (wte(idx + 1))", lambda te, pe, i: te[(i + 1).clamp(max=te.shape[0] - 1)]
     + pe[_pos(i)], "Token id n reads row n of wte; yours reads row n + 1.", "wte(idx), the ids as they are"),
    ("position vectors summed cumulatively (cumsum)", lambda te, pe, i: te[i] + pe[_pos(i)].cumsum(0),
     "Position t adds its own vector wpe[t]; yours adds wpe[0] + ... + wpe[t].", "wpe(torch.arange(T)), no cumsum"),
    *[(f"a LayerNorm applied to the sum (BERT's embeddings end with one; eps {e:g})",
       (lambda e: lambda te, pe, i: F.layer_norm(te[i] + pe[_pos(i)], (te.shape[1],), eps=e))(e),
       "BERT normalises its embeddings before the first layer; GPT-2 adds the two vectors and hands the sum to the "
       "first Block as it is (each Block normalises its own input with ln_1).", "return wte(idx) + wpe(positions), "
       "no normalisation") for e in (1e-5, 1e-12)],
    *[(f"positions computed from the token ids, RoBERTa-style (padding_idx {p}: cumsum of idx != {p}, plus {p})",
       (lambda p: lambda te, pe, i: te[i] + F.embedding((i != p).long().cumsum(1) * (i != p) + p, pe))(p),
       "RoBERTa numbers its positions from the padding mask, starting after padding_idx; GPT-2's position t is "
       "simply 0, 1, ..., T-1, whatever the tokens.", "torch.arange(T)") for p in (0, 1)],
    ("positions given an extra dimension (arange(T)[:, None])", lambda te, pe, i: te[i] + pe[_pos(i)[:, None]],
     "wpe(arange(T)[:, None]) has shape (T, 1, C), which broadcasts against (B, T, C) as if T were the batch: "
     "an error, or a (T, T, C) tensor when B is 1.", "wpe(torch.arange(T)) has shape (T, C) and broadcasts over B"),
]


def _embed(te, pe, i, start=0, token_scale=1.0, positions="arange", combine="add"):
    """The reference embedding with a knob per part, so that compose.pairs can apply two slips at once
    (positions from 1 *and* the token vectors scaled by sqrt(C))."""
    tok = te[i] * token_scale
    if positions == "none":
        return tok
    t = {"arange": _pos(i, start), "reversed": _pos(i, start).flip(0), "token ids": i}[positions]
    pos = F.embedding(t, pe)  # a lookup as nn.Embedding does it, so a position past the table raises its error
    return tok * pos if combine == "multiply" else tok + pos


def _embedding_knobs(te, pe) -> list[Variant]:
    base = lambda i, **kw: _embed(te, pe, i, **kw)  # noqa: E731
    singles = [knob(base, "positions start at 1", dict(start=1), "The first position is 0.",
                    "torch.arange(T) starts at 0"),
               knob(base, "positions start at 2 (OPT's offset)", dict(start=2), "OPT's learned position table "
                    "keeps two extra rows and starts at 2; GPT-2's first position is 0.", "torch.arange(T)"),
               knob(base, "token embedding scaled by sqrt(C)", dict(token_scale=math.sqrt(te.shape[1])),
                    "The 2017 transformer scales its token embeddings by sqrt(C); GPT-2 does not.", "no scaling"),
               knob(base, "positions reversed", dict(positions="reversed"),
                    "Position 0 is the first token; yours gives it the last position's vector.", "torch.arange(T)"),
               knob(base, "positions looked up by token id", dict(positions="token ids"),
                    "The position table is indexed by t = 0..T-1, not by the token id.", "torch.arange(T)"),
               knob(base, "token and position embeddings multiplied", dict(combine="multiply"),
                    "GPT adds the two vectors.", "x = token vectors + position vectors"),
               knob(base, "position embedding missing", dict(positions="none"),
                    "Without wpe the model cannot know the order of its input.", "add wpe(torch.arange(T))")]
    return pairs(base, singles)


@reports_in_place_edits
def check_embedding(cls, seed: int = 0) -> CheckResult:
    """Check a token + position embedding module: x[b, t] = wte[idx[b, t]] + wpe[t]."""
    exercise = "token + position embedding"
    config = attention_config()
    g = torch.Generator().manual_seed(seed)
    wte = torch.randn(config.vocab_size, config.n_embd, generator=g)
    wpe = torch.randn(config.block_size, config.n_embd, generator=g)
    student, problem = student_with_reference_weights(exercise, cls, {"wte.weight": wte, "wpe.weight": wpe}, config)
    if problem is not None:
        return problem
    # A repeated token (only its position tells them apart), batches 2, 1, 3, lengths 5, 8 (= block_size), 3; ids below
    # block_size, so that a position table indexed by token ids shows as a wrong value, not a crash.
    cases = [(torch.tensor([[3, 3, 3, 3, 7], [1, 2, 3, 4, 5]]),), (torch.tensor([[6, 0, 1, 5, 4, 2, 7, 3]]),),
             (torch.tensor([[2, 5, 0], [7, 7, 1], [4, 6, 6]]),)]
    variants = [Variant(name, (lambda f: lambda i: f(wte, wpe, i))(f), why, hint)
                for name, f, why, hint in EMBEDDING_MISTAKES] + _embedding_knobs(wte, wpe)
    with torch.no_grad():
        out, again = (run(exercise, "forward(idx)", student, *cases[0])[0] for _ in range(2))
        if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and out.shape == again.shape \
                and not torch.equal(out, again):  # eval mode: the same idx must give the same vectors
            return fail(exercise, "dropout active in eval mode", "In eval mode the same input must give the same "
                        "output; yours changes from run to run.", f"idx = {cases[0][0].tolist()} twice -> "
                        f"{out[0, 0, :3].tolist()} then {again[0, 0, :3].tolist()}",
                        "self.drop = nn.Dropout(p), which model.eval() turns off; not F.dropout(x, p)")
        problem = check_cases(exercise, student, cases, lambda i: wte[i] + wpe[_pos(i)], variants,
                              lambda i: f"idx = {i.tolist()}", atol=1e-5,
                              hint="x = wte(idx) + wpe(positions), positions = 0..T-1",
                              crash_hint="idx is (B, T): the positions are 0..T-1 along dim 1")
        if problem is not None and problem.property == NOT_RECOGNISED:
            found = _position_part(exercise, student, cases, wte, wpe)
            problem = found if found is not None else problem  # a failed result is falsy: no `or`
        if problem is not None:  # each idx right on a new module, wrong after another call: kept state
            stale = module_state_problem(exercise, lambda: student_with_reference_weights(
                exercise, cls, {"wte.weight": wte, "wpe.weight": wpe}, config)[0], cases,
                lambda i: wte[i] + wpe[_pos(i)], lambda i: f"idx = {i.tolist()}")
            problem = problem if stale is None else stale
    if problem is None:  # right vectors: do both tables get their gradient (no .data, .detach or no_grad)?
        problem = gradient_problem(exercise, student, _Reference(wte, wpe), cases[0][0], seed)
    if problem is None:  # right vectors: are the tables the exercise's two nn.Embedding, wte and wpe?
        problem = names_differ(exercise, student, ["wte.weight", "wpe.weight"], "self.wte = nn.Embedding(vocab_size, "
                               "C) and self.wpe = nn.Embedding(block_size, C), as the exercise names them")
    return problem if problem is not None else CheckResult(exercise, True, checked=[
        "wte[idx] + wpe[t] for every position, on 3 batch shapes"])


class _Reference(nn.Module):
    """The reference embedding as a module, its tables named as the exercise's, for the gradient comparison."""

    def __init__(self, wte, wpe):
        super().__init__()
        self.wte, self.wpe = (nn.Embedding.from_pretrained(t.clone(), freeze=False) for t in (wte, wpe))

    def forward(self, idx):
        return self.wte(idx) + self.wpe(_pos(idx))


def _position_part(exercise, student, cases, wte, wpe) -> CheckResult | None:
    """A relation for position mistakes no table lists: take the token part away (yours - wte[idx]); if what is left
    depends on the position only, and each position t's vector is c * wpe[j] for one factor c, name the rows j."""
    rows, factor, foreign = [], None, False
    for (idx,) in cases:
        out = student(idx)
        if not isinstance(out, torch.Tensor) or out.shape != idx.shape + (wte.shape[1],):
            return None
        part = (out - wte[idx]).double()
        if not torch.allclose(part, part[:1].expand_as(part), atol=1e-5):
            return None  # depends on the tokens too: not a position-only mistake
        ours = []
        for p in part[0]:
            match = None
            for j, w in enumerate(wpe.double()):
                c = float((p @ w) / (w @ w))
                if torch.allclose(p, c * w, atol=1e-5) and (factor is None or math.isclose(c, factor, rel_tol=1e-4)):
                    match = j
                    break
            if match is None:  # position-only, yet no row of wpe: say so (the table it came from is unknown)
                foreign = True
                break
            factor = c if factor is None else factor
            ours.append(match)
        rows.append(ours)
    if foreign:
        return fail(exercise, "position vectors that are not rows of wpe",
                    "The token part is right, and what you add to it depends on the position only, but it is not "
                    "a row of wpe (the learned table whose weights were loaded), nor a multiple of one.",
                    f"idx = {cases[0][0].tolist()}", "wpe(torch.arange(T)): the model's own position table")
    if factor is None or all(r == list(range(len(r))) for r in rows) and math.isclose(factor, 1.0, rel_tol=1e-4):
        return None
    scaled = "" if math.isclose(factor, 1.0, rel_tol=1e-4) else f", multiplied by {factor:.4g}"
    longest = max(rows, key=len)
    return fail(exercise, "wrong position vectors" + (" (scaled)" if scaled else ""),
                f"The token part is right. Position t gets the row wpe[j] listed below{scaled}; it should get "
                f"wpe[t], rows 0, 1, ..., T - 1.", f"for T = {len(longest)}: your rows j = {longest}",
                "wpe(torch.arange(T)), added as it is")
