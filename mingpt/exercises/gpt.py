"""
Checking the pieces around the Blocks: a whole GPT (the token + position embedding has its own module, embedding.py).

The one idea: a whole GPT's mistakes are about the order
and number of its parts (a missing final LayerNorm, Blocks reversed or repeated) and about what it returns
(probabilities instead of logits, targets shifted twice). Each is rebuilt from the reference's own parts and
named only when it reproduces the student's output on every tested input. The loss and the bigram model have
their own module (loss.py).

    from mingpt.exercises import check_embedding, check_gpt
    check_embedding(MyEmbedding)   # MyEmbedding(config) with wte, wpe; forward(idx (B, T)) -> (B, T, C)
    check_gpt(MyGPT)               # MyGPT(config); forward(idx, targets=None) -> (logits, loss)
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.loading import student_with_reference_weights
from mingpt.exercises.compare import check_cases, explain, reports_in_place_edits, shape_problem
from mingpt.exercises.compose import pairs
from mingpt.exercises.gradients import gradient_problem
from mingpt.exercises.embedding import EMBEDDING_MISTAKES, _pos, check_embedding
from mingpt.exercises.loss import GPT_LOSS_MISTAKES
from mingpt.model import GPT, IGNORE_INDEX

__all__ = ["check_embedding", "check_gpt", "EMBEDDING_MISTAKES", "GPT_MISTAKES", "GPT_LOSS_MISTAKES"]


# ------------------------------------------------------------------------------------------ whole GPT
def _forward(ref, idx, blocks=None, ln_f=True, positions=True, out=lambda lg: lg, head=True, squeeze=False,
             token_scale=1.0, ln_f_each=False):
    """The reference's forward, with its parts rearranged: the variants below are this with one thing changed."""
    tr = ref.transformer
    t = torch.arange(idx.shape[1]) + (positions in ("from 1", "from 1 clamped"))
    t = t.clamp(max=ref.config.block_size - 1) if positions == "from 1 clamped" else t
    t = torch.arange(idx.shape[0])[:, None] if positions == "batch" else t  # sequence b at position b
    t = torch.arange(idx.shape[0]) if positions == "batch size" else t  # B positions, broadcast against (B, T, C)
    t = torch.arange(ref.config.block_size) if positions == "table" else t  # every row: fails unless T == block_size
    t = idx if positions == "token ids" else t  # wpe(idx): fails once an id reaches block_size
    x = tr.wte(idx) * token_scale + (tr.wpe(t.flip(0) if positions == "reversed" else t) if positions else 0)
    x = x.squeeze() if squeeze else x  # (1, T, C) -> (T, C) when B is 1
    for i in (range(len(tr.h)) if blocks is None else blocks):
        x = tr.h[i](x)
        x = tr.ln_f(x) if ln_f_each else x  # ln_f inside the loop: after every Block, the last one included
    x = tr.ln_f(x) if ln_f else x
    if head == "wte":  # the tied head written by hand, without the transpose
        return out(x @ tr.wte.weight)
    return out(ref.lm_head(x)) if head else x


GPT_MISTAKES = [  # logits: (name, f(reference model, idx), explanation, hint)
    ("the Blocks are never applied", lambda r, i: _forward(r, i, blocks=[]),
     "Your logits come straight from the embeddings (through ln_f and lm_head): the loop over the Blocks "
     "(transformer.h) does not run or does not update x.", "for block in self.transformer.h: x = block(x)"),
    ("final LayerNorm missing", lambda r, i: _forward(r, i, ln_f=False),
     "GPT-2 applies ln_f to the last Block's output before lm_head.", "one more LayerNorm before the head"),
    ("returned probabilities, not logits", lambda r, i: _forward(r, i, out=lambda lg: lg.softmax(-1)),
     "forward returns raw scores (logits); cross_entropy and generation apply the softmax themselves.",
     "return lm_head's output as it is"),
    ("returned log-probabilities, not logits", lambda r, i: _forward(r, i, out=lambda lg: lg.log_softmax(-1)),
     "forward returns raw scores (logits); cross_entropy applies log-softmax itself.", "return lm_head's output"),
    ("position embedding missing", lambda r, i: _forward(r, i, positions=False),
     "Without wpe the model cannot tell the order of its input.", "add wpe(torch.arange(T)) to the token vectors"),
    ("positions reversed", lambda r, i: _forward(r, i, positions="reversed"),
     "Position 0 is the first token of the sequence; yours gives it the last position's vector.",
     "wpe(torch.arange(T)), not counting down"),
    ("positions counted along the batch axis (torch.arange(B)): every token of sequence b at position b",
     lambda r, i: _forward(r, i, positions="batch"), "Positions run along the time axis, idx.shape[1]; yours gives "
     "all tokens of sequence b the vector wpe[b].", "wpe(torch.arange(T)) with T = idx.size(1)"),
    ("positions looked up by token id (wpe(idx))", lambda r, i: _forward(r, i, positions="token ids"),
     "wpe is indexed by the positions 0..T-1; yours indexes it with the token ids, which also runs past the table "
     "once an id reaches block_size (the vocabulary is usually larger).", "wpe(torch.arange(T))"),
    ("positions start at 1", lambda r, i: _forward(r, i, positions="from 1"),
     "The first position is 0; numbered from 1, the last position of a full block runs past the table.",
     "wpe(torch.arange(T))"),
    ("Blocks applied in reverse order", lambda r, i: _forward(r, i, blocks=range(len(r.transformer.h))[::-1]),
     "Block 0 reads the embeddings; yours runs the last Block first.", "for block in self.transformer.h"),
    ("the first Block used for every layer", lambda r, i: _forward(r, i, blocks=[0] * len(r.transformer.h)),
     "Each layer has its own Block with its own weights.", "loop over the Blocks, calling each one"),
    ("only the last Block applied", lambda r, i: _forward(r, i, blocks=[len(r.transformer.h) - 1]),
     "Every Block runs, one after the other, each on the previous one's output.", "x = block(x) inside the loop"),
    ("only the first Block applied", lambda r, i: _forward(r, i, blocks=[0]),
     "Every Block runs, one after the other, each on the previous one's output.", "x = block(x) inside the loop"),
    ("ln_f applied after lm_head", lambda r, i: F.layer_norm(_forward(r, i, ln_f=False), (r.lm_head.out_features,)),
     "ln_f normalises the C channels of the last Block's output, before lm_head.", "lm_head(ln_f(x))"),
    ("positions counted with idx.size(0), the batch size, instead of T = idx.size(1)",
     lambda r, i: _forward(r, i, positions="batch size"), "torch.arange(idx.size(0)) has B positions: added to "
     "(B, T, C) it fails when B != T, gives every token wpe[0] when B is 1, and is right only when B == T.",
     "T = idx.size(1) (idx is (B, T)); wpe(torch.arange(T))"),
    ("the whole position table added (torch.arange(block_size), not cut to T rows)",
     lambda r, i: _forward(r, i, positions="table"), "wpe(torch.arange(block_size)) is (block_size, C): added to "
     "(B, T, C) it fails unless T == block_size. The positions of a sequence are 0..T-1.",
     "T = idx.size(1); wpe(torch.arange(T))"),
    ("squeeze() drops the batch axis when B is 1", lambda r, i: _forward(r, i, squeeze=True),
     "x.squeeze() removes every axis of size 1: with one sequence (B = 1) the (1, T, C) stream becomes (T, C) and "
     "the Blocks fail on it (or, with T = 1 too, lose the time axis).",
     "no squeeze: keep x (B, T, C) whatever B is (squeeze(dim) names the one axis to drop, when you mean one)"),
    ("the tied head written as x @ wte.weight, without the transpose", lambda r, i: _forward(r, i, head="wte"),
     "wte.weight is (V, C): the logits are x @ wte.weight.T, (B, T, C) @ (C, V); without the transpose the "
     "matmul fails (or, when V == C, silently mixes the channels).", "self.lm_head(x), or x @ wte.weight.T"),
    ("ln_f applied after lm_head", lambda r, i: r.transformer.ln_f(_forward(r, i, ln_f=False)),
     "ln_f normalises the C channels of the last Block's output, before lm_head; after lm_head the logits have V "
     "channels, which ln_f (built for C) refuses.", "lm_head(ln_f(x))"),
    ("final LayerNorm applied to the embeddings, before the Blocks",
     lambda r, i: r.lm_head(_blocks(r, r.transformer.ln_f(r.transformer.wte(i) + r.transformer.wpe(_pos(i))))),
     "ln_f normalises the last Block's output, just before lm_head; yours normalises the embeddings instead.",
     "after the loop over the Blocks: x = ln_f(x); logits = lm_head(x)"),
    ("each Block's residual added again around it (x = x + block(x))",
     lambda r, i: r.lm_head(r.transformer.ln_f(_blocks(r, r.transformer.wte(i) + r.transformer.wpe(_pos(i)),
                                                       again=True))),
     "A Block already adds its branches to x and returns the new stream; x = x + block(x) counts the stream twice.",
     "x = block(x)"),
    ("final LayerNorm applied twice", lambda r, i: r.lm_head(r.transformer.ln_f(_forward(r, i, head=False))),
     "ln_f runs once, on the last Block's output; yours normalises its own output again.", "lm_head(ln_f(x)), once"),
    ("ln_f applied after every Block (inside the loop), not once after the last",
     lambda r, i: _forward(r, i, ln_f=False, ln_f_each=True),
     "The final LayerNorm runs once, after the whole stack; inside the loop it normalises the residual stream "
     "between Blocks too (each Block already normalises its own inputs with ln_1 and ln_2).",
     "after the loop: x = self.transformer.ln_f(x)"),
    ("positions start at 1 (and are clamped to the table's last row)",
     lambda r, i: _forward(r, i, positions="from 1 clamped"),
     "The first position is 0; yours counts from 1, and the clamp that stops a full block running past the table "
     "gives the last two positions the same vector.", "wpe(torch.arange(T)), no clamp"),
    ("token embedding scaled by sqrt(C)", lambda r, i: _forward(r, i, token_scale=r.config.n_embd ** 0.5),
     "The 2017 transformer multiplies its token embeddings by sqrt(d_model); GPT-2 adds wte(idx) and wpe(t) as "
     "they are.", "no scaling"),
]


def _blocks(ref, x, again=False):
    """The Blocks applied in order (again: x = x + block(x))."""
    for block in ref.transformer.h:
        x = x + block(x) if again else block(x)
    return x


@reports_in_place_edits
def check_gpt(cls, seed: int = 0) -> CheckResult:
    """Check a whole GPT class: the reference's weights loaded by name, same logits and loss, loss None without
    targets."""
    exercise = "GPT forward and loss"
    config = attention_config()
    config.n_layer = 2
    torch.manual_seed(seed)
    ref = GPT(config).eval()
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config)
    if problem is not None:
        return problem
    g = torch.Generator().manual_seed(seed + 1)
    cases = []
    for B, T in ((2, 6), (1, 8), (3, 3)):
        idx = torch.randint(0, config.vocab_size, (B, T), generator=g)
        targets = torch.randint(0, config.vocab_size, (B, T), generator=g)
        targets[0, :2] = IGNORE_INDEX
        cases.append((idx, targets))
    describe = lambda i, t=None: f"idx = {i.tolist()}" + (f", targets = {t.tolist()}" if t is not None else "")  # noqa: E731
    with torch.no_grad():
        results = []
        for idx, targets in cases:
            result, problem = run(exercise, f"forward({describe(idx, targets)})", student, idx, targets,
                                  hint="shapes: idx (B, T) -> x (B, T, C) -> logits (B, T, V)")
            if problem is not None:  # if the logits alone are already wrong, that is the first thing to fix
                shaped = _logits_problem(exercise, student, ref, idx, describe)
                if shaped is None:  # a crash a rebuilt mistake also has (positions from 1 past the table)
                    shaped = _crash_explained(exercise, student, ref, [(i,) for i, _ in cases], describe)
                problem = shaped if shaped is not None else problem  # a failed result is falsy: no `or`
                if "out of bounds" in problem.explanation and (targets == IGNORE_INDEX).any():
                    return fail(exercise, "ignore index not honoured", "Targets equal to -1 mean 'no loss here'.",
                                problem.explanation, "cross_entropy(..., ignore_index=-1)")
                return problem
            if not (isinstance(result, tuple) and len(result) == 2):
                return fail(exercise, "forward must return (logits, loss)", f"yours returned {type(result).__name__}",
                            describe(idx, targets), hint="return logits, loss (loss None when targets is None)")
            first, second = result
            if isinstance(second, torch.Tensor) and second.dim() == 3 and not (
                    isinstance(first, torch.Tensor) and first.dim() == 3):
                return fail(exercise, "returned (loss, logits): the order swapped",
                            f"The second value is the (B, T, V) logits {tuple(second.shape)} and the first the loss: "
                            "mingpt's callers (the Trainer, generate) unpack logits, loss = model(idx, targets).",
                            describe(idx, targets), hint="return logits, loss")
            results.append(result)
        problem = _logits_problem(exercise, student, ref, cases[0][0], describe, twice=True)
        if problem is not None:
            return problem
        logit_cases = [(i,) for i, _ in cases]
        variants = _gpt_variants(ref)
        problem = explain(exercise, logit_cases, [lg for lg, _ in results], lambda i: ref(i)[0], variants,
                          describe, atol=1e-4, hint="run check_embedding, check_block and check_layernorm on your "
                                                    "parts first")
        if problem is not None:  # the logits' mistake named: is the loss that of those logits, or a second slip?
            problem = _and_the_loss(problem, ref, variants, cases, results)
        if problem is None:  # the logits are right: now the loss, from the same logits
            problem = explain(exercise, [(ref(i)[0], t) for i, t in cases], [loss for _, loss in results], _ref_loss,
                              [Variant(*row) for row in GPT_LOSS_MISTAKES],
                              lambda lg, tg: f"your logits are right; targets = {tg.tolist()}", atol=1e-4,
                              hint="F.cross_entropy over (B*T, V) logits and (B*T,) targets, ignore_index=-1")
        if problem is not None:
            return problem
        logits_only, problem = run(exercise, "forward(idx) without targets", student, cases[0][0])
        if problem is not None and "NoneType" in str(problem):  # the same forward ran with targets: used without
            return fail(exercise, "the loss computed even when targets is None",
                        "With targets your forward is right; without them it still uses targets (None) for the loss. "
                        "Generation calls the model without targets and needs (logits, None).",
                        problem.explanation, "if targets is None: loss = None; else: the cross-entropy")
        if problem is not None:
            return problem
        if not (isinstance(logits_only, tuple) and logits_only[1] is None):
            return fail(exercise, "without targets the loss must be None", "forward(idx) should return "
                        "(logits, None) so generation can call the model without targets.", describe(cases[0][0]),
                        hint="if targets is None: loss = None")
    problem = _gradient(exercise, student, ref, cases[0][0], seed)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["same logits and loss as mingpt's GPT on the same weights, 3 shapes",
                                                "loss None without targets"])


class _Logits(nn.Module):
    """model(idx)[0], as a module with the model's parameter names (under "model."), for gradient_problem."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, idx):
        return self.model(idx)[0]


def _gradient(exercise, student, ref, idx, seed) -> CheckResult | None:
    """Right logits and loss: does training reach every parameter (embeddings not looked up under no_grad, no .data)?
    Compared only when the student ties wte and lm_head as the reference does (an untied head's gradients split)."""
    wte, head = (getattr(getattr(student, "transformer", None), "wte", None), getattr(student, "lm_head", None))
    if not (isinstance(wte, nn.Embedding) and isinstance(head, nn.Linear) and wte.weight is head.weight):
        return None
    return gradient_problem(exercise, _Logits(student), _Logits(ref), idx, seed)


def _gpt_variants(ref) -> list[Variant]:
    """GPT_MISTAKES, then two of its _forward-knob rows at once (compose.pairs: no ln_f *and* no positions)."""
    knobs = {"final LayerNorm missing": dict(ln_f=False), "position embedding missing": dict(positions=False),
             "positions reversed": dict(positions="reversed"), "positions start at 1": dict(positions="from 1"),
             "token embedding scaled by sqrt(C)": dict(token_scale=ref.config.n_embd ** 0.5),
             "returned probabilities, not logits": dict(out=lambda lg: lg.softmax(-1)),
             "returned log-probabilities, not logits": dict(out=lambda lg: lg.log_softmax(-1))}
    singles = [Variant(n, (lambda f: lambda i: f(ref, i))(f), w, h, knobs.get(n)) for n, f, w, h in GPT_MISTAKES]
    return singles + pairs(lambda i, **kw: _forward(ref, i, **kw), singles)


def _logits_of(student, idx):
    out = student(idx)
    return out[0] if isinstance(out, tuple) and out else out


def _crash_explained(exercise, student, ref, logit_cases, describe) -> CheckResult | None:
    """forward(idx) raised: a logits mistake that raises the same exception on the same inputs and reproduces the
    others (compare.check_cases) is named; None otherwise (the crash itself is then shown)."""
    variants = _gpt_variants(ref)
    found = check_cases(exercise, lambda i: _logits_of(student, i), logit_cases, lambda i: ref(i)[0], variants,
                        describe, atol=1e-4)
    return found if found is not None and found.property in {v.property for v in variants} else None


def _and_the_loss(problem: CheckResult, ref, variants, cases, results) -> CheckResult:
    """The logits were explained by one mistake: the loss must be the cross-entropy of those logits (or of the raw
    logits, when the slip comes after the loss was taken). If it is not,
    but a loss mistake applied to them reproduces every loss, name both; if nothing does, say the loss differs too
    rather than let one name stand for two slips."""
    variant = next((v for v in variants if v.property == problem.property), None)
    if variant is None or any(loss is None for _, loss in results):
        return problem
    # The loss may come from the logits returned or from the raw ones (a softmax applied after the loss was taken).
    sources = [[variant.compute(i) for i, _ in cases], [ref(i)[0] for i, _ in cases]]
    losses = [loss for _, loss in results]
    fits = lambda f: any(all(torch.allclose(torch.as_tensor(x).double(), f(lg, t).double(), atol=1e-4)  # noqa: E731
                             for x, lg, (_, t) in zip(losses, logits, cases)) for logits in sources)
    if fits(_ref_loss):
        return problem
    for name, f, why, hint in GPT_LOSS_MISTAKES:
        if fits(f):
            return fail(problem.exercise, f"{problem.property}, and {name}", f"Two mistakes at once. "
                        f"{problem.explanation} And in the loss: {why}", problem.counterexample,
                        f"{problem.hint}; {hint}")
    return fail(problem.exercise, f"{problem.property}; the loss also differs (not recognised)",
                f"{problem.explanation} Your loss is not the cross-entropy of your own logits either, and no known "
                "loss mistake explains it.", problem.counterexample, problem.hint)


def _ref_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def _logits_problem(exercise, student, ref, idx, describe, twice=False) -> CheckResult | None:
    """forward(idx) without targets: a failed result when its logits have the wrong shape or type, or (twice) when
    two calls in eval mode differ (a dropout left on); None otherwise, or when this call itself raises."""
    try:
        first = student(idx)
        second = student(idx) if twice else first
    except Exception:
        return None
    logits = first[0] if isinstance(first, tuple) and first else first
    problem = shape_problem(logits, ref(idx)[0])
    if problem is not None:
        return fail(exercise, problem[0], f"The logits {problem[1]}.", describe(idx),
                    "logits for every position: (B, T, V)")
    again = second[0] if isinstance(second, tuple) and second else second
    if isinstance(logits, torch.Tensor) and isinstance(again, torch.Tensor) and not torch.equal(logits, again):
        return fail(exercise, "dropout active in eval mode", "In eval mode the same idx must give the same logits; "
                    "yours change from run to run.", describe(idx),
                    "use the nn.Dropout modules (self.transformer.drop), which model.eval() switches off")
    return None
