"""
Checking the pieces around the Blocks: the token + position embedding, the next-token loss, and a whole GPT.

The one idea: a language model's loss compares the prediction at position t with the token at position t + 1.
Forgetting the shift, shifting the wrong way, or counting positions that should be ignored all give a perfectly
plausible number, which is why these mistakes survive: the checker builds logits for which each of those
mistakes gives a *different* loss, and reports which one the student's number equals.

    from mingpt.exercises import check_embedding, check_loss, check_gpt
    check_embedding(MyEmbedding)   # MyEmbedding(config) with wte, wpe; forward(idx (B, T)) -> (B, T, C)
    check_loss(my_loss)            # my_loss(logits (B, T, V), tokens (B, T)) -> mean next-token cross-entropy
    check_gpt(MyGPT)               # MyGPT(config); forward(idx, targets=None) -> (logits, loss)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import (CheckResult, Variant, close, fail, first_match, fmt, run,
                                       student_with_reference_weights)
from mingpt.model import GPT, IGNORE_INDEX

__all__ = ["check_bigram", "check_embedding", "check_loss", "check_gpt"]


# ------------------------------------------------------------------------------------------ embedding
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
    idx = torch.tensor([[3, 3, 3, 3, 7], [1, 2, 3, 4, 5]])  # a repeated token: only its position tells them apart
    T = idx.shape[1]
    pos = torch.arange(T)
    variants = [
        Variant("position embedding missing", lambda i: wte[i],
                "Your output depends on the token only: the same token at positions 0 and 3 gets the same vector, "
                "so the model cannot know the order of its input.", "add a learned vector for each position t"),
        Variant("positions looked up by token id", lambda i: wte[i] + wpe[i],
                "The position table must be indexed by the position t = 0, 1, ..., T-1, not by the token id.",
                "build the positions with torch.arange"),
        Variant("positions start at 1", lambda i: wte[i] + wpe[pos + 1],
                "The first position is 0.", "torch.arange(T) starts at 0"),
        Variant("token and position embeddings concatenated instead of added",
                lambda i: torch.cat([wte[i], wpe[pos].expand(i.shape[0], -1, -1)], dim=-1)[..., : config.n_embd],
                "GPT adds the two vectors; both have C channels.", "x = token vectors + position vectors"),
    ]
    with torch.no_grad():
        out, problem = run(exercise, f"forward(idx) with idx of shape {tuple(idx.shape)}", student, idx)
        if problem is not None:
            return problem
        expected = wte[idx] + wpe[pos]
        if close(out, expected):
            return CheckResult(exercise, True, checked=["wte[idx] + wpe[t] for every position"])
        variant = first_match(out, variants, idx)
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            example = (f"idx[0] = {idx[0].tolist()}: token 3 at positions 0 and 3\nyours at t=0: {fmt(out[0, 0])}\n"
                       f"yours at t=3: {fmt(out[0, 3])}\nexpected t=3: {fmt(expected[0, 3])}")
        else:
            example = f"output shape {getattr(out, 'shape', type(out).__name__)}, expected {tuple(expected.shape)}"
        if variant is not None:
            return fail(exercise, variant.property, variant.explanation, example, variant.hint)
        return fail(exercise, "output differs from the reference", "Expected wte[idx] + wpe[arange(T)].", example,
                    hint="x = wte(idx) + wpe(positions), positions = 0..T-1")


# ------------------------------------------------------------------------------------------ loss
def _reference_loss(logits, tokens):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


def check_loss(fn, seed: int = 0) -> CheckResult:
    """
    Check fn(logits, tokens): logits (B, T, V) are the model's outputs for tokens (B, T); the loss is the mean
    cross-entropy of predicting tokens[:, t + 1] from logits[:, t], skipping target tokens equal to -1.
    """
    exercise = "next-token loss"
    if not callable(fn):
        raise TypeError(f"check_loss expects your loss function, got {type(fn).__name__}")
    g = torch.Generator().manual_seed(seed)
    B, T, V = 2, 6, 5
    logits = torch.randn(B, T, V, generator=g) * 2
    tokens = torch.randint(0, V, (B, T), generator=g)
    masked = tokens.clone()
    masked[0, 1:3] = IGNORE_INDEX  # e.g. the prompt part of a sequence: no loss for predicting it

    def flat(lg, tg, ignore=IGNORE_INDEX, reduction="mean"):
        return F.cross_entropy(lg.reshape(-1, V), tg.reshape(-1), ignore_index=ignore, reduction=reduction)

    variants = [
        Variant("targets not shifted", lambda lg, tk: flat(lg, tk),
                "logits[:, t] is the prediction of the *next* token, so its target is tokens[:, t + 1]; yours "
                "compares it with tokens[:, t], the token the model was given.", "drop one position at each end"),
        Variant("targets shifted the wrong way", lambda lg, tk: flat(lg[:, 1:], tk[:, :-1]),
                "Yours compares logits[:, t + 1] with tokens[:, t]: predicting the past.",
                "the *last* prediction has no target, the *first* token is never a target"),
        Variant("sum instead of mean", lambda lg, tk: flat(lg[:, :-1], tk[:, 1:], reduction="sum"),
                "The loss is the mean over the predicted positions, so it does not grow with the batch size.",
                "average over the positions that have a target"),
        Variant("softmax applied before cross_entropy",
                lambda lg, tk: flat(lg.softmax(-1)[:, :-1], tk[:, 1:]),
                "F.cross_entropy takes raw logits and applies log-softmax itself; giving it probabilities "
                "squashes the loss towards log(V).", "pass the logits straight in"),
        Variant("ignored targets counted in the mean",
                lambda lg, tk: flat(lg[:, :-1], tk[:, 1:].clamp(min=0), ignore=-100),
                "Targets equal to -1 mean 'no loss here'; yours turned them into real targets.",
                "tell cross_entropy which target value to ignore"),
    ]
    checked = []
    for label, tk in (("every position has a target", tokens), ("tokens[0, 1:3] = -1 (ignored)", masked)):
        loss, problem = run(exercise, f"your loss(logits {tuple(logits.shape)}, tokens {tuple(tk.shape)})",
                            fn, logits, tk)
        if problem is not None:
            if label.startswith("tokens") and isinstance(problem, CheckResult) and "-1" in problem.explanation:
                return fail(exercise, "ignore index not honoured", "Targets equal to -1 mean 'no loss here'; your "
                            "cross_entropy treated -1 as a class and failed.",
                            f"tokens[0] = {tk[0].tolist()}\nyour function raised: {problem.explanation}",
                            "tell cross_entropy which target value to ignore (mingpt uses -1)")
            return problem
        expected = _reference_loss(logits, tk)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            return fail(exercise, "the loss must be a scalar tensor", f"yours: {got}", hint="average it")
        if close(loss, expected, atol=1e-5):
            checked.append(label)
            continue
        variant = first_match(loss, variants, logits, tk)
        example = (f"logits of shape {tuple(logits.shape)} (seeded random), tokens[0] = {tk[0].tolist()}\n"
                   f"your loss {loss.item():.4f}, expected {expected.item():.4f}")
        if variant is not None:
            return fail(exercise, variant.property, variant.explanation, example, variant.hint)
        return fail(exercise, "loss differs from the reference", "No known mistake explains the difference.", example,
                    hint="F.cross_entropy over (B*T, V) logits and (B*T,) targets, ignore_index=-1")
    return CheckResult(exercise, True, checked=["next-token shift"] + checked)


# ------------------------------------------------------------------------------------------ whole GPT
def check_gpt(cls, seed: int = 0) -> CheckResult:
    """Check a whole GPT class: the reference's weights loaded by name, same logits and loss, no future leakage."""
    exercise = "GPT forward and loss"
    config = attention_config()
    config.n_layer = 2
    torch.manual_seed(seed)
    ref = GPT(config).eval()
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config)
    if problem is not None:
        return problem
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, config.vocab_size, (2, 6), generator=g)
    targets = torch.randint(0, config.vocab_size, (2, 6), generator=g)
    targets[0, :2] = IGNORE_INDEX
    with torch.no_grad():
        result, problem = run(exercise, "forward(idx, targets)", student, idx, targets)
        if problem is not None:
            return problem
        if not (isinstance(result, tuple) and len(result) == 2):
            return fail(exercise, "forward must return (logits, loss)", f"yours returned {type(result).__name__}",
                        hint="return logits, loss (loss None when targets is None)")
        logits, loss = result
        ref_logits, ref_loss = ref(idx, targets)
        if not close(logits, ref_logits, atol=1e-4):
            x = ref.transformer.wte(idx) + ref.transformer.wpe(torch.arange(6))
            for blk in ref.transformer.h:
                x = blk(x)
            no_ln_f = ref.lm_head(x)
            example = f"idx[0] = {idx[0].tolist()}\nyour logits[0, 0, :4] = {fmt(logits[0, 0])}\n" \
                      f"expected             {fmt(ref_logits[0, 0])}"
            if close(logits, no_ln_f, atol=1e-4):
                return fail(exercise, "final LayerNorm missing", "GPT-2 applies ln_f to the last Block's output "
                            "before lm_head.", example, "one more LayerNorm before the head")
            return fail(exercise, "logits differ from the reference", "Check your embedding, Block and head "
                        "one at a time with their own checkers.", example,
                        hint="run check_embedding, check_block and check_layernorm on your parts first")
        if not close(loss, ref_loss, atol=1e-4):
            return fail(exercise, "loss differs from the reference", "Your logits are right but the loss is not; "
                        "targets are already shifted here (targets[:, t] is the token after idx[:, t]) and -1 "
                        "means ignore.", f"your loss {float(loss):.4f}, expected {ref_loss.item():.4f}",
                        "F.cross_entropy over (B*T, V) logits and (B*T,) targets, ignore_index=-1")
        logits_only, problem = run(exercise, "forward(idx) without targets", student, idx)
        if problem is not None:
            return problem
        if not (isinstance(logits_only, tuple) and logits_only[1] is None):
            return fail(exercise, "without targets the loss must be None", "forward(idx) should return "
                        "(logits, None) so generation can call the model without targets.",
                        hint="if targets is None: loss = None")
    return CheckResult(exercise, True, checked=["same logits and loss as mingpt's GPT on the same weights",
                                                "loss None without targets"])



# ------------------------------------------------------------------------------------------ bigram
def check_bigram(cls, vocab_size: int = 6, seed: int = 0) -> CheckResult:
    """Check a bigram model: cls(vocab_size) with one (V, V) table; forward(idx) -> logits[b, t] = table[idx[b, t]]."""
    exercise = "bigram model"
    table = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed))
    student, problem = student_with_reference_weights(exercise, cls, {"table.weight": table}, vocab_size)
    if problem is not None:
        return problem
    idx = torch.tensor([[0, 3, 3, 5], [2, 1, 4, 0]])
    with torch.no_grad():
        out, problem = run(exercise, f"forward(idx) with idx of shape {tuple(idx.shape)}", student, idx)
    if problem is not None:
        return problem
    expected = table[idx]
    if close(out, expected):
        return CheckResult(exercise, True, checked=["logits[b, t] is the table row of token idx[b, t]"])
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return fail(exercise, "wrong output shape", f"idx {tuple(idx.shape)} must give logits {tuple(expected.shape)}; "
                    f"yours {got}.", hint="one row of V scores per input token: (B, T, V)")
    example = (f"idx[0] = {idx[0].tolist()}\nyour output[0, 1] = {fmt(out[0, 1], 6)}\n"
               f"expected (row 3 of the table) {fmt(expected[0, 1], 6)}")
    if close(out, expected.softmax(-1)):
        return fail(exercise, "returned probabilities, not logits", "The model returns raw scores (logits); the "
                    "loss (cross_entropy) applies the softmax itself.", example, "return the table rows as they are")
    if close(out[:, 1:], table[idx[:, :-1]]):
        return fail(exercise, "looked up the previous token", "The prediction at position t comes from the token "
                    "*at* t (it predicts t + 1).", example, "index the table with idx itself")
    return fail(exercise, "output differs from the reference", "Expected one table row per input token.", example,
                "an nn.Embedding(vocab_size, vocab_size) indexed by idx gives (B, T, V)")
