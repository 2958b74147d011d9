"""Argument types and checks shared by the command-line modules of `spurlab.cli`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..errors import SpurlabError


def finite_float(text: str) -> float:
    """argparse `type=` of every float option: a finite number (NaN and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def check_model_dirs(names, directories, option: str = "--model") -> None:
    """Each model directory must hold the model it is given as: the `name` in its meta.json (what
    training and import record) equals the name beside it on the command line, so no table is
    labelled with another model's name. A meta.json without a name is not checked."""
    for name, directory in zip(names, directories):
        meta_path = Path(directory) / "meta.json"
        if not meta_path.is_file():
            raise SpurlabError(f"{meta_path}: missing (not a spurlab model directory)")
        try:
            meta = json.loads(meta_path.read_bytes().decode("utf-8"))
        except (ValueError, OSError) as e:
            raise SpurlabError(f"{meta_path}: not valid JSON ({e})") from None
        held = meta.get("name") if isinstance(meta, dict) else None
        if held is not None and str(held) != str(name):
            raise SpurlabError(f"{directory}: holds model '{held}' (meta.json name), not '{name}' as {option} says; "
                               "give each model its own directory")  # fmt: skip


def aligned(args, names: tuple[str, ...]) -> None:
    """Lists given side by side (one entry per set or model) must have one length."""
    lengths = {n: len(getattr(args, n)) for n in names}
    if len(set(lengths.values())) != 1:
        raise SpurlabError(f"--{names[0].replace('_', '-')} and its companions need one entry each: got {lengths}")


def named(names, paths, what: str) -> dict:
    """--names a b --paths x y -> {a: x, b: y} (one path per name; `what` is "--names/--paths").
    Model directories (`--models/--model-dirs`) must hold the models they are named as."""
    if len(names) != len(paths):
        raise SpurlabError(f"{what}: {len(names)} names but {len(paths)} paths")
    if what == "--models/--model-dirs":
        check_model_dirs(names, paths, "--models")
    return dict(zip(names, map(str, paths)))


def read_text(path, what: str) -> str:
    """A UTF-8 text file's content; a missing or undecodable file is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: {what} not found")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpurlabError(f"{path}: {what} is not UTF-8 text (byte offset {e.start})") from None


def key_paths(values, what: str) -> dict[str, list]:
    """KEY=PATH arguments as {key: [paths]} (a key may repeat)."""
    out: dict[str, list] = {}
    for v in values or []:
        key, sep, path = v.partition("=")
        if not sep or not key or not path:
            raise SpurlabError(f"{what}: '{v}' is not KEY=PATH")
        out.setdefault(key, []).append(path)
    return out
