"""The account of what a media policy did: clips skipped (by reason) and short clips filled in.

A :class:`SkipReport` is what ``on_error="skip"`` promises instead of silence. It counts each clip once per
reason however many epochs hit it, merges across DataLoader workers (a skipped :class:`MediaItem` carries its
:class:`SkipRecord` back to the main process), and prints a summary at the end of a run::

    2 of the clips were skipped (on_error=skip):
      1 missing file, 1 no audio track
      clip_07  data/clips/clip_07.mp4  missing file
      clip_11  data/clips/clip_11.mp4  no audio track (the container has no audio stream)
    1 clip had fewer than 8 frames (short_clip=repeat): clip_03 (5)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

# What a clip must be, per skip reason: the end of each error's message ("...: empty file (0 bytes); expected ...")
EXPECTED = {
    "missing file": "an existing file (relative paths resolve against the manifest's folder)",
    "empty file": "a video or audio file with content",
    "unreadable": "a video (mp4, avi, mkv, ...) or audio file (wav, flac, ...) that decord / ffmpeg can decode",
    "no audio track": 'a sound track, which the model hears for every clip (or the sound as the row\'s "audio" file)',
    "no audio samples": "at least one audio sample",
    "no frames": "at least one video frame",
    "too few frames": "at least the model's num_frames frames (short_clip=repeat or black fills a short clip in)",
}


@dataclass(frozen=True)
class SkipRecord:
    """One skipped sample: which, which file, why (a :class:`~src.data.media.MediaError` reason) and details.

    ``path`` is printable text (undecodable bytes of a file name escaped); ``where`` is the manifest line the
    sample came from (``manifest.jsonl:7``) when known.
    """

    sample_id: str
    path: str
    reason: str
    detail: str = ""
    where: str = ""


@dataclass(frozen=True)
class ShortClip:
    """A clip with fewer frames than requested, and how it was filled in."""

    sample_id: str
    path: str
    frames: int
    needed: int
    policy: str


class SkipReport:
    """Skipped samples and short clips, each counted once (by sample, file and reason)."""

    def __init__(self) -> None:
        self._skipped: dict[tuple[str, str, str], SkipRecord] = {}
        self._short: dict[tuple[str, str], ShortClip] = {}

    def add(self, record: SkipRecord) -> None:
        """Count a skipped sample (again-seen records are ignored)."""
        self._skipped.setdefault((record.sample_id, record.path, record.reason), record)

    def add_short(self, sample_id: str, path: str, frames: int, needed: int, policy: str) -> None:
        """Count a clip that had ``frames`` < ``needed`` frames and was filled in by ``policy``."""
        self._short.setdefault((sample_id, path), ShortClip(sample_id, path, frames, needed, policy))

    def merge(self, other: SkipReport) -> None:
        """Add everything ``other`` counted (e.g. a worker's report)."""
        for record in other.skipped:
            self.add(record)
        for clip in other.short_clips:
            self._short.setdefault((clip.sample_id, clip.path), clip)

    @property
    def skipped(self) -> list[SkipRecord]:
        """Skipped samples in the order they were first seen."""
        return list(self._skipped.values())

    @property
    def short_clips(self) -> list[ShortClip]:
        """Short clips in the order they were first seen."""
        return list(self._short.values())

    def counts(self) -> dict[str, int]:
        """Number of skipped samples per reason, most frequent first."""
        return dict(Counter(record.reason for record in self._skipped.values()).most_common())

    def __len__(self) -> int:
        """Number of skipped samples (short clips are not skips)."""
        return len(self._skipped)

    def __bool__(self) -> bool:
        """True when there is anything to report: a skip or a short clip."""
        return bool(self._skipped or self._short)

    def summary(self, *, max_listed: int = 20) -> str:
        """Human-readable account (empty string when nothing happened)."""
        lines = []
        if self._skipped:
            count = len(self._skipped)
            lines.append(f"{count} clip{'s were' if count != 1 else ' was'} skipped (on_error=skip):")
            lines.append("  " + ", ".join(f"{number} {reason}" for reason, number in self.counts().items()))
            for record in self.skipped[:max_listed]:
                detail = f" ({record.detail})" if record.detail else ""
                where = f"  ({record.where})" if record.where else ""
                lines.append(f"  {record.sample_id}  {record.path}  {record.reason}{detail}{where}")
            if count > max_listed:
                lines.append(f"  ... and {count - max_listed} more")
        if self._short:
            clips = self.short_clips
            first = clips[0]
            listed = ", ".join(f"{clip.sample_id} ({clip.frames})" for clip in clips[:max_listed])
            more = f", ... and {len(clips) - max_listed} more" if len(clips) > max_listed else ""
            lines.append(
                f"{len(clips)} clip{'s' if len(clips) != 1 else ''} had fewer than {first.needed} frames "
                f"(short_clip={first.policy}): {listed}{more}"
            )
        return "\n".join(lines)
