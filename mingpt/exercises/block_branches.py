"""
A Block's wiring as knobs, so that two wiring slips at once are named (block.py's table lists whole wirings).

The one idea: each of the Block's two branches is "normalise the stream, transform, add back", and each part of
that sentence is where a slip lives: which LayerNorm feeds the branch (its own, the other one, none), and what the
branch's output is added to (the stream x, the stream's normalised copy as after `x = self.ln_2(x)`, or nothing:
the residual is missing). `_branches` is the reference Block with one knob per part and per branch; compose.pairs
applies any two knobs of different parts together ("ln_1 missing, and the MLP's residual adds the normalised
stream"), and, like every variant, a pair is named only when it reproduces the student's output on every input.

    from mingpt.exercises.block_branches import branch_variants
    variants = BLOCK_TABLE_VARIANTS + branch_variants((ref.attn, ref.mlp, ref.ln_1, ref.ln_2))
"""

from __future__ import annotations

from mingpt.exercises.checking import Variant
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family

__all__ = ["branch_variants", "branch_scales", "BRANCH_KNOBS"]


def _branches(a, m, n1, n2, x, attn_norm="ln_1", mlp_norm="ln_2", attn_adds_to="x", mlp_adds_to="x",
              mlp_sublayer="mlp", mlp_reads="stream", post=False, order="attn_first"):
    """The reference Block with a knob per branch: which LayerNorm feeds it ("ln_1", "ln_2" or "none"), and what
    its output is added to: the stream ("x"), the stream's normalised copy ("normalised", as after `x = ln(x)`),
    or nothing ("nothing": the residual is missing), or the stream twice ("twice", as `x += x + f(ln(x))`); the
    attention's output can also bypass the stream ("bypassed": it feeds the MLP, whose output is added to x).
    The MLP branch can also run the wrong sublayer (mlp_sublayer="attn", a copy-pasted line) or read a stale
    stream (mlp_reads="ln_1": ln_1's output from before the attention, `h = ln_1(x)` computed once and reused).
    A branch may add to the block's input instead of the updated stream ("input"), or normalise its sublayer's
    output instead of its input (norm "ln_1 after", "ln_2 after"); post=True puts both LayerNorms after the
    residual add (the 2017 transformer), and order="mlp_first" runs the MLP branch before the attention."""
    norms = {"ln_1": n1, "ln_2": n2, "none": lambda t: t}
    if attn_adds_to == "bypassed":  # the attention output feeds the MLP only; the stream x goes round both
        normed = norms[mlp_norm](a(norms[attn_norm](x)))
        return m(normed) + {"x": x, "twice": 2 * x, "normalised": normed, "nothing": 0}[mlp_adds_to]

    def branch(stream, f, norm, adds_to, reads=None):
        after = norm.endswith(" after")  # the LayerNorm on the sublayer's output: x + ln(f(x))
        if post or after:
            normed = stream
            norm = norm.removesuffix(" after")
        else:
            normed = norms[norm](stream if reads is None else reads)
        out = norms[norm](f(normed)) if after else f(normed)
        out = out + {"x": stream, "twice": 2 * stream, "normalised": normed, "nothing": 0, "input": x}[adds_to]
        return norms[norm](out) if post and not after else out
    reads = n1(x) if mlp_reads == "ln_1" else None
    mlp = {"mlp": m, "attn": a}[mlp_sublayer]
    if order == "mlp_first":
        return branch(branch(x, mlp, mlp_norm, mlp_adds_to), a, attn_norm, attn_adds_to)
    return branch(branch(x, a, attn_norm, attn_adds_to), mlp, mlp_norm, mlp_adds_to, reads)


BRANCH_KNOBS = [  # (name, knobs of _branches, explanation, hint): compose.pairs makes every two of them
    ("ln_1 missing", dict(attn_norm="none"), "The attention branch must see LayerNorm(x), not x itself.",
     "attn(ln_1(x))"),
    ("ln_2 used for the attention", dict(attn_norm="ln_2"), "ln_1 normalises the attention's input; yours uses ln_2.",
     "attn(ln_1(x))"),
    ("ln_2 missing", dict(mlp_norm="none"), "The MLP branch must see LayerNorm(x), not x itself.", "mlp(ln_2(x))"),
    ("ln_1 used for the MLP", dict(mlp_norm="ln_1"), "ln_2 normalises the MLP's input; yours uses ln_1.",
     "mlp(ln_2(x))"),
    ("the attention's residual adds the normalised stream (x = ln_1(x) overwrites the stream)",
     dict(attn_adds_to="normalised"), "`x = self.ln_1(x)` replaces the residual stream by its normalised copy, so "
     "the attention output is added to LayerNorm(x), not to x.", "keep x; pass ln_1(x) to attn without storing it"),
    ("the MLP's residual adds the normalised stream (x = ln_2(x) overwrites the stream)",
     dict(mlp_adds_to="normalised"), "`x = self.ln_2(x)` replaces the residual stream by its normalised copy, so "
     "the MLP output is added to LayerNorm(x), not to x.", "keep x; pass ln_2(x) to mlp without storing it"),
    ("attention branch without its residual", dict(attn_adds_to="nothing"),
     "The attention output must be *added* to x; yours replaces x with it.", "x = x + ..."),
    ("MLP branch without its residual", dict(mlp_adds_to="nothing"),
     "The MLP output must be *added* to the residual stream; yours replaces it.", "x = x + ..."),
    ("the attention output never joins the stream (it only feeds the MLP)", dict(attn_adds_to="bypassed"),
     "The MLP reads the attention's output, but the residual stream that the MLP adds to is the block's input x, "
     "so the attention's contribution is lost after the MLP.", "h = x + attn(ln_1(x)); then h + mlp(ln_2(h))"),
    ("the attention used in the MLP branch too (attn(ln_2(x)) where mlp(ln_2(x)) belongs)",
     dict(mlp_sublayer="attn"), "The second branch runs the MLP; yours runs self.attn again (a copied line?), so the "
     "MLP's weights are never used.", "x = x + self.mlp(self.ln_2(x))"),
    ("the MLP reads ln_1's output from before the attention (h = ln_1(x) reused)", dict(mlp_reads="ln_1"),
     "The MLP branch must normalise the stream *after* the attention was added: ln_2(x + attn(...)); yours "
     "normalises ln_1's output, computed once before the attention, so the MLP never sees what attention wrote.",
     "recompute from the updated stream: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))"),
    ("the MLP's residual adds the block's input, not the updated stream (the attention's output lost)",
     dict(mlp_adds_to="input"), "The MLP's output is added to the stream as it is after the attention, "
     "x + attn(ln_1(x)); yours adds it to the block's input x, so the attention's output reaches the result only "
     "through the MLP's input.", "h = x + attn(ln_1(x)); return h + mlp(ln_2(h))"),
    ("ln_1 applied to the attention's output instead of its input", dict(attn_norm="ln_1 after"),
     "Pre-LN normalises what goes *into* the attention: x + attn(ln_1(x)); yours adds ln_1(attn(x)).",
     "x + attn(ln_1(x))"),
    ("ln_2 applied to the MLP's output instead of its input", dict(mlp_norm="ln_2 after"),
     "Pre-LN normalises what goes *into* the MLP: x + mlp(ln_2(x)); yours adds ln_2(mlp(x)).",
     "x + mlp(ln_2(x))"),
    ("LayerNorm after the residual add (post-LN)", dict(post=True), "GPT-2 normalises the *input* of each "
     "sublayer (pre-LN) and leaves the residual stream untouched; yours normalises after adding, ln(x + f(x)).",
     "x = x + f(ln(x)): the residual stream is only added to"),
    ("MLP before attention", dict(order="mlp_first"), "The Block first communicates (attention) and then "
     "computes (MLP); yours runs the MLP branch first.", "the attention line first, then the MLP line"),
    ("the stream added twice around the attention (x += x + attn(...))", dict(attn_adds_to="twice"),
     "The branch adds its output to x once: x + attn(ln_1(x)); yours doubles the stream as well.", "x = x + ..."),
    ("the stream added twice around the MLP (x += x + mlp(...))", dict(mlp_adds_to="twice"),
     "The branch adds its output to x once: x + mlp(ln_2(x)); yours doubles the stream as well.", "x = x + ..."),
]


def branch_variants(parts) -> list[Variant]:
    """Each branch knob alone, then every two together (a norm missing *and* a residual on the normalised stream)."""
    base = lambda x, **knobs: _branches(*parts, x, **knobs)  # noqa: E731
    singles = [knob(base, name, kw, why, hint) for name, kw, why, hint in BRANCH_KNOBS]
    return singles + pairs(base, singles)


def branch_scales(parts) -> list[Family]:
    """One branch multiplied by a number before the add (a residual scaling half applied), fitted (families.py)."""
    a, m, n1, n2 = parts
    return [Family("attention branch scaled by {value} before the add",
                   lambda c: lambda x: (h := x + c * a(n1(x))) + m(n2(h)), "The attention output is added as it is; "
                   "yours multiplies it by {value}.", "x = x + self.attn(self.ln_1(x))", lo=0.05, hi=20.0,
                   correct=1.0, log=True),
            Family("MLP branch scaled by {value} before the add", lambda c: lambda x: (h := x + a(n1(x)))
                   + c * m(n2(h)),
                   "The MLP output is added as it is; yours multiplies it by {value}.",
                   "x = x + self.mlp(self.ln_2(x))", lo=0.05, hi=20.0, correct=1.0, log=True)]
