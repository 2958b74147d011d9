"""Neural feature importance (docs/methods.md#neural-feature-importance) against a direct computation on a toy model."""

import numpy as np
import pytest
import torch

from spurlab.discover.importance import class_feature_means, feature_importance, top_features
from spurlab.models.factory import build_classifier


def _blocks(phi, preds, labels, rows):
    for s in range(0, len(phi), rows):
        yield phi[s : s + rows], preds[s : s + rows], labels[s : s + rows]


@pytest.mark.parametrize("grouping", ["prediction", "label", "correct"])
def test_importance_equals_direct_computation(grouping):
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 4, 32, {"width": 4}).eval()
    x = torch.rand(64, 3, 32, 32)
    with torch.no_grad():
        phi, logits = model.forward_with_features(x)
    phi, preds = phi.numpy(), logits.argmax(1).numpy()
    labels = np.random.default_rng(0).integers(0, 4, 64)
    w = model.head()[0].detach().numpy()
    means, counts = class_feature_means(_blocks(phi, preds, labels, 10), 4, grouping)
    iv = feature_importance(means, w)
    for k in range(4):
        if grouping == "prediction":
            group = preds == k
        elif grouping == "label":
            group = labels == k
        else:
            group = (labels == k) & (preds == k)
        assert counts[k] == group.sum()
        direct = (phi[group] * w[k]).mean(0) if group.any() else np.zeros(w.shape[1])  # Def. 1, bias ignored
        np.testing.assert_allclose(iv[k], direct, rtol=1e-5, atol=1e-7)


def test_rows_without_a_class_are_ignored_and_block_size_does_not_matter():
    rng = np.random.default_rng(1)
    phi = rng.random((50, 6)).astype(np.float32)
    labels = rng.integers(-1, 3, 50)  # -1: a cue_only image
    a, ca = class_feature_means(_blocks(phi, labels, labels, 7), 3, "label")
    b, cb = class_feature_means(_blocks(phi, labels, labels, 50), 3, "label")
    np.testing.assert_allclose(a, b)
    assert ca.sum() == (labels >= 0).sum()


def test_top_features_order_and_ties():
    iv = np.array([[0.1, 0.5, 0.5, -1.0], [3.0, 2.0, 1.0, 0.0]])
    np.testing.assert_array_equal(top_features(iv, 2), [[1, 2], [0, 1]])
    with pytest.raises(ValueError, match="grouping"):
        class_feature_means(iter([]), 2, "labels")
