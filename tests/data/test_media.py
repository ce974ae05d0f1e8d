from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from src.data.manifest import Sample
from src.data.media import MediaError, MediaLoader, load_audio, load_frames, segment_midpoints


def _grey_levels(frames: torch.Tensor) -> list[int]:
    """Mean grey level (0..255) of each normalised frame."""
    return [round(float(level)) for level in ((frames + 1) * 127.5).mean(dim=(1, 2, 3))]


def _sample(path: Path | None, sample_id: str = "s", audio: Path | None = None) -> Sample:
    return Sample(id=sample_id, label="sad", dataset="dfew", split="test", video=path, audio=audio)


def test_segment_midpoints() -> None:
    assert segment_midpoints(16, 8).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert segment_midpoints(80, 8).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    assert segment_midpoints(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]  # short clips repeat frames


def test_frames_are_the_segment_midpoints(make_clip: Callable[..., Path]) -> None:
    frames = load_frames(make_clip(frames=16), num_frames=8, image_size=16)
    assert frames.shape == (8, 3, 16, 16) and frames.dtype == torch.float32
    expected = [10 + 15 * index for index in (1, 3, 5, 7, 9, 11, 13, 15)]
    assert all(abs(got - want) <= 3 for got, want in zip(_grey_levels(frames), expected))  # h264 rounding


def test_frames_match_siglip_processor_with_mean_colour_padding(make_clip: Callable[..., Path]) -> None:
    from decord import VideoReader
    from PIL import Image
    from transformers import SiglipImageProcessor

    rng = np.random.default_rng(0)
    path = make_clip(frames=10, height=40, width=64)
    video = rng.integers(0, 256, size=(10, 5, 8, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    from src.data.synth.mp4 import write_mp4

    write_mp4(path, video, fps=8, audio=None, sample_rate=16000)
    ours = load_frames(path, num_frames=8, image_size=24)

    decoded = VideoReader(str(path)).get_batch(segment_midpoints(10, 8).tolist()).asnumpy()
    processor = SiglipImageProcessor(size={"height": 24, "width": 24})
    reference = []
    for frame in decoded:  # HumanOmni's expand2square with the processor's mean colour, then SigLIP
        square = Image.new("RGB", (64, 64), (127, 127, 127))
        square.paste(Image.fromarray(frame), (0, 12))
        reference.append(processor(square, return_tensors="pt")["pixel_values"][0])
    difference = (ours - torch.stack(reference)).abs() * 127.5  # in grey levels
    assert difference.mean() < 0.25  # torch's and PIL's antialiased bicubic filters agree almost everywhere...
    assert difference.max() < 3.01  # ...and differ by at most 3 levels at the hard block edges


def test_non_square_frames_are_padded_with_the_mean_colour(make_clip: Callable[..., Path]) -> None:
    frames = load_frames(make_clip(frames=8, height=16, width=64), num_frames=8, image_size=64)
    pad_rows = torch.cat([frames[:, :, :20], frames[:, :, 44:]], dim=2)  # 24 rows above and below the picture
    assert pad_rows.abs().max() < 0.02  # mean colour 127 -> about 0 after SigLIP normalisation


def test_short_clip_policies(make_clip: Callable[..., Path]) -> None:
    path = make_clip("short.mp4", frames=3)
    repeat = load_frames(path, num_frames=8, image_size=8)
    assert _grey_levels(repeat) == pytest.approx([10, 10, 10, 25, 25, 40, 40, 40], abs=3)
    black = load_frames(path, num_frames=8, image_size=8, short_clip="black")
    assert _grey_levels(black)[:3] == pytest.approx([10, 25, 40], abs=3)  # the clip's own frames first
    assert torch.equal(black[3:], torch.full_like(black[3:], -1.0))  # then black frames, as HumanOmni appends
    with pytest.raises(MediaError, match=r"short\.mp4: too few frames \(3 frames, 8 needed\)"):
        load_frames(path, num_frames=8, image_size=8, short_clip="error")
    loader = MediaLoader(image_size=8, audio_seconds=3)
    loader.load(_sample(path, "short"))
    assert len(loader.report) == 0 and loader.report  # nothing skipped, one short clip to report
    assert loader.report.summary() == "1 clip had fewer than 8 frames (short_clip=repeat): short (3)"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "missing file"),
        (b"", "empty file"),
        (b"\x00garbage" * 500, "unreadable"),
    ],
)
def test_bad_files_raise_media_error_naming_the_file(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    for load in (lambda: load_frames(path, image_size=8), lambda: load_audio(path)):
        with pytest.raises(MediaError) as error:
            load()
        assert error.value.reason == reason
        assert error.value.path == path
        assert str(error.value).startswith(f"{path}: {reason}")


def test_truncated_mp4_is_unreadable(make_clip: Callable[..., Path]) -> None:
    path = make_clip()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="unreadable"):
        load_frames(path, image_size=8)


def test_audio_from_the_video_container(make_clip: Callable[..., Path]) -> None:
    wave = load_audio(make_clip(audio_seconds=1.5))
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.shape[0] - 24000) <= 2048  # AAC adds up to one frame of priming samples
    assert 0.25 < wave.abs().max() < 0.35  # the 0.3 sine, not silence


def test_video_without_audio_track(make_clip: Callable[..., Path]) -> None:
    path = make_clip(audio_seconds=None)
    with pytest.raises(MediaError, match=r"no audio track \(the container has no audio stream\)"):
        load_audio(path)
    assert load_frames(path, image_size=8).shape == (8, 3, 8, 8)  # its frames are fine


def test_audio_files_are_resampled_and_mixed_to_mono(tmp_path: Path) -> None:
    time = np.arange(44100) / 44100
    soundfile.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * time), 44100)
    wave = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert wave.shape == (16000,)  # 1 s at 16 kHz
    assert wave.abs().max() == pytest.approx(0.5, abs=0.01)
    stereo = np.stack([np.full(8000, 0.2), np.full(8000, 0.6)], axis=1)
    soundfile.write(tmp_path / "b.flac", stereo, 16000)
    assert load_audio(tmp_path / "b.flac").mean().item() == pytest.approx(0.4, abs=1e-3)  # channel average


def test_bad_audio_files(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk" * 10)
    with pytest.raises(MediaError, match=r"bad\.wav: unreadable"):
        load_audio(tmp_path / "bad.wav")
    soundfile.write(tmp_path / "silent.wav", np.zeros((0, 1)), 16000)
    with pytest.raises(MediaError, match=r"silent\.wav: no audio samples"):
        load_audio(tmp_path / "silent.wav")


def test_loader_gives_frames_and_mel(make_clip: Callable[..., Path], tmp_path: Path) -> None:
    loader = MediaLoader(image_size=16, num_frames=8, audio_seconds=3, n_mels=128)
    item = loader.load(_sample(make_clip()))
    assert item.frames.shape == (8, 3, 16, 16)
    assert item.mel.shape == (128, 300)
    assert item.skip is None
    assert loader.load(_sample(make_clip()), audio=False).mel is None  # visual-only on request
    soundfile.write(tmp_path / "a.wav", np.zeros(8000) + 0.1, 16000)
    audio_only = loader.load(_sample(None, audio=tmp_path / "a.wav"))
    assert audio_only.frames is None and audio_only.mel.shape == (128, 300)


def test_loader_skip_policy_counts_each_problem_once(make_clip: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    samples = [
        _sample(make_clip("good.mp4"), "good"),
        _sample(tmp_path / "missing.mp4", "missing"),
        _sample(make_clip("mute.mp4", audio_seconds=None), "mute"),
        _sample(tmp_path / "empty.mp4", "empty"),
        _sample(make_clip("short.mp4", frames=5), "short"),
    ]
    loader = MediaLoader(image_size=8, audio_seconds=3, on_error="skip")
    for _ in range(2):  # a second epoch must not double the counts
        items = loader.load_many(samples)
    assert [item.skip is None for item in items] == [True, False, False, False, True]
    assert items[2].frames is None and items[2].mel is None  # a skipped sample carries nothing
    assert items[2].skip.reason == "no audio track" and items[2].skip.sample_id == "mute"
    assert loader.report.counts() == {"missing file": 1, "no audio track": 1, "empty file": 1}
    assert len(loader.report) == 3
    assert loader.report and not MediaLoader(image_size=8).report  # truthy when anything is to be reported
    summary = loader.report.summary()
    assert "3 clips were skipped (on_error=skip):" in summary
    assert "1 clip had fewer than 8 frames (short_clip=repeat): short (5)" in summary


def test_loader_raise_policy_names_the_sample(tmp_path: Path) -> None:
    loader = MediaLoader(image_size=8)
    with pytest.raises(MediaError, match=r"sample 'gone': .*gone\.mp4: missing file"):
        loader.load(_sample(tmp_path / "gone.mp4", "gone"))


def test_cache_returns_identical_tensors_and_follows_file_changes(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_clip(frames=16)
    cached = MediaLoader(image_size=16, audio_seconds=3, cache_dir=tmp_path / "cache", memory_mb=0)
    plain = MediaLoader(image_size=16, audio_seconds=3, memory_mb=0)
    assert not (tmp_path / "cache").exists()  # created by the first write, not before
    first, second = cached.load(_sample(path)), cached.load(_sample(path))
    reference = plain.load(_sample(path))
    entries = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(entries) == 2  # frames (uint8) and waveform
    assert torch.equal(first.frames, reference.frames) and torch.equal(second.frames, reference.frames)
    assert torch.equal(first.mel, reference.mel) and torch.equal(second.mel, reference.mel)

    entries[0].write_bytes(b"damaged")  # a damaged entry is rebuilt, not trusted
    assert torch.equal(cached.load(_sample(path)).frames, reference.frames)

    make_clip(frames=12)  # same path, new content and mtime: a new key
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = cached.load(_sample(path))
    assert len(sorted((tmp_path / "cache").rglob("*.safetensors"))) == 4
    assert torch.equal(changed.frames, plain.load(_sample(path)).frames)
    assert not torch.equal(changed.frames, reference.frames)


def test_memory_serves_the_same_tensors_without_reading_and_follows_file_changes(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_clip(frames=16)
    remembered = MediaLoader(image_size=16, audio_seconds=3, cache_dir=tmp_path / "cache")
    plain = MediaLoader(image_size=16, audio_seconds=3, memory_mb=0)
    reference = plain.load(_sample(path))
    first = remembered.load(_sample(path))
    shutil.rmtree(tmp_path / "cache")  # a second decode or disk read would write the entries again
    second = remembered.load(_sample(path))
    assert not (tmp_path / "cache").exists()
    assert second.frames is first.frames and second.mel is first.mel  # served from memory
    assert torch.equal(second.frames, reference.frames) and torch.equal(second.mel, reference.mel)
    assert remembered.load(_sample(path), audio=False).frames is first.frames  # per modality
    assert len(remembered.memory) == 2 and remembered.memory.bytes == 8 * 3 * 16 * 16 * 4 + 128 * 300 * 4

    make_clip(frames=12)  # same path, new content and mtime: a new key, never the remembered tensors
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = remembered.load(_sample(path))
    assert torch.equal(changed.frames, plain.load(_sample(path)).frames)
    assert not torch.equal(changed.frames, reference.frames)

    one_clip = 8 * 3 * 16 * 16 * 4 / 2**20  # room for one clip's frames: the least recently used is dropped
    small = MediaLoader(image_size=16, audio_seconds=3, memory_mb=one_clip)
    for name in ("a.mp4", "b.mp4", "a.mp4"):
        small.load(_sample(make_clip(name)), audio=False)
    assert len(small.memory) == 1 and small.memory.evicted == 2 and small.memory.bytes <= one_clip * 2**20
    with pytest.raises(ValueError, match="media_memory_mb must be >= 0"):
        MediaLoader(image_size=8, memory_mb=-1)


def test_loader_rejects_unknown_policies() -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'; got 'ignore'"):
        MediaLoader(image_size=8, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="short_clip must be 'repeat', 'black' or 'error'; got 'pad'"):
        MediaLoader(image_size=8, short_clip="pad")  # type: ignore[arg-type]
