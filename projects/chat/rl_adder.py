"""
Reinforcement learning on the adder: a GPT that adds *most* sums right learns to add more of them right from
nothing but a checker that says whether each sampled answer is correct. No answer is ever shown to it.

The one idea (mingpt.posttrain.rl): sample a group of answers per question, reward the right ones, and push the
model toward answers that beat their group's average (GRPO-style advantages and a policy-gradient step).

    1. pretrain: the adder project's model and data (projects/adder), stopped early, at a test accuracy below 100 %
    2. RL: each step draws training questions, samples group_size answers to each at temperature 1, rewards 1 for
       an exactly right sum and 0 otherwise, and takes one rl_step; optionally a KL penalty to the pretrained model
    3. test accuracy (greedy, the adder's held-out problems) before and after, and every rl.eval_interval steps

    python projects/chat/rl_adder.py                                # about a minute or two on one CPU thread
    python projects/chat/rl_adder.py --system.seed=1 --rl.kl_coef=0.05
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import pathlib
import sys
import time

import numpy as np
import torch

from mingpt.cfgnode import CfgNode
from mingpt.posttrain.rl import rl_step
from mingpt.trainer import Trainer
from mingpt.utils import check_int, set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.rl_adder")


def load_adder():
    """The adder project's module (projects are scripts, not a package): its data, model config and accuracy."""
    path = pathlib.Path(__file__).resolve().parents[1] / "adder" / "adder.py"
    spec = importlib.util.spec_from_file_location("adder_project", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


adder = load_adder()


def get_config() -> CfgNode:
    C = adder.get_config()  # system, data, model, trainer: the adder's, so the pretrained model is the adder's
    C.system.work_dir = "./out/rl_adder"
    C.trainer.max_iters = 150  # pretraining stops here, short of 100 % (the adder reaches 100 % near 700)
    C.trainer.lr_schedule = "constant"
    C.rl = CfgNode()
    C.rl.steps = 200
    C.rl.prompts_per_step = 32
    C.rl.group_size = 8  # answers sampled per question
    C.rl.learning_rate = 1e-4
    C.rl.temperature = 1.0
    C.rl.normalize_std = True  # GRPO's advantages; False: reward minus group mean only
    C.rl.kl_coef = 0.0  # > 0: penalise drifting from the pretrained model
    C.rl.eval_interval = 50
    return C


def make_reward_fn(ndigit: int):
    """reward(prompts, completions) -> (N,): 1.0 where the completion is exactly the prompt's sum, reversed."""

    def reward(prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        rows = prompts.tolist()
        a = [int("".join(map(str, row[:ndigit]))) for row in rows]
        b = [int("".join(map(str, row[ndigit:]))) for row in rows]
        answers = torch.tensor([adder.encode_problem(x, y, ndigit)[2 * ndigit :] for x, y in zip(a, b)],
                               device=completions.device)  # (N, ndigit + 1)
        return (completions == answers).all(dim=1).float()

    return reward


def test_accuracy(model, problems, device) -> float:
    model.eval()
    right, total = adder.accuracy(model, problems, problems.test_indices, device)
    model.train()
    return right / total


def main(argv: list[str]) -> None:
    config = get_config()
    try:
        config.merge_from_args(argv)
        problems = adder.AdditionProblems(config.data.ndigit, config.data.test_size, config.system.seed)
        check_int(config.rl.steps, "rl.steps", 0)
        check_int(config.rl.prompts_per_step, "rl.prompts_per_step", 1)
        check_int(config.rl.group_size, "rl.group_size", 2, hint=" (advantages compare answers within a group)")
        check_int(config.rl.eval_interval, "rl.eval_interval", 1)
        n = config.data.ndigit
        config.model.vocab_size, config.model.block_size = 10, 3 * n
        config.trainer.work_dir = ""  # nothing to resume: pretraining is a short prelude here
        Trainer.check_config(config.trainer, has_val_dataset=False)
    except (KeyError, TypeError, ValueError) as e:
        adder.fail(e.args[0] if e.args else str(e))
    setup_logging(config)
    set_seed(config.system.seed)
    if config.system.num_threads > 0:
        torch.set_num_threads(config.system.num_threads)

    # 1. pretrain to a known accuracy below 100 %
    t0 = time.perf_counter()
    model = adder.GPT(config.model)
    trainer = Trainer(config.trainer, model, adder.AdditionTrainSet(problems))
    trainer.run()
    device = trainer.device
    before = test_accuracy(model, problems, device)
    logger.info("pretrained %d iters: test accuracy %.2f%%", trainer.iter_num, 100 * before)

    # 2. RL: sampled answers, checked rewards, group advantages
    reference = copy.deepcopy(model).eval().requires_grad_(False)  # the pretrained model, frozen
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.rl.learning_rate, weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(config.system.seed)  # the sampling RNG
    rng = np.random.default_rng([config.system.seed, 2])  # which training questions each step asks
    reward_fn = make_reward_fn(n)
    history = [dict(step=0, test_accuracy=before)]
    t1 = time.perf_counter()
    for step in range(1, config.rl.steps + 1):
        indices = [problems.train_index(i) for i in rng.integers(0, problems.size, config.rl.prompts_per_step)]
        prompts = torch.tensor([adder.encode_problem(*problems.operands(i), n)[: 2 * n] for i in indices],
                               dtype=torch.long, device=device)  # (P, 2n)
        stats = rl_step(model, optimizer, prompts, reward_fn, config.rl.group_size, max_new_tokens=n + 1,
                        generator=generator, temperature=config.rl.temperature,
                        normalize_std=config.rl.normalize_std, reference=reference, kl_coef=config.rl.kl_coef)
        if step % config.rl.eval_interval == 0 or step == config.rl.steps:
            acc = test_accuracy(model, problems, device)
            history.append(dict(step=step, test_accuracy=acc, **stats))
            logger.info("rl step %d | sampled reward %.3f | kl %.4f | test accuracy %.2f%%", step,
                        stats["reward"], stats["kl"], 100 * acc)
    after = history[-1]["test_accuracy"]
    print(f"rl_adder: ndigit={n} seed={config.system.seed}: test accuracy {100 * before:.2f}% after "
          f"{trainer.iter_num} pretraining iters -> {100 * after:.2f}% after {config.rl.steps} RL steps "
          f"({time.perf_counter() - t1:.1f} s of RL, {time.perf_counter() - t0:.1f} s in all)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
