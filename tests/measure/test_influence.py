"""TracIn ranking and ICM: ICM, the learning rates and checkpoint weights TracIn sums with, and the
ICM table of the tiny stage (tests/measure/conftest.py), whose models keep every epoch's checkpoint."""

import json

import numpy as np
import pytest

from spurlab.errors import SpurlabError
from spurlab.measure.influence import checkpoint_weights, epoch_learning_rates, icm


def test_icm_and_tracin_learning_rates():
    assert icm(np.array([3, 3, 1, 3]), 3) == 0.75
    train = {"epochs": 2, "batch_size": 10, "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0,
             "schedule": "constant", "warmup_epochs": 0.0, "augmentation": {"hflip": False, "crop_padding": 0}}  # fmt: skip
    assert epoch_learning_rates(train, 100, 2) == pytest.approx([0.1, 0.1])


def test_tracin_checkpoint_interval_keeps_the_last_epoch_and_the_total_step_size():
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert checkpoint_weights(rates, 1) == {e: r for e, r in enumerate(rates)}
    # epochs 3, 6, 9 and the last (10), each standing for the epochs since the one before
    assert checkpoint_weights(rates, 3) == {2: 6.0, 5: 15.0, 8: 24.0, 9: 10.0}
    assert sum(checkpoint_weights(rates, 4).values()) == sum(rates)
    assert checkpoint_weights(rates, 50) == {9: 55.0}
    with pytest.raises(SpurlabError, match="checkpoint_every"):
        checkpoint_weights(rates, 0)


@pytest.mark.slow
def test_icm_table_ranks_the_top_k_training_images_from_every_checkpoint(posthoc_stage, posthoc_influence):
    cfg, d, sets, dirs = posthoc_stage
    for m in dirs:
        assert len(list((d / "models" / m / "checkpoints").glob("epoch_*.pt"))) == 1  # kept for TracIn
    inf = posthoc_influence
    assert inf.icm.between(0, 1).all() and len(json.loads(inf.top_rows.iloc[0])) == 3
