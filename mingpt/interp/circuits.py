"""
Reading a GPT's weights as circuits: TransformerLens' weight views, the QK and OV circuits of each head, copying
scores and composition scores ("A Mathematical Framework for Transformer Circuits", Elhage et al., 2021).

The one idea: a head does two separate things, each one matrix from the residual stream to itself.
  - QK circuit  W_Q @ W_K.T  (C, C): *where* it looks. score(query x_q, key x_k) = x_q @ W_Q @ W_K.T @ x_k.T
  - OV circuit  W_V @ W_O    (C, C): *what* it moves. the head writes (pattern-weighted) x_k @ W_V @ W_O.
Both have rank head_size (hs) though they are C x C, and between tokens (through W_E and W_U) V x V, so they are
kept as a `FactoredMatrix` A @ B and never multiplied out unless you ask (``.AB``): a V x V matrix of GPT-2 is
10 GB. Everything useful is cheap in factored form: eigenvalues of A @ B are those of the small B @ A, and norms
come from hs x hs Gram matrices.

Conventions are TL's: vectors are rows (``x @ W``), weights are views of the model's own parameters, not folded
or centered (TL's default processing folds LayerNorm weights into them; the activations are then not the model's).

    W_E (V, C)  W_pos (block_size, C)  W_U (C, V)  b_U (V,)
    W_Q, W_K, W_V (n_layer, nh, C, hs)   b_Q, b_K, b_V (n_layer, nh, hs)   W_O (n_layer, nh, hs, C)   b_O (n_layer, C)
    W_in (n_layer, C, 4C)  b_in (n_layer, 4C)  W_out (n_layer, 4C, C)  b_out (n_layer, C)
"""

from __future__ import annotations

import torch

__all__ = ["WeightViews", "FactoredMatrix", "copying_scores", "all_composition_scores"]


class WeightViews:
    """TL's weight names on a GPT, computed from its parameters on each access (a mixin of `GPT`)."""

    def _stack(self, fn) -> torch.Tensor:
        return torch.stack([fn(block) for block in self.transformer.h])

    def _qkv(self, which: int, bias: bool) -> torch.Tensor:
        nh, C = self.config.n_head, self.config.n_embd
        hs = getattr(self.config, "head_dim", None) or C // nh
        heads = nh if which == 0 else getattr(self.config, "n_kv_head", None) or nh  # grouped K/V heads (GQA)
        start = 0 if which == 0 else nh * hs + (which - 1) * heads * hs

        def one(block):
            rows = slice(start, start + heads * hs)  # c_attn stacks q, k, v along its output rows
            b = block.attn.c_attn.bias
            if bias:
                out = b[rows].view(heads, hs) if b is not None else torch.zeros(heads, hs)
            else:
                out = block.attn.c_attn.weight[rows].view(heads, hs, C).transpose(1, 2)  # (heads, C, hs)
            return out.repeat_interleave(nh // heads, dim=0)  # as TL shows GQA: each K/V head once per query head

        return self._stack(one)

    W_E = property(lambda self: self.transformer.wte.weight, doc="token embeddings (V, C)")
    W_pos = property(lambda self: self.transformer.wpe.weight, doc="position embeddings (block_size, C)")
    W_U = property(lambda self: self.lm_head.weight.T, doc="unembedding (C, V)")
    b_U = property(lambda self: torch.zeros(self.config.vocab_size, device=self.lm_head.weight.device),
                   doc="GPT-2's lm_head has no bias: zeros (V,)")
    W_Q = property(lambda self: self._qkv(0, False), doc="(n_layer, nh, C, hs)")
    W_K = property(lambda self: self._qkv(1, False), doc="(n_layer, nh, C, hs)")
    W_V = property(lambda self: self._qkv(2, False), doc="(n_layer, nh, C, hs)")
    b_Q = property(lambda self: self._qkv(0, True), doc="(n_layer, nh, hs)")
    b_K = property(lambda self: self._qkv(1, True), doc="(n_layer, nh, hs)")
    b_V = property(lambda self: self._qkv(2, True), doc="(n_layer, nh, hs)")
    W_O = property(lambda self: self._stack(lambda b: b.attn.c_proj.weight.T.reshape(
        self.config.n_head, -1, self.config.n_embd)), doc="(n_layer, nh, hs, C): head n's rows of c_proj's input")
    b_O = property(lambda self: self._stack(lambda b: _bias(b.attn.c_proj)), doc="(n_layer, C)")
    W_in = property(lambda self: self._stack(lambda b: b.mlp.c_fc.weight.T), doc="(n_layer, C, 4C)")
    b_in = property(lambda self: self._stack(lambda b: _bias(b.mlp.c_fc)), doc="(n_layer, 4C)")
    W_out = property(lambda self: self._stack(lambda b: b.mlp.c_proj.weight.T), doc="(n_layer, 4C, C)")
    b_out = property(lambda self: self._stack(lambda b: _bias(b.mlp.c_proj)), doc="(n_layer, C)")
    QK = property(lambda self: FactoredMatrix(self.W_Q, self.W_K.transpose(-1, -2)),
                  doc="each head's QK circuit W_Q @ W_K.T, factored: (n_layer, nh, C, C)")
    OV = property(lambda self: FactoredMatrix(self.W_V, self.W_O),
                  doc="each head's OV circuit W_V @ W_O, factored: (n_layer, nh, C, C)")

    def all_composition_scores(self, mode: str) -> torch.Tensor:
        """TL's method: see `all_composition_scores` below."""
        return all_composition_scores(self, mode)


def _bias(linear: torch.nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else torch.zeros(linear.out_features)


class FactoredMatrix:
    """
    The matrix A @ B (..., m, n), kept as its factors A (..., m, r) and B (..., r, n); leading dims broadcast.
    ``W_E @ model.OV[1, 4] @ model.W_U`` is head 1.4's full OV circuit (V, V), still factored.
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor):
        if A.size(-1) != B.size(-2):
            raise ValueError(f"factors do not chain: A is {tuple(A.shape)}, B is {tuple(B.shape)}")
        self.A, self.B = A, B

    @property
    def shape(self) -> torch.Size:
        lead = torch.broadcast_shapes(self.A.shape[:-2], self.B.shape[:-2])
        return torch.Size((*lead, self.A.size(-2), self.B.size(-1)))

    @property
    def AB(self) -> torch.Tensor:
        """The full matrix (..., m, n). Mind the size: m x n for each leading index."""
        return self.A @ self.B

    @property
    def BA(self) -> torch.Tensor:
        """The small (..., r, r) product with the same nonzero eigenvalues as A @ B (needs m == n)."""
        return self.B @ self.A

    @property
    def T(self) -> "FactoredMatrix":
        return FactoredMatrix(self.B.transpose(-1, -2), self.A.transpose(-1, -2))

    def __getitem__(self, index) -> "FactoredMatrix":
        """Index the leading dims only, e.g. model.OV[layer, head]."""
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > len(self.shape) - 2:
            raise IndexError(f"index {index} has more entries than the {len(self.shape) - 2} leading dims")
        return FactoredMatrix(self.A[index], self.B[index])

    def __matmul__(self, other) -> "FactoredMatrix":
        if isinstance(other, FactoredMatrix):
            return FactoredMatrix(self.A, (self.B @ other.A) @ other.B)
        return FactoredMatrix(self.A, self.B @ other)

    def __rmatmul__(self, other: torch.Tensor) -> "FactoredMatrix":
        return FactoredMatrix(other @ self.A, self.B)

    def norm(self) -> torch.Tensor:
        """Frobenius norm per leading index, from r x r Gram matrices: ||AB||^2 = trace((A.T A)(B B.T))."""
        gram_a = self.A.transpose(-1, -2) @ self.A
        gram_b = self.B @ self.B.transpose(-1, -2)
        return (gram_a * gram_b).sum((-1, -2)).clamp_min(0).sqrt()  # trace(X Y) = sum(X * Y.T), both symmetric

    @property
    def eigenvalues(self) -> torch.Tensor:
        """The r eigenvalues of A @ B that can be nonzero (complex), from the r x r matrix B @ A."""
        if self.A.size(-2) != self.B.size(-1):
            raise ValueError(f"eigenvalues need a square matrix, this one is {tuple(self.shape)}")
        return torch.linalg.eigvals(self.BA.double())

    def svd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        TL's SVD of A @ B without forming it: (U (..., m, r), S (..., r), Vh (..., n, r)) with
        ``U @ S.diag() @ Vh.T == A @ B``. Note TL's Vh is V, not V transposed (torch.svd's convention). The
        method: SVD each factor, A = Ua Sa Va.T and B = Ub Sb Vb.T; the small r x r middle Sa Va.T Ub Sb has
        SVD Um Sm Vm.T, so A @ B = (Ua Um) Sm (Vb Vm).T, and the products keep orthonormal columns.
        """
        Ua, Sa, Va = torch.svd(self.A)
        Ub, Sb, Vb = torch.svd(self.B)
        middle = Sa[..., :, None] * Va.transpose(-1, -2) @ Ub * Sb[..., None, :]
        Um, Sm, Vm = torch.svd(middle)
        return Ua @ Um, Sm, Vb @ Vm

    U = property(lambda self: self.svd()[0], doc="left singular vectors (..., m, r)")
    S = property(lambda self: self.svd()[1], doc="singular values (..., r), largest first")
    Vh = property(lambda self: self.svd()[2], doc="right singular vectors (..., n, r): TL's name for V")

    def get_corner(self, k: int = 3) -> torch.Tensor:
        """TL's peek at the top-left k x k corner of every dim (leading ones too), multiplying out only that."""
        corner = self.A[..., :k, :] @ self.B[..., :, :k]
        return corner[tuple(slice(k) for _ in range(corner.dim()))]

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={tuple(self.shape)}, rank<={self.A.size(-1)})"


@torch.no_grad()
def copying_scores(model) -> torch.Tensor:
    """
    Per head (n_layer, nh): sum(eigenvalues) / sum(|eigenvalues|) of the full OV circuit W_E W_V W_O W_U (V x V),
    from its hs nonzero eigenvalues, those of W_O (W_U W_E) W_V (hs x hs; W_U W_E is only C x C). Near +1: the head
    copies the token it attends to into the prediction (induction and copying heads); near -1: it suppresses it.
    The LayerNorms in between are ignored, as in the paper.
    """
    unembed_embed = model.W_U @ model.W_E  # (C, V) @ (V, C) -> (C, C)
    small = model.W_O @ unembed_embed @ model.W_V  # (n_layer, nh, hs, hs)
    eigenvalues = torch.linalg.eigvals(small.double())
    return (eigenvalues.sum(-1).real / eigenvalues.abs().sum(-1)).float()


@torch.no_grad()
def all_composition_scores(model, mode: str) -> torch.Tensor:
    """
    How much each head (l1, h1) feeds each later head (l2, h2), as TL: (n_layer, nh, n_layer, nh), zero unless
    l1 < l2. The score is ||W_OV1 @ M2|| / (||W_OV1|| ||M2||) with M2 = W_QK2 for mode 'Q' (the earlier head's
    output shapes the later head's queries), W_QK2.T for 'K' (its keys: an induction head's previous-token head),
    W_OV2 for 'V' (its values). A random pair scores about sqrt(hs / C)-ish; a real composition much higher.
    """
    if mode not in ("Q", "K", "V"):
        raise ValueError(f"mode must be 'Q', 'K' or 'V', got {mode!r}")
    left = model.OV
    right = {"Q": model.QK, "K": model.QK.T, "V": model.OV}[mode]
    L, nh = model.config.n_layer, model.config.n_head
    scores = torch.zeros(L, nh, L, nh)
    right_norm = right.norm()  # (L, nh)
    for l1 in range(L - 1):
        source = left[l1]  # (nh, C, C) factored
        product = FactoredMatrix(source.A[:, None, None], (source.B[:, None, None] @ right.A[l1 + 1:][None])
                                 @ right.B[l1 + 1:][None])  # (nh, L - l1 - 1, nh, C, C)
        scores[l1, :, l1 + 1:] = product.norm() / (source.norm()[:, None, None] * right_norm[l1 + 1:][None])
    return scores
