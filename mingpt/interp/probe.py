"""
Looking inside a GPT: attention patterns, the residual stream, what each sublayer adds, and the logit lens.

The one idea: a GPT is a single running vector per position, the *residual stream*, that every sublayer reads
(through a LayerNorm) and adds to. After the embeddings it is ``x_0 = wte[idx] + wpe[pos]``; block i adds its
attention output and then its MLP output:

    x_{i+1} = x_i + attn_i(ln_1(x_i)) + mlp_i(ln_2(x_i + attn_i(...)))

so everything the model "knows" about a position at depth i is in x_i. The *logit lens* (nostalgebraist, 2020)
reads that knowledge out early: apply the final LayerNorm and lm_head to x_i, as if the network stopped there,
and watch the prediction take shape layer by layer. The last lens is exactly the model's own logits.

    >>> from mingpt.interp.probe import run_with_probe, model_summary, top_k_next_tokens, format_top_k
    >>> trace = run_with_probe(model, idx)     # trace.attentions[layer]: (B, nh, T, T), rows sum to 1
    >>> print(model_summary(model))            # parameters per module
    >>> print(format_top_k(top_k_next_tokens(model, "The capital of France is", tokenizer=tokenizer)))

Nothing here costs anything when unused: a Probe is a named view of the hook points (mingpt.interp.hooks), active only
inside its ``with`` block and removed on exit, even when the forward pass raises. Captured tensors are detached
copies for looking at, not for backpropagation.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from mingpt.interp.activation_cache import ActivationCache
from mingpt.interp.hook_points import get_act_name
from mingpt.interp.hooks import hooks
from mingpt.utils import check_int, eval_mode

__all__ = ["Trace", "Probe", "run_with_probe", "logit_lens", "model_summary", "TokenProbability",
           "top_k_next_tokens", "format_top_k"]


@dataclass
class Trace:
    """What one forward pass computed. Lists are indexed by layer; B batch, T time, C channels, V vocab."""

    logits: torch.Tensor  # (B, T, V), the model's output
    attentions: list[torch.Tensor]  # n_layer of (B, nh, T, T): row t = how position t spreads its attention
    residuals: list[torch.Tensor]  # n_layer + 1 of (B, T, C): after the embeddings, then after each block
    attn_outputs: list[torch.Tensor]  # n_layer of (B, T, C): what each attention sublayer added to the stream
    mlp_outputs: list[torch.Tensor]  # n_layer of (B, T, C): what each MLP sublayer added
    logit_lens: list[torch.Tensor] = field(default_factory=list)  # n_layer + 1 of (B, T, V); [] if not asked for


class Probe:
    """
    Records the inside of a GPT's forward passes while active (a context manager). For each layer it keeps the
    most recent pass's attention probabilities, block output (residual) and sublayer outputs.

        with Probe(model) as probe:
            logits, _ = model(idx)
        probe.attentions[0]  # (B, nh, T, T)

    A Probe is a named view of the model's hook points (mingpt.interp.hooks): while active it records hook_pattern,
    hook_attn_out, hook_mlp_out and the residual stream into a cache that each pass overwrites. Attention then runs
    the explicit "math" path (the fused kernel cannot return its probabilities); the results agree with the fused
    path to float rounding. Probes nest, with each other and with ``model.hooks(...)``.
    """

    def __init__(self, model):
        if not (isinstance(model, torch.nn.Module) and hasattr(model, "hooks") and hasattr(model, "config")):
            raise TypeError(f"Probe expects a mingpt GPT (a model with hook points), got {type(model).__name__}")
        self.model = model
        self._cache: dict[str, torch.Tensor] = {}  # hook name -> the latest pass's (detached) value
        self._undo = contextlib.ExitStack()  # while active: the hooks context that __exit__ closes

    def _latest(self, names: list[str]) -> list[torch.Tensor | None]:
        return [self._cache.get(name) for name in names]

    @property
    def attentions(self) -> list[torch.Tensor | None]:  # n_layer of (B, nh, T_q, T_kv)
        return self._latest([get_act_name("pattern", i) for i in range(self.model.config.n_layer)])

    @property
    def residuals(self) -> list[torch.Tensor | None]:  # after the embeddings, then after each block
        n = self.model.config.n_layer  # block i's input is block i-1's output: the names accumulated_resid reads
        return self._latest([get_act_name("resid_pre", i) for i in range(n)] + [get_act_name("resid_post", n - 1)])

    @property
    def attn_outputs(self) -> list[torch.Tensor | None]:  # what each attention sublayer added to the stream
        return self._latest([get_act_name("attn_out", i) for i in range(self.model.config.n_layer)])

    @property
    def mlp_outputs(self) -> list[torch.Tensor | None]:  # what each MLP sublayer added
        return self._latest([get_act_name("mlp_out", i) for i in range(self.model.config.n_layer)])

    def __enter__(self) -> "Probe":
        n = self.model.config.n_layer
        names = [get_act_name(kind, i) for i in range(n) for kind in ("resid_pre", "pattern", "attn_out", "mlp_out")]
        names.append(get_act_name("resid_post", n - 1))
        names = [name for name in names if name in self.model.hook_dict]  # attn_only: no mlp_out (None in a trace)
        self._cache = {}  # entered (again), a probe shows only the passes of this with-block
        self._undo = contextlib.ExitStack()
        self._undo.enter_context(hooks(self.model, names_filter=names, cache=self._cache))
        return self

    def __exit__(self, *exc_info) -> bool:
        self._undo.close()  # hooks removed: zero cost once the probe is gone, also when the with-block raised
        return False  # never swallow the exception of the with-block

    def trace(self, logits: torch.Tensor, with_logit_lens: bool = True) -> Trace:
        """Package the latest pass's captures (and optionally its logit lens) with that pass's logits."""
        if any(r is None for r in self.residuals):
            raise RuntimeError("the probe has not seen a forward pass; run model(idx) inside `with probe:` first")
        lens = list(logit_lens(ActivationCache(self._cache, self.model))) if with_logit_lens else []
        return Trace(logits.detach(), list(self.attentions), list(self.residuals), list(self.attn_outputs),
                     list(self.mlp_outputs), lens)


@torch.no_grad()
def logit_lens(cache: ActivationCache) -> torch.Tensor:
    """
    The residual stream after the embeddings and after each block, read out as next-token logits:
    (n_layer + 1, B, T, V). It is lm_head of ``cache.accumulated_resid(apply_ln=True)``, which owns the idea: the
    final LayerNorm applied to each depth's stream with that stream's own statistics.
    """
    return cache.model.lm_head(cache.accumulated_resid(apply_ln=True))


@torch.no_grad()
def run_with_probe(model, idx: torch.Tensor, with_logit_lens: bool = True) -> Trace:
    """
    One forward pass of idx (B, T) in eval mode (no dropout), returning everything the Probe saw as a Trace.
    The logit lens holds n_layer + 1 tensors of (B, T, V): pass with_logit_lens=False to save that memory.
    """
    with eval_mode(model), Probe(model) as probe:
        logits, _ = model(idx)
    return probe.trace(logits, with_logit_lens)


# ------------------------------------------------------------------------------------------------ summaries


def model_summary(model) -> str:
    """
    A table of parameters per module. Block 0 is shown in detail and the other blocks (identical in shape) as one
    row; a weight shared between modules (wte and a tied lm_head) is counted once.
    """
    total = sum(p.numel() for p in model.parameters())  # parameters() lists a shared tensor once
    rows, owner, rest_of_blocks, n_rest = [], {}, 0, 0
    for name, module in model.named_modules():
        params = list(module.named_parameters(recurse=False))
        if not params:
            continue
        shapes = ", ".join(str(tuple(p.shape)) for _, p in params)
        shared = [f"{owner[id(p)]}" for _, p in params if id(p) in owner]
        new = sum(p.numel() for _, p in params if id(p) not in owner)
        for param_name, p in params:
            owner.setdefault(id(p), f"{name}.{param_name}")
        later_block = re.match(r"transformer\.h\.(\d+)\.", name + ".")
        if later_block and int(later_block.group(1)) > 0:
            rest_of_blocks += new
            n_rest = max(n_rest, int(later_block.group(1)))
            continue
        note = f"shared with {', '.join(shared)}" if shared else f"{100 * new / total:.1f}%"
        rows.append((name, type(module).__name__, shapes, f"{new:,}", note))
    if n_rest:  # the other blocks go right after block 0
        after_h0 = max(i for i, row in enumerate(rows) if row[0].startswith("transformer.h.0.")) + 1
        rows.insert(after_h0, (f"transformer.h.1 .. h.{n_rest}", f"{n_rest} x Block", "as h.0",
                               f"{rest_of_blocks:,}", f"{100 * rest_of_blocks / total:.1f}%"))
    header = ("module", "type", "shape", "parameters", "share")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) if i != 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             .rstrip() for r in [header] + rows]
    dtype = next(model.parameters()).dtype
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    c = model.config
    rule = "-" * sum(widths + [2 * 4])
    lines.insert(1, rule)
    lines.append(rule)
    lines.append(f"total {total:,} parameters ({total / 1e6:.2f}M), {size_mb:.1f} MB in {dtype}; "
                 f"n_layer={c.n_layer} n_head={c.n_head} n_embd={c.n_embd} vocab_size={c.vocab_size} "
                 f"block_size={c.block_size}")
    return "\n".join(lines)


class TokenProbability(NamedTuple):
    token_id: int
    probability: float
    text: str | None  # the token decoded, when a tokenizer was given


@torch.no_grad()
def top_k_next_tokens(model, prompt, k: int = 10, tokenizer=None) -> list[TokenProbability]:
    """
    The k most likely next tokens after one prompt, most likely first.

    prompt: a string (needs tokenizer), a list of ids, a 1-D tensor or a (1, T) tensor. Only its last
    block_size tokens are seen, as in generation.
    """
    check_int(k, "k", low=1, high=model.config.vocab_size, hint=" (at most the model's vocab_size)")
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("a text prompt needs tokenizer=...; or pass token ids")
        prompt = tokenizer.encode(prompt)
    idx = prompt if isinstance(prompt, torch.Tensor) else torch.tensor(list(prompt), dtype=torch.long)
    if idx.dim() == 1:
        idx = idx[None]
    if idx.dim() != 2 or idx.size(0) != 1:
        raise ValueError(f"top_k_next_tokens takes one prompt: shape (T,) or (1, T), got {tuple(idx.shape)}")
    device = next(model.parameters()).device
    with eval_mode(model):
        logits, _ = model(idx[:, -model.config.block_size:].to(device))
    probs = F.softmax(logits[0, -1].float(), dim=-1)  # (V,)
    top = torch.topk(probs, k)
    return [
        TokenProbability(int(i), float(p), tokenizer.decode([int(i)]) if tokenizer is not None else None)
        for p, i in zip(top.values, top.indices)
    ]


def format_top_k(rows: Sequence[TokenProbability]) -> str:
    """A readable table of top_k_next_tokens' result: rank, id, probability, and the token's text (repr'd)."""
    lines = [f"{'rank':>4}  {'id':>6}  {'prob':>7}  text"]
    for rank, row in enumerate(rows, start=1):
        text = repr(row.text) if row.text is not None else ""
        lines.append(f"{rank:>4}  {row.token_id:>6}  {row.probability:>7.2%}  {text}")
    return "\n".join(lines)
