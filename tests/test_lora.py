"""Tests for mingpt/posttrain/lora.py: the layer, merge/unmerge, what trains, PEFT's format, and the Trainer."""

from __future__ import annotations

import numpy as np
import peft
import pytest
import safetensors.torch
import torch
import transformers

from mingpt.data import TokenStream
from mingpt.io.pretrained import config_from_hf, load_hf_state_dict
from mingpt.model import GPT
from mingpt.posttrain.lora import (LoRALinear, apply_lora, load_lora_adapter, lora_state_dict, merge_lora,
                                   save_adapter_on_checkpoint, save_lora_adapter, unmerge_lora)
from mingpt.trainer import Trainer

TARGETS = ("c_attn", "c_proj", "c_fc")


def trained_looking(model, seed=1):
    """Give every lora_B random values: fresh adapters are zero, so a wrong scale or transpose would hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


@pytest.fixture
def pair():
    """A transformers GPT-2 and a mingpt GPT with the same weights, both in eval mode."""
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=16)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())
    return hf, model.eval()


def test_fresh_adapters_leave_the_model_unchanged_and_scale_is_alpha_over_r(tiny_gpt):
    model = tiny_gpt(dropout=0.0).eval()
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        before = model(idx)[0]
        apply_lora(model, TARGETS, r=4, alpha=8)
        torch.testing.assert_close(model(idx)[0], before, atol=0, rtol=0)  # B = 0: exactly the base model
    layer = model.transformer.h[0].attn.c_attn
    assert isinstance(layer, LoRALinear) and layer.scaling == 2.0
    assert torch.count_nonzero(layer.lora_A.weight) > 0  # A random, else neither factor ever gets a gradient
    x = torch.randn(3, 32)
    trained_looking(model)
    expected = layer.base_layer(x) + 2.0 * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    torch.testing.assert_close(layer(x), expected)


def test_only_adapters_get_gradients_and_the_count_is_r_times_in_plus_out(tiny_gpt):
    model = tiny_gpt()
    full = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wrapped = apply_lora(model, ("c_attn",), r=4, alpha=8)
    assert wrapped == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(trainable) == sorted(lora_state_dict(model))
    assert sum(p.numel() for p in trainable.values()) == 2 * 4 * (32 + 96)  # per layer r * (in + out)
    assert sum(p.numel() for p in trainable.values()) < full / 20  # 1024 of 27584 in this tiny model
    _, loss = model(torch.randint(0, 50, (2, 16)), torch.randint(0, 50, (2, 16)))
    loss.backward()
    got_grad = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    assert got_grad == sorted(trainable)
    optimizer = model.configure_optimizers(Trainer.get_default_config())  # the Trainer's optimizer: adapters only
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in trainable.values()}


def test_merge_gives_the_unmerged_outputs_and_unmerge_restores_the_base(tiny_gpt):
    model = tiny_gpt(dropout=0.0).eval()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, TARGETS, r=4, alpha=8)
    trained_looking(model)
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        unmerged = model(idx)[0]
        merge_lora(model)
        torch.testing.assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=0)
        assert not torch.equal(model.transformer.h[0].attn.c_attn.weight, base["transformer.h.0.attn.c_attn.weight"])
        unmerge_lora(model)
        torch.testing.assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=0)
    restored = model.transformer.h[0].mlp.c_fc.base_layer.weight
    torch.testing.assert_close(restored, base["transformer.h.0.mlp.c_fc.weight"], atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="not merged"):
        unmerge_lora(model)


def test_peft_loads_our_adapter_onto_transformers_with_the_same_logits(pair, tmp_path):
    hf, model = pair
    apply_lora(model, TARGETS, r=4, alpha=8)
    trained_looking(model)
    save_lora_adapter(model, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path).eval()
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        ours, theirs = model(idx)[0], peft_model(idx).logits
        base = peft_model.get_base_model()
        with peft_model.disable_adapter():
            plain = base(idx).logits
    assert (ours - plain).abs().max() > 1e-2  # the adapter changes the logits, so the match below means something
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_we_load_peft_s_adapter_with_the_same_logits(pair, tmp_path):
    hf, model = pair
    config = peft.LoraConfig(r=2, lora_alpha=6, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)
    peft_model = peft.get_peft_model(hf, config)
    trained_looking(peft_model, seed=3)
    peft_model.save_pretrained(tmp_path)
    load_lora_adapter(model, tmp_path)  # wraps the layers the config names, then copies the tensors
    assert model.transformer.h[1].mlp.c_fc.scaling == 3.0
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], peft_model.eval()(idx).logits, atol=1e-5, rtol=0)


def test_bad_input_is_named(tiny_gpt, tmp_path):
    with pytest.raises(ValueError, match="c_atn.*c_attn"):
        apply_lora(tiny_gpt(), ("c_atn",))
    with pytest.raises(ValueError, match="rank r must be a positive int, got 0"):
        apply_lora(tiny_gpt(), ("c_attn",), r=0)
    with pytest.raises(ValueError, match="lm_head's weight is tied to .*transformer.wte.weight"):
        apply_lora(tiny_gpt(), ("lm_head",))
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_lora_adapter(tiny_gpt(), tmp_path)


def test_lora_training_through_the_trainer_resumes_exactly_and_keeps_the_base_frozen(tiny_gpt, tmp_path):
    def run(max_iters, resume=None, stop_after=None, seed=0):
        model = tiny_gpt(seed=seed, vocab_size=11, block_size=8)
        apply_lora(model, ("c_attn", "c_fc"), r=2, alpha=4, dropout=0.1)  # dropout on: the RNG must resume too
        C = Trainer.get_default_config()
        C.merge_from_dict(dict(device="cpu", max_iters=max_iters, batch_size=4, learning_rate=1e-2,
                               precision="fp32", work_dir=str(tmp_path), resume=resume))
        losses = []
        trainer = Trainer(C, model, TokenStream(np.random.default_rng(0).integers(0, 11, 400), 8))

        def record(tr):
            losses.append(tr.loss.item())
            if stop_after is not None and tr.iter_num == stop_after - 1:
                raise KeyboardInterrupt

        trainer.add_callback("on_batch_end", record)
        trainer.run()
        return model, losses

    straight, losses_a = run(5)
    base = tiny_gpt(seed=0, vocab_size=11, block_size=8).state_dict()
    frozen = [k for k in base if not torch.equal(straight.state_dict()[k.replace("c_attn.", "c_attn.base_layer.")
                                                                          .replace("c_fc.", "c_fc.base_layer.")],
                                                  base[k])]
    assert frozen == []  # five steps moved no base weight
    assert losses_a[-1] < losses_a[0]
    _, losses_b = run(5, stop_after=2)
    resumed, losses_c = run(5, resume=str(tmp_path / "last.pt"), seed=123)
    assert losses_b + losses_c == losses_a
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_trainer_callback_writes_the_adapter_alone_beside_each_checkpoint(tiny_gpt, tmp_path):
    model = tiny_gpt(seed=0, vocab_size=11, block_size=8, dropout=0.0)
    apply_lora(model, ("c_attn", "c_fc"), r=2, alpha=4)
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=4, batch_size=4, learning_rate=1e-2, precision="fp32",
                           work_dir=str(tmp_path), checkpoint_interval=2))
    trainer = Trainer(C, model, TokenStream(np.random.default_rng(0).integers(0, 11, 400), 8))
    trainer.add_callback("on_checkpoint", save_adapter_on_checkpoint)
    trainer.run()
    adapter = tmp_path / "last_adapter"
    tensors = safetensors.torch.load_file(adapter / "adapter_model.safetensors")
    assert len(tensors) == 2 * 2 * 2 and all(".lora_A." in k or ".lora_B." in k for k in tensors)  # (c_attn, c_fc) x 2 blocks x (A, B)
    # the adapter on a fresh copy of the base is the trained model (the checkpoint's optimizer holds adapters only)
    fresh = tiny_gpt(seed=0, vocab_size=11, block_size=8, dropout=0.0)
    load_lora_adapter(fresh, adapter)
    x = torch.randint(0, 11, (2, 8))
    assert torch.equal(fresh.eval()(x)[0], model.eval()(x)[0])
    assert len(torch.load(tmp_path / "last.pt", weights_only=True)["optimizer"]["state"]) == 8
