"""Real-data adapter (docs/methods.md#real-data-adapters): an ImageNet-style folder tree -> an *index* image set.

The tree follows torchvision's ImageFolder convention::

    root/<class folder>/<image files>      e.g. root/n01440764/n01440764_10026.JPEG

Classes are the sorted names of the sub-folders of `root`; a class's images are found by walking its
folder (symlinks followed), in torchvision's order (sorted walk, sorted file names), keeping files
whose extension is one of `EXTENSIONS` (case-insensitive). The folder names become the set's
`wnids`; `class_names` default to them.

Ignored by rule, at every level (`ignored_name`): hidden files and folders (names starting with
'.', which includes macOS's ``.DS_Store`` and AppleDouble ``._*`` files) and the system entries
``Thumbs.db``, ``ehthumbs.db``, ``desktop.ini``, ``__MACOSX``, ``@eaDir`` (Synology thumbnails),
``$RECYCLE.BIN`` and ``System Volume Information`` (any case). Files with other extensions are
ignored too. Refused, naming the path: a link that points nowhere at the top of `root` (it may have
been a class folder), a folder link that loops back to a folder above it, a folder that cannot be
listed.

The index set (see `spurlab.data.imagesets`) holds no pixels: ``paths`` (absolute, bytes),
``labels`` (int64) and ``ids`` (b"<set>-0000042"); `ImageSet.images()` decodes and resizes on the
fly (bilinear to image_size x image_size).

Two more ImageNet layouts (issue #10):

- ``synsets``: a wnid -> class index map, ImageNet's ``LOC_synset_mapping.txt`` (one line per class,
  ``n01440764 tench, Tinca tinca``: the index is the line number, the text after the wnid the
  class's display name) or one wnid per line. Classes then come from the map, not from the folders:
  a tree with only some of the classes (a subset, a val split missing a class) keeps the indices of
  the checkpoint's 1000-way head. Every class folder must be in the map (else an error naming it);
  classes without a folder simply have no images.
- ``val_labels``: the *flat* val layout (``root/ILSVRC2012_val_00000001.JPEG`` ..., no class folders)
  with its ground truth, Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first
  token of PredictionString is the wnid) or lines ``<file name> <wnid>``. Files are matched by name
  or by name without extension; an image file without a label is an error naming it; labels without
  a file are ignored (a partial copy). Classes: the synset map, else the sorted wnids of the labels.
  (The devkit's ``ILSVRC2012_validation_ground_truth.txt`` numbers classes in the devkit's own
  order, not the sorted-wnid order: convert it to ``<file> <wnid>`` lines first.)

Bad files: every image file is read and fully decoded once while indexing, with the same function
that decodes it later (`spurlab.data.imagesets.decode_rgb`: the pixel rules for every PIL mode,
EXIF orientation, transparency and multi-frame files are listed there). A file that does not
decode (truncated, corrupt, empty, not an image, pixels without an 8-bit form) or cannot be read
(a link that points nowhere or loops, no permission) is "bad". ``skip_bad_images``: false
(default) stops at the first bad file with an error naming it and why; true leaves such files out
and lists them (``skipped`` attribute, the log, with the reason).

Content hash: sha256 over every row's path *relative to root*, its label and the sha256 of the
file's bytes, then the image size, class names and wnids (and `INDEX_VERSION`, which names the
listing and decoding rules). It is the same on any machine that has the same files, wherever the
tree lives. For an ImageNet-size tree (1.28M files, ~140 GB) indexing reads and decodes every file
once: tens of minutes to hours depending on the disk and cores; `threads` overlaps the reads and
decodes (Pillow releases the GIL while decoding). `ImageSet.verify()` recomputes the hash, so it
reads every file again (without decoding).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SpurlabError
from ..io import atomic_path, canonical_json, create_h5, sha256_json
from .imagesets import FORMAT, FORMAT_VERSION, INDEX_VERSION, content_sha256, hash_files, link_target

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SYSTEM_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin",
                          "system volume information"})  # fmt: skip


def ignored_name(name: str) -> bool:
    """Whether a file or folder is left out by rule: hidden ('.' first, so .DS_Store and ._* too) or a
    system entry (`SYSTEM_NAMES`, any case)."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def _scandir(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not ignored_name(e.name)]
    except OSError as e:
        raise SpurlabError(f"{folder}: folder cannot be listed ({e.strerror or e})") from None


def _is_dir(entry: os.DirEntry) -> bool:
    """Follows links; False for a link that points nowhere or loops (it is then taken as a file)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def find_classes(root: str | os.PathLike) -> list[str]:
    """The class folder names of `root`, sorted (ImageFolder's `find_classes`; `ignored_name`s skipped).
    A link at this level that points nowhere is refused: it may have been a class folder."""
    root = Path(root)
    if not root.is_dir():
        raise SpurlabError(f"{root}: image folder not found (expected root/<class folder>/<images>)")
    classes = []
    for e in _scandir(str(root)):
        if _is_dir(e):
            classes.append(e.name)
        elif e.is_symlink() and not os.path.exists(e.path):
            raise SpurlabError(f"{e.path}: symbolic link to {link_target(e.path)}, which does not exist; "
                               "remove it or fix its target")  # fmt: skip
    classes.sort()
    if not classes:
        raise SpurlabError(f"{root}: no class folders (expected root/<class folder>/<images>)")
    return classes


def list_images(class_dir: str | os.PathLike) -> list[str]:
    """Image files under `class_dir` relative to it (POSIX separators), in torchvision's order: folders
    in sorted order of their paths, as `sorted(os.walk(class_dir, followlinks=True))`, then sorted
    file names. Unlike os.walk, `ignored_name`s are skipped, a folder that cannot be listed is an
    error and a folder link looping back to a folder above it is an error (os.walk would walk the
    loop ~40 levels deep, listing its images once per level)."""
    top = os.fspath(class_dir)
    found: list[tuple[str, list[str]]] = []

    def visit(folder: str, above: frozenset) -> None:
        files = []
        for e in _scandir(folder):
            if not _is_dir(e):
                if e.name.lower().endswith(EXTENSIONS):
                    files.append(e.name)
                continue
            st = os.stat(e.path)
            key = (st.st_dev, st.st_ino)
            if key in above:
                what = f"symbolic link to {link_target(e.path)}" if e.is_symlink() else "folder"
                raise SpurlabError(f"{e.path}: {what} loops back to a folder above it; remove the link")
            visit(e.path, above | {key})
        found.append((folder, sorted(files)))

    st = os.stat(top)
    visit(top, frozenset({(st.st_dev, st.st_ino)}))
    out = []
    for dirpath, fnames in sorted(found):
        rel_dir = os.path.relpath(dirpath, top)
        out += [fname if rel_dir == "." else Path(rel_dir, fname).as_posix() for fname in fnames]
    return out


def read_synsets(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(wnids in class index order, display names) from a synset map (see the module docstring);
    a line without text after the wnid gets the wnid as its name."""
    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: synset map (wnid -> class index) not found")
    wnids, names, seen = [], [], {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        wnid = parts[0]
        if wnid in seen:
            raise SpurlabError(f"{path}: line {i}: wnid {wnid} already listed on line {seen[wnid]}")
        seen[wnid] = i
        wnids.append(wnid)
        names.append(parts[1].strip() if len(parts) > 1 else wnid)
    if not wnids:
        raise SpurlabError(f"{path}: empty synset map")
    return wnids, names


def read_val_labels(path: str | os.PathLike) -> dict[str, str]:
    """{file name (or name without extension): wnid} from LOC_val_solution.csv or `<file> <wnid>` lines."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: val labels file not found")
    out = {}
    with open(path, newline="") as f:
        first = f.readline()
        f.seek(0)
        if first.replace(" ", "").lower().startswith("imageid,predictionstring"):  # Kaggle's CSV
            rows = [(i, r.get("ImageId"), (r.get("PredictionString") or "").split()[:1])
                    for i, r in enumerate(csv.DictReader(f), 2)]  # fmt: skip
        else:  # "<file> <wnid>" lines
            rows = [(i, t[0], t[1:2]) for i, t in enumerate((line.split() for line in f), 1) if t]
        for i, name, wnid in rows:
            if not name or not wnid:
                raise SpurlabError(f"{path}: line {i}: expected a file name and a wnid")
            if out.setdefault(name, wnid[0]) != wnid[0]:
                raise SpurlabError(f"{path}: line {i}: {name} labelled twice ({out[name]}, {wnid[0]})")
    if not out:
        raise SpurlabError(f"{path}: no labels")
    return out


def _collect(root: Path, synsets, val_labels) -> tuple[list[str], list[str], list[str], list[int]]:
    """(wnids, default names, relative paths, labels) of the tree under `root`, in row order."""
    wnids, names = read_synsets(synsets) if synsets else (None, None)
    rel_paths, labels = [], []
    if val_labels:
        truth = read_val_labels(val_labels)
        if not root.is_dir():
            raise SpurlabError(f"{root}: image folder not found (flat val layout: root/<image files>)")
        if wnids is None:
            wnids = sorted(set(truth.values()))
            names = list(wnids)
        index = {w: k for k, w in enumerate(wnids)}
        for rel in list_images(root):
            wnid = truth.get(rel) or truth.get(rel.rsplit("/", 1)[-1]) or truth.get(Path(rel).stem)
            if wnid is None:
                raise SpurlabError(f"{root / rel}: no label in {val_labels}")
            if wnid not in index:
                raise SpurlabError(f"{val_labels}: {rel} is labelled {wnid}, which is not in {synsets}")
            rel_paths.append(rel)
            labels.append(index[wnid])
        if not rel_paths:
            raise SpurlabError(f"{root}: no image files")
        return wnids, names, rel_paths, labels
    folders = find_classes(root)
    if wnids is None:
        wnids, names = folders, list(folders)
    index = {w: k for k, w in enumerate(wnids)}
    unknown = [d for d in folders if d not in index]
    if unknown:
        raise SpurlabError(f"{root / unknown[0]}: class folder not in the synset map {synsets}")
    for wnid in sorted(folders, key=index.__getitem__):
        files = list_images(root / wnid)
        if not files:
            raise SpurlabError(f"{root / wnid}: empty class folder (no {'/'.join(e[1:] for e in EXTENSIONS)} files)")
        rel_paths += [f"{wnid}/{f}" for f in files]
        labels += [index[wnid]] * len(files)
    return wnids, names, rel_paths, labels


def _readable(root: Path, rel_paths: list[str], checked: list, skip_bad_images: bool) -> tuple[list[int], dict]:
    """The indices of the readable files, and {relative path: why} of the others (skipped when
    `skip_bad_images`, else the first one is an error)."""
    keep, reasons = [], {}
    for i, (rel, (_, why)) in enumerate(zip(rel_paths, checked)):
        if why is None:
            keep.append(i)
        elif skip_bad_images:
            reasons[rel] = why
        else:
            raise SpurlabError(f"{root / rel}: not a readable image ({why}); remove it or set skip_bad_images")
    return keep, reasons


def index_image_folder(root: str | os.PathLike, out: str | os.PathLike, image_size: int,
                       class_names: Sequence[str] | None = None, set_name: str | None = None,
                       skip_bad_images: bool = False, threads: int = 1, synsets=None,
                       val_labels=None) -> dict:  # fmt: skip
    """Index the ImageNet-style tree under `root` into the index image set `out` (written atomically).

    `class_names`: display names in class order; default the synset map's names, else the folder
    names. `synsets`, `val_labels`: a wnid -> index map file and the flat val layout's labels file
    (module docstring).
    `set_name`: default the name of `out` without suffix. `skip_bad_images`: leave bad files (module
    docstring) out (listed in the `skipped` attribute and the returned info) instead of failing.
    Returns {"n_images", "n_classes", "sha256", "skipped", "skipped_reasons" ({relative path: why})}.
    """
    root = Path(os.path.abspath(root))
    out = Path(out)
    set_name = set_name or out.stem
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise SpurlabError(f"{root}: image_size {image_size!r} must be a positive integer")
    wnids, names, rel_paths, labels = _collect(root, synsets, val_labels)
    present = sorted(set(labels))
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != len(wnids):
            what = "classes in the synset map" if synsets else "classes" if val_labels else "class folders"
            raise SpurlabError(f"{root}: {len(names)} class names given for {len(wnids)} {what}")
    checked = hash_files([str(root / r) for r in rel_paths], threads)
    keep, reasons = _readable(root, rel_paths, checked, skip_bad_images)
    skipped = list(reasons)
    rel_paths = [rel_paths[i] for i in keep]
    labels = np.asarray([labels[i] for i in keep], dtype=np.int64)
    digests = [checked[i][0] for i in keep]
    for label in present:  # classes that had files (with a synset map, others may have none)
        if not (labels == label).any():
            where = root / wnids[label] if not val_labels else f"{root} (class {wnids[label]})"
            raise SpurlabError(f"{where}: no readable images left in this class")
    sha = content_sha256(rel_paths, labels, digests, image_size=image_size, class_names=names, wnids=wnids)
    n = len(rel_paths)
    section = {
        "root": str(root),
        "image_size": int(image_size),
        "skip_bad_images": bool(skip_bad_images),
        "synsets": str(synsets) if synsets else None,
        "val_labels": str(val_labels) if val_labels else None,
    }
    section = {k: v for k, v in section.items() if v is not None}  # the keys of an older index stay as they were
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "index",
        "set_name": set_name,
        "class_names": names,
        "wnids": list(wnids),
        "label_kind": "class",
        "image_size": int(image_size),
        "n_images": n,
        "root": str(root),
        "skipped": skipped,
        "generator_version": INDEX_VERSION,
        "config": section,
        "config_sha256": sha256_json(section),
        "sha256": sha,
    }
    with atomic_path(out) as tmp:
        with create_h5(tmp) as f:
            f.create_dataset("paths", data=np.array([str(root / r).encode() for r in rel_paths]), track_times=False)
            f.create_dataset("labels", data=labels, track_times=False)
            f.create_dataset(
                "ids", data=np.array([f"{set_name}-{i:07d}".encode() for i in range(n)]), track_times=False
            )
            f.create_dataset(
                "file_sha256", data=np.array([d.encode() for d in digests], dtype="S64"), track_times=False
            )
            for k, v in attrs.items():
                f.attrs[k] = canonical_json(v) if isinstance(v, (list, dict)) else v
    return {"n_images": n, "n_classes": len(wnids), "sha256": sha, "skipped": skipped, "skipped_reasons": reasons}
