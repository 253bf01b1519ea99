"""
Command line: continue a text prompt with a pretrained GPT-2, printing the text as it is generated.

    python -m mingpt.cli --model gpt2 --prompt "The meaning of life is" --max-new-tokens 50 --top-p 0.9 --seed 0
    python -m mingpt.cli --model ./my-model --prompt "Once upon a time" --greedy
    python -m mingpt.cli --model gpt2 --prompt "Hello" --dtype bf16   # half the bytes read per token

(`python -m mingpt.generate`, the older spelling, runs this same command.)

The model is anything `GPT.from_pretrained` accepts (a known name, a Hub repo id, a local directory). The
tokenizer is, in order: --tokenizer DIR; the model's own tokenizer.json (Llama, Qwen, GPT-NeoX: see
mingpt.hub_tokenizer), or vocab.json + merges.txt; GPT-2's (see mingpt.bpe).

The one idea: streaming text is not streaming tokens. GPT-2's tokens are *bytes*, and a character outside ASCII
(é, 你, an emoji) is often split across two or more tokens. Decoding each token on its own would print broken
halves ('\ufffd'), so the bytes of each new token go through an incremental UTF-8 decoder, which holds back an
incomplete character until the token that completes it arrives.

This file only parses arguments and prints; the work is done by mingpt.io.pretrained, mingpt.bpe and
mingpt.generation (the sampling library: read that one to learn how text is generated).
"""

from __future__ import annotations

import argparse
import codecs
import logging
import math
import pathlib
import sys
from typing import Sequence, TextIO

import torch

from mingpt.bpe import ENDOFTEXT, BPETokenizer
from mingpt.generation import generate_stream
from mingpt.hub_tokenizer import HubTokenizer
from mingpt.io.data_files import gpt2_vocab_cache_paths
from mingpt.io.download import DownloadError
from mingpt.io.hub import model_source
from mingpt.io.tokenizer_json import TOKENIZER_FILE
from mingpt.model import GPT
from mingpt.training.precision import DTYPES, inference_dtype
from mingpt.utils import choose_device

# Two spellings of the same two files: Hugging Face's (in model repos) and OpenAI's (GPT-2's original release).
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def build_parser() -> argparse.ArgumentParser:
    # Every option's help ends with its default, so `--help` alone tells what a bare run does.
    parser = argparse.ArgumentParser(
        prog="python -m mingpt.cli",
        description="Continue a prompt with a pretrained GPT-2 (Hub name, repo id or local directory).",
    )
    parser.add_argument("--model", default="gpt2",
                        help="'gpt2'..'gpt2-xl', a Hub repo id, or a local directory (default: %(default)s)")
    parser.add_argument("--prompt", default="", help="text to continue (default: empty, start from <|endoftext|>)")
    parser.add_argument("--max-new-tokens", type=int, default=50, help="tokens to add (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--do-sample", dest="do_sample", action="store_true", default=True,
                      help="sample the next token (default: on)")
    mode.add_argument("--greedy", dest="do_sample", action="store_false",
                      help="always take the most likely token (default: off)")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample only among the k most likely tokens (default: all tokens)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample only from the top-p probability mass (default: 1.0, all of it)")
    parser.add_argument("--seed", type=int, default=None, help="make sampling repeatable (default: none, random)")
    parser.add_argument("--device", default="auto",
                        help="'auto', 'cpu', 'cuda', 'cuda:1', 'mps' (default: %(default)s)")
    parser.add_argument("--dtype", default="auto", choices=("auto", *DTYPES),
                        help="weights and KV cache: 'auto' is bf16 on GPUs and on CPUs with native bf16, else fp32; "
                             "sampling is always in fp32 (default: %(default)s)")
    parser.add_argument("--revision", default="main", help="Hub branch, tag or commit (default: %(default)s)")
    parser.add_argument("--tokenizer", default=None,
                        help="directory with vocab.json + merges.txt or encoder.json + vocab.bpe (default: the "
                             "model's own files, else GPT-2's)")
    parser.add_argument("--ignore-eos", action="store_true", help="keep going after <|endoftext|> (default: off)")
    return parser


def _tokenizer_files(folder: pathlib.Path, what: str) -> tuple[pathlib.Path, pathlib.Path] | None:
    """A folder's (vocab, merges) pair, in either spelling; None if it has neither; an error if it has half."""
    for vocab, merges in TOKENIZER_FILES:
        present = [(folder / name).is_file() for name in (vocab, merges)]
        if all(present):
            return folder / vocab, folder / merges
        if any(present):
            missing = merges if present[0] else vocab
            raise FileNotFoundError(f"{what} {str(folder)!r} has {vocab if present[0] else merges} but not {missing}; "
                                    f"add {missing} (the two files belong together)")
    return None


def load_tokenizer(tokenizer_dir: str | None, model: str, revision: str = "main") -> BPETokenizer:
    """
    The tokenizer for `model`: from tokenizer_dir, else the model's vocab.json + merges.txt, else GPT-2's (from
    mingpt's cache, or downloaded). When none can be had, one FileNotFoundError names every missing file and every
    way to fix it.
    """
    if tokenizer_dir is not None:
        folder = pathlib.Path(tokenizer_dir)
        if (folder / TOKENIZER_FILE).is_file():  # a Hugging Face tokenizer.json (Llama, Qwen, GPT-NeoX...)
            return HubTokenizer.from_file(folder)
        pair = _tokenizer_files(folder, "--tokenizer") if folder.is_dir() else None
        if pair is None:
            raise FileNotFoundError(f"--tokenizer {tokenizer_dir!r} must be a directory holding tokenizer.json, "
                                    f"vocab.json + merges.txt or encoder.json + vocab.bpe")
        return BPETokenizer.from_files(*pair)
    source = model_source(model, revision=revision)
    problems = []
    if source.directory is not None:
        pair = _tokenizer_files(source.directory, "the model directory")
        if pair is not None:
            return BPETokenizer.from_files(*pair)
        problems.append(f"{str(source.directory)!r} has no vocab.json + merges.txt (nor encoder.json + vocab.bpe)")
    else:
        try:
            return BPETokenizer.from_files(source.fetch("vocab.json"), source.fetch("merges.txt"))
        except FileNotFoundError:  # the repo has no tokenizer files of its own: it uses GPT-2's
            problems.append(f"{source!r} has no vocab.json + merges.txt")
        except DownloadError as e:
            problems.append(f"the tokenizer files of {source!r} could not be downloaded ({e})")
    try:
        return BPETokenizer()  # GPT-2's: from mingpt's cache, else downloaded once
    except DownloadError as e:
        cache = gpt2_vocab_cache_paths()
        missing = [str(p) for p in cache if not p.is_file()] or [str(p) for p in cache]
        problems.append(f"GPT-2's tokenizer is not in mingpt's cache (missing or damaged: {', '.join(missing)}) "
                        f"and could not be downloaded ({str(e).split('. If this machine', 1)[0]})")
    raise FileNotFoundError(
        "no tokenizer for this model: " + "; ".join(problems) + ". Fix it in any one of these ways: "
        "(1) pass --tokenizer DIR, a folder holding vocab.json + merges.txt or encoder.json + vocab.bpe; "
        "(2) put vocab.json and merges.txt into the model's folder (model.save_pretrained(DIR, "
        "tokenizer=BPETokenizer()) writes them); "
        f"(3) copy GPT-2's encoder.json and vocab.bpe into {cache[0].parent}; "
        "(4) run once with internet access, so GPT-2's files are downloaded and cached."
    )


def stream_text(model: GPT, tokenizer: BPETokenizer, args: argparse.Namespace, out: TextIO) -> None:
    """Generate from args.prompt and write the text to `out` as it comes, one complete character at a time."""
    eos = tokenizer.special_tokens.get(getattr(tokenizer, "eos_token", None) or ENDOFTEXT)  # tokenizer.json's own
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
    if args.temperature is not None and not 0 < args.temperature < math.inf:  # said before the model loads
        parser.error(f"--temperature must be > 0 and finite, got {args.temperature}; for greedy decoding (the "
                     f"limit of temperature -> 0) use --greedy")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        device = choose_device(args.device)
        dtype = inference_dtype(args.dtype, device)
        model = GPT.from_pretrained(args.model, revision=args.revision, device=device, dtype=dtype)
        tokenizer = model.tokenizer  # the model's own tokenizer.json, which from_pretrained read
        if args.tokenizer is not None or tokenizer is None:
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
