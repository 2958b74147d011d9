"""Feature cache (docs/methods.md#feature-cache): schema, hashes, streaming, and failing on stale inputs."""

import numpy as np
import pytest
import torch

from spurlab.data.feature_cache import model_checkpoint_sha256, open_features
from spurlab.data.imagesets import write_imageset
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError
from spurlab.features import cache_features
from spurlab.models import build_classifier, save_model


@pytest.fixture
def setup(toy_model_and_test_set):
    return toy_model_and_test_set


def test_cache_has_the_schema_and_hashes(setup):
    tmp, model, s = setup
    out = tmp / "f.h5"
    cache_features(
        model,
        "m",
        model_checkpoint_sha256(tmp / "model"),
        s,
        out,
        torch.device("cpu"),
        batch_size=16,
        block=30,
        progress=False,
    )
    with open_features(out, model_dir=tmp / "model", imageset=s) as fc:
        assert len(fc) == len(s)
        feats, logits = fc["features"], fc["logits"]
        assert feats.shape == (len(s), model.num_features) and feats.dtype == np.float32
        assert logits.shape == (len(s), 4)
        np.testing.assert_array_equal(fc["preds"], logits.argmax(1))
        np.testing.assert_array_equal(fc["labels"], s.labels)
        np.testing.assert_array_equal(fc["index"], s.ids)
        assert fc.attrs["imageset_sha256"] == s.sha256 and fc.attrs["arch"] == "cbr_tiny"
        # row i is image i: recompute a few rows directly
        x = torch.from_numpy(s.images(slice(40, 43))).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            np.testing.assert_allclose(feats[40:43], model.features(x).numpy(), rtol=1e-5, atol=1e-5)
        w, b = model.head()
        np.testing.assert_allclose(logits, feats @ w.detach().numpy().T + b.detach().numpy(), rtol=1e-4, atol=1e-4)
    # the block size is a memory knob only
    cache_features(model, "m", "x", s, tmp / "g.h5", torch.device("cpu"), batch_size=64, block=1000, progress=False)
    with open_features(tmp / "g.h5") as g, open_features(out) as f:
        np.testing.assert_allclose(g["features"], f["features"], rtol=1e-5, atol=1e-5)
    cache_features(model, "m", "x", s, tmp / "h.h5", torch.device("cpu"), dtype="float16", progress=False)
    with open_features(tmp / "h.h5") as h:
        assert h["features"].dtype == np.float16


def test_hash_mismatch_raises(setup, tiny_cfg):
    tmp, model, s = setup
    out = tmp / "f.h5"
    cache_features(model, "m", model_checkpoint_sha256(tmp / "model"), s, out, torch.device("cpu"), progress=False)
    torch.manual_seed(5)
    save_model(build_classifier("cbr_tiny", 4, 32, {"width": 8}), tmp / "other", {})
    with pytest.raises(SpurlabError, match="made from checkpoint .* recompute the features"):
        open_features(out, model_dir=tmp / "other")
    plan, attrs = build_plan(tiny_cfg, "val")
    write_imageset(tmp / "val.h5", plan.n, plan.chunks(), attrs)
    with pytest.raises(SpurlabError, match="made from image set .* recompute the features"):
        open_features(out, imageset=tmp / "val.h5")
    with pytest.raises(SpurlabError, match="not a spurlab feature cache"):
        open_features(tmp / "test.h5")
