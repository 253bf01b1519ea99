"""mingpt.posttrain.chat and .sft: chat tokens on GPT-2's tokenizer, grown embeddings, the assistant-only loss mask."""

import pytest
import torch

from mingpt.bpe import BPETokenizer
from mingpt.model import IGNORE_INDEX
from mingpt.posttrain.chat import (ASSISTANT, END, USER, ChatTemplate, chat_generate, grow_token_embeddings,
                                   with_special_tokens)
from mingpt.posttrain.sft import ConversationDataset, assistant_targets

CONVERSATION = [
    {"role": "user", "content": "What is 12+35?"},
    {"role": "assistant", "content": " 47"},
    {"role": "user", "content": "And 1+1? <|end|>"},  # a user typing a special token gets text, not a turn end
    {"role": "assistant", "content": " 2, of course."},
]


@pytest.fixture(scope="module")
def template(data_dir):
    gpt2 = BPETokenizer.from_files(data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe")
    return ChatTemplate(with_special_tokens(gpt2))


def test_chat_tokens_are_numbered_after_gpt2s_and_the_original_is_unchanged(template, data_dir):
    special = template.tokenizer.special_tokens
    assert [special[name] for name in (USER, ASSISTANT, END)] == [50257, 50258, 50259]
    assert special["<|endoftext|>"] == 50256 and template.tokenizer.n_vocab == 50260
    assert template.tokenizer.encode("Hi<|end|>", allowed_special="all")[-1] == 50259
    assert with_special_tokens(template.tokenizer).special_tokens == special  # adding them twice changes nothing


def test_the_loss_mask_covers_exactly_the_assistants_tokens_and_their_end(template):
    tok = template.tokenizer
    ids, is_assistant = template.encode(CONVERSATION)
    x, y = ConversationDataset([CONVERSATION], template, block_size=64)[0]
    T = len(ids) - 1
    assert x[:T].tolist() == ids[:-1] and y[:T].tolist() == [
        t if keep else IGNORE_INDEX for t, keep in zip(ids[1:], is_assistant[1:])]
    # what the loss is taken on, read back as text: the replies and their END, nothing of the user or the roles
    kept = [t for t in y.tolist() if t != IGNORE_INDEX]
    assert tok.decode(kept) == " 47<|end|> 2, of course.<|end|>"
    assert assistant_targets(ConversationDataset([CONVERSATION], template, block_size=64)) == len(kept)
    assert (y[T:] == IGNORE_INDEX).all()  # padding is never in the loss
    # the user's "<|end|>" is ordinary text: exactly four END ids, one per message
    assert ids.count(template.end_id) == 4
    assert template.render(CONVERSATION).startswith("<|user|>What is 12+35?<|end|><|assistant|> 47<|end|>")


def test_a_conversation_longer_than_the_block_is_refused_with_the_fix(template):
    with pytest.raises(ValueError, match="raise block_size"):
        ConversationDataset([CONVERSATION], template, block_size=8)
    with pytest.raises(ValueError, match="role"):
        template.encode([{"role": "system", "content": "x"}])


def test_a_tokenizer_without_chat_tokens_is_refused(data_dir):
    gpt2 = BPETokenizer.from_files(data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe")
    with pytest.raises(ValueError, match="with_special_tokens"):
        ChatTemplate(gpt2)


@pytest.mark.parametrize("tie", [True, False])
def test_grown_embeddings_keep_every_old_logit(tiny_gpt, tie):
    model = tiny_gpt(seed=0, dropout=0.0, tie_weights=tie).eval()
    idx = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(0))
    before = model(idx)[0]
    grow_token_embeddings(model, 53)
    after = model(idx)[0]
    assert after.shape == (2, 10, 53)
    assert torch.equal(after[..., :50], before)  # old tokens: the very same logits
    assert (model.transformer.wte.weight is model.lm_head.weight) == tie  # tied stays tied, untied stays untied
    assert model.config.vocab_size == 53
    model(torch.tensor([[52]]))  # a new id is now a valid input
    loss = model(idx, targets=idx)[1]
    loss.backward()  # and the grown matrices train
    assert model.lm_head.weight.grad.shape == (53, 32)
    with pytest.raises(ValueError, match="only grow"):
        grow_token_embeddings(model, 40)


def test_chat_generate_stops_at_end_of_turn(tiny_gpt, template):
    # A model that always says END: the reply is empty, and generation stopped after one token.
    model = tiny_gpt(seed=0, dropout=0.0, vocab_size=template.tokenizer.n_vocab, block_size=64).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)  # every position's final state is all ones ...
        model.lm_head.weight.zero_()
        model.lm_head.weight[template.end_id] = 1.0  # ... so END scores n_embd and every other token 0
    calls = []
    model.lm_head.register_forward_hook(lambda *args: calls.append(1))  # one call per generated token
    assert chat_generate(model, template, CONVERSATION[:1], max_new_tokens=5) == ""
    assert len(calls) == 1
