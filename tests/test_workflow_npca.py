"""The Spurious ImageNet stage end to end on tiny.yaml's sets and an untrained seeded toy model:
bases -> components (NPFV, Grad-CAM, annotation) -> task pages -> retrieval -> SpuFix for two
models -> summary. Checks contracts (hashes, image set) and invariants, not quality (the model is
untrained); the workflow wiring is checked by `snakemake -n` in test_npca_target_builds_its_dag."""

import json
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from spurlab.errors import SpurlabError
from tests.conftest import AUTO_ANNOTATION, ROOT, load_yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.discover.npca import NpcaSettings, run_npca
    from spurlab.discover.npca_annotate import run_component_tasks
    from spurlab.discover.npfv import ComponentSettings, run_npca_components
    from spurlab.discover.retrieval import RetrievalSettings, run_retrieval
    from spurlab.features import cache_features
    from spurlab.io.tables import read_table, table_provenance, write_table
    from spurlab.models import build_classifier, save_model

    d = tmp_path_factory.mktemp("npca_stage")
    cfg = load_yaml("tiny.yaml")
    for name, path in (("test", d / "test.h5"), ("cue_only", d / "cue.h5")):
        plan, attrs = build_plan(cfg, name)
        write_imageset(path, plan.n, plan.chunks(), attrs)
    s = ImageSet(d / "test.h5")
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", len(s.class_names), 32, {"width": 8}).eval()
    save_model(model, d / "model", {"name": "m", "class_names": s.class_names})
    sha = model_checkpoint_sha256(d / "model")
    for name, out in (("test.h5", "f.h5"), ("cue.h5", "fc.h5")):
        cache_features(model, "m", sha, ImageSet(d / name), d / out, torch.device("cpu"), progress=False)
    run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("label", 3))
    # the test set stands in for the training set (bases, transfer)
    run_npca(d / "f.h5", d / "model", d / "bases.h5", NpcaSettings(components=8), progress=False)
    npfv = {"top_b": 3, "keep": 2, "eps_224": 30.0, "steps": 4}
    subset = {"fraction": 0.5, "min_images": 2, "max_images": 6}
    run_npca_components(d / "model", d / "bases.h5", d / "test.h5", d / "f.h5", d / "imp.h5", d / "comp.h5",
                        d / "pairs.parquet", ComponentSettings(npfv, subset, AUTO_ANNOTATION, top_images=2, neurons_top=3),
                        progress=False)  # fmt: skip
    run_component_tasks(d / "comp.h5", d / "test.h5", d / "tasks")
    # an untrained model's annotations are arbitrary: mark every rank-1 component spurious, except
    # one class's (with a planted cue, so with negatives; not the class the model predicts most, so
    # that retrieval finds images), so that SpuFix has work and a class to leave alone
    pairs = read_table(d / "pairs.parquet")
    with h5py.File(d / "f.h5") as f:
        most = np.bincount(f["preds"][:]).argmax()
    first = [s.class_names.index(c) for c in sorted(cfg["datasets"]["cue_table"]) if s.class_names.index(c) != most][0]
    comp = pairs["kind"] == "component"
    pairs.loc[comp, "label"] = np.where((pairs.loc[comp, "rank"] == 1) & (pairs.loc[comp, "class"] != first),
                                        "spurious", "core")  # fmt: skip
    write_table(pairs, d / "pairs.parquet", table_provenance(d / "pairs.parquet"))
    pool = {"test": (str(d / "test.h5"), str(d / "f.h5")), "cue_only": (str(d / "cue.h5"), str(d / "fc.h5"))}
    # the harmfulness check with a threshold of 0: every annotated component is harmful, and rated
    info = run_retrieval(d / "model", d / "bases.h5", d / "pairs.parquet", pool, d / "ret.h5", d / "ret.parquet",
                         RetrievalSettings(max_images=10, harmful_fraction=0.0), validation=pool["test"],
                         out_harmful=d / "harmful.parquet")  # fmt: skip
    shutil.copytree(d / "model", d / "model2")  # the same network under a second name: a transfer to itself
    return d, cfg, s, info


def test_components_file_and_pair_table(stage):
    from spurlab.io.tables import read_table

    d, _, s, _ = stage
    pairs = read_table(d / "pairs.parquet")
    comps, neurons = pairs[pairs["kind"] == "component"], pairs[pairs["kind"] == "neuron"]
    n_classes = len(s.class_names)
    assert len(comps) == 2 * n_classes and len(neurons) == 3 * n_classes
    assert (comps.groupby("class")["rank"].apply(sorted) == pd.Series([[1, 2]] * n_classes)).all()
    # ranked by the model's confidence on the NPFV; APGD never ends below gray
    for _, g in comps.groupby("class"):
        assert (np.diff(g.sort_values("rank")["prob"].to_numpy()) <= 1e-12).all()
    assert (comps["alpha_npfv"] >= comps["alpha_gray"] - 1e-6).all()
    assert comps[["hot_object", "cue_share"]].notna().all().all()
    # the cue's statistics exist where the component's top images show the cue
    assert (comps["hot_cue"].notna() == (comps["cue_share"] > 0)).all()
    with h5py.File(d / "comp.h5") as f:
        assert f["npfv"].shape == (len(comps), 32, 32, 3) and f["npfv"].dtype == np.uint8
        assert f["top_rows"].shape == (len(comps), 2) and f.attrs["imageset_sha256"] == s.sha256
        labels = s.labels
        assert (labels[f["top_rows"][:].ravel()] == np.repeat(f["class"][:], 2)).all()
    manifest = pd.read_csv(d / "tasks" / "manifest.csv")
    assert len(manifest) == len(comps) and (d / "tasks" / "index.html").exists()
    # the planted truth's second kind: each neuron's verdict is cue_switched_off on its own column
    from spurlab.data.feature_cache import open_features
    from spurlab.discover.auto_annotate import background_cues, cue_switched_off

    flags, owners = background_cues(s)
    assert list(flags) == ["water_bg"]
    with open_features(d / "f.h5") as fc:
        phi, y = fc["features"], fc["labels"]
    want = cue_switched_off(neurons, {int(j): phi[:, int(j)] for j in neurons["feature"]}, y, flags, owners)
    assert [q if isinstance(q, str) else None for q in neurons["switched_off"]] == want
    assert set(pairs["switched_off"].dropna()) <= {"water_bg"}


def test_retrieved_set_is_out_of_class_and_predicted_as_the_class(stage):
    from spurlab.data.feature_cache import open_features
    from spurlab.data.imagesets import ImageSet
    from spurlab.io.tables import read_table

    d, _, _, info = stage
    t = read_table(d / "ret.parquet")
    r = ImageSet(d / "ret.h5")
    assert len(r) == len(t) == info["images"]
    assert info["precision"] is None or 0 <= info["precision"] <= 1
    for name, feats in (("test", d / "f.h5"), ("cue_only", d / "fc.h5")):
        part = t[t["source_set"] == name]
        with open_features(feats) as fc:
            labels, preds = fc["labels"], fc["preds"]
        rows = part["source_row"].to_numpy().astype(np.int64)
        assert (labels[rows] != part["class"].to_numpy()).all()
        assert (preds[rows] == part["class"].to_numpy()).all()
    assert len(t) > 0
    if len(t):
        r.verify()
        assert (r.labels == t["class"].to_numpy()).all()
        for _, g in t.groupby("class"):
            assert (np.diff(g["alpha"].to_numpy()) <= 0).all() and len(g) <= 10


def test_harmfulness_table_rates_every_annotated_spurious_component(stage):
    from spurlab.io.tables import read_table, table_provenance

    d, _, _, info = stage
    pairs, harmful = read_table(d / "pairs.parquet"), read_table(d / "harmful.parquet")
    spurious = pairs[(pairs["kind"] == "component") & (pairs["label"] == "spurious")]
    assert sorted(zip(harmful["class"], harmful["component"])) == sorted(zip(spurious["class"], spurious["feature"]))
    assert harmful["harm_rate"].between(0, 1).all() and harmful["harmful"].all()  # threshold 0
    assert info["harmful"] == info["components"] == len(harmful)
    assert table_provenance(d / "harmful.parquet")["validation"]["top"] == 10


def test_components_below_the_harm_threshold_are_not_retrieved(stage, tmp_path):
    from spurlab.discover.retrieval import RetrievalSettings, run_retrieval
    from spurlab.io.tables import read_table

    d = stage[0]
    rates = read_table(d / "harmful.parquet")["harm_rate"]
    pool = {"test": (str(d / "test.h5"), str(d / "f.h5")), "cue_only": (str(d / "cue.h5"), str(d / "fc.h5"))}
    for cut in sorted(set(rates)) + [1.01]:
        info = run_retrieval(d / "model", d / "bases.h5", d / "pairs.parquet", pool, tmp_path / "r.h5",
                             tmp_path / "r.parquet", RetrievalSettings(max_images=10, harmful_fraction=cut),
                             validation=pool["test"], out_harmful=tmp_path / "h.parquet")  # fmt: skip
        harmful, kept = read_table(tmp_path / "h.parquet"), read_table(tmp_path / "r.parquet")
        assert (harmful["harmful"] == (harmful["harm_rate"] >= cut)).all()
        assert info["harmful"] == int((rates >= cut).sum())
        ok = set(zip(harmful.loc[harmful["harmful"], "class"], harmful.loc[harmful["harmful"], "component"]))
        assert set(zip(kept["class"], kept["component"])) <= ok
    assert info["harmful"] == 0 and info["images"] == 0  # above every rate: nothing is harmful


def test_spufix_stage_and_summary(stage):
    from spurlab.io.tables import read_table
    from spurlab.measure.npca_summary import run_npca_summary
    from spurlab.mitigate.spufix import SpuFixSettings, run_spufix

    d, _, _, _ = stage
    # pool sets (test, cue_only) are read through the same keys as the test and cue_only caches
    entry = lambda m: {
        "dir": str(d / m),
        "train": str(d / "f.h5"),
        "test": str(d / "f.h5"),  # noqa: E731
        "cue_only": str(d / "fc.h5"),
    }
    models = {"m": entry("model"), "m2": entry("model2")}
    run_spufix(models, d / "bases.h5", d / "pairs.parquet", d / "cue.h5", d / "ret.parquet", d / "harmful.parquet",
               d / "spufix.parquet", d / "spufix_models.parquet", SpuFixSettings(robust="m"))  # fmt: skip
    cls, mods = read_table(d / "spufix.parquet"), read_table(d / "spufix_models.parquet")
    assert mods.set_index("model").loc["m", "transfer_invariant_max_abs_err"] < 1e-5
    # the transfer to the same network reproduces the direct SpuFix: same scores after
    a, b = (cls[cls["model"] == m].set_index(["negatives", "class"]) for m in ("m", "m2"))
    np.testing.assert_allclose(a["spurious_auc_after"], b["spurious_auc_after"], atol=1e-9)
    untouched = cls[cls["spufix_components"] == 0]
    assert len(untouched) and np.allclose(untouched["spurious_auc_before"], untouched["spurious_auc_after"],
                                          equal_nan=True)  # fmt: skip
    # reach: nothing lowered on untouched classes; on repaired ones the transfer to itself fits its
    # training images exactly and reaches the same images as the direct fix
    assert (untouched[["corrected_pos", "correction_pos", "corrected_neg", "correction_neg"]] == 0).all().all()
    assert untouched["transfer_corr"].isna().all()
    repaired = [x[x["spufix_components"] > 0] for x in (a.reset_index(), b.reset_index())]
    assert (
        len(repaired[0])
        and np.allclose(repaired[0]["transfer_corr"], 1)
        and np.allclose(repaired[1]["transfer_corr"], 1)
    )
    np.testing.assert_allclose(repaired[0]["corrected_neg"], repaired[1]["corrected_neg"])
    s = run_npca_summary(d / "pairs.parquet", d / "ret.parquet", d / "harmful.parquet", d / "spufix.parquet",
                         d / "spufix_models.parquet", d / "summary.json")  # fmt: skip
    saved = json.loads((d / "summary.json").read_text())
    assert set(saved["planted_cues_recovered"]) == {"npca", "neurons_top5", "neurons_top10"}
    for m in ("m", "m2"):
        assert {"spurious_auc_before", "spurious_auc_after", "spurious_ap_before", "spurious_ap_after",
                "acc_before", "acc_after"} <= set(saved["models"][m])  # fmt: skip
    assert "transfer_invariant_max_abs_err" in saved and "retrieval_precision" in saved
    # the repaired classes' mean AUC with its interval over their images (computed by npca_spufix)
    for m, e in saved["models"].items():
        for when in ("before", "after"):
            v, ci = e[f"spurious_auc_repaired_{when}"], e[f"spurious_auc_repaired_{when}_ci"]
            assert (v is None and ci is None) or ci is None or ci[0] - 1e-9 <= v <= ci[1] + 1e-9, (m, when, v, ci)
    assert s["models"]["m"]["acc_before"] == saved["models"]["m"]["acc_before"]
    for m, e in saved["models"].items():
        assert set(e["spufix_reach"]) == set(e["repaired_classes"]), m
    # a pair table from before a statistic existed: one line naming the file and the column
    stale = d / "stale_pairs.parquet"
    pq.write_table(pq.read_table(d / "pairs.parquet").drop_columns(["cue_share"]), stale)
    with pytest.raises(SpurlabError, match=r"stale_pairs\.parquet: column 'cue_share' missing"):
        run_npca_summary(stale, d / "ret.parquet", d / "harmful.parquet", d / "spufix.parquet",
                         d / "spufix_models.parquet", d / "stale.json")  # fmt: skip
    assert not (d / "stale.json").exists()


def test_npca_target_builds_its_dag(tmp_path, venv_env):
    for cfg in ("tiny.yaml", "config.yaml"):
        cmd = ["snakemake", "npca", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(ROOT / "config" / cfg)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, env=venv_env)
        assert r.returncode == 0, r.stderr[-2000:]
        for rule in (
            "npca_bases",
            "npca_components",
            "npca_annotation_tasks",
            "npca_retrieval",
            "npca_spufix",
            "npca_summary",
        ):
            assert rule in r.stdout
