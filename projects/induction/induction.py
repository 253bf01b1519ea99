"""
Watch induction heads form: a 2-layer attention-only transformer learns to copy repeated random tokens.

The one idea: to continue ``... A B ... A`` with ``B``, a transformer needs two heads working in sequence
(Olsson et al., "In-context Learning and Induction Heads", 2022):

1. a *previous-token head* (layer 0) writes "the token before me was A" into each position's residual stream;
2. an *induction head* (layer 1) at the second ``A`` searches for a position whose previous token was ``A``
   (query: "I am A"; key: "my previous token was A"), finds the first ``B``, and copies it out.

One layer cannot do this (a head can match on a token or a position, not on its neighbour's token), so it is the
simplest circuit that needs composition between layers, and it is the mechanism behind in-context copying.

The data are random tokens, so nothing can be predicted the first time round; then a segment is shown again, and
the repeat is perfectly predictable by copying. In a training sequence a segment of L random tokens appears twice,
with a random gap of random tokens between the copies; L, the gap and the offset vary between sequences, so no
"attend k positions back" rule works: the model has to find the earlier occurrence by *content*, which is induction.

We measure each head's **prefix-matching score**: on sequences where a segment of L distinct tokens is shown
exactly twice, the mean attention that a token in the second copy pays to the token right *after* its previous
occurrence (position ``t - L + 1``). An induction head scores near 1; a random head about 1/t. We also report
the loss on the first copy (random: it stays at ln(vocab_size) or worse) and on the repeat, which drops towards 0.

Two choices make the textbook circuit (rather than an equally good variant) form; the README tells the story:
the token embedding is tied to the unembedding, and the copies are not always side by side.

    python projects/induction/induction.py          # about 1-2 minutes on one CPU thread; writes out/induction/

Reusable from a notebook:

    from projects.induction.induction import get_config, train_induction_model, prefix_matching_scores
    model = train_induction_model(get_config())      # a mingpt GPT with config.attn_only = True
    scores = prefix_matching_scores(model)           # (n_layer, n_head)
    model, config = load_induction_model("out/induction")   # or the result of a finished run, without training
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mingpt.cfgnode import CfgNode
from mingpt.interp.hooks import run_with_cache
from mingpt.model import GPT, IGNORE_INDEX
from mingpt.trainer import Trainer
from mingpt.training.callbacks import ProgressLogger
from mingpt.training.checkpoint import check_resume, load_checkpoint
from mingpt.utils import check_int, set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.induction")


# ----------------------------------------------------------------------------------------------- config
def get_config() -> CfgNode:
    C = CfgNode()

    C.system = CfgNode()
    C.system.seed = 1337
    C.system.work_dir = "./out/induction"
    C.system.num_threads = 1  # tiny matmuls: one CPU thread is fastest (0 = torch's default)
    C.system.eval_sequences = 200  # sequences used to measure the scores

    C.data = CfgNode()
    # The repeated segment's length is drawn log-uniformly from [min_repeat, max_repeat] (see RepeatedTokens).
    C.data.min_repeat = 2
    C.data.max_repeat = 16  # at most block_size // 2; evaluation shows a segment of this length twice
    # Random tokens between the two copies: drawn uniformly from [0, what still fits], capped by max_gap (None: no
    # cap). 0 puts the copies side by side, which lets layer 0 solve short repeats by position ("copy the token 2
    # back") and tends to grow a shifted variant of the induction circuit instead of the textbook one (README).
    C.data.max_gap = None

    C.model = CfgNode()
    C.model.n_layer = 2
    C.model.n_head = 4
    C.model.n_embd = 64
    C.model.vocab_size = 64
    C.model.block_size = 48
    C.model.attn_only = True  # blocks without the MLP: attention is all the model has (GPT's config switch)
    C.model.attention = "auto"  # SDPA, or math under CPU bf16 training (faster there); probing picks math itself
    C.model.embd_pdrop = 0.0
    C.model.attn_pdrop = 0.0
    C.model.resid_pdrop = 0.0
    C.model.bias = True
    # Share the token embedding with the unembedding (lm_head), as GPT-2 does: a token's own embedding then already
    # reads out as "predict this token", which is what the induction head copies. With gaps in the data the
    # textbook head forms either way; with copies side by side, tying made the difference for the default seed.
    C.model.tie_weights = True

    C.trainer = Trainer.get_default_config()
    # The loss sits on a plateau for a while, then drops within a few hundred steps: the phase change when the
    # two-head circuit clicks into place (see the README for when it happens).
    C.trainer.max_iters = 6000
    C.trainer.batch_size = 64
    C.trainer.learning_rate = 2e-3
    C.trainer.warmup_iters = 50
    C.trainer.weight_decay = 0.0
    # fp32 even where the CPU runs bf16 natively, so that the run (and the heads its README documents) is the same
    # on every CPU; bf16 autocast saved only 6 % here (136 s against 145 s on an AMX Xeon) and scored 0.94
    C.trainer.precision = "fp32"
    return C


# ----------------------------------------------------------------------------------------------- model
def build_model(model_config: CfgNode) -> GPT:
    """
    A plain mingpt GPT with ``attn_only = True``: embeddings, n_layer blocks of LayerNorm + attention (no MLP, as
    TransformerLens' attention-only models), a final LayerNorm and the unembedding. All the model can do is move
    information between positions, which makes its heads easy to read; and as it is a GPT, every inspection tool
    works on it (``model.run_with_cache``, mingpt.interp.patching, ``model.W_Q``, ``copying_scores``...).
    """
    config = GPT.get_default_config()
    config.merge_from_dict(model_config.to_dict())  # the project's sizes and switches (attn_only among them)
    return GPT(config)


# ----------------------------------------------------------------------------------------------- data
class RepeatedTokens(Dataset):
    """
    Sequence i: block_size + 1 random tokens, except that a segment of L of them (L random in
    [min_repeat, max_repeat]) is shown twice, after a random prefix and with a random gap between the copies::

        r r r | a b c d e | r r r r | a b c d e | r r       (P random, the segment, G random, the segment, filler)

    Only the predictable tokens, the repeat's 2nd..Lth, are trained on (every other target is IGNORE_INDEX), so
    all of the gradient asks "copy from the first occurrence". L, the gap G and the offset P all vary, so neither
    "attend k positions back" nor "attend to position p" works: the earlier occurrence must be found by *content*,
    which is induction. Drawn from an RNG seeded by (seed, i): the data set is infinite and costs nothing to store.
    """

    def __init__(self, vocab_size: int, block_size: int, min_repeat: int, max_repeat: int, seed: int,
                 max_gap: int | None = None, length: int = 10**9):
        if not 1 <= max_repeat <= block_size // 2:
            raise ValueError(f"data.max_repeat must be in [1, block_size // 2 = {block_size // 2}], got {max_repeat}")
        if not 1 <= min_repeat <= max_repeat:
            raise ValueError(f"data.min_repeat must be in [1, data.max_repeat = {max_repeat}], got {min_repeat}")
        if max_gap is not None:
            check_int(max_gap, "data.max_gap", hint=" (or None: no cap)")
        self.vocab_size, self.block_size, self.min_repeat, self.max_repeat, self.seed = (
            vocab_size, block_size, min_repeat, max_repeat, seed)
        self.max_gap, self.length = max_gap, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        # L is drawn log-uniformly, so short segments are common. (With side-by-side copies and only long segments,
        # L in [8, 16], layer 0 learned heads that look ~7 back instead of a previous-token head.)
        L = int(np.exp(rng.uniform(np.log(self.min_repeat), np.log(self.max_repeat + 1))))
        room = self.block_size + 1 - 2 * L  # random tokens left to place before, between and after the copies
        # The gap matters too. With the copies always side by side, "the answer is the token L - 1 back" solves
        # short segments by position alone (L = 3: copy the token 2 back); layer 0 grows such heads, and layer 1
        # builds a shifted variant of the circuit on them instead of the textbook induction head.
        G = int(rng.integers(0, (room if self.max_gap is None else min(self.max_gap, room)) + 1))
        P = int(rng.integers(0, room - G + 1))  # the prefix's length
        seq = rng.integers(0, self.vocab_size, size=self.block_size + 1)
        second = P + L + G  # where the second copy starts
        seq[second: second + L] = seq[P: P + L]
        seq = torch.from_numpy(seq)
        x, y = seq[:-1], seq[1:].clone()
        # y[j] = seq[j + 1]. Keep the targets in the repeat, except its first token (nothing says it will repeat).
        keep = torch.zeros_like(y, dtype=torch.bool)
        keep[second: second + L - 1] = True
        y[~keep] = IGNORE_INDEX
        return x, y


def repeated_batch(n: int, L: int, vocab_size: int, seed: int) -> torch.Tensor:
    """(n, 2L) evaluation sequences: L *distinct* random tokens, twice, so every token has one earlier occurrence."""
    rng = np.random.default_rng(seed)
    segments = np.stack([rng.permutation(vocab_size)[:L] for _ in range(n)])  # (n, L)
    return torch.from_numpy(np.concatenate([segments, segments], axis=1))


# ----------------------------------------------------------------------------------------------- measuring
@torch.no_grad()
def attention_patterns(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model, recording every head's attention: (logits (B, T, V), attention (n_layer, B, nh, T, T))."""
    # One forward pass in eval mode recording the hook points blocks.{i}.attn.hook_pattern, (B, nh, T, T) each.
    logits, cache = run_with_cache(model, idx, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    return logits, torch.stack([cache["pattern", layer] for layer in range(model.config.n_layer)])


@torch.no_grad()
def prefix_matching_scores(model: GPT, L: int = 10, n_sequences: int = 200,
                           seed: int = 0) -> torch.Tensor:
    """
    (n_layer, n_head) prefix-matching scores: for a segment of L distinct tokens shown twice, the mean attention
    from each position t of the repeat to position t - L + 1, the token after t's previous occurrence.
    """
    return induction_report(model, L, n_sequences, seed)["prefix_matching"]


@torch.no_grad()
def induction_report(model: GPT, L: int = 10, n_sequences: int = 200, seed: int = 0) -> dict:
    """Prefix-matching and previous-token scores per head, and the loss on the first copy and on the repeat."""
    if not 2 <= L <= min(model.config.vocab_size, (model.config.block_size + 1) // 2):
        raise ValueError(f"L must be in [2, min(vocab_size, (block_size + 1) // 2)], got {L}")
    device = next(model.parameters()).device
    seqs = repeated_batch(n_sequences, L, model.config.vocab_size, seed).to(device)  # (B, 2L)
    x, y = seqs[:, :-1], seqs[:, 1:]  # (B, T), T = 2L - 1
    logits, att = attention_patterns(model, x)  # att: (n_layer, B, nh, T, T)
    t = torch.arange(L, x.size(1), device=device)  # query positions in the repeat (x[t] = x[t - L])
    prefix = att[:, :, :, t, t - L + 1].mean(dim=(1, 3))  # (n_layer, nh): attention to "the token after me, last time"
    q = torch.arange(1, 2 * L - 1, device=device)
    previous = att[:, :, :, q, q - 1].mean(dim=(1, 3))  # (n_layer, nh): attention to the immediately previous token
    # One further on (t - L + 2): a variant of the circuit attends there, matching the key's token *two* back and
    # copying the token one back (what a previous-token head wrote there). It copies as well, but scores ~0 above.
    shifted = att[:, :, :, t, t - L + 2].mean(dim=(1, 3))  # (n_layer, nh)
    losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, T): loss predicting y[t]
    # y[t] = x[t+1]: positions 0..L-2 predict the first copy (random tokens); from L on, the repeat (the
    # repeat's first token, predicted at L-1, cannot be known to repeat yet, so it is in neither group).
    return dict(
        prefix_matching=prefix.cpu(),
        previous_token=previous.cpu(),
        shifted_prefix_matching=shifted.cpu(),
        loss_first_half=losses[:, : L - 1].mean().item(),
        loss_repeated_half=losses[:, L:].mean().item(),
        example=x[0].cpu(),
        attention=att[:, 0].cpu(),  # (n_layer, nh, T, T) for one sequence, for plotting
    )


def plot_attention(report: dict, path: str) -> None:
    """One panel per head (rows: layers) showing its attention on one repeated sequence; saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    att, scores = report["attention"], report["prefix_matching"]
    n_layer, n_head = scores.shape
    fig, axes = plt.subplots(n_layer, n_head, figsize=(2.2 * n_head, 2.6 * n_layer), squeeze=False,
                             layout="constrained")  # leaves room for every panel's two-line title
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(att[layer, head].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"L{layer}H{head} prefix {scores[layer, head]:.2f}\nprev-token "
                         f"{report['previous_token'][layer, head]:.2f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("attention (query row, key column) on a segment shown twice", fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- training
def train_induction_model(config: CfgNode) -> GPT:
    """Train the attention-only model on repeated random tokens as `config` (from get_config()) says."""
    set_seed(config.system.seed)
    if config.system.num_threads > 0:
        torch.set_num_threads(config.system.num_threads)
    m = config.model
    d = config.data
    train_set = RepeatedTokens(m.vocab_size, m.block_size, d.min_repeat, d.max_repeat, config.system.seed,
                               max_gap=d.max_gap)
    model = build_model(m)
    trainer = Trainer(config.trainer, model, train_set, callbacks=(ProgressLogger(interval=250),))
    trainer.run()
    return model


def load_induction_model(work_dir: str) -> tuple[GPT, CfgNode]:
    """
    The model a finished run left in `work_dir` (its config.json and last.pt), and that run's config: a notebook
    can then look inside without training again. The checkpoint is read with weights_only (no pickled code runs).
    """
    config_path, checkpoint_path = os.path.join(work_dir, "config.json"), os.path.join(work_dir, "last.pt")
    for path in (config_path, checkpoint_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: load_induction_model needs the work dir of a finished run "
                                    f"of projects/induction (python projects/induction/induction.py "
                                    f"--system.work_dir={work_dir})")
    config = CfgNode.load_json(config_path)
    model = build_model(config.model)
    model.load_state_dict(load_checkpoint(checkpoint_path)["model"])
    return model, config


def fail(message: str) -> None:
    """Bad input ends the program with one clear line on stderr, not a traceback."""
    print(f"induction: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    config = get_config()
    try:
        config.merge_from_args(argv)
        m = config.model
        RepeatedTokens(m.vocab_size, m.block_size, config.data.min_repeat, config.data.max_repeat, 0,
                       max_gap=config.data.max_gap)  # checks the values
        build_model(m)  # checks the model's sizes (a tiny model: building it costs nothing)
        if config.data.max_repeat > m.vocab_size:
            raise ValueError(f"model.vocab_size ({m.vocab_size}) must be at least data.max_repeat "
                             f"({config.data.max_repeat}) so an evaluation segment can hold distinct tokens")
        config.trainer.work_dir = config.system.work_dir  # the Trainer writes last.pt there
        Trainer.check_config(config.trainer, has_val_dataset=False)
        check_resume(config.trainer)  # a truncated last.pt says how to go on
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        fail(e.args[0] if e.args else str(e))
    work_dir = setup_logging(config)

    t0 = time.perf_counter()
    model = train_induction_model(config)
    seconds = time.perf_counter() - t0
    report = induction_report(model, config.data.max_repeat, config.system.eval_sequences, seed=config.system.seed + 1)
    scores = report["prefix_matching"]
    best = int(scores.argmax())
    layer, head = divmod(best, scores.shape[1])
    plot_attention(report, os.path.join(work_dir, "induction.png"))
    summary = dict(
        prefix_matching=scores.tolist(), previous_token=report["previous_token"].tolist(),
        shifted_prefix_matching=report["shifted_prefix_matching"].tolist(),
        best_head=[layer, head], best_score=scores[layer, head].item(),
        loss_first_half=report["loss_first_half"], loss_repeated_half=report["loss_repeated_half"],
        train_seconds=seconds,
    )
    with open(os.path.join(work_dir, "scores.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    for i, row in enumerate(scores.tolist()):
        print(f"layer {i} prefix-matching scores: " + " ".join(f"{s:.2f}" for s in row)
              + " | previous-token: " + " ".join(f"{s:.2f}" for s in report["previous_token"][i].tolist())
              + " | one further on (t - L + 2): "
              + " ".join(f"{s:.2f}" for s in report["shifted_prefix_matching"][i].tolist()))
    print(f"loss on the random first copy {report['loss_first_half']:.3f} "
          f"(ln V = {np.log(config.model.vocab_size):.3f}), "
          f"on the repeat {report['loss_repeated_half']:.3f}")
    print(f"best induction head: layer {layer} head {head}, prefix-matching score {scores[layer, head]:.3f}, "
          f"after {config.trainer.max_iters} iters, {seconds:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
