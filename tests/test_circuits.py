"""Weight views reproduce the hook values; factored circuits, copying and composition scores match brute force."""

import pytest
import torch

from mingpt.interp.circuits import FactoredMatrix, all_composition_scores, copying_scores
from mingpt.model import GPT

V, T, L, NH, C = 53, 7, 3, 4, 32
HS = C // NH


@pytest.fixture(scope="module")
def model(tiny_gpt):
    return tiny_gpt(bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16,
                    tie_weights=False).eval()


def test_weight_views_reproduce_the_hook_values(model):
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, cache = model.run_with_cache(idx, names_filter=lambda name: True)  # hook_result included
        assert model.W_Q.shape == model.W_K.shape == model.W_V.shape == (L, NH, C, HS)
        assert model.W_O.shape == (L, NH, HS, C) and model.b_Q.shape == (L, NH, HS) and model.b_O.shape == (L, C)
        assert model.W_in.shape == (L, C, 4 * C) and model.W_out.shape == (L, 4 * C, C) and model.W_U.shape == (C, V)
        close = lambda a, b: torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # noqa: E731
        close(model.W_E[idx] + model.W_pos[:T], cache["resid_pre", 0])
        for i in range(L):
            x = cache["normalized", i, "ln1"]  # (B, T, C)
            for name, W, b in (("q", model.W_Q, model.b_Q), ("k", model.W_K, model.b_K), ("v", model.W_V, model.b_V)):
                close(torch.einsum("btc,nch->btnh", x, W[i]) + b[i], cache[name, i])
            close(torch.einsum("btnh,nhc->btnc", cache["z", i], model.W_O[i]), cache["result", i])
            close(cache["result", i].sum(2) + model.b_O[i], cache["attn_out", i])
            close(cache["normalized", i, "ln2"] @ model.W_in[i] + model.b_in[i], cache["pre", i])
            close(cache["post", i] @ model.W_out[i] + model.b_out[i], cache["mlp_out", i])
        close(cache["ln_final.hook_normalized"] @ model.W_U + model.b_U, logits)
        # The QK circuit gives the attention scores (before the 1/sqrt(hs) and the mask), from the weights alone.
        x = cache["normalized", 1, "ln1"][0]  # (T, C)
        q, k = x @ model.W_Q[1, 2] + model.b_Q[1, 2], x @ model.W_K[1, 2] + model.b_K[1, 2]
        allowed = torch.ones(T, T).tril().bool()  # the causal mask's -inf elsewhere
        close((q @ k.T / HS ** 0.5)[allowed], cache["attn_scores", 1][0, 2][allowed])


def test_factored_matrix_agrees_with_the_full_product():
    g = torch.Generator().manual_seed(1)
    A, B = torch.randn(3, 10, 4, generator=g), torch.randn(3, 4, 10, generator=g)
    fm = FactoredMatrix(A, B)
    full = A @ B
    assert fm.shape == (3, 10, 10) and torch.allclose(fm.AB, full)
    torch.testing.assert_close(fm.norm(), full.flatten(1).norm(dim=1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(fm.T.AB, full.transpose(-1, -2))
    other = torch.randn(10, 6, generator=g)
    torch.testing.assert_close((fm @ other).AB, full @ other, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close((other.T @ fm).AB, other.T @ full, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close((fm @ fm).AB, full @ full, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(fm[1].AB, full[1])
    # The 4 possibly-nonzero eigenvalues of the 10 x 10 product are its 4 largest in magnitude.
    brute = torch.linalg.eigvals(full[0].double())
    brute = brute[brute.abs().argsort(descending=True)][:4]
    ours = fm[0].eigenvalues
    assert torch.allclose(ours[ours.abs().argsort(descending=True)].abs(), brute.abs(), atol=1e-4)
    assert torch.allclose(ours.sum(), brute.sum(), atol=1e-4)
    with pytest.raises(ValueError, match="do not chain"):
        FactoredMatrix(A, A)


def test_copying_scores_match_brute_force_and_find_a_copying_head(model):
    scores = copying_scores(model)
    assert scores.shape == (L, NH)
    with torch.no_grad():
        full = (model.W_E @ model.OV[2, 1] @ model.W_U).AB  # (V, V), small here
        eig = torch.linalg.eigvals(full.double())
        assert scores[2, 1] == pytest.approx(float(eig.sum().real / eig.abs().sum()), abs=1e-5)
        # Make head 0.3 copy: W_V @ W_O maps the embedding onto the unembedding of the same token.
        copier = GPT(model.config)
        copier.load_state_dict(model.state_dict())
        attn = copier.transformer.h[0].attn
        basis = torch.linalg.qr(torch.randn(C, HS, generator=torch.Generator().manual_seed(2)))[0]  # (C, hs)
        W_V = torch.linalg.pinv(basis.T @ copier.W_U @ copier.W_E)  # (C, hs): then W_O W_U W_E W_V = identity
        attn.c_attn.weight[2 * C + 3 * HS:2 * C + 4 * HS] = W_V.T  # c_attn's rows for head 3's values
        attn.c_proj.weight[:, 3 * HS:4 * HS] = basis  # W_O = basis.T (hs, C)
    assert copying_scores(copier)[0, 3] > 0.99
    attn.c_proj.weight.data[:, 3 * HS:4 * HS] *= -1  # the same head, suppressing
    assert copying_scores(copier)[0, 3] < -0.99


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_composition_scores_match_brute_force(model, mode):
    scores = all_composition_scores(model, mode)
    assert scores.shape == (L, NH, L, NH)
    with torch.no_grad():
        OV, QK = model.OV.AB, model.QK.AB  # (L, nh, C, C)
        right = {"Q": QK, "K": QK.transpose(-1, -2), "V": OV}[mode]
        for l1, h1, l2, h2 in [(0, 1, 1, 2), (0, 3, 2, 0), (1, 0, 2, 3)]:
            expected = (OV[l1, h1] @ right[l2, h2]).norm() / (OV[l1, h1].norm() * right[l2, h2].norm())
            assert scores[l1, h1, l2, h2] == pytest.approx(float(expected), rel=1e-4)
    assert torch.all(scores[1, :, :2] == 0) and torch.all(scores[2] == 0)  # only later heads
    assert torch.equal(model.all_composition_scores(mode), scores)  # TL's spelling, a method


def test_k_composition_finds_a_previous_token_style_pair(model):
    composed = GPT(model.config)
    composed.load_state_dict(model.state_dict())
    with torch.no_grad():  # head 1.2's keys read exactly the subspace head 0.1 writes to
        W_O = composed.W_O[0, 1]  # (hs, C)
        composed.transformer.h[1].attn.c_attn.weight[C + 2 * HS:C + 3 * HS] = W_O  # W_K[1, 2] = W_O.T: (C, hs)
    scores = all_composition_scores(composed, "K")
    assert scores[0, 1, 1, 2] == scores[0, :, 1].max() and scores[0, 1, 1, 2] > 2 * scores[0, 0, 1, 2]
    with pytest.raises(ValueError, match="mode must be"):
        all_composition_scores(composed, "X")
