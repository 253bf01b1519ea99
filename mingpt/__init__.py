"""mingpt: an educational, object-oriented GPT in PyTorch."""

from mingpt.config import CfgNode
from mingpt.utils import choose_device, set_seed, setup_logging

__version__ = "0.1.0"
