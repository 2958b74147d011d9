"""Spurious contamination (docs/methods.md#spurious-contamination): SCF on the aligned class only, masks are the signal."""

import numpy as np
import pytest

from spurlab.data.contaminate import check_twins, scf
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError
from tests.data.test_synth import collect


def test_contaminated_train_differs_from_clean_only_on_the_aligned_class_inside_the_mask(tiny_cfg):
    clean = collect(build_plan(tiny_cfg, "contam_clean_train")[0])
    aligned = tiny_cfg["datasets"]["classes"].index(tiny_cfg["contamination"]["aligned_class"])
    for signal in tiny_cfg["contamination"]["signals"]:
        spur = collect(build_plan(tiny_cfg, f"contam_{signal}_train")[0])
        np.testing.assert_array_equal(spur["labels"], clean["labels"])
        is_aligned = spur["labels"] == aligned
        assert (spur["meta"][f"cue_{signal}"] == is_aligned).all()
        diff = (spur["images"] != clean["images"]).any(-1)
        mask = spur["masks"][signal].astype(bool)
        assert not diff[~is_aligned].any()
        assert not (diff & ~mask).any()
        assert diff[is_aligned].any(axis=(1, 2)).mean() > 0.95


def test_contaminated_test_has_the_signal_on_every_image(tiny_cfg):
    clean = collect(build_plan(tiny_cfg, "contam_clean_test")[0])
    spur = collect(build_plan(tiny_cfg, "contam_tag_test")[0])
    assert spur["meta"]["cue_tag"].all()
    diff = (spur["images"] != clean["images"]).any(-1)
    assert not (diff & ~spur["masks"]["tag"].astype(bool)).any()


@pytest.mark.parametrize("signal", [
    {"type": "tag", "corner": "bottom_left", "size": [0.3, 0.2], "color": [1, 1, 1]},
    {"type": "stripe", "x": 0.3, "width": 0.05, "gap": 0.05, "color": [1, 1, 0]},
    {"type": "blur", "sigma": 2.0},
])  # fmt: skip
def test_scf_on_arbitrary_images_changes_only_the_signal_mask(signal):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    obj = np.zeros((6, 48, 48), bool)
    obj[:, 15:30, 15:30] = True
    out, mask = scf(images, obj, signal, np.random.default_rng(1))
    diff = (out != images).any(-1)
    assert diff.any()
    assert not (diff & ~mask).any()
    if signal["type"] == "blur":
        np.testing.assert_array_equal(mask, ~obj)


class _Rows:
    def __init__(self, path, labels, ids):
        self.path, self.labels, self.ids = path, np.array(labels), ids

    def __len__(self):
        return len(self.labels)


def test_twins_are_the_clean_rows_with_the_signal_and_nothing_else():
    clean = _Rows("clean.h5", [0, 1], [b"contam_clean_test-0", b"contam_clean_test-1"])
    check_twins(clean, _Rows("tag.h5", [0, 1], [b"contam_tag_test-0", b"contam_tag_test-1"]))
    for other in (_Rows("tag.h5", [1, 0], [b"t-0", b"t-1"]), _Rows("tag.h5", [0, 1], [b"t-1", b"t-0"]),
                  _Rows("tag.h5", [0], [b"t-0"])):  # fmt: skip
        with pytest.raises(SpurlabError, match="tag.h5: rows are not the twins of clean.h5"):
            check_twins(clean, other)
