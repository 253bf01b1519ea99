"""
The residual stream split finer than into sublayers: each MLP neuron's output, and TL's full decomposition into
every head, every neuron, the embeddings and the biases (a mixin of ActivationCache).

The one idea: an MLP's output is a sum over its 4C neurons plus a bias, ``mlp_out = sum_n post[n] * W_out[n] +
b_out``, just as an attention output is a sum over heads plus ``b_O``. So the stream entering a layer is

    embed + pos_embed + sum over earlier heads (z_h @ W_O[h]) + sum over earlier neurons (post_n * W_out[n]) + biases

and each term can be read out on its own (through ``logit_attrs``, say). Neuron results are computed on request
from ``mlp.hook_post`` and W_out, never cached: they are 4C times the size of the stream (TL's reasoning too).
Names, signatures and label formats ('L0N5', 'bias') are TL's; tests/test_tl_parity.py holds them against it.
"""

from __future__ import annotations

import torch

from mingpt.interp.hook_points import get_act_name, hook_names

__all__ = ["NeuronResults", "slice_pos"]


def slice_pos(tensor: torch.Tensor, pos_slice, dim: int) -> torch.Tensor:
    """pos_slice: None (all), an int (drops the dim), a slice, or a list/tensor of positions."""
    if pos_slice is None:
        return tensor
    index = [slice(None)] * tensor.dim()
    index[dim] = pos_slice if isinstance(pos_slice, (int, slice)) else torch.as_tensor(pos_slice)
    return tensor[tuple(index)]


class NeuronResults:
    """Each neuron's output, stacks of one activation over layers, and the full residual decomposition."""

    def _has_mlps(self) -> bool:
        return get_act_name("post", 0) in hook_names(self.model)

    def get_neuron_results(self, layer: int, neuron_slice=None, pos_slice=None) -> torch.Tensor:
        """What each neuron of block ``layer``'s MLP writes into the stream: post[n] * W_out[n], (B, T, 4C, C)."""
        acts = slice_pos(self["post", layer], pos_slice, dim=-2)  # (B, T, 4C): the GELU's outputs
        W_out = self.model.W_out[layer].detach()  # (4C, C)
        if neuron_slice is not None:  # an int drops the neuron axis, as TL's
            acts, W_out = slice_pos(acts, neuron_slice, dim=-1), slice_pos(W_out, neuron_slice, dim=0)
        return acts[..., None] * W_out

    def stack_neuron_results(self, layer: int | None = None, pos_slice=None, neuron_slice=None,
                             return_labels: bool = False, incl_remainder: bool = False, apply_ln: bool = False):
        """
        Every neuron's output ('L{i}N{n}') for the blocks before ``layer`` (all by default): (n_neurons, B, T, C).
        incl_remainder adds the rest of the stream ('remainder'); apply_ln: through ``layer``'s LayerNorm.
        """
        layer = self._layer(layer, "stack_neuron_results")
        if isinstance(neuron_slice, int):  # one neuron, still one entry per layer
            neuron_slice = slice(neuron_slice, neuron_slice + 1)
        neurons = torch.arange(4 * self.model.config.n_embd)
        neurons = slice_pos(neurons, neuron_slice, dim=0).reshape(-1).tolist()
        components, labels = [], []
        for i in range(layer):
            result = self.get_neuron_results(i, neuron_slice=neuron_slice, pos_slice=pos_slice)
            components.append(result.movedim(-2, 0))  # (n, B, T, C)
            labels += [f"L{i}N{n}" for n in neurons]
        total = lambda: slice_pos(self["resid_post", layer - 1], pos_slice, dim=-2)  # noqa: E731
        if components:
            stack = torch.cat(components)
        else:
            stack = slice_pos(self["embed"], pos_slice, dim=-2)[:0]  # (0, ...): nothing before layer 0
        if incl_remainder:
            remainder = total() - stack.sum(0) if components else total()
            stack = torch.cat([stack, remainder[None]])
            labels.append("remainder")
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack

    def stack_activation(self, activation_name: str, layer: int = -1, sublayer_type: str | None = None):
        """One activation of every block before ``layer`` (all by default), stacked: (layers, ...)."""
        layer = self._layer(layer, "stack_activation")
        return torch.stack([self[(activation_name, i, sublayer_type)] for i in range(layer)])

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True):
        """The sum of the biases written into the stream before ``layer`` (TL's model.accumulated_bias): (C,)."""
        model = self.model
        bias = torch.zeros(model.config.n_embd, device=model.lm_head.weight.device)
        for i in range(layer):
            bias = bias + model.b_O[i].detach() + (model.b_out[i].detach() if include_mlp_biases else 0)
        if mlp_input:
            bias = bias + model.b_O[layer].detach()
        return bias

    def get_full_resid_decomposition(self, layer: int | None = None, mlp_input: bool = False,
                                     expand_neurons: bool = True, apply_ln: bool = False, pos_slice=None,
                                     return_labels: bool = False):
        """
        The stream entering ``layer`` (the final one by default; with mlp_input, its MLP) as TL splits it: every
        head ('L{i}H{h}'), every neuron ('L{i}N{n}', or each MLP's whole output with expand_neurons=False),
        'embed', 'pos_embed' and 'bias' (all biases summed): they add up to that stream.
        """
        layer = self._layer(layer, "get_full_resid_decomposition")
        if mlp_input and layer == self.model.config.n_layer:
            raise ValueError("mlp_input=True needs a layer below n_layer: the final stream feeds no MLP")
        heads, labels = self.stack_head_results(layer + int(mlp_input), pos_slice=pos_slice, return_labels=True)
        components = [heads]
        if self._has_mlps() and layer > 0:
            if expand_neurons:
                part, part_labels = self.stack_neuron_results(layer, pos_slice=pos_slice, return_labels=True)
            else:
                part, part_labels = self.decompose_resid(layer, mlp_input=mlp_input, mode="mlp", incl_embeds=False,
                                                         pos_slice=pos_slice, return_labels=True)
            components.append(part)
            labels += part_labels
        components += [slice_pos(self["embed"], pos_slice, dim=-2)[None],
                       slice_pos(self["pos_embed"], pos_slice, dim=-2)[None]]
        bias = self.accumulated_bias(layer, mlp_input, include_mlp_biases=expand_neurons)
        components.append(bias.expand(heads.shape[1:])[None])
        labels += ["embed", "pos_embed", "bias"]
        stack = torch.cat(components)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack
