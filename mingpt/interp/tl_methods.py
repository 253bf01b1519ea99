"""
The methods TransformerLens' HookedTransformer has beyond its forward pass, on a GPT (a mixin of `GPT`): text to
tokens and back for a model that knows its tokenizer, hooks that stay attached until ``reset_hooks``, and
``use_attn_result``. Each returns what TL's method of the same name returns (tests/test_tl_parity.py).

    >>> model.set_tokenizer(BPETokenizer())           # GPT-2's; any mingpt Tokenizer works
    >>> model.to_tokens("Hello world")                # tensor([[50256, 15496, 995]]): <|endoftext|> first, as TL
    >>> model.to_str_tokens("Hello world")            # ['<|endoftext|>', 'Hello', ' world']
    >>> model.to_single_token(" world")               # 995

The beginning-of-sequence token (TL's ``prepend_bos``): TL puts one before every text by default
(``cfg.default_prepend_bos = True``), for GPT-2 its ``<|endoftext|>``, because a model's first position is often
treated specially. mingpt follows TL: ``prepend_bos=True`` puts the tokenizer's ``bos_token`` first (a tokenizer.json's
own, e.g. Llama 3's ``<|begin_of_text|>``; else ``<|endoftext|>``; a tokenizer without it needs ``prepend_bos=False``,
and says so). mingpt's own calls (generate,
``tokenizer.encode``) never add one: only these TL-named methods do.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mingpt.interp import head_inputs
from mingpt.interp.hooks import _expand_fwd_hooks
from mingpt.interp.hook_points import find_hook_points

__all__ = ["TLMethods", "BOS_TOKEN"]

BOS_TOKEN = "<|endoftext|>"  # GPT-2's only special token, TL's bos (and pad) token for GPT-2


class TLMethods:
    """TL's token, hook and attention-result methods (a mixin of `GPT`; needs ``self.config`` and hook points)."""

    tokenizer = None  # set_tokenizer(...) gives the model one
    use_attn_result = False  # set_use_attn_result(True): a full run_with_cache records hook_result too
    use_split_qkv_input = use_attn_in = use_hook_mlp_in = False  # TL's per-head inputs: see head_inputs.py

    # ------------------------------------------------------------------ text and tokens
    def set_tokenizer(self, tokenizer) -> None:
        """The tokenizer the text methods (and string tokens in ``cache.logit_attrs``) use: any mingpt Tokenizer."""
        if not (callable(getattr(tokenizer, "encode", None)) and callable(getattr(tokenizer, "decode", None))):
            raise TypeError(f"set_tokenizer expects a tokenizer with encode and decode (e.g. mingpt.bpe.BPETokenizer), "
                            f"got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer

    def _the_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer: call model.set_tokenizer(tokenizer) first, e.g. "
                             "model.set_tokenizer(mingpt.bpe.BPETokenizer()) for GPT-2's")
        return self.tokenizer

    def _bos_id(self) -> int:
        tokenizer = self._the_tokenizer()
        name = getattr(tokenizer, "bos_token", None) or BOS_TOKEN  # a tokenizer.json's own (Llama 3's...), as TL
        bos = getattr(tokenizer, "special_tokens", {}).get(name)
        if bos is None:
            raise ValueError(f"prepend_bos=True needs the tokenizer's {name!r} token, which this tokenizer "
                             f"does not have; pass prepend_bos=False")
        return bos

    def to_tokens(self, input: str | Sequence[str], prepend_bos: bool = True, padding_side: str = "right",
                  move_to_device: bool = True, truncate: bool = True) -> torch.Tensor:
        """
        Text to a (B, T) LongTensor of ids, as TL: one row per string (a str is one row), the bos token first if
        prepend_bos, rows of different lengths padded with the bos token on padding_side, and cut to the first
        block_size tokens if truncate. Special tokens written in the text become their ids (as Hugging Face's).
        """
        tokenizer = self._the_tokenizer()
        texts = [input] if isinstance(input, str) else list(input)
        if not texts or not all(isinstance(text, str) for text in texts):
            raise TypeError(f"to_tokens takes a string or a list of strings, got {input!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        rows = [([self._bos_id()] if prepend_bos else []) + tokenizer.encode(text, allowed_special="all")
                for text in texts]
        if truncate:
            rows = [row[:self.config.block_size] for row in rows]
        width = max(len(row) for row in rows)
        pad = [self._bos_id()] if width > min(len(row) for row in rows) else []
        rows = [row + pad * (width - len(row)) if padding_side == "right" else pad * (width - len(row)) + row
                for row in rows]
        tokens = torch.tensor(rows, dtype=torch.long)
        return tokens.to(next(self.parameters()).device) if move_to_device else tokens

    def to_str_tokens(self, input, prepend_bos: bool = True, padding_side: str = "right"):
        """
        Each token as its text, as TL: a string is tokenized first (with the bos token if prepend_bos); ids (a
        (T,) or (1, T) tensor, or a list of ints) are decoded one by one; a list of strings gives a list of lists.
        """
        tokenizer = self._the_tokenizer()
        if isinstance(input, (list, tuple)) and input and all(isinstance(item, (str, torch.Tensor)) for item in input):
            return [self.to_str_tokens(item, prepend_bos, padding_side) for item in input]
        if isinstance(input, str):
            ids = self.to_tokens(input, prepend_bos, padding_side, move_to_device=False)[0]
        else:
            ids = torch.as_tensor(input).squeeze()
            ids = ids[None] if ids.dim() == 0 else ids
            if ids.dim() != 1 or ids.dtype.is_floating_point:
                raise ValueError(f"to_str_tokens takes a string, or ids of shape (T,) or (1, T), got "
                                 f"{tuple(ids.shape)} {ids.dtype}")
        return [tokenizer.decode([int(i)]) for i in ids]

    def to_string(self, tokens) -> str | list[str]:
        """Ids back to text, as TL: (T,) ids or a list of ints give one string, (B, T) a list of B strings."""
        tokenizer = self._the_tokenizer()
        tokens = torch.as_tensor(tokens)
        if tokens.dim() == 2:
            return [tokenizer.decode(row.tolist()) for row in tokens]
        if tokens.dim() > 2:
            raise ValueError(f"to_string takes ids of shape (T,) or (B, T), got {tuple(tokens.shape)}")
        return tokenizer.decode(tokens.reshape(-1).tolist())

    def to_single_token(self, string: str) -> int:
        """The id of a text that is exactly one token (no bos), as TL; anything else is an error naming it."""
        ids = self.to_tokens(string, prepend_bos=False, move_to_device=False)[0]
        if ids.numel() != 1:
            raise ValueError(f"{string!r} is not a single token: it is {ids.numel()} tokens "
                             f"{self.to_str_tokens(ids)}")
        return int(ids[0])

    def tokens_to_residual_directions(self, tokens) -> torch.Tensor:
        """
        Each token's unembedding direction, as TL: a string (one token), an int or a one-element tensor gives
        (C,); a tensor of ids gives (..., C), a row of W_U.T per id. Direct logit attribution dots a stream with it.
        """
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)
        tokens = torch.as_tensor(tokens)
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be token ids (ints) or a string, got a {tokens.dtype} tensor")
        W_U = self.lm_head.weight  # (V, C): row t is token t's direction
        return W_U[tokens.reshape(()) if tokens.numel() == 1 else tokens]

    # ------------------------------------------------------------------ hooks that stay
    def add_hook(self, name, hook, dir: str = "fwd", is_permanent: bool = False, level=None,
                 prepend: bool = False) -> None:
        """
        Attach hook(activation, hook_point) at name (a hook name or a predicate on names) until ``reset_hooks``,
        as TL's add_hook: unlike ``with model.hooks(...)``, it stays for every later forward pass. dir="bwd": a
        backward hook, hook(gradient of the point's output, hook_point), for every later backward pass. prepend:
        run before the hooks already there; is_permanent: ``reset_hooks`` keeps it unless including_permanent.
        """
        if dir not in ("fwd", "bwd") or level is not None:
            raise ValueError(f"add_hook takes dir='fwd' or 'bwd' and level=None, got dir={dir!r}, level={level!r}")
        points = find_hook_points(self)
        added = self.__dict__.setdefault("_added_hooks", [])  # a plain list, not a module attribute
        for point_name, fn in _expand_fwd_hooks(self, [(name, hook)]):
            point = points[point_name]
            if dir == "fwd":
                point.add_hook(fn, prepend=prepend)
            else:
                point.bwd_fns.insert(0, fn) if prepend else point.add_backward_hook(fn)
                point.active = True
            added.append((point, fn, is_permanent, dir))

    def reset_hooks(self, clear_contexts: bool = True, direction: str = "both", including_permanent: bool = False,
                    level=None) -> None:
        """
        Remove the hooks ``add_hook`` attached in direction 'fwd', 'bwd' or 'both' (the permanent ones too if
        including_permanent), as TL's. Hooks of an open ``with model.hooks(...)`` block stay until it closes,
        whatever clear_contexts says: the block removes its own on exit.
        """
        if direction not in ("fwd", "bwd", "both") or level is not None:
            raise ValueError(f"reset_hooks takes direction 'fwd', 'bwd' or 'both' and level=None, got "
                             f"direction={direction!r}, level={level!r}")
        kept = []
        for point, fn, permanent, dir in reversed(self.__dict__.pop("_added_hooks", [])):
            if (permanent and not including_permanent) or direction not in ("both", dir):
                kept.insert(0, (point, fn, permanent, dir))
            else:
                point.remove(fn=fn) if dir == "fwd" else point.remove(bwd_fn=fn)
        if kept:
            self.__dict__["_added_hooks"] = kept

    # ------------------------------------------------------------------ per-head results
    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """
        TL's switch: with True, a run_with_cache that records every hook point also records each head's output,
        ``blocks.{i}.attn.hook_result`` (B, T, nh, C): nh times the size of attn_out, so off by default. Naming it
        in names_filter records it either way; ``cache.stack_head_results`` computes it from hook_z when absent.
        """
        if not isinstance(use_attn_result, bool):
            raise TypeError(f"use_attn_result must be True or False, got {use_attn_result!r}")
        self.use_attn_result = use_attn_result

    # ------------------------------------------------------------------ per-head inputs (head_inputs.py)
    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """
        TL's switch: with True, every block has ``hook_q_input`` (B, T, nh, C), ``hook_k_input`` and
        ``hook_v_input`` (B, T, n_kv_head, C): resid_pre copied once per head, each head's queries, keys or values
        read from its own copy (through ln1), so an edit of one head's copy changes that head alone (path patching).
        """
        self._set_switch("use_split_qkv_input", use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """TL's switch: with True, every block has ``hook_attn_in`` (B, T, nh, C), one copy of resid_pre per head
        that its queries, keys and values all read. Not for grouped K/V heads (as TL): use set_use_split_qkv_input."""
        if use_attn_in and (getattr(self.config, "n_kv_head", None) or self.config.n_head) != self.config.n_head:
            raise ValueError(f"set_use_attn_in(True) gives each of the {self.config.n_head} query heads one input, "
                             f"which the {self.config.n_kv_head} shared K/V heads cannot read (as in TL); use "
                             f"set_use_split_qkv_input(True): its k and v inputs have one copy per K/V head")
        self._set_switch("use_attn_in", use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """TL's switch: with True, every block has ``hook_mlp_in`` (B, T, C), the stream entering ln2 and the MLP
        (resid_mid; resid_pre in a parallel block). An attention-only model has no MLP, so no such point (as TL)."""
        if use_hook_mlp_in and getattr(self.config, "attn_only", False):
            raise ValueError("set_use_hook_mlp_in(True): this model is attention-only (config.attn_only), it has no "
                             "MLP input to hook")
        self._set_switch("use_hook_mlp_in", use_hook_mlp_in)

    def _set_switch(self, name: str, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        before = getattr(self, name)
        setattr(self, name, value)
        try:
            head_inputs.apply_switches(self)
        except ValueError:
            setattr(self, name, before)  # a model that cannot have them keeps what it had
            head_inputs.apply_switches(self)
            raise
