"""`l2_norms`: the L2 norm of each row over all its other dimensions, floored, shaped to broadcast."""

import pytest
import torch

from spurlab.tensor_ops import l2_norms


def test_l2_norms_oracle_shape_and_floor():
    t = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    n = l2_norms(t)
    assert n.shape == (3, 1, 1)
    assert n.flatten().tolist() == pytest.approx([5.0, 1e-12, 2.0], rel=1e-6)  # the zero row floored: safe to divide by
    unit = t / n
    assert torch.allclose(unit.flatten(1).norm(dim=1), torch.tensor([1.0, 0.0, 1.0]))


def test_l2_norms_of_any_rank_match_the_flattened_norm():
    g = torch.Generator().manual_seed(0)
    for shape in ((4, 7), (2, 3, 5, 5)):
        t = torch.randn(*shape, generator=g, dtype=torch.float64)
        n = l2_norms(t)
        assert n.shape == (shape[0],) + (1,) * (len(shape) - 1)
        assert torch.allclose(n.flatten(), torch.linalg.vector_norm(t.reshape(shape[0], -1), dim=1))
