"""One look for every figure of the book: a colour-blind-safe palette and matplotlib settings.

The palette is Paul Tol's "bright" qualitative scheme (distinguishable under the common forms of
colour blindness); sequential data use ``viridis``/``cividis``. Chapters call :func:`apply` once
(through :func:`lib.chapter.start`) and pick colours from :data:`COLORS` by name.
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

#: Paul Tol's bright scheme.
PALETTE = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"]
COLORS = dict(zip(["blue", "red", "green", "yellow", "cyan", "purple", "grey"], PALETTE))
SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]

RC = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "image.cmap": SEQUENTIAL,
    "axes.prop_cycle": cycler(color=PALETTE),
    # deterministic files: no creation dates in PDF/PNG metadata
    "pdf.compression": 6,
    "svg.hashsalt": "implicit-bias-book",
}


def apply() -> None:
    """Set the book's matplotlib style (idempotent)."""
    mpl.rcParams.update(RC)
