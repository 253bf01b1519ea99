"""
The MLPs of models after GPT-2. Each is position-wise: expand C channels to a wider hidden layer, apply a
non-linearity, project back. Only the non-linearity (and, for SwiGLU, a second expansion) differs:

    GPT-2       c_proj(gelu_tanh(c_fc(x)))                 the built-in MLP in model.py
    Pythia      c_proj(gelu(c_fc(x)))                      exact GELU (erf), `GeluMLP`
    nanochat    c_proj(relu(c_fc(x))^2)                    ReLU squared ("Primer", So et al. 2021), `ReLU2MLP`
    Llama/Qwen  c_proj(silu(c_gate(x)) * c_fc(x))          SwiGLU (Shazeer 2020, "GLU Variants"), `SwiGLUMLP`

SwiGLU gates: one expansion (c_gate, through SiLU) decides how much of the other (c_fc, "up") passes, channel by
channel. It has three matrices instead of two, so models pick a narrower hidden width (about 8/3 C instead of 4 C)
to keep the parameter count. Swapping gate and up changes the function: the SiLU belongs on the gate.

Hook points follow TransformerLens: hook_pre (the input of the non-linearity: c_fc(x), or the gate for SwiGLU),
hook_pre_linear (SwiGLU's un-gated "up" half) and hook_post (what c_proj reads).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.interp.hook_points import HookPoint

__all__ = ["GeluMLP", "ReLU2MLP", "SwiGLUMLP", "mlp_class"]


def hidden_width(config) -> int:
    return config.mlp_hidden or 4 * config.n_embd


class GeluMLP(nn.Module):
    """expand, GELU, project; `approximate` is 'none' (exact, erf: Pythia) or 'tanh' (GPT-2's)."""

    approximate = "none"

    def __init__(self, config):
        super().__init__()
        hidden = hidden_width(config)
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return F.gelu(pre, approximate=self.approximate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.c_fc(x))  # (B, T, hidden)
        return self.dropout(self.c_proj(self.hook_post(self.activation(pre))))


class TanhGeluMLP(GeluMLP):
    """GPT-2's MLP with a configurable width (used where the built-in 4*C MLP does not fit, e.g. a parallel block)."""

    approximate = "tanh"


class ReLU2MLP(GeluMLP):
    """relu(x)^2: zero for negative inputs like ReLU, but smooth at 0 and growing quadratically (nanochat)."""

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return F.relu(pre).square()


class SwiGLUMLP(nn.Module):
    """c_proj(silu(c_gate(x)) * c_fc(x)): Llama's MLP (gate_proj, up_proj, down_proj in Hugging Face's names)."""

    def __init__(self, config):
        super().__init__()
        hidden = hidden_width(config)
        self.c_gate = nn.Linear(config.n_embd, hidden, bias=config.bias)  # Hugging Face: gate_proj
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)  # up_proj
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)  # down_proj
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.hook_pre, self.hook_pre_linear, self.hook_post = HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.hook_pre(self.c_gate(x))  # (B, T, hidden)
        up = self.hook_pre_linear(self.c_fc(x))  # (B, T, hidden)
        return self.dropout(self.c_proj(self.hook_post(F.silu(gate) * up)))


def mlp_class(config, needed: bool = False) -> type[nn.Module] | None:
    """
    The MLP class the config asks for. None means GPT-2's own MLP in model.py (4 * C wide, tanh GELU), unless
    `needed` (a block that cannot use model.py's classes, such as the parallel one) asks for a class regardless.
    """
    if config.mlp == "gelu" and config.mlp_hidden in (None, 4 * config.n_embd) and not needed:
        return None
    return {"gelu": TanhGeluMLP, "gelu_exact": GeluMLP, "swiglu": SwiGLUMLP, "relu2": ReLU2MLP}[config.mlp]
