"""Stage summaries on data without planted truth (an index of image folders: no cues, no masks):
the fields scored against planted truth are null and named in `not_computed`, no class is called
a cue or control class, and counts of annotated features count only spurious or core labels. On
the generated benchmark the same summaries keep their planted-truth numbers. (The NPCA summary's
and the pure salient summary's cases: test_npca_summary.py, test_salient_summary.py.)"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import load_yaml

WNIDS = ["n01440764", "n01443537", "n01484850"]
NAMES = ["tench", "goldfish", "shark"]


def _index_set(d, n_per_class=6, seed=0):
    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import ImageSet

    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        (d / "imgs" / wnid).mkdir(parents=True)
        for k in range(n_per_class):
            img = np.clip(50 * (c + 1) + rng.integers(0, 80, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / "imgs" / wnid / f"{wnid}_{k:02d}.png")
    (d / "synsets.txt").write_text("".join(f"{w} {n}\n" for w, n in zip(WNIDS, NAMES)))
    index_image_folder(d / "imgs", d / "real.h5", image_size=32, synsets=d / "synsets.txt")
    return ImageSet(d / "real.h5")


def _generated_set(d, name="test"):
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan

    plan, attrs = build_plan(load_yaml("tiny.yaml"), name)
    write_imageset(d / f"{name}.h5", plan.n, plan.chunks(), attrs)
    return ImageSet(d / f"{name}.h5")


def _strings(node):
    """Every string value (not key) in a JSON-like tree."""
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def _one_line_reasons(not_computed: dict) -> None:
    assert not_computed and all(isinstance(v, str) and v and "\n" not in v for v in not_computed.values())


def test_planted_truth_is_read_from_the_image_set(tmp_path):
    from spurlab.data.imagesets import has_planted_truth, planted_cue_masks

    real = _index_set(tmp_path)
    bench = _generated_set(tmp_path)
    assert real.kind == "index" and not has_planted_truth(real) and planted_cue_masks(real) == {}
    assert has_planted_truth(bench) and planted_cue_masks(bench)


# ----------------------------------------------------------------------------------- spuriosity


def _spuriosity_tables(d, imageset, seed=0):
    """Hand-made inputs of `run_spuriosity_summary` for two models on `imageset`'s classes."""
    from spurlab.io import sha256_file
    from spurlab.io.tables import write_table

    rng = np.random.default_rng(seed)
    names, labels = imageset.class_names, imageset.labels
    flags = rng.integers(0, 2, len(labels)).astype(float) if imageset.kind != "index" else np.full(len(labels), np.nan)
    rankings = pd.DataFrame({"set": "gap", "row": np.arange(len(labels)), "id": [f"r{i}" for i in range(len(labels))],
                             "class_index": labels, "class_name": [names[c] for c in labels],
                             "spuriosity": rng.normal(size=len(labels)), "rank": 0, "cue_present": flags})  # fmt: skip
    write_table(rankings, d / "rankings.parquet", {"annotations_sha256": "a" * 64})
    expect = {"rankings_sha256": sha256_file(d / "rankings.parquet")}
    models = ["m_a", "m_b"]
    gaps = pd.DataFrame([{"model": m, "class_index": c, "class_name": names[c], "gap": float(rng.normal(0.1, 0.2)), "k": 3}
                         for m in models for c in range(len(names))])  # fmt: skip
    write_table(gaps, d / "gaps.parquet", {**expect, "gap_set": "gap"})
    suite = pd.DataFrame({"model": models, "acc": [0.8, 0.7], "acc_high": [0.9, 0.8], "acc_low": [0.7, 0.6],
                          "mean_gap": [0.2, 0.2], "effective_robustness": [0.01, -0.01]})  # fmt: skip
    write_table(suite, d / "gap_models.parquet", expect)
    write_table(pd.DataFrame({"model_a": ["m_a"], "model_b": ["m_b"], "pearson_r": [0.5], "n_classes": [len(names)]}),
                d / "gap_correlations.parquet", expect)  # fmt: skip
    corr, tuning = [], []
    for m in models:
        t = pd.DataFrame({"model": m, "class_index": [0, 1], "feature_index": [3, 4], "corruption": "gray",
                          "label": ["spurious", "core"], "delta": rng.normal(size=2)})  # fmt: skip
        write_table(t, d / f"corr_{m}.parquet", {"annotations_sha256": "a" * 64})
        corr.append(d / f"corr_{m}.parquet")
        t = pd.DataFrame([{"model": m, "method": "random", "trial": 0, "split": "val", "when": w, "gap": g, "acc": 0.8,
                           "epochs": 2} for w, g in (("before", 0.2), ("after", 0.1))])  # fmt: skip
        write_table(t, d / f"tune_{m}.parquet", expect)
        tuning.append(d / f"tune_{m}.parquet")
    noise = pd.DataFrame({"class_index": [0, 0], "row": [0, 1], "cue_present": [np.nan, np.nan],
                          "cue_removed": [np.nan, np.nan], "pred_original_m_a": [0, 1], "pred_crop_m_a": [0, 0]})  # fmt: skip
    write_table(noise, d / "label_noise.parquet", expect)
    return [d / "rankings.parquet", d / "gaps.parquet", d / "gap_models.parquet", d / "gap_correlations.parquet",
            corr, tuning, d / "label_noise.parquet"], gaps  # fmt: skip


def _run_spuriosity(d, imageset, models_summary=None):
    from spurlab.measure.spuriosity_summary import run_spuriosity_summary

    d.mkdir(exist_ok=True)
    paths, gaps = _spuriosity_tables(d, imageset)
    s = run_spuriosity_summary(imageset.path, *paths, models_summary, d / "summary.json", d / "gaps.png",
                               d / "tuning.png")  # fmt: skip
    saved = json.loads((d / "summary.json").read_text())
    assert saved["not_computed"] == s["not_computed"]
    return saved, gaps


def test_spuriosity_summary_on_a_folder_set(tmp_path):
    real = _index_set(tmp_path)
    s, gaps = _run_spuriosity(tmp_path / "real", real)
    assert s["class_roles"] is None and s["spuriosity_auc"] is None and s["spuriosity_auc_mean"] is None
    for m, e in s["models"].items():
        assert e["cue_class_mean_gap"] is None and e["control_class_mean_gap"] is None
        assert e["collision_class_gap"] is None
        # what needs no planted truth is still there
        assert e["class_gap"] == pytest.approx(dict(zip(NAMES, gaps.loc[gaps["model"] == m, "gap"])))
    assert "control" not in set(_strings(s)) and not any("control" in v for v in s["not_computed"].values())
    _one_line_reasons(s["not_computed"])
    assert {"class_roles", "spuriosity_auc", "spuriosity_auc_mean", "models/*/cue_class_mean_gap",
            "models/*/control_class_mean_gap", "gap_vs_counterfactual_r"} <= set(s["not_computed"])  # fmt: skip
    assert all("no planted cues" in v for v in s["not_computed"].values())
    assert (
        s["label_noise"]["tench"]["cue_present"] is None
        and "label_noise/*/cue_present, cue_removed_by_crop" in s["not_computed"]
    )
    assert s["ranked_classes"] == sorted(NAMES) and s["gap_correlation_mean"] == 0.5


def test_spuriosity_summary_on_the_benchmark_keeps_its_planted_truth(tmp_path):
    from spurlab.data.imagesets import planted_cue_masks
    from spurlab.measure.spuriosity import spuriosity_auc
    from spurlab.measure.spuriosity_summary import class_roles

    bench = _generated_set(tmp_path)
    names, planted = bench.class_names, planted_cue_masks(bench)
    cf = tmp_path / "models_summary.json"
    cf.write_text(json.dumps({"models": {m: {"counterfactual_gap": {n: 0.1 * i for i, n in enumerate(names)}}
                                         for m in ("m_a", "m_b")}}))  # fmt: skip
    s, gaps = _run_spuriosity(tmp_path / "bench", bench, cf)
    roles = class_roles(planted, names)
    assert s["class_roles"] == roles and roles["cue"] and roles["control"]
    assert s["not_computed"] == {}
    for m, e in s["models"].items():
        g = dict(zip(gaps.loc[gaps["model"] == m, "class_name"], gaps.loc[gaps["model"] == m, "gap"]))
        assert e["cue_class_mean_gap"] == pytest.approx(np.mean([g[c] for c in roles["cue"]]))
        assert e["control_class_mean_gap"] == pytest.approx(np.mean([g[c] for c in roles["control"]]))
        assert e["collision_class_gap"] == {c: pytest.approx(g[c]) for c in roles["collision"]}
        # each collision class's gap with its interval over that class's two ends (the gaps table's columns)
        assert set(e["collision_class_gap_ci"]) == set(e["collision_class_gap"]) and set(e["class_gap_ci"]) == set(g)
        for c, ci in e["class_gap_ci"].items():
            assert ci is None or ci[0] <= e["class_gap"][c] + 1e-9 <= ci[1] + 2e-9
    rk = pd.read_parquet(tmp_path / "bench" / "rankings.parquet")
    auc = spuriosity_auc(rk["spuriosity"].to_numpy(), rk["class_index"].to_numpy(), rk["cue_present"].to_numpy())
    want = np.nanmean([auc[names.index(c)] for c in roles["cue"]])
    assert s["spuriosity_auc_mean"] == pytest.approx(want)
    assert set(s["gap_vs_counterfactual_r"]) == {"m_a", "m_b"}


# ------------------------------------------------------------------------------------ salient


def test_salient_summary_on_a_folder_set(tmp_path):
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.discover.annotate import ANNOTATION_COLUMNS
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.discover.subsets import SubsetSettings, run_subsets
    from spurlab.discover.subsets_file import SalientSubsets, run_consolidated_masks
    from spurlab.features import cache_features
    from spurlab.io import sha256_file
    from spurlab.io.tables import write_table
    from spurlab.measure.noise import NoiseSettings, run_noise
    from spurlab.measure.salient_summary import SalientSummarySettings, run_salient_summary
    from spurlab.models import build_classifier, save_model

    d = tmp_path
    s = _index_set(d)
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", len(NAMES), 32, {"width": 8}).eval()
    save_model(model, d / "model", {"name": "m", "class_names": NAMES})
    cache_features(model, "m", model_checkpoint_sha256(d / "model"), s, d / "f.h5", torch.device("cpu"), progress=False)
    run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("label", 2))
    settings = SubsetSettings(fraction=0.5, min_images=2, max_images=3, top_images=1, attack="paper")
    run_subsets(d / "model", d / "real.h5", d / "f.h5", d / "imp.h5", d / "sub.h5", settings, "cpu", False)
    with SalientSubsets(d / "sub.h5") as sub:
        pairs = sub.pair_table()
        assert not sub.attrs["has_masks"] and sub.planted_cues == {}
    # human answers: class 0 spurious + core, class 1 spurious + undecided, class 2 unannotated + core
    labels = {(0, 1): "spurious", (0, 2): "core", (1, 1): "spurious", (1, 2): "undecided", (2, 1): "unannotated",
              (2, 2): "core"}  # fmt: skip
    ann = pd.DataFrame([{"class_index": int(r["class"]), "class_name": r["class_name"], "feature_index": int(r["feature"]),
                         "feature_rank": int(r["rank"]), "label": labels[(int(r["class"]), int(r["rank"]))],
                         "kind": "", "votes_main": 0, "votes_separate": 0, "votes_background": 0, "n_votes": 0,
                         "mean_confidence": np.nan, "source": "human"} for _, r in pairs.iterrows()])  # fmt: skip
    write_table(ann[list(ANNOTATION_COLUMNS)], d / "ann.parquet", {"subsets_sha256": sha256_file(d / "sub.h5"),
                                                                   "source": "human"})  # fmt: skip
    run_consolidated_masks(d / "sub.h5", d / "ann.parquet", d / "masks.h5")
    run_noise(d / "model", "m", d / "real.h5", d / "sub.h5", d / "ann.parquet", d / "masks.h5", d / "noise.parquet",
              NoiseSettings(0, (0, 0.25), (0.3,)), "cpu", progress=False)  # fmt: skip
    cfg = load_yaml("tiny.yaml")
    summary = run_salient_summary(d / "real.h5", d / "sub.h5", d / "ann.parquet", [d / "noise.parquet"],
                                  d / "summary.json", d / "noise.png", d / "grid.png", d / "f.h5", d / "model",
                                  SalientSummarySettings.from_config(cfg))  # fmt: skip
    saved = json.loads((d / "summary.json").read_text())
    assert saved["not_computed"] == summary["not_computed"]
    for key in ("auto_annotator_precision", "auto_annotator_recall", "auto_annotator_precision_presence_only",
                "auto_annotator_recall_presence_only", "planted_cues_recovered", "planted_cue_recovery",
                "cue_classes_with_both"):  # fmt: skip
        assert saved[key] is None and key in saved["not_computed"]
    assert "auto_annotator" not in saved and "auto_annotator" in saved["not_computed"]
    _one_line_reasons(saved["not_computed"])
    assert all("real data" in v for v in saved["not_computed"].values())
    assert "control" not in set(_strings(saved))
    # counts: six pairs, four annotated (spurious or core), two spurious in two classes
    assert saved["n_pairs"] == 6 and saved["n_annotated"] == 4 and saved["n_spurious"] == 2
    assert saved["n_classes_with_spurious"] == 2
    # what needs no planted truth is still measured: the class with a spurious and a core feature
    assert saved["classes_with_both"] == ["tench"] and set(saved["noise"]["m"]) == {"0", "0.25"}
    # the core/spurious noise comparison over the classes with both kinds, as the paper reports it
    assert saved["drake_classes"] == "classes with both" and saved["drake"]["m"]["0.25"]["n_classes"] == 1
