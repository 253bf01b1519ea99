"""
A character-level GPT: read a text file, learn to continue it one character at a time, then write more of it.

The one idea: a language model needs no tokenizer to start with. Every distinct character is a token (65 for
Tiny Shakespeare), the text is one long stream of ids, and training example i is the window of block_size + 1
characters starting at i: the model learns to predict each character from the ones before it.

    python projects/chargpt/chargpt.py                                  # Tiny Shakespeare (downloaded once)
    python projects/chargpt/chargpt.py --data.path=my.txt               # any UTF-8 text file
    python projects/chargpt/chargpt.py --trainer.resume=auto --trainer.max_iters=4000   # continue a run
    python projects/chargpt/chargpt.py sample --sample.prompt="ROMEO:"  # write from the best checkpoint

Outputs in system.work_dir: config.json, vocab.json, best.pt (lowest validation loss) and last.pt (for resuming),
loss.png (the loss curve) and sample.txt. Presets: the defaults are the CPU preset (a few minutes' budget);
``--system.preset=gpu`` selects the classic 6-layer, 384-wide, block-256 model (see the README).
"""

from __future__ import annotations

import os
import sys
import time

import torch

from mingpt.cfgnode import CfgNode
from mingpt.data import TINY_SHAKESPEARE, CharDataset, CharVocab, split_train_val, tiny_shakespeare
from mingpt.io.download import DownloadError
from mingpt.model import GPT, resolve_config
from mingpt.trainer import Trainer
from mingpt.training.callbacks import LossCurvePlot, ProgressLogger, TimeLimit
from mingpt.training.checkpoint import check_resume, load_checkpoint
from mingpt.utils import choose_device, set_seed, setup_logging

MODES = ("train", "sample")


# ----------------------------------------------------------------------------------------------- config
def get_config() -> CfgNode:
    C = CfgNode()

    C.system = CfgNode()
    C.system.mode = "train"  # 'train' or 'sample' (also accepted as the first word: `chargpt.py sample ...`)
    C.system.preset = "cpu"  # 'cpu' (the defaults below) or 'gpu' (6 layers x 384, block 256; see apply_preset)
    C.system.seed = 3407
    C.system.work_dir = "./out/chargpt"
    C.system.num_threads = 0  # CPU threads for torch; 0 = torch's default
    # Stop training after this much wall time (0 = no limit); the final evaluation still runs. A safety net for the
    # CPU preset's 2-minute budget: on one idle core its 1600 steps should take ~100 s, so it normally never fires.
    C.system.max_seconds = 112.0

    C.data = CfgNode()
    C.data.path = None  # a UTF-8 text file; None = Tiny Shakespeare ($MINGPT_DATA_DIR, else downloaded and cached)
    C.data.url = TINY_SHAKESPEARE.url  # where Tiny Shakespeare is downloaded from when data.path is None
    C.data.val_fraction = 0.1  # the last 10% of the text is the validation set

    C.model = GPT.get_default_config()
    C.model.model_type = None
    C.model.n_layer, C.model.n_head, C.model.n_embd = 4, 4, 96
    C.model.block_size = 64
    C.model.embd_pdrop = C.model.resid_pdrop = C.model.attn_pdrop = 0.0  # too few steps on CPU to overfit

    C.trainer = Trainer.get_default_config()
    # Tuned for "the lowest validation loss in 2 minutes on one CPU thread". At this budget a smaller model that sees
    # more characters beats a bigger one that sees fewer: 96 channels cost ~0.6x of 128's time a step, so 1600
    # steps fit where 1050 did, and reach a lower loss (see the README). The cosine schedule is laid out over exactly
    # those steps (a schedule cut off by the time limit never decays). A small model this briefly trained tolerates a
    # high learning rate; decaying it to near zero at the end gives the last few hundredths. beta2 = 0.99 (not
    # 0.95): with only 2,048 characters a step, gradients are noisy and a longer average of their scale helps.
    # Evaluation is cheap and rare (20 batches every 400 steps), so it costs ~2 s.
    C.trainer.max_iters = 1600
    C.trainer.batch_size = 32
    C.trainer.learning_rate = 5e-3
    C.trainer.betas = (0.9, 0.99)
    C.trainer.min_lr = 1e-4
    C.trainer.lr_schedule = "cosine"
    C.trainer.warmup_iters = 50
    C.trainer.eval_interval = 400
    C.trainer.eval_iters = 20
    C.trainer.weight_decay = 0.1

    C.sample = CfgNode()
    C.sample.prompt = "\n"  # the text to continue
    C.sample.max_new_tokens = 500
    C.sample.temperature = 0.8
    C.sample.top_k = 0  # 0 = no top-k filtering
    C.sample.checkpoint = None  # None = work_dir/best.pt
    return C


def apply_preset(config: CfgNode, overrides: list[str]) -> None:
    """The GPU preset: nanoGPT's Shakespeare model. Set before the command-line overrides, which win."""
    if config.system.preset == "gpu":
        gpu = dict(model=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, embd_pdrop=0.2, resid_pdrop=0.2,
                              attn_pdrop=0.2),
                   trainer=dict(batch_size=64, learning_rate=1e-3, max_iters=5000, warmup_iters=100,
                                eval_interval=250, eval_iters=200, min_lr=1e-4),
                   system=dict(max_seconds=0.0))  # no 2-minute cap: the GPU preset runs all its steps
        config.merge_from_dict(gpu)
        config.merge_from_args(overrides)  # the user's values win over the preset's
    elif config.system.preset != "cpu":
        raise ValueError(f"system.preset must be 'cpu' or 'gpu', got {config.system.preset!r}")


# ----------------------------------------------------------------------------------------------- data
def char_datasets(text: str, val_fraction: float, block_size: int) -> tuple[CharVocab, CharDataset, CharDataset]:
    """One vocabulary over the whole text, then the first (1 - val_fraction) for training, the rest for validation."""
    train_text, val_text = split_train_val(text, val_fraction, block_size)
    vocab = CharVocab.from_text(text)
    return vocab, CharDataset(train_text, block_size, vocab), CharDataset(val_text, block_size, vocab)


# ----------------------------------------------------------------------------------------------- sampling
def sample_text(model: GPT, vocab: CharVocab, prompt: str, max_new_tokens: int, temperature: float, top_k: int,
                seed: int) -> str:
    """Continue `prompt` by max_new_tokens characters, sampling (seeded, so repeatable)."""
    device = next(model.parameters()).device
    idx = torch.tensor([vocab.encode(prompt)], dtype=torch.long, device=device)[:, -model.config.block_size:]
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, max_new_tokens, temperature=temperature, do_sample=True, top_k=top_k or None,
                         generator=generator)
    return prompt + vocab.decode(out[0, idx.size(1):])


def run_sample(config: CfgNode) -> None:
    """Load a checkpoint and its vocabulary from work_dir and print a continuation of sample.prompt."""
    work_dir = config.system.work_dir
    path = config.sample.checkpoint or os.path.join(work_dir, "best.pt")
    vocab_path = os.path.join(work_dir, "vocab.json")
    for p, what in ((path, "checkpoint"), (vocab_path, "vocabulary")):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"no {what} at {p!r}; train first (chargpt.py --system.work_dir={work_dir})")
    vocab = CharVocab.load(vocab_path)
    checkpoint = load_checkpoint(path)
    model = GPT(CfgNode.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["model"])
    model.to(choose_device(config.trainer.device))
    s = config.sample
    print(sample_text(model, vocab, s.prompt, s.max_new_tokens, s.temperature, s.top_k, config.system.seed))


# ----------------------------------------------------------------------------------------------- training
def verdict(time_limit: TimeLimit, trainer: Trainer) -> str:
    """Which of the two ended the run, the time cap or the schedule, in words for the final line."""
    if time_limit.fired:
        return (f"the time cap ended the run (system.max_seconds={time_limit.seconds:g}) before the schedule's "
                f"{trainer.config.max_iters} iters")
    cap = f"the time cap of {time_limit.seconds:g} s did not fire" if time_limit.seconds else "no time cap"
    return f"the schedule ended the run ({cap})"


def check_config(config: CfgNode) -> None:
    """Everything that can be checked before a run starts: model and trainer settings, the checkpoint to resume."""
    model = config.model.copy()
    model.vocab_size = model.vocab_size or 1  # set from the data later; any size checks the rest
    resolve_config(model)
    config.trainer.work_dir = config.system.work_dir  # checkpoints beside config.json
    Trainer.check_config(config.trainer)
    check_resume(config.trainer)  # a truncated last.pt: one line now, not a crash after the run has started


def run_train(config: CfgNode, text: str) -> None:
    vocab, train_set, val_set = char_datasets(text, config.data.val_fraction, config.model.block_size)
    config.model.vocab_size = len(vocab)
    work_dir = setup_logging(config)
    vocab.save(os.path.join(work_dir, "vocab.json"))
    set_seed(config.system.seed)

    model = GPT(config.model)
    time_limit = TimeLimit(config.system.max_seconds)  # a safety net for the CPU preset's 2-minute budget
    trainer = Trainer(config.trainer, model, train_set, val_set,
                      callbacks=(ProgressLogger(interval=50), LossCurvePlot(os.path.join(work_dir, "loss.png")),
                                 time_limit))
    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0

    sample = sample_text(model, vocab, config.sample.prompt, config.sample.max_new_tokens, config.sample.temperature,
                         config.sample.top_k, config.system.seed)
    with open(os.path.join(work_dir, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample)
    print(sample)
    if trainer.val_loss is None:
        print(f"trained {trainer.iter_num} iters in {seconds:.1f} s (no evaluation: trainer.eval_interval=0); "
              f"{verdict(time_limit, trainer)}")
    else:
        print(f"val loss {trainer.val_loss:.4f} (best {trainer.best_val_loss:.4f}) after {trainer.iter_num} iters, "
              f"{seconds:.1f} s; {verdict(time_limit, trainer)}")


# ----------------------------------------------------------------------------------------------- main
def fail(message: str) -> None:
    """Bad input ends the program with one clear line on stderr, not a traceback."""
    print(f"chargpt: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    argv = list(argv)
    config = get_config()
    try:
        if argv and not argv[0].startswith("-"):  # `chargpt.py sample --sample.prompt=...`
            if argv[0] not in MODES:
                raise ValueError(f"unknown mode {argv[0]!r}; the modes are {', '.join(MODES)} "
                                 f"(e.g. chargpt.py sample --sample.prompt=ROMEO:)")
            config.system.mode = argv.pop(0)
        config.merge_from_args(argv)
        apply_preset(config, argv)
        if config.system.mode not in MODES:
            raise ValueError(f"system.mode must be one of {MODES}, got {config.system.mode!r}")
        if config.system.num_threads > 0:
            torch.set_num_threads(config.system.num_threads)
        if config.system.mode == "sample":
            run_sample(config)
            return
        check_config(config)
        # A local file, or Tiny Shakespeare: $MINGPT_DATA_DIR, else mingpt's cache (downloaded once, verified).
        text = tiny_shakespeare(config.data.path, url=config.data.url)
    except (KeyError, TypeError, ValueError, FileNotFoundError, DownloadError) as e:
        fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
    run_train(config, text)


if __name__ == "__main__":
    main(sys.argv[1:])
