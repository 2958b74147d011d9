"""The torch-free half of stage `npca_components` (spurlab.discover.npfv): the components file's
format name and pair columns, and the two stages that only read what it wrote, `npca_annotations`
(`run_component_annotations`, `annotate_pairs`) and `npca_annotation_tasks`
(`run_component_tasks`). Those commands import this module and load no torch
(docs/performance.md#per-job-fixed-cost).
"""

from __future__ import annotations

import json

import numpy as np

from ..data.imagesets import ImageSet
from ..errors import SpurlabError
from ..io import open_h5, sha256_file
from ..io.tables import read_table, table_provenance, write_table
from .annotate import AnnotationTask, check_coverage, export_tasks, exported_pairs, human_annotations, read_mturk_csv
from .auto_annotate import auto_annotations
from .components import read_component_lists

FORMAT = "spurlab.npca_components"
PAIR_COLUMNS = ("kind", "class", "class_name", "feature", "rank", "score", "prob", "alpha_gray", "alpha_npfv")


def images_u8(imageset, rows: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W, 3) images of `rows` (any order)."""
    order = np.argsort(rows, kind="stable")
    u8 = np.empty((len(rows), imageset.image_size, imageset.image_size, 3), np.uint8)
    if len(rows):
        u8[order] = imageset.images(rows[order])
    return u8


def annotate_pairs(pairs, annotation: dict, class_names: list[str], has_masks: bool, coverage: dict | None = None):
    """Add the annotator's `label` and `source` to a pair table, per kind: automatic (spurious /
    core; `auto_annotate.auto_annotations` on the maps' statistics) or, for components, human
    answers in the MTurk CSV layout (`Input.feature_index` = component index) through
    `annotate.human_annotations` (Singla & Feizi 2022's majority rule): spurious, core, undecided,
    or unannotated for a component nobody answered. The answers file may cover other shards'
    components; those answers are counted in `coverage` (a dict, filled when given), not used."""
    import pandas as pd

    out = []
    for kind, part in pairs.groupby("kind", sort=False):
        part = part.reset_index(drop=True)
        if annotation["source"] == "human" and kind == "component" and annotation.get("human_csv"):
            votes = read_mturk_csv(annotation["human_csv"], class_names)
            table, cov = human_annotations(votes, exported_pairs(part), annotation["min_spurious_votes"])
            if coverage is not None:
                coverage.update(cov)
        elif has_masks:
            table = auto_annotations(part, annotation["auto_criterion"], annotation["auto_threshold"])
        else:  # real data without masks: annotate by hand (npca.human_csv) or give published lists
            part["label"], part["source"] = "unannotated", "none"
            out.append(part)
            continue
        lab = table.set_index(["class_index", "feature_index"])[["label", "source"]]
        part = part.join(lab, on=["class", "feature"])
        part["label"] = part["label"].fillna("unannotated")
        out.append(part)
    return pd.concat(out, ignore_index=True)


def run_component_annotations(pairs_path, out, annotation: dict, human_csv=None, published=None) -> dict:
    """Stage `npca_annotations`: the labelled pair table from `npca_components`' statistics.
    Components take the human answers (`annotate_pairs`, coverage-checked like the `annotations`
    stage) or a published `{class: [components]}` list (listed: spurious, the class's other
    selected components: core), else keep the automatic labels they were written with; neurons
    keep theirs. Provenance: the statistics table's, its hash, and the annotation's source."""
    if human_csv and published:
        raise SpurlabError("npca: give human answers or a published component list, not both")
    pairs = read_table(pairs_path, columns=["kind", "class", "class_name", "feature", "rank", "label", "source"])
    prov = dict(table_provenance(pairs_path), pair_stats_sha256=sha256_file(pairs_path))
    comp = (pairs["kind"] == "component").to_numpy()
    if human_csv:
        part = pairs[comp].drop(columns=["label", "source"])
        coverage: dict = {}
        labelled = annotate_pairs(part, dict(annotation, source="human", human_csv=human_csv), None, False, coverage)
        check_coverage(coverage, annotation["min_coverage"], human_csv)
        pairs.loc[comp, ["label", "source"]] = labelled[["label", "source"]].to_numpy()
        prov |= {"human_csv_sha256": sha256_file(human_csv), "coverage": coverage, "component_source": "human"}
    elif published:
        lists = read_component_lists(published)
        listed = [int(f) in lists.get(int(k), ()) for k, f in zip(pairs["class"], pairs["feature"])]
        pairs.loc[comp, "label"] = np.where(np.asarray(listed)[comp], "spurious", "core")
        pairs.loc[comp, "source"] = "published"
        prov |= {"published_sha256": sha256_file(published), "component_source": "published"}
    else:
        prov |= {"component_source": "auto"}
    write_table(pairs, out, prov)
    c = pairs[comp]
    return {
        "components": int(comp.sum()),
        "spurious": int((c["label"] == "spurious").sum()),
        "annotated": int(c["label"].isin(("spurious", "core")).sum()),
        "source": prov["component_source"],
    }


def run_component_tasks(components_path, imageset_path, out_dir) -> int:
    """Stage `npca_annotation_tasks`: a task page per selected component with the machinery of
    docs/methods.md#annotation (`annotate.export_tasks`): the gallery shows the NPFV first, then the top images by
    alpha, each with its Grad-CAM heatmap; answers come back in the MTurk CSV layout with
    `Input.feature_index` = component index (config `npca.human_csv`)."""
    imageset = ImageSet(imageset_path)
    wnids = imageset.attrs.get("wnids") or []
    with open_h5(components_path, FORMAT, "npca components file") as f:
        if f.attrs["imageset_sha256"] != imageset.sha256:
            raise SpurlabError(f"{components_path}: built from another image set than {imageset_path}; rebuild it")
        names = json.loads(f.attrs["class_names"])
        n = len(f["class"]) if "class" in f and f["class"].ndim else 0

        def tasks():
            for p in range(n):
                k, rows = int(f["class"][p]), f["top_rows"][p]
                ok = rows >= 0
                top = images_u8(imageset, rows[ok])
                images = np.concatenate([f["npfv"][p][None], top])
                cams = np.concatenate([f["npfv_cam"][p][None], f["top_cam"][p][ok]]).astype(np.float64) / 255.0
                yield AnnotationTask(k, names[k], feature_index=int(f["component"][p]), feature_rank=int(f["rank"][p]),
                                     images=images, nams=cams, attacks=None,
                                     wordnet_id=wnids[k] if len(wnids) > k else "")  # fmt: skip

        export_tasks(out_dir, tasks())
    return n
