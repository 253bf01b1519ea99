"""
Checking a student's next-token choice: greedy, and the distribution sampled from (temperature, top-k, top-p).

The one idea: sampling is random, but the *distribution* it samples from is not. So the exercise asks for the
probabilities, and the checker tests their properties: they sum to 1, a lower temperature makes them sharper,
top-k leaves the k most likely tokens (with ties at the k-th: all of them, as mingpt and Hugging Face do, or
exactly k of them; which tied token stays is arbitrary, so both are right), and top-p keeps the most likely tokens
up to and *including* the one that crosses p (so the kept mass is at least p), never the unlikely tail.
sampling_edges.py holds the edge inputs: ties (either tie-break is right) and large logits (where a softmax written
as exp / sum overflows).

    from mingpt.exercises import check_greedy, check_sampling_probs
    check_greedy(my_greedy)            # my_greedy(logits (B, V)) -> ids (B,)
    check_sampling_probs(my_probs)     # my_probs(logits (B, V), temperature, top_k=None, top_p=None) -> probs (B, V)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, fail, fmt, run
from mingpt.exercises.compare import Part, check_cases, modified_in_place, part_variants, same
from mingpt.exercises.greedy import check_greedy  # noqa: F401  (re-exported: the two decoding checks)
from mingpt.exercises.sampling_arguments import ARGUMENT_MISTAKES
from mingpt.exercises.sampling_cousins import COUSIN_MISTAKES, fitted_fill_variants
from mingpt.exercises.sampling_edges import TIE_LOGITS, accepted, large_logits_problem, unnormalised_problem
from mingpt.exercises.sampling_edges import reference as _reference
from mingpt.exercises.sampling_order import ORDER_MISTAKES
from mingpt.generation import filter_logits

__all__ = ["check_greedy", "check_sampling_probs", "SAMPLING_MISTAKES"]


def _top_p(logits, top_p, drop):
    """Nucleus filtering of logits (B, V) with a configurable rule drop(sorted_logits) -> which sorted positions go."""
    if top_p is None:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = drop(sorted_logits, top_p)
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def _above(sorted_logits):
    """The probability mass of the tokens ranked above each one (the reference's rule drops it when >= p)."""
    probs = sorted_logits.softmax(-1)
    return probs.cumsum(-1) - probs


def _top_p_ascending(logits, top_p):
    """Nucleus filtering run over an ascending sort: the running sum starts at the *least* likely token."""
    if top_p is None:
        return logits
    sorted_logits, order = logits.sort(dim=-1)
    remove = _above(sorted_logits) >= top_p
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def _top_p_gathered(logits, top_p):
    """Nucleus filtering whose sorted decision is put back with gather (a second sort permutation), not scatter."""
    if top_p is None:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = _above(sorted_logits) >= top_p
    return logits.masked_fill(remove.gather(-1, order), float("-inf"))


def _top_k(logits, k, smallest=False):
    if k is None:
        return logits
    if smallest:
        kth = torch.topk(logits, k, dim=-1, largest=False).values[:, -1:]
        return logits.masked_fill(logits > kth, float("-inf"))
    return filter_logits(logits, k, None)


def _top_k_ascending(lg, t, k, p):
    """top-k's threshold read from an ascending sort: the k-th *smallest* logit, so V - k + 1 tokens stay."""
    lg = lg / t
    if k is not None and k < lg.size(-1):
        lg = lg.masked_fill(lg < lg.sort(dim=-1).values[:, k - 1 : k], float("-inf"))
    return F.softmax(filter_logits(lg, None, p), dim=-1)


SAMPLING_MISTAKES = [  # (name, f(logits, temperature, top_k, top_p), explanation, hint)
    ("top-k threshold from an ascending sort", _top_k_ascending,
     "torch.sort is ascending by default, so values[:, k - 1] is the k-th *smallest* logit: everything above it "
     "stays, V - k + 1 tokens instead of k.", "sort(descending=True), or torch.topk(logits, k).values[:, -1:]"),
    ("temperature applied after the softmax", lambda lg, t, k, p: _reference(lg, 1.0, k, p) / t,
     "Dividing the probabilities by the temperature only rescales them (they no longer sum to 1); temperature must "
     "divide the *logits*.", "divide the logits by the temperature, then softmax"),
    ("temperature has no effect (ignored, or applied to the probabilities and renormalised)",
     lambda lg, t, k, p: _reference(lg, 1.0, k, p),
     "Your distribution does not change with the temperature: either the temperature is never used, or it divides "
     "the probabilities and the renormalisation undoes it. Temperature must divide the *logits* before the softmax.",
     "divide the logits by the temperature"),
    ("temperature multiplied instead of divided", lambda lg, t, k, p: _reference(lg * t * t, t, k, p),
     "A temperature below 1 must make the distribution sharper; yours makes it flatter.", "logits / temperature"),
    ("top-p keeps the wrong side of the threshold",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: _above(s) < p), -1),
     "Nucleus sampling keeps the *most* likely tokens whose mass reaches p; yours keeps the unlikely tail.",
     "sort in descending order and keep the head of the list"),
    ("top-p drops the token that crosses p",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: (_above(s) + s.softmax(-1) > p)
                                          & (torch.arange(s.shape[-1]) > 0)), -1),
     "The kept set must reach a mass of at least p, so the token whose probability carries the running sum past p "
     "stays; yours stops just before it.",
     "decide on the mass *before* each token: keep a token while the tokens above it sum to < p"),
    ("top-p drops the token that crosses p, even the most likely one (a row can lose every token)",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: _above(s) + s.softmax(-1) > p), -1),
     "The kept set must reach a mass of at least p: the token that carries the running sum past p stays, and the "
     "most likely token always stays; yours removes it when it alone has more than p (an all -inf row: NaN).",
     "decide on the mass *before* each token: keep a token while the tokens above it sum to < p"),
    ("top-p sorted ascending (the running sum starts at the least likely token)",
     lambda lg, t, k, p: F.softmax(_top_p_ascending(_top_k(lg / t, k), p), -1),
     "The nucleus is built from the most likely token down; sorted ascending, the running sum starts with the "
     "unlikely tail and removes the likely tokens instead.", "sort(descending=True)"),
    ("top-p cumulates logits instead of probabilities",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: (s.cumsum(-1) - s) >= p), -1),
     "The running sum that is compared with p must be a sum of *probabilities* (softmax of the sorted logits); a "
     "sum of logits can be anything.", "softmax the sorted logits before the cumsum"),
    ("top-p cumulates logits instead of probabilities",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: s.cumsum(-1) > p), -1),
     "The running sum that is compared with p must be a sum of *probabilities* (softmax of the sorted logits); a "
     "sum of logits can be anything.", "softmax the sorted logits before the cumsum"),
    ("top-p without sorting", lambda lg, t, k, p: F.softmax(
        (lambda x: x if p is None else x.masked_fill(_above(x) >= p, float("-inf")))(_top_k(lg / t, k)), -1),
     "The running sum runs over the tokens from the most to the least likely; yours runs in vocabulary order.",
     "sort the logits (descending) first, then scatter the decision back"),
    ("two mistakes: top-p without sorting; and top-p drops the token that crosses p", lambda lg, t, k, p: F.softmax(
        (lambda x: x if p is None else x.masked_fill(_above(x) + x.softmax(-1) > p, float("-inf")))(_top_k(lg / t, k)),
        -1), "The running sum runs over the tokens from the most to the least likely; yours runs in vocabulary "
     "order. And: the token whose probability carries the running sum past p stays; yours removes it.",
     "sort the logits (descending) first; and keep a token while the tokens above it sum to < p"),
    ("top-p decided before the temperature", lambda lg, t, k, p: F.softmax(
        (lg / t).masked_fill(filter_logits(lg, k, p).isinf(), float("-inf")), -1),
     "The nucleus is the set of likely tokens *of the distribution you sample from*, after the temperature.",
     "divide by the temperature first, then filter"),
    ("top-p measured on the distribution before top-k", lambda lg, t, k, p: F.softmax(
        filter_logits(lg / t, k, None).masked_fill(filter_logits(lg / t, None, p).isinf(), float("-inf")), -1),
     "With both filters, top-p works on what top-k left (renormalised), as mingpt.generation does.",
     "apply top-k to the logits, then top-p to the result"),
    ("top-p ignored when top-k is given", lambda lg, t, k, p: _reference(lg, t, k, None if k is not None else p),
     "When both are given, both filters apply (an if/elif runs only one).", "two independent ifs"),
    ("top-k ignored when top-p is given", lambda lg, t, k, p: _reference(lg, t, None if p is not None else k, p),
     "When both are given, both filters apply (an if/elif runs only one).", "two independent ifs"),
    ("temperature applied twice", lambda lg, t, k, p: _reference(lg / t, t, k, p),
     "Your distribution is the one for temperature T squared: the logits were divided by T twice.",
     "divide by the temperature once"),
    ("returned log-probabilities (log_softmax)", lambda lg, t, k, p: _reference(lg, t, k, p).log(),
     "The function returns probabilities (each row sums to 1); yours are their logarithms.", "softmax, not "
     "log_softmax"),
    ("top-p ignored", lambda lg, t, k, p: _reference(lg, t, k, None),
     "With top_p given, only the most likely tokens whose mass reaches p stay; yours keeps every token.",
     "apply the top-p filter when top_p is not None"),
    ("top-k keeps only the most likely token (threshold from values[:, 0])",
     lambda lg, t, k, p: _reference(lg, t, None if k is None else 1, p),
     "torch.topk's values are sorted largest first: the k-th largest is values[:, -1] (or [:, k - 1]); [:, 0] is "
     "the largest, so one token stays.", "kth = torch.topk(logits, k).values[:, -1:]"),
    ("top-p's softmax over the batch axis",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: (lambda q: q.cumsum(-1) - q >= p)(
         s.softmax(0))), -1),
     "The probabilities whose running sum top-p compares with p are each row's (softmax over the last axis).",
     "softmax(dim=-1) of the sorted logits"),
    ("top-p's running sum (cumsum) over the batch axis",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: (lambda q: q.cumsum(0) - q >= p)(
         s.softmax(-1))), -1),
     "The running sum compared with p adds up each row's sorted probabilities (cumsum over the last axis); yours "
     "adds them down the batch, across sequences.", "cumsum(dim=-1)"),
    ("top-k keeps one token too many", lambda lg, t, k, p: _reference(lg, t, k + 1, p),
     "top_k = k must leave exactly k tokens with non-zero probability.", "compare with the k-th largest"),
    ("top-k removes the k-th largest logit too (<= where < is needed)", lambda lg, t, k, p: F.softmax(filter_logits(
        (lambda x: x if k is None else x.masked_fill(x <= torch.topk(x, k, -1).values[:, -1:], float("-inf")))(lg / t),
        None, p), -1), "top_k = k must leave the k largest logits (and any tied with the k-th); comparing with <= "
     "removes the k-th and every token tied with it: k - 1 tokens or fewer, none at all when k = 1 (NaN).",
     "logits < kth, not <="),
    ("top-k keeps one token too few",
     lambda lg, t, k, p: _reference(lg, t, k if k is None else k - 1, p) if k is None or k > 1
     else torch.full_like(lg, float("nan")),  # k = 1: `logits <= kth` removes every token
     "top_k = k must leave exactly k tokens with non-zero probability.", "compare with the k-th largest"),
    ("top-k keeps the k least likely tokens",
     lambda lg, t, k, p: F.softmax(filter_logits(_top_k(lg / t, k, smallest=True), None, p), -1),
     "top-k keeps the k *largest* logits; yours keeps the smallest.", "torch.topk returns the largest by default"),
    ("filtered after the softmax without renormalising",
     lambda lg, t, k, p: F.softmax(lg / t, -1) * (_reference(lg, t, k, p) > 0),
     "Removing tokens after the softmax leaves probabilities that sum to less than 1.",
     "set the removed logits to -inf *before* the softmax"),
    ("removed logits set to 0 instead of -inf",
     lambda lg, t, k, p: F.softmax((lambda f: f.masked_fill(f.isinf(), 0.0))(filter_logits(lg / t, k, p)), -1),
     "A logit of 0 is an ordinary score (probability e^0 / sum): the removed tokens can still be sampled.",
     "masked_fill(..., float('-inf'))"),
    ("returned the filtered logits, not probabilities", lambda lg, t, k, p: filter_logits(lg / t, k, p),
     "The function returns the probabilities to sample from: softmax of the filtered logits.", "softmax at the end"),
    ("softmax over the batch axis", lambda lg, t, k, p: F.softmax(filter_logits(lg / t, k, p), dim=0),
     "Each row is one sequence's distribution over the vocabulary (the last axis).", "softmax(dim=-1)"),
    ("top-p keeps a token when the mass above it equals p (> where >= is needed)",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: _above(s) > p), -1),
     "Once the tokens above reach a mass of p (exactly p counts), the nucleus is complete: it is the *smallest* set "
     "whose probability reaches p. Yours keeps one more token when the running sum lands exactly on p.",
     "drop a token when the mass above it is >= p"),
    ("top-p's shift done with torch.roll: the last decision wraps round to the most likely token",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: torch.roll(
         s.softmax(-1).cumsum(-1) > p, 1, dims=-1)), -1),
     "torch.roll moves the last column to the front: the least likely token's decision (always 'drop', its running "
     "sum is 1) lands on the most likely token, which must always stay.",
     "shift with a slice (drop[..., 1:] = drop[..., :-1].clone(); drop[..., 0] = False), or use cumsum - probs"),
    ("top-p's shift done the wrong way (left): the token before the one that crosses p is dropped too",
     lambda lg, t, k, p: F.softmax(_top_p(_top_k(lg / t, k), p, lambda s, p: torch.cat(
         [(s.softmax(-1).cumsum(-1) >= p)[..., 1:], torch.ones_like(s[..., :1], dtype=torch.bool)], -1)
         & (torch.arange(s.shape[-1]) > 0)), -1),
     "HF's top_k_top_p_filtering shifts the 'running sum reached p' mask one place to the *right* (towards the "
     "less likely tokens), so the token that crosses p stays; yours shifts it left, so the token before it goes too.",
     "remove[..., 1:] = remove[..., :-1].clone(); remove[..., 0] = False"),
    ("top-p's decision left in sorted order (not scattered back to the vocabulary)",
     lambda lg, t, k, p: F.softmax((lambda x: x if p is None else x.masked_fill(
         _above(x.sort(dim=-1, descending=True).values) >= p, float("-inf")))(_top_k(lg / t, k)), -1),
     "The drop mask is computed on the sorted logits; position j of it is about the j-th most likely token, not "
     "token j. It must be put back in vocabulary order before masking.",
     "mask.scatter(-1, sorted_indices, mask), or logits[sorted_indices[mask]]"),
    ("top-p's decision put back with gather (scatter is needed)",
     lambda lg, t, k, p: F.softmax(_top_p_gathered(_top_k(lg / t, k), p), -1),
     "remove_sorted[j] is about the j-th most likely token, sorted_indices[j]: putting it back in vocabulary order "
     "is a scatter to those indices; gather reads at them instead, another permutation (the same only when the sort "
     "happens to be its own inverse).", "remove_sorted.scatter(-1, sorted_indices, remove_sorted)"),
    ("top-k's k-th value without keepdim ([:, -1] where [:, -1:] is needed): it broadcasts along the wrong axis",
     lambda lg, t, k, p: F.softmax(filter_logits(lg / t if k is None else (lambda x: x.masked_fill(
         x < torch.topk(x, k, -1).values[:, -1], float("-inf")))(lg / t), None, p), -1),
     "values[:, -1] has shape (B,); compared with (B, V) logits it lines up with the vocabulary axis, not with the "
     "rows (an error when B != V, a wrong filter when B == V).", "kth = torch.topk(logits, k).values[:, -1:] (or "
     "[:, -1, None]), shape (B, 1)"),
    ("torch.multinomial raised on weights with negative entries (the logits?): it needs probabilities",
     lambda lg, t, k, p: torch.multinomial(filter_logits(lg / t, k, p), 1),
     "torch.multinomial draws from non-negative weights (probabilities); given logits it raises on their negative "
     "entries. And this function returns the probabilities themselves, not a sample.",
     "return the softmax of the filtered logits; sampling comes after"),
    ("returned a one-hot of the most likely token (greedy), not the distribution",
     lambda lg, t, k, p: F.one_hot(_reference(lg, t, k, p).argmax(-1), lg.size(-1)).to(lg.dtype),
     "The function returns the probabilities to sample from; taking their argmax is greedy decoding, whatever the "
     "temperature and filters.", "return the softmax itself; torch.multinomial samples from it"),
    ("top-k's k-th value taken over the whole batch (one threshold for every row)",
     lambda lg, t, k, p: F.softmax(filter_logits(lg / t if k is None else (lambda x: x.masked_fill(
         x < torch.topk(x, k, -1).values.min(), float("-inf")))(lg / t), None, p), -1),
     "Each row is its own distribution: its k-th largest logit is its own threshold. Yours takes one threshold for "
     "the whole batch (the smallest of the rows' top-k values), so rows with larger logits keep more than k tokens.",
     "kth = torch.topk(logits, k, dim=-1).values[:, -1:], one per row"),
    ("top-k's threshold taken over the batch axis (topk(..., dim=0))", lambda lg, t, k, p: F.softmax(filter_logits(
        lg / t if k is None else (lambda x: x.masked_fill(x < torch.topk(x, k, 0).values[-1:], float("-inf")))(lg / t),
        None, p), -1), "torch.topk(logits, k, dim=0) ranks each token's logit across the rows of the batch (and fails "
     "when k exceeds B): the k most likely tokens are those of each row.", "torch.topk(logits, k, dim=-1)"),
] + [(f"computed in {name} (a low-precision intermediate), returned as float32", (lambda d: lambda lg, t, k, p:
      F.softmax(filter_logits((lg / t).to(d), k, p), -1).float())(d), f"Right formula, but the filtering and softmax "
      f"ran in {name}: about 3 significant digits, so the probabilities are off in the 4th.", "keep the logits in "
      "float32 (no .half() / .bfloat16() on the way)") for d, name in ((torch.float16, "float16"), (torch.bfloat16,
                                                                                                   "bfloat16"))]
SAMPLING_MISTAKES += ORDER_MISTAKES  # the batch mixed, or the result left in sorted order (sampling_order.py)
SAMPLING_MISTAKES += COUSIN_MISTAKES  # the textbook slips with another constant (sampling_cousins.py)


def _build(temperature=None, top_k=None, top_p=None, body=_reference):
    """The reference (or one table mistake, body) with up to three of its arguments rewritten by mistakes."""
    steps = [f for f in (temperature, top_k, top_p) if f is not None]

    def compute(lg, t, k, p):
        case = (lg, t, k, p)
        for f in steps:
            case = f(*case)
        return body(*case)
    return compute


VARIANTS = part_variants(_build, [Part("body", f, name, why, hint) for name, f, why, hint in SAMPLING_MISTAKES]
                         + ARGUMENT_MISTAKES)

# Checked in stages, each with several settings, so that a mistake is named from the stage where it first shows
# (a top-p bug from the top-p-only settings) even when the student's combined filter has a second one.
STAGES = [("temperature", [(1.0, None, None), (0.5, None, None), (2.0, None, None)]),
          ("top-k", [(1.0, 3, None), (0.7, 2, None), (1.0, 1, None), (1.3, 4, None)]),
          ("top-p", [(1.0, None, 0.6), (0.8, None, 0.9), (1.0, None, 0.3), (1.2, None, 0.75)]),
          ("top-k and top-p together", [(1.0, 2, 0.8), (1.5, 4, 0.5), (0.9, 3, 0.95)]),
          ("ties and exact sums", [(1.0, 2, None), (1.0, 3, None), (1.0, None, 0.5), (1.0, None, 0.75)])]
LOGITS = [torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -2.0], [0.3, 2.5, -0.5, 1.5, 0.0, 1.0]]),
          torch.tensor([[0.2, -1.3, 3.1, 0.9, 1.7, -0.4, 0.6], [1.1, 0.8, -2.0, 0.1, 2.2, 1.9, -0.7],
                        [-0.5, 0.4, 0.0, 1.2, -1.1, 0.7, 2.6]])]


def check_sampling_probs(fn) -> CheckResult:
    """Check fn(logits, temperature, top_k=None, top_p=None) -> the probabilities to sample the next token from."""
    exercise = "sampling distribution"
    result = _check_settings(exercise, fn, _describe)
    large = large_logits_problem(exercise, fn, _describe) if result else None  # only once the ordinary ones pass
    return large if large is not None else result


def _describe(lg, t, k, p) -> str:
    return f"logits = {lg.tolist()}, temperature={t}, top_k={k}, top_p={p}"


def _check_settings(exercise, fn, describe) -> CheckResult:
    problem = modified_in_place(exercise, fn, (LOGITS[0], 0.5, 2, 0.8), describe(LOGITS[0], 0.5, 2, 0.8),
                                "logits / temperature makes a new tensor; logits.div_(...) or logits[...] = ... "
                                "change the caller's")
    if problem is not None:
        return problem
    hint = "order: divide by the temperature, filter (top-k, then top-p) with -inf, then softmax"
    staged = [[(lg, *setting) for lg in (TIE_LOGITS if name.startswith("ties") else LOGITS) for setting in settings]
              for name, settings in STAGES]
    every = [case for cases in staged for case in cases]
    named, ran_all, fitted = _named_on_every_case(exercise, fn, every, describe, hint)
    if named is not None:
        return named
    pairs = {v.property for v in VARIANTS if v.property.startswith("two mistakes")}
    singles = [v for v in VARIANTS if v.property not in pairs or v.property in SINGLE_NAMES]
    names = {v.property for v in VARIANTS}
    for (name, _), cases in zip(STAGES, staged):
        # named from one stage only, a pair of mistakes fits by coincidence too easily: then single mistakes only
        problem = check_cases(exercise, fn, cases, _reference, (singles if ran_all else VARIANTS) + fitted, describe,
                              atol=1e-5,
                              hint=hint,
                              crash_hint="logits are (B, V): filter along the last axis",
                              prepare=lambda case: (case[0].clone(), *case[1:]))
        if problem is not None and ran_all and problem.property in names:  # named from this stage's settings only
            problem.counterexample += (f"\nnote: this mistake explains every output of the {name} settings, but "
                                       "not those of every setting: your code has another difference too")
        if problem is not None:  # not recognised: perhaps right up to a factor per row (sampling_edges.py)
            return unnormalised_problem(exercise, fn, every, problem, [v for v in VARIANTS if "two" not in v.property])
    return CheckResult(exercise, True, checked=CHECKED)


CHECKED = ["temperature", "top-k", "top-p (the crossing token kept)", "top-k and top-p together", "ties",
           "each row sums to 1", "large logits (no overflow)",
           "very negative logits (removed ones at -inf)"]
SINGLE_NAMES = {name for name, *_ in SAMPLING_MISTAKES}  # the table's own two-mistake rows are rebuilt whole


def _named_on_every_case(exercise, fn, cases, describe, hint) -> tuple[CheckResult | None, bool, list]:
    """(the one or two mistakes that reproduce the outputs of *every* setting, or None; whether fn ran on all; the
    variants fitted to fn's outputs, sampling_cousins.py). With None, the stages name a mistake from the first
    setting where the outputs go wrong."""
    outputs = []
    for case in cases:
        out, problem = run(exercise, describe(*case), fn, case[0].clone(), *case[1:])
        if problem is not None:
            return None, False, []
        outputs.append(out)
    expected = [_reference(*case) for case in cases]
    wrong = [n for n, (o, e) in enumerate(zip(outputs, expected)) if not same(o, e)]
    if not wrong or all(accepted(cases[n], outputs[n]) for n in wrong):
        return CheckResult(exercise, True, checked=CHECKED), True, []
    fitted = fitted_fill_variants(cases, outputs)
    order = wrong + [n for n in range(len(cases)) if n not in wrong]  # the wrong ones rule most variants out first
    for variant in VARIANTS + fitted:
        if all(_matches(variant, cases[n], outputs[n]) for n in order):
            n = wrong[0]
            return fail(exercise, variant.property, variant.explanation, f"{describe(*cases[n])}\nyours    "
                        f"{fmt(outputs[n], 6)}\nexpected {fmt(expected[n], 6)}", variant.hint), True, fitted
    # no slip explains every output (a strict > would, on every exact sum): a boundary rounded the other way is right
    rounded = all(accepted(cases[n], outputs[n], rounding=True) for n in wrong)
    return (CheckResult(exercise, True, checked=CHECKED) if rounded else None), True, fitted


def _matches(variant, case, out) -> bool:
    try:
        return same(out, variant.compute(*case))
    except Exception:
        return False
