"""Evaluation metrics as torchmetrics ``Metric``s (exact under DDP): recognition and explanation consistency."""

from src.metrics.consistency import ConsistencyMetrics
from src.metrics.label_counts import UNKNOWN
from src.metrics.recognition import RecognitionMetrics

__all__ = ["UNKNOWN", "ConsistencyMetrics", "RecognitionMetrics"]
