"""Backward hooks (TL's bwd_hooks): the gradient with respect to each hook point's output, equal to TL's on the
same weights; a returned tensor replaces the gradient; nothing stays attached."""

import pytest
import torch

from mingpt.interp.hooks import attached_hook_names
from tl_oracle import tl_model_from_gpt

V, T, L, NH, C = 41, 7, 2, 4, 24


@pytest.fixture(scope="module", params=[False, True], ids=["gpt", "attn_only"])
def models(request, tiny_gpt):
    model = tiny_gpt(ln_noise=0.3, bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16,
                     tie_weights=False, attn_only=request.param).eval()
    return model, tl_model_from_gpt(model)


def loss_of(logits, idx):
    """A loss that reaches every position: next-token cross-entropy plus a sum of the last logits."""
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))
    return ce + 0.1 * logits[:, -1].square().sum()


def test_backward_hooks_see_transformer_lens_gradients(models):
    model, reference = models
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))
    ours, theirs = {}, {}

    def recorder(store):
        # Summed over calls: TL's block runs ln1 three times (for q, k and v inputs), so its ln1 hook points fire
        # three times with one share of the gradient each; mingpt's run once with the whole of it.
        def record(grad, hook):
            store[hook.name] = store.get(hook.name, 0) + grad.detach()
        return record

    with model.hooks(bwd_hooks=[(lambda name: True, recorder(ours))]):
        loss_of(model(idx)[0], idx).backward()
    with reference.hooks(bwd_hooks=[(lambda name: True, recorder(theirs))]):
        loss_of(reference(idx), idx).backward()
    shared = set(ours) & set(theirs)
    # Every point the forward pass went through got its gradient, in both; hook_result only exists in ours.
    assert set(theirs) <= set(ours) and set(ours) - set(theirs) <= {f"blocks.{i}.attn.hook_result" for i in range(L)}
    assert {"hook_embed", "blocks.0.attn.hook_pattern", "blocks.1.ln1.hook_scale", "ln_final.hook_scale"} <= shared
    for name in sorted(shared):
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-5, rtol=1e-4, msg=name)
    assert attached_hook_names(model) == []


def test_a_backward_hook_can_replace_the_gradient(models):
    model, _ = models
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(4))
    model.zero_grad()
    # Cut the gradient where the residual stream enters block 0: nothing flows back into the embeddings, while
    # the blocks' own weights still get theirs.
    logits = model.run_with_hooks(idx, bwd_hooks=[("blocks.0.hook_resid_pre", lambda grad, hook: torch.zeros_like(grad))])
    loss_of(logits, idx).backward()
    assert model.transformer.wte.weight.grad.abs().max() == 0 and model.transformer.wpe.weight.grad.abs().max() == 0
    assert model.transformer.h[0].attn.c_attn.weight.grad.abs().max() > 0
    model.zero_grad()
    with pytest.raises(ValueError, match="return None or a gradient of shape"):
        logits = model.run_with_hooks(idx, bwd_hooks=[("hook_embed", lambda grad, hook: grad[0])])
        loss_of(logits, idx).backward()
    model.zero_grad()


def test_backward_hooks_are_checked_and_cost_nothing_without_gradients(models):
    model, _ = models
    idx = torch.randint(0, V, (1, T), generator=torch.Generator().manual_seed(5))
    fired = []
    with pytest.raises(KeyError, match="did you mean"):
        with model.hooks(bwd_hooks=[("blocks.0.hook_resid_prex", lambda g, h: None)]):
            pass
    with pytest.raises(TypeError, match="bwd_hooks must be a list"):
        with model.hooks(bwd_hooks=["blocks.0.hook_resid_pre"]):
            pass
    with torch.no_grad(), model.hooks(bwd_hooks=[("hook_embed", lambda g, h: fired.append(h.name))]):
        model(idx)
    assert fired == [] and attached_hook_names(model) == []


def test_add_hook_bwd_stays_for_later_passes_as_in_transformer_lens(models):
    # TL's add_hook(name, fn, dir="bwd"): attached until reset_hooks, for every later backward pass
    model, reference = models
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(6))
    names = ["hook_embed", "blocks.1.hook_resid_pre", "blocks.0.attn.hook_z"]
    ours, theirs = {}, {}
    for net, store in ((model, ours), (reference, theirs)):
        for name in names:
            net.add_hook(name, lambda grad, hook, store=store: store.setdefault(hook.name, []).append(grad.detach()),
                         dir="bwd")
        for _ in range(2):  # two passes: the hooks stay
            out = net(idx)
            loss_of(out[0] if isinstance(out, tuple) else out, idx).backward()
        net.reset_hooks(direction="fwd")  # a forward-only reset leaves the backward hooks
        out = net(idx)
        loss_of(out[0] if isinstance(out, tuple) else out, idx).backward()
        net.reset_hooks()
        out = net(idx)
        loss_of(out[0] if isinstance(out, tuple) else out, idx).backward()
    assert sorted(ours) == sorted(theirs) == sorted(names)
    for name in names:
        assert len(ours[name]) == len(theirs[name]) == 3
        for a, b in zip(ours[name], theirs[name]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    assert attached_hook_names(model) == []
    model.zero_grad()
