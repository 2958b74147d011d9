"""Atomic writes and content hashes: the contracts every stage's outputs follow."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SpurlabError
from .code import code_provenance


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the byte form that config hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temp file lives in the same directory so the final `os.replace` is atomic; on any
    exception it is removed, so a failed or killed writer never leaves a partial output under
    the real name. Temporary files of `path` left by a writer killed earlier (SIGKILL skips the
    cleanup) are removed first: one writer per output, as under Snakemake.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp's names: prefix + 8 random characters + suffix (not another output's temporaries)
        for stale in path.parent.glob(glob.escape(f".{path.name}.") + "?" * 8 + ".tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a file in the way, no permission, read-only file system
        raise SpurlabError(f"{path.parent}: output directory not writable ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as indented JSON with sorted keys; a dict gets `spurlab_version` and `code_sha256`
    (`spurlab.io.code.code_provenance`: they name the code that wrote the file)."""
    if isinstance(obj, dict):
        obj = {**obj, **code_provenance()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
