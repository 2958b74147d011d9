"""The BAM stage end to end on tiny sets with seeded untrained models: verification, every
attribution part, TCAV and the summary keys; MCS of a model against itself is 0."""

import copy
import json

import numpy as np
import pytest
import torch

from spurlab.bam import bam_models, kseries_codes, model_sets
from spurlab.bam.attributions import region_table, run_part
from spurlab.bam.concepts import TCAV_SETS, run_tcav
from spurlab.bam.metrics import mcs
from spurlab.bam.summary import run_bam_summary
from spurlab.bam.verify import run_verification
from spurlab.data.imagesets import ImageSet
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.models import build_classifier, save_model
from tests.conftest import load_yaml, render_sets


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    d = tmp_path_factory.mktemp("bam")
    cfg = copy.deepcopy(load_yaml("tiny.yaml"))
    b = cfg["bam"]["benchmark"]
    b.update(methods=["gradient", "smoothgrad", "gradcam"], max_images=6, trial_size=3,
             attribution=dict(b["attribution"], smoothgrad_samples=2, batch_size=8))  # fmt: skip
    b["iir"].update(steps=3)
    b["tcav"].update(concept_images=6, random_sets=2, layers=["blocks.4"])
    names = sorted({s for m in bam_models(cfg) for s in model_sets(m)[:2]} | {"bam_0s_test", "bam_og_test", *TCAV_SETS})
    sets = render_sets(cfg, names, d)
    dirs = {}
    for i, m in enumerate(bam_models(cfg)):
        with ImageSet(sets[model_sets(m)[0]]) as s:
            n = len(s.attrs["scene_class_names"]) if model_sets(m)[2] or m.startswith("f_k") else len(s.class_names)
        torch.manual_seed(i)
        save_model(
            build_classifier("cbr_tiny", n, 32, {"width": 4}).eval(),
            d / m,
            {"name": m, "label_column": model_sets(m)[2]},
        )
        dirs[m] = str(d / m)
    return cfg, d, sets, dirs


@pytest.mark.slow
def test_stage_writes_every_table_and_the_summary(stage):
    cfg, d, sets, dirs = stage
    ver = run_verification(cfg, dirs, sets, d / "verification.parquet")
    assert set(ver["model"]) == set(bam_models(cfg)) and ver["accuracy"].between(0, 1).all()
    for part in ["contrast", "iir"] + kseries_codes(cfg):
        run_part(cfg, part, dirs, sets, d / f"{part}.parquet", progress=False)
    iir_t = read_table(d / "iir.parquet")
    if len(iir_t):
        assert (iir_t["outside_mask_max"] == 0).all()
    run_tcav(cfg, dirs, sets, d / "tcav.parquet", d / "cache", progress=False)
    # the CAV cache is keyed by content: one directory per model hash + concept set
    # (captum keeps activations under av/<model_id>, CAVs under <model_id>)
    cav_dirs = sorted(p.name for p in (d / "cache").iterdir() if p.is_dir() and p.name != "av")
    assert len(cav_dirs) == len(bam_models(cfg)) and cav_dirs == sorted(p.name for p in (d / "cache" / "av").iterdir())
    s = run_bam_summary(cfg, d / "verification.parquet", d / "contrast.parquet",
                        {c: d / f"{c}.parquet" for c in kseries_codes(cfg)}, d / "iir.parquet", d / "tcav.parquet",
                        d / "summary.json", d / "mcs.png")  # fmt: skip
    on_disk = json.loads((d / "summary.json").read_text())
    for m in cfg["bam"]["benchmark"]["methods"]:
        for key in ("mcs", "mcs_random_baseline", "rho_k_series", "idr", "iir"):
            assert key in on_disk["methods"][m]
        for key in ("idr", "iir"):
            v = on_disk["methods"][m][key]
            assert v is None or 0 <= v <= 1
    assert "tcav_mcs" in s and set(s["verification"]) == {"f_o", "f_s"}
    assert set(s["verification"]["f_o"]) == {"os", "0s", "og"}
    assert set(s["k_series_accuracy_drop"]) == {"0.3", "1"}
    assert (d / "mcs.png").stat().st_size > 5000


@pytest.mark.slow
def test_mcs_of_a_model_against_itself_is_zero_on_real_maps(stage):
    from spurlab.models import load_model

    cfg, d, sets, dirs = stage
    model, _ = load_model(dirs["f_s"])
    with ImageSet(sets["bam_os_test"]) as s:
        x, obj = s.images(slice(0, 6)), s.masks("object", slice(0, 6))
        y = s.f["meta/scene_label"][:6]
    from spurlab.attribution import AttributionSettings

    st = AttributionSettings(smoothgrad_samples=2, batch_size=4)
    a = region_table(model, x, y, {"object": obj}, ["gradient", "smoothgrad", "gradcam"], st, seed=5)
    b = region_table(model, x, y, {"object": obj}, ["gradient", "smoothgrad", "gradcam"], st, seed=5)
    for m in ("gradient", "smoothgrad", "gradcam"):
        ga, gb = a[a["method"] == m]["g"].to_numpy(), b[b["method"] == m]["g"].to_numpy()
        assert mcs(ga, gb) == 0.0
    assert a["g"].between(0, 1).all()


def test_summary_refuses_tables_of_other_checkpoints(stage, tmp_path):
    import pandas as pd

    from spurlab.io.tables import write_table

    cfg, d, sets, dirs = stage
    write_table(pd.DataFrame({"model": ["f_o"], "set": ["x"], "rows": ["all"], "k": [np.nan], "accuracy": [1.0], "n": [1]}),
                tmp_path / "v.parquet", {"models": {"f_o": "1" * 64}})  # fmt: skip
    write_table(pd.DataFrame({"model": ["f_o"]}), tmp_path / "c.parquet", {"models": {"f_o": "2" * 64}})
    with pytest.raises(SpurlabError, match="made from model f_o"):
        run_bam_summary(cfg, tmp_path / "v.parquet", tmp_path / "c.parquet", {c: tmp_path / "c.parquet" for c in kseries_codes(cfg)},
                        tmp_path / "c.parquet", tmp_path / "c.parquet", tmp_path / "s.json", tmp_path / "f.png")  # fmt: skip
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_contrast_rows_are_correct_for_both_models_and_without_the_object(stage, tmp_path, monkeypatch):
    """X_corr of MCS and IDR: a row f_s gets wrong on X_0s is left out of every contrast table."""
    import spurlab.bam.attributions as attributions
    from spurlab.bam.models import labels_for
    from spurlab.models import load_model

    cfg, d, sets, dirs = stage
    real = attributions.predict
    with ImageSet(sets["bam_os_test"]) as s, ImageSet(sets["bam_0s_test"]) as z:
        x_os, x0, y0 = s.images(), z.images(), labels_for(z, "scene_label")
        both = (real(load_model(dirs["f_o"])[0], x_os) == labels_for(s, "object_label")) & (
            real(load_model(dirs["f_s"])[0], x_os) == labels_for(s, "scene_label"))  # fmt: skip
    candidates = np.flatnonzero(both)
    assert len(candidates) >= 2
    missed = candidates[: len(candidates) // 2]

    def predict(model, x):  # f_s misses half of the candidates once their object is removed
        out = real(model, x)
        if x.shape == x0.shape and np.array_equal(x, x0):
            out = out.copy()
            out[missed] = (y0[missed] + 1) % int(y0.max() + 1)
        return out

    monkeypatch.setattr(attributions, "predict", predict)
    run_part(cfg, "contrast", dirs, sets, tmp_path / "contrast.parquet", progress=False)
    con = read_table(tmp_path / "contrast.parquet")
    assert len(con) and con["correct"].all() and not con["row"].isin(missed).any()
