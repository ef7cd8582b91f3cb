"""Figure plumbing shared by every figure: the style, a figure without a display, atomic writing of PNG + PDF,
and :class:`Skip` for a figure whose data is missing."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class Skip(Exception):
    """A figure whose data is missing: skipped, with the reason noted in the report."""


@contextmanager
def style():
    name = "seaborn-v0_8-whitegrid"
    with matplotlib.style.context(name if name in matplotlib.style.available else "default"):
        yield


def figure(size):
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write(fig, stem: Path) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        final, tmp = stem.with_name(f"{stem.name}.{ext}"), stem.with_name(f"{stem.name}.tmp{os.getpid()}.{ext}")
        try:
            fig.savefig(tmp, format=ext, dpi=150)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(final)
    return paths
