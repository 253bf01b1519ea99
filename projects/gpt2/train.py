"""
Train GPT-2 from scratch on token shards: the GPT-2 124M recipe on GPUs, and the same code small on a CPU.

The one idea: a "reproduce GPT-2" run is the ordinary Trainer plus three decisions. (1) The batch is fixed in
*tokens* (524,288 = 2**19 for 124M), and each machine reaches it by gradient accumulation:
``grad_accum_steps = total_batch_tokens / (batch_size * block_size * world_size)``, so 1 GPU and 8 GPUs train on
the same batches. (2) The data are memory-mapped uint16 shards (`mingpt.data.token_shards`), read in a seeded order
whose position is saved in every checkpoint. (3) Speed comes from bf16 autocast, fused AdamW, torch.compile and
flash attention (scaled_dot_product_attention), all of which the Trainer and the model already offer.

    python projects/gpt2/prepare.py --tiny-shakespeare --out=data/shakespeare
    python projects/gpt2/train.py --data.dir=data/shakespeare                     # cpu-tiny: ~2 minutes
    python projects/gpt2/train.py --system.preset=gpt2-124m --data.dir=data/fineweb10B   # 1 GPU
    torchrun --standalone --nproc_per_node=8 projects/gpt2/train.py --system.preset=gpt2-124m --data.dir=...

Outputs in system.work_dir: config.json, metrics.jsonl (one JSON line per logged step and evaluation),
last.pt / best.pt (checkpoints with the data position; ``--trainer.resume=auto`` continues exactly).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import torch

from mingpt.atomic import atomic_path
from mingpt.bpe import BPETokenizer
from mingpt.cfgnode import CfgNode
from mingpt.data.hellaswag import HellaSwag, fetch_hellaswag, load_examples
from mingpt.data.token_shards import TokenShards, read_manifest
from mingpt.io.data_files import fetch_gpt2_vocab
from mingpt.io.download import DownloadError
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.callbacks import ProgressLogger, TimeLimit
from mingpt.utils import set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.gpt2")

# Each preset is applied over the defaults in get_config(), then the command line wins over both.
PRESETS = {
    # GPT-2 124M as in the "reproduce GPT-2" lecture code: 10B tokens = 19,073 steps of 2**19 tokens, warm-up for
    # 375M tokens (715 steps), cosine to 10 % of 6e-4. The vocabulary is padded from 50,257 to 50,304 (a multiple
    # of 128): the extra logits are never targets, and the lm_head matmul runs on faster tensor-core tile sizes.
    "gpt2-124m": dict(
        model=dict(model_type="gpt2", vocab_size=50304, block_size=1024, embd_pdrop=0.0, resid_pdrop=0.0,
                   attn_pdrop=0.0, attention="sdpa"),
        data=dict(total_batch_tokens=524_288, order="random"),
        trainer=dict(batch_size=64, learning_rate=6e-4, min_lr=6e-5, lr_schedule="cosine", warmup_iters=715,
                     max_iters=19_073, weight_decay=0.1, betas=(0.9, 0.95), grad_norm_clip=1.0, precision="bf16",
                     compile=True, eval_interval=250, eval_iters=20, checkpoint_interval=1000, device="auto"),
        system=dict(log_interval=10, max_seconds=0.0),
        eval=dict(hellaswag_interval=250),  # as the reference run; needs the jsonl (downloaded once) and the vocab
    ),
    # The same code on a CPU: GPT-2's tokenizer and (padded) vocabulary, a 2-layer model, 1,024-token batches made
    # of 2 micro-batches, 100 steps on Tiny Shakespeare. With a 50,304-token vocabulary the unembedding is most of
    # the work (6 x 64 x 50,304 FLOPs per token), so the model is narrow and the batch small.
    "cpu-tiny": dict(
        model=dict(model_type=None, n_layer=2, n_head=2, n_embd=64, vocab_size=50304, block_size=64,
                   embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, attention="sdpa"),
        data=dict(total_batch_tokens=1024, order="random"),
        trainer=dict(batch_size=8, learning_rate=3e-3, min_lr=3e-4, lr_schedule="cosine", warmup_iters=10,
                     max_iters=100, weight_decay=0.1, betas=(0.9, 0.95), grad_norm_clip=1.0, precision="fp32",
                     compile=False, eval_interval=25, eval_iters=4, checkpoint_interval=0, device="cpu"),
        system=dict(log_interval=10, max_seconds=150.0),
    ),
}


def get_config() -> CfgNode:
    C = CfgNode()
    C.system = CfgNode()
    C.system.preset = "cpu-tiny"  # one of PRESETS
    C.system.seed = 1337
    C.system.work_dir = "./out/gpt2"
    C.system.log_interval = 10  # log (and append to metrics.jsonl) every this many steps
    C.system.max_seconds = 0.0  # stop after this much wall time (0 = no limit); final evaluation still runs

    C.data = CfgNode()
    C.data.dir = None  # a directory written by prepare.py (manifest.json + shards; shard 0 is validation)
    C.data.order = "random"  # 'random' (a seeded permutation per epoch) or 'sequential' (file order)
    C.data.total_batch_tokens = 4096  # tokens per optimizer step, over all processes and micro-steps

    C.eval = CfgNode()
    C.eval.hellaswag_interval = 0  # HellaSwag every this many steps and at the end (0 = never)
    C.eval.hellaswag_jsonl = None  # a local copy of the validation jsonl; None = download the official one once
    C.eval.hellaswag_limit = 0  # score only the first this many examples (0 = all 10,042)
    C.eval.vocab_dir = None  # GPT-2's encoder.json + vocab.bpe for HellaSwag's tokenizer; None = download once

    C.model = GPT.get_default_config()
    C.trainer = Trainer.get_default_config()
    return C


def apply_preset(config: CfgNode, argv: list[str]) -> None:
    """Preset values over the defaults, then the command line again so that the user's values win."""
    if config.system.preset not in PRESETS:
        raise ValueError(f"system.preset must be one of {', '.join(PRESETS)}, got {config.system.preset!r}")
    config.merge_from_dict(PRESETS[config.system.preset])
    config.merge_from_args(argv)


def grad_accum_steps(total_batch_tokens: int, batch_size: int, block_size: int, world_size: int) -> int:
    """Micro-steps per optimizer step so that every process count trains on the same total batch."""
    per_micro_step = batch_size * block_size * world_size  # tokens all processes see in one micro-step
    if total_batch_tokens <= 0 or total_batch_tokens % per_micro_step:
        raise ValueError(
            f"data.total_batch_tokens={total_batch_tokens} is not a positive multiple of batch_size x block_size x "
            f"world_size = {batch_size} x {block_size} x {world_size} = {per_micro_step}; change the micro-batch "
            "(--trainer.batch_size) or the number of processes so that it divides the total batch"
        )
    return total_batch_tokens // per_micro_step


def load_data(config: CfgNode) -> tuple[TokenShards, TokenShards]:
    """The train and validation shards of data.dir, checked against the model's vocabulary."""
    if not config.data.dir:
        raise ValueError("data.dir is not set: prepare shards first (projects/gpt2/prepare.py --out=DIR) and pass "
                         "--data.dir=DIR")
    manifest = read_manifest(config.data.dir)
    vocab = manifest.get("vocab_size")
    if vocab is not None and vocab > config.model.vocab_size:
        raise ValueError(f"the shards hold ids up to {vocab - 1} (tokenizer vocab {vocab}) but model.vocab_size is "
                         f"{config.model.vocab_size}; raise model.vocab_size to at least {vocab}")
    T = config.model.block_size
    train = TokenShards.from_directory(config.data.dir, "train", T, order=config.data.order)
    val = TokenShards.from_directory(config.data.dir, "val", T, order="sequential")
    return train, val


class MetricsLog:
    """Append one JSON line per logged step and per evaluation to work_dir/metrics.jsonl (rank 0 only)."""

    def __init__(self, path: str, interval: int):
        self.path, self.interval = path, interval

    def _write(self, trainer, **fields) -> None:
        if trainer.is_main_process:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": trainer.steps_done, **fields}) + "\n")

    def on_batch_end(self, trainer) -> None:
        if trainer.steps_done % self.interval == 0 or trainer.steps_done == 1:
            self._write(trainer, loss=round(trainer.loss.item(), 5), lr=trainer.lr,
                        tokens_per_sec=round(trainer.tokens_per_sec), step_seconds=round(trainer.iter_dt, 4))

    def on_eval_end(self, trainer) -> None:
        self._write(trainer, val_loss=round(trainer.val_loss, 5))


def hellaswag_callback(config: CfgNode) -> HellaSwag:
    """Periodic HellaSwag during training: the data and tokenizer are loaded now, so a missing file fails fast."""
    E = config.eval
    if E.vocab_dir:
        tokenizer = BPETokenizer.from_files(os.path.join(E.vocab_dir, "encoder.json"),
                                            os.path.join(E.vocab_dir, "vocab.bpe"))
    else:
        tokenizer = BPETokenizer.from_files(*fetch_gpt2_vocab())
    examples = load_examples(E.hellaswag_jsonl or fetch_hellaswag(), E.hellaswag_limit or None)
    return HellaSwag(examples, tokenizer.encode_ordinary, E.hellaswag_interval)


def build(config: CfgNode, callbacks: tuple = ()) -> Trainer:
    """Model, data and Trainer for a resolved config (also used by the tests)."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if torch.cuda.is_available():  # TF32 for the float32 matmuls autocast leaves; CPU math stays exact float32
        torch.set_float32_matmul_precision("high")
    train, val = load_data(config)
    config.trainer.grad_accum_steps = grad_accum_steps(config.data.total_batch_tokens, config.trainer.batch_size,
                                                       config.model.block_size, world_size)
    config.trainer.seed = config.system.seed
    config.trainer.work_dir = config.system.work_dir
    if config.eval.hellaswag_interval:
        callbacks = (*callbacks, hellaswag_callback(config))
    set_seed(config.system.seed)  # the same initial weights on every rank
    model = GPT(config.model)
    return Trainer(config.trainer, model, train, val, callbacks=callbacks)


def main(argv: list[str]) -> None:
    config = get_config()
    try:
        config.merge_from_args(argv)
        apply_preset(config, argv)
        if int(os.environ.get("RANK", 0)) == 0:
            setup_logging(config)
        else:
            logging.basicConfig(level=logging.WARNING)
        work_dir = config.system.work_dir
        os.makedirs(work_dir, exist_ok=True)
        trainer = build(config, callbacks=(ProgressLogger(interval=config.system.log_interval),
                                           MetricsLog(os.path.join(work_dir, "metrics.jsonl"),
                                                      config.system.log_interval),
                                           TimeLimit(config.system.max_seconds)))
    except (KeyError, TypeError, ValueError, FileNotFoundError, DownloadError) as e:
        print(f"gpt2/train.py: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        sys.exit(2)
    C = config.trainer
    if trainer.is_main_process:
        tokens = C.batch_size * C.grad_accum_steps * config.model.block_size * trainer.world_size
        logger.info("preset %s: %s parameters, %d process(es) x %d micro-steps x %d x %d = %s tokens per step; "
                    "train %s tokens, val %s tokens", config.system.preset, f"{trainer.model.num_parameters():,}",
                    trainer.world_size, C.grad_accum_steps, C.batch_size, config.model.block_size, f"{tokens:,}",
                    f"{trainer.train_dataset.num_tokens:,}", f"{trainer.val_dataset.num_tokens:,}")
    t0 = time.perf_counter()
    trainer.run()
    if trainer.is_main_process:
        summary = {"preset": config.system.preset, "steps": trainer.iter_num, "seconds": time.perf_counter() - t0,
                   "val_loss": trainer.val_loss, "best_val_loss": trainer.best_val_loss,
                   "world_size": trainer.world_size}
        with atomic_path(os.path.join(work_dir, "summary.json")) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
