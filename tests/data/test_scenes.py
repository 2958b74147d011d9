"""Scene textures: every scene renders in [0, 1] from the same randomness, per-row independence (a
row's image does not depend on its batch), the bilinear upsampling's oracle."""

import numpy as np
import pytest

from spurlab.data.scenes import GRAY, N_PARAMS, NOISE_RES, SCENES, render_scenes, smooth_noise


def inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, N_PARAMS)).astype(np.float32), rng.random((n, NOISE_RES, NOISE_RES)).astype(np.float32)


def test_every_scene_is_an_image_in_unit_range_and_they_differ():
    names = np.array(sorted(SCENES) + [GRAY])
    p, noise = inputs(len(names))
    out = render_scenes(names, p, noise, 32)
    assert out.shape == (len(names), 32, 32, 3) and out.dtype == np.float32
    assert (out >= 0).all() and (out <= 1).all()
    assert (out[-1] == 0.5).all()  # gray: BAM's X_og background
    means = {n: tuple(np.round(out[i].mean(axis=(0, 1)), 3)) for i, n in enumerate(names)}
    assert len(set(means.values())) == len(names)


def test_a_rows_image_does_not_depend_on_its_batch():
    names = np.array(["water", "bricks", "water", "sky"])
    p, noise = inputs(4)
    whole = render_scenes(names, p, noise, 24)
    for i in range(4):
        assert np.array_equal(render_scenes(names[i : i + 1], p[i : i + 1], noise[i : i + 1], 24)[0], whole[i])


def test_smooth_noise_oracle():
    field = np.arange(4, dtype=np.float32).reshape(1, 2, 2)  # [[0, 1], [2, 3]]
    up = smooth_noise(field, 4)
    assert up.shape == (1, 4, 4)
    # pixel centres at cell positions -0.25, 0.25, 0.75, 1.25: clamped at the borders
    assert up[0, 0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert up[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 1.5, 2.0])
    same = smooth_noise(np.random.default_rng(0).random((2, 16, 16)), 16)
    big = np.random.default_rng(0).random((2, 16, 16))
    assert np.allclose(same, big)  # same resolution: the field itself
    assert smooth_noise(big, 8, res=4).shape == (2, 8, 8)
