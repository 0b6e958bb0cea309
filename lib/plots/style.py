"""One look for every figure of the book: a colour-blind-safe palette and matplotlib settings.

The palette is Paul Tol's "bright" qualitative scheme (distinguishable under the common forms of
colour blindness); sequential data use ``viridis``/``cividis``. Chapters call :func:`apply` once
(through :func:`lib.chapter.start`) and pick colours from :data:`COLORS` by name.

Sizes are chosen for the page column. The book's theme (sphinx-book-theme 1.3) shows a figure at
most :data:`COLUMN_PX` pixels wide in a 1400-px window (measured in Chromium on the built site), and
a chapter's figure reaches the page as a PNG at :data:`SCREEN_DPI` (the inline backend draws at
``figure.dpi``). A figure at most :data:`COLUMN_IN` inches wide is therefore shown unscaled, one
point of text being :data:`SCREEN_DPI`/72 pixels: 9-10 pt text reads as 12.5-14 px, next to the
16-px body text. Figures are :data:`FULL` (two panels side by side) or :data:`SINGLE` wide; more
panels go on a second row. Panels are labelled "(a)", "(b)", ... in their upper left corner
(:func:`panel_labels`), legends sit beside or below the data (:func:`legend_below`,
:func:`legend_right`), never on it. ``tests/test_figures_column.py`` renders every figure and checks
its width and smallest text (:func:`lib.book.figures.measure`).
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

#: width in pixels of a figure shown in the theme's page column at a 1400-px window
COLUMN_PX = 768
#: pixels per inch of the figures on the page (``figure.dpi``: the inline backend's PNG resolution)
SCREEN_DPI = 100
#: the column in inches: a figure no wider is shown at its natural size
COLUMN_IN = COLUMN_PX / SCREEN_DPI
#: figure widths (inches): a little under the column, so that the cropped PNG still fits it
FULL = 7.5
SINGLE = 5.6
#: the smallest text allowed, in points and in pixels on the page (8 pt at 100 dpi = 11.1 px)
MIN_FONT_PT = 8.0
MIN_FONT_PX = MIN_FONT_PT * SCREEN_DPI / 72 - 0.05

RC = {
    "figure.figsize": (SINGLE, 3.6),
    "figure.dpi": SCREEN_DPI,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.handlelength": 2.4,
    "figure.titlesize": 10,
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


def panel_labels(axes, start: int = 0, *, x: float = -0.02, y: float = 1.02) -> None:
    """Label panels "(a)", "(b)", ... in bold at their upper left corner, just above the axes (the
    book's one convention; captions refer to the panels by these letters)."""
    for k, ax in enumerate(axes):
        ax.text(x, y, f"({chr(ord('a') + start + k)})", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=10, fontweight="bold")


def legend_below(fig, axes=None, *, ncol: int = 2, handles=None, labels=None):
    """One legend for the figure, centred under its panels (constrained layout makes room for it).
    ``axes``: where to collect the entries (default: every panel, each label once)."""
    if handles is None:
        handles, labels, seen = [], [], set()
        for ax in axes if axes is not None else fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in seen:
                    seen.add(lab)
                    handles.append(h)
                    labels.append(lab)
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol)


def legend_right(ax, **kw):
    """The panel's legend just right of its axes, top aligned (outside the data)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)
