"""Argument types and checks shared by the command-line modules: finite floats, model directories
that hold the model they are named as, side-by-side lists, text files, KEY=PATH pairs."""

import argparse
import json
from types import SimpleNamespace

import pytest

from spurlab.cli.args import aligned, check_model_dirs, finite_float, key_paths, named, read_text
from spurlab.errors import SpurlabError


def test_finite_float():
    assert finite_float("1e-3") == 0.001 and finite_float(" -2 ") == -2.0
    for text, why in (("nan", "not a finite number"), ("-inf", "not a finite number"), ("x", "not a number")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{text}' is {why}"):
            finite_float(text)


def test_model_dirs_must_hold_the_named_model(tmp_path):
    for name, meta in (("a", {"name": "a"}), ("b", {"name": "other"}), ("c", {}), ("d", None)):
        (tmp_path / name).mkdir()
        if meta is not None:
            (tmp_path / name / "meta.json").write_text(json.dumps(meta))
    check_model_dirs(["a", "c"], [tmp_path / "a", tmp_path / "c"])  # a meta.json without a name: not checked
    with pytest.raises(SpurlabError, match=r"b: holds model 'other' \(meta.json name\), not 'b' as --models says"):
        check_model_dirs(["b"], [tmp_path / "b"], "--models")
    with pytest.raises(SpurlabError, match=r"d/meta.json: missing \(not a spurlab model directory\)"):
        check_model_dirs(["d"], [tmp_path / "d"])
    (tmp_path / "c" / "meta.json").write_text("{")
    with pytest.raises(SpurlabError, match=r"c/meta.json: not valid JSON"):
        check_model_dirs(["c"], [tmp_path / "c"])
    assert named(["a"], [tmp_path / "a"], "--models/--model-dirs") == {"a": str(tmp_path / "a")}
    with pytest.raises(SpurlabError, match=r"b: holds model 'other' \(meta.json name\), not 'b' as --models says"):
        named(["b"], [tmp_path / "b"], "--models/--model-dirs")
    assert named(["b"], [tmp_path / "b"], "--sets/--paths") == {"b": str(tmp_path / "b")}  # not model dirs
    with pytest.raises(SpurlabError, match="--sets/--paths: 2 names but 1 paths"):
        named(["x", "y"], ["p"], "--sets/--paths")


def test_aligned_lists_and_key_paths():
    aligned(SimpleNamespace(sets=[1, 2], features=[3, 4]), ("sets", "features"))
    with pytest.raises(SpurlabError, match=r"--pool-sets and its companions need one entry each: got \{'pool_sets': 2"):
        aligned(SimpleNamespace(pool_sets=[1, 2], features=[3]), ("pool_sets", "features"))
    assert key_paths(["a=x.json", "b=y", "a=z=w"], "--summary") == {"a": ["x.json", "z=w"], "b": ["y"]}
    assert key_paths(None, "--detail") == {}
    for bad in ("a", "=x", "a="):
        with pytest.raises(SpurlabError, match=f"--summary: '{bad}' is not KEY=PATH"):
            key_paths([bad], "--summary")


def test_read_text(tmp_path):
    (tmp_path / "ok.txt").write_text("héllo\n", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt", "class names") == "héllo\n"
    with pytest.raises(SpurlabError, match="no.txt: class names not found"):
        read_text(tmp_path / "no.txt", "class names")
    (tmp_path / "latin.txt").write_bytes("ab\xe9".encode("latin-1"))
    with pytest.raises(SpurlabError, match=r"latin.txt: class names is not UTF-8 text \(byte offset 2\)"):
        read_text(tmp_path / "latin.txt", "class names")
