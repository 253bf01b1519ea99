"""
Evaluate a checkpoint or a pretrained GPT-2: validation loss on a token shard, and HellaSwag accuracy.

    # mean loss over the validation shard (shard 0) of a prepared directory
    python projects/gpt2/evaluate.py loss --model=gpt2 --data-dir=data/fineweb-edu
    python projects/gpt2/evaluate.py loss --checkpoint=out/gpt2/best.pt --shard=data/shakespeare/shard_000000.bin
    # HellaSwag (the official validation jsonl is downloaded once, verified, cached)
    python projects/gpt2/evaluate.py hellaswag --model=gpt2
    python projects/gpt2/evaluate.py hellaswag --checkpoint=out/gpt2/best.pt --limit=500

--model takes a Hub name ('gpt2', 'gpt2-medium', ...) or a local Hugging Face-layout directory; --checkpoint a
mingpt training checkpoint (last.pt / best.pt). The result is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import torch

from mingpt.bpe import BPETokenizer
from mingpt.cfgnode import CfgNode
from mingpt.data.hellaswag import HELLASWAG_GIT_BLOB, HELLASWAG_URL, evaluate_hellaswag, fetch_hellaswag, load_examples
from mingpt.data.token_shards import TokenShards
from mingpt.io.data_files import fetch_gpt2_vocab
from mingpt.io.download import DownloadError
from mingpt.model import GPT
from mingpt.training.checkpoint import load_checkpoint
from mingpt.training.evaluation import eval_loss
from mingpt.training.precision import resolve_precision
from mingpt.utils import choose_device


def load_model(args: argparse.Namespace) -> GPT:
    """A GPT from --checkpoint (mingpt training checkpoint) or --model (pretrained name or directory)."""
    if bool(args.checkpoint) == bool(args.model):
        raise ValueError("give exactly one of --checkpoint=<path to last.pt/best.pt> and --model=<gpt2 or a directory>")
    if args.model:
        return GPT.from_pretrained(args.model)
    checkpoint = load_checkpoint(args.checkpoint)
    model = GPT(CfgNode.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["model"])
    return model


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=("loss", "hellaswag"))
    parser.add_argument("--model", help="a pretrained name ('gpt2') or a Hugging Face-layout directory")
    parser.add_argument("--checkpoint", help="a mingpt checkpoint written by projects/gpt2/train.py")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32",
                        help="fp32 (default: as the published numbers were measured), bf16, fp16 or auto (autocast)")
    parser.add_argument("--data-dir", help="loss: a directory from prepare.py (its validation shard is scored)")
    parser.add_argument("--shard", help="loss: one shard file to score instead of --data-dir's validation shard")
    parser.add_argument("--block-size", type=int, help="loss: window length (default: the model's block_size)")
    parser.add_argument("--batch-size", type=int, default=8, help="loss: windows per forward pass")
    parser.add_argument("--max-batches", type=int, help="loss: score only the first this many batches")
    parser.add_argument("--jsonl", help="hellaswag: a local file in the official format instead of the download")
    parser.add_argument("--url", default=HELLASWAG_URL, help="hellaswag: where to download the jsonl from")
    parser.add_argument("--git-blob", default=HELLASWAG_GIT_BLOB,
                        help="hellaswag: the file's expected git blob id ('none' skips the check)")
    parser.add_argument("--limit", type=int, help="hellaswag: only the first this many examples")
    parser.add_argument("--vocab-dir", help="hellaswag: GPT-2's encoder.json + vocab.bpe (default: download once)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    model = load_model(args)
    device = choose_device(args.device)
    model.to(device)
    autocast_dtype = resolve_precision(args.precision, device).autocast_dtype
    name = args.model or args.checkpoint
    if args.task == "loss":
        if bool(args.data_dir) == bool(args.shard):
            raise ValueError("loss needs one of --data-dir=<a directory written by prepare.py> and --shard=<a shard>")
        block_size = args.block_size or model.config.block_size
        if args.shard:
            val = TokenShards([args.shard], block_size, order="sequential")
        else:
            val = TokenShards.from_directory(args.data_dir, "val", block_size, order="sequential")
        loss = eval_loss(model, val, args.batch_size, args.max_batches, device, autocast_dtype)
        windows = len(val) if args.max_batches is None else min(len(val), args.max_batches * args.batch_size)
        return {"model": name, "task": "loss", "val_loss": loss, "windows": windows, "block_size": block_size}
    path = args.jsonl or fetch_hellaswag(args.url, None if args.git_blob == "none" else args.git_blob)
    if args.vocab_dir:
        tokenizer = BPETokenizer.from_files(os.path.join(args.vocab_dir, "encoder.json"),
                                            os.path.join(args.vocab_dir, "vocab.bpe"))
    else:
        tokenizer = BPETokenizer.from_files(*fetch_gpt2_vocab())
    examples = load_examples(path, args.limit)
    result = evaluate_hellaswag(model, examples, tokenizer.encode_ordinary, device, autocast_dtype)
    return {"model": name, "task": "hellaswag", **result}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        result = run(args)
    except (ValueError, FileNotFoundError, PermissionError, DownloadError) as e:
        print(f"gpt2/evaluate.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main(sys.argv[1:])
