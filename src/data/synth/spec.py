"""What each emotion looks and sounds like in the synthetic corpus: action-unit prototypes and prosody.

Faces follow the EMFACS-style prototypes the FAU filter of MIGR reads back (Emotion-LLaMA's Emotion-AU table,
plus AU09/AU10 for disgust): a value is the AU's intensity at a full expression, on 0..1 (OpenFace's ``_r``
scale is 5x that). Voices follow the classic vocal-affect findings (Scherer; Banse & Scherer 1996): pitch
level and range, speaking rate, loudness, tremor, pauses, spectral tilt and breathiness, given as offsets from
the neutral voice at full intensity; a clip at intensity ``a`` gets ``neutral + a * offset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data.labels import labels_for

EMOTIONS: tuple[str, ...] = labels_for("synth")  # the 7 DFEW classes

# OpenFace 2 action units: intensities (_r) and presences (_c, which add AU28) in its column order.
AU_INTENSITY: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # fmt: skip
AU_PRESENCE: tuple[str, ...] = (*AU_INTENSITY[:-1], "AU28", "AU45")
AU_INDEX: dict[str, int] = {name: index for index, name in enumerate(AU_INTENSITY)}

AU_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"AU06": 0.8, "AU12": 1.0, "AU14": 0.5, "AU25": 0.6},
    "sad": {"AU01": 1.0, "AU04": 0.4, "AU15": 1.0, "AU17": 0.6},
    "surprise": {"AU01": 1.0, "AU02": 1.0, "AU05": 0.9, "AU25": 0.8, "AU26": 1.0},
    "fear": {
        "AU01": 0.9,
        "AU02": 0.6,
        "AU04": 0.8,
        "AU05": 1.0,
        "AU07": 0.6,
        "AU20": 1.0,
        "AU25": 0.8,
        "AU26": 0.4,
    },
    "angry": {"AU04": 1.0, "AU05": 0.5, "AU07": 1.0, "AU10": 0.5, "AU17": 0.7, "AU23": 1.0},
    "disgust": {"AU04": 0.4, "AU09": 1.0, "AU10": 1.0, "AU15": 0.7, "AU17": 0.5},
}


@dataclass(frozen=True)
class Prosody:
    """Voice parameters; for an emotion these are offsets from :data:`NEUTRAL_VOICE` at full intensity.

    Attributes:
        pitch: mean f0 shift in semitones.
        pitch_range: per-syllable f0 excursion in semitones.
        contour: syllable f0 shape, -1 falling .. +1 rising (0 rise-fall).
        rate: syllables per second.
        loudness: gain in dB.
        tremor: vibrato depth in semitones (at ``tremor_rate`` Hz).
        pause: probability of a pause after a syllable.
        tilt: spectral tilt exponent (harmonic k has amplitude k^-tilt): higher is darker.
        breath: breathiness (noise share).
        jitter: random f0 perturbation (harshness, creak) as a fraction.
    """

    pitch: float = 0.0
    pitch_range: float = 0.0
    contour: float = 0.0
    rate: float = 0.0
    loudness: float = 0.0
    tremor: float = 0.0
    pause: float = 0.0
    tilt: float = 0.0
    breath: float = 0.0
    jitter: float = 0.0
    tremor_rate: float = 6.0


NEUTRAL_VOICE = Prosody(
    pitch=0.0, pitch_range=1.5, contour=-0.3, rate=4.0, loudness=0.0, tremor=0.0,
    pause=0.12, tilt=1.3, breath=0.08, jitter=0.004,
)  # fmt: skip

PROSODY_OFFSETS: dict[str, Prosody] = {
    "neutral": Prosody(),
    "happy": Prosody(pitch=4.0, pitch_range=5.0, contour=0.3, rate=1.6, loudness=3.0, tilt=-0.3),
    "sad": Prosody(pitch=-3.5, pitch_range=-1.2, contour=-0.7, rate=-1.7, loudness=-8.0, pause=0.35, tilt=0.6,
                   breath=0.25, tremor=0.3, tremor_rate=5.0),
    "angry": Prosody(pitch=2.0, pitch_range=2.0, contour=-0.7, rate=1.2, loudness=7.0, tilt=-0.8, jitter=0.03),
    "surprise": Prosody(pitch=7.0, pitch_range=7.0, contour=1.3, rate=-0.5, loudness=4.0, pause=0.2, tilt=-0.3),
    "fear": Prosody(pitch=5.0, pitch_range=0.5, contour=0.3, rate=2.6, loudness=-3.0, tremor=1.3, tremor_rate=8.0,
                    breath=0.3, jitter=0.01),
    "disgust": Prosody(pitch=-2.5, pitch_range=2.5, contour=-1.0, rate=-1.2, loudness=-1.0, pause=0.25, tilt=0.3,
                       jitter=0.04),
}  # fmt: skip


def voice_for(emotion: str, intensity: float) -> Prosody:
    """The neutral voice moved ``intensity`` (0..1) of the way toward ``emotion``."""
    offset = PROSODY_OFFSETS[emotion]
    fields = Prosody.__dataclass_fields__
    values = {
        name: getattr(NEUTRAL_VOICE, name) + intensity * getattr(offset, name)
        for name in fields
        if name != "tremor_rate"
    }
    return Prosody(**values, tremor_rate=offset.tremor_rate)


BRIEF_RAMP = 0.1  # seconds a brief display (conflict regime, src.data.synth.plan) takes to appear and to fade


def brief_envelope(time: np.ndarray, span: tuple[float, float], ramp: float = BRIEF_RAMP) -> np.ndarray:
    """0..1 at each of ``time`` (seconds): 1 within ``span``, linear ramps of ``ramp`` s inside its ends, else 0."""
    start, end = span
    return np.clip(np.minimum(time - start, end - time) / ramp, 0.0, 1.0)
