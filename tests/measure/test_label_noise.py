"""Label-noise candidates of negative-gap classes (Moayeri et al. sec. 4.4)."""

import numpy as np
import pandas as pd

from spurlab.measure.label_noise import candidates, cue_removed, negative_gap_classes


def test_negative_gap_classes_average_over_models():
    gaps = pd.DataFrame({"model": ["a", "b"] * 3, "class_index": [0, 0, 1, 1, 2, 2],
                         "gap": [0.3, 0.1, -0.4, 0.1, 0.2, -0.3]})  # fmt: skip
    assert negative_gap_classes(gaps) == [1, 2]


def test_candidates_are_the_highest_ranked_of_the_set_and_classes():
    r = pd.DataFrame({"set": ["train"] * 6 + ["val"], "row": [0, 1, 2, 3, 4, 5, 0], "class_index": [1, 1, 1, 2, 2, 1, 1],
                      "rank": [2, 0, 1, 0, -1, 3, 0]})  # fmt: skip
    c = candidates(r, "train", [1, 2], 2)
    assert c["row"].tolist() == [1, 2, 3] and c["rank"].tolist() == [0, 1, 0]


def test_cue_removed_is_the_cue_fraction_outside_the_box():
    m = np.zeros((2, 8, 8), bool)
    m[0, 0:2, 0:2] = True  # 4 pixels in the top-left corner
    boxes = np.array([[1, 1, 8, 8], [0, 0, 8, 8]])
    out = cue_removed(m, boxes)
    assert out[0] == 0.75 and np.isnan(out[1])
