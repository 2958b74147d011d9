"""Groups (class x cue on/off) and worst-group accuracy (docs/methods.md#groups-and-worst-group-accuracy)."""

import numpy as np
import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.measure.groups import (
    counterfactual_cue_on,
    group_accuracy,
    group_ids,
    group_summary,
    own_cue_flags,
    worst_group,
    worst_group_accuracy,
)

NAMES = ["disk", "square", "star"]


def _hand_made():
    """Per group (class, cue): images and how many are right, chosen by hand."""
    spec = {(0, True): (4, 4), (0, False): (4, 1), (1, True): (5, 3), (1, False): (5, 5), (2, False): (2, 1)}
    labels, cue, correct = [], [], []
    for (c, on), (n, right) in spec.items():
        labels += [c] * n
        cue += [on] * n
        correct += [True] * right + [False] * (n - right)
    labels += [-1, -1]  # unlabelled rows belong to no group
    cue += [True, False]
    correct += [False, False]
    return np.array(correct), np.array(labels), np.array(cue)


def test_group_accuracy_and_worst_group_match_the_hand_count():
    correct, labels, cue = _hand_made()
    t = group_accuracy(correct, labels, cue, NAMES)
    assert list(zip(t["class_name"], t["cue_on"], t["n"])) == [
        ("disk", False, 4),
        ("disk", True, 4),
        ("square", False, 5),
        ("square", True, 5),
        ("star", False, 2),
    ]
    np.testing.assert_allclose(t["acc"], [0.25, 1.0, 1.0, 0.6, 0.5])
    w = worst_group(t)
    assert w == {
        "worst_group_acc": 0.25,
        "worst_group": "disk/cue_off",
        "mean_group_acc": pytest.approx((0.25 + 1 + 1 + 0.6 + 0.5) / 5),
        "n_groups": 5,
    }
    # the same minimum from group ids; the mean over images (0.7) is not the mean over groups (0.67)
    assert worst_group_accuracy(correct, group_ids(labels, cue)) == 0.25
    assert correct[labels >= 0].mean() != pytest.approx(w["mean_group_acc"])


def test_group_summary_nests_accuracy_by_class_and_cue():
    correct, labels, cue = _hand_made()
    s = group_summary(correct, labels, cue, NAMES)
    assert s["group_acc"] == {
        "disk": {"cue_off": 0.25, "cue_on": 1.0},
        "square": {"cue_off": 1.0, "cue_on": 0.6},
        "star": {"cue_off": 0.5},
    }
    assert s["worst_group"] == "disk/cue_off" and s["n_groups"] == 5


def test_ties_go_to_the_first_group_and_no_group_is_an_error():
    t = group_accuracy(np.array([1, 0, 1, 0], bool), np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0], bool), NAMES)
    assert worst_group(t)["worst_group"] == "disk/cue_off"
    with pytest.raises(SpurlabError, match="no group"):
        worst_group(group_accuracy(np.array([True]), np.array([-1]), np.array([True]), NAMES))
    with pytest.raises(SpurlabError, match="no group"):
        worst_group_accuracy(np.array([True]), np.array([-1]))


class FakeSet:
    """The parts of an ImageSet that groups read: attrs (the generator's config), meta columns."""

    def __init__(self, meta: dict, cue_table=None, control=None, kind="packed"):
        self.path, self.kind, self.class_names = "fake.h5", kind, NAMES
        self._meta = pd.DataFrame(meta)
        self.attrs = {"config": {"datasets": {"cue_table": cue_table or {}, "counterfactual_control_cue": control}}}

    @property
    def meta_columns(self):
        return list(self._meta.columns)

    def meta(self, columns):
        return self._meta[columns]


def test_own_cue_flags_read_each_class_its_own_cue():
    table = {"disk": {"cue": "water_bg"}, "square": {"cue": "tag"}}
    meta = {"cue_water_bg": [1, 1, 0, 0, 1], "cue_tag": [0, 1, 1, 0, 1], "cue_decoy": [1, 1, 1, 0, 0]}
    labels = np.array([0, 1, 1, 2, -1])
    flags = own_cue_flags(FakeSet(meta, table, control="decoy"), labels)
    # disk: water; square: its tag, not disk's water; star (control): the control cue; unlabelled: off
    assert flags.tolist() == [True, True, True, False, False]
    assert own_cue_flags(FakeSet(meta, table), labels).tolist() == [True, True, True, False, False]
    no_control = own_cue_flags(FakeSet(meta, table, control=None), np.array([2, 2]))
    assert no_control.tolist() == [False, False]
    with pytest.raises(SpurlabError, match="no planted cues"):
        own_cue_flags(FakeSet(meta, table, kind="index"), labels)
    with pytest.raises(SpurlabError, match="'cue_tag' missing"):
        own_cue_flags(FakeSet({"cue_water_bg": [1] * 5}, table), labels)


def test_counterfactual_rows_must_alternate():
    assert counterfactual_cue_on(FakeSet({"cue_on": [1, 0, 1, 0]})).tolist() == [True, False, True, False]
    for bad in ([1, 1, 0, 0], [0, 1], [1, 0, 1]):
        with pytest.raises(SpurlabError, match="alternate"):
            counterfactual_cue_on(FakeSet({"cue_on": bad}))
    with pytest.raises(SpurlabError, match="not a counterfactual set"):
        counterfactual_cue_on(FakeSet({"cue_x": [1, 0]}))
