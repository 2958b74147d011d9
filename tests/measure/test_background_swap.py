"""Background swap (ImageNet-9's mixed-rand): per model, flip rate, accuracy before and after and
their drop, flip rates with and without the class's own background cue (oracles on a hand table)."""

import pandas as pd
import pytest

from spurlab.measure.background_swap import summarize_background


def test_summary_oracle_per_model():
    df = pd.DataFrame({
        "model": ["a"] * 4 + ["b"] * 2,
        "own_background_cue": [True, True, False, False, False, False],
        "flip": [True, True, False, True, False, False],
        "correct": [True, True, True, False, True, False],
        "correct_swapped": [False, False, True, False, True, False],
    })  # fmt: skip
    s = summarize_background(df)
    assert list(s) == ["a", "b"]
    a = s["a"]
    assert (a["n"], a["flip_rate"], a["accuracy_original"], a["accuracy_swapped"]) == (4, 0.75, 0.75, 0.25)
    assert a["accuracy_drop"] == pytest.approx(0.5)
    assert (a["flip_rate_own_background_cue"], a["flip_rate_own_background_cue_n"]) == (1.0, 2)
    assert (a["flip_rate_other"], a["flip_rate_other_n"]) == (0.5, 2) and a["own_cue_flips_more"] is True
    b = s["b"]  # no image with its own cue: that rate is unknown, not 0
    assert b["flip_rate_own_background_cue"] is None and b["own_cue_flips_more"] is None
    assert b["flip_rate_own_background_cue_n"] == 0 and b["flip_rate"] == 0.0
