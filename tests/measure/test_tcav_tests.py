"""TCAV tests of Adebayo et al.'s stage: the KS test's oracles, and the concepts scored on the tiny
stage (tests/measure/conftest.py)."""

import numpy as np
import pytest

from spurlab.measure.tcav_tests import ks_test


def test_ks_on_identical_samples_does_not_reject_and_on_separated_samples_does():
    x = np.linspace(0, 1, 30)
    same = ks_test(x, x.copy(), 0.05)
    assert not same["reject"] and same["p_value"] == pytest.approx(1.0)
    assert ks_test(x, x + 2, 0.05)["reject"]


@pytest.mark.slow
def test_signal_and_core_concepts_are_scored(posthoc_tcav):
    assert {"signal:tag", "shape:disk", "scene:grass", "colour:0"} <= set(posthoc_tcav.concept)
