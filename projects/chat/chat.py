"""
Chat fine-tuning (SFT), offline: a small GPT learns to answer arithmetic questions asked in plain words, and to
stop when its turn is over.

The one idea: a chat model is a GPT fine-tuned on conversations, with new special tokens for the roles and the
end of a turn, and the loss only on what the assistant says. Everything here is mingpt.posttrain's:

    1. a tokenizer (here: a byte-level BPE learned from the conversations themselves; with
       --system.init_from=gpt2, GPT-2's) gets the chat tokens <|user|>, <|assistant|>, <|end|> (with_special_tokens)
    2. the model's embedding matrices get rows for them, the old rows kept (grow_token_embeddings)
    3. conversations become (x, y) examples with targets -1 outside the assistant's reply (ConversationDataset)
    4. the Trainer fine-tunes; chat_generate answers held-out questions, stopping at <|end|>

The conversations are made here, from a seed: "What is 23+58?" -> "81", in a few phrasings. A fixed, seeded set
of (a, b) pairs is held out in every phrasing, so test accuracy is on sums the model has never been shown.

    python projects/chat/chat.py                                   # trains from scratch, offline; then the test score
    python projects/chat/chat.py --system.interactive=True         # then chat on stdin (one question a line)
    python projects/chat/chat.py --system.load=./out/chat --system.interactive=True   # chat with the saved model
    python projects/chat/chat.py --system.init_from=gpt2 --trainer.batch_size=8        # from GPT-2 (needs the Hub)
"""

from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import torch

from mingpt.bpe import BPETokenizer
from mingpt.bpe_train import ByteLevelBPE
from mingpt.cfgnode import CfgNode
from mingpt.model import GPT
from mingpt.posttrain.chat import ChatTemplate, chat_generate, grow_token_embeddings, with_special_tokens
from mingpt.posttrain.sft import ConversationDataset
from mingpt.trainer import Trainer
from mingpt.utils import check_int, set_seed, setup_logging

logger = logging.getLogger("mingpt.projects.chat")

# GPT-2's split pattern with one change: numbers split into single digits (\p{N} instead of \p{N}+), so the BPE
# never merges "58" into one token and every sum is written digit by digit, as arithmetic wants.
DIGIT_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PHRASINGS = ("What is {a}+{b}?", "Add {a} and {b}.", "What do you get if you add {a} to {b}?")


# ----------------------------------------------------------------------------------------------- config
def get_config() -> CfgNode:
    C = CfgNode()

    C.system = CfgNode()
    C.system.seed = 3407
    C.system.work_dir = "./out/chat"
    C.system.num_threads = 1  # a model this small is fastest on one thread
    C.system.init_from = "scratch"  # or a GPT-2 name ('gpt2') / Hub id / local directory, via GPT.from_pretrained
    C.system.load = ""  # a directory this script saved: skip training, chat with it
    C.system.interactive = False  # after training (or loading): answer questions read from stdin, one a line

    C.data = CfgNode()
    C.data.ndigit = 2  # operands 0 .. 10**ndigit - 1
    C.data.test_pairs = 200  # (a, b) pairs held out, each asked in every phrasing
    C.data.merges = 32  # BPE merges learned from the conversations (scratch only)

    C.model = GPT.get_default_config()
    C.model.model_type = None
    C.model.n_layer, C.model.n_head, C.model.n_embd = 2, 4, 128
    C.model.embd_pdrop = C.model.resid_pdrop = C.model.attn_pdrop = 0.0

    C.trainer = Trainer.get_default_config()
    C.trainer.max_iters = 3000
    C.trainer.batch_size = 64
    C.trainer.learning_rate = 2e-3
    C.trainer.lr_schedule = "cosine"
    C.trainer.min_lr = 1e-4
    C.trainer.warmup_iters = 50
    C.trainer.weight_decay = 0.0
    return C


# ----------------------------------------------------------------------------------------------- data
def conversation(a: int, b: int, phrasing: int) -> list[dict]:
    return [{"role": "user", "content": PHRASINGS[phrasing].format(a=a, b=b)},
            {"role": "assistant", "content": str(a + b)}]


def split_pairs(ndigit: int, test_pairs: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train pairs, test pairs): a seeded sample of (a, b) is held out."""
    n = 10**ndigit
    check_int(test_pairs, "data.test_pairs", 1, n * n // 5, hint=f" (at most a fifth of the {n * n} pairs)")
    rng = np.random.default_rng(seed)
    test = set(rng.choice(n * n, size=test_pairs, replace=False).tolist())
    train = [divmod(i, n) for i in range(n * n) if i not in test]
    return train, [divmod(i, n) for i in sorted(test)]


def conversations(pairs) -> list[list[dict]]:
    return [conversation(a, b, k) for a, b in pairs for k in range(len(PHRASINGS))]


# ----------------------------------------------------------------------------------------------- model
def base_model_and_tokenizer(config: CfgNode, train_conversations) -> tuple[GPT, object]:
    """The model and tokenizer *before* chat: GPT-2's, or a fresh GPT over a BPE learned from the text."""
    if config.system.init_from != "scratch":
        return GPT.from_pretrained(config.system.init_from), BPETokenizer()
    text = "\n".join(m["content"] for c in train_conversations[:3000] for m in c)
    tokenizer = ByteLevelBPE.train(text, 256 + config.data.merges, pattern=DIGIT_SPLIT_PATTERN)
    config.model.vocab_size = tokenizer.n_vocab
    if config.model.block_size is None:  # a token is at least one byte: bytes + 4 (two roles, two ends) is a bound
        config.model.block_size = max(sum(len(m["content"].encode()) for m in c) for c in train_conversations) + 4
    return GPT(config.model), tokenizer


@torch.no_grad()
def accuracy(model: GPT, template: ChatTemplate, pairs) -> tuple[int, int]:
    """Exact-match accuracy of greedy replies over every phrasing of every pair: (number right, number asked)."""
    model.eval()
    right = total = 0
    for a, b in pairs:
        for k in range(len(PHRASINGS)):
            reply = chat_generate(model, template, conversation(a, b, k)[:1], max_new_tokens=8)
            right += reply == str(a + b)
            total += 1
    model.train()
    return right, total


def talk(model: GPT, template: ChatTemplate, lines) -> None:
    """The chat CLI: each line read is a user turn; the reply is printed (each question is a new conversation:
    the model was fine-tuned on one-turn conversations)."""
    model.eval()
    for line in lines:
        question = line.strip()
        if question:
            print(f"assistant: {chat_generate(model, template, [{'role': 'user', 'content': question}])}",
                  flush=True)


# ----------------------------------------------------------------------------------------------- main
def fail(message: str) -> None:
    print(f"chat: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    config = get_config()
    try:
        config.merge_from_args(argv)
        check_int(config.data.ndigit, "data.ndigit", 1, 4)
        check_int(config.data.merges, "data.merges", 0, 1000)
        train_pairs, test_pairs = split_pairs(config.data.ndigit, config.data.test_pairs, config.system.seed)
        config.trainer.work_dir = config.system.work_dir
        Trainer.check_config(config.trainer, has_val_dataset=False)
        if config.system.load and not os.path.isfile(os.path.join(config.system.load, "tokenizer.txt")):
            raise FileNotFoundError(f"system.load={config.system.load!r} holds no tokenizer.txt; pass a directory "
                                    f"this script saved (its system.work_dir)")
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        fail(e.args[0] if e.args else str(e))
    setup_logging(config)
    set_seed(config.system.seed)
    if config.system.num_threads > 0:
        torch.set_num_threads(config.system.num_threads)

    if config.system.load:  # a model this script saved: no training
        model = GPT.from_pretrained(config.system.load)
        template = ChatTemplate(ByteLevelBPE.load(os.path.join(config.system.load, "tokenizer.txt")))
        talk(model, template, sys.stdin)
        return

    train = conversations(train_pairs)
    model, tokenizer = base_model_and_tokenizer(config, train)
    tokenizer = with_special_tokens(tokenizer)  # 1. the chat tokens, numbered after the tokenizer's last id
    grow_token_embeddings(model, tokenizer.n_vocab)  # 2. rows for them; every old token keeps its logit
    template = ChatTemplate(tokenizer)
    block_size = max(len(template.encode(c)[0]) for c in conversations(train_pairs[-1:] + test_pairs)) + 2
    if block_size > model.config.block_size:
        fail(f"conversations need block_size {block_size}, the model has {model.config.block_size}; "
             f"raise model.block_size")
    dataset = ConversationDataset(train, template, block_size)  # 3. loss on the assistant's tokens only
    logger.info("%d training conversations, %d tokens of vocabulary (3 of them chat tokens)", len(dataset),
                tokenizer.n_vocab)

    t0 = time.perf_counter()
    trainer = Trainer(config.trainer, model, dataset)  # 4. ordinary training, on the masked targets
    trainer.run()
    right, total = accuracy(model, template, test_pairs)
    seconds = time.perf_counter() - t0
    model.save_pretrained(config.system.work_dir)
    tokenizer.save(os.path.join(config.system.work_dir, "tokenizer.txt"))
    print(f"chat: held-out accuracy {100 * right / total:.2f}% ({right}/{total}) after {trainer.iter_num} iters, "
          f"{seconds:.1f} s, loss {trainer.loss.item():.4f} (model and tokenizer: {config.system.work_dir})",
          flush=True)
    if config.system.interactive:
        talk(model, template, sys.stdin)


if __name__ == "__main__":
    main(sys.argv[1:])
