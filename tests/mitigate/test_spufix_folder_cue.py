"""SpuFix's spurious score with a cue-only FOLDER set (Spurious ImageNet layout,
`cue_only/<class folder>/*.png`, indexed with the model's synset file): class k's negatives are
the rows labelled k; the npca summary reports their mean AUC before/after, and nothing scored
against planted truth."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spurlab.errors import SpurlabError
from spurlab.io.code import code_provenance

WNIDS = ["n01440764", "n01443537", "n01484850"]
NAMES = ["tench", "goldfish", "shark"]


def _folder(root, per_class: dict[str, int], seed: int, size=32):
    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        if not per_class.get(wnid):
            continue
        (root / wnid).mkdir(parents=True)
        for k in range(per_class[wnid]):
            img = np.clip(50 * (c + 1) + rng.integers(0, 80, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / wnid / f"{wnid}_{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A test folder (3 classes x 8), a cue-only folder with classes 0 (3 images) and 2 (5), no
    folder for class 1, both indexed with one synset map; a seeded toy model, its features, NPCA
    bases and the tables SpuFix reads (class 0's component 0 harmful)."""
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import ImageSet
    from spurlab.discover.npca import NpcaSettings, run_npca
    from spurlab.features import cache_features
    from spurlab.io import sha256_file
    from spurlab.io.tables import write_table
    from spurlab.models import build_classifier, save_model

    d = tmp_path_factory.mktemp("spufix_folder")
    synsets = d / "synsets.txt"
    synsets.write_text("".join(f"{w} {n}\n" for w, n in zip(WNIDS, NAMES)))
    _folder(d / "val", {w: 8 for w in WNIDS}, seed=0)
    _folder(d / "cue_only", {WNIDS[0]: 3, WNIDS[2]: 5}, seed=1)
    index_image_folder(d / "val", d / "test.h5", image_size=32, synsets=synsets)
    index_image_folder(d / "cue_only", d / "cue.h5", image_size=32, synsets=synsets)
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 8}).eval()
    save_model(model, d / "model", {"name": "m", "class_names": NAMES})
    sha = model_checkpoint_sha256(d / "model")
    for name, out in (("test.h5", "f.h5"), ("cue.h5", "fc.h5")):
        cache_features(model, "m", sha, ImageSet(d / name), d / out, torch.device("cpu"), progress=False)
    run_npca(
        d / "f.h5", d / "model", d / "bases.h5", NpcaSettings(components=4), progress=False
    )  # the test set stands in for train
    bases_sha = sha256_file(d / "bases.h5")
    # the pair table of real data: no masks (NaN statistics), components not all annotated
    from spurlab.discover.subsets_file import STAT_COLUMNS

    rows = []
    for k in range(3):
        for rank, (feature, label) in enumerate(((0, "spurious"), (1, "unannotated"), (2, "undecided")), 1):
            rows.append({"kind": "component", "class": k, "class_name": NAMES[k], "feature": feature, "rank": rank,
                         "label": label if k == 0 else "unannotated", "source": "human", "switched_off": None,
                         **dict.fromkeys(STAT_COLUMNS, np.nan)})  # fmt: skip
        rows.append({"kind": "neuron", "class": k, "class_name": NAMES[k], "feature": 3, "rank": 1,
                     "label": "unannotated", "source": "none", "switched_off": None,
                     **dict.fromkeys(STAT_COLUMNS, np.nan)})  # fmt: skip
    write_table(pd.DataFrame(rows), d / "pairs.parquet", {"bases_sha256": bases_sha, "planted_cues": {}})
    write_table(pd.DataFrame({"class": pd.Series([], dtype="int64"), "component": pd.Series([], dtype="int64"),
                              "source_set": pd.Series([], dtype="str"), "source_row": pd.Series([], dtype="int64"),
                              "has_cue": pd.Series([], dtype="float64"), "object_absent": pd.Series([], dtype="float64")}),
                d / "ret.parquet", {"bases_sha256": bases_sha, "pairs_sha256": sha256_file(d / "pairs.parquet")})  # fmt: skip
    harmful = pd.DataFrame({"class": [0], "class_name": [NAMES[0]], "component": [0], "harm_rate": [0.5],
                            "harmful": [True]})  # fmt: skip
    write_table(harmful, d / "harmful.parquet", {"bases_sha256": bases_sha,
                                                 "pairs_sha256": sha256_file(d / "pairs.parquet")})  # fmt: skip
    return d


def _models(d):
    return {"m": {"dir": str(d / "model"), "train": str(d / "f.h5"), "test": str(d / "f.h5"),
                  "cue_only": str(d / "fc.h5")}}  # fmt: skip


def test_cue_only_negatives_of_a_folder_set_are_its_rows_labelled_k(real):
    from spurlab.data.imagesets import ImageSet
    from spurlab.measure.spurious_score import cue_only_negatives

    s = ImageSet(real / "cue.h5")
    assert s.kind == "index" and s.class_names == NAMES
    # planted cues, if given, play no part for a folder set
    for planted in ({}, {NAMES[1]: ["cue_tag"]}):
        neg = cue_only_negatives(s, planted)
        assert sorted(neg) == [0, 2]  # class 1 has no folder: no negatives
        assert neg[0].tolist() == [0, 1, 2] and neg[2].tolist() == [3, 4, 5, 6, 7]
        for k, rows in neg.items():
            assert (s.labels[rows] == k).all()


def test_spufix_scores_folder_negatives_and_the_summary_reports_them(real):
    from scipy.special import softmax
    from sklearn.metrics import roc_auc_score

    from spurlab.data.feature_cache import open_features
    from spurlab.io.tables import read_table, table_provenance
    from spurlab.measure.npca_summary import run_npca_summary
    from spurlab.mitigate.spufix import SpuFixSettings, run_spufix

    d = real
    run_spufix(_models(d), d / "bases.h5", d / "pairs.parquet", d / "cue.h5", d / "ret.parquet", d / "harmful.parquet",
               d / "spufix.parquet", d / "spufix_models.parquet", SpuFixSettings(robust="m"))  # fmt: skip
    cls, mods = read_table(d / "spufix.parquet"), read_table(d / "spufix_models.parquet")
    assert table_provenance(d / "spufix.parquet")["cue_only_negatives"] == "folder_labels"
    cue = cls[cls["negatives"] == "cue_only"].set_index("class")
    assert sorted(cue.index) == [0, 2] and cue.loc[0, "n_neg"] == 3 and cue.loc[2, "n_neg"] == 5
    assert (cue["n_pos"] == 8).all()
    # the score before SpuFix, computed directly: test images of k against the cue folder of k
    with open_features(d / "f.h5") as ft, open_features(d / "fc.h5") as fc:
        p_test, y_test, ft_logits = softmax(ft["logits"].astype(np.float64), axis=1), ft["labels"], ft["logits"]
        p_cue, y_cue = softmax(fc["logits"].astype(np.float64), axis=1), fc["labels"]
    for k in (0, 2):
        s = np.r_[p_test[y_test == k, k], p_cue[y_cue == k, k]]
        y = np.r_[np.ones((y_test == k).sum()), np.zeros((y_cue == k).sum())]
        assert cue.loc[k, "spurious_auc_before"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert cue.loc[2, "spurious_auc_before"] == cue.loc[2, "spurious_auc_after"]  # no component removed for 2
    row = mods.set_index("model").loc["m"]
    assert row["cue_only_auc_before"] == pytest.approx(cue["spurious_auc_before"].mean())
    assert row["cue_only_auc_after"] == pytest.approx(cue["spurious_auc_after"].mean())
    # their bootstrap intervals (docs/methods.md#bootstrap-intervals): the test and cue images resampled
    for metric in ("cue_only_auc_before", "cue_only_auc_after", "acc_before", "acc_after"):
        assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"], metric
    from spurlab.measure.spurious_score import mean_auc_ci
    from spurlab.stats import mean_ci

    negatives = {k: np.flatnonzero(y_cue == k) for k in (0, 2)}
    ci = mean_auc_ci(p_test, y_test, p_cue, negatives, 0, "cue_only-auc-before-m")
    assert [row["cue_only_auc_before_ci_low"], row["cue_only_auc_before_ci_high"]] == pytest.approx(ci, abs=1e-6)
    acc = mean_ci((ft_logits.argmax(1) == y_test).astype(float), 0, "acc-before-m")
    assert [row["acc_before_ci_low"], row["acc_before_ci_high"]] == acc

    s = run_npca_summary(d / "pairs.parquet", d / "ret.parquet", d / "harmful.parquet", d / "spufix.parquet",
                         d / "spufix_models.parquet", d / "summary.json")  # fmt: skip
    saved = json.loads((d / "summary.json").read_text())
    assert saved.keys() - s.keys() == set(code_provenance())  # write_json names the code that wrote it
    assert {k: saved[k] for k in s} == json.loads(json.dumps(s))
    m = saved["models"]["m"]
    assert m["spurious_auc_before"] == pytest.approx(row["cue_only_auc_before"])
    assert m["spurious_auc_after"] == pytest.approx(row["cue_only_auc_after"])
    assert saved["cue_only_negatives"] == "folder_labels"
    # 9 components: one spurious, one undecided, seven unannotated
    assert saved["n_components"] == 9 and saved["n_components_annotated"] == 1 and saved["n_components_spurious"] == 1
    assert saved["component_labels"] == {"spurious": 1, "undecided": 1, "unannotated": 7}
    for key in ("planted_cues_recovered", "planted_cue_recovery", "annotator_precision",
                "annotator_precision_presence_only", "retrieval_precision"):  # fmt: skip
        assert saved[key] is None
    assert saved["harmfulness"]["harmful_precision"] is None
    assert saved["acceptance"]["npca_recovery_at_least_0.9"] is None
    nc = saved["not_computed"]
    assert {"planted_cues_recovered", "annotator_precision", "harmfulness/harmful_precision",
            "acceptance/npca_recovery_at_least_0.9"} <= set(nc)  # fmt: skip
    assert all(isinstance(v, str) and "\n" not in v and "real data" in v for k, v in nc.items()
               if k != "retrieval_precision")  # fmt: skip
    assert not any(k.startswith("models/") for k in nc)  # the cue-only scores were computed


def test_a_cue_folder_indexed_without_the_synset_map_is_refused(real, tmp_path):
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import ImageSet
    from spurlab.features import cache_features
    from spurlab.mitigate.spufix import SpuFixSettings, run_spufix
    from spurlab.models.factory import load_model

    d = real
    # the folder names alone: 2 classes, indices 0 and 1, not the model's 0 and 2
    index_image_folder(d / "cue_only", tmp_path / "cue_own.h5", image_size=32)
    model, _ = load_model(d / "model")
    cache_features(model, "m", model_checkpoint_sha256(d / "model"), ImageSet(tmp_path / "cue_own.h5"),
                   tmp_path / "fc.h5", torch.device("cpu"), progress=False)  # fmt: skip
    models = _models(d)
    models["m"]["cue_only"] = str(tmp_path / "fc.h5")
    with pytest.raises(SpurlabError, match=r"cue_own\.h5: class names differ from those of .*f\.h5"):
        run_spufix(models, d / "bases.h5", d / "pairs.parquet", tmp_path / "cue_own.h5", d / "ret.parquet",
                   d / "harmful.parquet", tmp_path / "s.parquet", tmp_path / "sm.parquet", SpuFixSettings(robust="m"))  # fmt: skip
    assert not (tmp_path / "s.parquet").exists()
