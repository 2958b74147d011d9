"""The datasets stage's summary: per set size, hash, class counts and observed cue rates (checked
against the file's own metadata), the planted rates, a set given twice refused."""

import numpy as np
import pytest

from spurlab.data.imagesets import ImageSet
from spurlab.data.summary import cue_rates, datasets_summary
from spurlab.data.synth import World
from spurlab.errors import SpurlabError
from tests.conftest import render_sets, small


@pytest.fixture
def sets(tiny_cfg, tmp_path):
    cfg = small(tiny_cfg, train=16, test=24, cue_only=12)
    return cfg, render_sets(cfg, ["test", "cue_only"], tmp_path)


def test_cue_rates_are_the_metadata_means_per_class(sets):
    _, paths = sets
    with ImageSet(paths["test"]) as s:
        rates = cue_rates(s)
        cues = [c for c in s.meta_columns if c.startswith("cue_") and c != "cue_on"]
        meta = s.meta(cues)
        assert set(rates) == {s.class_names[c] for c in np.unique(s.labels)}
        for c in np.unique(s.labels):
            want = {col[4:]: meta[col].to_numpy()[s.labels == c].mean() for col in cues}
            assert rates[s.class_names[c]] == pytest.approx(want, abs=1e-6)
    with ImageSet(paths["cue_only"]) as s:
        assert set(cue_rates(s)) == {"(no object)"}


def test_summary_of_two_sets(sets):
    cfg, paths = sets
    out = datasets_summary(cfg, [paths["test"], paths["cue_only"]], threads=1)
    assert set(out["sets"]) == {"test", "cue_only"}
    with ImageSet(paths["test"]) as s:
        e = out["sets"]["test"]
        assert (e["n_images"], e["sha256"], e["image_size"]) == (len(s), s.sha256, s.image_size)
        assert sum(e["class_counts"].values()) == len(s) == 24
    assert out["sets"]["cue_only"]["class_counts"] == {"(no object)": 12}
    world = World.from_config(cfg["datasets"])
    assert out["planted_cue_rates"][world.classes[0]] == {
        q: float(world.prob[0, j]) for j, q in enumerate(world.cue_names)
    }
    assert out["images_per_second"] > 0 and out["images_per_second_threads"]["threads"] == 1


def test_a_set_given_twice_is_refused(sets):
    cfg, paths = sets
    with pytest.raises(SpurlabError, match="set 'test' given twice"):
        datasets_summary(cfg, [paths["test"], paths["test"]])
