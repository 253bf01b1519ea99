"""
Closing an exercise with a real training run: the student's component inside mingpt's GPT, trained by the real
Trainer on a small task, next to the reference trained the same way.

The one idea: a checker proves a component computes the right function on a few inputs; training proves it
also *learns* (gradients flow through it, nothing is detached, the initialisation is sane). The task is sorting
six digits from {0, 1, 2}: small enough for a laptop CPU, and its loss drops visibly within a few hundred steps.
A low training loss alone proves little: a model that sees the future (no causal mask) copies the answer and
reaches a loss far *below* the reference's. So the run is judged by what was asked: every parameter of your
component receives a gradient and changes; predictions never depend on later tokens (the loss computed
from prefixes alone equals the one from whole sequences); and fresh sequences are sorted as well as the
reference sorts them. Near the step where sorting emerges, two correct runs a float rounding apart can end far
apart, so a run behind the reference is only failed when a second seed is behind too. A student block behind the
reference is then tested for its residual path: with attn and mlp returning zeros, its output must still depend on x.

    from mingpt.exercises.training import train_and_compare
    result = train_and_compare(steps=300, attention=MyAttention)
    # PASSED training run: your attention reaches loss 0.31 on sorting in 300 steps (reference: 0.30) ...
"""

from __future__ import annotations

import copy
import functools
import logging
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from mingpt.exercises.checking import CheckResult, crashed, fail
from mingpt.exercises.loading import unregistered
from mingpt.model import GPT, IGNORE_INDEX
from mingpt.trainer import Trainer
from mingpt.training.optimizer import adamw

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


def _train(steps: int, seed: int, **components) -> tuple[GPT, float, dict]:
    """Train; return the model, the mean loss of the last tenth of the steps, and for every parameter of the
    student's modules whether it ever received a non-zero gradient and whether it changed."""
    torch.manual_seed(seed)
    model = GPT(sorting_config(), **components)
    classes = tuple(c for c in components.values() if isinstance(c, type))
    owned = {f"{name}.{p}": t for name, m in model.named_modules() if classes and isinstance(m, classes)
             for p, t in m.named_parameters()}
    before = {n: t.detach().clone() for n, t in owned.items()}
    # Which entries of each parameter ever received a non-zero gradient: a whole parameter without one is the plain
    # case (.detach() on a layer's output); a block of entries without one is the hidden case (k.detach() inside
    # attention: c_attn still learns through q and v, but its key rows never do).
    reached = {n: torch.zeros_like(t, dtype=torch.bool) for n, t in owned.items()}

    def note(gradient, n):
        reached[n] |= gradient != 0

    hooks = [t.register_hook(lambda g, n=n: note(g, n)) for n, t in owned.items() if t.requires_grad]
    model.configure_optimizers = _optimizer_for(model, owned)
    train_config = Trainer.get_default_config()
    train_config.max_iters, train_config.batch_size, train_config.learning_rate = steps, 32, 3e-3
    train_config.device, train_config.seed = "cpu", seed
    train_config.precision = "fp32"  # the same exact arithmetic for both models, whatever the CPU runs natively
    trainer = Trainer(train_config, model, SortDataset())
    losses = []
    trainer.add_callback("on_batch_end", lambda t: losses.append(t.loss.item()))
    try:
        trainer.run()
    finally:
        for hook in hooks:
            hook.remove()
    if trainer.interrupted:  # Ctrl-C or a grader's cell timeout: the Trainer stopped cleanly, but a run cut
        # short proves nothing, so the interrupt goes on to the caller instead of a comparison of unequal runs
        raise KeyboardInterrupt(f"training stopped after {trainer.steps_done} of {steps} steps")
    tail = losses[-max(1, steps // 10):]  # the mean of the last tenth: less noisy than the last batch
    learned = {n: (bool(reached[n].any()), not torch.equal(before[n], t.detach()), reached[n])
               for n, t in owned.items()}
    return model, sum(tail) / len(tail), learned


def _optimizer_for(model: GPT, owned: dict):
    """GPT's own optimizer. mingpt's weight-decay rule refuses to guess about a raw 2-D nn.Parameter (it may be a
    matmul weight or not); a student's component may well hold its matmul weights that way (x @ self.w_in), which
    is right, so here the component's raw matrices are decayed as the nn.Linear weights they stand for, and the run
    is compared with the reference's like with like."""
    def configure(train_config):
        try:
            return GPT.configure_optimizers(model, train_config)
        except ValueError:  # a raw matrix: named as a matmul weight (the reference's counterpart is decayed)
            return adamw(model, train_config, matmuls=[p for p in owned.values() if p.dim() >= 2])
    return configure


# A parameter of which at least this share never received a gradient is not trained, in part. A correct component
# reaches every entry (a unit of a ReLU MLP dead on every input would be one row of hundreds, far below this).
PART_WITHOUT_GRADIENT = 0.125


def _partly_frozen(learned: dict) -> list[str]:
    """Lines naming each parameter that received gradients, but never on a share of its entries (rows for a matrix)."""
    lines = []
    for name, (gradient, _, reached) in learned.items():
        never = (~reached).sum().item()
        if gradient and reached.numel() >= 8 and never >= PART_WITHOUT_GRADIENT * reached.numel():
            if reached.dim() == 2 and bool((~reached).all(dim=1).any()):
                rows = (~reached).all(dim=1).nonzero().flatten().tolist()
                where = f"rows {_ranges(rows)} of {reached.size(0)} never received a gradient"
            else:
                where = f"{never} of its {reached.numel()} entries never received a gradient"
            lines.append(f"{name} {tuple(reached.shape)}: {where}")
    return lines


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans, start = [], None
    for i, x in enumerate(indices):
        start = x if start is None else start
        if i + 1 == len(indices) or indices[i + 1] != x + 1:
            spans.append(f"{start}-{x}" if x > start else f"{x}")
            start = None
    return ", ".join(spans)


def _unregistered(exercise: str, seed: int, components: dict) -> CheckResult | None:
    """A failed result when a student's module keeps layers or weights where PyTorch cannot see them (a plain list,
    a bare tensor): compared with the reference module in the same place of the reference GPT. Such weights are
    neither trained nor saved, yet the run can still reach a good loss through the other parameters."""
    torch.manual_seed(seed)
    model, reference = GPT(sorting_config(), **components), GPT(sorting_config())
    theirs = dict(reference.named_modules())
    classes = tuple(c for c in components.values() if isinstance(c, type))
    for name, module in model.named_modules():
        if classes and isinstance(module, classes) and name in theirs:
            problem = unregistered(exercise, module, theirs[name].state_dict())
            if problem is not None:
                problem.counterexample = f"{name}: {problem.counterexample}"
                return problem
    return None


def _behind(loss: float, reference: float, yours: dict, ours: dict, tolerance: float) -> bool:
    """Whether a run is worse than the reference's by more than `tolerance`: in training loss, or in the fresh loss
    from prefixes (what generation sees)."""
    return loss > reference + tolerance or yours["prefix"] > ours["prefix"] + tolerance


class _Zeros(nn.Module):
    """A sublayer that returns zeros shaped like its input, whatever else it is given (kv_cache, attn_mask)."""

    def forward(self, x, *args, **kwargs):
        return torch.zeros_like(x)


@torch.no_grad()
def _residual_missing(model: GPT, components: dict) -> str | None:
    """
    Evidence for a run behind the reference: the name of a student block whose output, with its attn and mlp
    replaced by zeros, does not depend on its input (no residual path: x never reaches the output but through the
    sublayers). A pre-LN block then returns x itself; a post-LN one ln(x), which depends on x too. None otherwise.
    """
    block_class = components.get("block")
    if not isinstance(block_class, type):
        return None
    for name, module in model.named_modules():
        if not (isinstance(module, block_class) and isinstance(getattr(module, "attn", None), nn.Module)
                and isinstance(getattr(module, "mlp", None), nn.Module)):
            continue
        block = copy.deepcopy(module).eval()
        block.attn, block.mlp = _Zeros(), _Zeros()
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(2, 5, model.config.n_embd, generator=generator) for _ in range(2))
        try:
            same_output = torch.equal(block(a), block(b))
        except Exception:  # a block that cannot run with these stand-ins: no evidence either way
            return None
        if same_output:
            return name
    return None


@torch.no_grad()
def held_out(model: GPT, size: int = 100, seed: int = 12345) -> dict:
    """On freshly drawn sequences (the task has only 3^6 inputs, so most were seen in training: this measures the
    task done by generation, not generalisation): the loss from whole sequences, the loss when each position sees
    only its prefix (what generation does), the largest logit difference between the two, and the greedy sort
    accuracy, and how far a second call on the same input differs (it must not: eval mode is deterministic)."""
    model.eval()
    data = SortDataset(size=size, seed=seed)
    x = torch.stack([data[i][0] for i in range(size)])
    y = torch.stack([data[i][1] for i in range(size)])
    full, _ = model(x)
    prefix = torch.stack([model(x[:, : t + 1])[0][:, -1] for t in range(x.shape[1])], dim=1)

    def loss(logits):
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX).item()
    prompts = data.inputs[:size]
    out = model.generate(prompts, max_new_tokens=data.length, use_cache=False)[:, data.length:]
    correct = (out == prompts.sort(dim=1).values).all(dim=1).float().mean().item()
    again = (model(x)[0] - full).abs().max().item()  # eval mode: the same input must give the same output
    return {"full": loss(full), "prefix": loss(prefix), "leak": (full - prefix).abs().max().item(), "sorted": correct,
            "again": again}


@functools.lru_cache(maxsize=8)
def _reference_run(steps: int, seed: int, threads: int) -> tuple[float, dict]:
    """The reference's final loss and held-out numbers. They depend only on (steps, seed) -- the run is seeded and
    exact fp32 -- and on the thread count (a sum split another way rounds another way), so a class that checks
    many components trains the reference once per setting instead of once per call."""
    model, loss, _ = _train(steps, seed)
    return loss, held_out(model)


def _reference(steps: int, seed: int) -> tuple[float, dict]:
    loss, numbers = _reference_run(steps, seed, torch.get_num_threads())
    return loss, dict(numbers)  # a copy: the cached numbers stay as they were whatever the caller does


def train_and_compare(steps: int = 300, seed: int = 0, tolerance: float = 0.1, **components) -> CheckResult:
    """
    Train GPT(config, **components) and the reference for `steps` on sorting; pass when every parameter of the
    student's components got a gradient and changed, no prediction depends on later tokens, the final loss is
    within `tolerance` of the reference's (or lower), and on fresh sequences the loss from prefixes (what generation
    sees) is within `tolerance` of the reference's; a run behind the reference is repeated with seed + 1 (student
    and reference), and fails only when that one is behind too (short runs are noisy). components: attention=,
    mlp=, layer_norm= or block= (see mingpt.components).
    """
    if not components:
        raise ValueError("give at least one component to train, e.g. train_and_compare(attention=MyAttention)")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    names = ", ".join(f"{k}={getattr(v, '__name__', v)}" for k, v in components.items())
    exercise = f"training run ({names})"
    try:
        hidden = _unregistered(exercise, seed, components)
        if hidden is not None:  # weights the optimizer never sees: caught before a run that would prove nothing
            return hidden
        model, loss, learned = _train(steps, seed, **components)
    except (TypeError, ValueError) as e:
        if "must define" in str(e) or "must be an nn.Module" in str(e):
            return fail(exercise, "your class does not fit into GPT", str(e),
                        hint="GPT calls each component in one fixed way (see mingpt.components)")
        return crashed(exercise, f"training GPT({names})", e)
    except FloatingPointError as e:  # the Trainer stops on a non-finite loss: name it when it is there from the start
        if re.search(r"loss is (nan|inf|-inf) at step 0\b", str(e)):
            return fail(exercise, "the loss is NaN from the first step: your component outputs non-finite values",
                        "Before any update, on the model as initialised, the loss is already not a number: some "
                        "value in your component's forward is NaN or inf on ordinary inputs, and it spreads to every "
                        "logit. A softmax over a row that is masked entirely (the diagonal masked too, so position 0 "
                        "sees nothing), a log of 0 or a division by 0 are the usual sources.", str(e),
                        "run your component once on torch.randn input and look for torch.isnan in its output, "
                        "position by position")
        return crashed(exercise, f"training GPT({names})", e)
    except Exception as e:
        return crashed(exercise, f"training GPT({names})", e)
    reference, ours = _reference(steps, seed)
    try:
        yours = held_out(model)
        out = model.generate(torch.tensor([[2, 0, 1, 2, 0, 1]]), max_new_tokens=6, use_cache=False)[0, 6:].tolist()
    except Exception as e:
        return crashed(exercise, "evaluating the trained model on fresh sequences", e)
    summary = f"your model reaches loss {loss:.3f} on sorting in {steps} steps (reference: {reference:.3f})"
    logger.info(summary)
    stuck = [n for n, (gradient, changed, _) in learned.items() if not (gradient and changed)]
    if stuck:
        no_gradient = [n for n in stuck if not learned[n][0]]
        return fail(exercise, "parameters that do not learn",
                    f"{len(stuck)} of the {len(learned)} parameters of your component never "
                    f"{'received a gradient' if no_gradient else 'changed'}: the loss cannot train them.",
                    "\n".join(f"{n}: gradient {'yes' if g else 'never'}, changed {'yes' if c else 'no'}"
                              for n, (g, c, _) in learned.items() if n in stuck[:6]),
                    "look for .detach(), .data, torch.no_grad() or a tensor rebuilt from numbers in your forward, "
                    "and for weights that are multiplied by 0 or never used")
    if yours["again"] > 1e-6:  # before the look-ahead test, which a random output would fail too
        return fail(exercise, "not deterministic in eval mode",
                    "The trained model, in eval mode, gives different outputs for the same input on two calls: "
                    "something in your component is random at every call.",
                    f"the same fresh sequences twice: largest logit difference {yours['again']:.3g}",
                    "a layer built inside forward is new (random, untrained) at every call: build it in __init__; "
                    "dropout must follow self.training (nn.Dropout, or F.dropout(..., training=self.training))")
    if yours["leak"] > 1e-3:
        return fail(exercise, "your model looks at future tokens",
                    "Its prediction at a position changes when later tokens are removed, so during training it can "
                    "read the answer it is asked to predict; generation has no future tokens, so it fails there.",
                    f"fresh loss from whole sequences {yours['full']:.3f}, from prefixes only (as in generation) "
                    f"{yours['prefix']:.3f}; largest logit difference {yours['leak']:.3g}\n"
                    f"greedy sort of [2, 0, 1, 2, 0, 1]: {out}", "mask the attention scores of later positions")
    noise, behind = "", _behind(loss, reference, yours, ours, tolerance)
    if behind:
        # Near the step where sorting emerges, two correct models a float rounding apart (another CPU, GELU's
        # exact form for its tanh approximation) can end far apart, and so can two seeds of the reference itself:
        # one run behind proves little. A second seed, student and reference alike, must agree before we fail.
        again_model, again_loss, _ = _train(steps, seed + 1, **components)
        again_reference, again_ours = _reference(steps, seed + 1)
        behind = _behind(again_loss, again_reference, held_out(again_model), again_ours, tolerance)
        if not behind:
            noise = (f"behind the reference with seed {seed}, within {tolerance} of it with seed {seed + 1} "
                     f"(loss {again_loss:.3f}, reference {again_reference:.3f}): runs this short are noisy")
    lost = _residual_missing(model, components) if behind else None
    if lost is not None:
        return fail(exercise, "residual connection missing: the block's output does not carry its input x",
                    "A block adds its sublayers' outputs to its input: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)). "
                    "With attn and mlp replaced by zeros, yours no longer depends on x at all, so everything must "
                    "pass through the sublayers and a deep model trains badly.",
                    f"{lost}: with attn and mlp returning zeros, two different inputs give the same output\n"
                    f"{summary}", "return x + ..., for both halves of the block")
    if behind and not loss <= reference + tolerance:
        return fail(exercise, "trains worse than the reference", summary + ".",
                    f"the same data, seed and steps: reference {reference:.3f}, yours {loss:.3f} (behind with seed "
                    f"{seed + 1} too)",
                    "if the checker passed but training does not: look for .detach(), .data or torch.no_grad() "
                    "in your forward, or parameters created outside __init__")
    # Judged on the loss generation sees (each position from its prefix), not on the exact-sort rate: near the
    # point where sorting emerges, two correct models a float rounding apart can sort 30 % and 90 % of sequences.
    if behind and yours["prefix"] > ours["prefix"] + tolerance:
        return fail(exercise, "sorts fresh sequences worse than the reference",
                    "The loss went down, but the task is not solved: on unseen sequences, predicting each token from "
                    "its prefix (what generation does) is worse than the reference.",
                    f"{summary}\nfresh loss from prefixes: yours {yours['prefix']:.3f}, reference "
                    f"{ours['prefix']:.3f}\nfresh sequences sorted exactly: yours {yours['sorted']:.0%}, reference "
                    f"{ours['sorted']:.0%}\ngreedy sort of [2, 0, 1, 2, 0, 1]: {out}",
                    "generation feeds the model its own outputs one position at a time: compare model(x) with "
                    "model(x[:, :t + 1]) at position t")
    # Last: a run that trains well can still leave a block of a parameter untrained (k.detach() inside attention
    # learns through q and v). Checked after the loss, so a run that is behind is named by that, the larger fact.
    partly = _partly_frozen(learned)
    if partly:
        return fail(exercise, "part of a parameter never receives a gradient",
                    "Every parameter of your component learned something, but a block of entries of "
                    f"{'one of them' if len(partly) == 1 else f'{len(partly)} of them'} never received a gradient "
                    f"in {steps} steps: the computation that uses them is cut from the loss (the run can still reach "
                    "a good loss through the rest).", "\n".join(partly[:6]),
                    "look for a .detach(), .data or torch.no_grad() on one of the tensors split from a layer's "
                    "output (q, k or v of c_attn, one half of a gated MLP), for entries multiplied by 0, or for a "
                    "result that cannot depend on them (a softmax over one key is 1 whatever q and k are)")
    return CheckResult(exercise, True, checked=[
        summary, *([noise] if noise else []), f"every parameter of your component learned ({len(learned)})",
        f"no look-ahead (fresh loss {yours['full']:.3f} = {yours['prefix']:.3f} from prefixes)",
        f"fresh sequences sorted: {yours['sorted']:.0%} (reference {ours['sorted']:.0%})",
        f"greedy sort of [2, 0, 1, 2, 0, 1]: {out}"])
