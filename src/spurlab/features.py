"""Feature cache (SPEC 3): one HDF5 per (model, image set) that every later stage reads.

Layout::

    features  float32 (or float16) (N, D)   phi(x), the penultimate features
    logits    float32 (N, C)
    preds     int64 (N,)
    labels    int64 (N,)
    index     bytes (N,)                    row -> image id (the image set's `ids`)
    attrs     format, model, arch, checkpoint_sha256, imageset, imageset_sha256,
              n_rows, num_features, num_classes, feature_dtype, code_version

Rows are in the image set's order. The cache is written in row blocks while streaming (memory
does not grow with N; the next block is read from disk while the model runs on the current one),
to a temporary name then renamed. `open_features` is the only reader: it checks the format and,
when given the model directory or image set, that the hashes match.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import torch

from . import __version__
from .data.imagesets import ImageSet
from .errors import SpurlabError
from .io import atomic_path, open_h5, sha256_file

FORMAT = "spurlab.features"


def model_checkpoint_sha256(model_dir: str | os.PathLike) -> str:
    return sha256_file(Path(model_dir) / "model.safetensors")


@torch.no_grad()
def cache_features(
    model,
    model_name: str,
    model_sha256: str,
    imageset: ImageSet,
    out: str | os.PathLike,
    device: torch.device,
    batch_size: int = 256,
    block: int = 2048,
    dtype: str = "float32",
    progress: bool = True,
) -> None:
    """Forward every image of `imageset` through `model`; stream features/logits into `out`."""
    from tqdm import tqdm

    from .device import autocast

    n = len(imageset)
    d, c = model.num_features, model.num_classes
    model.eval()
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        rows = min(block, n)
        feats = f.create_dataset("features", (n, d), dtype=dtype, chunks=(min(rows, 1024), d), track_times=False)
        logits = f.create_dataset("logits", (n, c), dtype="float32", chunks=(min(rows, 1024), c), track_times=False)
        preds = f.create_dataset("preds", (n,), dtype="int64", track_times=False)
        f.create_dataset("labels", data=imageset.labels, track_times=False)
        f.create_dataset("index", data=imageset.ids, track_times=False)
        starts = list(range(0, n, block))
        with ThreadPoolExecutor(1) as reader, tqdm(total=n, desc=f"features {model_name}", unit="img",
                                                    disable=not progress, mininterval=5.0) as bar:  # fmt: skip
            nxt = reader.submit(imageset.images, slice(0, min(block, n)))
            for i, s in enumerate(starts):
                images = nxt.result()
                if i + 1 < len(starts):
                    nxt = reader.submit(imageset.images, slice(starts[i + 1], min(starts[i + 1] + block, n)))
                x_all = torch.from_numpy(images)
                fb, lb = [], []
                for j in range(0, len(x_all), batch_size):
                    x = x_all[j : j + batch_size].to(device).permute(0, 3, 1, 2).float().div_(255.0)
                    with autocast(device):
                        phi, lg = model.forward_with_features(x)
                    fb.append(phi.float().cpu())
                    lb.append(lg.float().cpu())
                fb, lb = torch.cat(fb).numpy(), torch.cat(lb).numpy()
                fb = fb.astype(dtype)
                # a diverged model (or float16 overflow) must not leave NaN/Inf for later stages
                check_finite(fb, f"{model_name} on {imageset.path}: features", s)
                check_finite(lb, f"{model_name} on {imageset.path}: logits", s)
                feats[s : s + len(fb)] = fb
                logits[s : s + len(lb)] = lb
                preds[s : s + len(lb)] = lb.argmax(1)
                bar.update(len(fb))
        f.attrs.update(
            format=FORMAT,
            model=model_name,
            arch=model.arch,
            checkpoint_sha256=model_sha256,
            imageset=imageset.attrs.get("set_name", imageset.path.stem),
            imageset_sha256=imageset.sha256,
            class_names=json.dumps(imageset.class_names),
            n_rows=n,
            num_features=d,
            num_classes=c,
            feature_dtype=dtype,
            code_version=__version__,
        )


def check_finite(arr: np.ndarray, what: str, start: int = 0) -> np.ndarray:
    """`arr` unchanged if every value is finite; otherwise a one-line error naming the first bad row."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = start + int(np.flatnonzero(bad.reshape(len(arr), -1).any(1))[0])
            raise SpurlabError(f"{what}: row {row} is not finite (NaN or Inf)")
    return arr


class FeatureCache:
    """Read access to a feature cache (see module docstring). Arrays are read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.f = open_h5(self.path, FORMAT, "feature cache")
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.f.attrs.items()}

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

    def blocks(self, name: str, rows: int = 65536):
        """Yield (start, array) blocks of a dataset: bounded memory for any N (NaN/Inf refused)."""
        ds = self.f[name]
        for s in range(0, ds.shape[0], rows):
            yield s, check_finite(ds[s : s + rows], f"{self.path}: {name}", s)


def open_features(
    path: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
    imageset: str | os.PathLike | ImageSet | None = None,
) -> FeatureCache:
    """Open a feature cache; with `model_dir` / `imageset`, fail clearly unless it was made from
    exactly that checkpoint and that image set."""
    fc = FeatureCache(path)
    if model_dir is not None:
        want = model_checkpoint_sha256(model_dir)
        if fc.attrs["checkpoint_sha256"] != want:
            fc.close()
            raise SpurlabError(
                f"{path}: made from checkpoint {fc.attrs['checkpoint_sha256'][:12]}..., but "
                f"{Path(model_dir) / 'model.safetensors'} is {want[:12]}...; recompute the features"
            )
    if imageset is not None:
        s = imageset if isinstance(imageset, ImageSet) else ImageSet(imageset)
        if fc.attrs["imageset_sha256"] != s.sha256:
            fc.close()
            raise SpurlabError(
                f"{path}: made from image set {fc.attrs['imageset_sha256'][:12]}..., but {s.path} is "
                f"{s.sha256[:12]}...; recompute the features"
            )
    return fc
