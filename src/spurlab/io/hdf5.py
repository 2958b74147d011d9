"""spurlab HDF5 files: one check of existence, readability and format for every reader, and one
way to create them for every writer (attrs in creation order, the code fields stamped last)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import SpurlabError
from .code import code_provenance


def open_h5(path: str | os.PathLike, fmt: str, what: str):
    """Open a spurlab HDF5 file for reading; fail in one line unless it exists, is HDF5 and has
    `attrs["format"] == fmt` (`what` names the kind of file in the message)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: no such {what}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SpurlabError(f"{path}: not a readable HDF5 file ({e})") from e
    if f.attrs.get("format") != fmt:
        f.close()
        raise SpurlabError(f"{path}: not a spurlab {what}")
    return f


def stamp_code(f) -> None:
    """Set attrs `spurlab_version` and `code_sha256` (`code_provenance`) on an open HDF5 file,
    over any a writer copied: they name the code that wrote the file."""
    f.attrs.update(code_provenance())


@contextlib.contextmanager
def create_h5(path: str | os.PathLike) -> Iterator:
    """A new HDF5 file at `path` (the temporary path of `atomic_path`), attrs in creation order;
    `stamp_code` when the block succeeds, then closed."""
    import h5py

    with h5py.File(path, "w", track_order=True) as f:
        yield f
        stamp_code(f)
