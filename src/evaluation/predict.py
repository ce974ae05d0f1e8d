"""Generating explanations for manifest samples, batch by batch, into :class:`PredictionRecord`s.

Each sample is shown with every modality it has (audio-visual for ordinary clips) and the task's instruction
(``reasoning``: MIGR's tagged format; ``r1omni``: released R1-Omni/ERV checkpoints). Media are decoded by a
``DataLoader`` (``num_workers`` processes decode while the model generates), prompts are left padded, and
:func:`src.models.generation.generate` decodes with the KV cache. With ``attention`` on, an
:class:`~src.analysis.attention.AttentionProbe` records the chosen layer's attention shares at every step and
each record carries its 100-bin curves.

Greedy decoding (``temperature=0``) gives the same completions however a run is interrupted and resumed.
Sampling (``temperature > 0``) draws from a generator seeded by ``(seed, first sample id of the batch)``: a batch
of the same samples draws the same completions on every run, so a run killed between batches resumes exactly;
samples whose batch was cut short (or shifted by skipped clips) are drawn anew, an equally valid sample.

Clips that fail to decode follow the loader's ``on_error`` policy: ``raise`` stops with the file and reason,
``skip`` leaves them out and returns them in :attr:`PredictStats.skipped` (listed in ``metrics.json`` and the
report; they are retried on the next run).
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from src.analysis.attention import DEFAULT_BINS, PARTS, AttentionProbe, share_curve
from src.data.collate import Example, OmniCollator
from src.data.labels import normalize_label
from src.data.manifest import Sample
from src.data.media import MediaLoader, SkipRecord
from src.data.prompts import build_prompt, instruction_for
from src.data.reasoning import parse_completion
from src.evaluation.predictions import PredictionRecord
from src.evaluation.settings import Decoding
from src.models.checkpoint import LoadedModel
from src.models.generation import generate


@dataclass(frozen=True)
class GenerationSettings(Decoding):
    """How completions are produced (the ``evaluate.yaml`` keys of the same names).

    ``attention_layer`` is a 0-based layer index (None: the paper's relative depth); ``mi_key`` names the ``Sample.extra`` field holding a
    separately estimated dominant modality (recorded as ``mi_dominant`` when present).
    """

    num_workers: int = 0
    attention: bool = True
    attention_layer: int | None = None
    attention_bins: int = DEFAULT_BINS
    mi_key: str = "mi_dominant"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be at least 1")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be at least 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be 0 (greedy) or positive")
        instruction_for(self.task)  # unknown tasks fail here with the known ones listed


@dataclass
class PredictStats:
    """What one :func:`predict` call did."""

    generated: int = 0
    skipped: list[SkipRecord] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0


class _EvalRows(Dataset):
    """Samples -> ``(position, Example)`` or ``(position, SkipRecord)`` under the loader's error policy."""

    def __init__(
        self,
        samples: Sequence[Sample],
        loader: MediaLoader,
        task: str,
        prefixes: Mapping[str, str] | None = None,
        *,
        video: bool = True,
        audio: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.loader = loader
        self.instruction = instruction_for(task)
        self.video, self.audio = video, audio
        self.prefixes = prefixes or {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int) -> tuple[int, Example | SkipRecord]:
        sample = self.samples[position]
        item = self.loader.load(sample, video=self.video, audio=self.audio)
        if item.skip is not None:
            return position, item.skip
        has_video, has_audio = item.frames is not None, item.mel is not None
        return position, Example(
            prompt=build_prompt(self.instruction, has_video=has_video, has_audio=has_audio)
            + self.prefixes.get(sample.id, ""),
            target=None,
            frames=item.frames,
            mel=item.mel,
            instruction=self.instruction,
            meta={"id": sample.id},
        )


def _as_list(items: list[tuple[int, Example | SkipRecord]]) -> list[tuple[int, Example | SkipRecord]]:
    return items  # skipped clips are taken out before the examples are collated


def predict(
    loaded: LoadedModel,
    samples: Sequence[Sample],
    loader: MediaLoader,
    settings: GenerationSettings,
    *,
    on_batch: Callable[[list[PredictionRecord]], None],
    progress: bool = True,
    video: bool = True,
    audio: bool = True,
    prefixes: Mapping[str, str] | None = None,
) -> PredictStats:
    """Generate a record for every sample (in order, ``settings.batch_size`` at a time).

    ``on_batch`` receives each batch's records as soon as they exist (the caller appends them to
    ``predictions.jsonl``). ``video=False`` / ``audio=False`` leave that modality out of every prompt (the
    sample's other modality alone: Modality Importance's single-modality conditions, a video without sound).
    ``prefixes[sample id]`` is text teacher-forced after the prompt (the start of the assistant's answer, e.g. a
    description segment; :mod:`src.evaluation.anchoring`): the record's ``completion`` is then what the model
    wrote after it. Returns counts, skipped clips and timing.
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    counts = model.token_counts()
    collator = OmniCollator(
        tokenizer,
        loaded.gate_tokenizer,
        num_video_tokens=counts["video"],
        num_audio_tokens=counts["audio"],
        padding_side="left",
        wrap_media=model.config.wrap_media_tokens,
    )
    rows = DataLoader(
        _EvalRows(samples, loader, settings.task, prefixes, video=video, audio=audio),
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.num_workers,
        collate_fn=_as_list,
    )
    device = next(model.parameters()).device
    stats = PredictStats()
    probe = AttentionProbe(model, settings.attention_layer) if settings.attention else None
    start = time.perf_counter()
    model.eval()
    with (
        probe if probe is not None else contextlib.nullcontext(),
        tqdm(total=len(samples), desc="generating", unit="clip", disable=not progress) as bar,
    ):
        for items in rows:
            stats.skipped.extend(item for _, item in items if isinstance(item, SkipRecord))
            kept = [(samples[position], item) for position, item in items if isinstance(item, Example)]
            if kept:
                chosen, examples = [sample for sample, _ in kept], [example for _, example in kept]
                records = _generate_batch(loaded, collator, examples, chosen, settings, probe, device)
                on_batch(records)
                stats.generated += len(records)
                stats.tokens += sum(record.num_tokens for record in records)
            bar.update(len(items))
    stats.seconds = time.perf_counter() - start
    return stats


def _generate_batch(
    loaded: LoadedModel,
    collator: OmniCollator,
    examples: list[Example],
    samples: list[Sample],
    settings: GenerationSettings,
    probe: AttentionProbe | None,
    device: torch.device,
) -> list[PredictionRecord]:
    tokenizer = loaded.tokenizer
    batch = collator(examples).to(device)
    generator = None
    if settings.temperature > 0:
        seed = zlib.crc32(f"{settings.seed}/{samples[0].id}".encode())
        generator = torch.Generator(device=device).manual_seed(seed)
    if probe is not None:
        probe.begin(batch.input_ids, batch.attention_mask)
    generation = generate(
        loaded.model,
        batch.input_ids,
        batch.attention_mask,
        batch.media,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        generator=generator,
    )
    lengths = generation.lengths.tolist()  # [B] tokens up to and including EOS
    tokens = generation.tokens.cpu()
    ended = (tokens == tokenizer.eos_token_id).any(dim=1).tolist()
    texts = tokenizer.batch_decode(
        [row[:length] for row, length in zip(tokens, lengths)], skip_special_tokens=True
    )
    steps = probe.steps_per_row(lengths) if probe is not None else [None] * len(samples)
    records = []
    for sample, text, length, has_eos, masses in zip(samples, texts, lengths, ended, steps):
        parsed = parse_completion(text)
        attention = None
        if masses is not None and len(masses):
            curve = share_curve(masses, settings.attention_bins)  # [bins, 3]
            attention = {part: [round(float(v), 5) for v in curve[:, k]] for k, part in enumerate(PARTS)}
        mi = sample.extra.get(settings.mi_key)
        records.append(
            PredictionRecord(
                id=sample.id,
                dataset=sample.dataset,
                label=sample.label,
                completion=text,
                answer=parsed.answer,
                prediction=normalize_label(parsed.answer, sample.dataset),
                first_segment=parsed.first_segment,
                well_formed=parsed.well_formed,
                num_tokens=int(length) - int(has_eos),
                truncated=not has_eos,
                dominant=sample.dominant,
                mi_dominant=str(mi) if mi is not None else None,
                secondary_labels=list(sample.secondary_labels),
                attention=attention,
            )
        )
    return records
