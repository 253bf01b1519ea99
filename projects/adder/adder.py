"""
Teach a GPT to add: n-digit addition, with the answer written backwards.

The one idea: a transformer learns an algorithm from examples if the data makes the algorithm *local*. Written
the usual way, the first digit of a sum depends on every carry to its right. Written reversed (ones digit first),
each answer digit depends only on two input digits and the carry from the digit just produced, exactly like
adding by hand. For ndigit=2, 85 + 50 = 135 becomes the 7 tokens

    8 5 5 0 5 3 1        a, b (zero-padded to ndigit), then the sum's ndigit+1 digits reversed

The model reads ``8 5 5 0`` and must produce ``5 3 1``; the loss is taken on the answer only (targets are -1 on
the question, so predicting the random operands costs nothing).

No problem set is ever materialised. Problem i (0 <= i < 10**(2*ndigit)) is simply ``a, b = divmod(i, 10**ndigit)``,
so the training set is a map-style Dataset whose "length" is the whole problem space, and the Trainer's uniformly
random indices are uniformly random problems. A fixed, seeded test set is held out *by construction*: its problems
are in a set, and a training index that lands on one is redirected (by a per-index seeded RNG) to another problem.

    python projects/adder/adder.py                                   # ndigit=2, about a minute on 2 CPU cores
    python projects/adder/adder.py --data.ndigit=3 --trainer.max_iters=20000
"""

from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.cfgnode import CfgNode
from mingpt.model import GPT, IGNORE_INDEX, resolve_config
from mingpt.trainer import Trainer
from mingpt.training.checkpoint import check_resume
from mingpt.utils import check_int, set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.adder")

MAX_NDIGIT = 9  # 10**(2*9) problems still index with int64 (and Python's len(), which must fit in a C ssize_t)


# ----------------------------------------------------------------------------------------------- config
def get_config() -> CfgNode:
    C = CfgNode()

    C.system = CfgNode()
    C.system.seed = 3407
    C.system.work_dir = "./out/adder"
    # CPU threads for torch (0 = torch's default). This model is so small that one thread is fastest: the
    # matmuls are too short to split, and extra threads only wait on each other (and on anything else running).
    C.system.num_threads = 1
    C.system.eval_interval = 100  # measure exact-match accuracy every this many steps
    C.system.eval_train_size = 1000  # problems in the training sample whose accuracy is reported
    C.system.stop_accuracy = 1.0  # stop as soon as test accuracy reaches this (1.0 = every test problem right)

    C.data = CfgNode()
    C.data.ndigit = 2  # 1..9
    C.data.test_size = 1000  # held-out problems (at most a fifth of the problem space)

    C.model = GPT.get_default_config()
    # Small and without dropout: the task is exact, and on the fly sampling means the model never sees a repeat
    # often enough to overfit.
    C.model.model_type = None
    C.model.n_layer, C.model.n_head, C.model.n_embd = 2, 4, 128
    C.model.embd_pdrop = C.model.resid_pdrop = C.model.attn_pdrop = 0.0

    C.trainer = Trainer.get_default_config()
    C.trainer.max_iters = 1000  # an upper bound: training stops early at stop_accuracy
    C.trainer.batch_size = 256
    # A high learning rate finds the algorithm fast but keeps knocking a few problems over; decaying it (cosine)
    # is what turns 99% into 100%.
    C.trainer.learning_rate = 2e-3
    C.trainer.lr_schedule = "cosine"
    C.trainer.min_lr = 1e-4
    C.trainer.warmup_iters = 50
    C.trainer.weight_decay = 0.0
    return C


# ----------------------------------------------------------------------------------------------- data
def encode_problem(a: int, b: int, ndigit: int) -> list[int]:
    """The token ids of one problem: a and b zero-padded to ndigit digits, then a + b's ndigit+1 digits reversed."""
    question = f"{a:0{ndigit}d}{b:0{ndigit}d}"
    answer = f"{a + b:0{ndigit + 1}d}"[::-1]  # ones digit first: each digit needs only the carry before it
    return [int(d) for d in question + answer]


def make_example(a: int, b: int, ndigit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for the Trainer: y is x shifted by one, with the question part masked out of the loss."""
    seq = torch.tensor(encode_problem(a, b, ndigit), dtype=torch.long)  # (3*ndigit + 1,)
    x, y = seq[:-1].clone(), seq[1:].clone()  # (T,) each, T = 3*ndigit
    # Position t predicts token t+1. The first answer digit is token 2*ndigit, predicted at position 2*ndigit - 1;
    # everything before that would be predicting the (random) operands.
    y[: 2 * ndigit - 1] = IGNORE_INDEX
    return x, y


class AdditionProblems:
    """The problem space for one ndigit, and its held-out test set (a fixed, seeded sample)."""

    def __init__(self, ndigit: int, test_size: int, seed: int):
        self.ndigit = check_int(ndigit, "data.ndigit", 1, MAX_NDIGIT)
        self.base = 10**ndigit  # operands are 0 .. base-1
        self.size = self.base**2  # number of distinct problems (a, b)
        check_int(test_size, "data.test_size", 1, self.size // 5,
                  hint=f" (at most a fifth of the {self.size} problems with ndigit={ndigit})")
        rng = np.random.default_rng(seed)
        if self.size <= 10**7:  # small spaces: an exact sample without replacement
            test = rng.choice(self.size, size=test_size, replace=False).tolist()
        else:  # huge spaces: draw and deduplicate (collisions are vanishingly rare)
            test_set: set[int] = set()
            while len(test_set) < test_size:
                test_set.update(int(i) for i in rng.integers(0, self.size, size=test_size - len(test_set)))
            test = sorted(test_set)
        self.test_indices = sorted(int(i) for i in test)
        self.test_set = set(self.test_indices)
        self.seed = seed

    def operands(self, i: int) -> tuple[int, int]:
        return divmod(int(i), self.base)

    def train_index(self, i: int) -> int:
        """Problem i itself, unless it is a test problem: then another problem, drawn from an RNG seeded by i."""
        i = int(i)
        if i in self.test_set:
            rng = np.random.default_rng([self.seed, i])
            while i in self.test_set:
                i = int(rng.integers(0, self.size))
        return i


class AdditionTrainSet(Dataset):
    """Every problem not in the test set, as a virtual map-style Dataset: nothing is stored."""

    def __init__(self, problems: AdditionProblems):
        self.problems = problems

    def __len__(self) -> int:
        return self.problems.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.problems.operands(self.problems.train_index(i))
        return make_example(a, b, self.problems.ndigit)


# ----------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def accuracy(model: GPT, problems: AdditionProblems, indices, device, batch_size: int = 1000) -> tuple[int, int]:
    """Exact-match accuracy by greedy generation: (number right, number asked) for the given problem indices."""
    n, right = problems.ndigit, 0
    indices = list(indices)
    for start in range(0, len(indices), batch_size):
        batch = [problems.operands(i) for i in indices[start : start + batch_size]]
        seqs = torch.tensor([encode_problem(a, b, n) for a, b in batch], dtype=torch.long, device=device)
        prompt, answer = seqs[:, : 2 * n], seqs[:, 2 * n :]  # (B, 2n), (B, n+1)
        out = model.generate(prompt, max_new_tokens=n + 1, do_sample=False)  # greedy: the model's best guess
        right += int((out[:, 2 * n :] == answer).all(dim=1).sum())
    return right, len(indices)


class AccuracyMonitor:
    """Every `interval` steps: accuracy on a training sample and the test set; keep best.pt; stop at the target."""

    def __init__(self, problems: AdditionProblems, train_sample: list[int], interval: int, stop_accuracy: float,
                 work_dir: str):
        self.problems, self.train_sample = problems, train_sample
        self.interval, self.stop_accuracy, self.work_dir = interval, stop_accuracy, work_dir
        self.best = -1.0
        self.test_result = (0, len(problems.test_indices))
        self.history: list[dict] = []

    def on_batch_end(self, trainer: Trainer) -> None:
        done = trainer.steps_done  # at on_batch_end iter_num is the index of the step that just ran: one less
        if done % self.interval and done != trainer.config.max_iters:
            return
        model = trainer.model
        train_right, train_total = accuracy(model, self.problems, self.train_sample, trainer.device)
        test_right, test_total = accuracy(model, self.problems, self.problems.test_indices, trainer.device)
        test_acc = test_right / test_total
        self.history.append(dict(iter=done, loss=trainer.loss.item(),
                                 train_accuracy=train_right / train_total, test_accuracy=test_acc))
        logger.info("step %d | loss %.4f | train accuracy %.2f%% | test accuracy %.2f%% (%d/%d)", done,
                    trainer.loss.item(), 100 * train_right / train_total, 100 * test_acc, test_right, test_total)
        if test_acc > self.best:
            self.best, self.test_result = test_acc, (test_right, test_total)
            trainer.save_checkpoint(os.path.join(self.work_dir, "best.pt"))
        if test_acc >= self.stop_accuracy:
            trainer.stop()  # ends training after this step; the Trainer still writes last.pt, as at any normal end


# ----------------------------------------------------------------------------------------------- main
def fail(message: str) -> None:
    """Bad input ends the program with one clear line on stderr, not a traceback."""
    print(f"adder: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    config = get_config()
    try:
        config.merge_from_args(argv)
        problems = AdditionProblems(config.data.ndigit, config.data.test_size, config.system.seed)
        check_int(config.system.eval_interval, "system.eval_interval", 1)
        n = config.data.ndigit
        config.model.vocab_size = 10  # the digits
        config.model.block_size = 3 * n  # 2n question digits + (n+1) answer digits, minus the one never fed back in
        config.trainer.work_dir = config.system.work_dir  # last.pt lives beside best.pt and config.json
        resolve_config(config.model)  # bad sizes, dropout, ... : one line now, before anything starts
        Trainer.check_config(config.trainer, has_val_dataset=False)
        check_resume(config.trainer)  # a truncated last.pt says how to go on
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        fail(e.args[0] if e.args else str(e))
    setup_logging(config)
    set_seed(config.system.seed)
    if config.system.num_threads > 0:
        torch.set_num_threads(config.system.num_threads)

    model = GPT(config.model)
    trainer = Trainer(config.trainer, model, AdditionTrainSet(problems))
    rng = np.random.default_rng([config.system.seed, 1])
    train_sample = [problems.train_index(i) for i in rng.integers(0, problems.size, config.system.eval_train_size)]
    monitor = AccuracyMonitor(problems, train_sample, config.system.eval_interval, config.system.stop_accuracy,
                              config.system.work_dir)
    trainer.add_callback(monitor)

    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0
    right, total = monitor.test_result
    print(f"ndigit={n}: test accuracy {100 * right / total:.2f}% ({right}/{total}) after {trainer.iter_num} iters, "
          f"{seconds:.1f} s (best checkpoint: {os.path.join(config.system.work_dir, 'best.pt')})")


if __name__ == "__main__":
    main(sys.argv[1:])
