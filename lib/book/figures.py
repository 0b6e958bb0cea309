"""Figures that know where they came from.

:func:`save` writes a matplotlib figure as ``_build/figures/<chapter>/<figure id>.png`` and ``.pdf``
next to ``<figure id>.csv`` (the plotted data) and ``<figure id>.json``, a provenance record (chapter,
figure id, caption, the parameters of the studies it draws on, profile, device, seed, git commit,
library versions, file hashes), and glues it into the notebook under the key
``<figure id>`` so that the chapter's ``{glue:figure}`` directive numbers and captions it.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..plots import style
from . import paths, provenance

FIG_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def validate_id(fig_id: str) -> str:
    if not FIG_ID.match(fig_id):
        raise ValueError(
            f"figure id {fig_id!r}: use lower-case letters, digits and '-' (a stable file name)"
        )
    return fig_id


@dataclass(frozen=True)
class OnPage:
    """How a figure looks in the page column: its PNG as the page gets it (``width_px`` x
    ``height_px`` at :data:`lib.plots.style.SCREEN_DPI`), the factor the column scales it by (1 when
    it fits), and its smallest text as shown, in pixels, with that text."""

    width_px: int
    height_px: int
    scale: float
    min_font_px: float
    smallest: str

    @property
    def fits(self) -> bool:
        """Shown unscaled (no wider than the column) with no text under :data:`style.MIN_FONT_PX`."""
        return self.width_px <= style.COLUMN_PX and self.min_font_px >= style.MIN_FONT_PX


def measure(fig, *, column_px: int = style.COLUMN_PX, dpi: float = style.SCREEN_DPI) -> OnPage:
    """Render ``fig`` as the page gets it (PNG, tight bounding box, ``dpi``) and measure it at column
    width: the displayed width is ``min(width, column_px)``, so text of ``s`` points shows as
    ``s * dpi / 72 * scale`` pixels. Every piece of text that is drawn counts (tick labels, legends,
    titles, annotations, colour-bar labels; mathtext at its nominal size)."""
    from matplotlib.backends.backend_agg import RendererAgg

    drawn: list[tuple[float, str]] = []
    original = RendererAgg.draw_text

    def spy(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if s.strip():
            drawn.append((float(prop.get_size_in_points()), s))
        return original(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    RendererAgg.draw_text = spy
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        RendererAgg.draw_text = original
    width, height = struct.unpack(">II", buf.getvalue()[16:24])  # the PNG header's IHDR
    scale = min(1.0, column_px / width)
    size, text = min(drawn) if drawn else (float("inf"), "")
    return OnPage(width, height, scale, size * dpi / 72 * scale, text)


def plotted_data(fig) -> str:
    """The data a figure draws, as CSV (``panel, series, kind, x, y``): every line's points, every
    scatter's offsets, every bar's position and height, every heat-map cell (column index, value)
    and every mesh cell (flat index, value), with the series' legend label; text is left out. For readers who want the numbers behind a figure without rerunning it."""
    import csv

    import numpy as np
    from matplotlib.collections import PathCollection, QuadMesh
    from matplotlib.patches import Rectangle

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["panel", "series", "kind", "x", "y"])
    for i, ax in enumerate(fig.axes):
        panel = ax.get_title() or f"panel {i + 1}"
        for j, line in enumerate(ax.get_lines()):
            label = line.get_label()
            label = label if not label.startswith("_") else f"line {j + 1}"
            for x, y in zip(*(list(map(float, a)) for a in line.get_data())):
                w.writerow([panel, label, "line", repr(x), repr(y)])
        for j, coll in enumerate(c for c in ax.collections if isinstance(c, PathCollection)):
            label = coll.get_label()
            label = label if not label.startswith("_") else f"points {j + 1}"
            for x, y in coll.get_offsets():
                w.writerow([panel, label, "points", repr(float(x)), repr(float(y))])
        for j, im in enumerate(ax.images):  # a heat map: one row per cell, the value as y
            label = im.get_label()
            label = label if not label.startswith("_") else f"image {j + 1}"
            arr = np.asarray(im.get_array(), dtype=float)
            if arr.ndim == 2:
                for (r, c), v in np.ndenumerate(arr):
                    w.writerow([panel, f"{label} row {r}", "image", repr(float(c)), repr(float(v))])
        for j, mesh in enumerate(c for c in ax.collections if isinstance(c, QuadMesh)):
            for k, v in enumerate(np.asarray(mesh.get_array(), dtype=float).ravel()):
                w.writerow([panel, f"mesh {j + 1}", "mesh cell", repr(float(k)), repr(float(v))])
        for patch in (p for p in ax.patches if isinstance(p, Rectangle)):
            label = patch.get_label()
            label = label if not label.startswith("_") else "bars"
            w.writerow([panel, label, "bar", repr(float(patch.get_x() + patch.get_width() / 2)),
                        repr(float(patch.get_height()))])
    return buf.getvalue()


def _render(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue()


def save(
    fig,
    stem: str,
    fig_id: str,
    *,
    caption: str,
    alt: str,
    meta: dict[str, Any],
    directory: Path | None = None,
    glue: bool = True,
) -> dict[str, Any]:
    """Save ``fig`` as PNG + PDF + provenance JSON under a stable name and glue it as ``fig_id``.

    Returns the provenance record. The figure is closed afterwards so that it is shown only where
    the chapter's ``{glue:figure}`` directive places it.
    """
    import matplotlib.pyplot as plt

    validate_id(fig_id)
    if not caption or not alt:
        raise ValueError(f"figure {fig_id!r} needs a caption and alt text")
    on_page = measure(fig)
    out = Path(directory or paths.figures_dir() / stem)
    files = {}
    for fmt in ("png", "pdf"):
        data = _render(fig, fmt)
        path = out / f"{fig_id}.{fmt}"
        paths.atomic_write_bytes(path, data)
        files[fmt] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
    data = plotted_data(fig).encode()
    paths.atomic_write_bytes(out / f"{fig_id}.csv", data)
    files["csv"] = {"file": f"{fig_id}.csv", "sha256": hashlib.sha256(data).hexdigest()}
    record = {
        "chapter": stem,
        "figure": fig_id,
        "caption": caption,
        "alt": alt,
        **meta,
        "files": files,
        "on_page": {**asdict(on_page), "column_px": style.COLUMN_PX, "fits": on_page.fits},
        "regenerate": f"python -m lib run {stem} --profile {meta.get('profile', 'fast')}",
        "libraries": provenance.library_versions(),
    }
    paths.atomic_write_json(out / f"{fig_id}.json", record)
    if glue:
        try:
            from myst_nb import glue as _glue

            _glue(fig_id, fig, display=False)
        except ImportError:  # plain Python, no notebook machinery: files are enough
            pass
    plt.close(fig)
    return record
