"""Retrieval by spurious components (docs/methods.md#class-wise-neural-pca): out-of-class images predicted as
the class, ranked by the component's activation; retrieval precision; harm rates and harmful
components. The stage end to end: tests/test_workflow_npca.py."""

import numpy as np
import pandas as pd
import pytest

from spurlab.discover.retrieval import harm_rate, harmful_components, retrieval_precision, retrieve


def test_retrieval_keeps_out_of_class_images_predicted_as_the_class_by_alpha():
    alpha = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    labels = np.array([1, 2, -1, 1, -1, 2])
    preds = np.array([1, 1, 1, 1, 1, 0])
    # row 0 and 3 have label 1 (in class), row 5 is not predicted as 1
    assert retrieve(alpha, labels, preds, 1, max_images=10).tolist() == [1, 2, 4]
    assert retrieve(alpha, labels, preds, 1, max_images=2).tolist() == [1, 2]
    t = pd.DataFrame({"has_cue": [1.0, 0.0, 1.0, np.nan], "object_absent": [1.0, 1.0, 1.0, np.nan]})
    assert retrieval_precision(t) == pytest.approx(2 / 3)
    assert retrieval_precision(t.iloc[3:]) is None


def test_harm_rate_is_the_share_of_the_top_out_of_class_images_predicted_as_the_class():
    alpha = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])
    labels = np.array([1, 0, 2, 0, 2, 0, 1])
    preds = np.array([1, 1, 0, 1, 1, 0, 1])
    # out of class 1: rows 1..5 by alpha; predicted 1: rows 1, 3, 4
    assert harm_rate(alpha, labels, preds, 1, top=2) == pytest.approx(0.5)  # rows 1, 2
    assert harm_rate(alpha, labels, preds, 1, top=4) == pytest.approx(0.75)  # rows 1-4
    assert harm_rate(alpha, labels, preds, 1, top=10) == pytest.approx(0.6)  # all five
    assert harm_rate(-alpha, labels, preds, 1, top=2) == pytest.approx(0.5)  # rows 5, 4
    assert np.isnan(harm_rate(alpha, np.ones(7, int), preds, 1))  # no out-of-class image
    t = pd.DataFrame({"class": [3, 3, 5, 7], "component": [4, 1, 0, 2], "harmful": [True, True, False, True]})
    assert harmful_components(t) == {3: [1, 4], 7: [2]}
