"""A procedurally voiced sound track whose prosody carries the emotion.

A source-filter "voice" speaking nonsense syllables: harmonics of a time-varying f0 (level, per-syllable
contour, tremor, jitter), shaped by vowel formants and a spectral tilt, gated by a syllable rhythm (rate and
pauses), plus breath noise and a constant room-noise floor, so loudness shows as level above that floor.
Speakers differ in pitch, vocal-tract length (formant scale) and noise, within bounds that leave the emotion
cues (several semitones of pitch and range, rate, tremor, loudness, tilt) clearly larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data.synth.spec import NEUTRAL_VOICE, Prosody, brief_envelope

CONTROL_RATE = 200  # Hz: pitch/amplitude are planned at 5 ms steps
MAX_HARMONIC_HZ = 4000.0
# (F1, F2, F3) in Hz of the vowels a, e, i, o, u for an average adult tract.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [300, 2300, 3000], [570, 840, 2410], [440, 1020, 2240]])
BANDWIDTHS = np.array([90.0, 110.0, 160.0])


@dataclass(frozen=True)
class Speaker:
    """Per-clip voice identity."""

    pitch_hz: float
    formant_scale: float
    noise: float  # room-noise standard deviation
    breath: float


def random_speaker(rng: np.random.Generator) -> Speaker:
    """A random speaker (pitch within ±3 semitones of 150 Hz, so emotion shifts stay larger)."""
    return Speaker(
        pitch_hz=150.0 * 2 ** (rng.uniform(-3.0, 3.0) / 12),
        formant_scale=rng.uniform(0.92, 1.1),
        noise=rng.uniform(0.002, 0.006),
        breath=rng.uniform(0.0, 0.05),
    )


def _syllables(prosody: Prosody, seconds: float, rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """(start s, end s, vowel index) of each syllable."""
    rate = max(prosody.rate, 1.0)
    time, out = rng.uniform(0.03, 0.15), []
    while time < seconds - 0.08:
        length = min(rng.uniform(0.55, 0.8) / rate, seconds - time)
        out.append((time, time + length, int(rng.integers(len(VOWELS)))))
        time += length + rng.uniform(0.15, 0.35) / rate
        if rng.random() < prosody.pause:
            time += rng.uniform(0.2, 0.45)
    return out


def synthesize_voice(
    prosody: Prosody, speaker: Speaker, *, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """``[round(seconds * sample_rate)]`` float32 waveform in [-1, 1]."""
    frames = round(seconds * CONTROL_RATE)
    hop = sample_rate // CONTROL_RATE
    samples = frames * hop
    time = np.arange(frames) / CONTROL_RATE

    envelope = np.zeros(frames)
    semitones = np.full(frames, prosody.pitch)
    vowel = np.zeros(frames, dtype=np.int64)
    contour = float(np.clip(prosody.contour, -1.0, 1.0))
    for start, end, which in _syllables(prosody, seconds, rng):
        inside = (time >= start) & (time < end)
        phase = (time[inside] - start) / (end - start)
        envelope[inside] = np.sin(np.pi * phase) ** 0.6 * rng.uniform(0.8, 1.0)
        bell = 0.5 * np.sin(np.pi * phase)
        semitones[inside] += prosody.pitch_range * (contour * (phase - 0.5) + (1.0 - abs(contour)) * bell)
        vowel[time >= start] = which
    semitones += -1.0 * time / seconds  # phrase declination
    semitones += prosody.tremor * np.sin(2 * np.pi * prosody.tremor_rate * time + rng.uniform(0, 2 * np.pi))
    jitter = np.convolve(rng.standard_normal(frames), np.ones(3) / 3, mode="same")
    pitch_hz = speaker.pitch_hz * 2 ** (semitones / 12) * (1.0 + max(prosody.jitter, 0.0) * jitter)

    # Harmonic amplitudes per control frame: tilt x formant envelope of the current vowel.
    count = int(MAX_HARMONIC_HZ // pitch_hz.max())
    harmonics = np.arange(1, count + 1)[:, None]  # [K, 1]
    frequency = harmonics * pitch_hz[None, :]  # [K, frames]
    formants = VOWELS[vowel].T[:, None, :] * speaker.formant_scale  # [3, 1, frames]
    shape = (1.0 / (1.0 + ((frequency[None] - formants) / BANDWIDTHS[:, None, None]) ** 2)).sum(axis=0) + 0.05
    amplitude = harmonics ** (-max(prosody.tilt, 0.2)) * shape  # [K, frames]

    f0 = np.interp(np.arange(samples) / hop, np.arange(frames), pitch_hz)
    # Wrapped to [0, 2 pi) so float32 keeps the precision: sin(k * phase) is unchanged for integer k.
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sample_rate, 2 * np.pi).astype(np.float32)
    carriers = np.sin(harmonics.astype(np.float32) * phase[None, :]).reshape(count, frames, hop)  # [K, F, hop]
    voiced = np.einsum("kfh,kf->fh", carriers, amplitude.astype(np.float32)).reshape(samples)
    gate = np.interp(np.arange(samples) / hop, np.arange(frames), envelope)
    voiced *= gate / (np.sqrt(np.mean(voiced**2)) + 1e-8)

    breath = np.diff(rng.standard_normal(samples + 1)) * gate * (max(prosody.breath, 0.0) + speaker.breath)
    wave = 0.08 * 10 ** (prosody.loudness / 20) * (voiced + breath)
    wave += speaker.noise * rng.standard_normal(samples)
    return np.tanh(wave).astype(np.float32)


def synthesize_brief_voice(
    prosody: Prosody,
    speaker: Speaker,
    span: tuple[float, float],
    *,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    ramp: float = 0.05,
) -> np.ndarray:
    """``[round(seconds * sample_rate)]``: the neutral voice, switching to ``prosody`` within ``span`` (seconds).

    Two tracks of the same speaker (neutral, emotional) cross-faded with ``ramp``-second ramps at the span's
    ends: a brief outburst in an otherwise even voice (the conflict regime's non-dominant audio cue).
    """
    calm = synthesize_voice(NEUTRAL_VOICE, speaker, seconds=seconds, sample_rate=sample_rate, rng=rng)
    burst = synthesize_voice(prosody, speaker, seconds=seconds, sample_rate=sample_rate, rng=rng)
    gate = brief_envelope(np.arange(calm.shape[0]) / sample_rate, span, ramp).astype(np.float32)
    return calm * (1.0 - gate) + burst * gate
