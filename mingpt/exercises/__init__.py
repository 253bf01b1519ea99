"""
Exercises for building a GPT by hand: checkers that compare a student's component with mingpt's own and, when it
differs, *diagnose* the mistake (see checking.py and compare.py for how), plus a short training run that closes an
exercise.

    from mingpt.exercises import check_attention
    result = check_attention(MyAttention)   # str(result) is the message; bool(result) tells pass/fail
    result.raise_if_failed()                # for autograded cells: an AssertionError carrying the message

One module per topic: attention, layernorm, block (MLP and Block; block_branches: its wiring as knobs), loss
(next-token loss, bigram), gpt (embedding, whole model), sampling, kvcache, bpe, optim (weight-decay groups, LR
schedule), pretrained (GPT-2 weight conversion), training (your components in a real training run), posttrain (the
SFT loss mask, a LoRA layer, the DPO loss, GRPO's advantages),
modern (Llama's parts: RMSNorm, rotary positions, SwiGLU, grouped-query attention).
"""

from mingpt.exercises.attention import check_attention, check_attention_weights
from mingpt.exercises.block import check_block, check_mlp
from mingpt.exercises.bpe import check_merge
from mingpt.exercises.encode import check_bpe_encode
from mingpt.exercises.checking import CheckResult, ExerciseFailed, ReferenceWeightsError
from mingpt.exercises.loading import load_reference_weights
from mingpt.exercises.gpt import check_embedding, check_gpt
from mingpt.exercises.bigram import bigram_entropy, check_bigram
from mingpt.exercises.loss import check_loss
from mingpt.exercises.kvcache import check_kv_cache
from mingpt.exercises.layernorm import check_layernorm
from mingpt.exercises.modern import check_gqa, check_rmsnorm, check_rotary, check_swiglu
from mingpt.exercises.optim import check_lr_schedule, check_weight_decay_groups
from mingpt.exercises.posttrain import check_dpo_loss, check_group_advantages, check_lora_layer, check_sft_targets
from mingpt.exercises.pretrained import check_hf_conversion
from mingpt.exercises.sampling import check_greedy, check_sampling_probs
from mingpt.exercises.training import train_and_compare

__all__ = [
    "CheckResult", "ExerciseFailed", "ReferenceWeightsError", "load_reference_weights",
    "check_bigram", "bigram_entropy", "check_attention_weights", "check_attention", "check_layernorm", "check_mlp",
    "check_block",
    "check_embedding", "check_loss", "check_gpt",
    "check_greedy", "check_sampling_probs", "check_kv_cache", "check_merge", "check_bpe_encode",
    "check_weight_decay_groups", "check_lr_schedule", "check_hf_conversion", "train_and_compare",
    "check_sft_targets", "check_lora_layer", "check_dpo_loss", "check_group_advantages",
    "check_rmsnorm", "check_rotary", "check_swiglu", "check_gqa",
]
