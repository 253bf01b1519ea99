"""
Loading a torch file without running its code: ``torch.load(weights_only=True)`` with errors that say what happened.

The one idea: a pickle is a program. An object's ``__reduce__`` can call any function while it is unpickled, so a
downloaded checkpoint or ``pytorch_model.bin`` could run code on your machine. PyTorch's weights-only unpickler
allows tensors and plain data (numbers, strings, lists, dicts) and refuses everything else; mingpt only ever loads
that way, and turns torch's long refusals into one line that names the refused global, never the advice to retry
with ``weights_only=False``. Safetensors files hold no code, but a download cut short still has to be told from
a whole one: `check_safetensors` reads only the header and checks the tensors fit the bytes.
Checkpoints (mingpt/training/checkpoint.py) and pretrained weights (mingpt/io/pretrained.py) both load through
here.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import warnings
from typing import Any

import torch

__all__ = ["UnsafeFileError", "check_safetensors", "load_plain_data"]


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


# Bytes per element of each safetensors dtype: a tensor's extent in the file must be exactly numel * this.
SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                           "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def check_safetensors(path: str | os.PathLike) -> None:
    """
    Raise ValueError unless `path` is a whole safetensors file. The format is an 8-byte little-endian header
    length, a JSON header {name: {dtype, shape, data_offsets: [start, end]}}, then the tensors' bytes; a file cut
    short (or padded) shows as offsets that do not fit the bytes that are there. Reads only the header.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < length <= size - 8:
            raise ValueError(f"{path} is not a complete safetensors file: {size} bytes cannot hold its header")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a safetensors file: its header is not JSON ({e})") from None
    data_size, covered = size - 8 - length, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            numel = 1
            for dim in info["shape"]:
                numel *= dim
            expected = numel * SAFETENSORS_DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path} is not a valid safetensors file: bad header entry for {name!r}") from None
        if not 0 <= start <= end <= data_size:
            raise ValueError(f"{path} is truncated: tensor {name!r} needs bytes {start}..{end} of the data, but the "
                             f"file holds {data_size} ({size} bytes in all)")
        if end - start != expected:
            raise ValueError(f"{path} is damaged: tensor {name!r} has {end - start} bytes for {expected} expected")
        covered = max(covered, end)
    if covered != data_size:
        raise ValueError(f"{path} is damaged: {data_size - covered} bytes follow the last tensor")
