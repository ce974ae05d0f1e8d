"""Datasets, a resumable sampler, and the LightningDataModule every stage trains on.

* :class:`EmotionDataset` turns a manifest :class:`~src.data.manifest.Sample` into an
  :class:`~src.data.collate.Example`: prompt for the task (``label`` / ``reasoning``), target text, media for
  the modalities the row presents. With ``modality_dropout`` (the ``base`` warm-up) each row is shown
  audio-visual, audio-only or visual-only, drawn from (seed, epoch, index) so runs are reproducible and a
  resumed run sees the same rows.
* :class:`ResumableSampler` shuffles by (seed, epoch), shards across ranks like ``DistributedSampler`` and can
  skip what an interrupted run already consumed: the data position survives a SIGKILL.
* :class:`EmotionDataModule` reads the manifest, optionally builds the synthetic corpus on first use, checks
  every clip once under the ``on_error`` policy (``skip`` drops and lists bad clips before training, so all
  ranks see the same data), and serves right-padded training batches.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from src.data.collate import Batch, Example, OmniCollator
from src.data.inputs import load_inputs
from src.data.manifest import Sample, read_manifest
from src.data.media import MediaLoader
from src.data.prompts import build_prompt, instruction_for
from src.data.reasoning import build_target
from src.data.sources import prepare_manifest

log = logging.getLogger(__name__)

CONDITIONS = {"av": (True, True), "v": (True, False), "a": (False, True)}


def target_text(sample: Sample, task: str) -> str:
    """The SFT target of ``sample``: the bare label (``label`` task) or the tagged explanation.

    A reasoning target comes from ``extra["target"]`` when the MIGR build wrote one (modality-aligned order),
    else from the sample's own reasoning parts in the fixed visual-first order of the source corpora.
    """
    if task == "label":
        return sample.label
    if "target" in sample.extra:
        return str(sample.extra["target"])
    parts = sample.reasoning
    if parts is None:
        return build_target(visual=None, audio=None, think=None, answer=sample.label)
    return build_target(
        visual=parts.visual, audio=parts.audio, think=parts.think, answer=sample.label, first="visual"
    )


def _condition_key(sample: Sample, choice: str) -> str:
    """The condition a row can really show: the chosen one, or what the sample has when that is absent."""
    want_video, want_audio = CONDITIONS[choice]
    video = want_video and sample.video is not None
    audio = want_audio and sample.audio_source is not None
    if not (video or audio):
        video, audio = sample.video is not None, sample.audio_source is not None
    return {(True, True): "av", (True, False): "v", (False, True): "a"}[(video, audio)]


class EmotionDataset(Dataset):
    """Manifest samples -> :class:`Example` rows, indexed by ``(index, epoch)`` (see :class:`ResumableSampler`).

    Args:
        samples: the split's samples (already filtered by the error policy).
        loader: decodes media (shared cache).
        task: "label" (bare-label target, label instruction) or "reasoning" (tagged explanation).
        with_targets: False for generation-only datasets (evaluation).
        modality_dropout: ``{"av": p, "a": p, "v": p}`` probabilities, or None to always show what the sample has.
        condition: force one condition for every row ("av" | "a" | "v"), e.g. for MI or ablations.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        loader: MediaLoader,
        *,
        task: str,
        with_targets: bool = True,
        modality_dropout: Mapping[str, float] | None = None,
        condition: str | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.loader = loader
        self.task = task
        self.instruction = instruction_for(task)
        self.with_targets = with_targets
        self.seed = seed
        self.condition = condition
        self.dropout: tuple[list[str], list[float]] | None = None
        if modality_dropout:
            unknown = set(modality_dropout) - set(CONDITIONS)
            if unknown or not sum(modality_dropout.values()) > 0:
                raise ValueError(
                    f"stage.modality_dropout={dict(modality_dropout)} must map some of {sorted(CONDITIONS)} to "
                    "non-negative probabilities with a positive sum"
                )
            self.dropout = (list(modality_dropout), [float(p) for p in modality_dropout.values()])

    def __len__(self) -> int:
        return len(self.samples)

    def choose_condition(self, index: int, epoch: int) -> str:
        sample = self.samples[index]
        if self.condition is not None:
            choice = self.condition
        elif self.dropout is not None:
            rng = random.Random(f"{self.seed}/{epoch}/{index}")
            choice = rng.choices(self.dropout[0], weights=self.dropout[1])[0]
        else:
            choice = "av"
        return _condition_key(sample, choice)

    def __getitem__(self, key: int | tuple[int, int]) -> Example:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        condition = self.choose_condition(index, epoch)
        show_video, show_audio = CONDITIONS[condition]
        item = self.loader.load(sample, video=show_video, audio=show_audio)
        if item.skip is not None:
            raise RuntimeError(
                f"{sample.id}: media failed after the pre-check ({item.skip.reason}: {item.skip.path})"
            )
        return Example(
            prompt=build_prompt(self.instruction, has_video=show_video, has_audio=show_audio),
            target=target_text(sample, self.task) if self.with_targets else None,
            frames=item.frames,
            mel=item.mel,
            instruction=self.instruction,
            meta={
                "id": sample.id,
                "label": sample.label,
                "dataset": sample.dataset,
                "dominant": sample.dominant,
                "condition": condition,
                "secondary_labels": list(sample.secondary_labels),
                **{k: v for k, v in sample.extra.items() if k != "target"},
            },
        )


class ResumableSampler(Sampler):
    """Yields ``(index, epoch)`` in a (seed, epoch)-shuffled order, this rank's share, resumable mid-epoch.

    Every rank gets ``ceil(n / world_size)`` indices (wrapping around, as ``DistributedSampler`` pads).
    :meth:`skip_next` drops the first ``k`` indices of the next iteration only.
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, num_indices: int) -> None:
        self._skip = num_indices

    def _order(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        per_rank = -(-self.size // self.world_size)
        padded = (order * (1 + per_rank * self.world_size // max(self.size, 1)))[: per_rank * self.world_size]
        return padded[self.rank :: self.world_size]

    def __len__(self) -> int:
        return -(-self.size // self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()[self._skip :]
        self._skip = 0
        return iter([(i, self.epoch) for i in order])


@dataclass
class DataConfig:
    """The ``data`` config group (see ``configs/data/*.yaml``)."""

    dataset: str
    manifest: str
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 0
    cache_dir: str | None = None
    media_memory_mb: float = 1024  # model-ready frames/log-mels kept in memory across epochs (MediaLoader)
    on_error: str = "raise"
    short_clip: str = "repeat"
    max_length: int | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    limit_val_samples: int | None = 64
    synth: Mapping[str, Any] | None = None  # {n, seed}: build the synthetic corpus on first use


class EmotionDataModule(L.LightningDataModule):
    """Train/val loaders for one stage; tokenizers and token counts come from the model being trained."""

    def __init__(
        self,
        data: DataConfig,
        *,
        tokenizer,
        gate_tokenizer,
        num_video_tokens: int,
        num_audio_tokens: int,
        image_size: int,
        num_frames: int,
        audio_seconds: int,
        task: str,
        modality_dropout: Mapping[str, float] | None = None,
        seed: int = 0,
        with_targets: bool = True,
        preprocess: str = "migr",
        wrap_media: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = data
        self.task = task
        self.with_targets = with_targets
        self.modality_dropout = modality_dropout
        self.seed = seed
        self.collator = OmniCollator(
            tokenizer,
            gate_tokenizer,
            num_video_tokens=num_video_tokens,
            num_audio_tokens=num_audio_tokens,
            padding_side="right" if with_targets else "left",  # prompt-only batches are generated from
            max_length=data.max_length,
            wrap_media=wrap_media,
        )
        self.media = MediaLoader(
            image_size=image_size,
            num_frames=num_frames,
            audio_seconds=audio_seconds,
            cache_dir=data.cache_dir,
            memory_mb=data.media_memory_mb,
            on_error=data.on_error,  # type: ignore[arg-type]
            short_clip=data.short_clip,  # type: ignore[arg-type]
            preprocess=preprocess,
        )
        self.splits: dict[str, list[Sample]] = {}
        self.train_sampler: ResumableSampler | None = None

    def prepare_data(self) -> None:
        if self.cfg.synth:  # every option of data.synth, as the build and evaluation pass them
            prepare_manifest({"manifest": self.cfg.manifest, "synth": self.cfg.synth})

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.cfg.synth:  # every rank needs the corpus; prepare_data ran on rank 0 only
            self.prepare_data()
        samples = read_manifest(self.cfg.manifest, check_media=False)  # the splits present, for the message
        usable = load_inputs(self.cfg.manifest, on_error=self.cfg.on_error, loader=self.media).samples
        for split in (self.cfg.train_split, self.cfg.val_split, self.cfg.test_split):
            self.splits[split] = [s for s in usable if s.split == split]
        if not self.splits[self.cfg.train_split]:
            found = sorted({s.split for s in samples})
            raise ValueError(
                f"{self.cfg.manifest}: no samples with split {self.cfg.train_split!r} (data.train_split); "
                f"splits present: {found}"
            )

    def train_batches_per_epoch(self, world_size: int = 1) -> int:
        """Batches one rank sees per epoch (the sampler pads ranks to equal length)."""
        per_rank = -(-len(self.splits[self.cfg.train_split]) // world_size)
        return -(-per_rank // self.cfg.batch_size)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, dataset: Dataset, sampler: ResumableSampler, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        dataset = EmotionDataset(
            self.splits[self.cfg.train_split],
            self.media,
            task=self.task,
            with_targets=self.with_targets,
            modality_dropout=self.modality_dropout,
            seed=self.seed,
        )
        self.train_sampler = ResumableSampler(
            len(dataset), seed=self.seed, shuffle=True, rank=rank, world_size=world
        )
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.global_step > 0:
            # Resuming: skip the batches of the current epoch that the checkpointed run already trained on.
            per_epoch = -(-len(self.train_sampler) // self.cfg.batch_size)
            accumulate = trainer.accumulate_grad_batches
            done = trainer.global_step * accumulate - trainer.current_epoch * per_epoch
            if 0 < done < per_epoch:
                self.train_sampler.set_epoch(trainer.current_epoch)
                self.train_sampler.skip_next(done * self.cfg.batch_size)
                log.info("resuming epoch %d at batch %d of %d", trainer.current_epoch, done, per_epoch)
        return self._loader(dataset, self.train_sampler, self.cfg.batch_size)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._world()
        samples = self.splits.get(self.cfg.val_split) or []
        if self.cfg.limit_val_samples is not None:
            samples = samples[: self.cfg.limit_val_samples]
        if not samples:
            return []  # type: ignore[return-value]
        dataset = EmotionDataset(
            samples, self.media, task=self.task, with_targets=self.with_targets, seed=self.seed
        )
        sampler = ResumableSampler(len(dataset), seed=self.seed, shuffle=False, rank=rank, world_size=world)
        return self._loader(dataset, sampler, self.cfg.eval_batch_size)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)
