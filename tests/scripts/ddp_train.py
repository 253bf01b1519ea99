"""
Helper for test_distributed.py, run as ``python -m torch.distributed.run --nproc_per_node=2 ddp_train.py OUT``.

Nothing in it is DDP-specific: the Trainer notices torchrun's environment by itself. The script only counts
gradient all-reduces (with a DDP communication hook) and checkpoints, and writes what each rank ended with to
OUT/rank{R}.pt. `build` is also imported by the test to train the single-process reference.
"""

import logging
import os
import sys

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.callbacks import ProgressLogger
from mingpt.utils import set_seed

VOCAB, BLOCK = 13, 8


class Windows(Dataset):
    """A deterministic map-style data set: every process builds the same one."""

    def __init__(self):
        self.data = torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, 300))

    def __len__(self):
        return len(self.data) - BLOCK

    def __getitem__(self, i):
        return self.data[i : i + BLOCK], self.data[i + 1 : i + BLOCK + 1]


def build(batch_size: int, grad_accum_steps: int, max_iters: int = 4, work_dir=None) -> Trainer:
    set_seed(0)
    C = GPT.get_default_config()
    C.merge_from_dict(dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, block_size=BLOCK,
                           embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    config = Trainer.get_default_config()
    config.merge_from_dict(dict(device="cpu", max_iters=max_iters, batch_size=batch_size, learning_rate=1e-2,
                                grad_accum_steps=grad_accum_steps, work_dir=work_dir,
                                precision="fp32"))  # compared to 1e-5 below: no bf16 autocast, even where native
    return Trainer(config, GPT(C), Windows())


if __name__ == "__main__":
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    logging.basicConfig(level=logging.INFO, format="rank" + os.environ["RANK"] + " %(name)s: %(message)s")
    out = sys.argv[1]
    trainer = build(batch_size=4, grad_accum_steps=2, work_dir=os.path.join(out, "ckpt"))
    counts = {"allreduce": 0, "checkpoints": 0}

    def counting_allreduce(state, bucket):
        counts["allreduce"] += 1
        return default_hooks.allreduce_hook(None, bucket)

    trainer.add_callback("on_train_start", lambda tr: tr._train_model.register_comm_hook(None, counting_allreduce))
    trainer.add_callback("on_checkpoint", lambda tr: counts.__setitem__("checkpoints", counts["checkpoints"] + 1))
    trainer.add_callback(ProgressLogger(interval=1))
    trainer.run()
    torch.save({"model": trainer.model.state_dict(), "world_size": trainer.world_size, **counts},
               os.path.join(out, f"rank{trainer.rank}.pt"))
