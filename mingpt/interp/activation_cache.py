"""
ActivationCache: the activations of one forward pass by hook name, and the standard ways to read the residual
stream out of them (accumulated residual, its decomposition into what each sublayer wrote, per-head results,
direct logit attribution).

The one idea: the residual stream is a *sum*. After the last block it is

    resid_post[-1] = embed + pos_embed + sum_i (attn_out_i + mlp_out_i) = embed + pos_embed + sum_(i,h) result_ih + ...

and the final LayerNorm is, for a fixed input, a linear map plus a bias: ``ln(x) = (x - mean(x)) / scale * w + b``,
where ``scale`` depends on x. Freeze ``scale`` at the value the model computed (``ln_final.hook_scale``) and
the map is linear, so it distributes over the sum: each component's direct contribution to the logits is
``(c - mean(c)) / scale * w @ W_U``, and ``b @ W_U`` is one more component, counted once. Here the LayerNorm is
applied exactly as the model applies it, so the pieces add up to the real logits (TL folds w into W_U and b into
b_U instead; with its default weight processing its activations are not the model's). Where a method carries TL's
name it returns TL's numbers (``logit_attrs`` applies the final LayerNorm itself, as TL's); mingpt's exact
decomposition is ``decompose_resid(apply_ln=True, incl_ln_bias=True)`` read out by ``unembed_attrs``.

Stacks have the component first: (n_components, B, T, C), or (n_components, B, C) after a pos_slice of one int.
"""

from __future__ import annotations

from typing import Iterator

import torch

from mingpt.interp.hook_points import check_hook_name, get_act_name, norm_parts
from mingpt.interp.neuron_results import NeuronResults
from mingpt.interp.neuron_results import slice_pos as _slice_pos

__all__ = ["ActivationCache"]


class ActivationCache(NeuronResults):
    """
    ``cache[name]`` or TL's shorthand ``cache["pattern", 1]``, ``cache["scale", 0, "ln1"]`` (negative layers count
    from the end). Also dict-like: ``keys()``, ``items()``, ``in``, ``len``.
    """

    def __init__(self, cache_dict: dict[str, torch.Tensor], model, has_batch_dim: bool = True):
        self.cache_dict = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim

    def remove_batch_dim(self) -> "ActivationCache":
        """TL's: a cache of one example drops its batch dim (in place; returns the cache)."""
        if self.has_batch_dim:
            sizes = {name: value.size(0) for name, value in self.cache_dict.items() if value.size(0) != 1}
            if sizes:
                raise ValueError(f"remove_batch_dim needs a batch of one, but e.g. {next(iter(sizes.items()))} "
                                 f"has another: run the cache on one example")
            self.cache_dict = {name: value[0] for name, value in self.cache_dict.items()}
            self.has_batch_dim = False
        return self

    def to(self, device, move_model: bool = False) -> "ActivationCache":
        """TL's: every activation moved to device (in place; returns the cache), and the model too if asked."""
        self.cache_dict = {name: value.to(device) for name, value in self.cache_dict.items()}
        if move_model:
            self.model.to(device)
        return self

    # ------------------------------------------------------------------ dict-like access
    def _full_name(self, key) -> str:
        if isinstance(key, str):
            return key if key in self.cache_dict or "." in key or key.startswith("hook_") else get_act_name(key)
        if isinstance(key, tuple) and 1 <= len(key) <= 3 and isinstance(key[0], str):
            name, layer, layer_type = (*key, None, None)[:3]
            if isinstance(layer, int) and layer < 0:
                layer += self.model.config.n_layer
            return get_act_name(name, layer, layer_type)
        raise KeyError(f"cache keys are hook names or (short_name, layer[, 'ln1'|'ln2']) tuples, got {key!r}")

    def __getitem__(self, key) -> torch.Tensor:
        name = self._full_name(key)
        if name not in self.cache_dict:
            check_hook_name(self.model, name)  # a typo gets a suggestion; a real name was filtered out
            hint = " (a full cache records hook_result after model.set_use_attn_result(True), as TL's)" \
                if name.endswith("hook_result") else ""
            raise KeyError(f"{name!r} was not recorded: run_with_cache's names_filter left it out{hint}")
        return self.cache_dict[name]

    def __contains__(self, key) -> bool:
        try:
            return self._full_name(key) in self.cache_dict
        except (KeyError, ValueError):
            return False

    def __len__(self) -> int:
        return len(self.cache_dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def keys(self):
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def __repr__(self) -> str:
        return f"ActivationCache with {len(self)} activations: {list(self.cache_dict)[:4]}..."

    # ------------------------------------------------------------------ the residual stream, read out
    def _layer(self, layer, what: str) -> int:
        n = self.model.config.n_layer
        if layer is None or layer == -1:
            return n
        if not isinstance(layer, int) or not 0 <= layer <= n:
            raise ValueError(f"{what}: layer must be in [0, {n}] (n_layer means after the last block), None or -1, "
                             f"got {layer!r}")
        return layer

    def accumulated_resid(self, layer: int | None = None, incl_mid: bool = False, apply_ln: bool = False,
                          pos_slice=None, mlp_input: bool = False, return_labels: bool = False):
        """
        The residual stream at each depth up to ``layer``: resid_pre of blocks 0..layer (and resid_mid with
        incl_mid), then the final stream ('final_post') when layer is None, -1 or n_layer. (n, B, T, C).
        apply_ln, as TL 2.18's: for the final stream (layer None/-1/n_layer) the logit lens, ln_final applied to
        every entry with that entry's own statistics, as if the network stopped there (the last entry becomes
        exactly ln_final's output; through lm_head, the logits: probe.py's ``logit_lens``). For an earlier layer,
        what each entry contributes to that layer's input: ``apply_ln_to_stack`` with the scale the model computed.
        mlp_input: go on to ``layer``'s resid_mid, the input of its MLP (and use its ln2).
        """
        layer = self._layer(layer, "accumulated_resid")
        n = self.model.config.n_layer
        components, labels = [], []
        for i in range(layer + 1):
            if i == n:
                components.append(self["resid_post", n - 1])
                labels.append("final_post")
                continue
            components.append(self["resid_pre", i])
            labels.append(f"{i}_pre")
            if incl_mid and i < layer:
                components.append(self["resid_mid", i])
                labels.append(f"{i}_mid")
        if mlp_input and layer < n:
            components.append(self["resid_mid", layer])
            labels.append(f"{layer}_mid")
        stack = _slice_pos(torch.stack(components), pos_slice, dim=2)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice=pos_slice, recompute_ln=layer == n)
        return (stack, labels) if return_labels else stack

    def decompose_resid(self, layer: int | None = None, mlp_input: bool = False, mode: str = "all",
                        apply_ln: bool = False, pos_slice=None, incl_embeds: bool = True, return_labels: bool = False,
                        incl_ln_bias: bool = False):
        """
        What each sublayer wrote into the stream before ``layer``: embed, pos_embed, then {i}_attn_out and
        {i}_mlp_out (mode 'all', 'attn' or 'mlp'). They sum to resid_pre of ``layer`` (the final stream by default).
        With apply_ln, each goes through the LayerNorm's linear part (``apply_ln_to_stack``: centre, divide by the
        cached scale, times its weight), as TL's. incl_ln_bias (mingpt's exact decomposition, with apply_ln): the
        LayerNorm's bias appended once, labelled e.g. 'ln_final.bias': with mode='all' and the embeddings, the
        stack then sums to that LayerNorm's output (for the final one, ln_final.hook_normalized), and through
        ``unembed_attrs`` to the logits.
        mlp_input: also ``layer``'s own attn_out, so the sum is the input of its MLP (and the LayerNorm its ln2).
        """
        if mode not in ("all", "attn", "mlp"):
            raise ValueError(f"mode must be 'all', 'attn' or 'mlp', got {mode!r}")
        layer = self._layer(layer, "decompose_resid")
        components, labels = [], []
        if incl_embeds:
            components += [self["embed"], self["pos_embed"]]
            labels += ["embed", "pos_embed"]
        incl_mlp = mode != "attn" and not getattr(self.model.config, "attn_only", False)  # TL's rule
        for i in range(layer):
            if mode != "mlp":
                components.append(self["attn_out", i])
                labels.append(f"{i}_attn_out")
            if incl_mlp:
                components.append(self["mlp_out", i])
                labels.append(f"{i}_mlp_out")
        if mlp_input and layer < self.model.config.n_layer and mode != "mlp":
            components.append(self["attn_out", layer])
            labels.append(f"{layer}_attn_out")
        if not components:
            raise ValueError(f"decompose_resid(layer={layer}, mode={mode!r}, incl_embeds=False) has no components")
        stack = _slice_pos(torch.stack(components), pos_slice, dim=2)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice=pos_slice)
            if incl_ln_bias:
                stack, labels = self._append_ln_bias(stack, labels, layer, mlp_input)
        return (stack, labels) if return_labels else stack

    def stack_head_results(self, layer: int | None = None, return_labels: bool = False,
                           incl_remainder: bool = False, pos_slice=None, apply_ln: bool = False):
        """
        Each head's output ('L{i}H{h}') for the blocks before ``layer`` (all by default): (n_heads_total, B, T, C).
        Taken from hook_result when it was cached, else computed from hook_z and W_O. incl_remainder adds what
        the heads do not explain ('remainder': the stream minus the heads). apply_ln: the LayerNorm's linear part.
        """
        layer = self._layer(layer, "stack_head_results")
        components, labels = [], []
        for i in range(layer):
            if ("result", i) in self:
                result = self["result", i]
            else:  # z (B, T, nh, hs) times W_O (nh, hs, C), as the model's per_head_output computes it
                attn = self.model.transformer.h[i].attn
                W_O = attn.c_proj.weight.view(attn.n_embd, attn.n_head, -1)
                result = torch.einsum("btnh,cnh->btnc", self["z", i], W_O.detach())
            components += list(result.permute(2, 0, 1, 3))  # nh of (B, T, C)
            labels += [f"L{i}H{h}" for h in range(result.size(2))]
        if not components:
            raise ValueError("stack_head_results(layer=0) has no heads: give a layer >= 1 (or None for all)")
        stack = torch.stack(components)
        if incl_remainder:
            total = self["resid_post", self.model.config.n_layer - 1] if layer == self.model.config.n_layer \
                else self["resid_pre", layer]
            stack = torch.cat([stack, (total - stack.sum(0))[None]])
            labels.append("remainder")
        stack = _slice_pos(stack, pos_slice, dim=2)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack

    def _layer_norm_module(self, layer: int, mlp_input: bool):
        """The LayerNorm that reads the stream at ``layer`` (n_layer: ln_final; mlp_input: the block's ln_2)."""
        if layer == self.model.config.n_layer:
            return self.model.transformer.ln_f
        block = self.model.transformer.h[layer]
        return block.ln_2 if mlp_input else block.ln_1

    def _layer_norm_at(self, layer: int, mlp_input: bool):
        """That LayerNorm, its cached scale (B, T, 1) and its TL name."""
        if layer == self.model.config.n_layer:
            return self._layer_norm_module(layer, mlp_input), self["scale"], "ln_final"
        kind = "ln2" if mlp_input else "ln1"
        return self._layer_norm_module(layer, mlp_input), self["scale", layer, kind], f"blocks.{layer}.{kind}"

    def apply_ln_to_stack(self, residual_stack: torch.Tensor, layer: int | None = None, mlp_input: bool = False,
                          pos_slice=None, batch_slice=None, has_batch_dim: bool = True, recompute_ln: bool = False,
                          add_bias: bool = False):
        """
        The LayerNorm reading ``layer``'s input (None/-1/n_layer: ln_final; mlp_input: ln2) applied to each entry
        of a stack (n, B, T, C), with the scale frozen at the value the model computed:
        ``(x - mean(x)) / scale * weight``, plus the bias if add_bias (right for whole streams, wrong for parts
        of one: a sum of parts must get the bias once). TL divides by the scale only, on a model whose LayerNorm
        weights it folded into the next matrices (W_U, W_Q, ...); mingpt keeps the weights where they are, so the
        weight is applied here and ``stack @ model.W_U`` is what TL's ``stack @ W_U`` is on its folded model.
        As in TL: pos_slice says how the stack was already sliced along positions (it slices the cached scale);
        batch_slice slices the stack's batch dim (if has_batch_dim) and the scale's.
        recompute_ln (TL's, for the final LayerNorm only): each entry is a whole stream, normalised with its own
        statistics, weight and bias included: the logit lens.
        """
        layer = self._layer(layer, "apply_ln_to_stack")
        n = self.model.config.n_layer
        if has_batch_dim and batch_slice is not None:
            residual_stack = residual_stack[:, batch_slice]
        if recompute_ln and layer == n:
            return _normalise(self._layer_norm_module(layer, mlp_input), residual_stack)
        ln, scale, _ = self._layer_norm_at(layer, mlp_input)
        centres, weight, bias, _ = norm_parts(ln, residual_stack.dtype)
        if not has_batch_dim and not isinstance(batch_slice, int):
            raise ValueError("a stack without a batch dim needs batch_slice=<int>: which row's scale to use")
        if batch_slice is not None:
            scale = scale[batch_slice]
        scale = _slice_pos(scale, pos_slice, dim=0 if isinstance(batch_slice, int) else 1)
        centered = residual_stack - residual_stack.mean(dim=-1, keepdim=True) if centres else residual_stack
        try:
            out = centered / scale if weight is None else centered / scale * weight.detach()
        except RuntimeError as error:
            raise ValueError(f"residual stack of shape {tuple(residual_stack.shape)} does not line up with the "
                             f"cached scale {tuple(scale.shape)}; pass the pos_slice/batch_slice you sliced it "
                             f"with") from error
        if add_bias and bias is not None:
            out = out + bias.detach()
        return out

    def _append_ln_bias(self, stack: torch.Tensor, labels: list[str], layer: int, mlp_input: bool):
        ln, _, name = self._layer_norm_at(layer, mlp_input)
        bias = norm_parts(ln)[2]
        if bias is None:  # an RMSNorm, or a LayerNorm built without one
            return stack, labels
        bias = bias.detach().expand_as(stack[0])
        return torch.cat([stack, bias[None]]), labels + [f"{name}.bias"]

    def logit_attrs(self, residual_stack: torch.Tensor, tokens, incorrect_tokens=None, pos_slice=None,
                    batch_slice=None, has_batch_dim: bool = True) -> torch.Tensor:
        """
        TL's direct logit attribution: each entry of a stack of *raw* residual-stream pieces (decompose_resid,
        stack_head_results, ... without apply_ln) through the final LayerNorm (``apply_ln_to_stack``: the scale
        the model computed, its weight; pos_slice, batch_slice and has_batch_dim as there), then dotted with the
        unembedding direction of ``tokens`` (minus that of ``incorrect_tokens``). tokens: an int, a string (one
        token, for a model that knows its tokenizer: ``model.set_tokenizer``), or ids shaped like the stack's
        (B[, T]) dims. Equals TL's on the same weights loaded with fold_ln=True. Returns (n, B[, T]).
        The LayerNorm's bias is no piece of any entry; mingpt's exact decomposition, whose pieces sum to the
        logits, is ``decompose_resid(apply_ln=True, incl_ln_bias=True)`` through ``unembed_attrs``.
        """
        scaled = self.apply_ln_to_stack(residual_stack, None, pos_slice=pos_slice, batch_slice=batch_slice,
                                        has_batch_dim=has_batch_dim)
        return self.unembed_attrs(scaled, tokens, incorrect_tokens)

    def unembed_attrs(self, residual_stack: torch.Tensor, tokens, incorrect_tokens=None) -> torch.Tensor:
        """
        mingpt's own: each entry of a stack that is already through the LayerNorm (``apply_ln=True``) dotted with
        the unembedding direction of ``tokens`` (minus that of incorrect_tokens), nothing applied first. With
        ``decompose_resid(apply_ln=True, incl_ln_bias=True)`` the entries sum to the logit itself. tokens: as for
        logit_attrs, e.g. (B,) ids for a stack (n, B, C) sliced to one position. Returns (n, B[, T]).
        """
        W_U = self.model.lm_head.weight.detach()  # (V, C): row t is token t's unembedding direction
        directions = self._directions(W_U, tokens, "tokens")
        if incorrect_tokens is not None:
            wrong = self._directions(W_U, incorrect_tokens, "incorrect_tokens")
            if wrong.shape != directions.shape:
                raise ValueError(f"tokens and incorrect_tokens must have the same shape, got "
                                 f"{tuple(directions.shape[:-1])} and {tuple(wrong.shape[:-1])}")
            directions = directions - wrong
        trailing = residual_stack.shape[residual_stack.dim() - directions.dim():]
        if directions.dim() > residual_stack.dim() or any(d not in (1, s) for d, s in zip(directions.shape, trailing)):
            raise ValueError(f"tokens of shape {tuple(directions.shape[:-1])} do not match the residual stack "
                             f"{tuple(residual_stack.shape)}: give one id per row of the stack's (B[, T]) dims, "
                             f"e.g. slice the stack to one position with pos_slice=-1 and pass (B,) ids")
        return (residual_stack * directions).sum(-1)

    def _directions(self, W_U: torch.Tensor, tokens, what: str) -> torch.Tensor:
        if isinstance(tokens, str):  # TL's: one token's text
            tokens = self.model.to_single_token(tokens)
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            tokens = torch.tensor(tokens)
        if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point:
            raise TypeError(f"{what} must be an int or an integer tensor of token ids, got {tokens!r}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= W_U.size(0)):
            raise ValueError(f"{what} holds ids outside [0, {W_U.size(0)})")
        return W_U[tokens]


def _normalise(ln, stack: torch.Tensor) -> torch.Tensor:
    """A LayerNorm or RMSNorm applied to every entry of a stack with that entry's own statistics (its parameters
    held fixed: no gradient to them): the logit lens's normalisation."""
    centres, weight, bias, eps = norm_parts(ln, stack.dtype)
    weight = None if weight is None else weight.detach()
    if not centres:
        return torch.nn.functional.rms_norm(stack, ln.normalized_shape, weight, eps)
    return torch.nn.functional.layer_norm(stack, ln.normalized_shape, weight, None if bias is None else bias.detach(),
                                          eps)
