"""`spurlab inspect FILE`: image sets and feature caches told apart by their format, a file that is
not HDF5 refused in one line."""

import numpy as np
import pytest
import torch

from spurlab.data.feature_cache import model_checkpoint_sha256, open_features
from spurlab.errors import SpurlabError
from spurlab.features import cache_features
from spurlab.inspect import describe


@pytest.fixture
def setup(toy_model_and_test_set):
    return toy_model_and_test_set


def test_inspect_describes_a_feature_cache(setup):
    tmp, model, s = setup
    cache_features(
        model, "m", model_checkpoint_sha256(tmp / "model"), s, tmp / "f.h5", torch.device("cpu"), progress=False
    )
    text = describe(tmp / "f.h5")
    assert "feature cache of model 'm' (cbr_tiny) on image set 'test'" in text
    assert f"{len(s)} rows, {model.num_features} features (float32), 4 logits" in text
    with open_features(tmp / "f.h5") as fc:
        assert f"accuracy {(fc['preds'] == fc['labels']).mean():.4f}" in text


def test_inspect_describes_an_image_set_with_its_cue_rates(setup):
    tmp, _, s = setup
    text = describe(tmp / "test.h5", verify=True)
    assert f"image set 'test' (packed), {len(s)} images of 32x32" in text
    assert f"sha256 {s.sha256}  (verified)" in text
    counts = dict(zip(*np.unique(s.labels, return_counts=True)))
    assert "labels (class): " + ", ".join(f"{s.class_names[c]} {k}" for c, k in counts.items()) in text
    cues = [c for c in s.meta_columns if c.startswith("cue_") and c != "cue_on"]
    assert cues and "cue rate per class:" in text
    row = next(line for line in text.splitlines() if line.strip().startswith(s.class_names[0] + " "))
    rates = s.meta(cues)
    want = [rates[c].to_numpy()[s.labels == 0].mean() for c in cues]
    assert [float(v) for v in row.split()[1:]] == pytest.approx(want, abs=5e-4)
    assert "(verified)" not in describe(tmp / "test.h5")


def test_inspect_refuses_a_file_that_is_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(SpurlabError, match=r"x.h5: not a readable HDF5 file") as e:
        describe(tmp_path / "x.h5")
    assert "\n" not in str(e.value)
