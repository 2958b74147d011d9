"""Groups and group accuracy on the planted-cue benchmark (docs/methods.md#groups-and-worst-group-accuracy).

A *group* is (class, cue on/off): the class of an image and whether its class's spurious cue is
in it. The cue of a class is its cue-table cue; a control class (no row in the cue table) takes
the benchmark's control cue (`datasets.counterfactual_control_cue`), the cue its counterfactual
twins toggle. This is the Waterbirds / CelebA notion (label x spurious attribute) with a
class-specific attribute, since every class has its own cue.

- On the `counterfactual` set, rows 2i / 2i+1 are one test image with the cue on / off, so every
  group of a class has the same images with and without the cue: the set is group-balanced by
  construction.
- On a plain generated set (`val`), an image's group is read from its planted cue flags (meta
  column `cue_<name>`); groups are then as unbalanced as the cue table makes them.

Worst-group accuracy is the minimum over the non-empty groups, mean-group accuracy their
unweighted mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import SpurlabError

GROUP_COLUMNS = ["class_index", "class_name", "cue_on", "n", "acc"]


def group_ids(labels: np.ndarray, cue_on: np.ndarray) -> np.ndarray:
    """Group index 2 * label + cue_on per image (-1 where unlabelled)."""
    labels = np.asarray(labels).astype(np.int64)
    out = 2 * labels + np.asarray(cue_on).astype(np.int64)
    return np.where(labels >= 0, out, -1)


def worst_group_accuracy(correct: np.ndarray, groups: np.ndarray) -> float:
    """Minimum accuracy over the non-empty groups (ids >= 0, e.g. `group_ids`)."""
    correct, groups = np.asarray(correct, bool), np.asarray(groups)
    ids = np.unique(groups[groups >= 0])
    if not len(ids):
        raise SpurlabError("worst-group accuracy: no labelled image, so no group")
    return float(min(correct[groups == g].mean() for g in ids))


def group_name(class_name: str, cue_on: bool) -> str:
    return f"{class_name}/{'cue_on' if cue_on else 'cue_off'}"


def group_accuracy(correct: np.ndarray, labels: np.ndarray, cue_on: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Accuracy of every non-empty (class, cue on/off) group: GROUP_COLUMNS, sorted by class then
    cue off before cue on. Unlabelled rows (label < 0) are left out."""
    correct, labels = np.asarray(correct, bool), np.asarray(labels).astype(np.int64)
    cue_on = np.asarray(cue_on, bool)
    if not (len(correct) == len(labels) == len(cue_on)):
        raise SpurlabError(f"group accuracy: {len(correct)} predictions, {len(labels)} labels, {len(cue_on)} cue flags")
    ids = group_ids(labels, cue_on)
    rows = []
    for g in np.unique(ids[ids >= 0]):
        members = ids == g
        c, on = int(g // 2), bool(g % 2)
        name = class_names[c] if c < len(class_names) else str(c)
        rows.append({"class_index": c, "class_name": name, "cue_on": on, "n": int(members.sum()),
                     "acc": float(correct[members].mean())})  # fmt: skip
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def worst_group(table: pd.DataFrame) -> dict:
    """{worst_group_acc, worst_group ("class/cue_off"), mean_group_acc, n_groups} of a group table
    (`group_accuracy`); ties go to the first group in the table's order."""
    if table.empty:
        raise SpurlabError("group accuracy: no labelled image, so no group")
    i = int(np.argmin(table["acc"].to_numpy()))
    row = table.iloc[i]
    return {"worst_group_acc": float(row["acc"]), "worst_group": group_name(row["class_name"], bool(row["cue_on"])),
            "mean_group_acc": float(table["acc"].mean()), "n_groups": len(table)}  # fmt: skip


def group_summary(correct, labels, cue_on, class_names: list[str]) -> dict:
    """`worst_group` plus `group_acc` {class: {cue_on: acc, cue_off: acc}}, rounded to 6 digits."""
    table = group_accuracy(correct, labels, cue_on, class_names)
    out = worst_group(table)
    nested: dict = {}
    for r in table.itertuples():
        nested.setdefault(r.class_name, {})["cue_on" if r.cue_on else "cue_off"] = round(float(r.acc), 6)
    out = {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}
    return out | {"group_acc": nested}


def counterfactual_cue_on(imageset) -> np.ndarray:
    """The counterfactual set's `cue_on` column, checked to alternate on / off (rows 2i, 2i+1)."""
    if "cue_on" not in imageset.meta_columns:
        raise SpurlabError(f"{imageset.path}: no meta column 'cue_on'; not a counterfactual set")
    cue_on = imageset.meta(["cue_on"])["cue_on"].to_numpy().astype(bool)
    if len(cue_on) % 2 or not (cue_on[0::2].all() and not cue_on[1::2].any()):
        raise SpurlabError(f"{imageset.path}: counterfactual set: rows must alternate cue on / cue off")
    return cue_on


def class_cues(imageset) -> dict[str, str | None]:
    """{class name: the cue that defines its groups}: its cue-table cue, else the control cue (None
    when there is none), from the generator's config stored in the set (not the run's config)."""
    cfg = imageset.attrs.get("config") if imageset.kind != "index" else None
    datasets = (cfg or {}).get("datasets") if isinstance(cfg, dict) else None
    if not isinstance(datasets, dict) or not isinstance(datasets.get("cue_table"), dict):
        raise SpurlabError(f"{imageset.path}: no planted cues (not a set of the planted-cue benchmark); "
                           "groups need them")  # fmt: skip
    table, control = datasets["cue_table"], datasets.get("counterfactual_control_cue")
    return {c: (table[c]["cue"] if c in table else control) for c in imageset.class_names}


def own_cue_flags(imageset, labels: np.ndarray) -> np.ndarray:
    """Per image: whether its class's cue (`class_cues`) is planted in it, from the meta columns
    `cue_<name>`; False for unlabelled rows and for classes without a cue."""
    labels = np.asarray(labels).astype(np.int64)
    cues = class_cues(imageset)
    wanted = sorted({q for q in cues.values() if q})
    missing = [q for q in wanted if f"cue_{q}" not in imageset.meta_columns]
    if missing:
        raise SpurlabError(f"{imageset.path}: meta column 'cue_{missing[0]}' missing; the set has no cue flags")
    meta = imageset.meta([f"cue_{q}" for q in wanted]) if wanted else None
    out = np.zeros(len(labels), bool)
    for c, name in enumerate(imageset.class_names):
        rows = labels == c
        if cues[name] and rows.any():
            out[rows] = meta[f"cue_{cues[name]}"].to_numpy().astype(bool)[rows]
    return out
