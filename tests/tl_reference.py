"""
TransformerLens (TL), the test-only oracle: a HookedTransformer holding a mingpt GPT's weights, so a test can hold
every TL-named call against TL's own function on the same weights. TL is not a package requirement.
"""

from __future__ import annotations

import pytest
import torch


def import_transformer_lens():
    return pytest.importorskip("transformer_lens")


def tl_state_dict(model) -> dict[str, torch.Tensor]:
    """mingpt's weights in TL's layout, read through mingpt's own TL-named views (model.W_Q, ...)."""
    sd = {"embed.W_E": model.W_E, "pos_embed.W_pos": model.W_pos, "unembed.W_U": model.W_U, "unembed.b_U": model.b_U,
          "ln_final.w": model.transformer.ln_f.weight, "ln_final.b": model.transformer.ln_f.bias}
    for i, block in enumerate(model.transformer.h):
        p = f"blocks.{i}."
        sd.update({p + "ln1.w": block.ln_1.weight, p + "ln1.b": block.ln_1.bias,
                   p + "ln2.w": block.ln_2.weight, p + "ln2.b": block.ln_2.bias})
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            sd[p + "attn." + name] = getattr(model, name)[i]
        for name in ("W_in", "b_in", "W_out", "b_out"):
            sd[p + "mlp." + name] = getattr(model, name)[i]
    return {k: v.detach().clone() for k, v in sd.items()}


def tl_model(model, fold_ln: bool = False, tokenizer=None, use_attn_result: bool = False):
    """A HookedTransformer with model's weights; weights as they are unless fold_ln (then LayerNorm weights are
    folded into the next matrices, TL's default loading), never centered."""
    tl = import_transformer_lens()
    c = model.config
    cfg = tl.HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head, d_mlp=4 * c.n_embd,
        d_vocab=c.vocab_size, n_ctx=c.block_size, act_fn="gelu_new", normalization_type="LN",
        eps=c.layer_norm_epsilon, use_attn_result=use_attn_result, device="cpu", default_prepend_bos=True)
    hooked = tl.HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    hooked.load_and_process_state_dict(tl_state_dict(model), fold_ln=fold_ln, center_writing_weights=False,
                                       center_unembed=False, fold_value_biases=False)
    return hooked.eval()
