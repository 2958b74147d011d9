"""Atomic writes and content hashes: atomic_path after a killed writer (its temporary file is cleared
by the next writer of the same output, and only that output's), an unwritable directory is a
one-line SpurlabError; canonical JSON and its hash, file hashes, write_json's provenance."""

import hashlib
import json
import os
import stat

import pytest

from spurlab.errors import SpurlabError
from spurlab.io import code_provenance
from spurlab.io.files import atomic_path, canonical_json, sha256_file, sha256_json, write_json


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


def test_canonical_json_and_its_hash_ignore_key_order():
    a, b = {"b": [1, 2.5], "a": {"y": None, "x": "é"}}, {"a": {"x": "é", "y": None}, "b": [1, 2.5]}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":"\\u00e9","y":null},"b":[1,2.5]}'
    assert sha256_json(a) == sha256_json(b) == hashlib.sha256(canonical_json(a).encode()).hexdigest()
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})


def test_sha256_file_streams_in_blocks(tmp_path):
    data = bytes(range(256)) * 100
    (tmp_path / "x").write_bytes(data)
    assert sha256_file(tmp_path / "x", block=7) == sha256_file(tmp_path / "x") == hashlib.sha256(data).hexdigest()


def test_write_json_stamps_the_code_and_writes_ordinary_files(tmp_path):
    write_json(tmp_path / "sub" / "s.json", {"b": 1, "a": [1]})
    text = (tmp_path / "sub" / "s.json").read_text()
    assert json.loads(text) == {"a": [1], "b": 1, **code_provenance()}
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    write_json(tmp_path / "l.json", [1, 2])  # not a dict: written as it is
    assert json.loads((tmp_path / "l.json").read_text()) == [1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "l.json").st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["l.json", "sub"]
