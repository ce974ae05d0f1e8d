"""Linear probes showing the synthetic corpus is learnable, and from the right modality.

A logistic regression per modality is trained on the training clips where that modality carries the label
(dominant or both) and scored on the held-out clips (val + test):

- dominant accuracy: the modality's probe on clips where it is dominant (should be far above chance);
- non-dominant accuracy: the same probe on clips where the *other* modality is dominant (near chance: the
  modality shows nothing, a faint version of the label, or faintly another emotion), and how often it names
  the misleading emotion instead.

Needs scikit-learn (a dev dependency). ``benchmarks/synth_learnability.py`` prints the figures.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.data.manifest import Sample
from src.data.media import MediaLoader


def visual_features(frames: torch.Tensor) -> np.ndarray:
    """``[T, 3, S, S]`` -> grey-level edge strength averaged over frames, pooled 3 x 3 (441 values at 64 px).

    Edges rather than raw pixels: a linear probe cannot discount skin tone and background colour, which a
    vision encoder does; the expression's geometry is what should carry the label.
    """
    grey = frames.mean(dim=1)  # [T, S, S]
    edges = (grey[:, :-1, 1:] - grey[:, :-1, :-1]).abs() + (grey[:, 1:, :-1] - grey[:, :-1, :-1]).abs()
    return F.avg_pool2d(edges.mean(dim=0, keepdim=True), 3).flatten().numpy()


def audio_features(mel: torch.Tensor) -> np.ndarray:
    """``[128, F]`` -> per-bin mean, spread and frame-to-frame change (384 values)."""
    return torch.cat([mel.mean(dim=1), mel.std(dim=1), mel.diff(dim=1).abs().mean(dim=1)]).numpy()


def probe(samples: list[Sample], loader: MediaLoader) -> dict[str, dict[str, float]]:
    """Accuracy figures per modality (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    items = [loader.load(sample) for sample in samples]
    features = {
        "visual": np.stack([visual_features(item.frames) for item in items]),
        "audio": np.stack([audio_features(item.mel) for item in items]),
    }
    labels = np.array([sample.label for sample in samples])
    dominant = np.array([sample.dominant for sample in samples])
    train = np.array([sample.split == "train" for sample in samples])
    misleading = np.array([s.secondary_labels[0] if s.secondary_labels else "" for s in samples])
    results = {}
    for modality, other in (("visual", "audio"), ("audio", "visual")):
        carries = (dominant == modality) | (dominant == "both")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        model.fit(features[modality][train & carries], labels[train & carries])
        held_dominant = ~train & (dominant == modality)
        held_other = ~train & (dominant == other)
        predicted = model.predict(features[modality][held_other])
        has_misleading = misleading[held_other] != ""
        results[modality] = {
            "dominant_accuracy": float(
                (model.predict(features[modality][held_dominant]) == labels[held_dominant]).mean()
            ),
            "non_dominant_accuracy": float((predicted == labels[held_other]).mean()),
            "names_misleading": float(
                (predicted[has_misleading] == misleading[held_other][has_misleading]).mean()
            ),
            "held_out_dominant": int(held_dominant.sum()),
            "held_out_non_dominant": int(held_other.sum()),
        }
    return results
