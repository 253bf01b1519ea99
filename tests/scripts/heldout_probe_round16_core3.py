"""The held-out probe, round 16, core part 3: LayerNorm, MLP (see heldout_probe_round16_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import MLP


# ============================================================================================ check_layernorm
class _LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def affine(self, xhat):
        return xhat * self.weight + (self.bias if self.bias is not None else 0)


def _ln_keras_eps(self, x):  # Keras' LayerNormalization epsilon, 1e-3, whatever eps was passed
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return self.affine((x - m) / torch.sqrt(v + 1e-3))


def _ln_unbiased_var(self, x):  # torch.var divides by n - 1 by default
    m = x.mean(-1, keepdim=True)
    return self.affine((x - m) / torch.sqrt(x.var(-1, keepdim=True) + self.eps))


def _ln_eps_outside_sqrt(self, x):
    m = x.mean(-1, keepdim=True)
    return self.affine((x - m) / (x.std(-1, keepdim=True, unbiased=False) + self.eps))


def _ln_mean_keepdim_forgotten(self, x):  # (B, T) against (B, T, C): broadcasts along the wrong axis
    m = x.mean(-1)
    v = x.var(-1, keepdim=True, unbiased=False)
    return self.affine((x - m) / torch.sqrt(v + self.eps))


def _ln_channels_first_axis(self, x):  # channels-first habit: statistics over dim 1
    m = x.mean(1, keepdim=True)
    v = ((x - m) ** 2).mean(1, keepdim=True)
    return self.affine((x - m) / torch.sqrt(v + self.eps))


def _ln_weight_bias_swapped(self, x):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    xhat = (x - m) / torch.sqrt(v + self.eps)
    return xhat * (self.bias if self.bias is not None else 0) + self.weight


def _ln_centre_only(self, x):  # subtracts the mean, never divides by the standard deviation
    return self.affine(x - x.mean(-1, keepdim=True))


def _ln_rms_habit(self, x):  # RMSNorm habit: no mean subtracted
    return self.affine(x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + self.eps))


def _ln_in_place_on_input(self, x):  # x -= mean changes the caller's tensor
    x -= x.mean(-1, keepdim=True)
    return self.affine(x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + self.eps))


def _ln_float64(self, x):  # numpy's float64 habit: the statistics in double, returned in double
    xd = x.double()
    m = xd.mean(-1, keepdim=True)
    v = ((xd - m) ** 2).mean(-1, keepdim=True)
    return self.affine((xd - m) / torch.sqrt(v + self.eps))


def _ln_builtin_sum(self, x):  # Python's sum/len iterate over dim 0: the mean over the batch
    m = sum(x) / len(x)
    v = sum((x - m) ** 2) / len(x)
    return self.affine((x - m) / torch.sqrt(v + self.eps))


def _ln_stats_no_grad(self, x):  # statistics treated as constants: the gradient through them lost
    with torch.no_grad():
        m = x.mean(-1, keepdim=True)
        v = ((x - m) ** 2).mean(-1, keepdim=True)
    return self.affine((x - m) / torch.sqrt(v + self.eps))


for _name, _fwd, _expect in [
    ("LNKerasEps", _ln_keras_eps, r"eps|epsilon"),
    ("LNUnbiasedVar", _ln_unbiased_var, r"unbiased|bessel|n.?-.?1|correction|var"),
    ("LNEpsOutsideSqrt", _ln_eps_outside_sqrt, r"eps|sqrt|std"),
    ("LNMeanKeepdimForgotten", _ln_mean_keepdim_forgotten, r"keepdim|broadcast|mean|shape|axis|dim"),
    ("LNChannelsFirstAxis", _ln_channels_first_axis, r"dim|axis|channel|normali|time"),
    ("LNWeightBiasSwapped", _ln_weight_bias_swapped, r"swap|weight|bias|gain|shift|scale"),
    ("LNCentreOnly", _ln_centre_only, r"variance|std|scale|divid|normali"),
    ("LNRmsHabit", _ln_rms_habit, r"mean|cent|rms"),
    ("LNInPlaceOnInput", _ln_in_place_on_input, r"in.?place|input|modif"),
    ("LNFloat64", _ln_float64, r"dtype|float64|double"),
    ("LNBuiltinSum", _ln_builtin_sum, r"dim|axis|batch"),
    ("LNStatsNoGrad", _ln_stats_no_grad, r"grad|detach|no_grad"),
]:
    mistake(ex.check_layernorm, _expect)(cls_with(_LN, forward=_fwd, name=_name))


@mistake(ex.check_layernorm, r"parameter|register|train|learn")
class LNPlainTensors(nn.Module):  # tensors, not Parameters: never trained, not in the state dict
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = torch.ones(ndim)
        self.bias = torch.zeros(ndim)

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


# Counted untuned as a mistake (passed); judged valid after reading layernorm.py: a bias kept with bias=False is
# loaded and used as the reference's, and earlier rounds count it valid.
@valid(ex.check_layernorm)
class LNBiasAlways(_LN):  # the bias argument ignored: a bias even when bias=False
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__(ndim, eps, True)

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


@valid(ex.check_layernorm)
class LNFunctional(_LN):
    def forward(self, x):
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)


@valid(ex.check_layernorm)
class LNRsqrtVarMean(_LN):  # torch.var_mean with correction=0, then rsqrt
    def forward(self, x):
        v, m = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return self.affine((x - m) * torch.rsqrt(v + self.eps))


@valid(ex.check_layernorm)
class LNOptionalBiasAddcmul(_LN):  # addcmul for the affine part, bias optional as asked
    def forward(self, x):
        xc = x - x.mean(dim=-1, keepdim=True)
        xhat = xc / (xc.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
        return xhat * self.weight if self.bias is None else torch.addcmul(self.bias, xhat, self.weight)


# ============================================================================================ check_mlp
def _mlp(act):
    def forward(self, x):
        return self.dropout(self.c_proj(act(self.c_fc(x))))
    return forward


def _gelu_x_squared(h):
    return 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 2)))


def _gelu_sqrt_2pi(h):
    return 0.5 * h * (1 + torch.tanh(math.sqrt(2 * math.pi) * (h + 0.044715 * h ** 3)))


def _mlp_act_after_proj_too(self, x):
    return self.dropout(F.gelu(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")), approximate="tanh"))


def _mlp_dropout_hard_coded(self, x):
    return F.dropout(self.c_proj(self.gelu(self.c_fc(x))), 0.1)


def _mlp_residual_inside(self, x):
    return x + self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


def _mlp_dot_data(self, x):  # .data cuts the graph: c_fc gets no gradient
    return self.dropout(self.c_proj(self.gelu(self.c_fc(x)).data))


for _name, _fwd, _expect in [
    ("MLPExactGelu", _mlp(nn.GELU()), r"gelu|tanh|approx|activation|erf"),
    ("MLPRelu", _mlp(F.relu), r"relu|activation|gelu"),
    ("MLPGeluXSquared", _mlp(_gelu_x_squared), r"gelu|activation|formula|tanh|approx"),
    ("MLPGeluSqrt2Pi", _mlp(_gelu_sqrt_2pi), r"gelu|activation|formula|tanh|approx|constant"),
    ("MLPSigmoidGelu", _mlp(lambda h: h * torch.sigmoid(1.702 * h)), r"gelu|activation|approx|sigmoid"),
    ("MLPSilu", _mlp(F.silu), r"silu|swish|activation|gelu"),
    ("MLPActAfterProjToo", _mlp_act_after_proj_too, r"activation|after|order|placement|twice|c_proj"),
    ("MLPDropoutHardCoded", _mlp_dropout_hard_coded, r"dropout|eval|train|random|determin"),
    ("MLPResidualInside", _mlp_residual_inside, r"residual|input|add"),
    ("MLPDotData", _mlp_dot_data, r"grad|detach|data"),
]:
    mistake(ex.check_mlp, _expect)(cls_with(MLP, forward=_fwd, name=_name))


class _MLPBase(nn.Module):
    def __init__(self, config, hidden=None, bias=True):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, hidden or 4 * C, bias=bias)
        self.c_proj = nn.Linear(hidden or 4 * C, C, bias=bias)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


@mistake(ex.check_mlp, r"4|hidden|size|expan|shape|width")
class MLPNoExpansion(_MLPBase):  # hidden width C, not 4*C
    def __init__(self, config):
        super().__init__(config, hidden=config.n_embd)


@mistake(ex.check_mlp, r"bias")
class MLPNoBias(_MLPBase):  # Llama habit
    def __init__(self, config):
        super().__init__(config, bias=False)


class _Conv1D(nn.Module):
    """HF GPT-2's Conv1D: weight stored (in, out), y = x @ W + b."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nin, nout) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        return x @ self.weight + self.bias


# Counted untuned as a mistake (misnamed 'gradient blocked'); judged valid after reading loading.py, which loads a
# weight stored (in, out) for x @ W transposed on purpose: the module computes the reference's function.
@valid(ex.check_mlp)
class MLPConv1DLayout(nn.Module):  # HF's Conv1D layout under nn.Linear's names, weights stored (in, out)
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc, self.c_proj = _Conv1D(C, 4 * C), _Conv1D(4 * C, C)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


@mistake(ex.check_mlp, r"register|parameter|module|list")
class MLPPlainList(nn.Module):  # a Python list hides the layers from .parameters() and the state dict
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.layers = [nn.Linear(C, 4 * C), nn.GELU(approximate="tanh"), nn.Linear(4 * C, C)]
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.dropout(x)


@valid(ex.check_mlp)
class MLPHandWrittenTanhGelu(_MLPBase):
    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return self.dropout(self.c_proj(h))


@valid(ex.check_mlp)
class MLPFunctionalLinear(_MLPBase):  # F.linear with the weights, x @ W.T spelled out for c_proj
    def forward(self, x):
        h = F.gelu(F.linear(x, self.c_fc.weight, self.c_fc.bias), approximate="tanh")
        return self.dropout(h @ self.c_proj.weight.T + self.c_proj.bias)


import heldout_probe_round16_core4  # noqa: E402,F401
