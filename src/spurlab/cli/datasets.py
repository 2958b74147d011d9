"""Image sets (rules/datasets.smk): render a generated set, index a folder, the stage's summary,
contact sheets."""

from __future__ import annotations

import time

from ..errors import SpurlabError
from .table import CONFIG, QUIET, Command, arg, path, text, threads


def make_set(cfg: dict, a) -> int:
    from tqdm import tqdm

    from ..data.imagesets import write_imageset
    from ..data.sets import build_plan

    if a.set in (cfg.get("folders") or {}):
        raise SpurlabError(f"image set '{a.set}': a folder set (folders.{a.set}); build it with spurlab index-folder")
    plan, attrs = build_plan(cfg, a.set)
    t = time.perf_counter()
    with tqdm(total=plan.n, desc=a.set, unit="img", mininterval=2.0, disable=a.quiet) as bar:
        sha = write_imageset(a.out, plan.n, plan.chunks(a.threads), attrs, progress=bar)
    dt = time.perf_counter() - t
    print(f"{a.out}: {plan.n} images in {dt:.1f}s ({plan.n / dt:.0f} img/s incl. writing), sha256 {sha}")
    return 0


def index_folder(_, a) -> int:
    from ..data.folders import index_image_folder

    names = None
    if a.class_names:
        if not a.class_names.is_file():
            raise SpurlabError(f"{a.class_names}: class names file not found")
        names = [line.strip() for line in a.class_names.read_text().splitlines() if line.strip()]
    t = time.perf_counter()
    info = index_image_folder(a.root, a.out, a.image_size, class_names=names, set_name=a.set_name,
                              skip_bad_images=a.skip_bad_images, threads=a.threads, synsets=a.synsets,
                              val_labels=a.val_labels)  # fmt: skip
    for rel in info["skipped"]:
        print(f"skipped (not a readable image): {rel} ({info['skipped_reasons'][rel]})")
    print(f"{a.out}: {info['n_images']} images of {info['n_classes']} classes indexed in "
          f"{time.perf_counter() - t:.1f}s, {len(info['skipped'])} skipped, sha256 {info['sha256']}")  # fmt: skip
    return 0


def datasets_summary(cfg: dict, a) -> int:
    from ..data.summary import datasets_summary
    from ..io import write_json

    summary = datasets_summary(cfg, a.sets, threads=a.threads)
    write_json(a.out, summary)
    speed = f", generator {summary['images_per_second']:.0f} img/s" if "images_per_second" in summary else ""
    print(f"{a.out}: {len(summary['sets'])} sets{speed}")
    return 0


def contact_sheet(_, a) -> int:
    from ..data.imagesets import open_imageset
    from ..report.figures import contact_sheet

    with open_imageset(a.imageset) as s:
        contact_sheet(s, a.out, n=a.n)
    print(f"{a.out}: contact sheet of {a.imageset}")
    return 0


OUT_H5 = path("--out", "output .h5 path (written atomically)")

COMMANDS = (
    Command("make-set", "data", "render one image set of the planted-cue benchmark to HDF5 (rule image_set)", make_set, (
        text("--set", "set name, e.g. train, counterfactual, bam_os_train (see list-sets)"),
        OUT_H5,
        threads(1, "render threads; output is identical for any value"),
        QUIET,
    ), settings=CONFIG),
    # a tool on its own (no config): the rule passes folders.<set>'s keys as these options
    Command("index-folder", "data", "index an ImageNet-style folder tree as an image set (rule index_folder)", index_folder, (
        path("--root", "root/<class folder>/<image files>"),
        OUT_H5,
        arg("--image-size", required=True, type=int, help="images are resized to this square side when read"),
        text("--set-name", "the set's name (default: the output file's stem)", required=False),
        path("--class-names", "text file, one display name per class folder (sorted order)", required=False),
        arg("--skip-bad-images", action="store_true", help="leave undecodable files out (listed) instead of failing"),
        path("--synsets", "wnid -> class index map (LOC_synset_mapping.txt or one wnid a line)", required=False),
        path("--val-labels", "flat val layout: LOC_val_solution.csv or '<file> <wnid>' lines", required=False),
        threads(1, "concurrent file readers"),
    )),
    Command("datasets-summary", "data", "verify image sets and write results/datasets/summary.json", datasets_summary, (
        path("--sets", "image set files", many=True),
        path("--out"),
        threads(1, "threads for the throughput measurement"),
    ), settings=CONFIG),
    Command("contact-sheet", "data", "PNG grid of an image set's first images with masks outlined", contact_sheet, (
        path("imageset"),
        path("--out"),
        arg("-n", type=int, default=48, help="number of images"),
    )),
)  # fmt: skip
