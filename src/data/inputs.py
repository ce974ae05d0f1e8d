"""The one way a command reads its clips: the manifest's checks, then each clip's media once, one error policy.

Training (:class:`~src.data.datamodule.EmotionDataModule`), the MIGR build (:mod:`src.migr.build`) and evaluation
(:mod:`src.evaluation.runner`, whose clips are decoded while generating by the same :class:`MediaLoader`) all call
:func:`load_inputs`, and explaining single clips (:mod:`src.evaluation.explain`, no manifest) calls its decoding
step :func:`decode_clips`, so a broken manifest or clip gets the same answer everywhere (the README's table "What
bad input gets"):

* a problem of the manifest itself (bytes that are not UTF-8, bad JSON, a missing field, a label that is not an
  emotion of the dataset, a duplicate id, ...) is a :class:`~src.data.manifest.ManifestError` naming file and line,
  whatever the policy: the manifest needs fixing;
* a problem of one clip (a missing, empty, truncated or undecodable file, no audio track, no frames) is, under
  ``on_error="raise"``, an error naming the manifest line, the sample and the file; under ``on_error="skip"`` the
  clip is left out and counted by reason in the :class:`~src.data.media_report.SkipReport`, whose summary is
  logged (file names that are not UTF-8 escaped, so the summary always reaches the log);
* a clip shorter than ``num_frames`` is filled in by ``short_clip`` and counted in the same report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from src.data.manifest import Sample, read_manifest
from src.data.media import MediaLoader
from src.data.media_report import SkipReport

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """The usable samples of a manifest and the account of what was skipped or filled in."""

    samples: list[Sample]
    report: SkipReport


def load_inputs(
    manifest: str | os.PathLike[str],
    *,
    on_error: str,
    loader: MediaLoader | None = None,
    select: Callable[[list[Sample]], list[Sample]] | None = None,
) -> Inputs:
    """Read ``manifest`` under ``on_error`` and, given a ``loader``, decode each selected clip once under the
    loader's policy (filling its cache).

    Args:
        manifest: the JSONL manifest.
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring); the loader's policy must agree.
        loader: decodes the clips; its ``report`` is the one returned. None: the manifest's checks only (missing
            files included), the media are decoded later by the caller.
        select: keeps the samples the command uses (a split, a limit) before any clip is decoded.

    Raises:
        ManifestError: a problem of the manifest, or a missing file under ``on_error="raise"``.
        MediaError: a clip that cannot be decoded under ``on_error="raise"``.
    """
    if loader is not None and loader.on_error != on_error:
        raise ValueError(f"on_error={on_error!r} but the media loader's policy is {loader.on_error!r}")
    report = loader.report if loader is not None else SkipReport()
    samples = read_manifest(manifest, on_error=on_error, report=report)
    if select is not None:
        samples = select(samples)
    if loader is not None:
        samples = decode_clips(samples, loader)
    if report:
        log.warning("media problems (on_error=%s):\n%s", on_error, report.summary())
    return Inputs(samples=samples, report=report)


def decode_clips(
    samples: Sequence[Sample], loader: MediaLoader, *, video: bool = True, audio: bool = True
) -> list[Sample]:
    """Decode each of ``samples`` once under the loader's policy (filling its cache); returns the usable ones.

    Under ``on_error="raise"`` the first clip that cannot be decoded raises a
    :class:`~src.data.media.MediaError` naming its manifest line (when it came from one), its sample id and its
    file; under ``"skip"`` it is left out and counted in ``loader.report``. ``video`` / ``audio``: the modalities
    the command will use (a video explained from its frames only is not asked for its sound).
    """
    return [sample for sample in samples if loader.load(sample, video=video, audio=audio).skip is None]
