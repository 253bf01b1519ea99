"""
mingpt: an educational, object-oriented GPT in PyTorch.

    from mingpt import GPT, Trainer, BPETokenizer
"""

from mingpt.activation_cache import ActivationCache
from mingpt.bpe import BPETokenizer, get_encoder
from mingpt.config import CfgNode
from mingpt.model import GPT
from mingpt.probe import Probe, run_with_probe
from mingpt.trainer import Trainer
from mingpt.utils import choose_device, set_seed, setup_logging

__version__ = "0.1.0"
__all__ = [
    "GPT",
    "Trainer",
    "BPETokenizer",
    "get_encoder",
    "CfgNode",
    "Probe",
    "run_with_probe",
    "ActivationCache",
    "set_seed",
    "choose_device",
    "setup_logging",
]
