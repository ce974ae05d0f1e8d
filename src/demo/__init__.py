"""The end-to-end demo: MIGR vs the visual-first baseline on the embedded default (python -m src.pipeline)."""
