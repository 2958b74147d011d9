"""BAM's verification table (Yang & Kim Fig. 2) on the tiny stage (tests/measure/conftest.py):
every model on every set, accuracies in [0, 1], the k-series drops and the summary's record."""

import pytest

from spurlab.config import bam_models, kseries_codes
from spurlab.measure.bam_verification import accuracy_drops, verification_record


@pytest.mark.slow
def test_verification_scores_every_model_and_gives_one_drop_per_commonality(bam_stage, bam_verification):
    cfg = bam_stage[0]
    ver = bam_verification
    assert set(ver["model"]) == set(bam_models(cfg)) and ver["accuracy"].between(0, 1).all()
    drops = accuracy_drops(ver)
    assert len(drops) == len(kseries_codes(cfg)) and all(-1 <= v <= 1 for v in drops.values())
    record = verification_record(ver)
    assert set(record) == {"f_o", "f_s"} and set(record["f_o"]) == {"os", "0s", "og"}
