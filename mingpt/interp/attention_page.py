"""
The attention viewer's page: its style sheet and the script that draws the grids and the token view.

attention_view.py writes these into every HTML view it makes, so a saved file is self-contained (no network, no
package to load). They live apart from it because they are CSS and JavaScript, not Python: a reader of the viewer's
Python finds the data it embeds there, and the drawing here.
"""

CSS = """
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
JS = r"""
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
      canvas.setAttribute("aria-label",
                          data.layers[layer] + ", head " + h + ", tokens: " + tokens.map(short).join(" "));
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
