"""
The relation-based diagnoses (mingpt/exercises/relations.py): each named only when it holds exactly on every tested
input, and never for a relation that holds on some inputs or only on average.
"""

from __future__ import annotations

import math

import torch

from mingpt.exercises.relations import LOW_PRECISION, constant_name, relation, scale_note


def _cases(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(2, 5, 6, generator=g) for _ in range(n)]
    refs = [torch.randn(2, 5, 6, generator=g) for _ in range(n)]
    return xs, refs


def test_a_recognisable_factor_on_every_input_is_named():
    xs, refs = _cases()
    assert relation(xs, [-r for r in refs], refs)[0] == "sign flipped"
    assert relation(xs, [r * math.sqrt(2) for r in refs], refs)[0] == "output scaled by sqrt(2)"
    assert relation(xs, [r / math.sqrt(12) for r in refs], refs)[0] == "output scaled by 1/sqrt(12) = 0.2887"
    loss = [torch.tensor(2.5), torch.tensor(1.25), torch.tensor(3.0)]
    assert "bits" in relation([None] * 3, [v / math.log(2) for v in loss], loss)[1]


def test_a_factor_that_holds_on_average_or_on_one_input_only_is_not_named():
    xs, refs = _cases()
    noise = [torch.randn_like(r) for r in refs]
    orthogonal = [n - (n * r).sum() / (r * r).sum() * r for n, r in zip(noise, refs)]  # least squares still gives 2
    assert relation(xs, [2 * r + o for r, o in zip(refs, orthogonal)], refs) is None
    assert relation(xs, [2 * refs[0], 3 * refs[1], 2 * refs[2]], refs) is None  # no single factor
    assert relation(xs, [r * 1.01 for r in refs], refs) is None  # exact but arbitrary: only noted
    assert "1.01 times" in scale_note([r * 1.01 for r in refs], refs)
    assert constant_name(1.01) is None and constant_name(4.0)[0] == "4 = 4"


def test_input_added_or_missing_is_named_only_when_exact():
    xs, refs = _cases()
    assert relation(xs, [r + x for r, x in zip(refs, xs)], refs)[0].startswith("the input added")
    assert relation(xs, [r - x for r, x in zip(refs, xs)], refs)[0].startswith("the input missing")
    half = [r + 0.5 * x for r, x in zip(refs, xs)]  # a recognisable mix of the two: named as such
    assert relation(xs, half, refs)[0] == "output = 1 * reference + 0.5 * input"
    odd = [r + 0.37 * x for r, x in zip(refs, xs)]  # no factor a formula would contain: not named
    assert relation(xs, odd, refs) is None
    mixed = [refs[0] + 0.5 * xs[0], refs[1] + xs[1], refs[2] + 0.5 * xs[2]]  # not the same relation everywhere
    assert relation(xs, mixed, refs) is None


def test_a_bias_like_offset_is_named_a_uniform_constant_is_not():
    xs, refs = _cases()
    b = torch.linspace(-1, 1, 6)
    assert relation(xs, [r + b for r in refs], refs)[0].startswith("output off by a constant vector")
    assert relation(xs, [r + 1.0 for r in refs], refs) is None
    assert relation(xs, [refs[0] + b, refs[1] + b, refs[2] - b], refs) is None  # not the same vector everywhere


def test_positions_shifted_by_one_and_elementwise_functions():
    xs, refs = _cases()
    later = [torch.cat([torch.randn(2, 1, 6), r[:, :-1]], dim=1) for r in refs]
    assert relation(xs, later, refs)[0] == "positions shifted one step later"
    loss = [torch.tensor(2.5), torch.tensor(1.25), torch.tensor(3.0)]
    assert "perplexity" in relation([None] * 3, [v.exp() for v in loss], loss)[0]
    assert relation(xs, [r.softmax(-1) for r in refs], refs)[0] == "returned probabilities, not scores"


def test_outputs_that_cannot_be_compared_give_no_relation():
    xs, refs = _cases()
    assert relation(xs, [r[..., :3] for r in refs], refs) is None  # another shape: shape_problem's job
    assert relation(xs, refs, refs) is None  # right everywhere
    assert relation(xs, [r.long() for r in refs], refs) is None


def test_rounding_noise_named_only_where_the_checker_asks_and_never_for_a_systematic_near_miss():
    torch.manual_seed(0)
    e = [torch.randn(3, 5, 16), torch.randn(2, 4, 16)]
    noisy = [t.half().float() for t in e]  # a float16 round trip: noise of both signs
    # without the checker's leave, no claim about float16: only the fact that it is right to about three digits
    assert relation([None, None], noisy, e)[0] == LOW_PRECISION
    assert relation([None, None], noisy, e, precision=True)[0] == "computed in low precision (a float16 intermediate?)"
    near = [t * 1.002 for t in e]  # every output moved the same way: a slip, not rounding
    found = relation([None, None], near, e, precision=True)
    assert found is None or "precision" not in found[0]
    found = relation([None, None], [t + 0.01 for t in e], e, precision=True)  # a constant added: not noise either
    assert found is None or "precision" not in found[0]
