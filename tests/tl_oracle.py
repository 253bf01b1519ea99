"""
TransformerLens (TL) as a test oracle: import it, and build a HookedTransformer holding a mingpt GPT's weights.

TL is a test-only reference, never a dependency of the package (tl_reference.py is its sibling for TL's
folded-LayerNorm loading and a tokenizer).
"""

from __future__ import annotations

import pytest
import torch


def import_transformer_lens():
    return pytest.importorskip("transformer_lens")


def tl_model_from_gpt(model):
    """A HookedTransformer with model's weights as they are (no folding or centering), GPT-2's architecture."""
    tl = import_transformer_lens()
    c = model.config
    attn_only = bool(getattr(c, "attn_only", False))
    cfg = tl.HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_ctx=c.block_size, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        d_vocab=c.vocab_size, d_mlp=None if attn_only else 4 * c.n_embd, act_fn="gelu_new", attn_only=attn_only,
        normalization_type="LN", eps=c.layer_norm_epsilon, positional_embedding_type="standard",
        default_prepend_bos=False, device="cpu")
    nh, hs = c.n_head, c.n_embd // c.n_head
    sd = {"embed.W_E": model.transformer.wte.weight, "pos_embed.W_pos": model.transformer.wpe.weight,
          "ln_final.w": model.transformer.ln_f.weight, "ln_final.b": model.transformer.ln_f.bias,
          "unembed.W_U": model.lm_head.weight.T, "unembed.b_U": torch.zeros(c.vocab_size)}
    for i, block in enumerate(model.transformer.h):
        p = f"blocks.{i}."
        sd[p + "ln1.w"], sd[p + "ln1.b"] = block.ln_1.weight, block.ln_1.bias
        W = block.attn.c_attn.weight.T  # (C, 3C): input rows, [q | k | v] columns
        for j, name in enumerate("QKV"):
            sd[p + f"attn.W_{name}"] = W[:, j * c.n_embd:(j + 1) * c.n_embd].reshape(c.n_embd, nh, hs).permute(1, 0, 2)
            sd[p + f"attn.b_{name}"] = block.attn.c_attn.bias[j * c.n_embd:(j + 1) * c.n_embd].reshape(nh, hs)
        sd[p + "attn.W_O"] = block.attn.c_proj.weight.T.reshape(nh, hs, c.n_embd)
        sd[p + "attn.b_O"] = block.attn.c_proj.bias
        if not attn_only:
            sd[p + "ln2.w"], sd[p + "ln2.b"] = block.ln_2.weight, block.ln_2.bias
            sd[p + "mlp.W_in"], sd[p + "mlp.b_in"] = block.mlp.c_fc.weight.T, block.mlp.c_fc.bias
            sd[p + "mlp.W_out"], sd[p + "mlp.b_out"] = block.mlp.c_proj.weight.T, block.mlp.c_proj.bias
    reference = tl.HookedTransformer(cfg)
    reference.load_and_process_state_dict({k: v.detach().clone() for k, v in sd.items()}, fold_ln=False,
                                          center_writing_weights=False, center_unembed=False,
                                          fold_value_biases=False)
    return reference.eval()
