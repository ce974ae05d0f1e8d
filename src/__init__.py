"""migr: Modality-Importance-Guided Reasoning for multimodal emotion understanding."""

__version__ = "0.1.0"
