"""Class shards: per-class work (NPCA bases, D(i, j) subsets, component visualisations, noise tests)
split into jobs over contiguous class ranges, and the merge of their outputs.

A shard job writes the same file format as the whole job, restricted to its classes, with the attr
(HDF5) or provenance key (tables) ``shard = "i/n"``. `merge_shards` checks that the n shard files
are shards 0..n-1 of one job (every other attr and provenance value equal), concatenates them in
class order and drops the ``shard`` key, so the merged file holds exactly what one unsharded job
writes (tests/test_shards.py compares them), except that its `code_sha256` names the merge's code
(`spurlab.io.code`; the shards' must agree, so shards of older code are refused). Every per-class result depends only on its class (the
randomised NPCA start is seeded by (seed, k), noise by image row), never on what else ran.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SpurlabError
from .io import atomic_path, create_h5, sha256_file
from .io.tables import read_table, table_provenance, write_table

SHARD_KEY = "shard"


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: classes [index * C // count, (index + 1) * C // count)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/n' with 0 <= i < n, as the rules pass it (`--shard 3/8`)."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise SpurlabError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
        if not 0 <= i < n:
            raise SpurlabError(f"--shard {text!r}: need 0 <= I < N")
        return cls(i, n)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def classes(self, num_classes: int) -> range:
        r = range(self.index * num_classes // self.count, (self.index + 1) * num_classes // self.count)
        if not r:
            raise SpurlabError(f"shard {self}: no class to work on, {self.count} shards for {num_classes} classes "
                               f"(lower compute.class_shards)")  # fmt: skip
        return r

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_attrs(shard: Shard) -> dict:
    """What a writer adds to its attrs or provenance: nothing for the whole job."""
    return {} if shard.whole else {SHARD_KEY: str(shard)}


def _check_shards(paths: list[Path], keys: list[dict]) -> None:
    """`keys[i]`: the attrs or provenance of `paths[i]`. All shards of one job, each once, in order."""
    n = len(paths)
    for p, k in zip(paths, keys):
        if SHARD_KEY not in k and n > 1:
            raise SpurlabError(f"{p}: not a shard (no '{SHARD_KEY}' attribute) but merged with {n - 1} other file(s)")
    got = [str(k.get(SHARD_KEY, "0/1")) for k in keys]
    want = [f"{i}/{n}" for i in range(n)]
    for p, g, w in zip(paths, got, want):
        if g != w:
            raise SpurlabError(f"{p}: shard {g}, expected {w} (pass shards 0..{n - 1} of one job, in order)")
    first = {k: v for k, v in keys[0].items() if k != SHARD_KEY}
    for p, k in zip(paths[1:], keys[1:]):
        rest = {a: b for a, b in k.items() if a != SHARD_KEY}
        for a in sorted(first.keys() | rest.keys()):
            if _plain(first.get(a)) != _plain(rest.get(a)):
                raise SpurlabError(f"{p}: '{a}' differs from {paths[0]}'s: not a shard of the same job")


def _plain(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


def merge_shards(shards: list[str | os.PathLike], out: str | os.PathLike, table_shards=None, table_out=None) -> dict:
    """Merge the shard files of one job into `out` (what the unsharded job writes). HDF5 shards are
    dispatched on their `format` attr; `.parquet` shards are tables. `table_shards`/`table_out`:
    the pair tables written beside NPCA component files, merged with them (their provenance names
    the component file's hash, recomputed for the merged file)."""
    paths = [Path(p) for p in shards]
    if not paths:
        raise SpurlabError(f"{out}: no shard files to merge")
    for p in paths:
        if not p.is_file():
            raise SpurlabError(f"{p}: no such shard file")
    if paths[0].suffix == ".parquet":
        return merge_tables(paths, out)
    import h5py

    with h5py.File(paths[0], "r") as f:
        fmt = f.attrs.get("format")
    merge = _H5_MERGES.get(fmt)
    if merge is None:
        raise SpurlabError(f"{paths[0]}: format {fmt!r} has no shard merge (known: {', '.join(sorted(_H5_MERGES))})")
    info = merge(paths, Path(out))
    if fmt == "spurlab.npca_components":
        if not table_shards or not table_out:
            raise SpurlabError(f"{out}: NPCA component shards need their pair tables (--tables, --table-out)")
        merge_tables([Path(p) for p in table_shards], table_out, {"components_sha256": sha256_file(out)}, ["kind"])
    return info


def merge_tables(paths: list[Path], out, replace: dict | None = None, sort: list[str] | None = None) -> dict:
    """Row-concatenate shard tables (.parquet + .csv) in shard order, then stable-sorted by `sort`
    (a table whose writer groups rows by kind before class); provenance of shard 0 without
    `shard`, with `replace` keys overwritten (they differ per shard by construction)."""
    import pandas as pd

    provs = [table_provenance(p) for p in paths]
    skip = set(replace or {})
    _check_shards(paths, [{k: v for k, v in pv.items() if k not in skip} for pv in provs])
    frames = [read_table(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    if sort:
        df = df.sort_values(sort, kind="stable", ignore_index=True)
    prov = {k: v for k, v in provs[0].items() if k != SHARD_KEY} | (replace or {})
    write_table(df, out, prov)
    return {"shards": len(paths), "rows": len(df)}


def _attrs(paths: list[Path]) -> list[dict]:
    import h5py

    out = []
    for p in paths:
        with h5py.File(p, "r") as f:
            out.append(dict(f.attrs))
    return out


def _merged_attrs(keys: list[dict]) -> dict:
    return {k: v for k, v in keys[0].items() if k != SHARD_KEY}


def _create_like(f, name: str, src, data) -> None:
    """`data` as dataset `name`, with the chunking and compression of the shard's `src`."""
    kw = {}
    if src.chunks is not None and src.compression:
        kw = dict(chunks=src.chunks, compression=src.compression, compression_opts=src.compression_opts)
    f.create_dataset(name, data=data, dtype=src.dtype, track_times=False, **kw)


def _merge_class_groups(paths: list[Path], out: Path) -> dict:
    """NPCA bases (`spurlab.npca`): one group `class_<k>` per class; `skipped_classes` united."""
    import h5py

    keys = _attrs(paths)
    skipped = [json.loads(k.pop("skipped_classes", "[]")) for k in keys]
    _check_shards(paths, keys)
    n = 0
    with atomic_path(out) as tmp, create_h5(tmp) as f:
        for p in paths:
            with h5py.File(p, "r") as s:
                for name in s:
                    g = f.create_group(name)
                    for d in s[name]:
                        _create_like(g, d, s[name][d], s[name][d][()])
                    n += 1
        f.attrs.update(_merged_attrs(keys), skipped_classes=json.dumps(sorted(sum(skipped, []))))
    return {"shards": len(paths), "classes": n}


def _concat(paths: list[Path], out: Path, offsets: dict[str, str] | None = None) -> dict:
    """Files whose every dataset is rows along axis 0 (grouped or not): concatenate each dataset
    over the shards. `offsets` {dataset: counted dataset}: add to `dataset` the number of rows of
    `counted` in earlier shards (D(i, j)'s pairs/start indexes members/*)."""
    import h5py

    keys = _attrs(paths)
    _check_shards(paths, keys)
    files = [h5py.File(p, "r") for p in paths]
    try:
        names: list[str] = []
        files[0].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        with atomic_path(out) as tmp, create_h5(tmp) as f:
            for name in names:
                parts = []
                base = 0
                for s in files:
                    if name not in s:
                        raise SpurlabError(f"{s.filename}: no dataset '{name}', which {paths[0]} has")
                    a = s[name][()]
                    if offsets and name in offsets:
                        a = a + base
                        base += len(s[offsets[name]])
                    parts.append(a)
                rows = [a for a in parts if len(a)] or parts[:1]  # an empty shard's placeholder has no row shape
                _create_like(f, name, files[0][name], np.concatenate(rows))
            f.attrs.update(_merged_attrs(keys))
    finally:
        for s in files:
            s.close()
    return {"shards": len(paths), "datasets": len(names)}


def _merge_subsets(paths: list[Path], out: Path) -> dict:
    return _concat(paths, out, {"pairs/start": "members/row"})


_H5_MERGES = {
    "spurlab.npca": _merge_class_groups,
    "spurlab.salient_subsets": _merge_subsets,
    "spurlab.npca_components": _concat,
}
