"""Adebayo et al.'s interventional checks on the tiny stage (tests/measure/conftest.py): the re-rendered
twins match the stored contamination sets byte for byte, and the table has one row per signal, model,
image and method, the normal model's planted part the object and the spurious model's the signal."""

import numpy as np
import pytest

from spurlab.config import contamination_signals, spurious_model
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.measure.interventions_posthoc import run_posthoc_interventions, signal_twins


def test_twins_are_the_stored_rows_and_a_missing_set_is_named(posthoc_stage):
    cfg, d, sets, dirs = posthoc_stage
    rows = np.array([0, 2])
    tw, sha = signal_twins(cfg, "tag", sets, rows)
    assert len(sha) == 64 and tw["original"].shape[0] == 2 and not np.array_equal(tw["original"], tw["no_cue"])
    with pytest.raises(SpurlabError, match="contam_tag_test not given"):
        signal_twins(cfg, "tag", {"contam_clean_test": sets["contam_clean_test"]}, rows)


@pytest.mark.slow
def test_table_has_a_row_per_signal_model_image_and_method(posthoc_stage, tmp_path):
    cfg, d, sets, dirs = posthoc_stage
    cfg = dict(cfg, interventions=dict(cfg["interventions"], n_images=dict(cfg["interventions"]["n_images"], posthoc=2),
                                       methods={"bam": None, "posthoc": ["gradient"]}))  # fmt: skip
    info = run_posthoc_interventions(
        cfg, dirs, sets, tmp_path / "posthoc.parquet", tmp_path / "examples.png", threads=1
    )
    t = read_table(tmp_path / "posthoc.parquet")
    signals = contamination_signals(cfg)
    assert info["rows"] == 2 and len(t) == 2 * 2 * len(signals) and set(t["setting"]) == set(signals)
    for s in signals:
        planted = dict(zip(t[t["setting"] == s]["model"], t[t["setting"] == s]["planted"]))
        assert planted == {"normal": "object", spurious_model(s): "cue"}
    assert (tmp_path / "examples.png").stat().st_size > 1000
