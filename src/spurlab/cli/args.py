"""Argument types and checks shared by the command-line modules (`spurlab.cli`, `spurlab.cli.posthoc`)."""

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
