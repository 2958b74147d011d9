"""Real-data BAM (Yang & Kim 2019, "Benchmarking Attribution Methods with Relative Feature
Importance"; docs/methods.md#bam-compositing, #real-data-adapters): COCO object instances pasted on the images of a scene folder.

Inputs (config ``bam.source: coco``, keys under ``bam.coco``): ``annotations``, a COCO instances
JSON; ``images``, the folder its ``file_name`` entries are relative to; ``scenes_dir``,
``<scenes_dir>/<scene>/<image files>`` (MiniPlaces layout, one sub-folder per name of
``bam.scenes``); ``test_fraction``, the share of each category's instances and each scene class's
images held out, seeded, so no test image reuses a train object or scene.

Per object class (a COCO category *name*) each image contributes its largest non-crowd instance
(by ``area``; ties: the lower annotation id), as in the paper's dataset, decoded with
``pycocotools.mask`` (polygons or RLE; no EXIF rotation, as COCO annotates the stored pixels).
Compositing is the procedural BAM's (`spurlab.data.bam`): the same grid, commonality sets,
variants, labels, object size rule and uniform position, rows corresponding across variants. The
object is cut by its mask, cropped to its box and resized with premultiplied alpha; pixels with
alpha >= 0.5 are pasted and form ``masks/object``. Scenes are resized (shorter side) and
centre-cropped to ``image_size``; ``pixel_noise`` does not apply. Meta columns add
``coco_annotation_id``, ``coco_image_id`` and ``scene_image``; provenance attrs hash the JSON, the
scene folder listing and the COCO image files used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpurlabError
from .bam import STREAMS, VARIANT, bam_grid, side_fraction_range
from .folders import EXTENSIONS, list_images
from .synth import CHUNK, SetPlan, chunk_rng, n_chunks

GENERATOR_VERSION = "coco-bam-1"
GRAY_VALUE = 128  # the procedural X_og background: 0.5 -> uint8, rounded half up
_POOL_STREAM = 41


@dataclass(frozen=True)
class Instance:
    """One COCO annotation: the largest non-crowd instance of its category in its image."""

    ann_id: int
    image_id: int
    file_name: str
    path: str
    height: int
    width: int
    segmentation: Any
    area: float


def _get(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise SpurlabError(f"{where}: expected a JSON object, got {type(d).__name__}")
    if key not in d:
        raise SpurlabError(f"{where}: missing key '{key}'")
    return d[key]


@lru_cache(maxsize=1)
def _load_json(path: str, mtime_ns: int, size: int) -> tuple[Any, str]:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        return json.loads(data), digest
    except (ValueError, UnicodeDecodeError) as e:
        raise SpurlabError(f"{path}: not valid JSON ({e})") from e


def read_instances(annotations: str | os.PathLike, images_dir: str | os.PathLike,
                   categories: list[str]) -> tuple[list[list[Instance]], str]:  # fmt: skip
    """Per configured category (in order), the largest non-crowd instance of each image that has
    one, sorted by image id; and the JSON's sha256."""
    path = Path(annotations)
    if not path.is_file():
        raise SpurlabError(f"{path}: COCO annotations file not found (bam.coco.annotations)")
    st = path.stat()
    coco, digest = _load_json(str(path.resolve()), st.st_mtime_ns, st.st_size)
    for key in ("images", "annotations", "categories"):
        if not isinstance(_get(coco, key, str(path)), list):
            raise SpurlabError(f"{path}: '{key}' must be a list")
    by_name: dict[str, int] = {}
    for i, c in enumerate(coco["categories"]):
        where = f"{path}: categories[{i}]"
        by_name.setdefault(str(_get(c, "name", where)), int(_get(c, "id", where)))
    wanted: dict[int, int] = {}
    for k, name in enumerate(categories):
        if name not in by_name:
            known = ", ".join(sorted(by_name)[:30])
            raise SpurlabError(
                f"{path}: category '{name}' (bam.objects[{k}]) is not in the JSON's categories (known: {known})"
            )
        wanted[by_name[name]] = k
    images: dict[int, dict] = {}
    for i, im in enumerate(coco["images"]):
        where = f"{path}: images[{i}]"
        images[int(_get(im, "id", where))] = {
            "file_name": str(_get(im, "file_name", where)),
            "height": int(_get(im, "height", where)),
            "width": int(_get(im, "width", where)),
        }
    best: dict[tuple[int, int], tuple[float, int, dict]] = {}
    for i, a in enumerate(coco["annotations"]):
        where = f"{path}: annotations[{i}]"
        cat = int(_get(a, "category_id", where))
        if cat not in wanted:
            continue
        ann_id = int(_get(a, "id", where))
        where = f"{path}: annotations[{i}] (id {ann_id})"
        image_id = int(_get(a, "image_id", where))
        _get(a, "segmentation", where)
        area = float(_get(a, "area", where))
        if _get(a, "iscrowd", where) or area <= 0:
            continue  # crowd regions are not one object
        if image_id not in images:
            raise SpurlabError(f"{where}: image_id {image_id} is not in the JSON's images")
        key = (wanted[cat], image_id)
        if key not in best or (area, -ann_id) > best[key][:2]:
            best[key] = (area, -ann_id, a)
    pools: list[list[Instance]] = [[] for _ in categories]
    for (k, image_id), (area, neg_id, a) in sorted(best.items()):
        im = images[image_id]
        pools[k].append(Instance(-neg_id, image_id, file_name=im["file_name"], path=str(Path(images_dir) / im["file_name"]),
                                 height=im["height"], width=im["width"], segmentation=a["segmentation"],
                                 area=area))  # fmt: skip
    for k, name in enumerate(categories):
        if not pools[k]:
            raise SpurlabError(f"{path}: category '{name}' has no usable instance (non-crowd, area > 0)")
    return pools, digest


def decode_mask(inst: Instance, source: str = "") -> np.ndarray:
    """The instance's mask (height, width) bool, from polygons or (un)compressed RLE."""
    import pycocotools.mask as mask_utils

    where = f"{source}: annotation id {inst.ann_id}"
    seg, h, w = inst.segmentation, inst.height, inst.width
    try:
        if isinstance(seg, list):
            if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
                raise SpurlabError(f"{where}: each segmentation polygon must be a list of >= 3 x, y pairs")
            rle = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in seg], h, w))
        elif isinstance(seg, dict):
            size, counts = _get(seg, "size", where), _get(seg, "counts", where)
            if list(size) != [h, w]:
                raise SpurlabError(f"{where}: RLE size {list(size)} differs from the image's [{h}, {w}]")
            rle = mask_utils.frPyObjects(seg, h, w) if isinstance(counts, list) else {"size": [h, w], "counts": counts}
        else:
            raise SpurlabError(f"{where}: segmentation must be polygons or an RLE object")
        mask = mask_utils.decode(rle).astype(bool)
    except SpurlabError:
        raise
    except Exception as e:  # pycocotools raises bare Exceptions on malformed input
        raise SpurlabError(f"{where}: unreadable segmentation ({e})") from e
    if not mask.any():
        raise SpurlabError(f"{where}: the segmentation covers no pixel")
    return mask


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise SpurlabError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise SpurlabError(f"{path}: cannot read image ({e})") from e


def cut_object(inst: Instance, source: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The instance cut by its mask and cropped to the mask's bounding box: (rgb (h, w, 3), mask (h, w))."""
    rgb = read_rgb(inst.path)
    if rgb.shape[:2] != (inst.height, inst.width):
        raise SpurlabError(f"{inst.path}: image is {rgb.shape[1]}x{rgb.shape[0]} but {source} says "
                           f"{inst.width}x{inst.height} (image id {inst.image_id})")  # fmt: skip
    mask = decode_mask(inst, source)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return rgb[box], mask[box]


def resize_object(rgb: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a cut-out object so its larger side is `side` pixels (aspect kept), bilinear with
    premultiplied alpha: background pixels of the crop never bleed into the object's rim.
    Returns (rgb uint8 (h, w, 3), mask bool (h, w)), mask = resized alpha >= 0.5 (never empty)."""
    from PIL import Image

    h0, w0 = mask.shape
    f = side / max(h0, w0)
    size = (max(1, int(round(w0 * f))), max(1, int(round(h0 * f))))

    def resized(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(x, dtype=np.float32)).resize(size, Image.BILINEAR))

    a = mask.astype(np.float32)
    alpha = resized(a)
    keep = alpha >= min(0.5, float(alpha.max()))
    out = np.empty(alpha.shape + (3,), dtype=np.uint8)
    safe = np.maximum(alpha, 1e-6)
    for ch in range(3):
        out[..., ch] = np.clip(np.rint(resized(rgb[..., ch].astype(np.float32) * a) / safe), 0, 255)
    return out, keep


def load_scene(path: str, size: int) -> np.ndarray:
    """A scene image resized (shorter side) and centre-cropped to size x size, uint8 RGB."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return np.array(ImageOps.fit(im.convert("RGB"), (size, size), Image.BILINEAR))
    except (OSError, ValueError, SyntaxError) as e:
        raise SpurlabError(f"{path}: cannot read scene image ({e})") from e


def list_scenes(scenes_dir: str | os.PathLike, scenes: list[str]) -> tuple[list[list[str]], str]:
    """Per scene class (in order) its image files (absolute, sorted walk), and the listing hash
    (sha256 over "<scene>/<relative path>\\t<size>" lines)."""
    root = Path(scenes_dir)
    if not root.is_dir():
        raise SpurlabError(f"{root}: scene folder not found (bam.coco.scenes_dir: <scenes_dir>/<scene>/<images>)")
    h = hashlib.sha256(b"scenes-listing-1\n")
    out = []
    for k, name in enumerate(scenes):
        d = root / name
        if not d.is_dir():
            raise SpurlabError(f"{d}: scene folder not found (bam.scenes[{k}] '{name}')")
        files = list_images(d)
        if not files:
            raise SpurlabError(f"{d}: empty scene folder (no {'/'.join(e[1:] for e in EXTENSIONS)} files)")
        for rel in files:
            h.update(f"{name}/{rel}\t{(d / rel).stat().st_size}\n".encode())
        out.append([str((d / rel).resolve()) for rel in files])
    return out, h.hexdigest()


def split_pool(n: int, test_fraction: float, seed: int, kind: int, index: int, split: str, what: str) -> np.ndarray:
    """Sorted positions of `split`'s share of a pool of n items: a seeded disjoint train / test
    partition with at least one item on each side."""
    if n < 2:
        raise SpurlabError(
            f"{what} has only {n} usable; at least 2 are needed (train and test sets use different ones)"
        )
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), _POOL_STREAM, kind, index])).permutation(n)
    return np.sort(perm[:n_test] if split == "test" else perm[n_test:])


def _images_listing_sha256(pools: list[list[Instance]]) -> str:
    h = hashlib.sha256(b"coco-images-listing-1\n")
    for inst in sorted({i.image_id: i for pool in pools for i in pool}.values(), key=lambda i: i.image_id):
        try:
            size = os.stat(inst.path).st_size
        except OSError:
            raise SpurlabError(f"{inst.path}: COCO image file not found (image id {inst.image_id})") from None
        h.update(f"{inst.file_name}\t{size}\n".encode())
    return h.hexdigest()


def _pick(u: float, n: int) -> int:
    return min(int(u * n), n - 1)


@dataclass(frozen=True)
class _CocoComposer:
    """What every chunk of one BAM set from COCO needs: the grid of (object, scene) rows, the
    split's instance pools and scene images, and the size rule."""

    seed: int
    variant: str
    split: str
    size: int
    scale_range: tuple[float, float]
    source: str  # the annotations file, named in errors
    obj_all: np.ndarray
    scn_all: np.ndarray
    scene_labels: bool
    obj_pools: list[list[Instance]]
    scene_rows: list[np.ndarray]
    all_scenes: list[list[str]]

    def _compose(self, obj: np.ndarray, scn: np.ndarray, side_frac: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        """Paste row i's object (pool obj[i], drawn by u) on its scene (scn[i]) at its position."""
        ux, uy, u_obj, u_scene = u
        m, size = len(obj), self.size
        images = np.empty((m, size, size, 3), dtype=np.uint8)
        masks = np.zeros((m, size, size), dtype=bool)
        cx, cy = np.zeros(m, np.float32), np.zeros(m, np.float32)
        ann_ids, image_ids, scene_image = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, np.int32)
        cut_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i in range(m):
            pool = self.obj_pools[obj[i]]
            inst = pool[_pick(u_obj[i], len(pool))]
            rows = self.scene_rows[scn[i]]
            scene_image[i] = rows[_pick(u_scene[i], len(rows))]
            if inst.ann_id not in cut_cache:
                cut_cache[inst.ann_id] = cut_object(inst, self.source)
            rgb, mask = resize_object(*cut_cache[inst.ann_id], max(1, int(round(side_frac[i] * size))))
            h, w = mask.shape
            x0, y0 = _pick(ux[i], size - w + 1), _pick(uy[i], size - h + 1)
            if self.variant == "og":
                images[i] = GRAY_VALUE
            else:
                images[i] = load_scene(self.all_scenes[scn[i]][scene_image[i]], size)
            if self.variant != "0s":
                region = images[i, y0 : y0 + h, x0 : x0 + w]
                region[mask] = rgb[mask]
                masks[i, y0 : y0 + h, x0 : x0 + w] = mask
            cx[i], cy[i] = (x0 + w / 2) / size * 2 - 1, (y0 + h / 2) / size * 2 - 1
            ann_ids[i], image_ids[i] = inst.ann_id, inst.image_id
        return {"images": images, "masks": masks, "cx": cx, "cy": cy, "coco_annotation_id": ann_ids,
                "coco_image_id": image_ids, "scene_image": scene_image}  # fmt: skip

    def chunk(self, c: int) -> dict:
        start = c * CHUNK
        obj, scn = self.obj_all[start : start + CHUNK], self.scn_all[start : start + CHUNK]
        m, variant = len(obj), self.variant
        # every variant draws the same numbers in the same order: rows correspond across variants
        rng = chunk_rng(self.seed, STREAMS[self.split], c)
        side_frac = rng.uniform(self.scale_range[0], self.scale_range[1], m)
        made = self._compose(obj, scn, side_frac, rng.random((4, m)))
        labels = (scn if self.scene_labels else obj).astype(np.int64)
        meta = {
            "scene": scn.astype(np.int16) if variant != "og" else np.full(m, -1, np.int16),
            "object_present": np.full(m, variant != "0s"),
            "colour": np.full(m, -1, np.int16),
            "scale": side_frac.astype(np.float32),
            "angle": np.zeros(m, np.float32),
            "cx": made["cx"],
            "cy": made["cy"],
            "object_label": obj.astype(np.int64),
            "scene_label": scn.astype(np.int64),
            "coco_annotation_id": made["coco_annotation_id"],
            "coco_image_id": made["coco_image_id"],
            "scene_image": made["scene_image"],
        }
        ids = np.array([f"bam_{variant}_{self.split}-{start + i:07d}".encode() for i in range(m)])
        return {
            "images": made["images"],
            "labels": labels,
            "ids": ids,
            "meta": meta,
            "masks": {"object": made["masks"]},
        }


def _split_pools(src: dict, objects: list[str], scenes: list[str], seed: int, split: str):
    """The split's share of every category's instances and every scene class's images, with the
    listings' hashes: (object pools, scene rows, all scene files, attrs)."""
    all_instances, json_sha = read_instances(src["annotations"], src["images"], objects)
    all_scenes, scenes_sha = list_scenes(src["scenes_dir"], scenes)
    images_sha = _images_listing_sha256(all_instances)
    frac = float(src["test_fraction"])
    obj_pools = []
    for k, pool in enumerate(all_instances):
        keep = split_pool(len(pool), frac, seed=seed, kind=0, index=k, split=split,
                          what=f"{src['annotations']}: category '{objects[k]}' (instances)")  # fmt: skip
        obj_pools.append([pool[j] for j in keep])
    scene_rows = [split_pool(len(files), frac, seed=seed, kind=1, index=k, split=split,
                             what=f"{Path(src['scenes_dir']) / scenes[k]}: scene folder (images)")
                  for k, files in enumerate(all_scenes)]  # fmt: skip
    attrs = {
        "source": "coco",
        "generator_version": GENERATOR_VERSION,
        "coco_annotations_sha256": json_sha,
        "coco_images_listing_sha256": images_sha,
        "scenes_listing_sha256": scenes_sha,
        "pool_sizes": {
            "objects": {name: len(p) for name, p in zip(objects, obj_pools)},
            "scenes": {name: len(r) for name, r in zip(scenes, scene_rows)},
        },
    }
    return obj_pools, scene_rows, all_scenes, attrs


def coco_bam_plan(cfg: dict, seed: int, variant: str, split: str) -> tuple[SetPlan, dict]:
    """The plan of BAM set `bam_<variant>_<split>` from COCO objects and a scene folder (`cfg` is
    the validated `bam` section), and the provenance attrs it adds to the set."""
    if not VARIANT.match(variant):
        raise SpurlabError(f"BAM variant '{variant}': expected os, 0s, og or kNNN (e.g. k050)")
    src = cfg["coco"]
    for key in ("annotations", "images", "scenes_dir"):
        if not src.get(key):
            raise SpurlabError(f"config key bam.coco.{key}: required when bam.source is coco")
    objects, scenes, size = list(cfg["objects"]), list(cfg["scenes"]), int(cfg["image_size"])
    obj_pools, scene_rows, all_scenes, attrs = _split_pools(src, objects, scenes, seed=seed, split=split)
    obj_all, scn_all, scene_labels = bam_grid(cfg, seed, variant, split)
    n = len(obj_all)
    composer = _CocoComposer(
        seed=seed, variant=variant, split=split, size=size, scale_range=side_fraction_range(cfg["scale_rule"]),
        source=str(src["annotations"]), obj_all=obj_all, scn_all=scn_all, scene_labels=scene_labels,
        obj_pools=obj_pools, scene_rows=scene_rows, all_scenes=all_scenes,
    )  # fmt: skip
    return SetPlan(n, n_chunks(n), composer.chunk), attrs
