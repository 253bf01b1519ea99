"""
Supervised fine-tuning (SFT) on conversations: the examples a Trainer reads, with the loss on the assistant only.

The one idea: SFT is ordinary next-token training with a *mask*. The targets are the inputs shifted by one, as in
pretraining, but a target is IGNORE_INDEX (-1) wherever the token it asks for is not the assistant's, so the
model is never trained to write the user's questions, only to answer them (and to end its turn: the END after each
reply is in the loss).

    ids          <u> W h a t ... ? <e> <a> 4 7 <e>
    is_assistant  .  . . . .     .  .   .  x x  x        (ChatTemplate.encode)
    x            <u> W h a t ... ? <e> <a> 4 7           ids[:-1], then padding
    y             W  h a t  ... ?  <e> <a>  4 7 <e>      ids[1:]
    loss on       .  . . .      .   .   .   x x  x       is_assistant[1:]: the same shift as y

Right padding is safe with a causal model: a pad token sits *after* every real token, so no real position ever
attends to it, and its targets are -1, so it adds nothing to the loss. Every example is padded to block_size, so
the Trainer's default DataLoader stacks them as they are.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from mingpt.model import IGNORE_INDEX
from mingpt.posttrain.chat import ChatTemplate, Message


def sft_example(ids: Sequence[int], is_assistant: Sequence[bool], block_size: int,
                pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """
    (x, y), each (block_size,): x is ids[:-1] right-padded with pad_id, y is ids[1:] with IGNORE_INDEX wherever
    the predicted token is not the assistant's (and on the padding). Position t predicts token t+1, so the mask
    is is_assistant shifted by one, the same shift as the targets.
    """
    if len(ids) - 1 > block_size:
        raise ValueError(f"a conversation of {len(ids)} tokens does not fit block_size={block_size} "
                         f"(at most {block_size + 1} tokens); shorten it or raise block_size")
    x = torch.full((block_size,), pad_id, dtype=torch.long)
    y = torch.full((block_size,), IGNORE_INDEX, dtype=torch.long)
    T = len(ids) - 1
    x[:T] = torch.tensor(ids[:-1], dtype=torch.long)
    targets = torch.tensor(ids[1:], dtype=torch.long)
    keep = torch.tensor(is_assistant[1:], dtype=torch.bool)
    y[:T] = torch.where(keep, targets, torch.full_like(targets, IGNORE_INDEX))
    return x, y


class ConversationDataset(Dataset):
    """Conversations as (x, y) examples for the Trainer: loss on the assistant's tokens only, padded to block_size."""

    def __init__(self, conversations: Sequence[Sequence[Message]], template: ChatTemplate, block_size: int):
        if len(conversations) == 0:
            raise ValueError("conversations is empty; pass at least one conversation")
        self.template, self.block_size = template, block_size
        # The pad id is END: any real id works (its targets are -1), and END is one the model already knows.
        self.pad_id = template.end_id
        self.examples = [template.encode(c) for c in conversations]
        for i, (ids, _) in enumerate(self.examples):
            if len(ids) - 1 > block_size:
                raise ValueError(f"conversation {i} has {len(ids)} tokens, more than block_size + 1 = "
                                 f"{block_size + 1}; shorten it or raise block_size")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids, is_assistant = self.examples[i]
        return sft_example(ids, is_assistant, self.block_size, self.pad_id)




def assistant_targets(dataset: ConversationDataset) -> int:
    """How many target tokens carry loss across the data set (what "tokens trained on" means for SFT)."""
    return sum(sum(mask[1:]) for _, mask in dataset.examples)
