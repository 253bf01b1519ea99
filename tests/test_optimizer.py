"""
The one weight-decay rule (mingpt/training/optimizer.py), used by GPT.configure_optimizers and by the Trainer for any
model without one; and the one training step, whose disabled GradScaler path is the plain recipe, bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from mingpt.data import TokenStream
from mingpt.trainer import Trainer
from mingpt.training.checkpoint import restore_checkpoint, save_checkpoint
from mingpt.training.optimizer import MuonWithAdamW, adamw, muon_split, param_groups
from mingpt.training.schedule import get_lr

VOCAB, BLOCK = 11, 8


def by_name(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return [sorted(names[id(p)] for p in g["params"]) for g in groups]


def minGPT_rule(model):
    """The original minGPT's configure_optimizers, by names: Linear weights decay; biases, LayerNorm and Embedding
    weights do not (a tied matrix counted under its first name, as named_parameters lists it)."""
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            fpn = f"{mn}.{pn}" if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    listed = {n for n, _ in model.named_parameters()}
    return sorted(decay & listed), sorted((no_decay - decay) & listed)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_gpt_groups_are_the_original_minGPT_rule_and_configure_optimizers_uses_them(tiny_gpt, tie_weights):
    model = tiny_gpt(tie_weights=tie_weights)
    groups = param_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    decayed, not_decayed = by_name(model, groups)
    names = {id(p): n for n, p in model.named_parameters()}
    tied = names[id(model.lm_head.weight)]
    if tie_weights:  # one matrix, both the embedding and lm_head's weight: a matmul weight, decayed
        assert tied == "transformer.wte.weight" and tied in decayed
    else:
        assert (decayed, not_decayed) == minGPT_rule(model)
    assert "transformer.wpe.weight" in not_decayed and "transformer.ln_f.weight" in not_decayed
    assert all(n.endswith("bias") for n in not_decayed if ".attn." in n or ".mlp." in n)
    assert sorted(decayed + not_decayed) == sorted(names.values())  # each parameter exactly once
    train_config = Trainer.get_default_config()
    assert by_name(model, model.configure_optimizers(train_config).param_groups) == [decayed, not_decayed]


def test_a_plain_module_gets_the_same_rule_from_the_trainer_and_frozen_parameters_are_left_out():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 8)
            self.norm = nn.LayerNorm(8)
            self.gain = nn.Parameter(torch.ones(8))  # a home-made 1-D gain: not decayed
            self.hidden = nn.Linear(8, 8)
            self.frozen = nn.Linear(8, 8)
            self.frozen.requires_grad_(False)
            self.head = nn.Linear(8, VOCAB, bias=False)

        def forward(self, x, y):
            logits = self.head(self.hidden(self.norm(self.emb(x)) * self.gain) + self.frozen(self.emb(x)))
            return logits, nn.functional.cross_entropy(logits.view(-1, VOCAB), y.reshape(-1))

    model = Net()
    expected = [["head.weight", "hidden.weight"], ["emb.weight", "gain", "hidden.bias", "norm.bias", "norm.weight"]]
    assert by_name(model, param_groups(model, 0.1)) == expected
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=2, batch_size=4, precision="fp32"))
    t = Trainer(C, model, TokenStream(np.random.default_rng(0).integers(0, VOCAB, 200), BLOCK))
    assert by_name(model, t.optimizer.param_groups) == expected
    assert [g["weight_decay"] for g in t.optimizer.param_groups] == [0.1, 0.0]
    t.run()


def test_multihead_attentions_input_projections_are_decayed_matmul_weights_and_its_biases_are_not():
    # nn.MultiheadAttention keeps its q/k/v projections as raw parameters, not nn.Linear: one packed in_proj_weight,
    # or q/k/v_proj_weight when the key and value widths differ. They are matmul weights all the same.
    packed, separate = nn.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    assert by_name(packed, param_groups(packed, 0.1)) == [["in_proj_weight", "out_proj.weight"],
                                                           ["in_proj_bias", "out_proj.bias"]]
    assert by_name(separate, param_groups(separate, 0.1)) == [
        ["k_proj_weight", "out_proj.weight", "q_proj_weight", "v_proj_weight"], ["in_proj_bias", "out_proj.bias"]]


def test_a_parameter_the_rule_cannot_place_is_an_error_naming_it():
    class RawMatmul(nn.Module):
        def __init__(self):
            super().__init__()
            self.w_attn = nn.Parameter(torch.randn(8, 24))

    with pytest.raises(ValueError, match=r"'w_attn' \(shape \(8, 24\)\).*nn.Linear.*configure_optimizers"):
        param_groups(RawMatmul(), 0.1)
    declared = RawMatmul()  # its author says the raw matrix is a matmul weight: decayed as an nn.Linear's
    groups = param_groups(declared, 0.1, matmuls=[declared.w_attn])
    assert groups[0]["params"] == [declared.w_attn] and groups[1]["params"] == []
    with pytest.raises(ValueError, match="train_config.betas"):
        adamw(nn.Linear(2, 2), type("T", (), dict(learning_rate=1e-3, weight_decay=0.1))())


def test_with_the_scaler_disabled_a_step_is_the_plain_recipe_bit_for_bit(tiny_gpt):
    """fp32 (and bf16) run through the same step as fp16 with GradScaler(enabled=False): it must change nothing."""
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=4, batch_size=4, grad_accum_steps=2, learning_rate=1e-2,
                           precision="fp32", grad_norm_clip=0.5, lr_schedule="cosine", warmup_iters=1))
    model = tiny_gpt(dropout=0.0, n_head=2, vocab_size=VOCAB, block_size=BLOCK)
    reference = copy.deepcopy(model)
    data = TokenStream(np.random.default_rng(0).integers(0, VOCAB, 400), BLOCK)
    t = Trainer(C, model, data)
    assert not t.scaler.is_enabled()
    batches = t._batches(data, stream=0, start=0, accum=C.grad_accum_steps)  # the same batches, by hand
    t.run()
    optimizer = reference.configure_optimizers(t.config)
    for step in range(C.max_iters):  # the recipe without any scaler
        for group in optimizer.param_groups:
            group["lr"] = get_lr(step, t.config)
        for _ in range(C.grad_accum_steps):
            x, y = next(batches)
            (reference(x, y)[1] / C.grad_accum_steps).backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), C.grad_norm_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    batches.close()
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_keeps_an_enabled_scalers_state_and_none_for_a_disabled_one(tmp_path):
    model = nn.Linear(2, 2)
    enabled = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=True)
    save_checkpoint(tmp_path / "fp16.pt", model=model, scaler=enabled)
    save_checkpoint(tmp_path / "fp32.pt", model=model, scaler=torch.amp.GradScaler("cpu", enabled=False))
    fp16, fp32 = (torch.load(tmp_path / f, weights_only=True) for f in ("fp16.pt", "fp32.pt"))
    assert fp16["scaler"]["scale"] == 1024.0 and fp32["scaler"] is None
    resumed = torch.amp.GradScaler("cpu", enabled=True)
    restore_checkpoint(fp16, model, scaler=resumed)
    assert resumed.state_dict()["scale"] == 1024.0
    restore_checkpoint(fp32, model, scaler=resumed)  # an fp32 run resumed in fp16: the scaler starts fresh
    assert resumed.state_dict()["scale"] == 1024.0


# ---------------------------------------------------------------------------------------------- Muon with AdamW
HIDDEN = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def muon_cfg(**overrides):
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=3, batch_size=4, learning_rate=1e-3, precision="fp32",
                           optimizer="muon", muon_learning_rate=0.02))
    C.merge_from_dict(overrides)
    return C


@pytest.mark.parametrize("tie_weights", [True, False])
def test_muon_takes_exactly_the_hidden_matrices_and_adamw_the_rest(tiny_gpt, tie_weights):
    model = tiny_gpt(tie_weights=tie_weights, n_layer=2)
    t = Trainer(muon_cfg(), model, TokenStream(np.random.default_rng(0).integers(0, 50, 200), BLOCK))
    assert isinstance(t.optimizer, MuonWithAdamW) and isinstance(t.optimizer.muon, torch.optim.Muon)
    (muon,) = by_name(model, t.optimizer.muon.param_groups)
    decayed, not_decayed = by_name(model, t.optimizer.adamw.param_groups)
    assert muon == sorted(f"transformer.h.{i}.{n}" for i in range(2) for n in HIDDEN)
    head = "transformer.wte.weight" if tie_weights else "lm_head.weight"  # tied: one matrix, the embedding's name
    assert decayed == [head]  # the head is a matmul weight (decayed by the one rule) but never Muon's
    assert "transformer.wte.weight" in decayed + not_decayed and "transformer.wpe.weight" in not_decayed
    assert all(n.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")) for n in not_decayed
               if n not in ("transformer.wte.weight", "transformer.wpe.weight"))
    assert sorted(muon + decayed + not_decayed) == sorted(n for n, _ in model.named_parameters())
    assert [g["weight_decay"] for g in t.optimizer.param_groups] == [0.1, 0.0, 0.1]
    t.run()  # the schedule's lr reaches each group, times its lr_scale: Muon's own peak rate
    assert [g["lr"] for g in t.optimizer.param_groups] == pytest.approx([1e-3, 1e-3, 0.02])


def test_bad_optimizer_settings_and_models_muon_cannot_split_are_errors_naming_them(tiny_gpt):
    data = TokenStream(np.random.default_rng(0).integers(0, 50, 200), BLOCK)
    with pytest.raises(ValueError, match=r"trainer.optimizer must be one of \['adamw', 'muon'\], got 'sgd'"):
        Trainer.check_config(muon_cfg(optimizer="sgd"))  # found before anything is built
    with pytest.raises(ValueError, match=r"trainer.optimizer must be one of \['adamw', 'muon'\], got 'sgd'"):
        tiny_gpt().configure_optimizers(type("T", (), dict(optimizer="sgd"))())
    with pytest.raises(ValueError, match=r"trainer.muon_learning_rate must be a positive number.*got -0.1"):
        Trainer(muon_cfg(muon_learning_rate=-0.1), tiny_gpt(), data)
    with pytest.raises(ValueError, match=r"model.lm_head.*got NoneType.*optimizer='adamw'"):
        muon_split(nn.Sequential(nn.Linear(4, 4)))
    model = tiny_gpt()
    adamw_state = model.configure_optimizers(Trainer.get_default_config()).state_dict()
    with pytest.raises(ValueError, match=r"keys \['adamw', 'muon'\].*\['param_groups', 'state'\]"):
        model.configure_optimizers(muon_cfg()).load_state_dict(adamw_state)


def test_a_muon_run_stopped_and_resumed_is_the_uninterrupted_run_bit_for_bit(tiny_gpt, tmp_path):
    settings = dict(max_iters=6, lr_schedule="cosine", warmup_iters=2, grad_accum_steps=2, work_dir=str(tmp_path))
    data = lambda: TokenStream(np.random.default_rng(0).integers(0, 50, 400), BLOCK)  # noqa: E731
    straight, history_a = tiny_gpt(), []
    t = Trainer(muon_cfg(**settings), straight, data())
    t.add_callback("on_batch_end", lambda tr: history_a.append(tr.loss.item()))
    t.run()

    history_b = []

    def stop_after_3(tr):
        history_b.append(tr.loss.item())
        if tr.iter_num == 2:
            raise KeyboardInterrupt

    first = Trainer(muon_cfg(**settings), tiny_gpt(), data())
    first.add_callback("on_batch_end", stop_after_3)
    first.run()
    assert first.interrupted
    resumed_model = tiny_gpt(seed=123)  # everything must come from the checkpoint, Muon's momentum too
    second = Trainer(muon_cfg(**settings, resume=str(tmp_path / "last.pt")), resumed_model, data())
    assert second.iter_num == 3 and second.optimizer.muon.state  # the momentum buffers were restored
    second.add_callback("on_batch_end", lambda tr: history_b.append(tr.loss.item()))
    second.run()
    assert history_a == history_b
    for (name, a), b in zip(straight.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_muon_learns_a_tiny_task(tiny_gpt):
    """Copy a fixed cycle of tokens: Muon (with AdamW for the rest) drives the loss well below chance."""
    cycle = np.tile(np.random.default_rng(1).permutation(VOCAB), 60)
    model = tiny_gpt(dropout=0.0, n_head=2, vocab_size=VOCAB, block_size=BLOCK)
    t = Trainer(muon_cfg(max_iters=40, batch_size=8, learning_rate=3e-3), model, TokenStream(cycle, BLOCK))
    losses = []
    t.add_callback("on_batch_end", lambda tr: losses.append(tr.loss.item()))
    t.run()
    assert losses[0] > 0.8 * np.log(VOCAB) and np.mean(losses[-5:]) < 0.3, (losses[0], losses[-5:])
