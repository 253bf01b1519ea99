"""The held-out probe, round 15, post-training part (the SFT targets, the LoRA layer, the DPO loss and GRPO's group
advantages): written fresh by w24x before reading these checkers' tables, tests/mistakes_*.py or rounds 13-14, from
the exercises' docstrings, notebook 09's task text and fill-in skeletons and mingpt.posttrain only, and counted
untuned first. The angle: the course's own fill-in cells (the blank filled with the wrong variable or axis, the
mask left unshifted, the skeleton's nn.Parameter names), interface slips (a tuple returned, arguments in another
order, the input modified in place, a forgotten return, lists or numpy out), numerics (float16 intermediates,
.item() too early, math.sqrt on a tensor, log of a sigmoid) and two slips that partly cancel. See heldout_probe.py."""

from __future__ import annotations

import torch

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round14_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 15
IGNORE = -1  # mingpt's IGNORE_INDEX


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ SFT targets
def sft(mask_slice=slice(1, None), invert=False, ignore=IGNORE, clone=True, out="xy", x_len=-1, dtype=None,
        fill_zero=False):
    def fn(ids, is_assistant):
        x = ids[:x_len] if x_len is not None else ids
        y = ids[1:].clone() if clone else ids[1:]
        keep = is_assistant[mask_slice]
        if fill_zero:
            y = y * keep.long()
        else:
            y[keep if invert else ~keep] = ignore
        if dtype is not None:
            y = y.to(dtype)
        return {"xy": (x, y), "yx": (y, x), "xym": (x, y, keep), "list": (x.tolist(), y.tolist()),
                "none": None}[out]
    return fn


C = ex.check_sft_targets
SHIFT = r"shift|off by one|is_assistant\[:-1\]|unshifted|one (position|token) (early|late)|mask.*(move|align)"
mistake(C, SHIFT)(sft(mask_slice=slice(None, -1)))
mistake(C, r"in.place|clone|modif|alias|view")(sft(clone=False))
mistake(C, r"invert|opposite|revers|~|the prompt|non-assistant|user")(sft(invert=True))
mistake(C, r"-100|ignore.index|IGNORE_INDEX|-1")(sft(ignore=-100))
mistake(C, r"swap|order|\(y, x\)|x and y")(sft(out="yx"))
mistake(C, r"extra|three|tuple|2 (values|outputs)|pair|mask|two tensors")(sft(out="xym"))  # widened: a fair name
mistake(C, r"list|tensor|type")(sft(out="list"))
mistake(C, r"shape|length|ids\[:-1\]|T-1|last token|x ")(sft(x_len=None))
mistake(C, r"0|zero|-1|IGNORE|multipl")(sft(fill_zero=True))
mistake(C, r"dtype|float|long|int64")(sft(dtype=torch.float32))
mistake(C, r"dtype|int32|long|int64")(sft(dtype=torch.int32))
mistake(C, r"None|return")(sft(out="none"))


@mistake(C, r"revers|previous|shift|swap|direction|ids\[1:\]")
def sft_backwards(ids, is_assistant):  # x and y sliced from the wrong ends
    x, y = ids[1:], ids[:-1].clone()
    y[~is_assistant[:-1]] = IGNORE
    return x, y


@mistake(C, r"first (answer )?token|&|and|both|previous|marker|<assistant>")
def sft_and(ids, is_assistant):  # "current and next both assistant": drops the first answer token
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[:-1] & is_assistant[1:])] = IGNORE
    return x, y


@mistake(C, r"or|\||extra|next user|after.*end|shift")
def sft_or(ids, is_assistant):  # either side assistant: also trains on the turn after <end>
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[:-1] | is_assistant[1:])] = IGNORE
    return x, y


@mistake(C, r"turn|multi|between|contiguous|span|user")
def sft_one_span(ids, is_assistant):  # one span from the first to the last assistant token: multi-turn breaks
    x, y = ids[:-1], ids[1:].clone()
    where = is_assistant.nonzero().flatten()
    keep = torch.zeros_like(is_assistant)
    if len(where):
        keep[where[0]: where[-1] + 1] = True
    y[~keep[1:]] = IGNORE
    return x, y


@mistake(C, r"x.*(mask|-1|IGNORE)|input|x ")
def sft_mask_x_too(ids, is_assistant):  # the input masked as well
    x, y = ids[:-1].clone(), ids[1:].clone()
    y[~is_assistant[1:]] = IGNORE
    x[~is_assistant[:-1]] = IGNORE
    return x, y


@mistake(C, r"float|dtype|long|int64")
def sft_float_mask(ids, is_assistant):  # arithmetic masking turns y into floats
    m = is_assistant[1:].float()
    return ids[:-1], ids[1:] * m + (1 - m) * IGNORE


@mistake(C, r"length|shape|last|loop|range|T-2")
def sft_loop_short(ids, is_assistant):  # a loop one step short
    ys = [int(ids[t + 1]) if is_assistant[t + 1] else IGNORE for t in range(len(ids) - 2)]
    return ids[:-1], torch.tensor(ys, dtype=torch.long)


@valid(C)
def sft_mask_then_shift(ids, is_assistant):  # mask the whole sequence, then shift both: same numbers
    y = ids.clone()
    y[~is_assistant] = IGNORE
    return ids[:-1], y[1:]


@valid(C)
def sft_where(ids, is_assistant):
    return ids[:-1], torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], IGNORE))


@valid(C)
def sft_loop(ids, is_assistant):
    ys = [int(ids[t + 1]) if bool(is_assistant[t + 1]) else IGNORE for t in range(len(ids) - 1)]
    return ids[:-1].clone(), torch.tensor(ys, dtype=torch.long)


from heldout_probe_round15_post2 import *  # noqa: E402,F401,F403  (LoRA, DPO, GRPO rows, in this order)
