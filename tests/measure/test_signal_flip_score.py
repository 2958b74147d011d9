"""Adebayo et al.'s spurious score (predictions flipped to a class by adding the signal) and model
conditions: oracles on toy models, and the scores table of the tiny stage (tests/measure/conftest.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from spurlab.config import contamination_signals, posthoc_models
from spurlab.measure.signal_flip_score import condition, spurious_score, spurious_scores
from spurlab.models import predict

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


@pytest.mark.slow
def test_scores_table_has_every_model_signal_and_class_and_one_condition_per_model(posthoc_stage, posthoc_scores):
    cfg = posthoc_stage[0]
    df = posthoc_scores
    scores, cond = df[df["signal"] != "*"], df[df["signal"] == "*"]
    n_classes = len(cfg["datasets"]["classes"])
    assert len(scores) == len(posthoc_models(cfg)) * len(contamination_signals(cfg)) * n_classes
    assert (
        scores["score"].dropna().between(0, 1).all()
        and scores.groupby("model")["aligned"].sum().eq(len(contamination_signals(cfg))).all()
    )
    assert list(cond["model"]) == posthoc_models(cfg) and set(cond["condition"]) <= {"normal", "spurious", "neither"}


def test_score_intervals_resample_the_twin_images():
    from spurlab.measure.signal_flip_score import max_score_ci
    from spurlab.stats import bootstrap_ci

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 3, 60)
    signal = np.where(rng.random(60) < 0.7, 1, clean)  # the signal turns 70% of inputs into class 1
    ci = max_score_ci(clean, [signal], [1], 0, "k")
    assert ci[0] < spurious_score(clean, signal, 1) < ci[1]
    assert ci == bootstrap_ci([np.stack([clean, signal], 1)], lambda r: spurious_score(r[:, 0], r[:, 1], 1), 0, "k")
    # the highest over classes and signals: never below the aligned class's score on the same resamples
    top = max_score_ci(clean, [signal, clean], range(3), 0, "k")
    assert top[0] >= ci[0] and top[1] >= ci[1] and ci == max_score_ci(clean, [signal], [1], 0, "k")
