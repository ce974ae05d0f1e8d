"""Figures of an evaluation: confusion matrix, per-class recall, attention shares over generation (paper Fig. 5).

Every function takes plain data (lists and dicts, as stored in ``metrics.json`` / ``attention.json``) and
returns a :class:`matplotlib.figure.Figure` built without pyplot, so it works headless, in worker processes and
in notebooks alike; :func:`save_figure` writes the PNG. Several models' attention curves can be drawn side by
side by passing one summary per model.

Example:
    >>> fig = plot_recall({"happy": 0.8, "sad": 0.5}, war=0.7, uar=0.65)
    >>> [text.get_text() for text in fig.axes[0].texts][:2]
    ['80.0', '50.0']
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

PART_COLOURS = {"visual": "#1f77b4", "audio": "#d62728", "text": "#7f7f7f"}
PART_NAMES = {"visual": "visual tokens", "audio": "audio tokens", "text": "generated text"}


def plot_confusion(
    counts: Sequence[Sequence[float]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Figure:
    """Heat map of a ``[C, C+1]`` count matrix (rows: truth, columns: prediction incl. ``unknown``).

    With ``normalize`` each row is divided by its total (cells show % of that class; a row without samples
    stays empty), and the raw count is printed under the percentage.
    """
    matrix = np.asarray(counts, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shown = np.divide(matrix, totals, out=np.full_like(matrix, np.nan), where=totals > 0) if normalize else matrix
    size = max(4.0, 0.75 * len(columns) + 2)
    fig = Figure(figsize=(size, size * len(rows) / len(columns) + 1))
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(shown), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "samples")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j] == 0:
                continue
            value = shown[i, j]
            text = f"{100 * value:.0f}%\n{int(matrix[i, j])}" if normalize else f"{int(matrix[i, j])}"
            dark = normalize and value > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.tight_layout()
    return fig


def plot_recall(
    recall: Mapping[str, float | None],
    *,
    war: float | None = None,
    uar: float | None = None,
    title: str = "Per-class recall",
) -> Figure:
    """Bars of per-class recall in %, with WAR and UAR as horizontal lines (missing classes left blank)."""
    labels = list(recall)
    values = [_percent(recall[label]) for label in labels]
    fig = Figure(figsize=(max(4.0, 0.8 * len(labels) + 2), 3.6))
    ax = fig.add_subplot()
    heights = [0.0 if math.isnan(v) else v for v in values]
    bars = ax.bar(labels, heights, color="#4c72b0")
    for bar, value in zip(bars, values):
        if not math.isnan(value):
            ax.text(bar.get_x() + bar.get_width() / 2, value + 1, f"{value:.1f}", ha="center", fontsize=8)
    for name, value, style in (("WAR", war, "--"), ("UAR", uar, ":")):
        if value is not None and not math.isnan(value):
            ax.axhline(100 * value, color="black", linestyle=style, linewidth=1, label=f"{name} {100 * value:.1f}")
    ax.set_ylim(0, 105)
    ax.set_ylabel("recall (%)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    if war is not None or uar is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # clear of the bars
    fig.tight_layout()
    return fig


def plot_attention(
    summaries: Mapping[str, Mapping[str, object]],
    *,
    groups: Sequence[str] | None = None,
    title: str = "Attention over generated tokens",
) -> Figure:
    """Share of attention on visual, audio and generated-text tokens over the normalised generation.

    Args:
        summaries: ``{model name: attention summary dict}`` (the content of ``attention.json``: ``curves``,
            ``counts``, ``drift``, ``layer``). One row of panels per model.
        groups: the MI groups to draw, one column each (default: every group but ``all`` when there are
            groups, else ``all``).
    """
    names = list(summaries)
    if not names:
        raise ValueError("plot_attention needs at least one attention summary")
    if groups is None:
        available = [g for g in summaries[names[0]]["curves"] if g != "all"]  # type: ignore[union-attr]
        groups = available or ["all"]
    fig = Figure(figsize=(4.2 * len(groups), 3.0 * len(names) + 0.6))
    axes = fig.subplots(len(names), len(groups), squeeze=False, sharey=True)
    for row, name in enumerate(names):
        summary = summaries[name]
        for column, group in enumerate(groups):
            ax = axes[row][column]
            curves = summary["curves"].get(group)  # type: ignore[union-attr]
            if curves is None:
                ax.set_axis_off()
                ax.set_title(f"{name}: no '{group}' samples", fontsize=9)
                continue
            for part in ("visual", "audio", "text"):
                values = np.asarray(curves[part], dtype=float)
                x = (np.arange(values.size) + 0.5) * 100 / values.size
                ax.plot(x, values, color=PART_COLOURS[part], label=PART_NAMES[part], linewidth=1.4)
            count = summary["counts"].get(group, 0)  # type: ignore[union-attr]
            drift_value = summary["drift"].get(group)  # type: ignore[union-attr]
            drift_text = "n/a" if drift_value is None else f"{drift_value:+.3f}"
            label = "all samples" if group == "all" else f"MI: {group}"
            ax.set_title(f"{name} | {label} (n={count}) | drift {drift_text}", fontsize=9)
            ax.set_xlim(0, 100)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if row == len(names) - 1:
                ax.set_xlabel("generation step (normalised to 100)")
            if column == 0:
                ax.set_ylabel(f"attention share (layer {summary.get('layer')})")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _percent(value: float | None) -> float:
    return float("nan") if value is None or math.isnan(value) else 100 * value
