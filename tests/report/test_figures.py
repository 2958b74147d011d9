"""Report figures: PNG + SVG from stage tables, the same bytes on a rerun, one-line errors."""

import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.report.figures import make_report_figure


def test_figures_come_as_png_and_svg_and_are_deterministic(tmp_path):
    corr = pd.DataFrame({"model_a": ["a", "a", "b"], "model_b": ["b", "c", "c"], "pearson_r": [0.5, -0.2, 0.9],
                         "n_classes": 8})  # fmt: skip
    corr.to_parquet(tmp_path / "corr.parquet")
    spufix = pd.DataFrame({"model": ["a", "b"], "acc_before": [0.9, 0.8], "acc_after": [0.88, 0.79],
                           "cue_only_auc_before": [0.7, 0.6], "cue_only_auc_after": [0.8, 0.65]})  # fmt: skip
    spufix.to_parquet(tmp_path / "spufix.parquet")
    for name, inputs in (("gap_correlations", {"correlations": [tmp_path / "corr.parquet"]}),
                         ("spufix", {"models": [tmp_path / "spufix.parquet"]})):  # fmt: skip
        outs = []
        for run in (1, 2):
            png, svg = tmp_path / f"{name}{run}.png", tmp_path / f"{name}{run}.svg"
            make_report_figure(name, inputs, png, svg)
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
            outs.append((png.read_bytes(), svg.read_bytes()))
        assert outs[0] == outs[1], name


def test_unknown_figure_and_missing_input_fail_in_one_line(tmp_path):
    with pytest.raises(SpurlabError, match="unknown"):
        make_report_figure("nope", {}, tmp_path / "x.png", tmp_path / "x.svg")
    with pytest.raises(SpurlabError, match="--input correlations=PATH"):
        make_report_figure("gap_correlations", {}, tmp_path / "x.png", tmp_path / "x.svg")
    assert not list(tmp_path.iterdir())
