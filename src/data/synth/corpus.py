"""Rendering a planned corpus to disk, and :func:`ensure_corpus` to build it once and reuse it.

Layout of a corpus folder::

    DIR/clips/synth_00000.mp4    h264 + aac, ``size`` px, ``fps`` fps, ``seconds`` s, 16 kHz mono
    DIR/au/synth_00000.csv       OpenFace 2 AU csv of the drawn face
    DIR/manifest.jsonl           one row per clip (dataset "synth", reasoning parts, dominant, au_csv, ...)
    DIR/corpus.json              the generator parameters and counts per split/label/dominant/cue

Clips render independently from their own seeds, in worker processes when there are enough of them; the
result is the same for any number of workers.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from src import atomic
from src.data.manifest import Reasoning, Sample, write_manifest
from src.data.synth import text
from src.data.synth.au_csv import write_au_csv
from src.data.synth.face import au_track, random_identity, random_pose, render_face
from src.data.synth.mp4 import write_mp4
from src.data.synth.plan import GENERATOR_VERSION, ClipPlan, SynthConfig, plan_corpus
from src.data.synth.spec import AU_PROTOTYPES, voice_for
from src.data.synth.voice import random_speaker, synthesize_brief_voice, synthesize_voice

MANIFEST_NAME = "manifest.jsonl"
INFO_NAME = "corpus.json"


STREAMS = 4  # independent random streams per clip: face, voice, AU noise, text


def _spans(plan: ClipPlan) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(visual, audio) brief-display spans: the conflict regime's non-dominant modality lasts only plan.span."""
    return (plan.span if plan.dominant == "audio" else None, plan.span if plan.dominant == "visual" else None)


def render_clip(plan: ClipPlan, config: SynthConfig, out_dir: Path) -> Sample:
    """Write the clip and AU csv of ``plan`` under ``out_dir`` and return its manifest sample."""
    streams = np.random.SeedSequence(plan.seed).spawn(STREAMS)
    face_rng, voice_rng, csv_rng = (np.random.default_rng(stream) for stream in streams[:3])
    frames = round(config.seconds * config.fps)
    visual_emotion, visual_intensity, _ = plan.visual
    audio_emotion, audio_intensity, _ = plan.audio
    visual_span, audio_span = _spans(plan)

    aus = au_track(
        AU_PROTOTYPES[visual_emotion],
        visual_intensity,
        frames=frames,
        fps=config.fps,
        rng=face_rng,
        span=visual_span,
    )
    identity, pose = random_identity(face_rng, config.variation), random_pose(face_rng, config.size)
    video = render_face(aus, identity, pose, size=config.size, fps=config.fps, rng=face_rng)
    voice = voice_for(audio_emotion, audio_intensity)
    speaker = random_speaker(voice_rng)
    if audio_span is None:
        wave = synthesize_voice(
            voice, speaker, seconds=config.seconds, sample_rate=config.sample_rate, rng=voice_rng
        )
    else:
        wave = synthesize_brief_voice(
            voice, speaker, audio_span, seconds=config.seconds, sample_rate=config.sample_rate, rng=voice_rng
        )
    clip = out_dir / "clips" / f"{plan.id}.mp4"
    au_csv = out_dir / "au" / f"{plan.id}.csv"
    write_mp4(clip, video, fps=config.fps, audio=wave, sample_rate=config.sample_rate)
    write_au_csv(au_csv, aus, fps=config.fps, rng=csv_rng)
    return clip_sample(plan, config, clip, au_csv)


def clip_sample(plan: ClipPlan, config: SynthConfig, clip: Path, au_csv: Path) -> Sample:
    """The manifest sample of ``plan``: its reasoning text and ``extra.synth`` (what each modality shows).

    Needs no media (the text has its own random stream), so the text of a whole corpus can be made in
    milliseconds, as :func:`render_clip` makes it.
    """
    text_rng = np.random.default_rng(np.random.SeedSequence(plan.seed).spawn(STREAMS)[3])
    visual_emotion, visual_intensity, visual_strength = plan.visual
    audio_emotion, audio_intensity, audio_strength = plan.audio
    reasoning = Reasoning(
        visual=text.describe("visual", visual_emotion, visual_strength, text_rng, config.phrasings, config.regime),
        audio=text.describe("audio", audio_emotion, audio_strength, text_rng, config.phrasings, config.regime),
        think=text.think(plan.label, plan.dominant, text_rng, config.phrasings),
    )
    misleading = plan.misleading_emotion
    shows: dict[str, dict[str, Any]] = {
        "visual": {"emotion": visual_emotion, "intensity": round(visual_intensity, 4)},
        "audio": {"emotion": audio_emotion, "intensity": round(audio_intensity, 4)},
    }
    synth: dict[str, Any] = {"cue": plan.cue, **shows}
    if config.regime != "faint":  # the faint regime's rows stay byte-for-byte as before regimes
        synth["regime"] = config.regime
        for modality, span in zip(("visual", "audio"), _spans(plan)):
            if span is not None:
                shows[modality]["span"] = list(span)  # seconds of the brief display
    return Sample(
        id=plan.id,
        label=plan.label,
        dataset="synth",
        split=plan.split,
        video=clip,
        audio=None,
        reasoning=reasoning,
        secondary_labels=(misleading,) if misleading else (),
        dominant=plan.dominant,
        au_csv=au_csv,
        extra={"synth": synth},
    )


def _render_job(job: tuple[ClipPlan, SynthConfig, Path]) -> Sample:
    return render_clip(*job)


def generate_corpus(out_dir: str | os.PathLike[str], config: SynthConfig, *, workers: int | None = None) -> Path:
    """Render the whole corpus of ``config`` into ``out_dir`` (created); returns the manifest path.

    Args:
        workers: processes rendering clips; None uses every core (one process for small corpora).
    """
    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    (out_dir / "au").mkdir(parents=True, exist_ok=True)
    plans = plan_corpus(config)
    jobs = [(plan, config, out_dir) for plan in plans]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers > 1 and len(plans) >= 4 * workers:
        # fork where available: unlike spawn it works from any caller, also a script without a main guard; the
        # workers only run numpy and PyAV, never the caller's torch/OpenMP thread pools.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            samples = pool.map(_render_job, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    else:
        samples = [_render_job(job) for job in jobs]
    manifest = write_manifest(samples, out_dir / MANIFEST_NAME)
    info = {
        "generator": "src.data.synth",
        "regime": config.regime,
        "version": GENERATOR_VERSION,
        "params": config.to_dict(),
        "counts": corpus_counts(samples),
    }
    (out_dir / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return manifest


def corpus_counts(samples: list[Sample]) -> dict[str, dict[str, int]]:
    """Clips per split, label, dominant modality and non-dominant cue."""
    return {
        "split": dict(sorted(Counter(s.split for s in samples).items())),
        "label": dict(sorted(Counter(s.label for s in samples).items())),
        "dominant": dict(sorted(Counter(str(s.dominant) for s in samples).items())),
        "cue": dict(sorted(Counter(s.extra["synth"]["cue"] for s in samples).items())),
    }


def is_current(out_dir: Path, config: SynthConfig) -> bool:
    """Whether ``out_dir`` holds a complete corpus made with exactly ``config``."""
    info_path, manifest = out_dir / INFO_NAME, out_dir / MANIFEST_NAME
    if not (info_path.is_file() and manifest.is_file()):
        return False
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("params") == json.loads(json.dumps(config.to_dict()))


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``; no-op elsewhere), so concurrent callers generate once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: staging + rename still keep the corpus whole
        yield
        return
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_corpus(
    out_dir: str | os.PathLike[str], n: int = 200, seed: int = 0, *, workers: int | None = None, **options: Any
) -> Path:
    """The manifest of the corpus in ``out_dir``, generating it only when missing or made with other parameters.

    Concurrent callers (DDP ranks) take turns on a lock file beside ``out_dir`` (``.<name>.lock``): the first
    generates, the others find the corpus current. Generation goes to a temporary sibling folder renamed into
    place when complete, so an interrupted run never leaves a half corpus. A folder with visible files but no
    ``corpus.json`` is never overwritten; hidden entries (a media cache kept inside) go with the old corpus.

    Args:
        options: further :class:`SynthConfig` fields (``size``, ``fps``, ``seconds``, mixes, ...).
    """
    out_dir = Path(out_dir)
    config = SynthConfig(n=n, seed=seed, **options)
    if is_current(out_dir, config):
        return out_dir / MANIFEST_NAME
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir.parent / f".{out_dir.name}.lock"):
        if is_current(out_dir, config):  # made by another process while this one waited
            return out_dir / MANIFEST_NAME
        # Hidden entries (e.g. a media cache kept inside the corpus folder) do not make it someone else's folder.
        visible = (
            [entry for entry in out_dir.iterdir() if not entry.name.startswith(".")] if out_dir.exists() else []
        )
        if visible and not (out_dir / INFO_NAME).is_file():
            raise FileExistsError(
                f"{out_dir} is not empty and holds no {INFO_NAME}: refusing to replace it with a corpus"
            )
        with atomic.replacing_folder(
            out_dir
        ) as staging:  # an outdated corpus is replaced once the new one is whole
            generate_corpus(staging, config, workers=workers)
    return out_dir / MANIFEST_NAME
