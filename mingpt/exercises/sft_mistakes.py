"""
The SFT checker's table (posttrain.py): the conversations it tests (each chosen so that a common slip shows), the
reference targets rebuilt from a mask (masked), and the named mistakes (SFT_MISTAKES), each one formula of the two
flags a mask can be made of, plus their pairs with a wrong fill value (SFT_PAIRS).
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import Variant
from mingpt.exercises.compare import two_mistakes
from mingpt.model import IGNORE_INDEX

__all__ = ["ASSISTANT", "CONVERSATION", "END", "IS_ASSISTANT", "SFT_CASES", "SFT_MISTAKES", "SFT_PAIRS", "TIE_BREAK",
           "USER", "masked", "reply_starts"]

# ------------------------------------------------------------------------------------------ the conversations tested
USER, ASSISTANT, END = 20, 21, 22  # the special ids of the checker's conversation
CONVERSATION = [USER, 3, 9, 4, END, ASSISTANT, 7, 11, END, USER, 5, END, ASSISTANT, 12, 2, 8, END]
IS_ASSISTANT = [False] * 6 + [True] * 3 + [False] * 4 + [True] * 4  # the replies and the END after each
# ids past a byte, a signed byte and int16 (GPT-2's vocabulary has 50257), a user token (END) also in a reply
BIG = [USER, 300, 1000, 7, END, ASSISTANT, 50000, 257, 200, END, USER, 33000, END, ASSISTANT, 256, END]
BIG_IS_ASSISTANT = [False] * 6 + [True] * 4 + [False] * 4 + [True] * 2
# T = 2, an empty reply (its END) at ids[1] (a squeeze() to 0-dim, a loop that starts at 1 show here), and the
# first conversation again with another mask (y must follow is_assistant, not a mask kept from an earlier call)
SHORT, SHORT_IS_ASSISTANT = [ASSISTANT, END], [False, True]
OTHER_IS_ASSISTANT = [False] * 2 + [True] * 3 + [False] * 6 + [True] * 6
# Token 0 in a reply (and in a question): a real id, which a mask built by value (y * mask, then y == 0) loses.
ZERO, ZERO_IS_ASSISTANT = [USER, 0, 4, END, ASSISTANT, 0, 6, 0, END], [False] * 5 + [True] * 4
SFT_CASES = [(torch.tensor(CONVERSATION), torch.tensor(IS_ASSISTANT)),
             (torch.tensor(BIG), torch.tensor(BIG_IS_ASSISTANT)),
             (torch.tensor(SHORT), torch.tensor(SHORT_IS_ASSISTANT)),
             (torch.tensor(CONVERSATION), torch.tensor(OTHER_IS_ASSISTANT)),
             (torch.tensor(ZERO), torch.tensor(ZERO_IS_ASSISTANT))]
# A tie-break: a window cut off in a user turn (after the last reply the user speaks again). Every case above ends
# with a reply, where some rows give the same targets (a running flag, one span from the first reply to the last);
# among the rows that explain every case above, one that also explains this one is named first.
TIE_BREAK = (torch.tensor([USER, 3, END, ASSISTANT, 7, 11, END, USER, 5, 9]),
             torch.tensor([False] * 4 + [True] * 3 + [False] * 3))


def masked(ids: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor | None = None, fill: int = IGNORE_INDEX):
    """The targets (ids[1:] unless given) with `fill` wherever `keep` is False: the reference when keep is
    is_assistant[1:], and every named mistake is this with another keep, targets or fill."""
    targets = ids[1:] if targets is None else targets
    return torch.where(keep, targets, torch.full_like(targets, fill))


def reply_starts(a: torch.Tensor) -> torch.Tensor:
    """The index in ids of each reply's first token (where is_assistant turns on)."""
    return (a[1:] & ~a[:-1]).nonzero().flatten() + 1


# The mask of y[t] can only be made of two flags: is the input ids[t] the assistant's (a[:-1]) and is the predicted
# ids[t+1] (a[1:]). Beside the slips named in words below, every other plausible combination of the two is named by
# its formula (the conversation has all four pairs of flags, so no two formulas give the same targets).
SFT_MISTAKES = [
    Variant("the mask is not shifted with the targets (off by one)", lambda ids, a: masked(ids, a[:-1]),
            "y[t] is the token at t+1, so whether it counts depends on is_assistant[t+1]; yours used "
            "is_assistant[t]: it skips the assistant's first token and trains on the token after each end of "
            "turn (the next speaker's marker).", "shift the mask exactly as the targets: [1:]"),
    Variant("the targets are not shifted (predicting the current token)", lambda ids, a: masked(ids, a[1:], ids[:-1]),
            "Position t must predict the *next* token ids[t+1]; yours asks it to copy ids[t].", "y comes from ids[1:]"),
    Variant("nothing is masked (loss on the user's tokens too)", lambda ids, a: ids[1:].clone(),
            "SFT trains only on the assistant's tokens: the model should answer questions, not learn to write them.",
            "set the targets of non-assistant tokens to -1"),
    Variant("the mask is inverted (loss on everything but the assistant)", lambda ids, a: masked(ids, ~a[1:]),
            "The loss must be on the assistant's tokens, and on nothing else.", "keep where is_assistant is True"),
    Variant("the end-of-turn token is masked out", lambda ids, a: masked(ids, a[1:] & (ids[1:] != END)),
            "The END after each reply is in the loss on purpose: it is how the model learns to stop talking.",
            "is_assistant already marks that END: use it as it is"),
    Variant("the assistant's role marker is trained on", lambda ids, a: masked(ids, a[1:] | (ids[1:] == ASSISTANT)),
            "The program writes the assistant marker itself to say 'your turn'; the model never has to predict it.",
            "use is_assistant as it is, without adding the role markers"),
    # the same two slips by position (a span's last token, the token before a span), as code that marks the END or
    # the marker from is_assistant's edges rather than from their ids does: told apart from the rows above where a
    # reply's first token is an END (the last conversation's other mask)
    Variant("the end-of-turn token is masked out (each reply's last token dropped from the mask)",
            lambda ids, a: masked(ids, a[1:] & torch.cat([a[2:], torch.tensor([False])])),
            "The END after each reply (the last token is_assistant marks in it) is in the loss on purpose: it is how "
            "the model learns to stop talking.", "is_assistant already marks that END: use it as it is"),
    Variant("the assistant's role marker is trained on (the token before each reply added to the mask)",
            lambda ids, a: masked(ids, a[1:] | torch.cat([a[2:], torch.tensor([False])])),
            "The program writes the assistant marker itself to say 'your turn'; the model never has to predict it. "
            "Yours also trains on the token just before each reply, where that marker stands.",
            "use is_assistant as it is, without widening it by one token"),
    Variant("loss on everything after the assistant's first token", lambda ids, a: masked(ids, a.cumsum(0)[1:] > 0),
            "Every later user turn is masked too: only the assistant's own tokens (and each reply's END) count.",
            "use is_assistant[1:] itself, not a running flag"),
    Variant("one span from the assistant's first token to its last (the user turns between replies trained too)",
            lambda ids, a: masked(ids, (a.cumsum(0) > 0)[1:] & (a.flip(0).cumsum(0).flip(0) > 0)[1:]),
            "Each reply is its own span: the user's turns between two replies are not the assistant's and must "
            "stay masked; one span from the first reply to the last trains on them.",
            "use is_assistant[1:] position by position, not the span between its first and last True"),
    Variant("the labels are not shifted (Hugging Face's models shift inside; mingpt's GPT does not)",
            lambda ids, a: masked(ids, a[:-1], ids[:-1]),
            "Yours masks ids with is_assistant and returns it unshifted, as for a Hugging Face model, which shifts "
            "the labels inside its forward; mingpt's GPT compares the logits at t with y[t] as given.",
            "shift the masked labels: y = labels[1:] (x = ids[:-1])"),
    Variant("only the last reply is trained (the earlier assistant turns are masked)",
            lambda ids, a: masked(ids, a[1:] & (torch.arange(len(a) - 1) >= reply_starts(a)[-1] - 1)),
            "Every reply of the conversation is the assistant's and is trained on, not just the final one.",
            "keep = is_assistant[1:], for every turn"),
    Variant("only the first reply is trained (the later assistant turns are masked)",
            lambda ids, a: masked(ids, a[1:] & (torch.arange(len(a) - 1) < (list(reply_starts(a)) + [len(a)])[1] - 1)),
            "Every reply of the conversation is the assistant's and is trained on, not just the first one.",
            "keep = is_assistant[1:], for every turn"),
    *[Variant(f"the mask is {formula}, not is_assistant[1:]",
              lambda ids, a, keep=keep: masked(ids, keep(a[:-1], a[1:])),
              "y[t] counts exactly when the token it asks for, ids[t+1], is the assistant's: is_assistant[1:], "
              "whatever the input token ids[t] is.", "keep = is_assistant[1:]") for formula, keep in (
        ("is_assistant[:-1] & is_assistant[1:] (each reply's first token is not trained)", lambda i, o: i & o),
        ("is_assistant[:-1] | is_assistant[1:] (the token after each reply's END is trained too)", lambda i, o: i | o),
        ("empty (every target is -1)", lambda i, o: torch.zeros_like(o)),
        ("~is_assistant[:-1] (the unshifted mask, inverted)", lambda i, o: ~i),
        ("is_assistant[:-1] ^ is_assistant[1:] (only where the speaker changes)", lambda i, o: i ^ o),
        ("is_assistant[1:] & ~is_assistant[:-1] (only each reply's first token)", lambda i, o: o & ~i),
        ("is_assistant[:-1] & ~is_assistant[1:] (only the token after each reply)", lambda i, o: i & ~o))],
    *[Variant(f"the mask is shifted twice (is_assistant[2:], {how}), not once", lambda ids, a, pad=pad: masked(
        ids, torch.cat([a[2:], a[-1:] if pad is None else torch.tensor([pad])])),
        "y[t] counts when ids[t+1] is the assistant's: is_assistant[1:], the same one-place shift as the targets; "
        "yours shifts the mask one place further and asks about ids[t+2].", "keep = is_assistant[1:]")
      for pad, how in ((None, "its last flag repeated"), (False, "padded with False"))],
    # the mask moved the wrong way: y[t] asks about the token before ids[t] (roll(1) where roll(-1) was meant)
    *[Variant(f"the mask shifted the wrong way (is_assistant[t-1], {how}), not is_assistant[t+1]",
              lambda ids, a, wrap=wrap: masked(ids, torch.cat([a[-1:] if wrap else torch.tensor([False]), a[:-2]])),
              "y[t] is the token ids[t+1], so its flag is is_assistant[t+1] (is_assistant[1:], or roll(-1) with "
              "the last element dropped); yours shifted the flags the other way, to is_assistant[t-1], two places "
              "from the right one.", "keep = is_assistant[1:]")
      for wrap, how in ((True, "is_assistant.roll(1), the last flag wrapped to the front"),
                        (False, "padded with False at the front"))],
    Variant("the first target is always masked (y[0]: a loop that starts at 1?)",
            lambda ids, a: masked(ids, a[1:] & (torch.arange(len(a) - 1) > 0)),
            "y[0] is the token ids[1]: when the assistant speaks first, it is trained on like any other of its "
            "tokens (a loop over range(1, ...) never fills it).", "keep = is_assistant[1:] for every position, the "
            "first one included"),
    Variant("the last target is masked (the final end of turn is not trained)",
            lambda ids, a: masked(ids, a[1:] & (torch.arange(len(a) - 1) < len(a) - 2)),
            "The last target, ids[-1], is the END of the final reply: it is the assistant's and is trained on like "
            "every other reply's END (a loop over range(len(y) - 1), or a y[-1] = -1, drops it).",
            "keep = is_assistant[1:] for every position, the last one included"),
    Variant("the assistant's tokens of id 0 masked too (y * mask, then 0 read as 'masked')",
            lambda ids, a: masked(ids, a[1:] & (ids[1:] != 0)),
            "0 is a real token id: after multiplying the targets by the mask, a 0 can be a masked position or an "
            "answer token 0, and testing y == 0 masks both.", "torch.where(is_assistant[1:], ids[1:], -1): the "
            "mask decides, not the value"),
    Variant("masked by token value (ids that also occur in a reply), not by position",
            lambda ids, a: masked(ids, torch.isin(ids[1:], ids[a])),
            "Whether a target counts depends on *who wrote that position*, not on which token it is: a token of the "
            "user's (an END, a number) that also occurs in a reply is not the assistant's there.",
            "keep = is_assistant[1:], position by position"),
    *[Variant(f"the ids pass through {dtype} (ids above {top} wrap around)",
              lambda ids, a, dtype=dtype: masked(ids, a[1:], ids[1:].to(dtype).long()),
              f"{dtype} holds integers up to {top} only; a vocabulary has more ids (GPT-2's 50257), and larger ids "
              "wrap around to other tokens.", "keep the ids' own dtype, torch.long")
      for dtype, top in ((torch.uint8, 255), (torch.int8, 127), (torch.int16, 32767))],
    *[Variant(f"the mask broadcast against the targets: y is (T-1, T-1), not (T-1,) ({how})", compute,
              "torch.where (or a product) of a (T-1, 1) tensor and a (T-1,) one broadcasts to a (T-1, T-1) square: "
              "row t is the whole target sequence masked by one flag (or the other way round). Both must be 1-D.",
              "keep both 1-D: torch.where(is_assistant[1:], ids[1:], -1)") for how, compute in (
        ("the mask of shape (T-1, 1)", lambda ids, a: torch.where(a[1:, None], ids[1:], IGNORE_INDEX)),
        ("the targets of shape (T-1, 1)", lambda ids, a: torch.where(a[1:], ids[1:, None], IGNORE_INDEX)))],
    # a loop that writes the -1s over part of the positions only: the first or the last target never masked (seen
    # only where that position is not the assistant's: for the last, a window cut off in a user turn, TIE_BREAK)
    Variant("the first target is never masked (a loop over range(1, T - 1) leaves y[0] = ids[1])",
            lambda ids, a: masked(ids, a[1:] | (torch.arange(len(a) - 1) == 0)),
            "Every target whose token is not the assistant's is -1, the first one included: a loop that starts at 1 "
            "never reaches y[0], which keeps the user's token.", "mask every position: y[~is_assistant[1:]] = -1, "
            "no loop"),
    Variant("the last target is never masked (a loop over range(T - 2) stops one short)",
            lambda ids, a: masked(ids, a[1:] | (torch.arange(len(a) - 1) == len(a) - 2)),
            "Every target whose token is not the assistant's is -1, the last one included: a window cut off in a "
            "user turn ends with the user's token, which a loop that stops one short leaves in the loss.",
            "mask every position: y[~is_assistant[1:]] = -1, no loop"),
    Variant("masked with 0 instead of -1", lambda ids, a: masked(ids, a[1:], fill=0),
            "0 is a real token id: the model would be trained to predict token 0 everywhere you meant to mask.",
            "mingpt's ignored target is -1 (mingpt.model.IGNORE_INDEX)"),
    Variant("masked with -100 (PyTorch's default) instead of mingpt's -1", lambda ids, a: masked(ids, a[1:], fill=-100),
            "mingpt's loss ignores -1 (IGNORE_INDEX), as the original minGPT did; -100 would crash its cross-entropy.",
            "use mingpt.model.IGNORE_INDEX"),
]

# A wrong fill value (0, -100) composes exactly with every other slip: it only relabels that slip's -1s.
SFT_PAIRS = [two_mistakes(v, f, (lambda v, fill: lambda ids, a: (lambda y: torch.where(y == IGNORE_INDEX, fill, y))(
    v.compute(ids, a)))(v, fill)) for f, fill in ((SFT_MISTAKES[-2], 0), (SFT_MISTAKES[-1], -100))
    for v in SFT_MISTAKES[:-2]]
