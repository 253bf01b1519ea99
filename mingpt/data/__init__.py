"""
Data (a room beside the core): what a model trains and is evaluated on.

    datasets.py      TokenStream (windows of one long token array), CharVocab / CharDataset, Tiny Shakespeare,
                     the train/val split
    token_shards.py  a corpus tokenized once into uint16 shards + manifest; TokenShards reads them (resumable)
    corpus.py        preparing shards: text / jsonl / parquet documents -> GPT-2 tokens, in parallel
    hellaswag.py     HellaSwag: the pinned download and completion-style scoring (a Trainer callback too)

The everyday names are importable from here: ``from mingpt.data import CharDataset, tiny_shakespeare``.
"""

from mingpt.data.datasets import (TINY_SHAKESPEARE, CharDataset, CharVocab, TokenStream, split_train_val,
                                  tiny_shakespeare)

__all__ = ["TokenStream", "CharVocab", "CharDataset", "TINY_SHAKESPEARE", "tiny_shakespeare", "split_train_val"]
