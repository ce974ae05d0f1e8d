"""Atomic writes: the old content stays whole until the new one replaces it, and no temporary file is left."""

from __future__ import annotations

import pytest

from src import atomic


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "metrics.json"
    assert atomic.write_text(target, '{"war": 0.5}\n') == target  # parents are created
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(target, '{"label": "surprisé"}', encoding="ascii")  # fails while writing
    assert target.read_text() == '{"war": 0.5}\n'
    atomic.write_text(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["metrics.json"]
