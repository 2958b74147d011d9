"""results/models/summary.json: counterfactual gaps per class (acc cue on - acc cue off on twin rows)."""

import numpy as np
import pytest

from spurlab.errors import SpurlabError
from spurlab.models_summary import counterfactual_gaps


def test_counterfactual_gap_oracle():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # pairs: (on, off)
    cue_on = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    preds = np.array([0, 2, 0, 0, 1, 1, 2, 1])  # class 0: on 2/2, off 1/2; class 1: on 1/2, off 2/2
    assert counterfactual_gaps(preds, labels, cue_on, ["a", "b"]) == {"a": 0.5, "b": -0.5}
    with pytest.raises(SpurlabError, match="alternate"):
        counterfactual_gaps(preds, labels, ~cue_on, ["a", "b"])


def test_counterfactual_gaps_skip_absent_classes_and_round():
    labels = np.array([0, 0, 2, 2, 2, 2, 2, 2])
    cue_on = np.tile([True, False], 4)
    preds = np.array([0, 0, 2, 1, 2, 2, 0, 2])  # class 2: on 2/3, off 2/3 -> 0; class 1 has no rows
    gaps = counterfactual_gaps(preds, labels, cue_on, ["a", "b", "c"])
    assert gaps == {"a": 0.0, "c": 0.0}
    preds[4] = 0  # class 2 on 1/3, off 2/3
    assert counterfactual_gaps(preds, labels, cue_on, ["a", "b", "c"])["c"] == round(-1 / 3, 6)
