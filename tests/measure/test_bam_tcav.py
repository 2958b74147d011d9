"""TCAV of BAM's common-object concept on the tiny stage (tests/measure/conftest.py): a score per
model and layer, and captum's CAV cache keyed by content (one directory per model hash + concept set)."""

import pytest

from spurlab.config import bam_models


@pytest.mark.slow
def test_every_model_is_scored_and_the_cav_cache_is_keyed_by_content(bam_stage, bam_tcav):
    cfg, d, sets, dirs = bam_stage
    comb = bam_tcav[bam_tcav["layer"] == "combined"]
    assert set(comb["model"]) == set(bam_models(cfg)) and comb["score"].dropna().between(0, 1).all()
    # captum keeps activations under av/<model_id>, CAVs under <model_id>
    cav_dirs = sorted(p.name for p in (d / "cache").iterdir() if p.is_dir() and p.name != "av")
    assert len(cav_dirs) == len(bam_models(cfg)) and cav_dirs == sorted(p.name for p in (d / "cache" / "av").iterdir())
