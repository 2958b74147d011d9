"""atomic_path after a killed writer: its temporary file is cleared by the next writer of the same
output (and only that output's), and an unwritable directory is a one-line SpurlabError."""

import os

import pytest

from spurlab.errors import SpurlabError
from spurlab.io import atomic_path


def test_next_writer_removes_a_killed_writers_temporary(tmp_path):
    stale = tmp_path / ".a.h5.k1ll3d_x.tmp"  # what a SIGKILLed writer of a.h5 leaves
    other = tmp_path / ".a.h5.x.k1ll3d_x.tmp"  # a temporary of another output, a.h5.x
    for p in (stale, other):
        p.write_text("partial")
    with atomic_path(tmp_path / "a.h5") as tmp:
        tmp.write_text("whole")
    assert sorted(os.listdir(tmp_path)) == [".a.h5.x.k1ll3d_x.tmp", "a.h5"]
    assert (tmp_path / "a.h5").read_text() == "whole"


def test_failed_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.h5") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_unwritable_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(SpurlabError) as e:
        with atomic_path(tmp_path / "file" / "out.h5"):
            pass
    assert str(e.value).startswith(f"{tmp_path / 'file'}: output directory not writable")
