"""
Helper for test_gpt2_project.py: train projects/gpt2/train.py's `build` on tiny shards and write what this
process ended with to OUT/rank{RANK}.pt. Run under torchrun (one "node" per process) or imported by the test for
the single-process references.

    python gpt2_ranks.py DATA_DIR OUT_DIR BATCH_SIZE
"""

import importlib.util
import logging
import os
import pathlib
import sys

import torch

TRAIN = pathlib.Path(__file__).resolve().parents[2] / "projects" / "gpt2" / "train.py"
TOTAL_BATCH_TOKENS = 8 * 16  # 8 windows of 16 tokens per step: 1 x 4 x 2, 2 x 2 x 2 or 1 x 1 x 8


def load_train_module():
    spec = importlib.util.spec_from_file_location("gpt2_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(data_dir: str, batch_size: int, max_iters: int = 3):
    train = load_train_module()
    config = train.get_config()
    argv = [f"--data.dir={data_dir}", f"--trainer.batch_size={batch_size}", f"--trainer.max_iters={max_iters}",
            "--model.n_layer=1", "--model.n_head=2", "--model.n_embd=16", "--model.block_size=16",
            f"--data.total_batch_tokens={TOTAL_BATCH_TOKENS}", "--trainer.eval_interval=0",
            "--trainer.warmup_iters=0", "--trainer.learning_rate=1e-2", "--system.max_seconds=0"]
    config.merge_from_args(argv)
    train.apply_preset(config, argv)
    config.system.work_dir = None  # no checkpoints
    trainer = train.build(config)
    losses = []
    trainer.add_callback("on_batch_end", lambda tr: losses.append(tr.loss.item()))
    return trainer, losses


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    data_dir, out, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trainer, losses = build(data_dir, batch_size)
    trainer.run()
    torch.save({"model": trainer.model.state_dict(), "losses": losses, "world_size": trainer.world_size,
                "grad_accum_steps": trainer.config.grad_accum_steps},
               os.path.join(out, f"rank{trainer.rank}.pt"))
