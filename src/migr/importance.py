"""Modality Importance (paper section 3.1.2): which modality carries a clip's emotion.

The model predicts the emotion three times per clip: from audio only, from the video frames only, and from
both. Two modes:

* ``score`` (default): one prefill over the 3 conditions of a batch of clips (media encoded once per clip and
  shared by the V-only and AV rows), then every label's answer tokens (``label<|im_end|>``) are scored from the
  shared prompt cache in one more forward. The prediction is the label with the highest log-probability; the
  per-label log-probabilities are kept.
* ``generate``: decode an answer under each condition, as the paper describes (greedy), and normalise it.

Decision rule (:func:`decide`), with the treatment of ties a configuration choice:

=================  ===============  ====================================================================
audio-only right   visual-only right dominant
=================  ===============  ====================================================================
yes                no               ``audio``
no                 yes              ``visual``
yes                yes              ``both_right``: "both" (default, paper: "equally informative") or
                                    "margin" (the sign of the importance score decides)
no                 no               ``both_wrong``: "both" (default), "margin", or "av" (audio-visual right
                                    -> "both", else "none": no reliable modality)
=================  ===============  ====================================================================

The paper's wording includes the audio-visual prediction: audio is dominant when audio-only is right "but fails
under visual-only or audio-visual" (and the mirror for visual). :func:`decide` applies that clause as written;
it never changes a decision of the table above: with visual-only wrong the clause holds whatever AV says, and
with both unimodal predictions right it holds for both modalities at once (AV wrong) or for neither (AV right),
a tie either way. AV matters only through ``both_wrong="av"``.

The continuous importance score is ``log p(true | audio) - log p(true | visual)`` (positive: audio carries
more of the true emotion); users can threshold it instead of using the discrete rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from src.data.collate import Example, OmniCollator
from src.data.labels import labels_for, normalize_label
from src.data.manifest import Sample
from src.data.media import MediaLoader
from src.data.prompts import build_prompt, instruction_for
from src.data.reasoning import predicted_label
from src.models.generation import generate, positions_from_mask, root_params_gathered
from src.models.omni import MediaInputs, OmniModel

CONDITIONS: tuple[str, ...] = ("audio", "visual", "audio_visual")
# condition -> (the prompt shows the video, the prompt plays the audio)
CONDITION_MODALITIES: dict[str, tuple[bool, bool]] = {
    "audio": (False, True),
    "visual": (True, False),
    "audio_visual": (True, True),
}
TieRule = Literal["both", "margin"]
WrongRule = Literal["both", "margin", "av"]


@dataclass
class ClipImportance:
    """MI of one clip: predictions per condition, correctness, the decision and the continuous score."""

    sample_id: str
    label: str
    predictions: dict[str, str | None]  # condition -> predicted label (None: unparseable in generate mode)
    logprobs: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> label -> log p
    dominant: str = "both"
    score: float = float("nan")

    def correct(self, condition: str) -> bool:
        return self.predictions[condition] == self.label


def decide(
    audio_right: bool,
    visual_right: bool,
    av_right: bool,
    score: float,
    *,
    both_right: TieRule = "both",
    both_wrong: WrongRule = "both",
) -> str:
    """The dominant modality for one clip under the documented rule (see the module docstring)."""
    # the paper: audio dominates when audio-only is right "but fails under visual-only or audio-visual"
    audio_clause = audio_right and not (visual_right and av_right)
    visual_clause = visual_right and not (audio_right and av_right)
    if audio_clause != visual_clause:
        return "audio" if audio_clause else "visual"
    rule = both_right if audio_right else both_wrong
    if rule == "margin" and not math.isnan(score):
        return "audio" if score > 0 else "visual" if score < 0 else "both"
    if rule == "av":
        return "both" if av_right else "none"
    return "both"


class ImportanceEstimator:
    """Runs MI over samples with one model.

    Args:
        model / tokenizer / gate_tokenizer: a (label-task) model and its tokenizers.
        loader: decodes media with the model preset's shapes.
        task: the prompt task the model answers ("label": bare label; "reasoning": full explanation).
        batch_size: clips per batch (3 rows each).
    """

    def __init__(
        self,
        model: OmniModel,
        tokenizer,
        gate_tokenizer,
        loader: MediaLoader,
        *,
        task: str = "label",
        batch_size: int = 16,
        both_right: TieRule = "both",
        both_wrong: WrongRule = "both",
        max_new_tokens: int = 8,
    ) -> None:
        self.model, self.tokenizer, self.loader = model, tokenizer, loader
        self.task, self.batch_size = task, batch_size
        self.both_right, self.both_wrong = both_right, both_wrong
        self.max_new_tokens = max_new_tokens
        self.instruction = instruction_for(task)
        self.collator = OmniCollator.for_model(model, tokenizer, gate_tokenizer, padding_side="left")

    # ---- batching ------------------------------------------------------------------------------------------
    def _rows(self, samples: Sequence[Sample]) -> tuple[Tensor, Tensor, MediaInputs]:
        """Left-padded prompts of the 3 conditions of each clip, media once per clip with row indices."""
        examples, frames, mels = [], [], []
        video_index, audio_index = [], []
        for clip, sample in enumerate(samples):
            item = self.loader.load(sample)
            if item.skip is not None or item.frames is None or item.mel is None:
                reason = item.skip.reason if item.skip is not None else "needs both video and audio"
                raise ValueError(f"{sample.id}: Modality Importance needs both modalities ({reason})")
            frames.append(item.frames)
            mels.append(item.mel)
            for condition in CONDITIONS:
                has_video, has_audio = CONDITION_MODALITIES[condition]
                prompt = build_prompt(self.instruction, has_video=has_video, has_audio=has_audio)
                examples.append(
                    Example(prompt=prompt, target=None, frames=None, mel=None, instruction=self.instruction)
                )
                if has_video:
                    video_index.append(clip)
                if has_audio:
                    audio_index.append(clip)
        ids = [self.collator.prompt_ids(e.prompt) for e in examples]
        width = max(len(r) for r in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, row in enumerate(ids):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        gate = self.collator.gate_tokenizer([self.instruction] * len(samples), padding=True, return_tensors="pt")
        media = MediaInputs(
            frames=torch.stack(frames),
            gate_input_ids=gate["input_ids"],
            gate_attention_mask=gate["attention_mask"],
            mel=torch.stack(mels),
            video_index=torch.tensor(video_index),
            audio_index=torch.tensor(audio_index),
        )
        return input_ids, mask, media

    def _label_ids(self, labels: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``[K, M]`` answer tokens per label (``label<|im_end|>``, right padded) and their mask."""
        rows = [self.collator.target_ids(label) for label in labels]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for k, row in enumerate(rows):
            ids[k, : len(row)] = torch.tensor(row)
            mask[k, : len(row)] = 1
        return ids, mask

    # ---- score mode ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def label_logprobs(self, samples: Sequence[Sample], labels: Sequence[str]) -> Tensor:
        """``[N, 3, K]`` log p(label | condition) for each clip, condition (audio, visual, audio_visual), label."""
        from transformers.cache_utils import DynamicCache

        model = self.model
        device = next(model.parameters()).device
        label_ids, label_mask = (t.to(device) for t in self._label_ids(labels))
        num_labels = label_ids.shape[0]
        with root_params_gathered(model):
            cache = DynamicCache()
            first, mask = self._prefill(samples, cache)  # [3N, V]: predicts answer token 1
            rows = first.shape[0]
            first_lp = first.repeat_interleave(num_labels, dim=0).gather(
                1, label_ids.repeat(rows, 1)[:, :1]
            )  # [3N*K, 1]
            cont_ids = label_ids.repeat(rows, 1)  # [3N*K, M]: every label continues every prompt row
            cont_mask = label_mask.repeat(rows, 1)
            token_lp = first_lp
            if cont_ids.shape[1] > 1:
                # Feed answer tokens 1..M-1 (the last one is only predicted) on the shared prompt cache.
                cache.batch_repeat_interleave(num_labels)
                inputs = cont_ids[:, :-1]
                full_mask = torch.cat([mask.repeat_interleave(num_labels, dim=0), cont_mask[:, :-1]], dim=1)
                start = positions_from_mask(mask)[:, -1:].repeat_interleave(num_labels, dim=0) + 1
                positions = start + torch.arange(inputs.shape[1], device=device)[None]
                out = model.llm(
                    input_ids=inputs,
                    attention_mask=full_mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                )
                rest = torch.log_softmax(out.logits.float(), dim=-1)  # token m predicts token m + 1
                token_lp = torch.cat([first_lp, rest.gather(2, cont_ids[:, 1:, None]).squeeze(-1)], dim=1)
        token_lp = token_lp * cont_mask
        return token_lp.sum(dim=1).view(len(samples), len(CONDITIONS), num_labels).cpu()

    def _prefill(self, samples: Sequence[Sample], cache=None) -> tuple[Tensor, Tensor]:
        """One forward over the prompt rows of :meth:`_rows` (filling ``cache`` when given).

        Returns ``(log p(next token) [3N, V], attention mask [3N, L])``, rows clip by clip in CONDITIONS order.
        """
        device = next(self.model.parameters()).device
        input_ids, mask, media = (x.to(device) for x in self._rows(samples))
        out = self.model.llm(
            inputs_embeds=self.model.embed(input_ids, media),  # [3N, L, H]
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            past_key_values=cache,
            use_cache=cache is not None,
            logits_to_keep=1,
        )
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1), mask

    @torch.no_grad()
    def next_token_logprobs(self, samples: Sequence[Sample], token_ids: Sequence[int]) -> Tensor:
        """``[N, 3, K]`` log p(the answer's first token is ``token_ids[k]`` | condition) for each clip, one
        prefill per ``batch_size`` clips.

        E.g. with ``task="reasoning"`` and the ids of ``<aud_desc>`` / ``<vis_desc>``: which description the
        model would open its explanation with (:mod:`src.analysis.first_tag`).
        """
        chunks = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            with root_params_gathered(self.model):
                first, _ = self._prefill(chunk)
            chunks.append(first[:, list(token_ids)].view(len(chunk), len(CONDITIONS), len(token_ids)).cpu())
        return torch.cat(chunks)

    # ---- generate mode -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generated_labels(self, samples: Sequence[Sample]) -> list[list[str | None]]:
        """Decoded (greedy) and normalised answers: ``[N][3]`` in CONDITIONS order."""
        device = next(self.model.parameters()).device
        input_ids, mask, media = self._rows(samples)
        gen = generate(
            self.model,
            input_ids.to(device),
            mask.to(device),
            media.to(device),
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(gen.tokens, skip_special_tokens=True)
        conditions = len(CONDITIONS)
        return [
            [predicted_label(texts[conditions * i + c], sample.dataset, self.task) for c in range(conditions)]
            for i, sample in enumerate(samples)
        ]

    # ---- the estimate --------------------------------------------------------------------------------------
    def estimate(
        self, samples: Sequence[Sample], *, mode: Literal["score", "generate"] = "score", progress=None
    ) -> list[ClipImportance]:
        """MI of every sample (batched); ``progress`` is called with the number of clips done."""
        if mode not in ("score", "generate"):
            raise ValueError(f"importance.mode={mode!r} must be 'score' or 'generate'")
        results: list[ClipImportance] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = list(samples[start : start + self.batch_size])
            labels = labels_for(chunk[0].dataset)
            if any(s.dataset != chunk[0].dataset for s in chunk):
                raise ValueError("Modality Importance batches must come from one dataset (one label set)")
            logprobs = self.label_logprobs(chunk, labels)  # [n, 3, K]
            generated = self.generated_labels(chunk) if mode == "generate" else None
            for i, sample in enumerate(chunk):
                table = {
                    c: {label: float(logprobs[i, j, k]) for k, label in enumerate(labels)}
                    for j, c in enumerate(CONDITIONS)
                }
                if generated is None:
                    predictions = {c: max(table[c], key=table[c].get) for c in CONDITIONS}
                else:
                    predictions = dict(zip(CONDITIONS, generated[i]))
                truth = normalize_label(sample.label, sample.dataset)
                score = table["audio"][truth] - table["visual"][truth]
                clip = ClipImportance(
                    sample_id=sample.id, label=truth, predictions=predictions, logprobs=table, score=score
                )
                clip.dominant = decide(
                    clip.correct("audio"),
                    clip.correct("visual"),
                    clip.correct("audio_visual"),
                    score,
                    both_right=self.both_right,
                    both_wrong=self.both_wrong,
                )
                results.append(clip)
            if progress is not None:
                progress(len(chunk))
        return results
