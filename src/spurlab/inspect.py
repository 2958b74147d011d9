"""`spurlab inspect FILE`: a human-readable summary of a spurlab file."""

from __future__ import annotations

import numpy as np

from .data.imagesets import ImageSet


def describe(path, verify: bool = False) -> str:
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
                lines.append(f"    {name:<12}" + "  ".join(f"{meta[col].to_numpy()[rows].mean():>{width}.3f}" for col in cues))
        return "\n".join(lines)
