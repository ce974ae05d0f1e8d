"""The real-data recipe's selection of new clips: FAU at the peak frame, each reasoning source, the judge's check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.data.manifest import Reasoning, Sample
from src.data.media import MediaLoader
from src.judges.openai import OpenAIJudge
from src.migr.recipe import (
    NEUTRAL_AUDIO,
    EndpointSource,
    ModelSource,
    TemplateSource,
    parsed_reasoning,
    select_new_clips,
)
from tests.fixtures.media import grey_clip
from tests.fixtures.openface import row, write_csv
from tests.helpers import SCRIPT, scripted_model
from tests.judges.test_openai import ChatServer

HAPPY = {"AU06": 2.0, "AU12": 3.0}


def clip(tmp_path: Path, name: str, label: str, *, media: bool = False, **aus: float) -> Sample:
    """A DFEW training row whose face shows ``aus`` in its middle (peak) frame only."""
    csv = write_csv(tmp_path / f"{name}.csv", [row(1), row(2, **aus), row(3)])
    video = grey_clip(tmp_path / f"{name}.mp4", frames=8, audio_seconds=1.0) if media else tmp_path / f"{name}.mp4"
    return Sample(name, label, "dfew", "train", video, None, au_csv=csv)


def test_template_clips_are_new_fau_matched_at_the_peak_frame_and_merged(tmp_path: Path) -> None:
    emer = [Sample("e1", "happy", "emer", "train", tmp_path / "e1.mp4", None, Reasoning("v", "a", "glad"))]
    candidates = [
        clip(tmp_path, "e1", "happy", **HAPPY),  # already an EMER row
        clip(tmp_path, "d1", "happy", **HAPPY),  # matches at its peak frame (1 frame of 3: the mean would not)
        clip(tmp_path, "d2", "sad", **HAPPY),  # the face shows happiness: FAU mismatch
    ]
    selection = select_new_clips(emer, candidates, source=TemplateSource())
    # hand-computed: 3 candidates, 1 in EMER; of 2 fresh, FAU keeps d1; the judge reads happiness from its text
    assert selection.counts == {
        "candidates": 3, "in_emer": 1, "fau_kept": 1, "fau_rejected": 1, "media_skipped": 0,
        "reasoning_failed": 0, "judge_accepted": 1, "judge_rejected": 0, "new": 1, "emer": 1, "merged": 2,
    }  # fmt: skip
    assert [sample.id for sample in selection.merged] == ["e1", "d1"]
    new = selection.new[0]
    assert new.reasoning.audio == NEUTRAL_AUDIO
    assert (
        new.reasoning.visual
        == "The face shows lip corners pulled up and raised cheeks, which points to happiness."
    )
    assert new.extra["fau"]["method"] == "peak"
    assert [(item[0], item[1]) for item in selection.rejected] == [("e1", "in_emer"), ("d2", "fau")]
    mean = select_new_clips(emer, candidates, fau={"method": "mean"})  # 1 frame of 3 is not "present"
    assert mean.counts["fau_kept"] == 0


def test_the_model_source_writes_what_the_model_generates_and_the_judge_checks_it(tmp_path: Path) -> None:
    model, tokenizer = scripted_model()  # writes tests.helpers.SCRIPT (an angry explanation) for any clip
    loader = MediaLoader.for_model(model.config)
    source = ModelSource(model, tokenizer, tokenizer, loader, batch_size=2, max_new_tokens=48)
    candidates = [
        clip(tmp_path, "d1", "angry", media=True, AU04=2.5, AU05=2.0, AU07=2.2, AU23=1.8),
        clip(tmp_path, "d2", "happy", media=True, **HAPPY),
        clip(tmp_path, "d3", "angry", media=True, AU04=3.0, AU07=2.0, AU23=2.0),
    ]
    selection = select_new_clips([], candidates, source=source)
    # FAU keeps all three; the judge reads "angry" from the script: d1, d3 kept, d2 (happy) rejected
    assert [sample.id for sample in selection.new] == ["d1", "d3"]
    assert (selection.counts["judge_accepted"], selection.counts["judge_rejected"]) == (2, 1)
    assert selection.new[0].reasoning == parsed_reasoning(SCRIPT)
    assert selection.new[0].reasoning == Reasoning("Her jaw is tight", "The voice rises furiously.", "So enraged!")
    assert selection.new[0].extra["recipe"]["source"] == "model"
    assert ("d2", "judge", "read as angry, labelled happy") in selection.rejected


def test_the_model_source_counts_clips_it_cannot_decode(tmp_path: Path) -> None:
    model, tokenizer = scripted_model()
    loader = MediaLoader.for_model(model.config, on_error="skip")
    source = ModelSource(model, tokenizer, tokenizer, loader, max_new_tokens=48)
    broken = clip(tmp_path, "d1", "angry", AU04=2.5, AU05=2.0, AU07=2.2, AU23=1.8)
    broken.video.write_bytes(b"not an mp4")
    selection = select_new_clips([], [broken], source=source)
    assert (selection.counts["media_skipped"], selection.counts["new"]) == (1, 0)


def test_the_endpoint_source_asks_with_the_label_and_the_peak_aus(tmp_path: Path, monkeypatch) -> None:
    server = ChatServer()
    replies = [
        "<vis_desc>Her cheeks rise as she smiles.</vis_desc>\n<think>She is clearly happy.</think>",
        "I cannot help with that.",  # no tagged segment: reasoning_failed
        "<vis_desc>Cheeks raised.</vis_desc><think>She looks sad and tired.</think>",  # read as sad: judge rejects
    ]
    for reply in replies:
        server.script.append((200, {"choices": [{"message": {"role": "assistant", "content": reply}}]}, {}))
    monkeypatch.setenv("MIGR_TEST_RECIPE_KEY", "sk-recipe-secret")
    try:
        client = OpenAIJudge(
            base_url=server.url,
            model="gpt-test",
            api_key_env="MIGR_TEST_RECIPE_KEY",
            cache_path=tmp_path / "cache.sqlite",
            max_tokens=400,
            max_workers=1,
        )
        candidates = [  # three smiles, each with other AUs (one request each; equal requests are asked once)
            clip(tmp_path, "d1", "happy", **HAPPY),
            clip(tmp_path, "d2", "happy", **HAPPY, AU14=1.0),
            clip(tmp_path, "d3", "happy", AU12=3.0, AU14=1.0),
        ]
        selection = select_new_clips([], candidates, source=EndpointSource(client))
    finally:
        server.stop()
    assert [request["headers"]["Authorization"] for request in server.requests] == ["Bearer sk-recipe-secret"] * 3
    message = server.requests[0]["json"]["messages"][0]["content"]
    assert "feels happy" in message and "raised cheeks, lip corners pulled up" in message  # the table's AU order
    assert server.requests[0]["json"]["max_tokens"] == 400
    assert [sample.id for sample in selection.new] == ["d1"]
    assert selection.new[0].reasoning == Reasoning("Her cheeks rise as she smiles.", None, "She is clearly happy.")
    assert {k: selection.counts[k] for k in ("reasoning_failed", "judge_rejected", "new")} == {
        "reasoning_failed": 1,
        "judge_rejected": 1,
        "new": 1,
    }
    assert "sk-recipe-secret" not in json.dumps(selection.rejected)


def test_sources_and_prompts_are_checked() -> None:
    with pytest.raises(ValueError, match=r"must contain the placeholders \{label\} and \{aus\}"):
        EndpointSource(client=None, prompt="Explain {label}.")
    assert parsed_reasoning("no tags at all") is None
    assert parsed_reasoning("<think>Only a thought.</think>") == Reasoning(None, None, "Only a thought.")
