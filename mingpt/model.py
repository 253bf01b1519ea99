"""
The GPT language model: a faithful GPT-2, written to be read.

The one idea: a GPT is a stack of identical Blocks. Each Block lets every position look at earlier positions
(causal self-attention, "communication") and then think on its own (an MLP, "computation"), each wrapped as
``x = x + sublayer(LayerNorm(x))`` so the residual stream carries information straight through the stack.

Names follow GPT-2 so OpenAI's weights map one to one. A small glossary:

    wte     token embedding table (V, C)          wpe    position embedding table (block_size, C)
    h       the list of Blocks                    ln_1   LayerNorm before attention; ln_2 before the MLP
    c_attn  one matmul that produces q, k and v   c_proj the output projection of attention or MLP
    c_fc    the MLP's expansion to 4*C            ln_f   the final LayerNorm, before lm_head
    lm_head maps C channels back to V vocabulary logits (tied to wte by default)

Tensor shapes in comments: B batch, T time (sequence), C channels (n_embd), nh heads, hs head size, V vocab.

Hook points: at each place TransformerLens names (``blocks.0.attn.hook_z``, ...) the forward pass hands its tensor
to an identity `HookPoint` (``z = self.hook_z(z)``), one attribute test until interp/hooks.py attaches a function
there. So there is one forward pass, for training, generation and inspection alike.

Imports point down from here: config.py and inputs.py come before the model; generation.py, interp/ and io/ work
on any model with this interface and never import this file, so ``model.generate``, ``model.run_with_cache`` and
``GPT.from_pretrained`` are one-line calls down into them.

References: "Attention Is All You Need" (2017); GPT-2 "Language Models are Unsupervised Multitask Learners" (2019).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt import generation
from mingpt.cfgnode import CfgNode
from mingpt.components import NoMLP, check_components
from mingpt.config import default_config, resolve_config
from mingpt.inputs import causal_mask, check_targets, check_token_ids
from mingpt.interp import hooks as interp_hooks  # the module; `hooks` is also the name of a GPT method
from mingpt.interp.circuits import WeightViews
from mingpt.interp.hook_points import HookPoint, LayerNormHookPoints, find_hook_points, has_scale, no_hook, no_ln_hooks
from mingpt.interp.tl_methods import TLMethods
from mingpt.modern.parts import ModernQKV, choose_parts

logger = logging.getLogger(__name__)

# Targets equal to this value are ignored by the loss (e.g. the prompt part of a sequence). The original minGPT
# used -1, so its datasets keep working.
IGNORE_INDEX = -1


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t may only look at positions <= t."""

    def __init__(self, config: CfgNode, layer_idx: int):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.layer_idx = layer_idx  # which slot of a KV cache belongs to this layer
        self.implementation = config.attention
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)  # on the attention probabilities
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        self.hook_q, self.hook_k, self.hook_v, self.hook_z = HookPoint(), HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern, self.hook_result = HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, kv_cache=None, attn_mask=None) -> torch.Tensor:
        q, k, v = self.queries_keys_values(x, kv_cache)  # each (B, nh, T, hs); k, v hold the cached positions too
        hooked = self.hook_attn_scores.active or self.hook_pattern.active  # the fused kernel never forms these two
        explicit = hooked or use_math_attention(self.implementation, q)
        y = self.math_attention(q, k, v, attn_mask) if explicit else self.sdpa_attention(q, k, v, attn_mask)
        z = self.hook_z(y.transpose(1, 2))  # each head's weighted values: (B, T, nh, hs)
        if self.hook_result.active:  # each head's own output, computed only when someone asks for it
            return self.resid_dropout(self.per_head_output(z))
        return self.resid_dropout(self.c_proj(z.flatten(2)))  # heads side by side (B, T, C), projected

    def queries_keys_values(self, x: torch.Tensor, kv_cache=None):
        B, T, C = x.size(0), x.size(1), self.n_embd  # x (B, T, C), or one per head: (B, T, heads, C)
        nh, hs = self.n_head, C // self.n_head
        # One matmul gives queries, keys and values; each is split into heads, (B, T, C) -> (B, T, nh, hs) (the
        # layout the hook points show, TransformerLens'), then heads go first for attention: (B, nh, T, hs).
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = self.hook_q(q.view(B, T, nh, hs)).transpose(1, 2)
        k = self.hook_k(k.view(B, T, nh, hs)).transpose(1, 2)
        v = self.hook_v(v.view(B, T, nh, hs)).transpose(1, 2)
        if kv_cache is not None:
            # Decoding: keys/values of earlier positions were stored; append ours and attend over all of them.
            k, v = kv_cache.update(self.layer_idx, k, v)
        return q, k, v

    def per_head_output(self, z: torch.Tensor) -> torch.Tensor:
        """c_proj(z) written as a sum over heads: head n writes z_n @ W_O[n], (B, T, nh, C) at hook_result."""
        W_O = self.c_proj.weight.view(self.n_embd, self.n_head, z.size(-1))  # (C_out, nh, hs), Linear's layout
        out = self.hook_result(torch.einsum("btnh,cnh->btnc", z, W_O)).sum(dim=2)
        return out if self.c_proj.bias is None else out + self.c_proj.bias

    def sdpa_attention(self, q, k, v, attn_mask=None):
        """PyTorch's fused kernel (flash / memory-efficient attention where available); same maths as below."""
        T_q, T_kv = q.size(-2), k.size(-2)
        # The fused kernel applies attention dropout itself: the same probability as attn_dropout, when training.
        dropout_p = self.attn_dropout.p if self.training else 0.0
        if attn_mask is not None:  # batched prompts of different lengths: the caller's mask hides the padding
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        if T_q == T_kv:  # the usual case: a full causal square
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        if T_q == 1:  # one new token attends to everything cached before it: nothing to mask
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        mask = causal_mask(T_q, T_kv, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

    def math_attention(self, q, k, v, attn_mask=None):
        """The explicit version, for teaching and for inspecting the attention probabilities."""
        T_q, T_kv = q.size(-2), k.size(-2)
        # Scores: how much each query matches each key. Dividing by sqrt(hs) keeps their variance near 1, so the
        # softmax does not saturate as the head size grows. (B, nh, T_q, hs) @ (B, nh, hs, T_kv) -> (B, nh, T_q, T_kv)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        # Causality: a query may not see keys from its future. -inf becomes probability 0 after the softmax.
        allowed = causal_mask(T_q, T_kv, q.device) if attn_mask is None else attn_mask
        att = self.hook_attn_scores(att.masked_fill(~allowed, float("-inf")))
        att = self.hook_pattern(F.softmax(att, dim=-1))
        att = self.attn_dropout(att)
        return att @ v  # weighted sum of values: (B, nh, T_q, T_kv) @ (B, nh, T_kv, hs) -> (B, nh, T_q, hs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        drop_original_causal_mask(state_dict, prefix)  # the original minGPT's state dicts: see the end of this file
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def use_math_attention(implementation: str, q: torch.Tensor) -> bool:
    """
    Which attention path runs: 'math' or 'sdpa' as configured; 'auto' is SDPA except when a backward pass will run
    in bfloat16 on CPU (q is bf16, e.g. under bf16 autocast, and needs gradients), where PyTorch's CPU flash-attention
    backward is slow and the whole step runs faster on the math path (bench/train_step.py prints both).
    """
    if implementation != "auto":
        return implementation == "math"
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.requires_grad


class ModernAttention(ModernQKV, CausalSelfAttention):
    """The attention above with rotary positions, grouped K/V heads or QK-norm, as the config asks (mingpt/modern)."""


class NewGELU(nn.GELU):
    """GPT-2's activation, GELU's tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in one fused
    kernel; "new" in BERT's and GPT-2's code, a name the original minGPT kept (``mingpt.model.NewGELU``)."""

    def __init__(self):
        super().__init__(approximate="tanh")


class MLP(nn.Module):
    """Position-wise feed-forward network: expand to 4*C, GELU, project back to C."""

    def __init__(self, config: CfgNode):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = NewGELU()  # GPT-2 used the tanh approximation of GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(self.hook_post(self.gelu(pre))))


class Block(nn.Module):
    """One transformer block, pre-LayerNorm as in GPT-2: normalise, transform, add back to the residual."""

    def __init__(self, config: CfgNode, layer_idx: int, attention=None, mlp=None, layer_norm=None):
        super().__init__()
        # attention / mlp / layer_norm: classes to use instead of the built-in ones (a student's own, see GPT).
        layer_norm = layer_norm or nn.LayerNorm
        self.ln_1 = layer_norm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = (attention or CausalSelfAttention)(config, layer_idx)
        self.ln_2 = layer_norm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = (mlp or MLP)(config)
        # TransformerLens' names for the points around the sums (ln1/ln2 are its names for ln_1/ln_2).
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_mid = HookPoint(), HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()
        self.hook_ln1 = LayerNormHookPoints("ln1", with_scale=has_scale(self.ln_1))
        self.hook_ln2 = LayerNormHookPoints("ln2", with_scale=has_scale(self.ln_2))
        if config.attn_only:  # TL's attention-only model: no MLP half, nor its hook points (see components.py)
            self.ln_2, self.mlp = nn.Identity(), NoMLP()
            self.hook_resid_mid, self.hook_ln2, self.hook_mlp_out = no_hook, no_ln_hooks, no_hook

    def forward(self, x: torch.Tensor, kv_cache=None, attn_mask=None) -> torch.Tensor:
        # attn_mask only for batched prompts of different lengths, so a student's attention needs it only then
        masked = {} if attn_mask is None else {"attn_mask": attn_mask}
        x = self.hook_resid_pre(x)
        attn_out = self.hook_attn_out(self.attn(self.hook_ln1(self.ln_1, x), kv_cache, **masked))  # ln_1(x), hooked
        x = self.hook_resid_mid(x + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.hook_ln2(self.ln_2, x)))
        return self.hook_resid_post(x + mlp_out)


class GPT(nn.Module, WeightViews, TLMethods):
    """
    GPT language model. ``logits, loss = model(idx, targets)``; ``model.generate(idx, max_new_tokens)``.
    WeightViews adds TransformerLens' weight names (model.W_Q, model.OV, ...; see mingpt/interp/circuits.py),
    TLMethods its other methods (to_tokens, add_hook, set_use_attn_result, ...; mingpt/interp/tl_methods.py).
    """

    get_default_config = staticmethod(default_config)  # the defaults, and what each means, are in config.py

    def __init__(self, config: CfgNode, *, attention=None, mlp=None, layer_norm=None, block=None):
        """attention, mlp, layer_norm, block: optional classes replacing the built-in components, e.g. a student's
        own: ``GPT(config, attention=MyAttention)``. mingpt/components.py says what each must accept."""
        super().__init__()
        self.config = config = resolve_config(config)  # a private, checked copy: the caller's is never changed
        check_components(attention=attention, mlp=mlp, layer_norm=layer_norm, block=block)
        # The config picks each part: GPT-2's classes in this file, or mingpt/modern's (rotary, RMSNorm, SwiGLU...)
        parts = choose_parts(config, ModernAttention, Block, attention=attention, mlp=mlp, layer_norm=layer_norm)

        def make_block(i):  # a custom Block class builds its own parts
            return block(config, i) if block is not None else parts.make_block(config, i)

        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=(parts.position or nn.Embedding)(config.block_size, config.n_embd),
                drop=nn.Dropout(config.embd_pdrop),
                h=nn.ModuleList([make_block(i) for i in range(config.n_layer)]),
                ln_f=parts.layer_norm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
            )
        )
        self.lm_head = (parts.head or nn.Linear)(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            # One matrix both reads tokens in and scores tokens out: fewer parameters, and it trains better.
            self.transformer.wte.weight = self.lm_head.weight
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.hook_ln_final = LayerNormHookPoints("ln_final", with_scale=has_scale(self.transformer.ln_f))
        find_hook_points(self)  # gives every hook point its full name

        # GPT-2 init: N(0, 0.02) everywhere, and the projections that write into the residual stream scaled by
        # 1/sqrt(2 * n_layer), because 2 * n_layer of them add up along the stream.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        logger.info("GPT with %.2fM parameters", self.num_parameters() / 1e6)

    # ------------------------------------------------------------------ forward
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None):
        """
        idx: (B, T) token ids. targets: (B, T) ids to predict, IGNORE_INDEX (-1) where no loss is wanted.
        Returns (logits (B, T, V), loss or None).
        """
        if not torch.compiler.is_compiling():  # the id range check needs the values: a sync and a graph break
            check_token_ids(idx, "idx", self.config.vocab_size, device=self.transformer.wte.weight.device)
        start = kv_cache.length if kv_cache is not None else 0
        if start + idx.size(1) > self.config.block_size:
            raise ValueError(
                f"sequence of length {start + idx.size(1)} is longer than block_size={self.config.block_size}; "
                f"crop it, e.g. idx[:, -{self.config.block_size}:]"
            )
        logits = self.forward_logits(idx, kv_cache)
        loss = None
        if targets is not None:
            check_targets(targets, idx, self.config.vocab_size, IGNORE_INDEX)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    def forward_logits(self, idx: torch.Tensor, kv_cache=None, last_only: bool = False, attn_mask=None,
                       position_ids=None) -> torch.Tensor:
        """
        The forward pass without input checks or loss: (B, T) ids -> (B, T, V) logits ((B, 1, V) if last_only).
        Left-padded batches of prompts (generation.py) also pass attn_mask, a boolean (B, 1, T, T_kv), True where a
        query may see a key (instead of the causal mask), and position_ids (B, T): each row's own positions.
        """
        B, T = idx.size()
        start = kv_cache.length if kv_cache is not None else 0
        pos = position_ids if position_ids is not None else torch.arange(start, start + T, device=idx.device)  # (T,)
        tok_emb = self.hook_embed(self.transformer.wte(idx))  # (B, T, C)
        pos_emb = self.hook_pos_embed(self.transformer.wpe(pos).expand(B, T, -1))  # (B, T, C), a view: no copy
        x = self.transformer.drop(tok_emb + pos_emb)
        # attn_mask only for batched prompts of different lengths, so a student's Block needs it only then
        masked = {} if attn_mask is None else {"attn_mask": attn_mask}
        for block in self.transformer.h:
            x = block(x, kv_cache, **masked)
        if kv_cache is not None:
            kv_cache.advance(T)
        if last_only:  # generation needs only the next-token distribution: skip T-1 rows of the big V matmul
            x = x[:, -1:, :]
        return self.lm_head(self.hook_ln_final(self.transformer.ln_f, x))  # ln_f(x), through its hook points

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
        if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ convenience: one-line calls down
    @property
    def hook_dict(self) -> dict[str, HookPoint]:
        """Every hook point by TransformerLens' full name, in forward order (TL's ``model.hook_dict``)."""
        return find_hook_points(self)

    def hooks(self, fwd_hooks=(), bwd_hooks=(), names_filter=None, cache=None):
        """A context manager: while inside, fn(activation, hook) runs at each named hook point, generate included."""
        return interp_hooks.hooks(self, fwd_hooks, bwd_hooks, names_filter=names_filter, cache=cache)

    def run_with_hooks(self, idx, fwd_hooks=(), return_type="logits", **kwargs):
        """One forward pass (eval mode) with fwd_hooks (and bwd_hooks) active; see mingpt/interp/hooks.py."""
        return interp_hooks.run_with_hooks(self, idx, fwd_hooks, return_type=return_type, **kwargs)

    def run_with_cache(self, idx, names_filter=None, **kwargs):
        """``logits, cache = model.run_with_cache(idx)``: one forward pass that records every hook point."""
        return interp_hooks.run_with_cache(self, idx, names_filter=names_filter, **kwargs)

    def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None, **kwargs):
        """Continue each row of idx (B, T) by up to max_new_tokens tokens: (B, T + new). See mingpt/generation.py."""
        return generation.generate(self, idx, max_new_tokens, temperature=temperature, do_sample=do_sample,
                                   top_k=top_k, **kwargs)

    def generate_stream(self, idx, max_new_tokens, **kwargs):
        """Like `generate`, but yields each new (B,) column of tokens as soon as it is chosen."""
        return generation.generate_stream(self, idx, max_new_tokens, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs) -> "GPT":
        """Load GPT-2, Llama, Qwen2/3 or GPT-NeoX weights, and the model's tokenizer.json as model.tokenizer."""
        # Imported here: weights need the Hub, downloads, conversion, tokenizer.json; a model from scratch never does.
        from mingpt.hub_tokenizer import HubTokenizer
        from mingpt.io import pretrained
        return pretrained.from_pretrained(cls, name_or_path, **{"tokenizer_class": HubTokenizer, **kwargs})

    def save_pretrained(self, directory: str, **kwargs) -> None:
        """Write config.json + model.safetensors in Hugging Face layout, GPT-2's or its family's (for transformers)."""
        from mingpt.io import pretrained  # imported here for the reason from_pretrained gives
        pretrained.save_pretrained(self, directory, **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_tied_embeddings(self, state_dict, prefix)  # the original minGPT's state dicts: see the end of this file
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ accounting and optimisation
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters (shared ones counted once); optionally without the position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.transformer.wpe.weight.numel()
        return n

    def estimate_flops_per_token(self, seq_len: int | None = None) -> int:
        """
        FLOPs to train on one token (forward + backward), from the PaLM paper's appendix: 6 per parameter (2 for
        the forward multiply-add, 4 for the backward), plus attention's scores and weighted sums, which grow with
        the sequence length T: 12 * n_layer * n_embd * T.
        """
        T = seq_len or self.config.block_size
        return 6 * self.num_parameters(exclude_embeddings=True) + 12 * self.config.n_layer * self.config.n_embd * T

    def configure_optimizers(self, train_config, fused: bool | None = None):
        """
        AdamW with weight decay only on the weights of Linear layers (the matmuls); biases, LayerNorm gains and
        embeddings are not decayed (the rule and why: mingpt.training.optimizer, which the Trainer also uses for
        models without this method). train_config needs learning_rate, betas and weight_decay; with
        ``train_config.optimizer == 'muon'``, Muon takes the hidden matrices (mingpt.training.optimizer).
        """
        # Imported here, when called: the model's module loads no training code (the Trainer's room), as
        # from_pretrained reaches the Hub's only when called.
        from mingpt.training.optimizer import make_optimizer

        return make_optimizer(self, train_config, fused)


# ---------------------------------------------------------------------------------------------------------------
# State-dict compatibility: the original minGPT's checkpoints load unchanged (the _load_from_state_dict above).

def drop_original_causal_mask(state_dict: dict, prefix: str) -> None:
    """
    The original minGPT stored its causal mask as a persistent buffer `attn.bias`, a (1, 1, block_size, block_size)
    lower triangle of ones. mingpt computes the mask (is_causal=True), so that key is no weight: drop it, and only
    it, so the original's state dicts load strictly (any other tensor there is reported as an unexpected key).
    """
    mask = state_dict.get(prefix + "bias")
    if isinstance(mask, torch.Tensor) and mask.dim() == 4 and mask.shape[:2] == (1, 1):
        if mask.size(2) == mask.size(3) and torch.equal(mask, torch.ones_like(mask).tril()):
            del state_dict[prefix + "bias"]  # load_state_dict works on a copy: the caller's dict keeps it


def check_tied_embeddings(model: GPT, state_dict: dict, prefix: str) -> None:
    """A tied model holds one matrix under two names. The original minGPT never tied them, so its state dicts carry
    two different matrices; loading both into one would silently keep only lm_head's."""
    wte, head = state_dict.get(prefix + "transformer.wte.weight"), state_dict.get(prefix + "lm_head.weight")
    if model.config.tie_weights and isinstance(wte, torch.Tensor) and isinstance(head, torch.Tensor):
        if wte.shape == head.shape and not torch.equal(wte, head):
            raise ValueError(
                "this state dict has different transformer.wte.weight and lm_head.weight (untied, as the original "
                "minGPT trains them), but this model ties them; build it with config.tie_weights = False"
            )
