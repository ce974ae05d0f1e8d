"""Preprocessing settings: upstream's frame indices pinned as data, resizing checked against PIL itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.manifest import Sample
from src.data.media import MediaLoader, _square_resize, load_frames
from src.data.preprocess import PREPROCESS, frame_indices, get_preprocess, segment_midpoints

# HumanOmni's `frame_sample(n, mode="uniform", num_frames=8)` (26fa491), run on these clip lengths.
UPSTREAM_INDICES_8 = {
    1: [0, 0, 0, 0, 0, 0, 0, 0],
    3: [0, 0, 1, 1, 1, 1, 2, 2],
    7: [0, 1, 2, 3, 3, 4, 5, 6],
    8: [0, 1, 2, 3, 4, 5, 6, 7],
    9: [1, 2, 3, 4, 5, 6, 7, 8],
    10: [1, 2, 3, 4, 5, 6, 7, 8],
    16: [1, 3, 5, 7, 8, 10, 12, 14],
    25: [2, 5, 8, 11, 14, 17, 20, 23],
    30: [2, 5, 9, 13, 16, 20, 24, 27],
    47: [3, 9, 14, 20, 26, 32, 37, 43],
    64: [4, 12, 20, 28, 35, 43, 51, 59],
    75: [5, 14, 23, 32, 42, 51, 60, 69],
    100: [6, 19, 31, 43, 56, 68, 80, 93],
    101: [6, 19, 31, 44, 56, 69, 81, 94],
    128: [8, 24, 40, 56, 71, 87, 103, 119],
    150: [9, 28, 47, 65, 84, 102, 121, 140],
    199: [12, 37, 62, 87, 111, 136, 161, 186],
    250: [16, 47, 78, 109, 140, 171, 202, 233],
    400: [25, 75, 125, 175, 224, 274, 324, 374],
}


@pytest.mark.parametrize(("length", "expected"), sorted(UPSTREAM_INDICES_8.items()))
def test_upstream_frame_indices(length, expected):
    assert frame_indices(length, 8, "upstream").tolist() == expected


def test_the_two_samplings_differ_on_most_clip_lengths():
    differ = sum(
        not np.array_equal(frame_indices(n, 8, "upstream"), segment_midpoints(n, 8)) for n in range(8, 401)
    )
    assert differ == 296  # of the 393 lengths 8..400, as measured against upstream
    assert segment_midpoints(100, 8).tolist() == [6, 18, 31, 43, 56, 68, 81, 93]


def test_settings_are_named_and_keyed():
    assert set(PREPROCESS) == {"migr", "upstream_train", "upstream_inference"}
    keys = {setting.key for setting in PREPROCESS.values()}
    assert len(keys) == 3
    assert get_preprocess("upstream_train").key == "frames=upstream,aspect=pad,resize=pil_bicubic"
    assert hash(get_preprocess("migr")) == hash(get_preprocess("migr"))  # frozen: usable in cache keys
    with pytest.raises(
        ValueError, match=r"preprocess='upstream' is not a known setting; known: migr, upstream_train"
    ):
        get_preprocess("upstream")


def _textured_frame(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [24, 56])
def test_upstream_resize_is_pil_bicubic_after_mean_colour_padding(size):
    frame = _textured_frame(30, 40)
    ours = _square_resize(frame[None], size, get_preprocess("upstream_train"))[0].permute(1, 2, 0).numpy()
    square = Image.new("RGB", (40, 40), (127, 127, 127))  # HumanOmni's expand2square: int(0.5 * 255)
    square.paste(Image.fromarray(frame), (0, 5))
    expected = np.asarray(square.resize((size, size), Image.BICUBIC))
    assert np.array_equal(ours, expected)
    corner = ours[0, 0].tolist()
    assert corner == [127, 127, 127]  # padding


def test_upstream_inference_squashes_without_padding():
    frame = _textured_frame(30, 40)
    ours = _square_resize(frame[None], 24, get_preprocess("upstream_inference"))[0].permute(1, 2, 0).numpy()
    assert np.array_equal(ours, np.asarray(Image.fromarray(frame).resize((24, 24), Image.BICUBIC)))


def test_torch_and_pil_resizes_differ():
    frame = _textured_frame(20, 20)  # enlarged, as a 224 px tower enlarges most video frames' faces
    pil = _square_resize(frame[None], 56, get_preprocess("upstream_train")).int()
    torch_resized = _square_resize(frame[None], 56, get_preprocess("migr")).int()
    assert (pil - torch_resized).abs().max() > 10  # PIL's and torch's bicubic kernels differ: not interchangeable


def test_loader_reads_upstream_frames_normalised_like_the_siglip_processor(make_clip, tmp_path):
    from decord import VideoReader
    from transformers import SiglipImageProcessor

    path = make_clip(frames=16, height=24, width=40)
    ours = load_frames(path, num_frames=8, image_size=20, preprocess="upstream_train")
    decoded = VideoReader(str(path)).get_batch(UPSTREAM_INDICES_8[16]).asnumpy()
    processor = SiglipImageProcessor(size={"height": 20, "width": 20})  # PIL bicubic, then (x / 255 - 0.5) / 0.5
    reference = []
    for frame in decoded:
        square = Image.new("RGB", (40, 40), (127, 127, 127))
        square.paste(Image.fromarray(frame), (0, 8))
        reference.append(processor(square, return_tensors="pt")["pixel_values"][0])
    torch.testing.assert_close(ours, torch.stack(reference), atol=1e-6, rtol=0)
    # the grey clip's frame i is level 10 + 15 i: frames 8, 10, 12, 14 (not 9, 11, 13, 15) were read
    levels = [round(float(v)) for v in ((ours[:, :, 10, 10] + 1) * 127.5).mean(dim=1)]
    assert levels == pytest.approx([10 + 15 * i for i in UPSTREAM_INDICES_8[16]], abs=3)


def test_cache_entries_are_kept_apart_per_setting(make_clip, tmp_path):
    path = make_clip(frames=16, height=24, width=40)
    sample = Sample(id="s", label="sad", dataset="dfew", split="test", video=path, audio=None)
    cache = tmp_path / "cache"
    options = {"image_size": 20, "audio_seconds": 3, "cache_dir": cache}
    first = MediaLoader(preprocess="upstream_train", **options).load(sample, audio=False).frames
    other = MediaLoader(preprocess="upstream_inference", **options).load(sample, audio=False).frames
    again = MediaLoader(preprocess="upstream_train", **options).load(sample, audio=False).frames
    assert not torch.equal(first, other)  # squashed vs padded: no stale cache hit
    assert torch.equal(first, again)


def test_prompt_token_layout_with_humanomnis_start_end_markers():
    from src.data.collate import OmniCollator
    from src.data.prompts import INSTRUCTIONS, build_prompt, media_token_ids
    from src.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    ids = media_token_ids(tokenizer)
    instruction = INSTRUCTIONS["r1omni"]
    prompt = build_prompt(instruction, has_video=True, has_audio=True)
    wrapped = OmniCollator(tokenizer, tokenizer, num_video_tokens=5, num_audio_tokens=3, wrap_media=True)
    plain = OmniCollator(tokenizer, tokenizer, num_video_tokens=5, num_audio_tokens=3)
    row = wrapped.prompt_ids(prompt)
    first_video, first_audio = row.index(ids["video"]), row.index(ids["audio"])
    assert row[first_video : first_video + 5] == [ids["video"]] * 5
    assert row[first_audio : first_audio + 3] == [ids["audio"]] * 3
    # what upstream's mm_infer builds for modal "video_audio" (chat template, then the marker replacement)
    segments = [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<vi_start>",
        "<vi_end>\n<au_start>",
        f"<au_end>\n{instruction}<|im_end|>\n<|im_start|>assistant\n",
    ]
    assert tokenizer.decode(row[:first_video]) == segments[0]
    assert tokenizer.decode(row[first_video + 5 : first_audio]) == segments[1]
    assert tokenizer.decode(row[first_audio + 3 :]) == segments[2]
    assert len(tokenizer.encode("<vi_start>", add_special_tokens=False)) > 1  # plain text, not a special token
    unwrapped = plain.prompt_ids(prompt)
    assert len(row) > len(unwrapped) and ids["video"] in unwrapped
    assert tokenizer.decode(unwrapped[: unwrapped.index(ids["video"])]).endswith("user\n")
