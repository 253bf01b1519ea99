"""
Loading a torch file without running its code: ``torch.load(weights_only=True)`` with errors that say what happened.

The one idea: a pickle is a program. An object's ``__reduce__`` can call any function while it is unpickled, so a
downloaded checkpoint or ``pytorch_model.bin`` could run code on your machine. PyTorch's weights-only unpickler
allows tensors and plain data (numbers, strings, lists, dicts) and refuses everything else; mingpt only ever loads
that way, and turns torch's long refusals into one line that names the refused global, never the advice to retry
with ``weights_only=False``. Checkpoints (mingpt/training/checkpoint.py) and pretrained weights
(mingpt/io/pretrained.py) both load through here.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import warnings
from typing import Any

import torch

__all__ = ["UnsafeFileError", "load_plain_data"]


class UnsafeFileError(ValueError):
    """A file holds pickled objects other than tensors and plain data; it was refused, and nothing in it ran."""


def load_plain_data(path: str | os.PathLike, map_location: str | torch.device = "cpu", fix: str = "",
                    what: str = "checkpoint", mmap: bool = False) -> Any:
    """
    torch.load(weights_only=True), with errors that say what happened: UnsafeFileError when the safe unpickler
    refuses the content (a global it does not allow, or an instruction it does not know, such as those of pickle
    protocols 4 and 5), ValueError when the file is truncated or corrupt. `fix` ends the unsafe message; `what`
    names the kind of file in the other one. mmap=True maps the tensors' bytes instead of reading them.
    """
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols 4/5 before refusing them itself
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # Every refusal of the weights-only unpickler starts with this sentence. It also refuses bytes that are no
        # pickle instruction at all (junk, a damaged file): that is corruption, not a threat.
        if "Weights only load failed" in str(e) and not _is_junk_opcode(e):
            raise UnsafeFileError(
                f"refusing to load {str(path)!r}: it contains pickled Python objects or instructions beyond tensors "
                f"and plain data ({_first_line(e)}), and unpickling those can run arbitrary code. {fix}".rstrip()
            ) from None
        raise ValueError(f"{str(path)!r} is not a readable {what} (corrupt?): {_first_line(e)}") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{str(path)!r} is not a readable {what} (truncated or corrupt?): {_first_line(e)}") from None


_PICKLE_OPCODES = {ord(op.code) for op in pickletools.opcodes}


def _is_junk_opcode(e: BaseException) -> bool:
    """True when the unpickler stopped at a byte that is no pickle instruction at all (so the file is damaged)."""
    match = re.search(r"Unsupported operand (\d+)", str(e))
    return match is not None and int(match.group(1)) not in _PICKLE_OPCODES


def _first_line(e: BaseException) -> str:
    """The informative line of a torch.load error (for pickles: the one naming the refused global)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "unsupported global" in line.lower() or "unsupported operand" in line.lower():
            # torch goes on to suggest allow-listing the global: never advice to give about a refused file
            return line.removeprefix("WeightsUnpickler error: ").split(" Please use", 1)[0]
    # Never pass on torch's advice to retry with weights_only=False: that is how a malicious file runs code.
    lines = [line for line in lines if "weights_only" not in line and "Weights only load failed" not in line]
    return lines[0].removeprefix("WeightsUnpickler error: ") if lines else type(e).__name__
