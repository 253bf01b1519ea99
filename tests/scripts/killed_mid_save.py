"""
Helper for test_checkpoint.py: save a good checkpoint, then start saving a second one to the same path and hang
halfway through writing it, so the test can SIGKILL this process mid-save.

    python killed_mid_save.py CHECKPOINT_PATH
"""

import io
import sys
import time

import torch

from mingpt.training import checkpoint

path = sys.argv[1]
model = torch.nn.Linear(4, 4)
with torch.no_grad():
    model.weight.fill_(1.0)
checkpoint.save_checkpoint(path, model=model, iter_num=1)

real_save = torch.save


def half_then_hang(obj, temp_path):
    """Write the first half of the real bytes to the (temporary) file, then stall as a slow disk would."""
    buffer = io.BytesIO()
    real_save(obj, buffer)
    data = buffer.getvalue()
    with open(temp_path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        print("mid-save", flush=True)
        time.sleep(60)


checkpoint.torch.save = half_then_hang  # this process only
with torch.no_grad():
    model.weight.fill_(2.0)
checkpoint.save_checkpoint(path, model=model, iter_num=2)
