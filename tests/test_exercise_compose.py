"""
The checkers' two general naming mechanisms on their own: pairs of knob variants (mingpt/exercises/compose.py) and
families with a fitted number (mingpt/exercises/families.py). Each names a mistake only when it reproduces *every*
tested output: a student whose slip changes from one input to the next gets no name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises import check_rmsnorm, check_swiglu
from mingpt.exercises.compare import NOT_RECOGNISED
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, fit


def _affine(x, scale=1.0, shift=0.0, square=False):
    return (x * x if square else x) * scale + shift


def test_pairs_combine_only_knobs_on_different_arguments():
    singles = [knob(_affine, "doubled", dict(scale=2.0), "", ""), knob(_affine, "tripled", dict(scale=3.0), "", ""),
               knob(_affine, "shifted", dict(shift=1.0), "", "")]
    names = sorted(v.property for v in pairs(_affine, singles))
    assert names == ["doubled, and shifted", "tripled, and shifted"]  # doubled and tripled touch one argument
    both = next(v for v in pairs(_affine, singles) if v.property == "tripled, and shifted")
    assert both.compute(torch.tensor(2.0)).item() == 7.0


BETA = Family("beta {value}", lambda b: lambda x: x * torch.sigmoid(b * x), "", "", lo=0.1, hi=10.0, correct=1.0,
              log=True)


def test_a_family_is_named_with_the_value_that_fits_every_case():
    cases = [(torch.randn(5, generator=torch.Generator().manual_seed(s)),) for s in range(3)]
    outs = [x * torch.sigmoid(2.5 * x) for (x,) in cases]
    assert fit(BETA, cases, outs, 1e-5).property == "beta 2.5"


def test_a_family_that_fits_one_case_only_names_nothing():
    cases = [(torch.randn(5, generator=torch.Generator().manual_seed(s)),) for s in range(3)]
    outs = [x * torch.sigmoid((2.5 if i == 0 else 3.0) * x) for i, (x,) in enumerate(cases)]
    assert fit(BETA, cases, outs, 1e-5) is None
    assert fit(BETA, cases, [F.silu(x) for (x,) in cases], 1e-5) is None  # the reference's own value: no mistake


def test_checkers_name_two_slips_and_fitted_numbers_but_not_a_changing_slip():
    two = check_rmsnorm(lambda x, w, eps: x / (x.pow(2).sum(-1, keepdim=True).sqrt() + eps) * w)
    assert two.property == "eps outside the square root, and sum of squares instead of the mean"
    fitted = check_swiglu(lambda x, g, u, d: F.linear(F.linear(x, g) * torch.sigmoid(1.5 * F.linear(x, g))
                                                      * F.linear(x, u), d))
    assert fitted.property == "x * sigmoid(1.5 x) instead of SiLU (beta 1.5, not 1)"
    changing = check_swiglu(lambda x, g, u, d: F.linear(F.linear(x, g) * torch.sigmoid(x.shape[0] * F.linear(x, g))
                                                        * F.linear(x, u), d))  # beta = batch size: 2, 1, 3
    assert changing.property == NOT_RECOGNISED


class _EpsLayerNorm(torch.nn.Module):
    """A LayerNorm with its eps typed as 3.7e-6: it barely matters on large activations, so the number is fitted on
    the input where it does (the tiny-variance rows), then verified on all of them."""

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias = torch.nn.Parameter(torch.ones(ndim)), torch.nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        return centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 3.7e-6) * self.weight + self.bias


def test_a_number_that_shows_on_one_input_only_is_fitted_there():
    from mingpt.exercises import check_layernorm
    assert check_layernorm(_EpsLayerNorm).property == "epsilon 3.7e-06 instead of 1e-05"
