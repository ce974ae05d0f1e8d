"""The paper's real-data recipe: new DFEW/MAFW training clips selected by FAU, given checked reasoning, merged.

The paper adds *new* DFEW/MAFW clips (not in the EMER reasoning set) whose AU pattern at the emotional peak frame
exactly matches their label (253 DFEW / 184 MAFW, section 4.3, following Emotion-LLaMA's construction), gives
them generated reasoning, keeps those whose reasoning a judge reads as the clip's label ("based on ERV, we align
samples where the emotion represented by the reasoning output matches the target emotion"), and merges them
with EMER for SFT. :func:`select_new_clips` does exactly that, in four counted steps:

1. candidates already in the EMER set are left out (``in_emer``);
2. the FAU filter (:func:`src.migr.fau.fau_filter`, ``method="peak"`` by default) keeps the clips whose face
   shows exactly their label (``fau_kept`` / ``fau_rejected``);
3. a reasoning source writes each kept clip's explanation (``reasoning_failed``: nothing usable came back,
   ``media_skipped``: the clip could not be decoded for the model):

   * ``template``: the FAU description of the matched AUs, a neutral audio sentence and a think line naming
     the label (:class:`TemplateSource`; deterministic, no model);
   * ``model``: a model folder (an SFT export, ERV, any released HumanOmni-layout checkpoint) watches the clip
     and writes its explanation with the reasoning prompt, through the project's generation code
     (:class:`ModelSource`); it is not told the label;
   * ``endpoint``: an OpenAI-compatible chat endpoint (the judge client of :mod:`src.judges.openai`, key from
     the environment) writes it from the label and the AUs of the peak frame, as Emotion-LLaMA's pipeline
     asks a language model (:class:`EndpointSource`);

4. the judge (any :mod:`src.judges` backend) reads the emotion of the explanation (descriptions and think, not
   the answer); clips it does not read as their label are rejected (``judge_rejected``).

The new clips follow the EMER rows (``merged``); the MIGR build then estimates Modality Importance on the
merged set and reorders it (:mod:`src.migr.build`, ``fau.mode=new_clips``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from src.data.labels import labels_for
from src.data.manifest import Reasoning, Sample
from src.data.openface import AU_PHRASES
from src.data.reasoning import parse_completion
from src.judges.base import Judge
from src.migr.fau import fau_filter

log = logging.getLogger(__name__)

NEUTRAL_AUDIO = "The voice gives no clear emotional cue of its own."
SOURCES = ("template", "model", "endpoint")
COUNTS = (
    "candidates", "in_emer", "fau_kept", "fau_rejected", "media_skipped", "reasoning_failed", "judge_accepted",
    "judge_rejected", "new", "emer", "merged",
)  # fmt: skip
ENDPOINT_PROMPT = (
    "You write training data for an emotion recognition model. A person in a video clip feels {label}. At the "
    "emotional peak of the clip, facial action-unit analysis finds: {aus}. Describe what the face shows and "
    "reason from it to the emotion, in this exact form and nothing else:\n"
    "<vis_desc>one or two sentences on the face</vis_desc>\n"
    "<aud_desc>one sentence on the voice, or that it gives no clear cue</aud_desc>\n"
    "<think>one or two sentences concluding that the emotion is {label}</think>"
)


@dataclass(frozen=True)
class Generated:
    """One clip's explanation from a reasoning source, or why there is none (``problem``)."""

    reasoning: Reasoning | None
    text: str = ""
    problem: str | None = None  # "media_skipped" | "reasoning_failed"


class ReasoningSource(Protocol):
    """Writes an explanation for each FAU-kept clip (the clip's ``extra["fau"]`` holds the matched AUs)."""

    name: str

    def explain(self, samples: Sequence[Sample]) -> list[Generated]: ...


@dataclass(frozen=True)
class Selection:
    """The merged SFT rows (EMER first, then the new clips), the new clips, the count of each step and, per
    rejected candidate, ``(id, step, detail)``."""

    merged: list[Sample]
    new: list[Sample]
    counts: dict[str, int]
    rejected: list[tuple[str, str, str]] = field(default_factory=list)

    def format_table(self) -> str:
        """The counts as aligned ``name value`` lines."""
        return "\n".join(f"{name:<17} {self.counts.get(name, 0)}" for name in COUNTS)


def explanation(reasoning: Reasoning) -> str:
    """The text the judge reads: the descriptions and the think line, without the answer."""
    return " ".join(part.strip() for part in (reasoning.visual, reasoning.audio, reasoning.think) if part)


def parsed_reasoning(text: str) -> Reasoning | None:
    """The ``<vis_desc>`` / ``<aud_desc>`` / ``<think>`` parts of a generated text (None: none of them)."""
    segments = parse_completion(text).segments
    parts = {name: segments.get(name) or None for name in ("visual", "audio", "think")}
    return Reasoning(**parts) if any(parts.values()) else None


class TemplateSource:
    """The FAU filter's own reasoning (the matched AUs in plain words, a think line naming the label) with a
    neutral audio sentence: deterministic, needs no model."""

    name = "template"

    def explain(self, samples: Sequence[Sample]) -> list[Generated]:
        out = []
        for sample in samples:
            if sample.reasoning is None:
                raise ValueError(f"{sample.id}: the FAU filter gave this kept clip no reasoning")
            reasoning = replace(sample.reasoning, audio=NEUTRAL_AUDIO)
            out.append(Generated(reasoning, explanation(reasoning)))
        return out


class ModelSource:
    """A model watches each clip (video and audio) and writes its explanation with the reasoning prompt.

    Greedy by default (``temperature=0``); batched, media encoded once per clip. A clip the loader skips
    (``on_error=skip``) is counted ``media_skipped``; an output without any description or think segment
    ``reasoning_failed``.
    """

    name = "model"

    def __init__(
        self,
        model,
        tokenizer,
        gate_tokenizer,
        loader,
        *,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        task: str = "reasoning",
        seed: int = 0,
    ) -> None:
        from src.data.collate import OmniCollator
        from src.data.prompts import instruction_for

        self.model, self.tokenizer, self.loader = model, tokenizer, loader
        self.batch_size, self.max_new_tokens, self.temperature = batch_size, max_new_tokens, temperature
        self.instruction = instruction_for(task)
        self.seed = seed
        self.collator = OmniCollator.for_model(model, tokenizer, gate_tokenizer, padding_side="left")

    def explain(self, samples: Sequence[Sample]) -> list[Generated]:
        import torch

        from src.data.collate import Example
        from src.data.prompts import build_prompt
        from src.models.generation import generate

        results: dict[int, Generated] = {}
        examples: list[tuple[int, Example]] = []
        for index, sample in enumerate(samples):
            item = self.loader.load(sample)
            if item.skip is not None or item.frames is None or item.mel is None:
                reason = item.skip.reason if item.skip is not None else "needs both video and audio"
                results[index] = Generated(None, problem="media_skipped", text=reason)
                continue
            prompt = build_prompt(self.instruction, has_video=True, has_audio=True)
            examples.append((index, Example(prompt, None, item.frames, item.mel, self.instruction)))
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start : start + self.batch_size]
            batch = self.collator([example for _, example in chunk]).to(device)
            with torch.no_grad():
                out = generate(
                    self.model,
                    batch.input_ids,
                    batch.attention_mask,
                    batch.media,
                    max_new_tokens=self.max_new_tokens,
                    eos_token_id=self.tokenizer.eos_token_id,
                    pad_token_id=self.tokenizer.pad_token_id,
                    temperature=self.temperature,
                    generator=generator if self.temperature > 0 else None,
                )
            rows = [row[:length] for row, length in zip(out.tokens.cpu(), out.lengths.tolist())]
            texts = self.tokenizer.batch_decode(rows, skip_special_tokens=True)  # the tags are not special
            for (index, _), text in zip(chunk, texts):
                reasoning = parsed_reasoning(text)
                results[index] = Generated(reasoning, text, None if reasoning else "reasoning_failed")
        return [results[index] for index in range(len(samples))]


class EndpointSource:
    """An OpenAI-compatible chat endpoint writes each explanation from the label and the peak frame's AUs.

    ``client`` is a :class:`src.judges.openai.OpenAIJudge` (its key from the environment, its retries and its
    answer cache), built with enough ``max_tokens`` for an explanation.
    """

    name = "endpoint"

    def __init__(self, client, prompt: str = ENDPOINT_PROMPT) -> None:
        if "{label}" not in prompt or "{aus}" not in prompt:
            raise ValueError("recipe.endpoint.prompt must contain the placeholders {label} and {aus}")
        self.client, self.prompt = client, prompt

    def request(self, sample: Sample) -> str:
        """The message sent for ``sample`` (its label and the AUs the FAU filter matched, in plain words)."""
        aus = list((sample.extra.get("fau") or {}).get("aus") or {})
        described = ", ".join(AU_PHRASES.get(au, au) for au in aus) or "no facial action unit clearly active"
        return self.prompt.format(label=sample.label, aus=described)

    def explain(self, samples: Sequence[Sample]) -> list[Generated]:
        replies = self.client.complete([self.request(sample) for sample in samples])
        out = []
        for reply in replies:
            reasoning = parsed_reasoning(reply)
            out.append(Generated(reasoning, reply, None if reasoning else "reasoning_failed"))
        return out


def select_new_clips(
    emer: Sequence[Sample],
    candidates: Sequence[Sample],
    *,
    source: ReasoningSource | None = None,
    judge: Judge | None = None,
    fau: Mapping[str, Any] | None = None,
) -> Selection:
    """New FAU-matched clips from ``candidates`` with checked reasoning, merged after ``emer``.

    Args:
        emer: the EMER rows (kept as they are, first in ``merged``).
        candidates: DFEW/MAFW training rows with ``au_csv``.
        source: writes the explanations (default :class:`TemplateSource`).
        judge: reads the emotion of each explanation (default: the keyword judge).
        fau: options of :func:`src.migr.fau.fau_filter` (``method`` defaults to ``peak``, the paper's).
    """
    from src.judges.keywords import KeywordJudge

    source = source if source is not None else TemplateSource()
    judge = judge if judge is not None else KeywordJudge()
    emer_ids = {sample.id for sample in emer}
    fresh = [sample for sample in candidates if sample.id not in emer_ids]
    counts: Counter[str] = Counter(candidates=len(candidates), in_emer=len(candidates) - len(fresh))
    rejected = [(s.id, "in_emer", "already an EMER row") for s in candidates if s.id in emer_ids]
    result = fau_filter(fresh, **{"method": "peak", **(fau or {})})
    counts["fau_kept"], counts["fau_rejected"] = len(result.kept), len(result.rejected)
    rejected += [(r.sample.id, "fau", f"{r.reason}: {r.detail}") for r in result.rejected]

    generated = source.explain(result.kept)
    explained: list[Sample] = []
    for sample, item in zip(result.kept, generated, strict=True):
        if item.reasoning is None:
            counts[item.problem or "reasoning_failed"] += 1
            rejected.append((sample.id, item.problem or "reasoning_failed", item.text[:200]))
            continue
        extra = {**sample.extra, "recipe": {"source": source.name, "text": item.text}}
        explained.append(replace(sample, reasoning=item.reasoning, extra=extra))

    new: list[Sample] = []
    for dataset in dict.fromkeys(sample.dataset for sample in explained):
        group = [sample for sample in explained if sample.dataset == dataset]
        read = judge.classify([explanation(sample.reasoning) for sample in group], labels_for(dataset))  # type: ignore[arg-type]
        for sample, label in zip(group, read, strict=True):
            if label == sample.label:
                new.append(sample)
            else:
                counts["judge_rejected"] += 1
                rejected.append((sample.id, "judge", f"read as {label}, labelled {sample.label}"))
    order = {sample.id: index for index, sample in enumerate(explained)}
    new.sort(key=lambda sample: order[sample.id])  # candidate order, whatever the datasets' order
    counts["judge_accepted"] = counts["new"] = len(new)
    counts["emer"], counts["merged"] = len(emer), len(emer) + len(new)
    selection = Selection([*emer, *new], new, {name: counts.get(name, 0) for name in COUNTS}, rejected)
    log.info("new clips (%s reasoning, %s judge):\n%s", source.name, judge.name, selection.format_table())
    return selection
