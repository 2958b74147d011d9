"""The two named normalisers (docs/methods.md#attribution-methods): maps in [0, 1], the percentile cap, the channel reductions."""

import numpy as np
import pytest
import torch

from spurlab.attribution import NORMALISERS, normalise
from spurlab.attribution.normalise import scale_unit
from spurlab.errors import SpurlabError


@pytest.mark.parametrize("name", sorted(NORMALISERS))
def test_normalised_maps_lie_in_unit_interval(name):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 3, 16, 16, generator=g) * torch.logspace(-3, 3, 6)[:, None, None, None]
    e = normalise(a, name)
    assert e.shape == (6, 16, 16)
    assert float(e.min()) >= 0 and float(e.max()) <= 1
    # the cap is the 99th percentile: about 1% of the pixels saturate, every map reaches 1
    sat = (e == 1).float().mean((1, 2))
    assert (sat > 0).all() and (sat < 0.03).all()


def test_bam_keeps_the_positive_part_adebayo_the_magnitude():
    a = torch.zeros(1, 3, 10, 10)
    a[0, :, 0, :5] = -5.0  # strong negative evidence
    a[0, 0, 5:, :] = 1.0  # weak positive evidence on half the image
    bam, ade = normalise(a, "bam")[0], normalise(a, "adebayo")[0]
    # BAM: negative attributions count as nothing
    assert float(bam[0, :5].max()) == 0 and float(bam[5:].min()) == 1
    # Adebayo: |a| summed over channels: the negative block (15) outranks the positive half (1)
    assert float(ade[0, :5].min()) == 1 and float(ade[5:].max()) == pytest.approx(1 / 15)


def test_scale_unit_oracle_and_degenerate_maps():
    m = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10) + 7  # min 7, range 0..99
    e = scale_unit(m)
    q = np.percentile(np.arange(100), 99)  # numpy's linear interpolation, as torch.quantile
    np.testing.assert_allclose(e.numpy().ravel(), np.clip(np.arange(100) / q, 0, 1), rtol=1e-6)
    assert float(scale_unit(torch.full((1, 4, 4), 3.0)).abs().max()) == 0  # constant: zeros, not NaN
    sparse = torch.zeros(1, 20, 20)
    sparse[0, 3, 4] = 2.0  # one hot pixel: the 99th percentile is 0, the maximum caps instead
    s = scale_unit(sparse)
    assert float(s[0, 3, 4]) == 1 and float(s.sum()) == 1


def test_unknown_normaliser_and_bad_shape_fail_clearly():
    with pytest.raises(SpurlabError, match="normaliser 'l2'"):
        normalise(torch.zeros(1, 3, 4, 4), "l2")
    with pytest.raises(SpurlabError, match=r"\(B, C, H, W\)"):
        normalise(torch.zeros(3, 4, 4), "bam")
