"""
Seeing attention: an interactive HTML view that needs nothing from the network, and a static figure for papers.

The one idea: an attention pattern is a T x T table per head. Row i is the *destination* (the query position
doing the looking), column j the *source* (the key position looked at), and entry (i, j) is how much of position
i's attention goes to j; each row sums to 1, and a causal model leaves everything right of the diagonal at 0.
Both views draw that table for every head of a layer, with the tokens along both axes.

    >>> trace = run_with_probe(model, idx)                      # or: logits, cache = model.run_with_cache(idx)
    >>> view = attention_view(trace.attentions, tokens)          # n_layer tensors of (1, nh, T, T)
    >>> view                                                     # in Jupyter: shown inline (view._repr_html_)
    >>> view.save("attention.html")                              # one file: open it in any browser, offline
    >>> attention_figure(trace.attentions, tokens, layer=1, path="attention.png")   # for a paper or a slide

The HTML view is one self-contained document fragment: the data (weights rounded to 4 decimals) sits in a JSON
script tag and a small script draws one canvas per head, with a layer and a head selector; hovering a cell shows
its destination token, source token and weight. The grids are sized to the page's width (as many heads side by
side as keep cells readable, one head across the whole width), token labels show BPE's leading spaces as '·', and
below the grids the text itself is coloured by the attention a chosen head pays from a chosen token (click one),
as circuitsvis' colored_tokens. No CDN, no external file, no request of any kind, so it works in an offline
classroom and in a saved notebook. The figure uses matplotlib, imported only when asked for.
"""

from __future__ import annotations

import html
import json
import logging
import os
from typing import Sequence

import numpy as np
import torch

from mingpt.atomic import atomic_path
from mingpt.interp.attention_page import CSS, JS
from mingpt.utils import check_int

__all__ = ["AttentionView", "attention_view", "attention_figure"]

logger = logging.getLogger(__name__)
# About 5 bytes a weight in the page: above this many weights the page passes ~25 MB and browsers struggle.
LARGE_VIEW = 5_000_000


def _as_patterns(patterns) -> np.ndarray:
    """Normalise what users have at hand into one float array of shape (n_layer, n_head, T, T)."""
    if isinstance(patterns, (list, tuple)):  # one entry per layer: probe's trace.attentions, or cache patterns
        if not patterns:
            raise ValueError("patterns is an empty list; pass one (n_head, T, T) pattern per layer")
        layers = [_as_array(p, f"patterns[{i}]") for i, p in enumerate(patterns)]
        for i, layer in enumerate(layers):
            if layer.ndim == 4 and layer.shape[0] == 1:  # (1, nh, T, T): a batch of one sequence
                layers[i] = layer = layer[0]
            if layer.ndim != 3:
                raise ValueError(f"patterns[{i}] has shape {layer.shape}; expected (n_head, T, T) or "
                                 f"(1, n_head, T, T). For a batch, pick one sequence: [p[b] for p in patterns]")
        shapes = {layer.shape for layer in layers}
        if len(shapes) != 1:
            raise ValueError(f"every layer's pattern must have the same shape, got {sorted(shapes)}")
        array = np.stack(layers)
    else:
        array = _as_array(patterns, "patterns")
        if array.ndim == 3:  # (nh, T, T): a single layer
            array = array[None]
        if array.ndim != 4:
            raise ValueError(f"patterns has shape {array.shape}; expected (n_layer, n_head, T, T), (n_head, T, T) "
                             f"or a list of per-layer (n_head, T, T). For a batch, pick one sequence first")
    if array.shape[-1] != array.shape[-2]:
        raise ValueError(f"attention patterns are square (T destinations x T sources), got {array.shape[-2:]}")
    if not np.isfinite(array).all():
        raise ValueError("patterns contain NaN or inf; pass attention probabilities (softmax outputs)")
    low, high = float(array.min()), float(array.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"attention weights must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; pass "
                         f"probabilities (hook_pattern / trace.attentions), not scores")
    return array


def _as_array(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32).numpy()
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _as_tokens(tokens, T: int) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"tokens must be a list of T={T} token strings (e.g. [tokenizer.decode([i]) for i in ids]),"
                        f" got {type(tokens).__name__}")
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for patterns over T={T} positions; pass one string per position")
    return [str(t) for t in tokens]


def _labels(names, count: int, what: str, default: str) -> list[str]:
    if names is None:
        return [f"{default} {i}" for i in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"{what} has {len(names)} entries but the patterns have {count}; give one per {default}")
    return names


class AttentionView:
    """
    A self-contained HTML view of attention patterns. Jupyter shows it inline (it has `_repr_html_`);
    `.html` is the fragment, `.document()` a complete page, `.save(path)` writes that page atomically.
    """

    def __init__(self, patterns: np.ndarray, tokens: list[str], layer_names: list[str], title: str):
        self.patterns, self.tokens, self.layer_names, self.title = patterns, tokens, layer_names, title
        if patterns.size > LARGE_VIEW:
            logger.warning("attention view of %s weights %s: the page will be large and slow; show fewer layers "
                           "(patterns[i:j]) or a shorter sequence", f"{patterns.size:,}", tuple(patterns.shape))
        payload = {
            "tokens": tokens,
            "layers": layer_names,
            # (n_layer, n_head, T, T) rounded to 4 decimals: the hover shows 4, and the file stays small
            "patterns": np.round(patterns, 4).tolist(),
        }
        # json is valid inside <script> only if it cannot close the tag: escape <, > and & (tokens may hold them)
        data = json.dumps(payload, separators=(",", ":"))
        self._data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        self.html = self._fragment()

    def _fragment(self) -> str:
        n_layer, n_head = self.patterns.shape[:2]
        layer_options = "".join(f'<option value="{i}">{html.escape(name)}</option>'
                                for i, name in enumerate(self.layer_names))
        each_head = "".join(f'<option value="{h}">head {h}</option>' for h in range(n_head))
        head_options = '<option value="all">all heads</option>' + each_head
        return (
            '<div class="mingpt-attn">\n'
            f"<style>{CSS}</style>\n"
            f'<div class="mgv-title">{html.escape(self.title)}</div>\n'
            f'<div class="mgv-controls"><label>layer <select class="mgv-layer">{layer_options}</select></label> '
            f'<label>head <select class="mgv-head">{head_options}</select></label> '
            f'<span class="mgv-legend">rows: destination (query) &middot; columns: source (key) &middot; '
            f'colour: weight 0 <span class="mgv-bar"></span> 1</span></div>\n'
            f'<div class="mgv-panels"><em>This attention view needs JavaScript (in Jupyter: trust the '
            f"notebook).</em></div>\n"
            f'<div class="mgv-info">hover over a cell to read its weight</div>\n'
            f'<div class="mgv-text-controls">as text: the attention that <label><select class="mgv-text-head">'
            f'{each_head}</select></label> pays from the outlined token (click a token '
            f'to choose it) to each earlier one</div>\n'
            f'<div class="mgv-text"></div>\n'
            f'<div class="mgv-tip"></div>\n'
            f'<script type="application/json" class="mgv-data">{self._data}</script>\n'
            f"</div>\n<script>{JS}</script>\n"
        )

    def _repr_html_(self) -> str:
        return self.html

    def document(self) -> str:
        """The view as a complete HTML page."""
        title = html.escape(self.title or "attention")
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
                f"<body>\n{self.html}</body>\n</html>\n")

    def save(self, path: str | os.PathLike) -> str:
        """Write the page to `path` atomically (a temp file moved into place); return the path."""
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.document())
        return os.fspath(path)


def attention_view(patterns, tokens: Sequence[str], layer_names: Sequence[str] | None = None,
                   title: str = "") -> AttentionView:
    """
    An interactive view of attention patterns: one panel per head, a layer and a head selector, hover for values.

    patterns: (n_layer, n_head, T, T), (n_head, T, T) for one layer, or a list of per-layer (n_head, T, T) or
      (1, n_head, T, T) tensors (probe's `trace.attentions`, `[cache["pattern", l][0] for l in ...]`).
      Row i is the destination position, column j the source; values are probabilities in [0, 1].
    tokens: the T token strings, in order. layer_names: labels for the layer selector (default "layer 0", ...);
      useful when showing a subset, e.g. layer_names=["layer 5"].
    """
    array = _as_patterns(patterns)
    return AttentionView(array, _as_tokens(tokens, array.shape[-1]),
                         _labels(layer_names, array.shape[0], "layer_names", "layer"), str(title))


def attention_figure(patterns, tokens: Sequence[str], layer: int = 0, heads: Sequence[int] | None = None,
                     ncols: int = 4, title: str | None = None, path: str | os.PathLike | None = None):
    """
    A static matplotlib figure of one layer's heads (all, or those in `heads`), tokens on both axes and a shared
    colour bar; for a paper or a slide. `patterns` as for attention_view. Saved atomically to `path` if given.
    Returns the Figure.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("attention_figure needs matplotlib: pip install matplotlib") from error
    array = _as_patterns(patterns)
    n_layer, n_head, T, _ = array.shape
    words = _as_tokens(tokens, T)
    if not isinstance(layer, int) or not -n_layer <= layer < n_layer:
        raise ValueError(f"layer must be an int in [0, {n_layer}), got {layer!r}")
    heads = list(range(n_head)) if heads is None else list(heads)
    bad = [h for h in heads if not isinstance(h, int) or not 0 <= h < n_head]
    if not heads or bad:
        raise ValueError(f"heads must be a non-empty list of ints in [0, {n_head}), got {heads!r}")
    check_int(ncols, "ncols", low=1)
    ncols = min(ncols, len(heads))
    nrows = -(-len(heads) // ncols)
    side = max(2.5, min(6.0, 0.16 * T + 1.0))  # inches per panel: room for T tick labels, within reason
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 0.8, side * nrows + 0.4), squeeze=False,
                             layout="constrained")
    labels = [w.replace("\n", "\\n") for w in words]
    step = max(1, -(-T // 40))  # at most ~40 tick labels per axis, or they overlap into a black smear
    for ax in axes.flat[len(heads):]:
        ax.axis("off")
    for ax, h in zip(axes.flat, heads):
        image = ax.imshow(array[layer, h], cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"layer {layer % n_layer} head {h}", fontsize=10)
        ticks = list(range(0, T, step))
        ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=7)
        ax.set_xlabel("source (key)", fontsize=8)
        ax.set_ylabel("destination (query)", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight")
    if title:
        fig.suptitle(title)
    if path is not None:
        with atomic_path(path, suffix=os.path.splitext(os.fspath(path))[1] or ".png") as tmp:
            fig.savefig(tmp, dpi=150)
    return fig
