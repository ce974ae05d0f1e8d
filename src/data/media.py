"""Decoding clips into the model's inputs: 8 SigLIP-normalised frames and a Whisper log-mel.

Frames follow HumanOmni: ``num_frames`` frames at the midpoints of equal segments, read with decord's
``get_batch`` (only those frames are decoded), each made square (padded with the SigLIP mean colour, or
squashed), resized to the preset's ``image_size``, rescaled and normalised with mean = std = 0.5. Which
midpoints, pad or squash, and which bicubic resize is one named setting (:mod:`src.data.preprocess`: ``migr``,
``upstream_train``, ``upstream_inference``), the model's own by default. Sound comes from the video
container through decord's ``AudioReader`` (16 kHz mono), or from a wav/flac/ogg file through soundfile,
resampled with ``torchaudio.functional.resample``.

Bad input has one defined behaviour each, never a silent substitute:

==============================  =========================================================================
missing / empty (0-byte) file   ``MediaError(reason="missing file" | "empty file")``
corrupt or undecodable file     ``MediaError(reason="unreadable")`` with the decoder's message
video without a sound track     ``MediaError(reason="no audio track")`` when audio is requested
decoded sound with 0 samples    ``MediaError(reason="no audio samples")``
video with no frames            ``MediaError(reason="no frames")``
fewer frames than num_frames    ``short_clip="repeat"`` (default): segment midpoints repeat frames, keeping
                                the clip's timing; ``"black"``: the decoded frames then black frames, as
                                HumanOmni appends; ``"error"``: ``MediaError(reason="too few frames")``.
                                :class:`MediaLoader` counts each short clip in its report.
==============================  =========================================================================

:class:`MediaLoader` applies a policy: ``on_error="raise"`` re-raises the :class:`MediaError` (naming the sample
and the file), ``on_error="skip"`` returns an empty :class:`MediaItem` carrying a :class:`SkipRecord` and counts
it in ``loader.report`` (a :class:`SkipReport` to print at the end of a run).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchaudio.functional import resample

from src.data.cache import MemoryLRU, TensorCache
from src.data.features import log_mel
from src.data.manifest import Sample
from src.data.media_report import EXPECTED, SkipRecord, SkipReport
from src.data.preprocess import Preprocess, frame_indices, get_preprocess, segment_midpoints
from src.paths import encodable, printable

__all__ = [
    "SIGLIP_MEAN",
    "MediaError",
    "MediaItem",
    "MediaLoader",
    "SkipRecord",
    "SkipReport",
    "frame_indices",
    "load_audio",
    "load_frames",
    "segment_midpoints",
]

SIGLIP_MEAN = 0.5  # SigLIP's image_mean = image_std = 0.5 on every channel
SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3"})
ShortClipPolicy = Literal["repeat", "black", "error"]
ErrorPolicy = Literal["raise", "skip"]


class MediaError(Exception):
    """A media file cannot give what was asked for.

    Attributes:
        path: the file.
        reason: a short stable category ("missing file", "empty file", "unreadable", "no audio track",
            "no audio samples", "no frames", "too few frames"); skip reports count by it.
        detail: the specifics (decoder message, frame counts).
        sample_id: the manifest sample, when known.
        where: the manifest line of the sample (``manifest.jsonl:7``), when known.

    The message names the manifest line, the sample, the file (bytes of its name that are not UTF-8 escaped,
    :func:`src.paths.printable`), the reason, its detail and what was expected (:data:`EXPECTED`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        detail: str = "",
        *,
        sample_id: str | None = None,
        where: str | None = None,
    ):
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        self.sample_id = sample_id
        self.where = where
        line = f"{where}: " if where else ""
        sample = f"sample {sample_id!r}: " if sample_id is not None else ""
        expected = f"; expected {EXPECTED[reason]}" if reason in EXPECTED else ""
        super().__init__(
            f"{line}{sample}{printable(self.path)}: {reason}" + (f" ({detail})" if detail else "") + expected
        )


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError(path, "missing file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file", "0 bytes")


@contextlib.contextmanager
def _decodable(path: Path) -> Iterator[str]:
    """A name of ``path`` the decoders accept: itself, or (a name that is not UTF-8, which decord and soundfile
    cannot encode) a symlink with a plain name in a private temporary folder."""
    if encodable(path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="migr-media-") as folder:
        link = os.path.join(folder, "media" + (path.suffix if encodable(path.suffix) else ""))
        os.symlink(os.fsencode(path.absolute()), os.fsencode(link))
        yield link


_LINK = re.compile(r"\S*migr-media-[^\s/]+/media(?:\.\w+)?")  # the name :func:`_decodable` gives the decoders


def _first_line(error: BaseException, path: Path) -> str:
    """The decoder's message without decord's ``[hh:mm:ss] /source/file.cc:123:`` prefix, naming ``path``
    where it names the temporary link of :func:`_decodable` (so the message is the same on every run)."""
    text = str(error).strip().splitlines()
    message = text[-1].strip() if text else type(error).__name__
    message = _LINK.sub(lambda _: printable(path), message)
    return re.sub(r"^\[[\d:]+\]\s+\S+:\d+:\s*", "", message) or type(error).__name__


def _decode_frames(
    path: Path, num_frames: int, short_clip: ShortClipPolicy, preprocess: Preprocess
) -> tuple[np.ndarray, int]:
    """``num_frames`` RGB frames ``[T, H, W, 3]`` uint8 and the clip's own frame count."""
    if short_clip not in ("repeat", "black", "error"):
        raise ValueError(f"short_clip must be 'repeat', 'black' or 'error'; got {short_clip!r}")
    _check_file(path)
    from decord import VideoReader, cpu  # deferred: decord's import prints to stderr

    try:
        with _decodable(path) as name:
            reader = VideoReader(name, ctx=cpu(0), num_threads=1)
        total = len(reader)
        if total == 0:
            raise MediaError(path, "no frames", "the video stream holds 0 frames")
        if total < num_frames and short_clip == "error":
            raise MediaError(path, "too few frames", f"{total} frames, {num_frames} needed")
        if total < num_frames and short_clip == "black":
            frames = reader.get_batch(list(range(total))).asnumpy()
            black = np.zeros((num_frames - total, *frames.shape[1:]), dtype=np.uint8)
            return np.concatenate([frames, black]), total
        indices = frame_indices(total, num_frames, preprocess.frame_sampling)
        unique, inverse = np.unique(indices, return_inverse=True)
        frames = reader.get_batch(unique.tolist()).asnumpy()[inverse]
    except MediaError:
        raise
    except Exception as error:  # decord raises bare RuntimeError/DECORDError for any demux/decode failure
        raise MediaError(path, "unreadable", _first_line(error, path)) from error
    return frames, total


def _square_resize(frames: np.ndarray, image_size: int, preprocess: Preprocess) -> Tensor:
    """``[T, H, W, 3]`` uint8 -> ``[T, 3, S, S]`` uint8: made square (padded or squashed), then resized."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, 3, H, W]
    count, _, height, width = video.shape
    side = max(height, width)
    if height != width and preprocess.aspect == "pad":
        canvas = torch.full((count, 3, side, side), int(SIGLIP_MEAN * 255), dtype=torch.uint8)
        top, left = (side - height) // 2, (side - width) // 2
        canvas[:, :, top : top + height, left : left + width] = video
        video, height, width = canvas, side, side
    if (height, width) == (image_size, image_size):
        return video.contiguous()
    if preprocess.resize == "pil_bicubic":  # what SigLIP's image processor does, frame by frame, in uint8
        resized = [
            np.asarray(
                Image.fromarray(frame.permute(1, 2, 0).numpy()).resize((image_size, image_size), Image.BICUBIC)
            )
            for frame in video
        ]
        return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()
    resized = F.interpolate(video.float(), size=(image_size, image_size), mode="bicubic", antialias=True)
    # Back to uint8 like the PIL pipeline of SigLIP's processor (and 4x smaller in the cache).
    return resized.round_().clamp_(0, 255).to(torch.uint8).contiguous()


def _normalise(video: Tensor) -> Tensor:
    return video.float().div_(255.0).sub_(SIGLIP_MEAN).div_(SIGLIP_MEAN)


def load_frames(
    path: str | os.PathLike[str],
    *,
    num_frames: int = 8,
    image_size: int,
    short_clip: ShortClipPolicy = "repeat",
    preprocess: str | Preprocess = "migr",
) -> Tensor:
    """``[num_frames, 3, image_size, image_size]`` float32 SigLIP-normalised frames of a video.

    Raises:
        MediaError: see the module docstring for each case.
    """
    setting = get_preprocess(preprocess)
    frames, _ = _decode_frames(Path(path), num_frames, short_clip, setting)
    return _normalise(_square_resize(frames, image_size, setting))


def load_audio(path: str | os.PathLike[str], *, sample_rate: int = 16000) -> Tensor:
    """``[N]`` float32 mono waveform at ``sample_rate``: from an audio file (soundfile) or a video's track (decord).

    Raises:
        MediaError: missing/empty/unreadable file, a video without a sound track, or no samples.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            with _decodable(path) as name:
                data, source_rate = soundfile.read(name, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            raise MediaError(path, "unreadable", _first_line(error, path)) from error
        wave = torch.from_numpy(data).mean(dim=1)
        if wave.numel() and source_rate != sample_rate:
            wave = resample(wave, source_rate, sample_rate)
    else:
        from decord import AudioReader, cpu

        try:
            with _decodable(path) as name:
                reader = AudioReader(name, ctx=cpu(0), sample_rate=sample_rate, mono=True)
                wave = torch.from_numpy(reader[:].asnumpy()).reshape(-1)
        except Exception as error:  # decord reports every failure as DECORDError/RuntimeError
            message = _first_line(error, path)
            if "find audio stream" in message:
                raise MediaError(path, "no audio track", "the container has no audio stream") from error
            raise MediaError(path, "unreadable", message) from error
    if wave.numel() == 0:
        raise MediaError(path, "no audio samples", "the audio decodes to 0 samples")
    if not torch.isfinite(wave).all():
        raise MediaError(path, "unreadable", "the audio decodes to NaN/inf samples")
    return wave.float().contiguous()


@dataclass(frozen=True)
class MediaItem:
    """What :meth:`MediaLoader.load` returns for one sample.

    Attributes:
        frames: ``[T, 3, S, S]`` float32 SigLIP-normalised frames, or None (not requested / no video).
        mel: ``[n_mels, 100 * audio_seconds]`` float32 Whisper log-mel, or None (not requested / no sound).
        skip: set when the sample was skipped under ``on_error="skip"`` (frames and mel are then None).
    """

    frames: Tensor | None
    mel: Tensor | None
    skip: SkipRecord | None = None


class MediaLoader:
    """Turns manifest samples into model inputs with one error policy and an optional disk cache.

    Args:
        image_size: frame side after resizing (64 tiny, 224 HumanOmni-0.5B, 384 HumanOmni-7B).
        num_frames: frames per clip (HumanOmni: 8).
        audio_seconds: Whisper window in seconds (3 tiny, 30 released models).
        n_mels: mel bins (128 for Whisper-large-v3).
        sample_rate: audio rate fed to the features (Whisper: 16 kHz).
        cache_dir: where decoded frames (uint8) and waveforms are cached as safetensors; None disables it.
        memory_mb: the model-ready frames and log-mels kept in this process's memory (least recently used
            dropped beyond it; 0: none), so that a clip used again (every epoch, every stage step) is not read
            back from the disk cache and its log-mel not recomputed. Keyed like the disk cache (the file's path,
            size and modification time, and every parameter), so an edited clip is never served stale. The
            tensors returned are shared with the memory: callers must not modify them in place.
        on_error: "raise" re-raises :class:`MediaError`; "skip" returns an item with ``skip`` set and counts it
            in :attr:`report`.
        short_clip: what a clip with fewer than ``num_frames`` frames gives (see the module docstring).
        preprocess: frame sampling / squaring / resizing setting (:mod:`src.data.preprocess`); ``migr`` by
            default, the model's own through :meth:`for_model`.

    Example:
        >>> loader = MediaLoader(image_size=64, audio_seconds=3, on_error="skip")  # doctest: +SKIP
        >>> item = loader.load(sample)  # doctest: +SKIP
        >>> item.frames.shape, item.mel.shape  # doctest: +SKIP
        (torch.Size([8, 3, 64, 64]), torch.Size([128, 300]))
        >>> print(loader.report.summary())  # doctest: +SKIP
    """

    def __init__(
        self,
        image_size: int,
        num_frames: int = 8,
        audio_seconds: int = 30,
        n_mels: int = 128,
        sample_rate: int = 16000,
        cache_dir: str | os.PathLike[str] | None = None,
        on_error: ErrorPolicy = "raise",
        short_clip: ShortClipPolicy = "repeat",
        preprocess: str | Preprocess = "migr",
        memory_mb: float = 1024,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
        if short_clip not in ("repeat", "black", "error"):
            raise ValueError(f"short_clip must be 'repeat', 'black' or 'error'; got {short_clip!r}")
        self.image_size = image_size
        self.num_frames = num_frames
        self.audio_seconds = audio_seconds
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.on_error = on_error
        self.short_clip = short_clip
        self.preprocess = get_preprocess(preprocess)
        self.cache = TensorCache(cache_dir) if cache_dir is not None else None
        if memory_mb < 0:
            raise ValueError(f"data.media_memory_mb must be >= 0; got {memory_mb}")
        # key -> frames [T, 3, S, S] and the clip's decoded frame count, or a log-mel [n_mels, F]
        self.memory: MemoryLRU[tuple[Tensor, int] | Tensor] = MemoryLRU(int(memory_mb * (1 << 20)))
        self.report = SkipReport()

    @classmethod
    def for_model(cls, config, *, preprocess: str | Preprocess | None = None, **options) -> MediaLoader:
        """A loader of a model's shapes and its own preprocessing (``preprocess`` overrides it).

        ``config`` is a :class:`src.models.presets.OmniConfig` (anything with its shape attributes).
        """
        return cls(
            image_size=config.image_size,
            num_frames=config.num_frames,
            audio_seconds=config.audio_seconds,
            n_mels=config.n_mels,
            sample_rate=config.sample_rate,
            preprocess=preprocess or config.preprocess,
            **options,
        )

    def load(self, sample: Sample, *, video: bool = True, audio: bool = True) -> MediaItem:
        """Frames and/or log-mel of ``sample`` (a modality the sample lacks, or not requested, stays None)."""
        try:
            frames = self.frames(sample) if video and sample.video is not None else None
            source = sample.audio_source if audio else None
            mel = self.mel(source) if source is not None else None
        except MediaError as error:
            if self.on_error == "raise":
                raise MediaError(
                    error.path, error.reason, error.detail, sample_id=sample.id, where=sample.where
                ) from error
            record = SkipRecord(
                sample_id=sample.id,
                path=printable(error.path),
                reason=error.reason,
                detail=error.detail,
                where=sample.where or "",
            )
            self.report.add(record)
            return MediaItem(frames=None, mel=None, skip=record)
        return MediaItem(frames=frames, mel=mel)

    def frames(self, sample: Sample) -> Tensor:
        """``[T, 3, S, S]`` normalised frames of ``sample.video`` (cached as uint8 when a cache is set)."""
        assert sample.video is not None
        path = sample.video
        params = {
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "short_clip": self.short_clip,
            "preprocess": self.preprocess.key,
        }
        key = TensorCache.key("frames", path, params) if path.is_file() else None
        remembered = self.memory.get(key) if key is not None else None
        if remembered is not None:
            frames, total = remembered
            self._note_short(sample, total)
            return frames
        hit = self.cache.get(key) if key is not None and self.cache is not None else None
        if hit is not None:
            video, total = hit["frames"], int(hit["source_frames"])
        else:
            decoded, total = _decode_frames(path, self.num_frames, self.short_clip, self.preprocess)
            video = _square_resize(decoded, self.image_size, self.preprocess)
            if key is not None and self.cache is not None:
                self.cache.put(key, {"frames": video, "source_frames": torch.tensor(total)})
        self._note_short(sample, total)
        frames = _normalise(video)
        if key is not None:
            self.memory.put(key, (frames, total), size=frames.nbytes)
        return frames

    def mel(self, path: Path) -> Tensor:
        """``[n_mels, 100 * audio_seconds]`` Whisper log-mel of the sound of ``path`` (kept in memory)."""
        params = {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "seconds": self.audio_seconds}
        key = TensorCache.key("mel", path, params) if path.is_file() else None
        remembered = self.memory.get(key) if key is not None else None
        if remembered is not None:
            return remembered
        wave = self.waveform(path)
        mel = log_mel(wave, n_mels=self.n_mels, num_seconds=self.audio_seconds, sample_rate=self.sample_rate)[0]
        if key is not None:
            self.memory.put(key, mel, size=mel.nbytes)
        return mel

    def waveform(self, path: Path) -> Tensor:
        """``[N]`` mono waveform of ``path`` at the loader's rate (cached when a cache is set)."""
        key = None
        if self.cache is not None and path.is_file():
            key = self.cache.key("audio", path, {"sample_rate": self.sample_rate})
            hit = self.cache.get(key)
            if hit is not None:
                return hit["waveform"]
        wave = load_audio(path, sample_rate=self.sample_rate)
        if key is not None and self.cache is not None:
            self.cache.put(key, {"waveform": wave})
        return wave

    def _note_short(self, sample: Sample, total: int) -> None:
        if total < self.num_frames:
            self.report.add_short(sample.id, printable(sample.video), total, self.num_frames, self.short_clip)

    def load_many(self, samples: Sequence[Sample], *, video: bool = True, audio: bool = True) -> list[MediaItem]:
        """:meth:`load` over ``samples`` (a convenience for scripts; the Dataset calls :meth:`load`)."""
        return [self.load(sample, video=video, audio=audio) for sample in samples]
