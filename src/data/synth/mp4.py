"""Writing a clip (RGB frames + mono audio) as an h264 + aac mp4 with PyAV, byte-for-byte reproducibly.

The same input always gives the same file: one encoder thread per clip (the corpus generator parallelises
over clips instead), and no macroblock-tree rate control, which in this libx264 build varies from run to run
on identical input (measured: 3 distinct files out of 6 encodes with it, 1 without).
"""

from __future__ import annotations

import os

import av
import numpy as np

VIDEO_CRF = "18"  # visually lossless at this size: the AU geometry must survive compression


def write_mp4(
    path: str | os.PathLike[str], frames: np.ndarray, *, fps: int, audio: np.ndarray | None, sample_rate: int
) -> None:
    """Write ``frames`` ``[T, H, W, 3]`` uint8 (H, W even) and ``audio`` ``[N]`` float32 (or None) to ``path``."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"h264 with yuv420p needs even frame sides; got {width}x{height}")
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": VIDEO_CRF, "x264-params": "threads=1:mbtree=0"}
        video.codec_context.thread_count = 1
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
            sound.bit_rate = 64000
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            for packet in video.encode(picture):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None and audio is not None:
            chunk = sound.codec_context.frame_size or 1024
            samples = np.ascontiguousarray(audio, dtype=np.float32)
            for start in range(0, samples.shape[0], chunk):
                piece = av.AudioFrame.from_ndarray(
                    samples[None, start : start + chunk], format="fltp", layout="mono"
                )
                piece.sample_rate, piece.pts = sample_rate, start
                for packet in sound.encode(piece):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
