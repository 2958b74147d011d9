"""Oracles of Adebayo et al.'s measures: spurious score on toy models, SSIM identity, KS on
identical samples, ICM, and the study analysis recovering a planted effect (and not a null one)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spurlab.bam.models import predict
from spurlab.errors import SpurlabError
from spurlab.posthoc.attribution_similarity import measures, ssim
from spurlab.posthoc.influence import checkpoint_weights, epoch_learning_rates, icm
from spurlab.posthoc.spurious_score import condition, spurious_score, spurious_scores
from spurlab.posthoc.study import analyse_responses, assign, simulate_responses
from spurlab.posthoc.tcav_tests import ks_test

N_CLASSES, ALIGNED = 5, 1


class ToyModel(nn.Module):
    """Reads the class from pixel (0, 0) (red = 10 x class / 255); if `spurious`, a signal pixel
    (1, 1) in green makes it answer the aligned class."""

    def __init__(self, spurious: bool):
        super().__init__()
        self.spurious = spurious

    def forward(self, x):
        cls = torch.round(x[:, 0, 0, 0] * 255 / 10).long()
        if self.spurious:
            cls = torch.where(x[:, 1, 1, 1] > 0.5, torch.full_like(cls, ALIGNED), cls)
        return nn.functional.one_hot(cls, N_CLASSES).float()


def toy_images():
    labels = np.repeat(np.arange(N_CLASSES), 8)
    clean = np.zeros((len(labels), 4, 4, 3), np.uint8)
    clean[:, 0, 0, 0] = labels * 10
    signal = clean.copy()
    signal[:, 1, 1, 1] = 255
    return clean, signal


def test_spurious_score_is_zero_for_a_model_ignoring_the_signal_and_one_for_a_reliant_model():
    clean, signal = toy_images()
    ignore, reliant = ToyModel(False), ToyModel(True)
    s0 = spurious_scores(predict(ignore, clean), predict(ignore, signal), N_CLASSES)
    s1 = spurious_scores(predict(reliant, clean), predict(reliant, signal), N_CLASSES)
    assert np.all(s0 == 0)
    assert s1[ALIGNED] == 1.0 and np.all(np.delete(s1, ALIGNED) == 0)
    assert condition({"sig": s1[ALIGNED]}, s1.tolist(), {"spurious": 0.85, "normal": 0.1}) == "spurious"
    assert condition({"sig": s0[ALIGNED]}, s0.tolist(), {"spurious": 0.85, "normal": 0.1}) == "normal"
    assert condition({"sig": 0.5}, [0.5, 0.0], {"spurious": 0.85, "normal": 0.1}) == "neither"


def test_spurious_score_counts_only_inputs_not_already_predicted_aligned():
    # 2 of the 4 rows are predicted aligned without the signal: only the other 2 count
    assert spurious_score(np.array([1, 1, 0, 2]), np.array([1, 1, 1, 2]), 1) == 0.5
    assert np.isnan(spurious_score(np.array([1, 1]), np.array([1, 1]), 1))


def test_ssim_of_a_map_with_itself_is_one_and_the_measures_follow_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.random((32, 32)), rng.random((32, 32))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) < 0.2
    m = measures(e_spu_spu=a, e_spu_norm=b, e_norm_norm=b, e_norm_spu=a, gt=a)
    assert m == pytest.approx({"kssd": 1.0, "ccm": 1.0, "fam": 1.0, "famgt": 1.0})


def test_ks_on_identical_samples_does_not_reject_and_on_separated_samples_does():
    x = np.linspace(0, 1, 30)
    same = ks_test(x, x.copy(), 0.05)
    assert not same["reject"] and same["p_value"] == pytest.approx(1.0)
    assert ks_test(x, x + 2, 0.05)["reject"]


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


def test_study_analysis_recovers_a_planted_effect_and_not_a_null_one():
    methods = ["smoothgrad", "tcav", "influence", "control"]
    a = assign(40, methods, seed=0)
    assert a.groupby("group").participant.nunique().to_dict() == {"blinded": 40, "not_blinded": 40}
    assert (a.groupby("participant").size() == 2 * len(methods)).all()
    res = analyse_responses(simulate_responses(a, 1.5, "tcav", seed=0))
    for c in res["conditions"]:
        row = c["methods"]["tcav"]
        if c["condition"] == "spurious":
            assert row["reject_diff"] and row["reject_tukey"] and c["anova"]["reject"] and row["diff_vs_control"] < -1
        else:
            assert not row["reject_diff"] and abs(row["diff_vs_control"]) < 0.5
    null = analyse_responses(simulate_responses(a, 0.0, "tcav", seed=0))
    assert not any(c["methods"]["tcav"]["reject_diff"] for c in null["conditions"])


def test_study_analysis_rejects_bad_responses():
    from spurlab.errors import SpurlabError

    df = pd.DataFrame(
        {"participant": ["P0"], "group": ["blinded"], "condition": ["normal"], "method": ["control"], "likert": [7]}
    )
    with pytest.raises(SpurlabError, match="likert must be 1..5"):
        analyse_responses(df)
