"""A small site built from files shaped like the stage outputs: tiny.yaml's test image set (the
real generator) and, on it, a D(i, j) subsets file, an annotations table, a components file and a
pairs table written directly (random NAMs, attacks, NPFVs and Grad-CAMs; fixed seeds)."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_yaml

FEATURES = 2  # per class
COMPONENTS = 2  # per class
MEMBERS = 6  # images per D(i, j)
TOP = 3  # top images with attacks


def write_subsets(d, class_names, labels, size):
    from spurlab.discover.subsets_file import FORMAT

    rng = np.random.default_rng(0)
    k = np.repeat(np.arange(len(class_names)), FEATURES)
    j = 10 * k + np.tile(np.arange(FEATURES), len(class_names))
    j[1], j[3] = 7, 7  # classes 0 and 1 share feature 7
    rows = [rng.choice(np.flatnonzero(labels == c), MEMBERS, replace=False) for c in k]
    n = len(k)
    with h5py.File(d / "sub.h5", "w") as f:
        f.attrs.update(format=FORMAT, class_names=json.dumps(class_names), planted_cues=json.dumps({}), top_images=TOP,
                       has_masks=False)  # fmt: skip
        for name, v in {"class": k, "feature": j, "rank": np.tile(np.arange(1, FEATURES + 1), len(class_names)),
                        "start": np.arange(n) * MEMBERS, "count": np.full(n, MEMBERS), "importance": rng.random(n),
                        "mass_cue": rng.random(n), "mass_object": rng.random(n)}.items():  # fmt: skip
            f[f"pairs/{name}"] = v
        f["members/row"] = np.concatenate(rows)
        f["members/activation"] = (
            -np.sort(-rng.random(n * MEMBERS).reshape(n, MEMBERS), axis=1).ravel().astype(np.float32)
        )
        f["members/nam"] = rng.integers(0, 255, (n * MEMBERS, size, size), dtype=np.uint8)
        f["top/attack"] = rng.integers(0, 255, (n, TOP, size, size, 3), dtype=np.uint8)
    ann = pd.DataFrame({"class_index": k, "class_name": [class_names[c] for c in k], "feature_index": j,
                        "feature_rank": np.tile(np.arange(1, FEATURES + 1), len(class_names)),
                        "label": np.where(np.arange(n) % 2, "spurious", "core"), "kind": "auto", "votes_main": 0,
                        "votes_separate": 0, "votes_background": 0, "n_votes": 0, "source": "auto"})  # fmt: skip
    ann.to_parquet(d / "ann.parquet")
    return n


def write_components(d, class_names, image_rows: int, size: int):
    rng = np.random.default_rng(1)
    k = np.repeat(np.arange(len(class_names)), COMPONENTS)
    c = np.tile(np.arange(COMPONENTS), len(class_names))
    n = len(k)
    with h5py.File(d / "components.h5", "w") as f:
        f.attrs["class_names"] = json.dumps(class_names)
        f["class"], f["component"], f["rank"] = k, c, c + 1
        f["prob"] = rng.random(n)
        f["npfv"] = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        f["npfv_cam"] = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
        f["top_rows"] = rng.integers(0, image_rows, (n, TOP))
        f["top_cam"] = rng.integers(0, 255, (n, TOP, size, size), dtype=np.uint8)
    pairs = pd.DataFrame({"kind": "component", "class": k, "class_name": [class_names[i] for i in k], "feature": c,
                          "rank": c + 1, "score": rng.random(n), "label": np.where(c == 0, "spurious", "core"),
                          "source": "auto"})  # fmt: skip
    pairs.to_parquet(d / "pairs.parquet")
    return n


def build(d, out):
    from spurlab.report.site import build_site

    return build_site(out, subsets=d / "sub.h5", annotations=d / "ann.parquet", imageset=d / "test.h5",
                      components=d / "components.h5", npca_pairs=d / "pairs.parquet", npca_imageset=d / "test.h5",
                      n_show=TOP)  # fmt: skip


@pytest.fixture(scope="session")
def small_site(tmp_path_factory):
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan

    d = tmp_path_factory.mktemp("site_inputs")
    plan, attrs = build_plan(load_yaml("tiny.yaml"), "test")
    write_imageset(d / "test.h5", plan.n, plan.chunks(), attrs)
    with ImageSet(d / "test.h5") as s:
        names, labels, size = s.class_names, s.labels[:], s.image_size
    n_pairs = write_subsets(d, names, labels, size)
    n_components = write_components(d, names, len(labels), size)
    out = d / "results" / "site"
    counts = build(d, out)
    return {"out": out, "counts": counts, "n_pairs": n_pairs, "n_components": n_components, "classes": names, "dir": d}
