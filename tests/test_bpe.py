"""
Tests for mingpt.bpe: exact parity with tiktoken's GPT-2 encoding (built here from the same local files),
round trips, special tokens, the teaching helpers, vocabulary files (local, downloaded, corrupted) and bad input.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy
import pytest
import tiktoken
import torch

from mingpt.bpe import (GPT2_SPLIT_PATTERN, BPETokenizer, Encoder, Tokenizer, bytes_of, bytes_to_unicode, get_encoder,
                        symbols_of)
from mingpt.io.download import ChecksumError, DownloadError

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2_files(data_dir):
    return data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe"


@pytest.fixture(scope="module")
def tokenizer(gpt2_files) -> BPETokenizer:
    return BPETokenizer.from_files(*gpt2_files)


@pytest.fixture(scope="module")
def reference(gpt2_files) -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding, built from the local files: token bytes -> rank (= id), no network."""
    with open(gpt2_files[0], encoding="utf-8") as f:
        encoder = json.load(f)
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {bytes(byte_decoder[c] for c in token): i for token, i in encoder.items() if token != EOT}
    return tiktoken.Encoding(
        name="gpt2-local", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 50256}
    )


@pytest.fixture(scope="module")
def shakespeare(data_dir) -> str:
    return (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


def stress_corpus(seed: int = 0) -> str:
    """Text designed to hit every branch of GPT-2's split pattern and of UTF-8."""
    rng = random.Random(seed)
    pieces = [
        "Hello 👋🏽 world! 👨‍👩‍👧‍👦 family, 🇯🇵 flag, ❤️ heart",
        "日本語のテキストと中文文本，한국어 텍스트。",
        "e\u0301 n\u0303 a\u0308\u0304 Z\u0337\u0328a\u0336l\u0334g\u0335o\u0337",  # combining marks
        "שלום עולם مرحبا بالعالم \u202ertl override\u202c",  # right-to-left scripts and controls
        "ctrl\x00\x01\x07\x1b[31mred\x1b[0m\x7f\x85\u00ad\u200b\ufeff",
        "a  b   c\t\td\n\ne\r\n\r\nf \n \t \u00a0\u2003\u3000 end   ",
        "I'm you're we've they'll she'd it's I'M YOU'RE WE'VE THEY'LL SHE'D IT'S don't DON'T 'tis ''",
        "0 12 345 6789 3.14159 1,000,000 2024-01-01 ٣٤٥ ⅷ ½ ²",
        "x" * 3000 + " " + "ab" * 1000 + " " + "🙂" * 200,
        f"one{EOT}two {EOT} three{EOT}{EOT}four <|endoftext| <|endoftext|>>",
    ]
    alphabet = "aé漢😀 \t\n'0\u0301!?.,-_ש"
    for _ in range(200):
        pieces.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    return "\n".join(pieces)


def random_unicode(rng: random.Random, length: int) -> str:
    """A string of code points from every plane, without lone surrogates (they have no UTF-8 encoding)."""
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(length):
        low, high = rng.choice(ranges)
        out.append(chr(rng.randint(low, high)))
    return "".join(out)


# ---- exactness against tiktoken ------------------------------------------------------------------------------------


def test_tiny_shakespeare_matches_tiktoken(tokenizer, reference, shakespeare):
    ids = tokenizer.encode(shakespeare)
    assert ids == reference.encode_ordinary(shakespeare)
    assert tokenizer.decode(ids) == shakespeare


def test_stress_corpus_matches_tiktoken(tokenizer, reference):
    text = stress_corpus()
    assert tokenizer.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")
    assert tokenizer.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=())
    assert tokenizer.encode_ordinary(text) == reference.encode_ordinary(text)
    for line in text.split("\n"):  # line by line too: each piece starts a fresh pre-tokenization
        assert tokenizer.encode(line, disallowed_special=()) == reference.encode(line, disallowed_special=())


def test_random_strings_match_tiktoken_and_round_trip(tokenizer, reference):
    rng = random.Random(1234)
    texts = [random_unicode(rng, rng.randint(0, 12)) for _ in range(10_000)]
    batch = tokenizer.encode_batch(texts, disallowed_special=())
    for text, ids in zip(texts, batch):
        assert tokenizer.decode(ids) == text
    assert batch[:500] == reference.encode_ordinary_batch(texts[:500])


def test_lone_surrogates_become_replacement_characters_like_tiktoken(tokenizer, reference):
    text = "a\ud800b \udfff"
    assert tokenizer.encode(text) == reference.encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == "a\ufffdb \ufffd"


# ---- the plain algorithm (Encoder) and the fast engine (BPETokenizer) agree ------------------------------------------


def test_plain_encoder_equals_the_fast_tokenizer_and_tiktoken_token_for_token(tokenizer, reference, shakespeare):
    plain = tokenizer.encoder  # the step-by-step Encoder of bpe.py, over the same vocabulary
    rng = random.Random(7)
    texts = [
        *stress_corpus().split("\n"),  # scripts, emoji, combining marks, controls, contractions, numbers
        stress_corpus(),  # the same as one text, <|endoftext|> included (ordinary text on this path)
        "a  b   c\t\t\td\n\n\n  e \u00a0\u3000 f" + " " * 50 + "\n" * 20 + "\t" * 9 + "end",  # whitespace runs
        "Pneumonoultramicroscopicsilicovolcanoconiosis " + "na" * 500 + " " + "z" * 2000,  # long words
        "a\ud800b \udfff",  # lone surrogates: U+FFFD on every path
        shakespeare[:100_000],
        *(random_unicode(rng, rng.randint(0, 30)) for _ in range(300)),
    ]
    for text in texts:
        expected = reference.encode_ordinary(text)
        assert plain.encode(text) == expected, text[:80]
        assert tokenizer.encode_ordinary(text) == expected, text[:80]
    assert plain.decode(reference.encode_ordinary(shakespeare[:100_000])) == shakespeare[:100_000]


def test_plain_bpe_merges_the_lowest_rank_first_wherever_it_is(tokenizer):
    plain = tokenizer.encoder
    # In 'ĠKarpathy' the first merge is ('a', 't') in the middle, learned long before the leftmost ('Ġ', 'K').
    assert plain.bpe_ranks[("Ġ", "t")] == 0 and plain.bpe_ranks[("a", "t")] < plain.bpe_ranks[("Ġ", "K")]
    assert plain.bpe("ĠKarpathy") == "ĠK arp athy" and plain.bpe("Ġthere") == "Ġthere"
    assert [plain.bpe(symbols_of(data)) for data in (b" world", "🙂".encode())] == ["Ġworld", "ðŁ ĻĤ"]
    with pytest.raises(ValueError, match=r"token id 50257 at position 1 is not in the vocabulary \(ids 0\.\.50256\)"):
        plain.decode([11, 50257])


def test_every_gpt2_token_merges_back_into_itself(tokenizer):
    """The reason encode may keep a chunk that is already a token whole (tiktoken's shortcut) without checking."""
    for i in range(0, 50256, 7):  # every 7th token keeps the test fast; covers all lengths and kinds
        data = tokenizer.decode_bytes([i])
        assert tokenizer.merge_steps(data)[-1] == [symbols_of(data)], i


# ---- special tokens ------------------------------------------------------------------------------------------------


def test_special_token_rules(tokenizer):
    text = f"Hi{EOT}there"
    with pytest.raises(ValueError, match="allowed_special.*disallowed_special=\\(\\)"):
        tokenizer.encode(text)
    allowed = tokenizer.encode(text, allowed_special={EOT})
    assert allowed == tokenizer.encode("Hi") + [50256] + tokenizer.encode("there")
    assert tokenizer.encode(text, allowed_special="all") == allowed
    as_text = tokenizer.encode(text, disallowed_special=())
    assert 50256 not in as_text and len(as_text) > len(allowed) + 5
    assert tokenizer.decode(allowed) == tokenizer.decode(as_text) == text
    assert tokenizer.encode_ordinary(text) == as_text


def test_unknown_special_tokens_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="unknown special token '<\\|fim\\|>'"):
        tokenizer.encode("x", allowed_special={"<|fim|>"})
    with pytest.raises(ValueError, match="unknown special token"):
        tokenizer.encode("x", disallowed_special={"<|fim|>"})
    with pytest.raises(TypeError, match="'all' or a set"):
        tokenizer.encode("x", allowed_special=EOT)  # a bare string is a likely slip for {EOT}


# ---- original minGPT API and tensors -------------------------------------------------------------------------------


def test_call_returns_a_batch_of_one(tokenizer):
    x = tokenizer("Hello, world")
    assert x.dtype == torch.long and x.shape == (1, 3)
    assert x.tolist() == [[15496, 11, 995]]
    assert tokenizer.decode(x[0]) == "Hello, world"
    with pytest.raises(ValueError, match="1-D"):
        tokenizer.decode(x)
    with pytest.raises(ValueError, match="return_tensors"):
        tokenizer("hi", return_tensors="np")


def test_get_encoder_from_local_paths(gpt2_files):
    encoder = get_encoder(encoder_path=gpt2_files[0], vocab_path=gpt2_files[1])
    assert isinstance(encoder, Encoder) and isinstance(encoder.tokenizer, Tokenizer)
    assert encoder.encoder["Ġworld"] == 995 and len(encoder.encoder) == 50257
    work = encoder.encode_and_show_work("Hello world")
    assert work["bpe_idx"] == [15496, 995] and work["tokens"] == ["Hello", " world"]
    assert work["parts"][1]["token_translated"] == "Ġworld" and work["parts"][1]["token_merged"] == ["Ġworld"]


# ---- decoding ------------------------------------------------------------------------------------------------------


def test_decode_replaces_invalid_utf8(tokenizer):
    ids = tokenizer.encode("🙂")
    assert len(ids) > 1  # an emoji is several byte-level tokens
    assert tokenizer.decode(ids[:-1]).endswith("\ufffd")
    assert tokenizer.decode([]) == ""


@pytest.mark.parametrize("bad_id", [50257, 10**9, -1])
def test_decode_rejects_ids_out_of_range(tokenizer, bad_id):
    with pytest.raises(ValueError, match=f"token id {bad_id} at position 1 is out of range: valid ids are 0..50256"):
        tokenizer.decode([11, bad_id])


def test_decode_rejects_non_integer_ids(tokenizer):
    with pytest.raises(TypeError, match="ints"):
        tokenizer.decode([1, 2.0])
    with pytest.raises(TypeError, match="ints"):
        tokenizer.decode(torch.tensor([1.0, 2.0]))


# ---- teaching helpers ----------------------------------------------------------------------------------------------


def test_show_tokens_and_pieces(tokenizer):
    assert tokenizer.show_tokens("Hello, world") == "Hello|,| world"
    assert tokenizer.show_tokens("Hello, world", separator=" / ") == "Hello / , /  world"
    assert tokenizer.token_pieces("Hi!") == [(17250, b"Hi", "Hi"), (0, b"!", "!")]


def test_merge_steps_show_the_work(tokenizer):
    steps = tokenizer.merge_steps(" world")
    assert steps[0] == ["Ġ", "w", "o", "r", "l", "d"] and steps[-1] == ["Ġworld"]
    assert all(len(after) < len(before) for before, after in zip(steps, steps[1:]))


def test_bytes_to_unicode_table():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert bytes_of(symbols_of(bytes(range(256)))) == bytes(range(256))


# ---- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, b"bytes", 42, ["a list"]])
def test_non_string_text_is_a_type_error(tokenizer, bad):
    with pytest.raises(TypeError, match="str"):
        tokenizer.encode(bad)
    with pytest.raises(TypeError, match="str"):
        tokenizer(bad)


def test_encode_batch_needs_a_list(tokenizer):
    assert tokenizer.encode_batch(["a b", "c"]) == [tokenizer.encode("a b"), tokenizer.encode("c")]
    with pytest.raises(TypeError, match="list of str"):
        tokenizer.encode_batch("not a list")


def test_missing_vocab_files(tmp_path, gpt2_files):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        BPETokenizer.from_files(tmp_path / "encoder.json", gpt2_files[1])
    with pytest.raises(FileNotFoundError, match="vocab.bpe"):
        get_encoder(encoder_path=gpt2_files[0], vocab_path=tmp_path / "vocab.bpe")
    with pytest.raises(ValueError, match="both"):
        BPETokenizer(encoder_path=gpt2_files[0])


def test_corrupt_vocab_files(tmp_path, gpt2_files):
    truncated = tmp_path / "encoder.json"
    truncated.write_bytes(gpt2_files[0].read_bytes()[:5000])
    with pytest.raises(ValueError, match="not valid JSON"):
        BPETokenizer.from_files(truncated, gpt2_files[1])

    encoder = json.loads(gpt2_files[0].read_text(encoding="utf-8"))
    encoder["Ġthe"], encoder["Ġa"] = encoder["Ġa"], encoder["Ġthe"]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(encoder), encoding="utf-8")
    with pytest.raises(ValueError, match="disagree"):
        BPETokenizer.from_files(swapped, gpt2_files[1])

    bad_merges = tmp_path / "vocab.bpe"
    bad_merges.write_text("#version: 0.2\nĠ t\nthis line has three\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.bpe:3"):
        BPETokenizer.from_files(gpt2_files[0], bad_merges)
    bad_merges.write_bytes(b"#version: 0.2\n\xff\xfe \x00\n")
    with pytest.raises(ValueError, match="vocab.bpe:2.*not in GPT-2's bytes<->unicode table"):
        BPETokenizer.from_files(gpt2_files[0], bad_merges)


# ---- downloads (through a loopback server) and save/load ----------------------------------------------------------


def test_no_argument_constructor_downloads_and_caches(data_dir, serve_directory, cache_dir, monkeypatch):
    monkeypatch.setenv("MINGPT_GPT2_VOCAB_URL", serve_directory(data_dir / "gpt2"))
    tokenizer = BPETokenizer()
    assert tokenizer.encode("Hello, world") == [15496, 11, 995]
    assert sorted(p.name for p in (cache_dir / "gpt2").iterdir()) == ["encoder.json", "vocab.bpe"]
    # From now on the cache is enough: the base URL may point nowhere.
    monkeypatch.setenv("MINGPT_GPT2_VOCAB_URL", "http://127.0.0.1:9/nothing")
    assert get_encoder().encode("Hello") == [15496]


def test_corrupted_download_is_detected_and_not_cached(data_dir, serve_directory, cache_dir, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(data_dir / "gpt2" / "vocab.bpe", site / "vocab.bpe")
    (site / "encoder.json").write_bytes((data_dir / "gpt2" / "encoder.json").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumError, match="encoder.json"):
        BPETokenizer(base_url=serve_directory(site))
    assert not (cache_dir / "gpt2").exists()  # no file, no temp file, no empty folder


def test_offline_failure_says_where_to_put_the_files(cache_dir, monkeypatch):
    monkeypatch.setattr("mingpt.io.download.time.sleep", lambda seconds: None)  # skip the backoff between retries
    with pytest.raises(DownloadError, match="place it at .*encoder.json"):
        BPETokenizer(base_url="http://127.0.0.1:9/offline")


def test_save_and_load_round_trip(tokenizer, tmp_path, shakespeare):
    path = tmp_path / "gpt2.bpe"
    tokenizer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["gpt2.bpe"]  # the temp file was renamed, not left behind
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "mingpt-bpe v1" and "Ġ t" in lines
    loaded = BPETokenizer.load(path)
    assert type(loaded) is BPETokenizer and loaded.special_tokens == {EOT: 50256}
    sample = shakespeare[:20000] + EOT
    assert loaded.encode(sample, allowed_special="all") == tokenizer.encode(sample, allowed_special="all")


def test_load_rejects_other_files(tmp_path, gpt2_files):
    with pytest.raises(ValueError, match="not a valid mingpt-bpe v1 file"):
        Tokenizer.load(gpt2_files[1])
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "nope.bpe")


def test_gpt2_vocabulary_cannot_be_trained(tokenizer):
    with pytest.raises(TypeError, match="ByteLevelBPE"):
        BPETokenizer.train("some text", 300)


# ---- checking the pair of vocabulary files (which one is wrong) ---------------------------------------------------


def test_truncated_vocab_bpe_is_named_not_turned_into_special_tokens(tmp_path, gpt2_files):
    lines = gpt2_files[1].read_text(encoding="utf-8").split("\n")
    cut = tmp_path / "vocab.bpe"
    cut.write_text("\n".join(lines[: 1 + 25_000]) + "\n", encoding="utf-8")  # the header and the first 25,000
    with pytest.raises(ValueError, match=r"vocab\.bpe has 25,000 merges, too few for .*50,257 tokens.*truncated") as e:
        BPETokenizer.from_files(gpt2_files[0], cut)
    assert str(cut) in str(e.value) and "ids 25256..50256" in str(e.value)


def test_swapped_paths_are_named(gpt2_files):
    with pytest.raises(ValueError, match="look swapped") as e:
        BPETokenizer.from_files(gpt2_files[1], gpt2_files[0])
    assert str(gpt2_files[0]) in str(e.value) and "Pass encoder.json (vocab.json) first" in str(e.value)
    with pytest.raises(ValueError, match=r"should be vocab\.bpe .* holds JSON"):
        BPETokenizer.from_files(gpt2_files[0], gpt2_files[0])


def test_encoder_json_missing_tokens_is_named(tmp_path, gpt2_files):
    encoder = json.loads(gpt2_files[0].read_text(encoding="utf-8"))
    short = tmp_path / "encoder.json"
    short.write_text(json.dumps({k: v for k, v in encoder.items() if v < 30_000}), encoding="utf-8")  # valid JSON
    with pytest.raises(ValueError, match=r"encoder\.json has no entry for 20,256 token\(s\) that .*incomplete"):
        BPETokenizer.from_files(short, gpt2_files[1])


# ---- the original minGPT's surface ----------------------------------------------------------------------------------

# The original minGPT's bpe.py demo, with the outputs its comments record.
MINGPT_DEMO = "Hello!! I'm Andrej Karpathy. It's 2022. w00t :D 🤗"
MINGPT_DEMO_IDS = [15496, 3228, 314, 1101, 10948, 73, 509, 5117, 10036, 13, 632, 338, 33160, 13, 266, 405, 83, 1058,
                   35, 12520, 97, 245]


def test_mingpt_entry_points_encode_endoftext_as_ordinary_text(tokenizer, reference, gpt2_files):
    text = f"web page one{EOT}web page two"
    as_text = reference.encode_ordinary(text)
    assert 50256 not in as_text
    assert tokenizer(text).tolist() == [as_text]  # BPETokenizer()(text), minGPT's call
    assert tokenizer.encoder.encode(text) == as_text  # tokenizer.encoder.encode(text)
    assert get_encoder(*gpt2_files).encode(text) == as_text  # get_encoder().encode(text)
    with pytest.raises(ValueError, match="special token"):
        tokenizer.encode(text)  # the new API keeps tiktoken's rule
    assert tokenizer(text, allowed_special="all").tolist() == [reference.encode(text, allowed_special="all")]


def test_tokenizer_encoder_is_the_original_encoder_object(tokenizer, gpt2_files):
    from mingpt import bpe

    encoder = tokenizer.encoder
    assert isinstance(encoder, Encoder) and tokenizer.encoder is encoder
    assert encoder.encode(MINGPT_DEMO) == MINGPT_DEMO_IDS
    assert encoder.encode_and_show_work(MINGPT_DEMO)["bpe_idx"] == MINGPT_DEMO_IDS
    assert encoder.decode(MINGPT_DEMO_IDS) == MINGPT_DEMO
    assert encoder.bpe("ĠKarpathy") == "ĠK arp athy" and encoder.bpe("Ġthere") == "Ġthere"
    assert encoder.decoder[995] == "Ġworld" and encoder.encoder["Ġworld"] == 995 and len(encoder.decoder) == 50257
    assert encoder.bpe_ranks[("Ġ", "t")] == 0 and encoder.bpe_ranks[("Ġ", "a")] == 1
    assert len(encoder.bpe_ranks) == 50000
    assert encoder.byte_encoder[ord(" ")] == "Ġ" and encoder.byte_decoder["Ġ"] == ord(" ")
    assert bpe.get_pairs(("Ġ", "t", "h", "e")) == {("Ġ", "t"), ("t", "h"), ("h", "e")}
    # minGPT's get_encoder built the Encoder from encoder.json's dict and vocab.bpe's pairs of strings; so can users.
    raw = json.loads(gpt2_files[0].read_text(encoding="utf-8"))
    merges = [tuple(line.split()) for line in gpt2_files[1].read_text(encoding="utf-8").split("\n")[1:-1]]
    built = bpe.Encoder(raw, merges)
    assert built.encode(MINGPT_DEMO) == MINGPT_DEMO_IDS and built.encoder is not raw
    with pytest.raises(ValueError, match="too few"):
        bpe.Encoder(raw, merges[:100])


def test_get_file_downloads_once_like_mingpt(tmp_path, serve_directory, gpt2_files):
    from mingpt import bpe

    base = serve_directory(gpt2_files[1].parent)
    local = tmp_path / "vocab.bpe"
    bpe.get_file(local, f"{base}/vocab.bpe")
    assert local.read_bytes() == gpt2_files[1].read_bytes()
    local.write_text("kept")  # an existing file is never fetched again, as in minGPT
    bpe.get_file(local, "http://127.0.0.1:9/nowhere")
    assert local.read_text() == "kept"


@pytest.mark.parametrize("ids", [[True], [11, False], torch.tensor([True, False]), torch.tensor([1.0])])
def test_decode_rejects_bools_and_floats(tokenizer, ids):
    with pytest.raises(TypeError, match="ints"):
        tokenizer.decode(ids)


def test_decode_names_the_first_bad_id_wherever_it_is():
    # 256 bytes + 1 merge (ids 0..256), then a special token at 300: ids 257..299 are unused, and indexing the decode
    # table there finds nothing. The same checks hold for tuples and numpy arrays as for lists and tensors.
    tokenizer = Tokenizer([(b"a", b"b")], special_tokens={"<|end|>": 300})
    assert tokenizer.decode((64, 65, 256, 300)) == "abab<|end|>"  # a tuple
    assert tokenizer.decode(numpy.array([256, 300])) == "ab<|end|>"
    with pytest.raises(ValueError, match=r"^token id 270 at position 2 is out of range: valid ids are 0\.\.300$"):
        tokenizer.decode([64, 256, 270, 999])
    with pytest.raises(ValueError, match="token id -1 at position 0 is out of range"):
        tokenizer.decode((-1,))  # indexing alone would give the last id
    with pytest.raises(TypeError, match=r"the bool True at position 3; was a mask passed instead of ids\?"):
        tokenizer.decode([1, 2, 3, True])
    with pytest.raises(TypeError, match=r"got '7' at position 1"):
        tokenizer.decode([1, "7"])
    with pytest.raises(TypeError, match="got None at position 0"):
        tokenizer.decode(numpy.array([None, 1], dtype=object))


def test_gpt2_tokenizer_from_parts_by_keyword_like_every_tokenizer(tokenizer):
    # load builds the class it is called on as cls(merges=, pattern=, special_tokens=): GPT-2's class takes them too.
    rebuilt = BPETokenizer(merges=tokenizer.merges, special_tokens=tokenizer.special_tokens)
    assert type(rebuilt) is BPETokenizer and rebuilt.encode(MINGPT_DEMO) == MINGPT_DEMO_IDS
    assert rebuilt.encoder.encode(MINGPT_DEMO) == MINGPT_DEMO_IDS  # minGPT's Encoder over it, as for any BPETokenizer
    with pytest.raises(ValueError, match="either GPT-2's files .* or merges=, not both"):
        BPETokenizer("encoder.json", "vocab.bpe", merges=tokenizer.merges)
    with pytest.raises(ValueError, match="special_tokens= go with merges="):
        BPETokenizer(special_tokens={EOT: 50256})


def test_encoder_wraps_a_tokenizer_or_builds_one_from_mingpt_arguments(tokenizer):
    wrapped = Encoder(tokenizer=tokenizer)
    assert wrapped.tokenizer is tokenizer and wrapped.encode(MINGPT_DEMO) == MINGPT_DEMO_IDS
    with pytest.raises(TypeError, match="encoder and bpe_merges"):
        Encoder()
    with pytest.raises(TypeError, match="not both"):
        Encoder({"a": 0}, [("a", "b")], tokenizer=tokenizer)



def test_damaged_cached_vocabulary_and_a_wrong_mirror_say_the_sha256_not_no_connection(data_dir, serve_directory,
                                                                                     cache_dir, tmp_path):
    """The server answered (with the wrong bytes): the message says so, instead of "(no connection)"."""
    (cache_dir / "gpt2").mkdir(parents=True)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(data_dir / "gpt2" / name, cache_dir / "gpt2" / name)
    (cache_dir / "gpt2" / "encoder.json").write_bytes(b"{}")  # damaged in the cache
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(data_dir / "gpt2" / "vocab.bpe", site / "vocab.bpe")
    (site / "encoder.json").write_bytes(b'{"a": 0}')  # and the mirror serves other bytes
    with pytest.raises(OSError) as e:
        BPETokenizer(base_url=serve_directory(site))
    message = str(e.value)
    assert "sha256" in message and "the server answered" in message and "no connection" not in message
