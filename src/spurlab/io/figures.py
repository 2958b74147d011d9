"""Figure files: PNG, and SVG beside it, with the same bytes for the same figure."""

from __future__ import annotations

from .files import atomic_path


def save_figure(fig, out, svg=None, dpi: int = 110) -> None:
    """PNG at `out` and, with `svg`, the same figure as SVG; both written atomically, with no date or
    software version inside, so the same figure gives the same bytes. Closes `fig`."""
    import matplotlib.pyplot as plt

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    if svg is not None:
        # a fixed id salt: SVG element ids are random otherwise
        with atomic_path(svg) as tmp, matplotlib_rc({"svg.hashsalt": "spurlab"}):
            fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def matplotlib_rc(params: dict):
    import matplotlib

    return matplotlib.rc_context(params)
