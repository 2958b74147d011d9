"""Opening spurlab HDF5 files: one check of existence, readability and format for every reader."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SpurlabError


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
