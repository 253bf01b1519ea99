"""
The attention and LayerNorm mistakes of tests/student_code.py in this suite's row format (so they are counted and
checked for wrong names with the rest), plus mistakes no table names.
"""

from __future__ import annotations

import torch.nn as nn
from student_code import (ATTENTION_MUTATIONS, LAYERNORM_MUTATIONS, Attention, EinsumAttention, LayerNorm,
                          LoopAttention, TransposedWeightsAttention)

from mingpt.exercises import check_attention, check_layernorm


class ScaledOutputAttention(Attention):
    def forward(self, x, kv_cache=None):
        return 1.01 * super().forward(x)


class ShiftedLayerNorm(LayerNorm):
    def forward(self, x):
        return super().forward(x) + 0.01


MISTAKES = ([(check_attention, impl, name) for impl, name in ATTENTION_MUTATIONS]
            + [(check_layernorm, impl, name) for impl, name in LAYERNORM_MUTATIONS])
VALID = [(check_attention, Attention), (check_attention, EinsumAttention), (check_attention, LoopAttention),
         (check_attention, TransposedWeightsAttention), (check_layernorm, LayerNorm), (check_layernorm, nn.LayerNorm)]
UNNAMED = [(check_attention, ScaledOutputAttention), (check_layernorm, ShiftedLayerNorm)]
