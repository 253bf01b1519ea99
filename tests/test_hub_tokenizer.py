"""
Hugging Face tokenizer.json files (mingpt/io/tokenizer_json.py, mingpt/hub_tokenizer.py) against the reference
`tokenizers` library (test-only). No file comes from the Hub: each tokenizer is trained here on Tiny Shakespeare
with the pre-tokenizer of a family (GPT-2/GPT-NeoX, Llama 3, Qwen2, SmolLM2, and a prefix-space variant) and saved
through transformers' PreTrainedTokenizerFast, as a model folder carries it. mingpt's ids must equal tokenizers'
ids exactly, for every string below, and decoding must give tokenizers' text back.
"""

import json
import shutil
import unicodedata

import pytest
import tokenizers
import torch
import transformers
from tokenizers import (
    AddedToken,
    Regex,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from mingpt.cli import generate as cli
from mingpt.hub_tokenizer import HubTokenizer
from mingpt.io.tokenizer_json import read_tokenizer_json
from mingpt.model import GPT

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
NEOX_SPACES = [" " * n for n in range(24, 1, -1)]  # GPT-NeoX's added tokens: runs of 24 down to 2 spaces

# family: (pre-tokenizer, normalizer, special tokens, extra added tokens, ignore_merges, bos, eos)
FAMILIES = {
    "gpt_neox": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), normalizers.NFC,
                 ["<|endoftext|>", "<|padding|>"], NEOX_SPACES, False, "<|endoftext|>", "<|endoftext|>"),
    "llama3": (lambda: pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
               None, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], [], True, "<|begin_of_text|>",
               "<|end_of_text|>"),
    "qwen2": (lambda: pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
              normalizers.NFC, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], [], False, None, "<|im_end|>"),
    "smollm2": (lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
                None, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], [], False, "<|im_start|>", "<|im_end|>"),
    "prefix_space": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), None,
                     ["<|endoftext|>"], [], False, None, None),
}

STRINGS = [
    "", " ", "  ", "\n", "\n\n\n", "\t\t x", "Hello, world!", "hello world", " leading space", "trailing   ",
    "First Citizen:\nBefore we proceed any further, hear me speak.", "ROMEO:\n  But soft! what light?\n\n",
    "I'm you're they've we'll she'd it's I'M YOU'RE He'S", "don't  can't\twon't",
    "1234567890 12 123 1234 3.14159 2024-12-06 +1 (555) 010-9999", "x1y22z333", "٣٤٥ ⅷ ½",
    "naïve café résumé", "cafe\u0301 e\u0301", "日本語のテキスト 中文 한국어", "Ωμέγα Привет мир",
    "emoji 🤖🎉 👩‍👩‍👧 flags 🇫🇷 skin 👍🏽", "a" * 300, "ab" * 100, "   \n   \n", " \u00a0 \u3000 x",
    "<|endoftext|>", "Hi<|endoftext|>there", "<|endoftext|><|endoftext|>", "<|im_start|>user\nHi<|im_end|>",
    "<|begin_of_text|>The King<|eot_id|>", "<|begin_of_text|><|end_of_text|>", "x  <|endoftext|>  y",
    "<|endoftext", "<|padding|>", "                          26 spaces then text", "tab\tand\u000bvt\r\nCRLF",
    "!!! ??? ... ,,, ;;; ::: --- ___ ===", "'s's 'S 'll'LL ''''", "\x00\x01 control \x7f",
]


def corpus_lines(text, n=200):
    lines = [line for line in text.split("\n") if line.strip()]
    return lines[:: max(1, len(lines) // n)][:n]


def train(family, text, vocab_size=900):
    """A byte-level BPE tokenizer trained with `tokenizers` on text, configured like `family`."""
    pre, norm, specials, added, ignore_merges, bos, eos = FAMILIES[family]
    tok = tokenizers.Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre()
    tok.decoder = decoders.ByteLevel()
    if norm is not None:
        tok.normalizer = norm()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    tok.add_tokens([AddedToken(t, normalized=True, special=False) for t in added])
    if family == "llama3":  # Llama 3 puts <|begin_of_text|> first, in its post-processor
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[
            (bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, bos, eos


@pytest.fixture(scope="module")
def shakespeare(data_dir):
    return (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def saved(shakespeare, tmp_path_factory):
    """family -> (the folder transformers saved it in, tokenizers' Tokenizer read back from that folder)."""
    out = {}
    for family in FAMILIES:
        tok, bos, eos = train(family, shakespeare)
        folder = tmp_path_factory.mktemp(family)
        if family == "prefix_space":  # transformers would rewrite add_prefix_space to false: save it as it is
            tok.save(str(folder / "tokenizer.json"))
        else:
            fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)
            fast.save_pretrained(folder)
        out[family] = folder, tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    return out


def expected_ids(reference, text):
    return reference.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("family", list(FAMILIES))
def test_ids_equal_the_tokenizers_library(family, saved, shakespeare):
    folder, reference = saved[family]
    ours = HubTokenizer.from_file(folder)
    texts = STRINGS + corpus_lines(shakespeare) + [shakespeare[:5000]]
    mismatches = [(text, ours.encode(text, allowed_special="all"), expected_ids(reference, text))
                  for text in texts if ours.encode(text, allowed_special="all") != expected_ids(reference, text)]
    assert mismatches == []
    assert len(ours.encode(shakespeare[:5000])) < 0.6 * len(shakespeare[:5000].encode())  # merges did merge


@pytest.mark.parametrize("family", list(FAMILIES))
def test_decoding_equals_the_tokenizers_library_and_round_trips(family, saved):
    folder, reference = saved[family]
    ours = HubTokenizer.from_file(folder)
    for text in STRINGS:
        ids = ours.encode(text, allowed_special="all")
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=False)
        normal = unicodedata.normalize("NFC", text) if ours.nfc else text
        if ("prefix_space", None) not in ours.spec.steps:  # a prefix space is text the decoder gives back
            assert ours.decode(ids) == normal
    some_ids = list(range(0, ours.n_vocab, 7))  # pieces that are not whole characters decode the same way too
    assert ours.decode(some_ids) == reference.decode(some_ids, skip_special_tokens=False)


def test_special_tokens_follow_mingpts_rule_and_added_spaces_are_always_matched(saved):
    ours = HubTokenizer.from_file(saved["gpt_neox"][0])
    assert ours.bos_token == ours.eos_token == "<|endoftext|>"  # from tokenizer_config.json
    with pytest.raises(ValueError, match="special token '<|endoftext|>'"):
        ours.encode("a<|endoftext|>")
    as_text = ours.encode("a<|endoftext|>", disallowed_special=())
    assert ours.special_tokens["<|endoftext|>"] not in as_text and ours.decode(as_text) == "a<|endoftext|>"
    four_spaces = ours.encode_ordinary("a    b")
    assert ours._added_ids["    "] in four_spaces  # GPT-NeoX's run-of-spaces tokens: ordinary text, matched first


def test_llama3_bos_comes_from_the_post_processor_and_ignore_merges_is_honoured(saved):
    folder, reference = saved["llama3"]
    ours = HubTokenizer.from_file(folder)
    assert ours.bos_token == "<|begin_of_text|>" and ours.ignore_merges
    assert reference.encode("Hi").ids[0] == ours.special_tokens["<|begin_of_text|>"]


def test_a_tokenizer_saves_and_loads_back(saved, tmp_path):
    ours = HubTokenizer.from_file(saved["qwen2"][0])
    ours.save(tmp_path / "tokenizer.json")
    again = HubTokenizer.load(tmp_path / "tokenizer.json")
    text = STRINGS[12] + STRINGS[20]
    assert again.encode(text) == ours.encode(text) == expected_ids(saved["qwen2"][1], text)


def test_merge_steps_show_the_vocab_ids_pieces(saved):
    ours = HubTokenizer.from_file(saved["gpt_neox"][0])
    steps = ours.merge_steps(" the")
    assert steps[0] == ["Ġ", "t", "h", "e"] and steps[-1] == ["Ġthe"]


def with_field(folder, path, value):
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize("path, value, message", [
    (("model", "type"), "WordPiece", "model.type=\"WordPiece\""),
    (("model", "type"), "Unigram", "model.type=\"Unigram\""),
    (("normalizer",), {"type": "Lowercase"}, "normalizer.type=\"Lowercase\""),
    (("pre_tokenizer",), {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
     "pre_tokenizer.type=\"Metaspace\""),
    (("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Removed", "invert": False},
     "pre_tokenizer.behavior=\"Removed\""),
    (("model", "byte_fallback"), True, "model.byte_fallback=true"),
    (("decoder",), {"type": "Metaspace"}, "decoder="),
    (("padding",), {"strategy": "BatchLongest"}, "padding="),
    (("added_tokens", 0, "lstrip"), True, "lstrip=true"),
])
def test_what_is_not_implemented_is_refused_by_field_and_value(saved, path, value, message):
    from mingpt.io.tokenizer_json import parse_tokenizer_json

    data = with_field(saved["gpt_neox"][0], path, value)
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        parse_tokenizer_json(data)


def test_a_merge_whose_token_is_missing_is_named(saved, tmp_path):
    data = with_field(saved["gpt_neox"][0], ("model", "merges"), ["Ġ t", "zz qq"])
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="merge 1 \\('zz', 'qq'\\) needs the token 'zz'"):
        HubTokenizer.from_file(tmp_path)


def test_merges_written_as_strings_read_the_same(saved, tmp_path, shakespeare):
    # older files (GPT-2's, Pythia's) write each merge as "a b"; newer ones as ["a", "b"]
    data = json.loads((saved["gpt_neox"][0] / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    assert read_tokenizer_json(tmp_path).merges[0] == tuple(data["model"]["merges"][0].split(" "))
    ours, reference = HubTokenizer.from_file(tmp_path), tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in STRINGS + corpus_lines(shakespeare, 50):
        assert ours.encode(text, allowed_special="all") == expected_ids(reference, text)


def edited(folder, tmp_path, edit):
    """A copy of folder's tokenizer.json changed by edit(data), and tokenizers' reading of it."""
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    edit(data)
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    return HubTokenizer.from_file(tmp_path), tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))


@pytest.mark.parametrize("ignore_merges", [True, False])
def test_ignore_merges_takes_a_chunk_that_is_a_token_whole(saved, tmp_path, ignore_merges):
    def add_unmergeable_token(data):  # a token no merge creates: only ignore_merges can produce it
        data["model"]["ignore_merges"] = ignore_merges
        data["model"]["vocab"]["Ġzyzzyva"] = max(data["model"]["vocab"].values()) + 1

    ours, reference = edited(saved["llama3"][0], tmp_path, add_unmergeable_token)
    whole = ours.spec.vocab["Ġzyzzyva"]
    for text in [" zyzzyva", "a zyzzyva b", "zyzzyva"]:
        assert ours.encode(text) == expected_ids(reference, text)
    assert (ours.encode(" zyzzyva") == [whole]) == ignore_merges


@pytest.mark.parametrize("individual", [True, False])
def test_digits_split_one_by_one_or_in_runs(saved, tmp_path, individual):
    def add_digit_merge(data):  # a merge of two digits, which only runs of digits can use
        data["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = individual
        data["model"]["vocab"]["12"] = max(data["model"]["vocab"].values()) + 1
        data["model"]["merges"].append(["1", "2"])

    ours, reference = edited(saved["smollm2"][0], tmp_path, add_digit_merge)
    for text in ["12", " 123 x12 1 2", "٣12"]:
        assert ours.encode(text) == expected_ids(reference, text)
    assert (ours.spec.vocab["12"] in ours.encode("12")) != individual


# ---- end to end: a model folder as transformers writes it, with its tokenizer.json --------------------------------

def model_folder(saved, family, folder):
    """A random-weight GPT-NeoX (Pythia) or Llama saved by transformers, with the family's trained tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in saved[family][0].iterdir():
        shutil.copy(path, folder)
    fast = transformers.AutoTokenizer.from_pretrained(folder)
    common = dict(vocab_size=len(fast), hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                  intermediate_size=64, max_position_embeddings=128, initializer_range=0.3,
                  bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    config = (transformers.GPTNeoXConfig(**common) if family == "gpt_neox"
              else transformers.LlamaConfig(num_key_value_heads=2, **common))
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).eval()
    hf.save_pretrained(folder)
    return hf, fast


PROMPT = "First Citizen:\n  Before we proceed any further, hear me speak."


@pytest.mark.parametrize("family", ["gpt_neox", "llama3"])
def test_from_pretrained_picks_up_tokenizer_json_and_generates_transformers_text(saved, tmp_path, family):
    hf, fast = model_folder(saved, family, tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert isinstance(model.tokenizer, HubTokenizer)
    # Llama 3's tokenizer puts <|begin_of_text|> first; Pythia's adds nothing. to_tokens' bos is the file's own.
    expected = fast(PROMPT)["input_ids"]
    prepend = family == "llama3"
    assert model.to_tokens(PROMPT, prepend_bos=prepend)[0].tolist() == expected
    assert model.to_tokens(PROMPT)[0, 0].item() == fast.bos_token_id  # TL's prepend_bos: the tokenizer's bos
    idx = torch.tensor([expected])
    with torch.no_grad():
        theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=16, min_new_tokens=16,
                             do_sample=False, pad_token_id=fast.eos_token_id)
    ours = model.generate(model.to_tokens(PROMPT, prepend_bos=prepend), 16)
    assert ours.tolist() == theirs.tolist()
    text = fast.decode(theirs[0], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert model.to_string(ours[0]) == text and text.count(PROMPT) == 1


@pytest.fixture()
def offline(cache_dir, monkeypatch):
    monkeypatch.setenv("MINGPT_HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MINGPT_GPT2_VOCAB_URL", "http://127.0.0.1:9/nothing")  # nor for GPT-2's vocabulary files


def test_the_generate_cli_uses_the_models_tokenizer_json(saved, tmp_path, offline, capsys):
    hf, fast = model_folder(saved, "gpt_neox", tmp_path)
    args = ["--model", str(tmp_path), "--prompt", PROMPT, "--max-new-tokens", "10", "--greedy", "--ignore-eos",
            "--device", "cpu", "--dtype", "fp32"]
    assert cli.main(args) == 0
    idx = torch.tensor([fast(PROMPT)["input_ids"]])
    with torch.no_grad():
        theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=10, min_new_tokens=10,
                             do_sample=False, pad_token_id=fast.eos_token_id)
    new = fast.decode(theirs[0, idx.size(1):], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert capsys.readouterr().out == PROMPT + new + "\n"
    assert cli.main(args[:-4] + ["--tokenizer", str(tmp_path), "--device", "cpu", "--dtype", "fp32"]) == 0
    assert capsys.readouterr().out == PROMPT + new + "\n"  # --tokenizer DIR with a tokenizer.json


def test_save_pretrained_writes_the_tokenizer_json_back_for_transformers_and_mingpt(saved, tmp_path):
    _, fast = model_folder(saved, "llama3", tmp_path / "original")
    model = GPT.from_pretrained(tmp_path / "original")
    model.save_pretrained(tmp_path / "copy")  # model.tokenizer goes with it
    again = GPT.from_pretrained(tmp_path / "copy")
    assert again.tokenizer.bos_token == "<|begin_of_text|>"
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "copy")
    for text in STRINGS[:24]:
        assert again.to_tokens(text, prepend_bos=False, truncate=False)[0].tolist() == theirs(text, add_special_tokens=False)[
            "input_ids"] == fast(text, add_special_tokens=False)["input_ids"]


def test_gpt2s_own_vocabulary_as_tokenizer_json_equals_bpetokenizer_and_tokenizers(data_dir, shakespeare, tmp_path):
    # GPT-2's real 50,257 tokens: the tokenizer.json that `tokenizers` writes from encoder.json + vocab.bpe
    from mingpt.bpe import BPETokenizer

    gpt2 = data_dir / "gpt2"
    reference = tokenizers.Tokenizer(models.BPE.from_file(str(gpt2 / "encoder.json"), str(gpt2 / "vocab.bpe")))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    reference.decoder = decoders.ByteLevel()
    reference.add_special_tokens(["<|endoftext|>"])
    reference.save(str(tmp_path / "tokenizer.json"))
    ours, plain = HubTokenizer.from_file(tmp_path), BPETokenizer(gpt2 / "encoder.json", gpt2 / "vocab.bpe")
    text = shakespeare[:20000] + "".join(STRINGS)
    assert ours.encode(text, allowed_special="all") == plain.encode(text, allowed_special="all") == expected_ids(
        reference, text)
    assert ours.n_vocab == plain.n_vocab == 50257


def test_a_hub_repo_of_an_open_family_brings_its_tokenizer_json(saved, tmp_path, serve_directory, cache_dir):
    repo = tmp_path / "hub" / "tiny" / "pythia" / "resolve" / "main"  # the Hub's URL layout, served on 127.0.0.1
    _, fast = model_folder(saved, "gpt_neox", repo)
    model = GPT.from_pretrained("tiny/pythia", endpoint=serve_directory(tmp_path / "hub"), progress=False)
    assert model.tokenizer.encode(PROMPT) == fast(PROMPT)["input_ids"]
    assert model.tokenizer.bos_token == "<|endoftext|>"  # tokenizer_config.json came along, into the cache
    assert (cache_dir / "hub" / "tiny" / "pythia" / "main" / "tokenizer.json").is_file()
