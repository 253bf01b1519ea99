"""
LoRA against full fine-tuning, side by side: trainable parameters, AdamW state (its two moments per trainable
number), the seconds per step and the validation loss reached in the same number of steps.

The setup: a character-level GPT is pretrained on the first 90% of Tiny Shakespeare; two copies of it are then
fine-tuned for the same steps, with the same batches, on the last 10% (a different slice of the plays): one fully,
one with LoRA adapters (r, alpha on c_attn, c_proj, c_fc; everything else frozen). Validation is the last 10%'s held
out tail, so the numbers say how much of full fine-tuning's gain the adapters recover, at what cost.

    python bench/lora_vs_full.py [--pretrain-steps 300] [--finetune-steps 150] [--r 8] [--alpha 16]
        [--lora-lr 3e-3] [--full-lr 3e-4] [--n-layer 4] [--n-embd 128] [--seed 0]

Reads input.txt from $MINGPT_DATA_DIR/tinyshakespeare (no network).
"""

import argparse
import copy
import os
import pathlib
import time

import numpy as np
import torch

from mingpt.data import CharVocab, TokenStream
from mingpt.model import GPT
from mingpt.posttrain.lora import apply_lora
from mingpt.trainer import Trainer
from mingpt.utils import set_seed


def train(model, stream, steps, lr, seed):
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=steps, batch_size=32, learning_rate=lr, precision="fp32",
                           seed=seed))
    trainer = Trainer(C, model, stream)
    trainer.run()
    return trainer


@torch.no_grad()
def val_loss(model, stream, batches=20):
    model.eval()
    starts = np.linspace(0, len(stream) - 1, batches * 32).astype(int).reshape(batches, 32)
    return float(np.mean([model(*stream.get_batch(s))[1].item() for s in starts]))


def optimizer_state_bytes(optimizer):
    return sum(t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values()
               if torch.is_tensor(t) and t.dim() > 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--lora-lr", type=float, default=3e-3)
    parser.add_argument("--full-lr", type=float, default=3e-4)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    text = (pathlib.Path(os.environ.get("MINGPT_DATA_DIR", "data")) / "tinyshakespeare" / "input.txt").read_text()
    vocab = CharVocab.from_text(text)
    ids = np.array(vocab.encode(text))
    split, tail = int(0.9 * len(ids)), int(0.98 * len(ids))
    block = 64
    pretrain, finetune, val = (TokenStream(ids[a:b], block) for a, b in ((0, split), (split, tail), (tail, None)))

    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=args.n_layer, n_head=4, n_embd=args.n_embd,
                                vocab_size=len(vocab), block_size=block, embd_pdrop=0.0, resid_pdrop=0.0,
                                attn_pdrop=0.0))
    set_seed(args.seed)
    base = GPT(config)
    train(base, pretrain, args.pretrain_steps, 1e-3, args.seed)
    print(f"pretrained {args.pretrain_steps} steps: val loss {val_loss(base, val):.4f}")

    rows = []
    for name in ("full", "lora"):
        model = copy.deepcopy(base)
        if name == "lora":
            apply_lora(model, ("c_attn", "c_proj", "c_fc"), r=args.r, alpha=args.alpha)
        t0 = time.perf_counter()
        trainer = train(model, finetune, args.finetune_steps, args.lora_lr if name == "lora" else args.full_lr,
                        args.seed)
        seconds = (time.perf_counter() - t0) / args.finetune_steps
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append((name, trainable, optimizer_state_bytes(trainer.optimizer), seconds, val_loss(model, val)))

    print(f"{'':6} {'trainable':>10} {'AdamW state':>12} {'s/step':>8} {'val loss':>9}   "
          f"({args.finetune_steps} steps; lora r={args.r} alpha={args.alpha:g}; lr full {args.full_lr:g}, "
          f"lora {args.lora_lr:g}; torch threads {torch.get_num_threads()})")
    for name, trainable, state, seconds, loss in rows:
        print(f"{name:6} {trainable:>10,} {state / 2**20:>9.2f} MiB {seconds:>8.3f} {loss:>9.4f}")


if __name__ == "__main__":
    main()
