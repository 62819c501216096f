"""Figures of the round report, as PNG bytes.

Figures are drawn with matplotlib's object API on an Agg canvas (no
``pyplot``, so no global figure state and no display needed), under a fixed
style, size and DPI, and saved without the ``Software`` text chunk: the same
data gives the same bytes with the same matplotlib and fonts.

Every figure shades the Landis & Koch bands (:data:`hiericd_core.report.LANDIS_KOCH`)
behind kappa, so that a coding lead reads "substantial" without a legend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from hiericd_core.report import LANDIS_KOCH

DPI = 100
STYLE = {  # independent of the user's matplotlibrc
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "hiericd",
}
BAND_COLOURS = ("#f4c7c3", "#fbe0c3", "#fdf1c4", "#fff9d6", "#dcefd7", "#c3e6c0")  # poor … almost perfect
KAPPA_CMAP = LinearSegmentedColormap.from_list("kappa", ["#d7301f", "#fdcc8a", "#ffffbf", "#a6d96a", "#1a9641"])
MISSING = "#eeeeee"


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, without the Software chunk (same data, same bytes)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _bands(ax, axis: str, low: float) -> None:
    """Shade the Landis & Koch bands from ``low`` up to 1 along ``axis`` ("x" or "y")."""
    for (start, end, _), colour in zip(LANDIS_KOCH, BAND_COLOURS, strict=True):
        start = max(start, low)
        if end <= start:
            continue
        span = ax.axvspan if axis == "x" else ax.axhspan
        span(start, end, color=colour, zorder=0, lw=0)


def _band_labels(ax, axis: str, low: float) -> None:
    for start, end, name in LANDIS_KOCH:
        start = max(start, low)
        if end - start < 0.1:
            continue
        middle = (start + end) / 2
        if axis == "x":
            ax.text(middle, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="#555555")
        else:
            ax.text(1.0, middle, f" {name}", transform=ax.get_yaxis_transform(), ha="left", va="center",
                    fontsize=8, color="#555555")


def kappa_heatmap(names: Sequence[str], kappa: Sequence[Sequence[float | None]],
                  reports: Sequence[Sequence[int]]) -> bytes:
    """Coder × coder matrix of kappa, each cell with its value and the reports both coded.

    Args:
        names: row and column names (coders, then the senior).
        kappa: square matrix, ``None`` where two people share no report or kappa is undefined.
        reports: square matrix of reports both coded.
    """
    n = len(names)
    size = 1.6 + 1.15 * n
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(size + 1.4, size), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        grid = [[math.nan if v is None else v for v in row] for row in kappa]
        image = ax.imshow(grid, cmap=KAPPA_CMAP, vmin=0.0, vmax=1.0)
        ax.set_facecolor(MISSING)
        for i in range(n):
            for j in range(n):
                if i == j:
                    text = "—"
                elif kappa[i][j] is None:
                    text = "no shared\nreports" if not reports[i][j] else "undefined"
                else:
                    text = f"{kappa[i][j]:.2f}\n{reports[i][j]:,} reports"
                ax.text(j, i, text, ha="center", va="center", fontsize=11)
        ax.set_xticks(range(n), names, rotation=30, ha="right")
        ax.set_yticks(range(n), names)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_ticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        bar.set_label("kappa (report × code)")
        return png_bytes(fig)


def per_code_kappa(rows: Sequence[dict], threshold: float) -> bytes:
    """The given per-code kappas (lowest first, top to bottom) with their 95% intervals.

    Args:
        rows: dicts with ``label`` (code and short description), ``kappa`` and
            ``ci95`` (``[lo, hi]`` or ``None``).
        threshold: the kappa below which a code is flagged (a dashed line).
    """
    labels = [r["label"] for r in rows]
    values = [r["kappa"] for r in rows]
    low = min(0.0, *(r["ci95"][0] for r in rows if r["ci95"]), *values) - 0.05
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.0, 1.2 + 0.32 * len(rows)), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        _bands(ax, "x", low)
        y = list(range(len(rows)))
        for i, r in enumerate(rows):
            if r["ci95"]:
                ax.plot(r["ci95"], [i, i], color="#333333", lw=1.2, zorder=2)
        ax.scatter(values, y, color="#1f4e79", s=28, zorder=3)
        ax.axvline(threshold, color="#b30000", ls="--", lw=1, zorder=2)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(low, 1.02)
        ax.set_xlabel(f"kappa with 95% interval (dashed: threshold {threshold:g})")
        _band_labels(ax, "x", low)
        return png_bytes(fig)


def trend(rounds: Sequence[str], series: dict[str, Sequence[float | None]], threshold: float) -> bytes:
    """Headline figures per round, oldest first.

    Args:
        rounds: round ids on the x axis.
        series: name → one value per round (``None``: not measured that round).
        threshold: the kappa below which a round is flagged (a dashed line).
    """
    values = [v for s in series.values() for v in s if v is not None]
    low = min(0.0, *values) - 0.05
    markers = ("o", "s", "^", "D")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.0, 3.8), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        _bands(ax, "y", low)
        x = list(range(len(rounds)))
        for k, (name, points) in enumerate(series.items()):
            shown = [(i, v) for i, v in zip(x, points, strict=True) if v is not None]
            if shown:  # later series smaller and on top, so that equal values stay visible
                ax.plot([i for i, _ in shown], [v for _, v in shown], marker=markers[k % len(markers)],
                        markersize=10 - 2.5 * k, lw=2.4 - 0.7 * k, label=name, zorder=3 + k)
        ax.axhline(threshold, color="#b30000", ls="--", lw=1, zorder=2)
        ax.set_xticks(x, rounds, rotation=30 if len(rounds) > 4 else 0, ha="right" if len(rounds) > 4 else "center")
        ax.set_xlim(-0.5, len(rounds) - 0.5)
        ax.set_ylim(low, 1.02)
        ax.set_ylabel("kappa / alpha (report × code)")
        ax.legend(loc="lower left", fontsize=8, frameon=True)
        _band_labels(ax, "y", low)
        return png_bytes(fig)


def adjudication(kinds: Sequence[str], outcomes: Sequence[str], counts: Sequence[Sequence[int]]) -> bytes:
    """Disputed regions by kind (one bar each), split by what the senior decided.

    Args:
        kinds: bar labels.
        outcomes: segment labels, in stacking order.
        counts: ``counts[i][j]`` regions of kind ``i`` with outcome ``j``.
    """
    colours = ("#1a9641", "#9e9e9e", "#e66101")  # kept, dropped, pending
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.0, 0.9 + 0.75 * len(kinds)), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        total = max((sum(row) for row in counts), default=0) or 1
        left = [0] * len(kinds)
        for j, outcome in enumerate(outcomes):
            widths = [row[j] for row in counts]
            bars = ax.barh(range(len(kinds)), widths, left=left, color=colours[j % len(colours)], label=outcome)
            for bar, width in zip(bars, widths, strict=True):
                if width and width / total > 0.04:
                    ax.text(bar.get_x() + width / 2, bar.get_y() + bar.get_height() / 2, f"{width:,}",
                            ha="center", va="center", color="white", fontsize=9, fontweight="bold")
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(range(len(kinds)), kinds)
        ax.set_xlim(0, total * 1.02)
        ax.set_ylim(len(kinds) - 0.5, -0.5)
        ax.set_xlabel("disputed regions")
        ax.legend(loc="lower right", ncols=len(outcomes), fontsize=8, bbox_to_anchor=(1.0, 1.0), frameon=False)
        return png_bytes(fig)
