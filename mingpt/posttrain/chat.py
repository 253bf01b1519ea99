"""
Chat: turning a next-token predictor into something you talk to.

The one idea: a chat model is still a GPT predicting the next token; a conversation is just text with a few new
*special tokens* that mark who speaks and where a turn ends, and the loss is taken only on what the assistant says.

    <|user|>What is 12+35?<|end|><|assistant|>47<|end|>
    ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~   the prompt: the model reads it, no loss
                                               ^^^^^^^^   the assistant's words and its <|end|>: the loss

The <|end|> after the assistant's words is in the loss on purpose: it is how the model learns to stop, and
`chat_generate` stops there (generation's eos_token_id). The role markers are never predicted: the program writes
"<|assistant|>" itself to say "your turn".

In reading order:
  with_special_tokens        a copy of a tokenizer with new special tokens, numbered after its last id
  grow_token_embeddings      new rows for wte and lm_head (tied or not), the old rows kept exactly
  ChatTemplate               a conversation -> (ids, which ids are the assistant's)
  chat_generate              the assistant's reply to a conversation, stopping at end of turn

The training examples built from a template (the loss mask, the padding) are mingpt.posttrain.sft's.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from mingpt.model import GPT
from mingpt.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (USER, ASSISTANT, END)
ROLES = {"user": USER, "assistant": ASSISTANT}

Message = Mapping[str, str]  # {"role": "user" | "assistant", "content": "..."}, the format chat APIs use


def with_special_tokens(tokenizer: Tokenizer, names: Sequence[str] = CHAT_TOKENS) -> Tokenizer:
    """
    A new tokenizer of the same class with `names` added as special tokens, numbered from tokenizer.n_vocab on
    (GPT-2: 50257, 50258, ...). Names it already has keep their ids. The original is not changed.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a list of special token strings, got the string {names!r}")
    special = dict(tokenizer.special_tokens)
    for name in dict.fromkeys(names):
        if name not in special:
            special[name] = max([tokenizer.n_vocab - 1, *special.values()]) + 1
    return type(tokenizer)(merges=tokenizer.merges, pattern=tokenizer.pattern, special_tokens=special)


@torch.no_grad()
def grow_token_embeddings(model: GPT, vocab_size: int) -> GPT:
    """
    Give `model` rows for ids up to vocab_size - 1 (in place; returns the model). Old rows of wte and lm_head are
    copied exactly, so every old token keeps its embedding and its logit; new rows start at the mean of the old
    ones, a neutral guess that does not make the new tokens absurdly likely or unlikely before fine-tuning.
    A tied model (wte and lm_head one matrix) stays tied: one new matrix, set under both names.
    """
    old_wte, old_head = model.transformer.wte.weight, model.lm_head.weight
    V, C = old_wte.shape  # (V, C) both
    if not isinstance(vocab_size, int) or vocab_size < V:
        raise ValueError(f"vocab_size must be an int >= the model's current {V} (embeddings only grow), "
                         f"got {vocab_size!r}")
    tied = old_wte is old_head

    def grown(weight: torch.Tensor) -> nn.Parameter:
        new = weight.new_empty(vocab_size, C)
        new[:V] = weight
        new[V:] = weight.mean(dim=0)
        return nn.Parameter(new, requires_grad=weight.requires_grad)

    model.lm_head.weight = grown(old_head)
    model.lm_head.out_features = vocab_size
    model.transformer.wte.weight = model.lm_head.weight if tied else grown(old_wte)
    model.transformer.wte.num_embeddings = vocab_size
    model.config.vocab_size = vocab_size  # token-id checks and generation read it
    logger.info("token embeddings grown from %d to %d rows (%s)", V, vocab_size, "tied" if tied else "untied")
    return model


class ChatTemplate:
    """
    How a conversation is written as token ids: each message is its role marker, its content, then END.

        template = ChatTemplate(with_special_tokens(BPETokenizer()))
        ids, is_assistant = template.encode(conversation)        # two lists of the same length
        prompt = template.encode_prompt(conversation[:-1])         # ends with <|assistant|>: the model's turn
    """

    def __init__(self, tokenizer: Tokenizer):
        missing = [name for name in CHAT_TOKENS if name not in tokenizer.special_tokens]
        if missing:
            raise ValueError(f"the tokenizer lacks the chat tokens {missing}; build it with "
                             f"mingpt.posttrain.chat.with_special_tokens(tokenizer)")
        self.tokenizer = tokenizer
        self.user_id, self.assistant_id, self.end_id = (tokenizer.special_tokens[name] for name in CHAT_TOKENS)

    def _message(self, message: Message, index: int) -> tuple[str, str]:
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise ValueError(f"message {index} must be {{'role': 'user' or 'assistant', 'content': str}}, "
                             f"got {dict(message)!r}")
        return role, content

    def encode(self, conversation: Sequence[Message]) -> tuple[list[int], list[bool]]:
        """(ids, is_assistant): is_assistant[i] is True for the assistant's content tokens and their END."""
        ids: list[int] = []
        is_assistant: list[bool] = []
        for index, message in enumerate(conversation):
            role, content = self._message(message, index)
            # encode_ordinary: a user who types "<|end|>" gets text, not a turn boundary (no prompt injection).
            body = self.tokenizer.encode_ordinary(content) + [self.end_id]
            ids += [self.tokenizer.special_tokens[ROLES[role]]] + body
            is_assistant += [False] + [role == "assistant"] * len(body)
        return ids, is_assistant

    def encode_prompt(self, conversation: Sequence[Message]) -> list[int]:
        """The conversation so far, then <|assistant|>: what the model continues to reply."""
        return self.encode(conversation)[0] + [self.assistant_id]

    def render(self, conversation: Sequence[Message]) -> str:
        """The conversation as text, special tokens written out (for reading, not for training)."""
        return self.tokenizer.decode(self.encode(conversation)[0])


@torch.no_grad()
def chat_generate(model: GPT, template: ChatTemplate, conversation: Sequence[Message], max_new_tokens: int = 64,
                  **kwargs) -> str:
    """
    The assistant's reply to `conversation` (text, without the END that closed it). Greedy unless kwargs say
    otherwise (do_sample=True, temperature, top_k, top_p, generator: as in mingpt.generation.generate).
    """
    prompt = template.encode_prompt(conversation)
    device = model.transformer.wte.weight.device
    idx = torch.tensor([prompt], dtype=torch.long, device=device)  # (1, T)
    out = model.generate(idx, max_new_tokens, eos_token_id=template.end_id, **kwargs)[0, len(prompt):].tolist()
    if template.end_id in out:
        out = out[: out.index(template.end_id)]
    return template.tokenizer.decode(out)
