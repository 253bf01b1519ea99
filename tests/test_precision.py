"""
Reduced precision: what 'auto' picks on CPUs with and without native bf16, the attention path under bf16 training,
and generation with bf16 weights (KV cache in bf16, sampling in fp32, the same greedy tokens where they are clear).
"""

import logging

import numpy as np
import pytest
import torch

import mingpt.generation as generation
from mingpt.cli import generate as cli
from mingpt.data import TokenStream
from mingpt.generation import KVCache
from mingpt.model import CausalSelfAttention, use_math_attention
from mingpt.trainer import Trainer
from mingpt.training.precision import NATIVE_BF16_ENV, autocast, cpu_has_native_bf16, inference_dtype, resolve_precision


@pytest.fixture
def tiny_gpt(tiny_gpt):
    """conftest's factory with this file's sizes (64 tokens, blocks of 32); weight_std redraws the matrices larger,
    for confident, diverse predictions."""

    def make(attention="auto", seed=0, weight_std=None):
        model = tiny_gpt(seed, vocab_size=64, block_size=32, attention=attention)
        if weight_std is not None:
            with torch.no_grad():
                for p in model.parameters():
                    if p.dim() == 2:
                        p.normal_(0, weight_std)
        return model

    return make


# ---------------------------------------------------------------------------------------------- detection
def test_native_bf16_comes_from_pytorchs_checks_and_the_environment_overrides_it(monkeypatch):
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    for amx, avx512_bf16 in [(False, False), (True, False), (False, True)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        assert cpu_has_native_bf16() == (amx or avx512_bf16)
        monkeypatch.setenv(NATIVE_BF16_ENV, "0")
        assert not cpu_has_native_bf16()
        monkeypatch.setenv(NATIVE_BF16_ENV, "1")
        assert cpu_has_native_bf16()
        monkeypatch.delenv(NATIVE_BF16_ENV)
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="MINGPT_NATIVE_BF16 must be '0' or '1'.*'yes'"):
        cpu_has_native_bf16()


def test_auto_is_bf16_autocast_only_on_cpus_with_native_bf16(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    native = resolve_precision("auto", "cpu")
    assert (native.name, native.autocast_dtype, native.use_grad_scaler) == ("bf16", torch.bfloat16, False)
    assert "native bf16" in native.reason
    assert inference_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    emulated = resolve_precision("auto", "cpu")
    assert (emulated.name, emulated.autocast_dtype) == ("fp32", None)
    assert "without native bf16" in emulated.reason
    assert inference_dtype("auto", "cpu") is torch.float32
    assert resolve_precision("bf16", "cpu").autocast_dtype is torch.bfloat16  # asked for: still honoured
    assert resolve_precision("auto", "mps").name == "fp32"
    assert inference_dtype("fp16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="dtype must be one of .*'float8'"):
        inference_dtype("float8", "cpu")


@pytest.mark.parametrize("native", ["0", "1"])
def test_trainer_logs_its_precision_decision_and_trains_in_it(tiny_gpt, native, monkeypatch, caplog):
    monkeypatch.setenv(NATIVE_BF16_ENV, native)
    config = Trainer.get_default_config()
    config.merge_from_dict(dict(device="cpu", max_iters=1, batch_size=4))  # precision: the default, 'auto'
    data = TokenStream(np.random.default_rng(0).integers(0, 64, 200), 8)
    trainer = Trainer(config, tiny_gpt(), data)
    dtypes = []
    trainer.model.lm_head.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    with caplog.at_level(logging.INFO, logger="mingpt.trainer"):
        trainer.run()
    expected = ("bf16", "'auto' on a CPU with native bf16") if native == "1" else ("fp32", "without native bf16")
    assert any(expected[0] in r.message and expected[1] in r.message for r in caplog.records), caplog.text
    assert dtypes == [torch.bfloat16 if native == "1" else torch.float32]


# ---------------------------------------------------------------------------------------------- attention rule
def test_auto_attention_is_math_only_for_a_bf16_backward_on_cpu(tiny_gpt, monkeypatch):
    calls = []
    original = CausalSelfAttention.math_attention
    monkeypatch.setattr(CausalSelfAttention, "math_attention",
                        lambda self, *a: calls.append(1) or original(self, *a))
    model = tiny_gpt()
    idx = torch.randint(0, 64, (2, 8))

    def math_layers(grad=True, autocast=True):
        calls.clear()
        with torch.set_grad_enabled(grad), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            model(idx)
        return len(calls)

    assert math_layers() == 2  # bf16 training on CPU: the math path (faster there)
    assert math_layers(grad=False) == 0  # bf16 inference: SDPA
    assert math_layers(autocast=False) == 0  # fp32 training: SDPA
    for block in model.transformer.h:  # an explicit setting always wins
        block.attn.implementation = "sdpa"
    assert math_layers() == 0
    q = torch.zeros(1, 1, 2, 4, dtype=torch.bfloat16, requires_grad=True)
    assert use_math_attention("math", q.detach().float()) and not use_math_attention("sdpa", q)


def test_auto_attention_gives_the_same_gradients_as_both_paths(tiny_gpt):
    idx = torch.randint(0, 64, (2, 16))
    grads = {}
    for attention in ("auto", "math", "sdpa"):
        model = tiny_gpt(attention)
        with torch.autocast("cpu", torch.bfloat16):
            _, loss = model(idx, idx)
        loss.backward()
        grads[attention] = model.transformer.h[0].attn.c_attn.weight.grad
    torch.testing.assert_close(grads["auto"], grads["math"], rtol=0, atol=0)  # it *is* the math path
    torch.testing.assert_close(grads["auto"], grads["sdpa"], rtol=0.05, atol=2e-3)  # same maths, bf16 rounding


# ---------------------------------------------------------------------------------------------- bf16 generation
def test_bf16_greedy_tokens_equal_fp32_where_the_top_two_are_far_apart(tiny_gpt):
    model = tiny_gpt(weight_std=0.3).eval()
    with torch.no_grad():  # made so: a larger final LayerNorm gain scales every logit gap by 10
        model.transformer.ln_f.weight.mul_(10.0)
    prompt = torch.tensor([[1, 2, 3, 4]])
    fp32 = model.generate(prompt, 20)
    with torch.no_grad():  # the premise: at every step the best token leads the second by > 1 logit
        top2 = model(fp32[:, :-1])[0][0, 3:].topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1.0
    bf16 = model.to(torch.bfloat16).generate(prompt, 20)
    assert next(model.parameters()).dtype is torch.bfloat16
    assert torch.equal(bf16, fp32)
    assert len(set(fp32[0, 4:].tolist())) > 5  # a meaningful comparison, not one repeated token


def test_bf16_model_keeps_its_cache_in_bf16_and_samples_from_fp32_logits(tiny_gpt, monkeypatch):
    model = tiny_gpt(weight_std=0.3).eval().to(torch.bfloat16)
    cache = KVCache(model.config.n_layer, model.config.block_size)
    with torch.no_grad():
        logits = model.forward_logits(torch.tensor([[1, 2, 3]]), cache)
    assert logits.dtype is torch.bfloat16
    assert {t.dtype for t in cache.keys + cache.values} == {torch.bfloat16}
    seen = []
    original = generation.next_token
    monkeypatch.setattr(generation, "next_token",
                        lambda logits, **kw: seen.append(logits.dtype) or original(logits, **kw))
    runs = [model.generate(torch.tensor([[1, 2, 3]]), 8, do_sample=True, top_p=0.9,
                           generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert seen == [torch.float32] * 16
    assert torch.equal(runs[0], runs[1])  # seeded sampling repeats in bf16 too


@pytest.mark.parametrize("flag,dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32), ("fp16", torch.float16)])
def test_generate_cli_loads_the_model_in_the_dtype_asked_for(flag, dtype, monkeypatch, capsys):
    loaded = {}

    def fake_from_pretrained(name, **kwargs):  # stop after the load: the CLI's generation is tested elsewhere
        loaded.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(cli.GPT, "from_pretrained", fake_from_pretrained)
    assert cli.main(["--model", "x", "--dtype", flag, "--device", "cpu"]) == 1
    assert loaded["dtype"] is dtype
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    cli.main(["--model", "x", "--device", "cpu"])
    assert loaded["dtype"] is torch.float32  # auto on a CPU without native bf16
    with pytest.raises(SystemExit):
        cli.main(["--dtype", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_autocast_runs_matmuls_in_the_dtype_and_none_changes_nothing():
    a, b = torch.randn(4, 8), torch.randn(8, 2)
    with autocast("cpu", torch.bfloat16):
        assert (a @ b).dtype is torch.bfloat16
    with autocast("cpu", None):  # plain fp32: no autocast at all
        assert (a @ b).dtype is torch.float32 and not torch.is_autocast_cpu_enabled()
