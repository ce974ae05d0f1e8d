"""Whisper log-mel features in torch, batched, equal to ``transformers.WhisperFeatureExtractor``.

Whisper's encoder reads a fixed window (30 s for the released models, ``audio_seconds`` for tiny presets) of
128-bin log-mel frames at 100 frames/s. This module computes exactly what
``WhisperFeatureExtractor(feature_size=n_mels, chunk_length=num_seconds)`` returns (within 1e-4 per element,
a test), without its numpy round trips, and skips the work the padding makes predictable: a 10 s clip padded
to 30 s has 20 s of exact zeros, whose frames all hold ``log10(1e-10)``, so only the frames that touch the
signal go through the STFT. ``benchmarks/features_vs_whisper.py`` measures the gain.

Example:
    >>> import torch
    >>> mel = log_mel([torch.zeros(16000), torch.ones(8000) * 0.1], n_mels=128, num_seconds=3)
    >>> tuple(mel.shape)
    (2, 128, 300)
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torchaudio.functional import melscale_fbanks

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
_LOG_FLOOR = 1e-10
_CHUNK = 2  # clips per STFT call


class WhisperLogMel:
    """Log-mel spectrogram of Whisper's feature extractor; the filterbank and window are built once.

    Args:
        n_mels: mel bins (128 for Whisper-large-v3, 80 for older Whisper models).
        num_seconds: window length; every waveform is zero-padded or truncated to it, like Whisper.
        sample_rate: the waveforms' rate; Whisper is defined at 16 kHz only, others are refused.

    Call with a ``[B, N]`` tensor, a 1-D tensor, or a sequence of 1-D tensors/arrays of any lengths; returns
    ``[B, n_mels, 100 * num_seconds]`` float32 on the input's device.
    """

    def __init__(self, n_mels: int = 128, num_seconds: int = 30, sample_rate: int = SAMPLE_RATE) -> None:
        if n_mels <= 0 or num_seconds <= 0:
            raise ValueError(
                f"n_mels and num_seconds must be positive; got n_mels={n_mels}, num_seconds={num_seconds}"
            )
        if sample_rate != SAMPLE_RATE:
            # Whisper's window, hop and 8 kHz filterbank are defined at 16 kHz only; its extractor refuses others.
            raise ValueError(
                f"Whisper features need {SAMPLE_RATE} Hz audio; got sample_rate={sample_rate} (resample first)"
            )
        self.n_mels = n_mels
        self.num_seconds = num_seconds
        self.sample_rate = sample_rate
        self.num_samples = num_seconds * sample_rate
        self.num_frames = self.num_samples // HOP_LENGTH
        self._window = torch.hann_window(N_FFT)
        # [n_mels, n_fft // 2 + 1]: Slaney-scale, Slaney-normalised triangles up to 8 kHz, as Whisper uses.
        self._filters = (
            melscale_fbanks(N_FFT // 2 + 1, 0.0, 8000.0, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
            .T.contiguous()
            .float()
        )
        self._floor = float(torch.tensor(_LOG_FLOOR, dtype=torch.float32).log10())

    def __call__(self, waveforms: Tensor | Sequence[Tensor | np.ndarray]) -> Tensor:
        # Single-threaded CPU ops throughout, two clips at a time: the spectra stay in cache, and no OpenMP
        # barrier can stall when another process holds a core (then every small 2-thread op, such as each row
        # copy, waits milliseconds: the batch took 330 ms that way instead of 68 ms on this 2-core machine).
        with _torch_threads(1):
            return self._log_mel(waveforms)

    def _log_mel(self, waveforms: Tensor | Sequence[Tensor | np.ndarray]) -> Tensor:
        rows = self._rows(waveforms)  # 1-D float32 tensors, truncated to the window
        if not rows:
            raise ValueError("log_mel needs at least one waveform; got an empty batch")
        device = rows[0].device
        window, filters = self._window.to(device), self._filters.to(device)
        half = N_FFT // 2
        longest = max(row.shape[0] for row in rows)
        # Frames starting at or after the longest signal's end see only the zero padding (the right
        # reflect-padding mirrors zeros too, given this margin): compute the others only.
        skip = longest <= self.num_samples - half - 1
        frames = min(self.num_frames, math.ceil((longest + half) / HOP_LENGTH)) if skip else self.num_frames
        if skip:
            batch = self._stack(rows, max((frames - 1) * HOP_LENGTH + half, half + 1), offset=half)
            batch[:, :half] = batch[:, half + 1 : 2 * half + 1].flip(-1)  # center=True's reflect padding
        else:
            batch = self._stack(rows, self.num_samples)
        out = torch.empty((len(rows), self.n_mels, self.num_frames), dtype=torch.float32, device=device)
        chunk = _CHUNK if device.type == "cpu" else len(rows)
        with torch.no_grad():
            for start in range(0, len(rows), chunk):
                spectrum = torch.stft(
                    batch[start : start + chunk],
                    N_FFT,
                    HOP_LENGTH,
                    window=window,
                    center=not skip,
                    return_complex=True,
                )[..., :frames]  # Whisper drops the last STFT frame
                power = spectrum.real.square() + spectrum.imag.square()  # [c, n_freqs, F]
                logmel = torch.matmul(filters, power).clamp_(min=_LOG_FLOOR).log10_()  # [c, n_mels, F]
                peak = logmel.amax(dim=(1, 2), keepdim=True)  # per clip, as Whisper normalises each example
                if frames < self.num_frames:
                    peak.clamp_(min=self._floor)  # the skipped frames hold the floor
                floor = peak - 8.0
                out[start : start + chunk, :, :frames] = torch.maximum(logmel, floor).add_(4.0).div_(4.0)
                if frames < self.num_frames:
                    out[start : start + chunk, :, frames:] = floor.clamp_(min=self._floor).add_(4.0).div_(4.0)
        return out

    def _rows(self, waveforms: Tensor | Sequence[Tensor | np.ndarray]) -> list[Tensor]:
        if isinstance(waveforms, Tensor):
            if waveforms.dim() not in (1, 2):
                raise ValueError(f"expected waveforms of shape [N] or [B, N]; got {tuple(waveforms.shape)}")
            waveforms = list(waveforms.float().reshape(-1, waveforms.shape[-1]))
        rows = []
        for index, item in enumerate(waveforms):
            row = torch.as_tensor(item, dtype=torch.float32)
            if row.dim() != 1:
                raise ValueError(f"waveform {index} must be 1-D mono audio; got shape {tuple(row.shape)}")
            rows.append(row[: self.num_samples])
        return rows

    @staticmethod
    def _stack(rows: list[Tensor], width: int, offset: int = 0) -> Tensor:
        """``[B, offset + width]`` zeros holding each row's first ``width`` samples from column ``offset``."""
        batch = torch.zeros(len(rows), offset + width, dtype=torch.float32, device=rows[0].device)
        for index, row in enumerate(rows):
            length = min(row.shape[0], width)
            batch[index, offset : offset + length] = row[:length]
        return batch


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op torch threads, then restore the caller's setting."""
    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.lru_cache(maxsize=8)
def _extractor(n_mels: int, num_seconds: int, sample_rate: int) -> WhisperLogMel:
    return WhisperLogMel(n_mels=n_mels, num_seconds=num_seconds, sample_rate=sample_rate)


def log_mel(
    waveforms: Tensor | Sequence[Tensor | np.ndarray],
    *,
    n_mels: int = 128,
    num_seconds: int = 30,
    sample_rate: int = SAMPLE_RATE,
) -> Tensor:
    """Whisper log-mel of one or more 16 kHz mono waveforms: ``[B, n_mels, 100 * num_seconds]`` float32.

    Each waveform is zero-padded or truncated to ``num_seconds`` as Whisper does; a 1-D tensor counts as a
    batch of one.
    """
    return _extractor(n_mels, num_seconds, sample_rate)(waveforms)
