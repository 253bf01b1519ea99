"""
Command line: continue a text prompt with a pretrained GPT-2, printing the text as it is generated.

    python -m mingpt.generate --model gpt2 --prompt "The meaning of life is" --max-new-tokens 50 --top-p 0.9 --seed 0
    python -m mingpt.generate --model ./my-model --prompt "Once upon a time" --greedy
    python -m mingpt.generate --model gpt2 --prompt "Hello" --dtype bf16   # half the bytes per token: ~1.8x faster

The model is anything `GPT.from_pretrained` accepts (a known name, a Hub repo id, a local directory). The
tokenizer is, in order: --tokenizer DIR; the model's own vocab.json + merges.txt; GPT-2's (see mingpt.bpe).

The one idea: streaming text is not streaming tokens. GPT-2's tokens are *bytes*, and a character outside ASCII
(é, 你, an emoji) is often split across two or more tokens. Decoding each token on its own would print broken
halves ('\ufffd'), so the bytes of each new token go through an incremental UTF-8 decoder, which holds back an
incomplete character until the token that completes it arrives.

This file only parses arguments and prints; the work is done by mingpt.pretrained, mingpt.bpe and
mingpt.generation.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import pathlib
import sys
from typing import Sequence, TextIO

import torch

from mingpt.bpe import ENDOFTEXT, BPETokenizer
from mingpt.generation import generate_stream
from mingpt.hub import model_source
from mingpt.model import GPT
from mingpt.precision import DTYPES, inference_dtype
from mingpt.utils import choose_device

# Two spellings of the same two files: Hugging Face's (in model repos) and OpenAI's (GPT-2's original release).
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mingpt.generate",
        description="Continue a prompt with a pretrained GPT-2 (Hub name, repo id or local directory).",
    )
    parser.add_argument("--model", default="gpt2", help="'gpt2'..'gpt2-xl', a Hub repo id, or a local directory")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start from <|endoftext|>)")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--do-sample", dest="do_sample", action="store_true", default=True,
                      help="sample the next token (the default)")
    mode.add_argument("--greedy", dest="do_sample", action="store_false", help="always take the most likely token")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample only from the top-p probability mass")
    parser.add_argument("--seed", type=int, default=None, help="make sampling repeatable")
    parser.add_argument("--device", default="auto", help="'auto' (default), 'cpu', 'cuda', 'cuda:1', 'mps'")
    parser.add_argument("--dtype", default="auto", choices=("auto", *DTYPES),
                        help="weights and KV cache: 'auto' (default) is bf16 on GPUs and on CPUs with native bf16, "
                             "else fp32; sampling is always in fp32")
    parser.add_argument("--revision", default="main", help="Hub branch, tag or commit (default main)")
    parser.add_argument("--tokenizer", default=None,
                        help="directory with vocab.json + merges.txt or encoder.json + vocab.bpe")
    parser.add_argument("--ignore-eos", action="store_true", help="keep going after <|endoftext|>")
    return parser


def load_tokenizer(tokenizer_dir: str | None, model: str, revision: str = "main") -> BPETokenizer:
    """The tokenizer for `model`: from tokenizer_dir, else the model's vocab.json + merges.txt, else GPT-2's."""
    if tokenizer_dir is not None:
        folder = pathlib.Path(tokenizer_dir)
        for vocab, merges in TOKENIZER_FILES:
            if (folder / vocab).is_file() and (folder / merges).is_file():
                return BPETokenizer.from_files(folder / vocab, folder / merges)
        raise FileNotFoundError(f"--tokenizer {tokenizer_dir!r} must be a directory holding vocab.json + merges.txt "
                                f"or encoder.json + vocab.bpe")
    source = model_source(model, revision=revision)
    try:
        return BPETokenizer.from_files(source.fetch("vocab.json"), source.fetch("merges.txt"))
    except FileNotFoundError:  # the model has no tokenizer files of its own: it uses GPT-2's
        return BPETokenizer()


def stream_text(model: GPT, tokenizer: BPETokenizer, args: argparse.Namespace, out: TextIO) -> None:
    """Generate from args.prompt and write the text to `out` as it comes, one complete character at a time."""
    eos = tokenizer.special_tokens.get(ENDOFTEXT)
    eos = eos if eos is not None and eos < model.config.vocab_size else None
    ids = tokenizer.encode(args.prompt, allowed_special="all")  # "<|endoftext|>" starts an unconditional sample
    if not ids:
        if eos is None:
            raise ValueError("this model's vocabulary has no <|endoftext|> to start from; give a non-empty --prompt")
        ids = [eos]  # GPT-2 saw <|endoftext|> before every document: the natural "start of text"
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.seed is not None else None
    stream = generate_stream(
        model, torch.tensor([ids], dtype=torch.long, device=device), args.max_new_tokens,
        temperature=1.0 if args.temperature is None else args.temperature, do_sample=args.do_sample,
        top_k=args.top_k, top_p=args.top_p, eos_token_id=None if args.ignore_eos else eos, generator=generator,
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out.write(args.prompt)
    out.flush()
    for token in stream:  # token: (B=1,)
        token_id = int(token[0])
        if token_id == eos and not args.ignore_eos:
            break
        out.write(decoder.decode(tokenizer.decode_bytes([token_id])))  # '' while a character is incomplete
        out.flush()
    out.write(decoder.decode(b"", final=True) + "\n")  # a character left incomplete at the end becomes '\ufffd'
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 1 on an error, 2 on bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.do_sample:
        given = [name for name in ("temperature", "top_k", "top_p") if getattr(args, name) is not None]
        if given:
            parser.error(f"--{given[0].replace('_', '-')} has no effect with --greedy; drop one of them")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        device = choose_device(args.device)
        dtype = inference_dtype(args.dtype, device)
        model = GPT.from_pretrained(args.model, revision=args.revision, device=device, dtype=dtype)
        tokenizer = load_tokenizer(args.tokenizer, args.model, args.revision)
        stream_text(model, tokenizer, args, sys.stdout)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
