"""The evaluation figures render headless from plain data and write real PNG files."""

from __future__ import annotations

import doctest

import pytest

import src.analysis.plots
from src.analysis.plots import plot_attention, plot_confusion, plot_recall, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_doctests() -> None:
    assert doctest.testmod(src.analysis.plots).failed == 0


def test_confusion_cells_show_row_shares_and_counts(tmp_path) -> None:
    counts = [[3, 1, 0], [0, 0, 0]]  # class "b" has no sample: its row stays blank
    fig = plot_confusion(counts, ["a", "b"], ["a", "b", "unknown"])
    texts = sorted(text.get_text() for text in fig.axes[0].texts)
    assert texts == ["25%\n1", "75%\n3"]
    raw = plot_confusion(counts, ["a", "b"], ["a", "b", "unknown"], normalize=False)
    assert sorted(text.get_text() for text in raw.axes[0].texts) == ["1", "3"]
    path = save_figure(fig, tmp_path / "nested" / "confusion.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_recall_bars_skip_undefined_classes() -> None:
    fig = plot_recall({"happy": 0.5, "sad": float("nan"), "fear": None}, war=0.5, uar=0.25)
    ax = fig.axes[0]
    assert [text.get_text() for text in ax.texts] == ["50.0"]  # NaN/None classes get no value label
    assert [round(bar.get_height(), 6) for bar in ax.patches] == [50.0, 0.0, 0.0]
    assert [line.get_label() for line in ax.get_lines()] == ["WAR 50.0", "UAR 25.0"]


def _summary(text_end: float) -> dict:
    curves = {
        group: {"visual": [0.5, 0.3], "audio": [0.5, 0.3], "text": [0.0, text_end]}
        for group in ("all", "audio", "visual")
    }
    return {
        "layer": 1,
        "curves": curves,
        "counts": {"all": 4, "audio": 2, "visual": 2},
        "drift": dict.fromkeys(curves, 0.4),
    }


def test_attention_panels_per_model_and_group(tmp_path) -> None:
    fig = plot_attention({"migr": _summary(0.4), "baseline": _summary(0.8)})
    axes = fig.axes
    assert len(axes) == 4  # 2 models x 2 MI groups ("all" is left out when groups exist)
    assert axes[0].get_title() == "migr | MI: audio (n=2) | drift +0.400"
    assert axes[3].get_title() == "baseline | MI: visual (n=2) | drift +0.400"
    assert [line.get_label() for line in axes[0].get_lines()] == [
        "visual tokens",
        "audio tokens",
        "generated text",
    ]
    assert list(axes[2].get_lines()[2].get_ydata()) == [0.0, 0.8]
    only_all = plot_attention({"m": _summary(0.4)}, groups=["all", "both"])
    assert only_all.axes[1].get_title() == "m: no 'both' samples"
    assert save_figure(only_all, tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="at least one"):
        plot_attention({})
