"""The anchoring probe: forced openings from the gold descriptions, greedy continuations that equal a plain
token-by-token greedy decode of prompt + forced text, and the summary rates against hand counts."""

from __future__ import annotations

import torch

from src.data.collate import Example, OmniCollator
from src.data.prompts import build_prompt, instruction_for
from src.evaluation.anchoring import (
    flat_anchoring,
    forced_openings,
    probe_continuations,
    probe_rows,
    summarize_anchoring,
)
from src.models.checkpoint import LoadedModel
from tests.rewards.conftest import TableJudge


def _reference_greedy(model, tokenizer, loader, sample, prefix: str, steps: int) -> str:
    """Greedy decoding by full forwards (no cache, no padding, one clip): argmax, append, repeat."""
    item = loader.load(sample)
    instruction = instruction_for("reasoning")
    example = Example(
        prompt=build_prompt(instruction, has_video=True, has_audio=True) + prefix,
        target=None,
        frames=item.frames,
        mel=item.mel,
        instruction=instruction,
    )
    counts = model.token_counts()
    batch = OmniCollator(tokenizer, tokenizer, num_video_tokens=counts["video"], num_audio_tokens=counts["audio"])(
        [example]
    )
    ids, mask = batch.input_ids, batch.attention_mask
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(ids, mask, batch.media).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_forced_openings_come_from_the_gold_descriptions(clips_and_random_tiny):
    samples = clips_and_random_tiny[0]
    audio = next(s for s in samples if s.dominant == "audio")
    plan = forced_openings(audio)
    assert plan["non_dominant"]["modality"] == "visual"
    assert plan["non_dominant"]["prefix"] == f"<vis_desc>{audio.reasoning.visual}</vis_desc>\n"
    assert plan["non_dominant"]["emotion"] == audio.extra["synth"]["visual"]["emotion"]
    assert plan["dominant"]["prefix"] == f"<aud_desc>{audio.reasoning.audio}</aud_desc>\n"
    assert all(forced_openings(s) is None for s in samples if s.dominant == "both")


def test_continuations_equal_a_plain_greedy_decode_after_the_forced_text(clips_and_random_tiny):
    samples, model, tokenizer, loader = clips_and_random_tiny
    usable = [s for s in samples if forced_openings(s) is not None]
    assert len(usable) >= 3
    loaded = LoadedModel(model=model, tokenizer=tokenizer, gate_tokenizer=tokenizer)
    got = probe_continuations(loaded, usable, loader, max_new_tokens=4, batch_size=2)  # padded batches
    assert sorted(got) == sorted(s.id for s in usable)
    for sample in usable[:2]:
        for condition in ("non_dominant", "dominant"):
            prefix = forced_openings(sample)[condition]["prefix"]
            assert got[sample.id][condition] == _reference_greedy(model, tokenizer, loader, sample, prefix, 4)


def test_rows_and_rates_by_hand(clips_and_random_tiny):
    samples = [s for s in clips_and_random_tiny[0] if forced_openings(s) is not None][:2]
    a, b = samples
    fa, fb = (forced_openings(s)["non_dominant"]["emotion"] for s in (a, b))
    continuations = {
        # a: anchors on the forced non-dominant text (think and answer its emotion); with the dominant one, right
        a.id: {
            "non_dominant": f"<think>T-{fa}</think><answer>{fa}</answer>",
            "dominant": f"<think>T-{a.label}</think><answer>{a.label}</answer>",
        },
        # b: answers its label under both; the think is unreadable (no emotion) and then missing
        b.id: {"non_dominant": f"<think>nothing</think><answer>{b.label}</answer>", "dominant": "garbage"},
    }
    judge = TableJudge({f"T-{fa}": [fa], f"T-{a.label}": [a.label]})
    rows = probe_rows(
        samples, continuations, judge, ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    )
    assert len(rows) == 4
    summary = summarize_anchoring(rows, skipped=3)
    non, dom = summary["non_dominant"]["all"], summary["dominant"]["all"]
    assert summary["skipped"] == 3
    assert non["n"] == 2 and dom["n"] == 2
    label_is_forced = [fa == a.label, fb == b.label]
    assert non["answer_follows_forced"] == (1 + label_is_forced[1]) / 2
    assert non["answer_follows_label"] == (label_is_forced[0] + 1) / 2
    assert non["think_follows_forced"] == 1 / 2
    assert dom["answer_follows_label"] == 1 / 2  # b's "garbage" has no answer
    assert dom["think_follows_label"] == 1 / 2
    cells = summary["non_dominant"]["by_cell"]
    assert sum(block["n"] for block in cells.values()) == 2
    flat = flat_anchoring(summary)
    assert flat["anchoring/non_dominant/think_follows_forced"] == 1 / 2
    assert any(key.startswith("anchoring/dominant/cell/") for key in flat)


def test_nothing_to_probe():
    summary = summarize_anchoring([], skipped=4)
    assert summary["non_dominant"]["all"] == {
        "n": 0,
        "forced_is_label": 0,
        "think_follows_forced": None,
        "think_follows_label": None,
        "answer_follows_forced": None,
        "answer_follows_label": None,
    }
    assert flat_anchoring(summary) == {"anchoring/non_dominant/n": 0, "anchoring/dominant/n": 0}
