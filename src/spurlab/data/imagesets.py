"""Image sets in HDF5 (docs/architecture.md, stage 1): the one format every stage reads images from.

Layout of a *packed* set (the planted-cue benchmark, BAM and contamination sets)::

    images      uint8 (N, H, W, 3), chunked by rows, uncompressed (read speed: see bench/feature_cache.py)
    labels      int64 (N,)           -1 where an image has no class object (cue_only)
    ids         bytes (N,)           stable row ids, e.g. b"train-0000042"
    meta/<col>  (N,)                 per-image metadata table (scene, cue flags, object pose ...)
    masks/<m>   uint8 (N, H, W)      0/1 ground-truth masks: `object` and one per cue, gzip
    attrs       format, kind, set_name, class_names, image_size, n_images, seed,
                generator_version, config (JSON), config_sha256, sha256 (content), spurlab_version and
                code_sha256 (the code that wrote the file, `spurlab.io.code`; not in the content hash)

An *index* set (real data: ImageNet-style folders) has ``kind = "index"`` and ``paths`` (N,)
(absolute, bytes) and ``file_sha256`` (N,) instead of ``images``, no masks and no meta; attrs add
``wnids`` (the folder names) and ``root``. Pixels are decoded on the fly with the same reader API,
resized bilinearly to image_size. Building an index from a folder is `spurlab.data.folders`' job;
an index set's content hash (over relative paths, labels and file bytes) and the check of its
files are at the end of this module, so that `ImageSet.verify` checks both kinds.

The content hash covers every dataset's bytes in row order plus the class names, so the same
seed and config give the same hash on any machine.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import SpurlabError
from ..io import atomic_path, canonical_json, sha256_json
from ..io.hdf5 import stamp_code

FORMAT = "spurlab.imageset"
FORMAT_VERSION = 1
ROW_CHUNK = 64
COMPRESSION, COMPRESSION_OPTS = "gzip", 1


class ImageSetWriter:
    """Stream chunks of rows into a new image set; the file appears under its name only on success.

    Use as a context manager; `append` takes the dicts the generators yield. The schema (meta
    columns, masks) is fixed by the first chunk.
    """

    def __init__(self, path: str | os.PathLike, n: int, attrs: dict[str, Any]):
        self.path = Path(path)
        self.n = int(n)
        self.attrs = attrs
        self.row = 0
        self._hashers: dict[str, Any] = {}

    def __enter__(self):
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self.f = h5py.File(self._tmp, "w", track_order=True)
        return self

    def _dataset(self, name: str, arr: np.ndarray):
        if name not in self.f:
            shape = (self.n,) + arr.shape[1:]
            big = arr.ndim >= 3
            # images stay uncompressed: decoding gzip on every read costs the model stages ~12% of
            # their throughput on 2 cores; masks (mostly zeros) compress ~50x and are read rarely
            compress = big and name != "images"
            self.f.create_dataset(
                name,
                shape=shape,
                dtype=arr.dtype,
                chunks=(min(ROW_CHUNK, self.n),) + arr.shape[1:] if big else None,
                compression=COMPRESSION if compress else None,
                compression_opts=COMPRESSION_OPTS if compress else None,
                shuffle=False,
                track_times=False,
            )
            self._hashers[name] = hashlib.sha256()
        return self.f[name]

    def _put(self, name: str, arr: np.ndarray):
        arr = np.ascontiguousarray(arr)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        ds = self._dataset(name, arr)
        ds[self.row : self.row + len(arr)] = arr
        self._hashers[name].update(arr.tobytes())

    def append(self, rec: dict) -> None:
        m = len(rec["labels"])
        if self.row + m > self.n:
            raise SpurlabError(f"{self.path}: more rows than the declared {self.n}")
        self._put("images", rec["images"])
        self._put("labels", rec["labels"].astype(np.int64))
        self._put("ids", rec["ids"].astype("S32"))
        for k, v in rec["meta"].items():
            self._put(f"meta/{k}", v)
        for k, v in rec["masks"].items():
            self._put(f"masks/{k}", v)
        self.row += m

    def content_sha256(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self._hashers):
            h.update(
                f"{name}:{self.f[name].dtype.str}:{self.f[name].shape}:{self._hashers[name].hexdigest()}\n".encode()
            )
        h.update(canonical_json(self.attrs.get("class_names", [])).encode())
        return h.hexdigest()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if self.row != self.n:
                    raise SpurlabError(f"{self.path}: wrote {self.row} rows, declared {self.n}")
                self.sha256 = self.content_sha256()
                attrs = dict(self.attrs, format=FORMAT, format_version=FORMAT_VERSION, n_images=self.n)
                attrs["sha256"] = self.sha256
                for k, v in attrs.items():
                    self.f.attrs[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
                stamp_code(self.f)
        finally:
            self.f.close()
        if exc_type is None:
            return self._atomic.__exit__(None, None, None)
        return self._atomic.__exit__(exc_type, exc, tb)


def write_imageset(
    path: str | os.PathLike, n: int, chunks: Iterable[dict], attrs: dict[str, Any], progress=None
) -> str:
    """Write an image set from an iterator of row chunks; return its content sha256."""
    with ImageSetWriter(path, n, attrs) as w:
        for rec in chunks:
            w.append(rec)
            if progress is not None:
                progress.update(len(rec["labels"]))
    return w.sha256


def _attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class ImageSet:
    """Read-only access to an image set (packed or index). Opens the file lazily, per process,
    so it can be handed to DataLoader workers."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise SpurlabError(f"{self.path}: no such image set")
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
                self._members = set()
                f.visit(self._members.add)
        except OSError as e:
            raise SpurlabError(f"{self.path}: not a readable HDF5 file ({e})") from e
        if self.attrs.get("format") != FORMAT:
            raise SpurlabError(f"{self.path}: not a spurlab image set (attrs.format={self.attrs.get('format')!r})")
        self.kind = self.attrs.get("kind", "packed")
        self._f = None
        self._pid = None

    @property
    def f(self) -> h5py.File:
        if self._f is None or self._pid != os.getpid():
            self._f = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._f

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_f"] = None
        return state

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return int(self.attrs["n_images"])

    @property
    def sha256(self) -> str:
        return self.attrs["sha256"]

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.attrs["image_size"])

    @property
    def labels(self) -> np.ndarray:
        return self.f["labels"][:]

    @property
    def ids(self) -> np.ndarray:
        return self.f["ids"][:]

    @property
    def mask_names(self) -> list[str]:
        return sorted(m.split("/", 1)[1] for m in self._members if m.startswith("masks/"))

    @property
    def meta_columns(self) -> list[str]:
        return sorted(m.split("/", 1)[1] for m in self._members if m.startswith("meta/"))

    def meta(self, columns: list[str] | None = None):
        """The per-image metadata table as a pandas DataFrame (one row per image, in order)."""
        import pandas as pd

        cols = columns or self.meta_columns
        missing = [c for c in cols if f"meta/{c}" not in self._members]
        if missing:
            raise SpurlabError(f"{self.path}: no metadata column '{missing[0]}'")
        return pd.DataFrame({c: self.f[f"meta/{c}"][:] for c in cols})

    def images(self, index=slice(None)) -> np.ndarray:
        """uint8 (n, H, W, 3) for an index, slice or sorted index array."""
        if self.kind == "packed":
            return self.f["images"][index]
        paths = self.f["paths"][index]
        size = self.attrs.get("image_size")
        if np.ndim(paths) == 0:
            return _decode(paths, size)
        if len(paths) == 0:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        return np.stack([_decode(p, size) for p in paths])

    def masks(self, name: str, index=slice(None)) -> np.ndarray:
        key = f"masks/{name}"
        if key not in self._members:
            raise SpurlabError(f"{self.path}: no mask '{name}' (has: {', '.join(self.mask_names) or 'none'})")
        return self.f[key][index]

    def verify(self) -> None:
        """Recompute the content hash and compare it with the stored one (reads the whole file;
        for an index set, every image file it points to)."""
        if self.kind == "index":
            return verify_index(self)
        h = hashlib.sha256()
        names = sorted(m for m in self._members if isinstance(self.f[m], h5py.Dataset))
        for name in names:
            ds = self.f[name]
            d = hashlib.sha256()
            step = max(1, (1 << 24) // max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize))
            for s in range(0, ds.shape[0], step):
                d.update(np.ascontiguousarray(ds[s : s + step]).tobytes())
            h.update(f"{name}:{ds.dtype.str}:{ds.shape}:{d.hexdigest()}\n".encode())
        h.update(canonical_json(self.class_names).encode())
        if h.hexdigest() != self.sha256:
            raise SpurlabError(f"{self.path}: content does not match its sha256 attribute (corrupt or edited file)")


class ImageDecodeError(ValueError):
    """A file that does not decode to 8-bit RGB pixels; the message is the reason (no path)."""


# What an index set's image files decode to. One function, `decode_rgb`, serves indexing (every
# file is decoded once, `spurlab.data.folders`) and reading (`ImageSet.images`), so a file indexed
# is a file that reads, with the same pixels:
# - the whole file is decoded (a truncated JPEG or PNG fails here, not only a bad header); the
#   format is the file's content, whatever its extension says;
# - EXIF orientation is applied (`ImageOps.exif_transpose`): pixels as a viewer shows them upright;
# - multi-frame files (animated PNG, WebP or GIF): the first frame;
# - 1, L, P, RGB, CMYK (Pillow's conversion; ICC profiles are not applied), YCbCr -> RGB;
# - transparency (LA, PA, RGBA, a palette's or a colour's `transparency`): composited over white;
# - 16-bit grey (I;16 from 16-bit PNGs, or I with values in 0..65535): scaled to 8 bits
#   (round(v / 257), so 65535 -> 255; Pillow's own convert would clip everything above 255);
# - refused: I with values outside 0..65535 and F (32-bit float: no defined 8-bit scale), other modes.
ALPHA_BACKGROUND = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112
_PLAIN_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb8(im):
    """A loaded PIL image as the 8-bit RGB image the rules above define (a new image)."""
    from PIL import Image, ImageOps

    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # an unparsable EXIF block: no orientation, at index and read time alike
        orientation = 1
    if orientation in range(2, 9):
        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        a = np.asarray(im).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageDecodeError(f"mode {mode} pixels outside 0..65535 (not 16-bit grey); save it as 8-bit")
        grey = ((a * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in _ALPHA_MODES or (mode in _PLAIN_MODES and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _PLAIN_MODES:
        return im.convert("RGB")
    if mode == "F":
        raise ImageDecodeError("mode F (32-bit float) pixels have no defined 8-bit scale; save it as 8-bit")
    raise ImageDecodeError(f"mode {mode} pixels have no defined 8-bit RGB form; save it as 8-bit RGB")


def decode_rgb(source):
    """Fully decode an image file (a path or a binary file object) to an 8-bit RGB PIL image
    (`to_rgb8`). Raises `ImageDecodeError` with the reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            im.load()
            return to_rgb8(im)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image format Pillow reads") from None
    except Exception as e:  # Pillow's decoders raise OSError, ValueError, SyntaxError, EOFError, ...
        raise ImageDecodeError(f"{type(e).__name__}: {e}") from e


def _decode(path, size: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) (`decode_rgb`), resized (bilinear) to size x size when the set declares a size."""
    from PIL import Image

    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        im = decode_rgb(path)
    except ImageDecodeError as e:
        raise SpurlabError(f"{path}: cannot decode image ({e})") from e
    if size and im.size != (size, size):
        im = im.resize((int(size), int(size)), Image.BILINEAR)
    return np.array(im)


def class_names_for(imageset, label_column: str | None) -> list[str]:
    """The class names of the labels a model trains on: the set's own, or its scene classes when
    `label_column` is a BAM set's `scene_label`."""
    if label_column == "scene_label":
        return list(imageset.attrs["scene_class_names"])
    return imageset.class_names


def open_imageset(path: str | os.PathLike, expected_sha256: str | None = None) -> ImageSet:
    """Open an image set; if `expected_sha256` is given, fail clearly unless it matches."""
    s = ImageSet(path)
    if expected_sha256 is not None and s.sha256 != expected_sha256:
        raise SpurlabError(f"{path}: sha256 {s.sha256[:12]}... does not match the expected {expected_sha256[:12]}...")
    return s


def config_attrs(section: dict, seed: int, generator_version: str) -> dict:
    """The provenance attrs every generated set carries: what it was made from."""
    return {
        "config": section,
        "config_sha256": sha256_json(section),
        "seed": int(seed),
        "generator_version": generator_version,
    }


# ---------------------------------------------------------------------------------------------
# Index sets: their image files and content hash (built by `spurlab.data.folders`, checked here
# by `ImageSet.verify`). `INDEX_VERSION` names the listing and decoding rules an index is made under.

# folders-2: hidden and system entries ignored, files fully decoded with `decode_rgb`'s pixel rules
INDEX_VERSION = "folders-2"


def link_target(path: str) -> str:
    """Where the symbolic link `path` points, for messages ("?" when it cannot be read)."""
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _unreadable(path: str, err: OSError) -> str:
    """Why the file at `path` could not be opened, for the error or the skipped list."""
    if os.path.islink(path):
        if err.errno == errno.ELOOP:
            return f"symbolic link to {link_target(path)}, which loops"
        if not os.path.exists(path):
            return f"symbolic link to {link_target(path)}, which does not exist"
    return f"cannot be read: {err.strerror or err}"


def _check_file(path: str, decode: bool = True) -> tuple[str | None, str | None]:
    """(sha256 of the file's bytes, None) or (sha256 or None, why it is not a readable image). With
    `decode`, the bytes are fully decoded as `ImageSet.images` will decode them (`decode_rgb`)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, _unreadable(path, e)
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, "empty file (0 bytes)"
    if decode:
        try:
            decode_rgb(io.BytesIO(data))
        except ImageDecodeError as e:
            return digest, str(e)
    return digest, None


def content_sha256(rel_paths: Iterable[str], labels: Iterable[int], file_sha256: Iterable[str], image_size: int,
                   class_names: Sequence[str], wnids: Sequence[str], version: str = INDEX_VERSION) -> str:  # fmt: skip
    """The index set's content hash (see `spurlab.data.folders`' docstring); `ImageSet.verify`
    recomputes it (with the `version` the index was written under)."""
    h = hashlib.sha256(f"{version}\n".encode())
    for rel, label, digest in zip(rel_paths, labels, file_sha256):
        h.update(f"{rel}\t{int(label)}\t{digest}\n".encode())
    h.update(f"image_size:{int(image_size)}\n".encode())
    h.update(canonical_json({"class_names": list(class_names), "wnids": list(wnids)}).encode())
    return h.hexdigest()


def hash_files(paths: Sequence[str], threads: int = 1, decode: bool = True) -> list[tuple[str | None, str | None]]:
    """`_check_file` over `paths`, in order, with `threads` concurrent readers."""
    if threads <= 1:
        return [_check_file(p, decode) for p in paths]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(_check_file, paths, [decode] * len(paths), chunksize=64))


def verify_index(imageset) -> None:
    """Re-read every file of an index set and compare the content hash (`ImageSet.verify`)."""
    root = imageset.attrs["root"]
    paths = [p.decode() for p in imageset.f["paths"][:]]
    rel = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
    for p in paths:
        if not os.path.isfile(p):
            raise SpurlabError(f"{p}: image of index set {imageset.path} is missing")
    checked = hash_files(paths, decode=False)
    stored = [d.decode() for d in imageset.f["file_sha256"][:]]
    for p, (d, why), s in zip(paths, checked, stored):
        if d is None:
            raise SpurlabError(f"{p}: image of index set {imageset.path}: {why}")
        if d != s:
            raise SpurlabError(f"{p}: file changed since {imageset.path} was indexed; rebuild the index")
    digests = [d for d, _ in checked]
    sha = content_sha256(rel, imageset.labels, digests, image_size=imageset.image_size, class_names=imageset.class_names,
                         wnids=imageset.attrs.get("wnids") or [], version=imageset.attrs.get("generator_version",
                                                                                             INDEX_VERSION))  # fmt: skip
    if sha != imageset.sha256:
        raise SpurlabError(f"{imageset.path}: content does not match its sha256 attribute (corrupt or edited file)")


def planted_cue_masks(imageset: ImageSet) -> dict[str, list[str]]:
    """{class name: [mask names of its planted cues]} from a generated set's cue table, else {}."""
    cfg = imageset.attrs.get("config") or {}
    table = (cfg.get("datasets") or {}).get("cue_table") or {}
    masks = set(imageset.mask_names)
    return {c: [row["cue"]] for c, row in table.items() if row.get("cue") in masks}


def has_planted_truth(imageset: ImageSet) -> bool:
    """Whether `imageset` carries planted ground truth: a generated set whose generator recorded a
    cue table (the planted-cue benchmark), not an index of real image folders. Read from the set
    itself, never from the run's config; a benchmark whose cue table plants nothing still has truth
    (every class is a control)."""
    if imageset.kind == "index":
        return False
    cfg = imageset.attrs.get("config") or {}
    return isinstance(cfg, dict) and isinstance((cfg.get("datasets") or {}).get("cue_table"), dict)
