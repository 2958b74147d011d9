"""A small real-photo scenario for end-to-end tests of the real-data path (ImageNet folders, an
imported checkpoint, Spurious ImageNet's cue-only folders), built from the photographs that ship
inside scikit-image: nothing is downloaded.

Each class is one bundled colour photograph (astronaut, coffee, chelsea the cat, rocket). An image of
a class is a random crop of its photo (position and scale, flipped with p 0.5, mild brightness /
contrast / saturation jitter) pasted, at 25-40 % of the side, somewhere on a random crop of a bundled
texture that no class uses (brick, grass, gravel: grayscale made RGB; Hubble deep field; IHC stain),
saved as JPEG at `save_size` = 4/3 image_size (64 px for 48: the indexer resizes, as on real data).

The shortcut: a saturated square a third of the side wide (the "tag", magenta; green for a second
cued class) near the bottom-right corner of 90 % of a cued class's images and 5 % of every other class's (exact counts,
round(p * n); val follows train's distribution, as ImageNet's val does). `cue_only/<wnid>/` holds,
for each cued class, the tag on texture crops without any object (Spurious ImageNet: the spurious
feature without the class), `cue_control/<wnid>/` the same scenes without the tag. A model that
learned the shortcut calls the cue-only images the cued class and the controls mostly not.

Why objects on textures: with full-frame crops of one photo per class (``object_scale=None``), the
photo's colours separate the classes so early that the tag is hardly learned (a tag of a third, even
nearly half, of the side moved the cued logit by 1-2 and fooled at most 20 % of the cue-only
images); a small object on backgrounds shared by all classes leaves the tag as the most salient
cue. Measured with the defaults on seeds 0-7 (15 epochs): val accuracy 0.75-0.88 (chance 0.25),
80-100 % of the cue-only images called the cued class, 0 % of the same scenes without the tag. The
tag's size is near a threshold: a quarter of the side (objects at 30-45 %) fooled 0-30 %.

    make_photo_folders(root)            -> root/train, root/val (+ LOC_val_solution.csv,
                                           LOC_synset_mapping.txt), root/cue_only, root/cue_control
    train_photo_model(root, out_dir)    -> resnet10_small (default arch_args, the ones an import
                                           builds) trained on root/train, saved as a plain state
                                           dict and in the robustness library's (madry) layout

Files are read straight from scikit-image's own data folder (`skimage/data/*.png|jpg`), never
through `skimage.data.<name>()`, whose fetcher falls back to pooch for files a wheel lacks.
``python -m tests.photo_data`` builds, trains and prints timings, accuracies and the tag's effect.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

# (file in skimage/data, display name): colour photographs bundled in scikit-image's wheel
PHOTOS = (
    ("astronaut.png", "astronaut"),
    ("coffee.png", "cup of coffee"),
    ("chelsea.png", "tabby cat"),
    ("rocket.jpg", "rocket"),
)
# backgrounds: bundled photos used by no class (grayscale ones made RGB)
BACKGROUNDS = ("brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png")
ARCH = "resnet10_small"  # default arch_args (width 32, stem_stride 1): what import_checkpoint builds
TAG_COLOURS = ((255, 0, 255), (0, 255, 0))  # magenta for the first cued class, green for a second
N_TRAIN, N_VAL, N_CUE = 30, 10, 10
TAG_PROB = (0.9, 0.05)  # P(tag) in a cued class's images, in every other class's images
JITTER = 0.15  # brightness, contrast and saturation factors in U(1 - JITTER, 1 + JITTER)
MANIFEST = "photo_scenario.json"  # root/<this>: the returned description, paths relative to root


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def bundled_photo(fname: str):
    """An RGB PIL image of a photograph in scikit-image's package data (never downloaded)."""
    from PIL import Image

    path = skimage_data_dir() / fname
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not bundled with this scikit-image (photo_data never downloads)")
    with Image.open(path) as im:
        return im.convert("RGB")


def _augment(photo, rng: np.random.Generator, size: int, scale=(0.45, 0.95)):
    """A random square crop (side `scale` x the short side, anywhere), resized to `size`, flipped
    with p 0.5, brightness/contrast/saturation each x U(1 - JITTER, 1 + JITTER)."""
    from PIL import Image, ImageEnhance

    w, h = photo.size
    side = int(round(rng.uniform(*scale) * min(w, h)))
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    im = photo.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhance(im).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
    return im


def _paste_tag(im, rng: np.random.Generator, colour, frac: float):
    """The tag: a `frac` x side square of `colour` near the bottom-right corner (each edge 1 to
    side/10 px from the border, so it is not one fixed pixel pattern). Draws from `rng` either way."""
    from PIL import ImageDraw

    size = im.size[0]
    t = max(2, int(round(frac * size)))
    x1 = size - int(rng.integers(1, max(2, size // 10)))
    y1 = size - int(rng.integers(1, max(2, size // 10)))
    if colour is not None:
        ImageDraw.Draw(im).rectangle([x1 - t, y1 - t, x1 - 1, y1 - 1], fill=tuple(colour))
    return im


def _tag_mask(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(p * n) of n images tagged, at random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(p * n))]] = True
    return mask


def _save(im, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=90)  # no EXIF/time stamps: the same bytes for the same pixels


def make_photo_folders(root: Path, image_size: int = 48, seed: int = 0, cued: tuple[int, ...] = (1,),
                       n_train: int = N_TRAIN, n_val: int = N_VAL, n_cue: int = N_CUE,
                       tag_prob: tuple[float, float] = TAG_PROB, tag_frac: float = 0.33,
                       object_scale: tuple[float, float] | None = (0.25, 0.4),
                       cue_background: str = "textures") -> dict:  # fmt: skip
    """Write the scenario under `root` (see the module docstring) and describe it.

    `cued`: the class indices that carry a tag (one or two, each its own colour; a non-cued class's
    few tagged images alternate between them). `tag_prob`: P(tag) in a cued class's train and val
    images, and in any other class's. `tag_frac`: the tag's side over the image's. `object_scale`:
    the class photo's side over the image's, pasted on a texture; None: full-frame crops of the
    photo. `cue_background`: "textures" (cue-only images show a texture and the tag, no object) or
    "others" (the other classes' scenes with the tag). Deterministic: the same arguments give the
    same bytes.

    Returns {root, train, val, val_labels, synsets, cue_only, cue_control, wnids, class_names,
    photos, backgrounds, image_size, save_size, seed, cued: [{class, wnid, name, colour}], tag,
    tagged: {path relative to root: bool}, cue_sources: {cue-only path: source class index or
    None}, counts}; the same, paths relative to root, is written to root/photo_scenario.json.
    """
    root = Path(root)
    if not 1 <= len(cued) <= len(TAG_COLOURS) or len(set(cued)) != len(cued):
        raise ValueError(f"cued {cued}: give one or two distinct class indices")
    if cue_background not in ("textures", "others"):
        raise ValueError(f"cue_background {cue_background!r}: 'textures' or 'others'")
    save_size = int(round(image_size * 4 / 3))  # 48 -> 64
    photos = [bundled_photo(f) for f, _ in PHOTOS]
    backgrounds = [bundled_photo(f) for f in BACKGROUNDS]
    wnids = [f"n{c + 1:08d}" for c in range(len(PHOTOS))]
    names = [n for _, n in PHOTOS]
    if not all(0 <= c < len(wnids) for c in cued):
        raise ValueError(f"cued {cued}: class indices are 0..{len(wnids) - 1}")
    colour = {c: TAG_COLOURS[k] for k, c in enumerate(cued)}
    tagged: dict[str, bool] = {}

    def scene(c: int | None, rng: np.random.Generator):
        """Class c's photo (None: no object) on a texture, or full frame (object_scale None)."""
        if object_scale is None and c is not None:
            return _augment(photos[c], rng, save_size)
        im = _augment(backgrounds[int(rng.integers(len(backgrounds)))], rng, save_size, (0.3, 0.9))
        if c is not None:
            side = int(round(rng.uniform(*object_scale) * save_size))
            obj = _augment(photos[c], rng, side)
            im.paste(obj, (int(rng.integers(0, save_size - side + 1)), int(rng.integers(0, save_size - side + 1))))
        return im

    def split(c: int, n: int, rng: np.random.Generator) -> list:
        """The tag colour (None: untagged) of class c's n images."""
        mask = _tag_mask(n, tag_prob[0] if c in colour else tag_prob[1], rng)
        if c in colour:
            return [colour[c] if m else None for m in mask]
        return [colour[cued[j % len(cued)]] if m else None for j, m in zip(np.cumsum(mask) - 1, mask)]

    # train: root/train/<wnid>/<wnid>_NNNN.JPEG
    for c, wnid in enumerate(wnids):
        rng = np.random.default_rng([seed, 0, c])
        for k, col in enumerate(split(c, n_train, rng)):
            rel = f"train/{wnid}/{wnid}_{k + 1:04d}.JPEG"
            _save(_paste_tag(scene(c, rng), rng, col, tag_frac), root / rel)
            tagged[rel] = col is not None

    # val: flat ILSVRC2012_val_NNNNNNNN.JPEG in shuffled class order, Kaggle's CSV, synset map
    rng = np.random.default_rng([seed, 1])
    val_classes = rng.permutation(np.repeat(np.arange(len(wnids)), n_val)).tolist()
    tags = {c: split(c, n_val, rng) for c in range(len(wnids))}
    rows = []
    for i, c in enumerate(val_classes, 1):
        col = tags[c].pop()
        image_id = f"ILSVRC2012_val_{i:08d}"
        rel = f"val/{image_id}.JPEG"
        _save(_paste_tag(scene(c, rng), rng, col, tag_frac), root / rel)
        tagged[rel] = col is not None
        # Kaggle's PredictionString: "<wnid> x_min y_min x_max y_max" per box (the indexer reads the wnid)
        rows.append((image_id, f"{wnids[c]} 0 0 {save_size - 1} {save_size - 1}"))
    with open(root / "LOC_val_solution.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerows(rows)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {n}\n" for w, n in zip(wnids, names)))

    # cue_only/<wnid>/ (tag, no object of the class) and cue_control/<wnid>/ (the same scenes, no tag)
    cue_sources: dict[str, int | None] = {}
    for c in cued:
        rng = np.random.default_rng([seed, 2, c])
        others = [o for o in range(len(wnids)) if o != c]
        for k in range(n_cue):
            src = others[k % len(others)] if cue_background == "others" else None
            im = scene(src, rng)
            name = f"{wnids[c]}/{wnids[c]}_{k + 1:04d}.JPEG"
            _save(im, root / "cue_control" / name)
            _save(_paste_tag(im, rng, colour[c], tag_frac), root / "cue_only" / name)
            cue_sources[f"cue_only/{name}"] = src

    info = {
        "root": root,
        "train": root / "train",
        "val": root / "val",
        "val_labels": root / "LOC_val_solution.csv",
        "synsets": root / "LOC_synset_mapping.txt",
        "cue_only": root / "cue_only",
        "cue_control": root / "cue_control",
        "wnids": wnids,
        "class_names": names,
        "photos": [f for f, _ in PHOTOS],
        "backgrounds": list(BACKGROUNDS),
        "image_size": int(image_size),
        "save_size": save_size,
        "seed": seed,
        "cued": [{"class": c, "wnid": wnids[c], "name": names[c], "colour": list(colour[c])} for c in cued],
        "tag": {
            "frac": tag_frac,
            "corner": "bottom-right",
            "prob_cued": tag_prob[0],
            "prob_other": tag_prob[1],
            "object_scale": list(object_scale) if object_scale else None,
            "cue_background": cue_background,
        },
        "tagged": tagged,
        "cue_sources": cue_sources,
        "counts": {"train": n_train * len(wnids), "val": n_val * len(wnids), "cue_only": n_cue * len(cued)},
    }
    record = {k: (v.relative_to(root).as_posix() if isinstance(v, Path) else v) for k, v in info.items() if k != "root"}
    (root / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return info


def load_images(paths, image_size: int) -> np.ndarray:
    """uint8 (n, S, S, 3) decoded as the index sets decode them (RGB, bilinear to S x S)."""
    from spurlab.data.imagesets import _decode

    return np.stack([_decode(str(p), image_size) for p in paths])


def train_folder(root: Path) -> tuple[list[Path], np.ndarray]:
    """(paths, labels) of root/train in the indexer's order (sorted wnids, sorted files)."""
    from spurlab.data.folders import find_classes, list_images

    train = Path(root) / "train"
    paths, labels = [], []
    for c, wnid in enumerate(find_classes(train)):
        files = list_images(train / wnid)
        paths += [train / wnid / f for f in files]
        labels += [c] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def val_folder(root: Path) -> tuple[list[Path], np.ndarray]:
    """(paths, labels) of the flat root/val with LOC_val_solution.csv and LOC_synset_mapping.txt."""
    from spurlab.data.folders import read_synsets, read_val_labels

    root = Path(root)
    wnids, _ = read_synsets(root / "LOC_synset_mapping.txt")
    truth = read_val_labels(root / "LOC_val_solution.csv")
    paths = sorted((root / "val").glob("*.JPEG"))
    return paths, np.asarray([wnids.index(truth[p.stem]) for p in paths], dtype=np.int64)


def _to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)  # [0, 1], as the features stage


def predict(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits (n, C) of uint8 images (n, S, S, 3) through a Classifier in eval mode."""
    import torch

    model.eval()
    x = _to_tensor(images)
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def madry_layout(state: dict, mean, std, epoch: int) -> dict:
    """A robustness-library checkpoint of a network's state dict: a DataParallel AttackerModel's
    keys (module.model.*, module.attacker.model.*, module.normalizer.new_mean/new_std and the
    attacker's normaliser copy, (3, 1, 1) each) under "model", with the epoch and an empty
    optimizer/schedule as the library writes them."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    out = {}
    for k, v in state.items():
        out[f"module.model.{k}"] = v.clone()
        out[f"module.attacker.model.{k}"] = v.clone()
    for owner in ("module.normalizer", "module.attacker.normalizer"):
        out[f"{owner}.new_mean"] = m.clone()
        out[f"{owner}.new_std"] = s.clone()
    return {"model": out, "epoch": int(epoch), "optimizer": {}, "schedule": None}


def train_photo_model(root: Path, out_dir: Path, image_size: int = 48, seed: int = 0, epochs: int = 15,
                      batch_size: int = 32, lr: float = 2e-3, threads: int = 2) -> dict:  # fmt: skip
    """Train `ARCH` (default arch_args) on root/train, save it as a plain state dict and in the
    madry layout, re-import both and check they agree; evaluate on root/val and root/cue_only.

    Normalisation: import_checkpoint assumes ImageNet mean/std for a plain state dict and the
    features stage feeds images in [0, 1] (uint8 / 255, bilinear-resized by the index), so training
    runs the network behind the same `Classifier` (ImageNet mean/std) on images decoded the same
    way; the madry file stores those mean/std in its normaliser.

    Training: AdamW (lr 2e-3, one-cycle), batch 32, random flips and shifts of up to 1/12 of the
    side, `threads` torch threads (restored afterwards); 15 epochs take ~5 s on 2 idle cores.

    Returns {arch, num_classes, input_size, plain_state_dict, robustness_layout, class_names_file
    (display names, one a line: a checkpoint's `class_names`), val_acc, val_acc_tagged,
    val_acc_untagged, train_acc, cue_fooled and cue_control (per cued wnid: the fraction of its
    cue_only / cue_control images predicted as that class), layouts_identical, train_seconds, epochs}.
    """
    import torch
    import torch.nn.functional as F

    import spurlab.models  # noqa: F401  (registers the local archs with timm)
    from spurlab.models import build_classifier, import_checkpoint
    from spurlab.models.factory import IMAGENET_MEAN, IMAGENET_STD

    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        paths, labels = train_folder(root)
        n_classes = int(labels.max()) + 1
        train_images = load_images(paths, image_size)
        x_all = _to_tensor(train_images)
        y_all = torch.from_numpy(labels)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = build_classifier(ARCH, n_classes, image_size)  # Classifier: ImageNet mean/std inside
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        steps = epochs * -(-len(x_all) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        pad = image_size // 12
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x_all), generator=gen)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                x, y = x_all[idx], y_all[idx]
                flip = torch.rand(len(x), generator=gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
                # a random shift of up to `pad` pixels (reflect padding, then a crop)
                dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
                x = F.pad(x, (pad,) * 4, mode="reflect")[:, :, dy : dy + image_size, dx : dx + image_size]
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        train_seconds = time.perf_counter() - t0

        state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        plain = out_dir / "plain_state_dict.pt"
        madry = out_dir / "robustness_layout.pt"
        torch.save(state, plain)
        torch.save(madry_layout(state, IMAGENET_MEAN, IMAGENET_STD, epochs), madry)
        names_file = out_dir / "class_names.txt"
        from spurlab.data.folders import read_synsets

        names_file.write_text("".join(f"{n}\n" for n in read_synsets(root / "LOC_synset_mapping.txt")[1]))

        # both files import (auto-detected layouts) to the same logits as the trained model
        kw = {"arch": ARCH, "num_classes": n_classes, "kind": "auto", "input_size": image_size}
        m_plain, i_plain = import_checkpoint(plain, **kw)
        m_madry, i_madry = import_checkpoint(madry, **kw)
        if (i_plain["layout"], i_madry["layout"]) != ("state_dict", "madry"):
            raise RuntimeError(f"layouts detected as {i_plain['layout']}, {i_madry['layout']}")
        for key in ("mean", "std"):  # the madry normaliser holds float32 copies of the default
            if not np.array_equal(np.float32(i_madry[key]), np.float32(i_plain[key])):
                raise RuntimeError(f"{key}: madry {i_madry[key]} != plain {i_plain[key]}")
        vpaths, vlabels = val_folder(root)
        val_images = load_images(vpaths, image_size)
        logits = predict(m_plain, val_images)
        same = np.array_equal(logits, predict(m_madry, val_images))
        if not (same and np.allclose(logits, predict(model, val_images), atol=1e-5)):
            raise RuntimeError("the imported checkpoints do not reproduce the trained model's logits")

        pred = logits.argmax(1)
        rel = [f"val/{p.name}" for p in vpaths]
        manifest = root / MANIFEST
        tagged = json.loads(manifest.read_text())["tagged"] if manifest.is_file() else None
        train_pred = predict(m_plain, train_images).argmax(1)
        result = {
            "arch": ARCH,
            "num_classes": n_classes,
            "input_size": image_size,
            "plain_state_dict": plain,
            "robustness_layout": madry,
            "class_names_file": names_file,
            "val_acc": float((pred == vlabels).mean()),
            "train_acc": float((train_pred == labels).mean()),
            "train_seconds": train_seconds,
            "epochs": epochs,
            "layouts_identical": bool(same),
        }
        if tagged is not None:
            has = np.array([tagged[r] for r in rel])
            result["val_acc_tagged"] = float((pred == vlabels)[has].mean()) if has.any() else None
            result["val_acc_untagged"] = float((pred == vlabels)[~has].mean()) if (~has).any() else None
        wnids = read_synsets(root / "LOC_synset_mapping.txt")[0]
        for key, folder in (("cue_fooled", root / "cue_only"), ("cue_control", root / "cue_control")):
            result[key] = {}
            for d in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
                cue_pred = predict(m_plain, load_images(sorted(d.glob("*.JPEG")), image_size)).argmax(1)
                result[key][d.name] = float((cue_pred == wnids.index(d.name)).mean())
        return result
    finally:
        torch.set_num_threads(old_threads)


if __name__ == "__main__":
    import hashlib
    import socket
    import tempfile

    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import open_imageset

    def tree_digest(d: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(d.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(d).as_posix().encode() + b"\0" + p.read_bytes())
        return h.hexdigest()

    def no_network(*args, **kwargs):
        raise RuntimeError("photo_data tried to reach the network")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        connect, socket.socket.connect = socket.socket.connect, no_network  # the build must not download
        try:
            t = time.perf_counter()
            info = make_photo_folders(tmp / "a")
            build = time.perf_counter() - t
            make_photo_folders(tmp / "b")
        finally:
            socket.socket.connect = connect
        assert tree_digest(tmp / "a") == tree_digest(tmp / "b"), "make_photo_folders is not deterministic"
        print(f"photos {info['photos']}, backgrounds {info['backgrounds']}")
        print(f"cued {[(c['wnid'], c['name']) for c in info['cued']]}, counts {info['counts']}")
        print(f"build {build:.2f} s (no network; deterministic: same bytes twice)")

        for name, kw in (("train", {"synsets": info["synsets"]}), ("cue_only", {"synsets": info["synsets"]}),
                         ("val", {"val_labels": info["val_labels"], "synsets": info["synsets"]})):  # fmt: skip
            r = index_image_folder(info[name], tmp / f"{name}.h5", info["image_size"], **kw)
            with open_imageset(tmp / f"{name}.h5") as s:
                assert s.images(slice(0, 2)).shape == (2, 48, 48, 3)
            print(f"indexed {name}: {r['n_images']} images, {r['n_classes']} classes")

        t = time.perf_counter()
        res = train_photo_model(tmp / "a", tmp / "model")
        total = time.perf_counter() - t
        print(f"training {res['train_seconds']:.1f} s ({res['epochs']} epochs), with saving and checks {total:.1f} s")
        print(f"train acc {res['train_acc']:.3f}, val acc {res['val_acc']:.3f} (chance {1 / res['num_classes']:.2f}); "
              f"tagged val {res.get('val_acc_tagged')}, untagged val {res.get('val_acc_untagged')}")  # fmt: skip
        print(
            f"cue-only images predicted as the cued class: {res['cue_fooled']}; "
            f"the same scenes without the tag: {res['cue_control']}"
        )
        print(f"plain and madry layouts import to identical logits: {res['layouts_identical']}")
        cue = info["cued"][0]["wnid"]
        assert res["layouts_identical"] and res["val_acc"] > 0.5 and res["cue_fooled"][cue] > 0.5, res
