"""Feature cache (docs/methods.md#feature-cache): `cache_features` writes one HDF5 per (model, image
set); its layout and its one verifying reader (`open_features`) are in `spurlab.data.feature_cache`.
A stage that only reads caches imports that module, which needs no torch.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from .data.feature_cache import FORMAT, check_finite, column_sha256
from .data.imagesets import ImageSet
from .io import atomic_path, create_h5


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
    with atomic_path(out) as tmp, create_h5(tmp) as f:
        rows = min(block, n)
        feats = f.create_dataset("features", (n, d), dtype=dtype, chunks=(min(rows, 1024), d), track_times=False)
        logits = f.create_dataset("logits", (n, c), dtype="float32", chunks=(min(rows, 1024), c), track_times=False)
        preds = f.create_dataset("preds", (n,), dtype="int64", track_times=False)
        labels, ids = imageset.labels, imageset.ids
        f.create_dataset("labels", data=labels, track_times=False)
        f.create_dataset("index", data=ids, track_times=False)
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
            labels_sha256=column_sha256(labels),
            index_sha256=column_sha256(ids),
        )
