"""
Tokenize a corpus with GPT-2's BPE into uint16 token shards (shard 0 = validation) plus a manifest.

    # Tiny Shakespeare, 10 shards of 34,000 tokens (the cpu-tiny preset's data)
    python projects/gpt2/prepare.py --tiny-shakespeare --out=data/shakespeare --shard-size=34000
    # local files: .txt (one document each), .jsonl / .parquet (one document per record), or directories of them
    python projects/gpt2/prepare.py --input=corpus/ --out=data/mycorpus --num-proc=8
    # a Hugging Face dataset repo's files, downloaded (cached, verified against the Hub's listing) through mingpt.io.hub
    python projects/gpt2/prepare.py --hf-dataset=HuggingFaceFW/fineweb-edu --hf-revision=main \\
        --hf-files=sample/10BT/000_00000.parquet --out=data/fineweb-edu --num-proc=16

Kill it at any time and run the same command again: finished shards are kept and it continues from the last one.
`--verify --out=DIR` checks a prepared directory's shards against the sha256 in its manifest.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mingpt.data import TINY_SHAKESPEARE
from mingpt.data.corpus import ENCODERS, prepare_shards
from mingpt.data.token_shards import verify_shards
from mingpt.io.data_files import fetch_gpt2_vocab, find_data
from mingpt.io.hub import dataset_file


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", default=[], help="a file or directory (repeatable)")
    parser.add_argument("--tiny-shakespeare", action="store_true",
                        help="add Tiny Shakespeare, found as mingpt finds data: $MINGPT_DATA_DIR, else mingpt's "
                             "cache (downloaded once, sha256-checked)")
    parser.add_argument("--hf-dataset", help="a Hugging Face dataset repo id, e.g. HuggingFaceFW/fineweb-edu")
    parser.add_argument("--hf-files", default="", help="comma-separated files of that repo to download and read")
    parser.add_argument("--hf-revision", default="main", help="branch, tag or commit of the dataset repo")
    parser.add_argument("--hf-no-verify", action="store_true",
                        help="do not check downloads against the repo's listing (for mirrors without the Hub API)")
    parser.add_argument("--out", required=True, help="output directory for the shards and manifest.json")
    parser.add_argument("--vocab-dir", help="a directory with GPT-2's encoder.json and vocab.bpe (default: "
                                            "download them once into the mingpt cache)")
    parser.add_argument("--encoder", choices=ENCODERS, default="mingpt",
                        help="mingpt's BPE or tiktoken (built from the same files; same ids)")
    parser.add_argument("--shard-size", type=int, default=100_000_000, help="tokens per shard (last may be short)")
    parser.add_argument("--num-proc", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="tokenizer processes (default: half the cores)")
    parser.add_argument("--text-key", default="text", help="the jsonl field / parquet column holding the text")
    parser.add_argument("--piece-chars", type=int, default=1 << 16,
                        help="long documents are tokenized in pieces of about this many characters, in parallel")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verify", action="store_true",
                        help="only check the shards of --out against the sha256 in its manifest, then exit")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.verify:
            verify_shards(args.out)
            print(f"{args.out}: every shard matches its sha256 in the manifest")
            return
        inputs, source = list(args.input), None
        if args.tiny_shakespeare:
            inputs.append(str(find_data([TINY_SHAKESPEARE], "Tiny Shakespeare")[0]))
        if args.hf_dataset:
            files = [f for f in args.hf_files.split(",") if f]
            if not files:
                raise ValueError("--hf-dataset needs --hf-files=<comma-separated files of the repo>")
            inputs += [dataset_file(args.hf_dataset, f, args.hf_revision, progress=not args.no_progress,
                                    verify=not args.hf_no_verify) for f in files]
            source = f"hf://datasets/{args.hf_dataset}@{args.hf_revision}: {', '.join(files)}"
        if not inputs:
            raise ValueError("nothing to prepare: pass --input=<file or directory>, --tiny-shakespeare and/or "
                             "--hf-dataset")
        if args.vocab_dir:
            encoder_json, vocab_bpe = (os.path.join(args.vocab_dir, n) for n in ("encoder.json", "vocab.bpe"))
        else:
            encoder_json, vocab_bpe = fetch_gpt2_vocab()
        manifest = prepare_shards(inputs, args.out, encoder_json, vocab_bpe, encoder=args.encoder,
                                  shard_size=args.shard_size, num_proc=args.num_proc, text_key=args.text_key,
                                  piece_chars=args.piece_chars, progress=not args.no_progress, source=source)
    except (ValueError, FileNotFoundError, PermissionError, ImportError, OSError) as e:
        print(f"gpt2/prepare.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.out}: {len(manifest['shards'])} shards, {manifest['tokens']:,} tokens "
          f"({manifest['shards'][0]['tokens']:,} in the validation shard 0), {manifest['documents']:,} documents")


if __name__ == "__main__":
    main(sys.argv[1:])
