"""BAM's region means g_c per attribution part on the tiny stage (tests/measure/conftest.py): every
part's table, IIR's delta inside the mask, MCS of a model against itself 0 on real maps, and the
rows MCS and IDR use (X_corr)."""

import numpy as np
import pytest

import spurlab.measure.bam_attributions as attributions
from spurlab.attribution import AttributionSettings
from spurlab.data.bam import labels_for
from spurlab.data.imagesets import ImageSet
from spurlab.io.tables import read_table
from spurlab.measure.bam_attributions import region_table, run_part
from spurlab.measure.bam_metrics import mcs
from spurlab.models import load_model


@pytest.mark.slow
def test_every_part_has_a_table_and_iir_deltas_stay_inside_the_mask(bam_stage, bam_parts):
    cfg = bam_stage[0]
    for part, path in bam_parts.items():
        t = read_table(path)
        if len(t):
            assert t["g"].dropna().between(0, 1).all() and set(t["method"]) <= set(
                cfg["bam"]["benchmark"]["methods"]
            ), part
    iir_t = read_table(bam_parts["iir"])
    if len(iir_t):
        assert (iir_t["outside_mask_max"] == 0).all()


@pytest.mark.slow
def test_mcs_of_a_model_against_itself_is_zero_on_real_maps(bam_stage):
    cfg, d, sets, dirs = bam_stage
    model, _ = load_model(dirs["f_s"])
    with ImageSet(sets["bam_os_test"]) as s:
        x, obj = s.images(slice(0, 6)), s.masks("object", slice(0, 6))
        y = s.f["meta/scene_label"][:6]
    st = AttributionSettings(smoothgrad_samples=2, batch_size=4)
    a = region_table(model, x, y, {"object": obj}, ["gradient", "smoothgrad", "gradcam"], st, seed=5)
    b = region_table(model, x, y, {"object": obj}, ["gradient", "smoothgrad", "gradcam"], st, seed=5)
    for m in ("gradient", "smoothgrad", "gradcam"):
        ga, gb = a[a["method"] == m]["g"].to_numpy(), b[b["method"] == m]["g"].to_numpy()
        assert mcs(ga, gb) == 0.0
    assert a["g"].between(0, 1).all()


@pytest.mark.slow
def test_contrast_rows_are_correct_for_both_models_and_without_the_object(bam_stage, tmp_path, monkeypatch):
    """X_corr of MCS and IDR: a row f_s gets wrong on X_0s is left out of every contrast table."""
    cfg, d, sets, dirs = bam_stage
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
