"""
Student-style MLPs and Blocks, written from the exercise text (not from the checkers' variant tables): each
MISTAKES row is (checker, buggy implementation, the name the checker must give); VALID rows must pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises import check_block, check_mlp
from mingpt.model import CausalSelfAttention


class StudentMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def act(self, h):
        return F.gelu(h, approximate="tanh")

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


def mlp_activation(act):
    return type("MLPWithActivation", (StudentMLP,), {"act": lambda self, h: act(h)})


def mlp_forward(forward):
    return type("MLPWithForward", (StudentMLP,), {"forward": lambda self, x: forward(self, x)})


def gelu_by_hand(h, cube=0.044715, scale=math.sqrt(2 / math.pi), half=0.5):
    return half * h * (1 + torch.tanh(scale * (h + cube * torch.pow(h, 3))))


class MLPInAList(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = [nn.Linear(config.n_embd, 4 * config.n_embd), nn.Linear(4 * config.n_embd, config.n_embd)]

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x), approximate="tanh"))


class MLPWithBareTensors(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.w1, self.b1 = torch.randn(C, 4 * C, requires_grad=True), torch.zeros(4 * C, requires_grad=True)
        self.w2, self.b2 = torch.randn(4 * C, C, requires_grad=True), torch.zeros(C, requires_grad=True)

    def forward(self, x):
        return F.gelu(x @ self.w1 + self.b1, approximate="tanh") @ self.w2 + self.b2


class MLPDropoutAlways(StudentMLP):
    def forward(self, x):
        return F.dropout(self.c_proj(self.act(self.c_fc(x))), 0.3, training=True)


MLP_MISTAKES = [
    (check_mlp, mlp_activation(F.gelu), "exact GELU instead of GPT-2's tanh approximation"),
    (check_mlp, mlp_activation(torch.relu), "ReLU instead of GELU"),
    (check_mlp, mlp_activation(lambda h: h), "no activation between the two layers"),
    (check_mlp, mlp_activation(lambda h: h * torch.sigmoid(h)), "SiLU (swish) instead of GELU"),
    (check_mlp, mlp_activation(lambda h: h * torch.sigmoid(1.702 * h)), "GELU's sigmoid approximation"),
    (check_mlp, mlp_activation(lambda h: gelu_by_hand(h, cube=0)), "hand-written GELU without the cubic term"),
    (check_mlp, mlp_activation(lambda h: gelu_by_hand(h, scale=math.sqrt(math.pi / 2))),
     "hand-written GELU with sqrt(pi/2) instead of sqrt(2/pi)"),
    (check_mlp, mlp_activation(lambda h: gelu_by_hand(h, half=1.0)), "hand-written GELU without the 0.5"),
    (check_mlp, mlp_activation(F.leaky_relu), "leaky ReLU instead of GELU"),
    (check_mlp, mlp_activation(torch.tanh), "tanh instead of GELU"),
    (check_mlp, mlp_forward(lambda m, x: m.act(m.c_proj(m.c_fc(x)))), "activation after c_proj"),
    (check_mlp, mlp_forward(lambda m, x: m.c_proj(m.c_fc(m.act(x)))), "activation before c_fc"),
    (check_mlp, mlp_forward(lambda m, x: m.act(m.c_proj(m.act(m.c_fc(x))))),
     "activation applied twice (after both layers)"),
    (check_mlp, mlp_forward(lambda m, x: x + m.c_proj(m.act(m.c_fc(x)))), "residual added inside the MLP"),
    (check_mlp, MLPInAList, "parameters not registered"),
    (check_mlp, MLPWithBareTensors, "parameters not registered"),
    (check_mlp, MLPDropoutAlways, "dropout active in eval mode"),
    (check_mlp, mlp_forward(lambda m, x: m.c_proj(m.act(m.c_fc(x))).double()), "wrong dtype"),
    (check_mlp, mlp_forward(lambda m, x: m.c_proj(m.act(m.c_fc(x))).unsqueeze(0)), "extra dimension of size 1"),
    (check_mlp, mlp_forward(lambda m, x: m.c_proj(m.act(m.c_fc(x))).flatten(0, 1)), "output reshaped"),
]


class MLPWithSequential(nn.Module):  # valid: other container, the same parameters by shape
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.net = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(approximate="tanh"), nn.Linear(4 * C, C),
                                 nn.Dropout(config.resid_pdrop))

    def forward(self, x):
        return self.net(x)


MLP_VALID = [
    (check_mlp, StudentMLP),
    (check_mlp, mlp_activation(gelu_by_hand)),  # the tanh formula written out
    (check_mlp, MLPWithSequential),
]


# ------------------------------------------------------------------------------------------ Block
class StudentBlock(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = StudentMLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


def block(forward):
    return type("BuggyBlock", (StudentBlock,), {"forward": lambda self, x: forward(self, x)})


class BlockOverwritesStream(StudentBlock):
    def forward(self, x):
        x = self.ln_1(x)
        x = x + self.attn(x)
        x = self.ln_2(x)
        x = x + self.mlp(x)
        return x


BLOCK_MISTAKES = [
    (check_block, block(lambda b, x: b.ln_2((h := b.ln_1(x + b.attn(x))) + b.mlp(h))),
     "LayerNorm after the residual add (post-LN)"),
    (check_block, block(lambda b, x: (h := b.attn(b.ln_1(x))) + b.mlp(b.ln_2(h))),
     "attention branch without its residual"),
    (check_block, block(lambda b, x: b.mlp(b.ln_2(x + b.attn(b.ln_1(x))))), "MLP branch without its residual"),
    (check_block, block(lambda b, x: (h := b.ln_1(x) + b.attn(b.ln_1(x))) + b.mlp(b.ln_2(h))),
     "residual adds the normalised x"),
    (check_block, BlockOverwritesStream, "the stream overwritten by its norm"),
    (check_block, block(lambda b, x: (h := x + b.attn(b.ln_1(x))) + b.mlp(b.ln_1(h))), "ln_1 used for both sublayers"),
    (check_block, block(lambda b, x: (h := x + b.attn(b.ln_2(x))) + b.mlp(b.ln_2(h))), "ln_2 used for both sublayers"),
    (check_block, block(lambda b, x: (h := x + b.mlp(b.ln_2(x))) + b.attn(b.ln_1(h))), "MLP before attention"),
    (check_block, block(lambda b, x: x + b.attn(b.ln_1(x)) + b.mlp(b.ln_2(x))), "parallel branches"),
    (check_block, block(lambda b, x: (h := x + b.attn(x)) + b.mlp(b.ln_2(h))), "ln_1 missing"),
    (check_block, block(lambda b, x: (h := x + b.attn(b.ln_1(x))) + b.mlp(h)), "ln_2 missing"),
    (check_block, block(lambda b, x: (h := x + b.attn(x)) + b.mlp(h)), "no LayerNorm at all"),
    (check_block, block(lambda b, x: x + (a := b.attn(b.ln_1(x))) + b.mlp(b.ln_2(a))),
     "MLP fed the attention output instead of the stream"),
    (check_block, block(lambda b, x: (x + b.attn(b.ln_1(x)) + b.mlp(b.ln_2(x + b.attn(b.ln_1(x)))))[:, -1]),
     "only one position returned"),
]


class BlockInPlace(StudentBlock):  # valid: += on a fresh tensor is the same computation
    def forward(self, x):
        x = x.clone()
        x += self.attn(self.ln_1(x))
        x += self.mlp(self.ln_2(x))
        return x


BLOCK_MISTAKES.append((check_block, block(lambda b, x: (h := x + 0.5 * b.attn(b.ln_1(x))) + b.mlp(b.ln_2(h))),
                       "attention branch scaled by 0.5 before the add"))  # a free factor, fitted (families.py)

BLOCK_VALID = [(check_block, StudentBlock), (check_block, BlockInPlace)]

# Wrong in ways no table names: the checker must say it does not recognise them, never give them a name.
UNNAMED = [
    (check_mlp, mlp_forward(lambda m, x: 1.01 * m.c_proj(m.act(m.c_fc(x))))),
    (check_block, block(lambda b, x: (h := x + torch.tanh(b.attn(b.ln_1(x)))) + b.mlp(b.ln_2(h)))),
]

MISTAKES = MLP_MISTAKES + BLOCK_MISTAKES
VALID = MLP_VALID + BLOCK_VALID
