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
            f"<style>{_CSS}</style>\n"
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
            f"</div>\n<script>{_JS}</script>\n"
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


# ------------------------------------------------------------------------------------------- the page's code

_CSS = """
.mingpt-attn{position:relative;font:13px/1.4 sans-serif;color:#222;background:#fff;padding:6px}
.mingpt-attn .mgv-title{font-weight:bold;margin-bottom:4px}
.mingpt-attn .mgv-controls{margin-bottom:6px}
.mingpt-attn .mgv-bar{display:inline-block;width:80px;height:10px;vertical-align:middle;
  background:linear-gradient(to right,rgb(255,255,255),rgb(8,48,107));border:1px solid #999}
.mingpt-attn .mgv-panels{display:flex;flex-wrap:wrap;gap:10px}
.mingpt-attn .mgv-panel{border:1px solid #ddd;padding:4px}
.mingpt-attn .mgv-panel canvas{display:block;cursor:crosshair}
.mingpt-attn .mgv-caption{text-align:center;font-weight:bold}
.mingpt-attn .mgv-info{margin-top:6px;font-family:monospace}
.mingpt-attn .mgv-text-controls{margin-top:10px}
.mingpt-attn .mgv-text{margin-top:4px;line-height:1.9;font-family:monospace}
.mingpt-attn .mgv-tok{display:inline-block;white-space:pre;border:1px solid #e4e4e4;margin:0 1px 2px 0;
  cursor:pointer;color:#222}
.mingpt-attn .mgv-tok.mgv-later{color:#aaa}
.mingpt-attn .mgv-tok.mgv-dest{outline:2px solid #e6550d}
.mingpt-attn .mgv-tip{position:absolute;display:none;pointer-events:none;background:#333;color:#fff;
  padding:3px 6px;border-radius:3px;font-family:monospace;white-space:pre;z-index:10}
"""

# Every view on a page runs this script; it sets up each container not set up yet (data-ready marks the done
# ones), so a notebook showing several views, or the same view twice, works without global ids.
_JS = r"""
(function () {
  function colour(w) {  // white -> dark blue, as matplotlib's "Blues" ends
    w = Math.max(0, Math.min(1, w));
    return "rgb(" + Math.round(255 - 247 * w) + "," + Math.round(255 - 207 * w) + "," +
           Math.round(255 - 148 * w) + ")";
  }
  function visible(s) {  // BPE tokens carry their leading space: show spaces as a middle dot, controls escaped
    return s.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/ /g, "\u00b7"); }
  function short(s) {  // an axis label: visible spaces, long tokens cut
    s = visible(s); return s.length > 12 ? s.slice(0, 11) + "\u2026" : s; }
  // Sizes follow the page: the all-heads overview puts as many panels side by side as keep cells >= MIN_CELL
  // pixels (one panel a row if needed), and a single head takes the full width; cells are at most MAX_CELL.
  var MIN_CELL = 6, MAX_CELL = 28, PAD = 12;
  function setup(root) {
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector(".mgv-data").textContent);
    var tokens = data.tokens, T = tokens.length, nHead = data.patterns[0].length;
    var layerSelect = root.querySelector(".mgv-layer"), headSelect = root.querySelector(".mgv-head");
    var panels = root.querySelector(".mgv-panels"), info = root.querySelector(".mgv-info");
    var tip = root.querySelector(".mgv-tip"), text = root.querySelector(".mgv-text");
    var textHead = root.querySelector(".mgv-text-head");
    panels.innerHTML = "";
    var canvases = [], measure = document.createElement("canvas").getContext("2d");
    for (var h = 0; h < nHead; h++) {
      var panel = document.createElement("div");
      panel.className = "mgv-panel";
      panel.setAttribute("data-head", h);
      var caption = document.createElement("div");
      caption.className = "mgv-caption";
      caption.textContent = "head " + h;
      var canvas = document.createElement("canvas");
      canvas.setAttribute("data-head", h);
      panel.appendChild(caption);
      panel.appendChild(canvas);
      panels.appendChild(panel);
      canvases.push(canvas);
      canvas.addEventListener("mousemove", hover);
      canvas.addEventListener("mouseleave", function (event) {
        tip.style.display = "none"; drawHead(+event.currentTarget.getAttribute("data-head"), null);
      });
      canvas.addEventListener("click", function (event) {  // a cell's row is a destination: show it as text
        var c = cellAt(event);
        if (c) { textHead.value = c.h; dest = c.i; drawText(); }
      });
    }
    var dest = T - 1, layout = null;
    function labelWidth(font) {
      measure.font = font + "px monospace";
      var width = 4;
      for (var t = 0; t < T; t++) width = Math.max(width, measure.measureText(short(tokens[t])).width + 6);
      return width;
    }
    function sizes() {  // the cell size (CSS px) and font for the current selection and page width
      var one = headSelect.value !== "all", width = Math.max(200, (panels.clientWidth || 960) - 4);
      var font = 11, margin = labelWidth(font), cell;
      if (one) {
        cell = Math.floor((width - margin - PAD) / T);
      } else {
        var columns = Math.max(1, Math.min(nHead, Math.floor(width / (margin + PAD + 10 + T * MIN_CELL))));
        cell = Math.floor((width / columns - margin - PAD - 10) / T);
      }
      cell = Math.max(4, Math.min(MAX_CELL, cell));
      font = Math.max(7, Math.min(11, cell - 1));  // a label per row where rows are tall enough, else every k-th
      return {one: one, cell: cell, font: font, margin: labelWidth(font), every: Math.ceil(font / cell)};
    }
    function draw() { layout = sizes(); for (var h = 0; h < nHead; h++) drawHead(h, null); drawText(); }
    function drawHead(h, highlight) {  // highlight: {i, j}, the hovered cell, or null
      var layer = +layerSelect.value, cell = layout.cell, font = layout.font, margin = layout.margin;
      var canvas = canvases[h], panel = canvas.parentNode;
      panel.style.display = (!layout.one || +headSelect.value === h) ? "" : "none";
      var ctx = canvas.getContext("2d");
      var size = margin + T * cell + 2, ratio = window.devicePixelRatio || 1;
      canvas.width = size * ratio; canvas.height = size * ratio;
      canvas.style.width = size + "px"; canvas.style.height = size + "px";
      // where the grid starts, how big a cell is and which tokens are labelled, in CSS pixels: for the hover
      // and for tests
      canvas.setAttribute("data-left", margin); canvas.setAttribute("data-top", margin);
      canvas.setAttribute("data-cell", cell); canvas.setAttribute("data-label-every", layout.every);
      canvas.setAttribute("aria-label", data.layers[layer] + ", head " + h + ", tokens: " + tokens.map(short).join(" "));
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
      var grid = data.patterns[layer][h];
      for (var i = 0; i < T; i++) for (var j = 0; j < T; j++) {
        ctx.fillStyle = colour(grid[i][j]);
        ctx.fillRect(margin + j * cell, margin + i * cell, cell, cell);
      }
      ctx.strokeStyle = "#bbb"; ctx.strokeRect(margin - 0.5, margin - 0.5, T * cell + 1, T * cell + 1);
      ctx.font = font + "px monospace"; ctx.fillStyle = "#222"; ctx.textBaseline = "middle";
      for (var t = 0; t < T; t += layout.every) {
        ctx.textAlign = "right";  // destinations down the left side
        ctx.fillText(short(tokens[t]), margin - 3, margin + (t + 0.5) * cell);
        ctx.save();  // sources along the top, written upwards
        ctx.translate(margin + (t + 0.5) * cell, margin - 3);
        ctx.rotate(-Math.PI / 2); ctx.textAlign = "left";
        ctx.fillText(short(tokens[t]), 0, 0);
        ctx.restore();
      }
      if (highlight) {
        ctx.strokeStyle = "#e6550d"; ctx.lineWidth = 2;
        ctx.strokeRect(margin + highlight.j * cell, margin + highlight.i * cell, cell, cell);
        ctx.lineWidth = 1;
      }
    }
    function cellAt(event) {
      var canvas = event.currentTarget, h = +canvas.getAttribute("data-head");
      var margin = +canvas.getAttribute("data-left"), cell = +canvas.getAttribute("data-cell");
      var box = canvas.getBoundingClientRect();
      var j = Math.floor((event.clientX - box.left - margin) / cell);
      var i = Math.floor((event.clientY - box.top - margin) / cell);
      return (i < 0 || j < 0 || i >= T || j >= T) ? null : {h: h, i: i, j: j};
    }
    function hover(event) {
      var c = cellAt(event);
      if (!c) { tip.style.display = "none"; return; }
      var layer = +layerSelect.value, w = data.patterns[layer][c.h][c.i][c.j];
      var lines = data.layers[layer] + ", head " + c.h + "\n" +
                  "destination: " + JSON.stringify(tokens[c.i]) + " (position " + c.i + ")\n" +
                  "source:      " + JSON.stringify(tokens[c.j]) + " (position " + c.j + ")\n" +
                  "weight:      " + w.toFixed(4);
      info.textContent = lines.replace(/ +/g, " ").replace(/\n/g, " \u00b7 ");
      tip.textContent = lines;
      var rootBox = root.getBoundingClientRect();
      tip.style.left = (event.clientX - rootBox.left + 14) + "px";
      tip.style.top = (event.clientY - rootBox.top + 14) + "px";
      tip.style.display = "block";
      drawHead(c.h, {i: c.i, j: c.j});
    }
    // The token view (circuitsvis' colored_tokens): the text itself, each token's background the attention the
    // chosen head pays to it from the destination token (outlined); tokens after the destination are greyed.
    var spans = [];
    text.innerHTML = "";
    for (var t = 0; t < T; t++) {
      var span = document.createElement("span");
      span.className = "mgv-tok";
      span.setAttribute("data-pos", t);
      span.textContent = tokens[t].replace(/\n/g, "\\n").replace(/\t/g, "\\t");  // spaces kept: it is text
      span.addEventListener("click", function (event) {
        dest = +event.currentTarget.getAttribute("data-pos"); drawText();
      });
      span.addEventListener("mouseenter", function (event) {
        var j = +event.currentTarget.getAttribute("data-pos");
        var w = j <= dest ? data.patterns[+layerSelect.value][+textHead.value][dest][j] : 0;
        info.textContent = data.layers[+layerSelect.value] + ", head " + textHead.value + " \u00b7 from " +
          JSON.stringify(tokens[dest]) + " (position " + dest + ") to " + JSON.stringify(tokens[j]) +
          " (position " + j + ") \u00b7 weight " + w.toFixed(4);
      });
      text.appendChild(span);
      spans.push(span);
    }
    function drawText() {
      var row = data.patterns[+layerSelect.value][+textHead.value][dest];
      text.setAttribute("data-dest", dest); text.setAttribute("data-head", textHead.value);
      for (var t = 0; t < T; t++) {
        spans[t].style.background = colour(t <= dest ? row[t] : 0);
        spans[t].style.color = row[t] > 0.6 ? "#fff" : "";  // dark cells: white text stays readable
        spans[t].className = "mgv-tok" + (t === dest ? " mgv-dest" : "") + (t > dest ? " mgv-later" : "");
        spans[t].title = "weight " + (t <= dest ? row[t] : 0).toFixed(4);
      }
    }
    layerSelect.addEventListener("change", function () { draw(); });
    headSelect.addEventListener("change", function () { draw(); });
    textHead.addEventListener("change", function () { drawText(); });
    var resized = null;
    window.addEventListener("resize", function () {  // the page's width decides the cell size: redraw
      clearTimeout(resized); resized = setTimeout(draw, 100);
    });
    draw();
  }
  var roots = document.querySelectorAll(".mingpt-attn:not([data-ready])");
  for (var r = 0; r < roots.length; r++) setup(roots[r]);
})();
"""
