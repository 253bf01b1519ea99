"""Hook points: every value is the model's own computation, hooks change exactly what they should, and leave nothing."""

import contextlib
import io
import math
import pathlib
import re

import pytest
import torch

from mingpt.interp.hooks import HookPoint, attached_hook_names, get_act_name, hook_names
from mingpt.model import GPT

V, T, L, NH, C = 97, 9, 3, 4, 32


@pytest.fixture(scope="module")
def build(tiny_gpt):
    """This file's model: non-trivial LayerNorm weights and biases, so nothing passes by accident of init."""

    def make(attention="sdpa", seed=0):
        return tiny_gpt(seed, ln_noise=0.5, bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V,
                        block_size=32, attention=attention).eval()

    return make


@pytest.fixture(scope="module")
def model(build):
    return build()


@pytest.fixture(scope="module")
def idx():
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))


def layer_norm(x, weight, bias, eps=1e-5):
    centered = x - x.mean(-1, keepdim=True)
    scale = (centered.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return scale, centered / scale * weight + bias


def reference_activations(model, idx):
    """TL's hook values, recomputed from the weight tensors alone (no module of the model is called)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    B, T_ = idx.shape
    hs = C // NH
    acts = {"hook_embed": sd["transformer.wte.weight"][idx], "hook_pos_embed": sd["transformer.wpe.weight"][:T_]
            .expand(B, T_, C)}
    x = acts["hook_embed"] + acts["hook_pos_embed"]
    gelu = lambda u: 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))  # noqa: E731
    for i in range(L):
        p = f"transformer.h.{i}."
        a = {"hook_resid_pre": x}
        a["ln1.hook_scale"], a["ln1.hook_normalized"] = layer_norm(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        qkv = a["ln1.hook_normalized"] @ sd[p + "attn.c_attn.weight"].T + sd[p + "attn.c_attn.bias"]
        for j, name in enumerate("qkv"):
            a[f"attn.hook_{name}"] = qkv[..., j * C:(j + 1) * C].reshape(B, T_, NH, hs)
        scores = torch.einsum("bqnh,bknh->bnqk", a["attn.hook_q"], a["attn.hook_k"]) / math.sqrt(hs)
        future = torch.ones(T_, T_).triu(1).bool()
        a["attn.hook_attn_scores"] = scores.masked_fill(future, float("-inf"))
        a["attn.hook_pattern"] = a["attn.hook_attn_scores"].softmax(-1)
        a["attn.hook_z"] = torch.einsum("bnqk,bknh->bqnh", a["attn.hook_pattern"], a["attn.hook_v"])
        W_O = sd[p + "attn.c_proj.weight"].T.reshape(NH, hs, C)  # rows of the input side, split by head
        a["attn.hook_result"] = torch.einsum("bqnh,nhc->bqnc", a["attn.hook_z"], W_O)
        a["hook_attn_out"] = a["attn.hook_result"].sum(2) + sd[p + "attn.c_proj.bias"]
        a["hook_resid_mid"] = x = x + a["hook_attn_out"]
        a["ln2.hook_scale"], a["ln2.hook_normalized"] = layer_norm(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        a["mlp.hook_pre"] = a["ln2.hook_normalized"] @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
        a["mlp.hook_post"] = gelu(a["mlp.hook_pre"])
        a["hook_mlp_out"] = a["mlp.hook_post"] @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
        a["hook_resid_post"] = x = x + a["hook_mlp_out"]
        acts.update({f"blocks.{i}.{k}": v for k, v in a.items()})
    acts["ln_final.hook_scale"], acts["ln_final.hook_normalized"] = layer_norm(
        x, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])
    logits = acts["ln_final.hook_normalized"] @ sd["lm_head.weight"].T
    return acts, logits


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_every_hook_value_is_an_independent_recomputation(build, idx, attention):
    model = build(attention)
    expected, expected_logits = reference_activations(model, idx)
    _, without_results = model.run_with_cache(idx)  # TL's default: no per-head results in a full cache
    assert list(without_results.keys()) == [name for name in hook_names(model) if not name.endswith("hook_result")]
    model.set_use_attn_result(True)  # TL's switch
    logits, cache = model.run_with_cache(idx)
    assert list(cache.keys()) == hook_names(model) == list(expected)
    for name, value in expected.items():
        torch.testing.assert_close(cache[name], value, atol=2e-5, rtol=1e-5, msg=name)
    torch.testing.assert_close(logits, expected_logits, atol=2e-5, rtol=1e-5)


def test_hooks_off_is_bit_identical_and_leaves_nothing_behind(model, idx):
    before, _ = model(idx)
    model.run_with_cache(idx)
    model.run_with_hooks(idx, fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: x * 2)])
    assert attached_hook_names(model) == []
    after, _ = model(idx)
    assert torch.equal(before, after)
    # A cache of only the cheap points (no pattern, no per-head result) keeps the fused path: same bits.
    logits, cache = model.run_with_cache(idx, names_filter=lambda name: "resid" in name)
    assert torch.equal(logits, before)
    assert len(cache) == 3 * L


def test_shorthand_names(model, idx):
    _, cache = model.run_with_cache(idx)
    assert cache["pattern", 1] is cache["blocks.1.attn.hook_pattern"]
    assert cache["resid_pre", 0] is cache["blocks.0.hook_resid_pre"]
    assert cache["resid_post", -1] is cache[f"blocks.{L - 1}.hook_resid_post"]
    assert cache["scale"] is cache["ln_final.hook_scale"]
    assert cache["normalized", 2, "ln2"] is cache["blocks.2.ln2.hook_normalized"]
    assert cache["embed"] is cache["hook_embed"] and "pattern" not in cache and ("z", 0) in cache
    assert not cache["resid_post", 0].requires_grad  # detached: for looking at, not for backpropagating
    assert get_act_name("post", 2) == "blocks.2.mlp.hook_post"
    assert HookPoint("blocks.2.attn.hook_z").layer() == 2
    with pytest.raises(ValueError, match="not inside a block"):
        HookPoint("hook_embed").layer()


def test_head_ablation_changes_exactly_that_head(model, idx):
    def zero_head_1(z, hook):
        z[:, :, 1] = 0.0

    every_point = lambda name: True  # noqa: E731  (a predicate: hook_result included, as asked)
    _, clean = model.run_with_cache(idx, names_filter=every_point)
    with model.hooks(fwd_hooks=[("blocks.1.attn.hook_z", zero_head_1)]):
        _, ablated = model.run_with_cache(idx, names_filter=every_point)
    for name in hook_names(model):
        if name.startswith(("hook_", "blocks.0.")) or name in {f"blocks.1.{n}" for n in (
                "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k",
                "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern")}:
            assert torch.equal(ablated[name], clean[name]), name  # upstream of the edit: untouched
    assert torch.equal(ablated["z", 1][:, :, 1], torch.zeros(2, T, C // NH))
    assert torch.equal(ablated["z", 1][:, :, [0, 2, 3]], clean["z", 1][:, :, [0, 2, 3]])
    # What block 1 adds is now the other heads' results plus the bias, exactly.
    expected = clean["result", 1][:, :, [0, 2, 3]].sum(2) + model.transformer.h[1].attn.c_proj.bias
    torch.testing.assert_close(ablated["attn_out", 1], expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ablated["resid_post", 2], clean["resid_post", 2])


def test_steering_while_generating_with_the_kv_cache(model, idx):
    steer = 3.0 * torch.randn(C, generator=torch.Generator().manual_seed(2))
    seen = []

    def add_steering(x, hook):
        seen.append(x.shape[1])
        return x + steer

    plain = model.generate(idx, 6)
    with model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", add_steering)]):
        steered = model.generate(idx, 6)
        steered_no_cache = model.generate(idx, 6, use_cache=False)
    assert attached_hook_names(model) == []
    assert seen[:6] == [T, 1, 1, 1, 1, 1]  # the prompt once, then one new position per decoding step
    assert torch.equal(steered, steered_no_cache)  # the cache saw the same steered keys and values
    assert not torch.equal(steered, plain)
    # Greedy decoding under the hook = argmax of the hooked model's logits, step by step.
    seq = idx
    for _ in range(6):
        logits = model.run_with_hooks(seq, fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: x + steer)])
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(seq, steered)


def test_a_pattern_hook_switches_the_fused_path_to_the_explicit_one(model, idx):
    assert model.transformer.h[0].attn.implementation == "sdpa"

    def attend_to_self(pattern, hook):  # head 2 of layer 0 looks only at its own position
        pattern[:, 2] = torch.eye(T)

    _, cache = model.run_with_cache(idx, fwd_hooks=[("blocks.0.attn.hook_pattern", attend_to_self)])
    assert torch.equal(cache["z", 0][:, :, 2], cache["v", 0][:, :, 2])  # the edited pattern was used
    assert not torch.allclose(cache["z", 0][:, 1:, 1], cache["v", 0][:, 1:, 1])


def test_hooks_are_removed_when_the_forward_raises(model, idx):
    def boom(x, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.run_with_hooks(idx, fwd_hooks=[("blocks.0.mlp.hook_post", boom)])
    assert attached_hook_names(model) == [] and model.training is False


def test_run_with_cache_and_run_with_hooks_switch_dropout_off_and_restore_training(build, idx):
    model = build(seed=2).train()  # GPT-2's dropouts (0.1) on: a training-mode pass would draw random masks
    first, second = model.run_with_cache(idx)[0], model.run_with_cache(idx)[0]
    assert model.training  # the caller's mode came back
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # dropout was off while the cache was recorded
    hooked = model.run_with_hooks(idx)
    torch.testing.assert_close(model.run_with_hooks(idx), hooked, rtol=0, atol=0)
    torch.testing.assert_close(hooked, first)  # the fused path here, the explicit one under the cache: rounding
    assert model.training


def test_nested_hooks_and_predicates(model, idx):
    calls = []
    with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_scale"), lambda x, hook: calls.append(hook.name))]):
        logits, cache = model.run_with_cache(idx, names_filter="blocks.0.hook_resid_post")
        assert list(cache.keys()) == ["blocks.0.hook_resid_post"]
    assert calls == [f"blocks.{i}.ln{j}.hook_scale" for i in range(L) for j in (1, 2)] + ["ln_final.hook_scale"]
    assert attached_hook_names(model) == []
    outer = {}
    with model.hooks(names_filter="blocks.1.hook_resid_pre", cache=outer):  # two caches of the same point
        _, inner = model.run_with_cache(idx, names_filter="blocks.1.hook_resid_pre")
        assert attached_hook_names(model) == ["blocks.1.hook_resid_pre"]
    assert attached_hook_names(model) == [] and torch.equal(outer["blocks.1.hook_resid_pre"], inner["resid_pre", 1])


def test_a_hook_on_the_scale_is_used_by_the_layer_norm(model, idx):
    _, clean = model.run_with_cache(idx)
    doubled = model.run_with_cache(idx, fwd_hooks=[("blocks.0.ln2.hook_scale", lambda s, hook: 2 * s)])[1]
    ln = model.transformer.h[0].ln_2
    centered = clean["resid_mid", 0] - clean["resid_mid", 0].mean(-1, keepdim=True)
    expected = centered / (2 * clean["scale", 0, "ln2"]) * ln.weight + ln.bias
    torch.testing.assert_close(doubled["normalized", 0, "ln2"], expected, atol=1e-6, rtol=1e-6)


def test_bad_input_gets_clear_errors(model, idx):
    with pytest.raises(KeyError, match="did you mean 'blocks.0.hook_resid_pre'"):
        model.run_with_hooks(idx, fwd_hooks=[("blocks.0.hook_resid_pr", lambda x, hook: x)])
    with pytest.raises(ValueError, match=r"returned shape \(2, 9\).*\(2, 9, 32\)"):
        model.run_with_hooks(idx, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x[..., 0])])
    with pytest.raises(TypeError, match="returned float"):
        model.run_with_hooks(idx, fwd_hooks=[("hook_embed", lambda x, hook: 1.0)])
    with pytest.raises(ValueError, match="matches none of the"):
        model.run_with_cache(idx, names_filter=lambda name: name.endswith("hook_nothing"))
    with pytest.raises(TypeError, match="pairs"):
        model.run_with_hooks(idx, fwd_hooks=["blocks.0.hook_resid_pre"])
    _, cache = model.run_with_cache(idx, names_filter="hook_embed")
    with pytest.raises(KeyError, match="names_filter left it out"):
        cache["pattern", 0]
    with pytest.raises(KeyError, match="did you mean"):
        cache["blocks.0.attn.hook_patern"]
    with pytest.raises(ValueError, match="needs layer_type"):
        cache["scale", 0]
    assert attached_hook_names(model) == []


def test_docs_inspection_example_runs_and_prints_what_it_promises():
    page = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "inspection.md").read_text(encoding="utf-8")
    section = page.split("## A first look", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/inspection.md", "exec"), {"__name__": "readme"})
    promised = [line.split("# ", 1)[1].split(":")[0] for line in code.splitlines() if line.startswith("print(")]
    assert out.getvalue().splitlines() == promised


def test_hook_values_are_hugging_faces_numbers():
    """Unlike TL's processed weights, the cache holds what transformers' GPT-2 computes on the same weights."""
    import transformers  # a test dependency: a broken environment fails here instead of skipping

    from mingpt.io.pretrained import config_from_hf, load_hf_state_dict

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=V, n_positions=16,
                                        initializer_range=0.3, attn_implementation="eager")
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():  # LayerNorms that are not the identity
        for name, p in hf.named_parameters():
            if "ln_" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (name.endswith("weight")))
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = hf(idx, output_hidden_states=True, output_attentions=True)
        logits, cache = model.run_with_cache(idx)
    close = lambda a, b: torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # noqa: E731
    for i in range(2):
        close(cache["resid_pre", i], out.hidden_states[i])
        close(cache["pattern", i], out.attentions[i])
    close(cache["ln_final.hook_normalized"], out.hidden_states[2])  # HF's last hidden state is after ln_f
    close(logits, out.logits)


def test_only_what_is_asked_for_is_computed(model, idx, monkeypatch):
    from mingpt.model import CausalSelfAttention

    def forbidden(*args, **kwargs):
        raise AssertionError("computed without being asked for")

    monkeypatch.setattr(CausalSelfAttention, "per_head_output", forbidden)
    monkeypatch.setattr(CausalSelfAttention, "math_attention", forbidden)
    model.run_with_cache(idx, names_filter=lambda name: not name.endswith(("result", "scores", "pattern")))
    model.generate(idx, 3)  # and nothing of it without hooks
    with pytest.raises(AssertionError, match="without being asked"):
        model.run_with_cache(idx, names_filter="blocks.0.attn.hook_result")
    with pytest.raises(AssertionError, match="without being asked"):
        model.run_with_cache(idx, names_filter="blocks.2.attn.hook_pattern")
    assert attached_hook_names(model) == []


# ------------------------------------------------------------------------------- the registry and the one path
def test_hook_dict_holds_every_declared_point_idle_and_named(model, idx):
    from mingpt.interp.hook_points import declared_hook_names

    points = model.hook_dict
    assert list(points) == declared_hook_names(L) == hook_names(model)  # every name, in forward order
    assert len({id(p) for p in points.values()}) == len(points)  # one object per site, none shared
    x = torch.randn(2, T, C)
    for name, point in points.items():
        assert isinstance(point, HookPoint) and point.name == name and not point.active
        assert point(x) is x  # idle: the identity, not even a copy
    assert not any(isinstance(m, HookPoint) for m in model.modules())  # plain objects: no nn.Module call machinery


def test_a_hook_attached_then_removed_leaves_no_trace(model, idx):
    before, _ = model(idx)
    seen = []
    with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", lambda x, hook: seen.append(hook.name) or 2 * x)]):
        assert attached_hook_names(model) == ["blocks.0.mlp.hook_post"]
        changed, _ = model(idx)
    point = model.hook_dict["blocks.0.mlp.hook_post"]
    assert seen == ["blocks.0.mlp.hook_post"] and not torch.equal(changed, before)
    assert point.fns == [] and point.caches == [] and not point.active and attached_hook_names(model) == []
    assert torch.equal(model(idx)[0], before)


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_each_sublayer_has_one_body_a_no_op_hook_everywhere_changes_no_bit(build, idx, attention):
    """The forward is written once: hooked or not, the same operations run. (Points that, when asked, compute
    something extra are left out: hook_result's per-head sum, a hooked scale's hand-made LayerNorm, and with the
    fused kernel the scores and pattern it never forms.)"""
    model = build(attention)
    computes_extra = ("hook_result", "hook_scale") + (("hook_attn_scores", "hook_pattern") if attention == "sdpa"
                                                      else ())
    names = [name for name in hook_names(model) if not name.endswith(computes_extra)]
    calls = []
    with torch.no_grad():
        plain, _ = model(idx)
        with model.hooks(fwd_hooks=[(lambda name: name in names, lambda x, hook: calls.append(hook.name))]):
            hooked, _ = model(idx)
            generated = model.generate(idx, 4)
    assert calls[:len(names)] == names  # every one of them ran, in forward order
    assert torch.equal(hooked, plain)
    assert torch.equal(generated, model.generate(idx, 4))  # the KV-cache decode too


def test_student_components_without_hook_points_still_hook_and_cache(tiny_gpt_config, idx):
    from student_code import Attention, LayerNorm

    torch.manual_seed(0)
    model = GPT(tiny_gpt_config(n_layer=2, vocab_size=V, block_size=32, attention="sdpa"), attention=Attention,
                layer_norm=LayerNorm).eval()
    names = hook_names(model)
    assert "blocks.0.hook_resid_pre" in names and "blocks.0.mlp.hook_post" in names
    assert not any(".attn." in name or name.endswith("hook_scale") for name in names)  # what they do not have
    logits, cache = model.run_with_cache(idx)
    assert list(cache.keys()) == names and torch.equal(logits, model(idx)[0])
    with pytest.raises(KeyError, match="unknown hook point"):
        model.run_with_hooks(idx, fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z)])
    steered = model.run_with_hooks(idx, fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: x + 1.0)])
    assert not torch.equal(steered, logits) and attached_hook_names(model) == []


def test_attaching_many_hooks_walks_the_modules_once(model, idx, monkeypatch):
    # Finding the hook points walks every module; a hooks block with many names once did it once per name (44 walks
    # per attribution call on GPT-2: a sixth of its time). Every name is still checked, against that one walk.
    from mingpt.interp import hook_points, hooks

    walks = []
    real = hook_points.find_hook_points

    def counted(m):
        walks.append(1)
        return real(m)

    monkeypatch.setattr(hook_points, "find_hook_points", counted)
    monkeypatch.setattr(hooks, "find_hook_points", counted)
    names = [get_act_name("resid_pre", i) for i in range(L)] + [get_act_name("z", i) for i in range(L)]
    with model.hooks([(name, lambda x, hook: None) for name in names], bwd_hooks=[(names[0], lambda g, hook: None)],
                     names_filter=names, cache={}):
        model(idx)
    assert len(walks) == 1
    with pytest.raises(KeyError, match="did you mean 'blocks.0.hook_resid_pre'"):
        with model.hooks([("blocks.0.hook_resid_pr", lambda x, hook: None)]):
            pass
