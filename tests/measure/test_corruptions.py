"""Targeted corruptions (docs/methods.md#targeted-corruptions): the three transforms, masking, seeding, the core-overlap filter,
the per-pair table and the cross-model correlation, and the stage end to end."""

import numpy as np
import pandas as pd
import pytest
import torch

from spurlab.measure.corruptions import (
    CORRUPTIONS,
    CorruptionSettings,
    blur,
    corrupt_region,
    corruption_table,
    gray,
    image_rngs,
    patch_rotate,
    region_masks,
    sensitivity_correlation,
)
from spurlab.models.factory import build_classifier


def _images(b=3, size=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((b, 3, size, size), dtype=np.float32))


def test_patch_rotate_keeps_the_pixel_multiset_and_moves_pixels():
    x = _images()
    out = patch_rotate(x, 8, image_rngs(0, range(3)))
    assert out.shape == x.shape and not torch.equal(out, x)
    for b in range(3):
        for c in range(3):
            assert torch.equal(out[b, c].flatten().sort().values, x[b, c].flatten().sort().values)
        # every tile keeps its own pixels (rotation within the tile)
        for ty in range(0, 32, 8):
            for tx in range(0, 32, 8):
                a, t = x[b, :, ty : ty + 8, tx : tx + 8], out[b, :, ty : ty + 8, tx : tx + 8]
                assert any(torch.equal(torch.rot90(a, k, (-2, -1)), t) for k in range(4))
    with pytest.raises(ValueError, match="divide"):
        patch_rotate(x, 5, image_rngs(0, range(3)))


def test_gray_removes_colour_and_keeps_gray():
    x = _images()
    g = gray(x)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    torch.testing.assert_close(g[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    already = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(gray(already), already, atol=1e-6, rtol=0)


def test_blur_keeps_constants_and_smooths():
    c = torch.full((2, 3, 32, 32), 0.37)
    torch.testing.assert_close(blur(c, 1.5), c, atol=1e-6, rtol=0)
    x = _images()
    assert blur(x, 1.0).std() < x.std() * 0.7
    assert torch.equal(blur(x, 0.0), x)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_mask_zero_is_the_image_and_mask_one_the_transform(kind):
    x = _images()
    s = CorruptionSettings()
    rows = [4, 9, 2]
    assert torch.equal(corrupt_region(x, torch.zeros(3, 32, 32), kind, s, rows), x)
    full = corrupt_region(x, torch.ones(3, 32, 32), kind, s, rows)
    t = {"gray": lambda: gray(x), "blur": lambda: blur(x, s.sigma_for(32)),
         "patch_rotate": lambda: patch_rotate(x, s.patch_for(32), image_rngs(s.seed, rows))}[kind]()  # fmt: skip
    assert torch.equal(full, t) and not torch.equal(full, x)
    half = torch.zeros(3, 32, 32)
    half[:, :16] = 1
    out = corrupt_region(x, half, kind, s, rows)
    assert torch.equal(out[..., 16:, :], x[..., 16:, :]) and torch.equal(out[..., :16, :], t[..., :16, :])
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt_region(x, half, "jpeg", s, rows)


def test_rotations_depend_only_on_seed_and_row():
    x = _images()
    s = CorruptionSettings(seed=3)
    ones = torch.ones(3, 32, 32)
    a = corrupt_region(x, ones, "patch_rotate", s, [5, 9, 7])
    b = corrupt_region(x[1:2], ones[:1], "patch_rotate", s, [9])  # same image, same row, other batch
    assert torch.equal(a[1], b[0])
    assert torch.equal(a, corrupt_region(x, ones, "patch_rotate", s, [5, 9, 7]))
    assert not torch.equal(a, corrupt_region(x, ones, "patch_rotate", CorruptionSettings(seed=4), [5, 9, 7]))
    assert not torch.equal(a[0], corrupt_region(x[:1], ones[:1], "patch_rotate", s, [6])[0])


def test_spurious_regions_lose_their_core_overlap():
    nam = np.full((2, 4, 4), 0.8, np.float32)
    core = np.zeros((2, 4, 4), np.float32)
    core[0, :2] = 1.0
    core[1, :, :1] = 0.5
    m = region_masks(nam, "spurious", core)
    np.testing.assert_allclose(m, nam * (1 - core))
    assert (m[0, :2] == 0).all() and (m[0, 2:] == 0.8).all() and np.allclose(m[1, :, 0], 0.4)
    np.testing.assert_array_equal(region_masks(nam, "core", core), nam)
    np.testing.assert_array_equal(region_masks(nam, "unannotated", core), nam)


class _ImageSet:
    def __init__(self, images):
        self._images, self.image_size = images, images.shape[1]

    def images(self, rows):
        return self._images[np.asarray(rows)]


class _Subsets:
    """Two classes x two features; NAMs cover the left half, D(i, j) are 4-6 rows of class i."""

    def __init__(self, size):
        self.table = pd.DataFrame({"class": [0, 0, 1, 1], "class_name": ["a", "a", "b", "b"], "feature": [3, 7, 3, 5],
                                   "rank": [1, 2, 1, 2]})  # fmt: skip
        self.rows = {0: [0, 2, 4, 6], 1: [2, 6, 8], 2: [1, 3, 5, 7, 9], 3: [9, 11]}
        self.size = size

    def pair_table(self):
        return self.table

    def members(self, p):
        nam = np.zeros((len(self.rows[p]), self.size, self.size), np.float32)
        nam[..., : self.size // 2] = 1.0
        return {"row": np.array(self.rows[p]), "nam": nam}


class _CoreMasks:
    def __init__(self, size):  # class 0: rows 0 and 2 have a core mask on the whole image
        self.masks = {0: (np.array([0, 2]), np.ones((2, size, size), np.float32))}

    def get(self, kind, i):
        assert kind == "core"
        return self.masks.get(i, (np.zeros(0, np.int64), np.zeros((0, 1, 1), np.float32)))


def _table(seed=0):
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 2, 32, {"width": 4}).eval()
    images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    ann = pd.DataFrame({"class_index": [0, 0, 1], "feature_index": [3, 7, 3], "label": ["spurious", "core", "core"]})
    return corruption_table(model, "m", _ImageSet(images), _Subsets(32), ann, _CoreMasks(32),
                            CorruptionSettings(seed=seed), torch.device("cpu"), batch_size=3, progress=False)  # fmt: skip


def test_corruption_table_on_a_tiny_model():
    t = _table()
    assert len(t) == 4 * len(CORRUPTIONS)
    assert list(t.columns[:12]) == ["model", "class_index", "class_name", "feature_index", "feature_rank", "label",
                                    "corruption", "n", "acc_clean", "acc_corrupted", "delta", "sem"]  # fmt: skip
    assert t["acc_clean"].between(0, 1).all() and t["acc_corrupted"].between(0, 1).all()
    np.testing.assert_allclose(t["delta"], t["acc_corrupted"] - t["acc_clean"], atol=1e-12)
    assert list(t.groupby(["class_index", "feature_index"])["n"].first()) == [4, 3, 5, 2]
    labels = dict(zip(zip(t["class_index"], t["feature_index"]), t["label"]))
    assert labels == {(0, 3): "spurious", (0, 7): "core", (1, 3): "core", (1, 5): "unannotated"}
    # spurious (0, 3): rows 0 and 2 are all core, so only rows 4 and 6 get corrupted (half the image)
    area = t.loc[(t["class_index"] == 0) & (t["feature_index"] == 3), "mask_mean"].iloc[0]
    assert area == pytest.approx(0.25)
    assert _table().equals(t)  # same seed, same numbers


def test_sensitivity_correlation():
    t = _table()
    t["delta"] = np.linspace(-0.5, 0.2, len(t))  # a spread the tiny model may not give
    other = t.copy()
    other["model"] = "n"
    flat = t.copy()
    flat["delta"] = 0.0
    r = sensitivity_correlation({"m": t, "n": other, "flat": flat})
    assert set(r["corruption"]) == {"all", *CORRUPTIONS}
    same = r[(r["model_a"] == "m") & (r["model_b"] == "n")].set_index("corruption")
    assert np.allclose(same["pearson_r"], 1.0) and same.loc["all", "n"] == len(t)
    assert r.loc[r["model_b"] == "flat", "pearson_r"].isna().all()
    anti = other.copy()
    anti["delta"] = -anti["delta"]
    assert sensitivity_correlation({"m": t, "a": anti})["pearson_r"].iloc[0] == pytest.approx(-1.0)


def test_run_corruptions_end_to_end(tmp_path):
    from spurlab.discover.auto_annotate import run_annotations
    from spurlab.errors import SpurlabError
    from spurlab.io.tables import read_table, table_provenance
    from spurlab.measure.corruptions import run_corruptions
    from tests.conftest import AUTO_ANNOTATION, salient_stages

    d = tmp_path
    _, s = salient_stages(d, top_k=2, max_images=6, top_images=1)
    args = (d / "model", "m", d / "test.h5", d / "sub.h5", d / "ann.parquet", d / "masks.h5")
    run_corruptions(*args, tmp_path / "c.parquet", CorruptionSettings(), "cpu", progress=False)
    t = read_table(tmp_path / "c.parquet")
    assert len(t) == 2 * len(s.class_names) * len(CORRUPTIONS) and (tmp_path / "c.csv").exists()
    assert t["acc_corrupted"].between(0, 1).all() and set(t["label"]) <= {"spurious", "core"}
    prov = table_provenance(tmp_path / "c.parquet")
    assert prov["seed"] == 0 and prov["patch_px"] == 4 and prov["blur_sigma_px"] == 1.0
    run_corruptions(*args, tmp_path / "c2.parquet", CorruptionSettings(), "cpu", progress=False)
    assert (tmp_path / "c2.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()
    other = tmp_path / "ann2.parquet"
    run_annotations(tmp_path / "sub.h5", other, dict(AUTO_ANNOTATION, auto_threshold=0.9))
    with pytest.raises(SpurlabError, match="annotations"):  # masks made from other annotations
        run_corruptions(*args[:4], other, args[5], tmp_path / "c3.parquet", CorruptionSettings(), "cpu", progress=False)
