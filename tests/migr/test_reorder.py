"""Reasoning reordering: exact target text per dominant modality and policy, and every unsplittable case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from src.data.manifest import Reasoning, Sample, read_manifest, write_manifest
from src.data.reasoning import parse_completion
from src.migr.reorder import (
    UnsplittableError,
    fixed_order,
    fixed_order_all,
    reorder,
    reorder_all,
    split_problem,
)

VISUAL = "The brows rise and the eyes widen."
AUDIO = "The voice trembles at a high pitch."
THINK = "The trembling voice shows fear."
AUDIO_FIRST = (
    "<aud_desc>The voice trembles at a high pitch.</aud_desc>\n"
    "<vis_desc>The brows rise and the eyes widen.</vis_desc>\n"
    "<think>The trembling voice shows fear.</think>\n"
    "<answer>fear</answer>"
)
VISUAL_FIRST = (
    "<vis_desc>The brows rise and the eyes widen.</vis_desc>\n"
    "<aud_desc>The voice trembles at a high pitch.</aud_desc>\n"
    "<think>The trembling voice shows fear.</think>\n"
    "<answer>fear</answer>"
)


FULL = Reasoning(visual=VISUAL, audio=AUDIO, think=THINK)


def clip(sample_id: str = "c1", reasoning: Reasoning | None = FULL, **extra: object) -> Sample:
    """A fear clip whose ground-truth ``dominant`` is "visual" (reordering must leave it alone)."""
    video = Path(f"/data/{sample_id}.mp4")
    return Sample(sample_id, "fear", "synth", "train", video, None, reasoning, dominant="visual", extra=extra)


def test_audio_dominant() -> None:
    (out,) = reorder(clip(votes=3), "audio")
    assert out.id == "c1"
    assert out.extra["target"] == AUDIO_FIRST
    assert out.extra["first_modality"] == "audio" and out.extra["mi_dominant"] == "audio"
    assert out.extra["source_id"] == "c1" and out.extra["votes"] == 3  # other extra keys are kept
    assert out.dominant == "visual"  # the manifest's own (ground-truth) dominant field is left alone
    parsed = parse_completion(out.extra["target"])
    assert parsed.well_formed and parsed.order == ("audio", "visual", "think", "answer")


def test_visual_dominant() -> None:
    (out,) = reorder(clip(), "visual")
    assert (out.id, out.extra["target"], out.extra["first_modality"]) == ("c1", VISUAL_FIRST, "visual")


def test_both_emits_both_orders() -> None:
    audio_first, visual_first = reorder(clip(), "both")
    assert (audio_first.id, audio_first.extra["target"], audio_first.extra["first_modality"]) == (
        "c1#a",
        AUDIO_FIRST,
        "audio",
    )
    assert (visual_first.id, visual_first.extra["target"], visual_first.extra["first_modality"]) == (
        "c1#v",
        VISUAL_FIRST,
        "visual",
    )
    assert audio_first.extra["source_id"] == visual_first.extra["source_id"] == "c1"
    assert audio_first.extra["mi_dominant"] == "both"


@pytest.mark.parametrize(
    ("policy", "target", "first"),
    [("visual_first", VISUAL_FIRST, "visual"), ("audio_first", AUDIO_FIRST, "audio")],
)
def test_both_single_order_policies(policy: str, target: str, first: str) -> None:
    (out,) = reorder(clip(), "both", both=policy)  # type: ignore[arg-type]
    assert (out.id, out.extra["target"], out.extra["first_modality"]) == ("c1", target, first)


def test_fixed_order_baseline() -> None:
    visual = fixed_order(clip())
    assert (visual.id, visual.extra["target"], visual.extra["first_modality"]) == ("c1", VISUAL_FIRST, "visual")
    assert "mi_dominant" not in visual.extra
    assert fixed_order(clip(mi_dominant="audio")).extra["mi_dominant"] == "audio"  # an MI annotation is kept
    assert fixed_order(clip(), "audio").extra["target"] == AUDIO_FIRST


@pytest.mark.parametrize(
    ("reasoning", "problem"),
    [
        (None, "no_reasoning"),  # no reasoning at all
        (Reasoning(), "no_reasoning"),  # every part empty
        (Reasoning(think="One paragraph about face and voice."), "no_modality_parts"),  # a single reasoning text
        (Reasoning(visual=VISUAL, think=THINK), "missing_audio"),
        (Reasoning(audio=AUDIO, think=THINK), "missing_visual"),
        (Reasoning(visual=VISUAL, audio="   ", think=THINK), "missing_audio"),  # blank counts as missing
        (Reasoning(visual=VISUAL, audio=AUDIO), None),  # splittable; think missing is reported separately
    ],
)
def test_split_problem(reasoning: Reasoning | None, problem: str | None) -> None:
    assert split_problem(clip(reasoning=reasoning)) == problem


def test_unsplittable_is_excluded_by_default() -> None:
    with pytest.raises(
        UnsplittableError, match=r"sample 'c1': reasoning cannot be split .* \(missing_audio\)"
    ) as info:
        reorder(clip(reasoning=Reasoning(visual=VISUAL, think=THINK)), "audio")
    assert (info.value.sample_id, info.value.reason) == ("c1", "missing_audio")
    with pytest.raises(UnsplittableError, match="no_reasoning"):
        fixed_order(clip(reasoning=None))


def test_unsplittable_kept_with_the_available_part() -> None:
    visual_only = clip(reasoning=Reasoning(visual=VISUAL, think=THINK))
    (out,) = reorder(visual_only, "audio", partial="keep")  # audio is dominant but there is no audio part
    assert out.extra["target"] == (
        "<vis_desc>The brows rise and the eyes widen.</vis_desc>\n"
        "<think>The trembling voice shows fear.</think>\n"
        "<answer>fear</answer>"
    )
    assert out.extra["first_modality"] == "visual"  # what the target really opens with
    (out,) = reorder(visual_only, "both", partial="keep")  # both orders would be the same text: one sample
    assert out.id == "c1" and out.extra["first_modality"] == "visual"
    (out,) = reorder(clip(reasoning=None), "visual", partial="keep")
    assert out.extra["target"] == "<answer>fear</answer>" and out.extra["first_modality"] is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dominant must be 'audio', 'visual' or 'both'; got 'none'"):
        reorder(clip(), "none")
    with pytest.raises(
        ValueError, match="both must be one of both_orders, visual_first, audio_first; got 'random'"
    ):
        reorder(clip(), "both", both="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partial must be 'exclude' or 'keep'; got 'drop'"):
        reorder(clip(), "audio", partial="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first must be 'audio' or 'visual'; got 'text'"):
        fixed_order(clip(), "text")  # type: ignore[arg-type]


def _corpus() -> list[Sample]:
    return [
        clip("a"),  # audio dominant
        clip("v"),  # visual dominant
        clip("b"),  # both: two samples
        clip("t", Reasoning(visual=VISUAL, audio=AUDIO)),  # no think: kept and listed
        clip("p", Reasoning(audio=AUDIO, think=THINK)),  # no visual part
        clip("s", Reasoning(think=THINK)),  # a single reasoning text
        clip("u"),  # MI not estimated
        clip("n"),  # no reliable modality
    ]


DOMINANT = {"a": "audio", "v": "visual", "b": "both", "t": "audio", "p": "visual", "s": "both", "n": "none"}


def test_reorder_all_reports_every_issue() -> None:
    result = reorder_all(_corpus(), DOMINANT)
    assert [sample.id for sample in result.samples] == ["a", "v", "b#a", "b#v", "t"]
    assert [(i.sample_id, i.reason, i.action) for i in result.issues] == [
        ("t", "missing_think", "kept"),
        ("p", "missing_visual", "excluded"),
        ("s", "no_modality_parts", "excluded"),
        ("u", "no_dominant", "excluded"),
        ("n", "no_reliable_modality", "excluded"),
    ]
    assert [issue.sample_id for issue in result.excluded] == ["p", "s", "u", "n"]
    assert result.counts == {
        "clips": 8,
        "dominant_audio": 2,
        "dominant_visual": 1,
        "dominant_both": 1,
        "samples": 5,
        "first_audio": 3,
        "first_visual": 2,
        "excluded": 4,
        "missing_think": 1,
        "missing_visual": 1,
        "no_modality_parts": 1,
        "no_dominant": 1,
        "no_reliable_modality": 1,
    }
    assert result.samples[4].extra["target"] == (
        "<aud_desc>The voice trembles at a high pitch.</aud_desc>\n"
        "<vis_desc>The brows rise and the eyes widen.</vis_desc>\n"
        "<answer>fear</answer>"
    )
    assert result.format_table() == "\n".join(
        [
            "clips                  8",
            "dominant_audio         2",
            "dominant_visual        1",
            "dominant_both          1",
            "samples                5",
            "first_audio            3",
            "first_visual           2",
            "excluded               4",
            "missing_think          1",
            "missing_visual         1",
            "no_modality_parts      1",
            "no_dominant            1",
            "no_reliable_modality   1",
            "  missing_think (kept): 1",
            "  missing_visual (excluded): 1",
            "  no_dominant (excluded): 1",
            "  no_modality_parts (excluded): 1",
            "  no_reliable_modality (excluded): 1",
        ]
    )


def test_reorder_all_keep_policy_and_baseline() -> None:
    kept = reorder_all(_corpus(), DOMINANT, partial="keep", both="visual_first")
    assert [sample.id for sample in kept.samples] == ["a", "v", "b", "t", "p", "s"]
    assert [(i.sample_id, i.reason, i.action) for i in kept.issues] == [
        ("t", "missing_think", "kept"),
        ("p", "missing_visual", "kept"),
        ("s", "no_modality_parts", "kept"),
        ("u", "no_dominant", "excluded"),
        ("n", "no_reliable_modality", "excluded"),
    ]
    baseline = fixed_order_all(_corpus())
    assert [sample.id for sample in baseline.samples] == ["a", "v", "b", "t", "u", "n"]
    assert {sample.extra["first_modality"] for sample in baseline.samples} == {"visual"}
    assert baseline.counts["fixed_visual"] == 6 and baseline.counts["excluded"] == 2


def test_colliding_ids_are_an_error() -> None:
    message = "reordered id 'x#a' (from 'x#a') collides with one from 'x'; ids must not already end in #a or #v"
    with pytest.raises(ValueError, match=re.escape(message)):
        reorder_all([clip("x"), clip("x#a")], {"x": "both", "x#a": "audio"})


def test_reordered_manifest_round_trips(tmp_path: Path) -> None:
    samples = reorder_all(_corpus(), DOMINANT).samples
    back = read_manifest(write_manifest(samples, tmp_path / "sft.jsonl"), check_media=False)
    assert back == samples
    assert back[2].extra["target"] == AUDIO_FIRST and back[2].id == "b#a"
