"""`spurlab inspect FILE`: a human-readable summary of a spurlab file."""

from __future__ import annotations

import h5py
import numpy as np

from .data.feature_cache import FORMAT as FEATURES
from .data.feature_cache import open_features
from .data.imagesets import ImageSet
from .errors import SpurlabError


def describe(path, verify: bool = False) -> str:
    """Image sets and feature caches, told apart by their `format` attribute."""
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except OSError as e:
        raise SpurlabError(f"{path}: not a readable HDF5 file ({e})") from e
    if fmt == FEATURES:
        return _describe_features(path)
    return _describe_imageset(path, verify)


def _describe_features(path) -> str:
    with open_features(path) as fc:
        a = fc.attrs
        preds, labels = fc["preds"], fc["labels"]
        labelled = labels >= 0
        acc = f"{(preds[labelled] == labels[labelled]).mean():.4f}" if labelled.any() else "n/a (no labels)"
        return "\n".join([
            f"{path}",
            f"  feature cache of model '{a['model']}' ({a['arch']}) on image set '{a['imageset']}'",
            f"  {len(fc)} rows, {a['num_features']} features ({a['feature_dtype']}), {a['num_classes']} logits",
            f"  checkpoint sha256 {a['checkpoint_sha256']}",
            f"  image set sha256  {a['imageset_sha256']}",
            f"  accuracy {acc}",
        ])  # fmt: skip


def _describe_imageset(path, verify: bool) -> str:
    with ImageSet(path) as s:
        if verify:
            s.verify()
        a = s.attrs
        lines = [
            f"{path}",
            f"  image set '{a.get('set_name')}' ({s.kind}), {len(s)} images of {s.image_size}x{s.image_size}",
            f"  sha256 {s.sha256}" + ("  (verified)" if verify else ""),
            f"  generator {a.get('generator_version')}, seed {a.get('seed')}, config sha256 {a.get('config_sha256', '')[:16]}",
        ]
        labels = s.labels
        names = s.class_names
        counts = {(names[c] if c >= 0 else "(none)"): int(k) for c, k in zip(*np.unique(labels, return_counts=True))}
        lines.append(f"  labels ({a.get('label_kind')}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines.append(f"  masks: {', '.join(s.mask_names) or 'none'}")
        lines.append(f"  metadata: {', '.join(s.meta_columns)}")
        cues = [c for c in s.meta_columns if c.startswith("cue_") and c != "cue_on"]
        if cues:
            meta = s.meta(cues)
            lines.append("  cue rate per class:")
            width = max(len(c) for c in cues) - 4
            lines.append("    " + " " * 12 + "  ".join(f"{c[4:]:>{width}}" for c in cues))
            for c in np.unique(labels):
                rows = labels == c
                name = names[c] if c >= 0 else "(none)"
                lines.append(
                    f"    {name:<12}" + "  ".join(f"{meta[col].to_numpy()[rows].mean():>{width}.3f}" for col in cues)
                )
        return "\n".join(lines)
