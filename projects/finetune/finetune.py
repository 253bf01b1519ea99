"""
Fine-tune a pretrained GPT-2 on your own text, then sample from it.

The one idea: fine-tuning is just training, started from weights that already know English. The recipe differs
from training from scratch only in its numbers: a learning rate ~10x smaller (large steps would wreck what the
model knows), few iterations, and GPT-2's own tokenizer, because the embeddings were learned for its token ids.

    python projects/finetune/finetune.py                                   # gpt2 (124M) on Tiny Shakespeare
    python projects/finetune/finetune.py --data.path=my.txt --model.init_from=gpt2-medium
    python projects/finetune/finetune.py sample --sample.prompt="ROMEO:"   # from the fine-tuned model

The pretrained weights come from `GPT.from_pretrained` (a Hub name such as 'gpt2', or a local folder in Hugging
Face layout); GPT-2's vocabulary files from `mingpt.bpe` (downloaded and cached, or `--data.vocab_dir=<folder with
encoder.json and vocab.bpe>` offline). Outputs in system.work_dir: config.json, best.pt / last.pt (Trainer
checkpoints, for resuming), model/ (the fine-tuned weights in Hugging Face layout) and sample.txt.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import torch

from mingpt.bpe import BPETokenizer
from mingpt.cfgnode import CfgNode
from mingpt.data import TokenStream, split_train_val, tiny_shakespeare
from mingpt.io.download import DownloadError
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.callbacks import ProgressLogger
from mingpt.training.checkpoint import check_resume
from mingpt.utils import choose_device, set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.finetune")

MODES = ("train", "sample")


# ----------------------------------------------------------------------------------------------- config
def get_config() -> CfgNode:
    C = CfgNode()

    C.system = CfgNode()
    C.system.mode = "train"  # 'train' or 'sample' (also accepted as the first word: `finetune.py sample ...`)
    C.system.seed = 1337
    C.system.work_dir = "./out/finetune"
    C.system.num_threads = 0  # CPU threads for torch; 0 = torch's default

    C.data = CfgNode()
    C.data.path = None  # a UTF-8 text file; None = Tiny Shakespeare ($MINGPT_DATA_DIR, else downloaded and cached)
    C.data.val_fraction = 0.1  # the last 10% of the tokens are the validation set
    C.data.vocab_dir = None  # folder with GPT-2's encoder.json and vocab.bpe; None = $MINGPT_DATA_DIR or the cache
    C.data.block_size = 256  # training window, in tokens (GPT-2 allows up to 1024; shorter is cheaper)

    C.model = CfgNode()
    C.model.init_from = "gpt2"  # a Hub name ('gpt2', 'gpt2-medium', ...) or a local Hugging Face-layout folder
    C.model.dropout = 0.1  # GPT-2's own dropout; a small data set overfits quickly without it

    C.trainer = Trainer.get_default_config()
    C.trainer.max_iters = 200
    C.trainer.batch_size = 8
    C.trainer.learning_rate = 3e-5  # small: nudge the pretrained weights, do not overwrite them
    C.trainer.warmup_iters = 20
    C.trainer.eval_interval = 50
    C.trainer.eval_iters = 10
    C.trainer.weight_decay = 0.0

    C.sample = CfgNode()
    C.sample.prompt = "ROMEO:"
    C.sample.max_new_tokens = 100  # tokens, not characters
    C.sample.temperature = 0.8
    C.sample.top_k = 50  # 0 = no top-k filtering
    return C


# ----------------------------------------------------------------------------------------------- data
def load_tokenizer(vocab_dir: str | None) -> BPETokenizer:
    """GPT-2's tokenizer from a local folder, or downloaded once into the cache."""
    if vocab_dir is None:
        return BPETokenizer()
    return BPETokenizer.from_files(os.path.join(vocab_dir, "encoder.json"), os.path.join(vocab_dir, "vocab.bpe"))


def token_splits(ids: list[int], val_fraction: float, block_size: int) -> tuple[TokenStream, TokenStream]:
    """The first (1 - val_fraction) of the token ids for training, the rest for validation."""
    tokens = np.array(ids, dtype=np.uint16)  # GPT-2's 50,257 ids fit in 16 bits
    train, val = split_train_val(tokens, val_fraction, block_size)
    return TokenStream(train, block_size), TokenStream(val, block_size)


# ----------------------------------------------------------------------------------------------- sampling
def sample_text(model: GPT, tokenizer: BPETokenizer, s: CfgNode, seed: int) -> str:
    """Continue s.prompt by s.max_new_tokens tokens (seeded sampling, so repeatable)."""
    device = next(model.parameters()).device
    ids = tokenizer.encode(s.prompt) or tokenizer.encode("\n")
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, s.max_new_tokens, temperature=s.temperature, do_sample=True, top_k=s.top_k or None,
                         generator=generator)
    return tokenizer.decode(out[0])


# ----------------------------------------------------------------------------------------------- main
def run_train(config: CfgNode, model: GPT, tokenizer: BPETokenizer, text: str) -> None:
    t_encode = time.perf_counter()
    train_set, val_set = token_splits(tokenizer.encode_ordinary(text), config.data.val_fraction,
                                      config.data.block_size)
    logger.info("%d training and %d validation tokens (encoded in %.1f s)", len(train_set.tokens),
                len(val_set.tokens), time.perf_counter() - t_encode)
    trainer = Trainer(config.trainer, model, train_set, val_set, callbacks=(ProgressLogger(interval=10),))
    initial_val = trainer.evaluate() if val_set is not None else None
    logger.info("val loss of the pretrained model: %.4f", initial_val)
    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0

    model.save_pretrained(os.path.join(config.system.work_dir, "model"), tokenizer=tokenizer)  # + the vocab files
    sample = sample_text(model, tokenizer, config.sample, config.system.seed)
    with open(os.path.join(config.system.work_dir, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample)
    print(sample)
    final = f"{trainer.val_loss:.4f}" if trainer.val_loss is not None else "n/a (trainer.eval_interval=0)"
    print(f"val loss {initial_val:.4f} -> {final} after {trainer.iter_num} iters, {seconds:.1f} s "
          f"(fine-tuned model: {os.path.join(config.system.work_dir, 'model')})")


def fail(message: str) -> None:
    """Bad input ends the program with one clear line on stderr, not a traceback."""
    print(f"finetune: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    argv = list(argv)
    config = get_config()
    try:
        if argv and not argv[0].startswith("-"):  # `finetune.py sample --sample.prompt=...`
            if argv[0] not in MODES:
                raise ValueError(f"unknown mode {argv[0]!r}; the modes are {', '.join(MODES)} "
                                 f"(e.g. finetune.py sample --sample.prompt=ROMEO:)")
            config.system.mode = argv.pop(0)
        config.merge_from_args(argv)
        if config.system.mode not in MODES:
            raise ValueError(f"system.mode must be one of {MODES}, got {config.system.mode!r}")
        if config.system.mode == "train":  # cheap checks first: before the tokenizer and GPT-2 are loaded
            config.trainer.work_dir = config.system.work_dir
            Trainer.check_config(config.trainer)
            check_resume(config.trainer)  # a truncated last.pt says how to go on
        if config.system.num_threads > 0:
            torch.set_num_threads(config.system.num_threads)
        device = choose_device(config.trainer.device)
        tokenizer = load_tokenizer(config.data.vocab_dir)
        if config.system.mode == "sample":
            source = os.path.join(config.system.work_dir, "model")
            if not os.path.isdir(source):
                raise FileNotFoundError(f"no fine-tuned model in {source!r}; fine-tune first "
                                        f"(finetune.py --system.work_dir={config.system.work_dir})")
            model = GPT.from_pretrained(source, device=device)
            print(sample_text(model, tokenizer, config.sample, config.system.seed))
            return
        # A local file, or Tiny Shakespeare: $MINGPT_DATA_DIR, else mingpt's cache (downloaded once, verified).
        text = tiny_shakespeare(config.data.path)
        d = config.model.dropout
        model = GPT.from_pretrained(config.model.init_from, embd_pdrop=d, resid_pdrop=d, attn_pdrop=d)
        if config.data.block_size > model.config.block_size:
            raise ValueError(f"data.block_size={config.data.block_size} exceeds the model's context of "
                             f"{model.config.block_size} tokens")
    except (KeyError, TypeError, ValueError, FileNotFoundError, DownloadError) as e:
        fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
    setup_logging(config)
    set_seed(config.system.seed)
    run_train(config, model, tokenizer, text)


if __name__ == "__main__":
    main(sys.argv[1:])
