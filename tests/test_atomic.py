"""atomic_path: the destination is replaced whole on success and left untouched on failure."""

import os
import signal
import stat
import subprocess
import sys

import pytest

import mingpt.atomic
from mingpt.atomic import atomic_path


def test_success_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(target.parent)  # same directory: os.replace is a rename
        with open(tmp, "w") as f:
            f.write("new")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["file.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("crashed half-way")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["file.txt"]


# ---------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_usual_permissions_from_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "out.json") as tmp:
            with open(tmp, "w") as f:
                f.write("{}")
        (tmp_path / "plain.json").write_text("{}")  # what open(path, "w") gives, for comparison
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "plain.json").st_mode) == expected


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "private.pt"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and stat.S_IMODE(os.stat(target).st_mode) == 0o640


# ---------------------------------------------------------------------------------------------- stale temp files
WRITE_AND_HANG = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("atomic", sys.argv[2])  # just this file: no torch import, fast
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
with atomic.atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as f:
        f.write("half of a checkpoint")
    print(tmp, flush=True)
    time.sleep(60)
"""


def _start_writer(target):
    """A real process that is mid-way through an atomic write of `target` (its temp file exists and has bytes)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITE_AND_HANG, str(target), mingpt.atomic.__file__],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_the_next_write_removes_temp_files_of_killed_writers_only(tmp_path):
    target = tmp_path / "last.pt"
    target.write_text("good")
    alive, alive_tmp = _start_writer(target)
    killed, killed_tmp = _start_writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # A live write of another file, named 'last.pt.<the dead pid>': its temp name starts like ours; not ours.
    other_target = tmp_path / f".last.pt.{killed.pid}.{os.getpid()}.deadbeef.tmp"
    other_target.write_text("not ours")
    try:
        assert os.path.exists(killed_tmp) and target.read_text() == "good"  # the kill left debris, not damage
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("new")
        assert not os.path.exists(killed_tmp)  # cleaned up by the next write of the same target
        assert os.path.exists(alive_tmp)  # a writer that is still running keeps its temp file
        assert other_target.exists()  # another target's temp file is left alone
        assert target.read_text() == "new"
    finally:
        alive.kill()
        alive.wait()


def test_files_written_through_third_party_savers_get_the_umask_permissions(tmp_path):
    """safetensors' save_file replaces the path it is given with a private 0o600 file; torch.save and matplotlib
    write into it. Whatever the saver does, a file mingpt writes gets 0o666 minus the umask, like open(path, "w")."""
    import torch

    from mingpt.io.pretrained import save_pretrained
    from mingpt.model import GPT
    from mingpt.posttrain.lora import apply_lora, save_lora_adapter
    from mingpt.training.checkpoint import save_checkpoint

    config = GPT.get_default_config()
    config.model_type, config.vocab_size, config.block_size = "gpt-nano", 11, 7
    model = GPT(config)
    old = os.umask(0o022)
    try:
        save_pretrained(model, tmp_path / "model")
        apply_lora(model, r=2)
        save_lora_adapter(model, tmp_path / "adapter")
        save_checkpoint(tmp_path / "run" / "last.pt", model=model, optimizer=torch.optim.SGD(model.parameters(), 0.1))
    finally:
        os.umask(old)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"model.safetensors", "config.json", "adapter_model.safetensors",
                                         "adapter_config.json", "last.pt"}
    modes = {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(os.stat(p).st_mode)) for p in written}
    assert set(modes.values()) == {"0o644"}, modes
