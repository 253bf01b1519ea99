"""atomic_path: the destination is replaced whole on success and left untouched on failure."""

import os

import pytest

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
