"""Emotion judges: read an emotion out of text, for the modality rewards and the consistency metrics.

Backends: ``keywords`` (lexicon, default), ``embedding`` (MiniLM + trained head), ``hf`` (any local sequence
classifier, e.g. ERV's GoEmotions model), ``openai`` (any OpenAI-compatible chat endpoint). Build one from
config with :func:`build_judge`.
"""

from src.judges.base import UNKNOWN, Judge, MultiLabelJudge, concept_to_label, label_sets
from src.judges.factory import build_judge

__all__ = ["UNKNOWN", "Judge", "MultiLabelJudge", "build_judge", "concept_to_label", "label_sets"]
