"""The measure stages' figures: each draws a PNG (and the same bytes again), sized by its rows."""

import numpy as np
import pandas as pd
from PIL import Image

from spurlab.measure.figures import crop_sheet, feature_grid, gap_figure, noise_curves, tuning_figure


def size(path):
    with Image.open(path) as im:
        return im.size


def noise_table(model):
    return pd.DataFrame([{"model": model, "class_index": c, "feature_index": -1, "measure": m, "sigma": s,
                          "acc": 0.9 - s * (c + 1)} for c in (0, 1) for m in ("core_acc", "spurious_acc")
                         for s in (0.0, 0.25)])  # fmt: skip


def test_every_figure_is_a_png_with_the_same_bytes_twice(tmp_path):
    rng = np.random.default_rng(0)
    suite = pd.DataFrame({"model": ["a", "b", "c"], "acc_high": [0.9, 0.8, 0.85], "acc_low": [0.7, 0.75, 0.6]})
    gaps = pd.DataFrame({"model": ["a", "a", "b", "b", "c", "c"], "class_name": ["x", "y"] * 3,
                         "gap": rng.normal(0, 0.1, 6)})  # fmt: skip
    tuning = {"a": {"random": {"gap_before": 0.2, "acc_before": 0.8, "gap_after": 0.1, "acc_after": 0.78}}}
    heat = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    grid = [{"class_name": c, "feature": f, "rank": r, "label": lab, "heatmap": heat, "truth": t}
            for c in ("x", "y") for f, r, lab, t in ((3, 1, "spurious", "cue"), (5, 2, "core", None))]  # fmt: skip
    draws = {
        "noise": lambda out: noise_curves({"m": noise_table("m"), "n": noise_table("n")}, [0, 1], {}, out),
        "gap": lambda out: gap_figure(suite, gaps, out, svg=out.with_suffix(".svg")),
        "tuning": lambda out: tuning_figure(tuning, out),
        "grid": lambda out: feature_grid(grid, out),
        "crops": lambda out: crop_sheet(
            [("x", np.stack([heat, heat]), np.stack([heat[:4]] * 2), [(0, 0, 4, 4), (1, 1, 5, 5)])], out
        ),
        "no_crops": lambda out: crop_sheet([], out),
    }
    for name, draw in draws.items():
        for run in (1, 2):
            draw(tmp_path / f"{name}{run}.png")
        one, two = (tmp_path / f"{name}{run}.png" for run in (1, 2))
        assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and one.read_bytes() == two.read_bytes(), name
    assert (tmp_path / "gap1.svg").read_bytes() == (tmp_path / "gap2.svg").read_bytes()
    assert size(tmp_path / "noise1.png")[0] > size(tmp_path / "tuning1.png")[0] / 2  # two model panels


def test_feature_grid_has_a_row_per_class_and_a_column_per_rank(tmp_path):
    heat = np.zeros((8, 8, 3), np.uint8)
    row = {"feature": 1, "label": "core", "heatmap": heat, "truth": ""}
    feature_grid([{**row, "class_name": "x", "rank": 1}], tmp_path / "one.png")
    feature_grid([{**row, "class_name": c, "rank": r} for c in "xyz" for r in (1, 2)], tmp_path / "six.png")
    (w1, h1), (w6, h6) = size(tmp_path / "one.png"), size(tmp_path / "six.png")
    assert 1.5 * w1 < w6 < 2.5 * w1 and 2.5 * h1 < h6 < 3.5 * h1  # figsize: 1.5 per rank, 1.55 per class
