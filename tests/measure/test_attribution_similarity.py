"""Adebayo et al.'s attribution measures (K-SSD, CCM, FAM, FAM-GT by SSIM): oracles, and one signal's
table and panels on the tiny stage (tests/measure/conftest.py)."""

import numpy as np
import pytest

from spurlab.config import contamination_signals
from spurlab.io.tables import read_table
from spurlab.measure.attribution_similarity import MEASURES, measures, ssim


def test_ssim_of_a_map_with_itself_is_one_and_the_measures_follow_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.random((32, 32)), rng.random((32, 32))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) < 0.2
    m = measures(e_spu_spu=a, e_spu_norm=b, e_norm_norm=b, e_norm_spu=a, gt=a)
    assert m == pytest.approx({"kssd": 1.0, "ccm": 1.0, "fam": 1.0, "famgt": 1.0})


@pytest.mark.slow
def test_every_signal_has_its_measures_and_its_panels(posthoc_stage, posthoc_attributions):
    cfg, d, sets, dirs = posthoc_stage
    for s in contamination_signals(cfg):
        t = read_table(posthoc_attributions[s])
        assert set(t["method"]) == set(cfg["posthoc"]["methods"]) and set(MEASURES) <= set(t.columns)
        assert (d / f"panel_{s}.png").read_bytes()[:4] == b"\x89PNG" and (d / f"panel_{s}.png").stat().st_size > 1000
        assert "<svg" in (d / f"panel_{s}.svg").read_text()
