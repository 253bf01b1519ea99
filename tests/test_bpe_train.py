"""
Tests for mingpt.bpe_train: the incremental trainer against a naive recount-everything trainer, tie-breaking,
round trips, save/load, parity of the trained tokenizer with tiktoken, and bad input.
"""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest
import regex
import tiktoken

from mingpt.bpe_train import ByteLevelBPE, learn_merges
from mingpt.tokenizer import GPT2_SPLIT_PATTERN, Tokenizer

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def shakespeare(data_dir) -> str:
    return (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(shakespeare) -> ByteLevelBPE:
    """256 merges learned from all of Tiny Shakespeare (about half a second)."""
    return ByteLevelBPE.train(shakespeare, vocab_size=512, special_tokens=[EOT])


def naive_merges(text: str, n_merges: int) -> list[tuple[bytes, bytes]]:
    """The textbook algorithm: recount every pair after every merge. Slow, obviously right."""
    words = Counter()
    for chunk, freq in Counter(regex.findall(GPT2_SPLIT_PATTERN, text)).items():
        words[tuple(bytes([b]) for b in chunk.encode("utf-8"))] += freq
    merges = []
    for _ in range(n_merges):
        counts = Counter()
        for word, freq in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += freq
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))  # the documented tie-break
        merges.append(best)
        merged_words = Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged_words[tuple(out)] += freq
        words = merged_words
    return merges


def test_incremental_counts_match_a_full_recount(shakespeare):
    text = shakespeare[:30000] + " aaaa aaaaa ééé 🙂🙂 " * 20  # overlapping runs stress the count updates
    assert learn_merges(text, 120) == naive_merges(text, 120)


def test_ties_go_to_the_smallest_pair_in_byte_order():
    # Every pair occurs once: (' ','a'), ('a','b'), ('b','a') tie, and b' ' sorts first.
    assert learn_merges("ba ab", 1) == [(b" ", b"a")]
    assert learn_merges("ba ab", 3) == [(b" ", b"a"), (b" a", b"b"), (b"b", b"a")]


def test_many_ties_follow_the_documented_order():
    """
    Many pairs here have equal counts, so the documented order (count, then bytes) decides most merges. That order
    is total on the pairs' contents, so it cannot depend on dict or set iteration (and so on PYTHONHASHSEED): a tie
    broken by anything else and the textbook trainer disagrees.
    """
    text = " ".join(f"{a}{b}{c}" for a in "xyzw" for b in "qrst" for c in "éab")  # 48 words of 3 letters
    assert learn_merges(text, 40) == naive_merges(text, 40)


def test_trained_tokenizer_round_trips(trained, shakespeare):
    assert len(trained.merges) == 256 and trained.n_vocab == 513
    assert trained.special_tokens == {EOT: 512}
    ids = trained.encode(shakespeare)
    assert trained.decode(ids) == shakespeare
    assert max(ids) < 512
    bytes_per_token = len(shakespeare.encode("utf-8")) / len(ids)
    assert bytes_per_token > 1.8  # 256 merges roughly halve the length of English text
    rng = random.Random(7)
    for _ in range(1000):  # text it never saw: falls back to bytes, still exact
        text = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 10)))
        assert trained.decode(trained.encode(text)) == text


def test_training_text_gets_the_segmentation_training_found(trained, shakespeare):
    """Encoding applies merges in the same order training did, so frequent words are single tokens."""
    for word in [" the", " and", " of"]:
        assert len(trained.encode(word)) == 1, trained.show_tokens(word)
    assert trained.encode(f"a{EOT}", allowed_special="all")[-1] == 512


def test_trained_tokenizer_matches_tiktoken(trained, shakespeare):
    """tiktoken, given the trained tokens' bytes ranked by id, encodes exactly as our tokenizer does."""
    ranks = {trained.decode_bytes([i]): i for i in range(512)}
    reference = tiktoken.Encoding(
        name="trained", pat_str=trained.pattern, mergeable_ranks=ranks, special_tokens={EOT: 512}
    )
    assert trained.encode(shakespeare) == reference.encode_ordinary(shakespeare)


def test_save_and_load(trained, tmp_path, shakespeare):
    path = tmp_path / "shakespeare.bpe"
    trained.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["shakespeare.bpe"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("mingpt-bpe v1\npattern ") and '\nspecial "<|endoftext|>" 512\nmerges 256\nĠ t\n' in text
    loaded = ByteLevelBPE.load(path)
    assert type(loaded) is ByteLevelBPE
    assert loaded.merges == trained.merges and loaded.special_tokens == trained.special_tokens
    sample = shakespeare[:5000]
    assert loaded.encode(sample) == trained.encode(sample)


def test_custom_pattern_is_saved_and_rebuilt(tmp_path):
    tokenizer = ByteLevelBPE.train("abc abc abd, abe", 260, pattern=r"\S+|\s+")
    path = tmp_path / "t.bpe"
    tokenizer.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.pattern == r"\S+|\s+"
    assert loaded.show_tokens("abc, abc") == tokenizer.show_tokens("abc, abc")  # the pattern was compiled again


def test_load_reports_the_bad_line(trained, tmp_path):
    path = tmp_path / "broken.bpe"
    trained.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[10] = "not-a-pair"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match="line 11"):
        ByteLevelBPE.load(path)


def test_running_out_of_pairs_stops_early(caplog):
    with caplog.at_level(logging.WARNING, logger="mingpt.bpe_train"):
        tokenizer = ByteLevelBPE.train("aaaa", vocab_size=1000)
    assert tokenizer.merges == [(b"a", b"a"), (b"aa", b"aa")]
    assert "ran out of pairs" in caplog.text
    assert tokenizer.encode("aaaa") == [257]


@pytest.mark.parametrize("vocab_size", [255, 0, -5, 300.0, "512", True])
def test_vocab_size_must_be_an_int_of_at_least_256(vocab_size):
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 256 \(the 256 single bytes come first\), got"):
        ByteLevelBPE.train("some text", vocab_size)


def test_training_bad_input():
    with pytest.raises(TypeError, match="text must be a str"):
        ByteLevelBPE.train(b"bytes", 300)
    with pytest.raises(TypeError, match="special_tokens"):
        ByteLevelBPE.train("text", 300, special_tokens=EOT)
    for n_merges in (-1, True, 2.0):  # True would silently be one merge
        with pytest.raises(ValueError, match=rf"^n_merges must be an int >= 0, got {n_merges!r}$"):
            learn_merges("text", n_merges)
    with pytest.raises(TypeError):
        Tokenizer.train("text", 300)
