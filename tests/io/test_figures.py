"""Figure files: a PNG and an SVG beside it, with the same bytes for the same figure (no date, no
software version, fixed SVG ids), the figure closed, nothing left on a failed write."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from spurlab.io.figures import save_figure  # noqa: E402


def figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [1, 0, 1], label="a")
    ax.legend()
    return fig


def test_same_figure_same_bytes_and_closed(tmp_path):
    for d in ("one", "two"):
        fig = figure()
        save_figure(fig, tmp_path / d / "f.png", svg=tmp_path / d / "f.svg")
        assert not plt.fignum_exists(fig.number)
    for name in ("f.png", "f.svg"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    png, svg = (tmp_path / "one" / "f.png").read_bytes(), (tmp_path / "one" / "f.svg").read_text()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in png
    assert "<svg" in svg and "<dc:date>" not in svg and "Matplotlib v" not in svg


def test_png_only_and_a_failed_write_leaves_nothing(tmp_path):
    save_figure(figure(), tmp_path / "p.png")
    assert os.listdir(tmp_path) == ["p.png"]
    fig = figure()
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "q.png", dpi=-1)
    assert os.listdir(tmp_path) == ["p.png"]
    plt.close(fig)
