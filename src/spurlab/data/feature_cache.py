"""Feature cache (docs/methods.md#feature-cache): one HDF5 per (model, image set) that every later stage reads.

This module holds its layout and its reader, without torch, so that a stage that only reads caches
does not import torch (about 1.5 s a job); `spurlab.features` writes caches.

Layout::

    features  float32 (or float16) (N, D)   phi(x), the penultimate features
    logits    float32 (N, C)
    preds     int64 (N,)
    labels    int64 (N,)
    index     bytes (N,)                    row -> image id (the image set's `ids`)
    attrs     format, model, arch, checkpoint_sha256, imageset, imageset_sha256,
              n_rows, num_features, num_classes, feature_dtype, spurlab_version, code_sha256,
              labels_sha256, index_sha256 (`column_sha256` of the labels and ids written)

Rows are in the image set's order. The cache is written in row blocks while streaming (memory
does not grow with N; the next block is read from disk while the model runs on the current one),
to a temporary name then renamed. `open_features` is the only reader, and every consumer opens a
cache through it. It always checks the cache on its own (`FeatureCache.check`: format, every
dataset (logits optional) and attribute present, every dataset `n_rows` long and `num_features` /
`num_classes` wide, labels and ids matching their stored hashes), then, when given them, that it
was made from that checkpoint and that image set (`FeatureCache.check_imageset`: the set's
content hash, row count, labels and ids). A cache written before the row hashes were recorded is
refused: rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import SpurlabError
from ..io import open_h5, sha256_file
from .imagesets import ImageSet

FORMAT = "spurlab.features"
ROW_DATASETS = ("features", "logits", "preds", "labels", "index")  # logits optional (checked when present)
REQUIRED_ATTRS = ("n_rows", "num_features", "num_classes", "checkpoint_sha256", "imageset_sha256", "class_names",
                  "labels_sha256", "index_sha256")  # fmt: skip
REBUILD = "rebuild it (snakemake -R features, or spurlab features)"


def column_sha256(values) -> str:
    """sha256 of one row column, the same for any dtype width it is stored in: integers as
    little-endian int64, byte strings (ids) newline-joined."""
    a = np.asarray(values)
    if a.dtype.kind in "SUO":
        kind, data = "s", b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in a.tolist())
    else:
        kind, data = "i", np.ascontiguousarray(a, dtype="<i8").tobytes()
    return hashlib.sha256(f"{kind}:{len(a)}\n".encode() + data).hexdigest()


def model_checkpoint_sha256(model_dir: str | os.PathLike) -> str:
    return sha256_file(Path(model_dir) / "model.safetensors")


def check_finite(arr: np.ndarray, what: str, start: int = 0) -> np.ndarray:
    """`arr` unchanged if every value is finite; otherwise a one-line error naming the first bad row."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = start + int(np.flatnonzero(bad.reshape(len(arr), -1).any(1))[0])
            raise SpurlabError(f"{what}: row {row} is not finite (NaN or Inf)")
    return arr


class FiniteRows:
    """An h5py dataset read by row slices (`shape`, `dtype`, `len`, `[start:stop]`), every slice
    refused unless finite (`check_finite`, naming `what` and the row)."""

    def __init__(self, ds, what: str):
        self.ds, self.what = ds, what
        self.shape, self.dtype = ds.shape, ds.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        start = (index.start or 0) if isinstance(index, slice) else 0
        return check_finite(self.ds[index], self.what, start)


class FeatureCache:
    """Read access to a feature cache (see module docstring). Arrays are read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.f = open_h5(self.path, FORMAT, "feature cache")
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.f.attrs.items()}
        try:
            self.check()
        except BaseException:
            self.f.close()
            raise

    def check(self) -> None:
        """The cache on its own: every attribute and dataset present, every dataset `n_rows` rows
        (and `num_features` / `num_classes` wide), labels and ids matching their stored hashes."""
        for key in REQUIRED_ATTRS:
            if key not in self.attrs:
                why = "written before row hashes were recorded" if key.endswith("_sha256") else "incomplete file"
                raise SpurlabError(f"{self.path}: feature cache has no attribute '{key}' ({why}); {REBUILD}")
        n = int(self.attrs["n_rows"])
        widths = {"features": int(self.attrs["num_features"]), "logits": int(self.attrs["num_classes"])}
        for name in ROW_DATASETS:
            ds = self.f.get(name)
            if ds is None and name == "logits":  # a consumer that needs them names them (__getitem__)
                continue
            if not isinstance(ds, h5py.Dataset):
                raise SpurlabError(f"{self.path}: feature cache has no dataset '{name}'; {REBUILD}")
            if ds.ndim < 1 or ds.shape[0] != n:
                rows = ds.shape[0] if ds.ndim else 0
                raise SpurlabError(f"{self.path}: dataset '{name}' has {rows} rows, the cache records n_rows={n} "
                                   f"(cut or edited); {REBUILD}")  # fmt: skip
            want = (n, widths[name]) if name in widths else (n,)
            if ds.shape != want:
                raise SpurlabError(f"{self.path}: dataset '{name}' has shape {ds.shape}, expected {want}; {REBUILD}")
        for name, key in (("labels", "labels_sha256"), ("index", "index_sha256")):
            if column_sha256(self.f[name][:]) != self.attrs[key]:
                raise SpurlabError(f"{self.path}: dataset '{name}' does not match its {key} attribute "
                                   f"(rows edited or reordered); {REBUILD}")  # fmt: skip

    def check_imageset(self, imageset: ImageSet) -> None:
        """That the cache was made from `imageset`: its content hash, row count, labels and ids."""
        s = imageset
        if self.attrs["imageset_sha256"] != s.sha256:
            raise SpurlabError(
                f"{self.path}: made from image set {self.attrs['imageset_sha256'][:12]}..., but {s.path} is "
                f"{s.sha256[:12]}...; recompute the features"
            )
        if len(self) != len(s):
            raise SpurlabError(f"{self.path}: {len(self)} rows, but image set {s.path} has {len(s)} images; "
                               "recompute the features")  # fmt: skip
        for name, key, values in (("labels", "labels_sha256", s.labels), ("index", "index_sha256", s.ids)):
            if self.attrs[key] != column_sha256(values):
                what = "labels" if name == "labels" else "ids"
                raise SpurlabError(f"{self.path}: dataset '{name}' differs from the {what} of image set {s.path}; "
                                   "recompute the features")  # fmt: skip

    def __len__(self) -> int:
        return int(self.attrs["n_rows"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.f.close()

    @property
    def class_names(self) -> list[str]:
        return json.loads(self.attrs["class_names"])

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.f:
            raise SpurlabError(f"{self.path}: no dataset '{name}'")
        return check_finite(self.f[name][:], f"{self.path}: {name}")

    def rows(self, name: str) -> FiniteRows:
        """A dataset to slice by rows without reading it whole (as an h5py dataset), each slice
        checked finite: for code that takes an array-like (`spurlab.discover.npca.fit_npca`)."""
        if name not in self.f:
            raise SpurlabError(f"{self.path}: no dataset '{name}'")
        return FiniteRows(self.f[name], f"{self.path}: {name}")

    def blocks(self, name: str, rows: int = 65536):
        """Yield (start, array) blocks of a dataset: bounded memory for any N (NaN/Inf refused)."""
        if name not in self.f:
            raise SpurlabError(f"{self.path}: no dataset '{name}'")
        ds = self.f[name]
        for s in range(0, ds.shape[0], rows):
            yield s, check_finite(ds[s : s + rows], f"{self.path}: {name}", s)


def open_features(
    path: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
    imageset: str | os.PathLike | ImageSet | None = None,
) -> FeatureCache:
    """Open a feature cache, checked on its own (`FeatureCache.check`); with `model_dir` /
    `imageset`, fail clearly unless it was made from exactly that checkpoint and that image set
    (`FeatureCache.check_imageset`). Every consumer of a cache opens it here."""
    fc = FeatureCache(path)
    try:
        if model_dir is not None:
            want = model_checkpoint_sha256(model_dir)
            if fc.attrs["checkpoint_sha256"] != want:
                raise SpurlabError(
                    f"{path}: made from checkpoint {fc.attrs['checkpoint_sha256'][:12]}..., but "
                    f"{Path(model_dir) / 'model.safetensors'} is {want[:12]}...; recompute the features"
                )
        if imageset is not None:
            fc.check_imageset(imageset if isinstance(imageset, ImageSet) else ImageSet(imageset))
    except BaseException:
        fc.close()
        raise
    return fc
