"""
Closing an exercise with a real training run: the student's component inside mingpt's GPT, trained by the real
Trainer on a small task, next to the reference trained the same way.

The one idea: a checker proves a component computes the right function on a few inputs; training proves it
also *learns* (gradients flow through it, nothing is detached, the initialisation is sane). The task is sorting
six digits from {0, 1, 2}: small enough for a laptop CPU, and its loss drops visibly within a few hundred steps.

    from mingpt.exercises.training import train_and_compare
    result = train_and_compare(steps=300, attention=MyAttention)
    # PASSED training run: your attention reaches loss 0.31 on sorting in 300 steps (reference: 0.30) ...
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

from mingpt.exercises.checking import CheckResult, crashed, fail
from mingpt.model import GPT, IGNORE_INDEX
from mingpt.trainer import Trainer

__all__ = ["SortDataset", "train_and_compare", "sorting_config"]

logger = logging.getLogger(__name__)


class SortDataset(Dataset):
    """Sequences ``digits + sorted(digits)``, shifted by one; loss only on the sorted half."""

    def __init__(self, length: int = 6, num_digits: int = 3, size: int = 10_000, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.length = length
        self.inputs = torch.randint(num_digits, (size, length), generator=g)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i):
        digits = self.inputs[i]
        seq = torch.cat([digits, digits.sort().values])
        x, y = seq[:-1].clone(), seq[1:].clone()
        y[: self.length - 1] = IGNORE_INDEX  # predicting the unsorted input is not the task
        return x, y


def sorting_config():
    """A small GPT for the sorting task (2 layers, 2 heads, 32 channels, no dropout)."""
    config = GPT.get_default_config()
    config.n_layer, config.n_head, config.n_embd = 2, 2, 32
    config.vocab_size, config.block_size = 3, 11
    config.embd_pdrop = config.resid_pdrop = config.attn_pdrop = 0.0
    return config


def _train(steps: int, seed: int, **components) -> tuple[GPT, float]:
    torch.manual_seed(seed)
    model = GPT(sorting_config(), **components)
    train_config = Trainer.get_default_config()
    train_config.max_iters, train_config.batch_size, train_config.learning_rate = steps, 32, 3e-3
    train_config.device, train_config.seed = "cpu", seed
    train_config.precision = "fp32"  # the same exact arithmetic for both models, whatever the CPU runs natively
    trainer = Trainer(train_config, model, SortDataset())
    losses = []
    trainer.add_callback("on_batch_end", lambda t: losses.append(t.loss.item()))
    trainer.run()
    if trainer.interrupted:  # Ctrl-C or a grader's cell timeout: the Trainer stopped cleanly, but a run cut
        # short proves nothing, so the interrupt goes on to the caller instead of a comparison of unequal runs
        raise KeyboardInterrupt(f"training stopped after {trainer.steps_done} of {steps} steps")
    tail = losses[-max(1, steps // 10):]  # the mean of the last tenth: less noisy than the last batch
    return model, sum(tail) / len(tail)


def train_and_compare(steps: int = 300, seed: int = 0, tolerance: float = 0.1, **components) -> CheckResult:
    """
    Train GPT(config, **components) and the reference for `steps` on sorting; pass when the student's final loss
    is within `tolerance` of the reference's (or lower) and the model sorts a prompt by greedy generation.
    components: attention=, mlp=, layer_norm= or block= (see mingpt.components).
    """
    if not components:
        raise ValueError("give at least one component to train, e.g. train_and_compare(attention=MyAttention)")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    names = ", ".join(f"{k}={getattr(v, '__name__', v)}" for k, v in components.items())
    exercise = f"training run ({names})"
    try:
        model, loss = _train(steps, seed, **components)
    except (TypeError, ValueError) as e:
        if "must define" in str(e) or "must be an nn.Module" in str(e):
            return fail(exercise, "your class does not fit into GPT", str(e),
                        hint="GPT calls each component in one fixed way (see mingpt.components)")
        return crashed(exercise, f"training GPT({names})", e)
    except Exception as e:
        return crashed(exercise, f"training GPT({names})", e)
    _, reference = _train(steps, seed)
    prompt = torch.tensor([[2, 0, 1, 2, 0, 1]])
    try:
        out = model.generate(prompt, max_new_tokens=6, use_cache=False)[0, 6:].tolist()
    except Exception as e:
        return crashed(exercise, "model.generate with your component", e)
    summary = f"your model reaches loss {loss:.3f} on sorting in {steps} steps (reference: {reference:.3f})"
    logger.info(summary)
    if not loss <= reference + tolerance:
        return fail(exercise, "trains worse than the reference", summary + ".",
                    f"the same data, seed and steps: reference {reference:.3f}, yours {loss:.3f}",
                    "if the checker passed but training does not: look for .detach(), .data or torch.no_grad() "
                    "in your forward, or parameters created outside __init__")
    return CheckResult(exercise, True, checked=[summary, f"greedy sort of [2, 0, 1, 2, 0, 1]: {out}"])
