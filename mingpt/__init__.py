"""
mingpt: an educational, object-oriented GPT in PyTorch.

The teaching core sits directly in this folder; read it in this order:

    config.py      what a GPT is: its settings and the named sizes (gpt2, gpt-nano, ...)
    model.py       GPT-2 itself: attention, MLP, Block, GPT
    generation.py  choosing the next token, and the KV-cache decode loop
    bpe.py         byte-pair encoding: GPT-2's tokenizer (tokenizer.py is its fast engine, bpe_train.py learns one)
    trainer.py     the training loop and its events
    utils.py       seeding, logging, devices, small checks

Small helpers below the core: cfgnode.py (CfgNode), atomic.py (atomic writes), inputs.py (token-id checks, the
causal mask), components.py (what a plug-in attention / MLP / Block must look like). Everything else lives in rooms
named for what they do: interp/ (looking inside), training/ (the loop's plumbing), io/ (downloads, the Hub,
weights), data/ (datasets and shards), exercises/ (checkers for a class), cli/ (the command line).

    from mingpt import GPT, Trainer, BPETokenizer

The names below are loaded when first used, so ``import mingpt.model`` loads the model and nothing else.
"""

import importlib

__version__ = "0.2.0"

_HOMES = {
    "GPT": "mingpt.model",
    "Trainer": "mingpt.trainer",
    "BPETokenizer": "mingpt.bpe",
    "get_encoder": "mingpt.bpe",
    "CfgNode": "mingpt.cfgnode",
    "set_seed": "mingpt.utils",
    "choose_device": "mingpt.utils",
    "setup_logging": "mingpt.utils",
    "Probe": "mingpt.interp.probe",
    "run_with_probe": "mingpt.interp.probe",
    "ActivationCache": "mingpt.interp.activation_cache",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    # PEP 562: `from mingpt import GPT` imports mingpt.model on first use instead of every module at start-up.
    if name not in _HOMES:
        raise AttributeError(f"module 'mingpt' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
