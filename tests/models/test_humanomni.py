"""Released HumanOmni-family checkpoints: each layout written in exactly the released form
(:mod:`tests.fixtures.released`), loaded strictly."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import SiglipVisionConfig

from src.data.collate import OmniCollator
from src.models.checkpoint import CheckpointError, load_model, write_safetensors
from src.models.humanomni import load_humanomni
from src.models.omni import OmniModel
from src.models.presets import get_preset
from tests.fixtures.released import AUDIO_PREFIX, LAYOUTS, source_model, write_release
from tests.models.conftest import make_examples

# The key groups (first two name parts) each layout stores: the released key lists, pinned.
COMMON_GROUPS = {
    "model.audio_projector",
    "model.bert_gate",
    "model.bert_model",
    "model.embed_tokens",
    "model.layers",
    "model.mm_projector",
    "model.norm",
}
GROUPS = {
    "R1-Omni-0.5B": COMMON_GROUPS | {"model.vision_tower", "model.audio_tower"},
    "HumanOmni-0.5B": COMMON_GROUPS | {"model.vision_tower", "model.audio_tower", "model.feature_compressor"},
    "ERV-7B": COMMON_GROUPS | {"model.vision_tower", "model.audio_tower", "lm_head.weight"},
    "EMER-SFT-0.5B": COMMON_GROUPS,
}
PROJECTOR_PARTS = {
    "s1_video",
    "sampler_video",
    "s2_video",
    "readout_video",
    "s1_body",
    "sampler_body",
    "s2_body",
    "readout_body",
    "mlp_2xgelu_face",
}
COMPRESSOR_KEYS = [
    "model.feature_compressor.vlm_key_projector.bias",
    "model.feature_compressor.vlm_key_projector.weight",
    "model.feature_compressor.vlm_query_projector.bias",
    "model.feature_compressor.vlm_query_projector.weight",
]
# WhisperForAudioClassification's head: stored by HumanOmni, never run (it uses the encoder only).
AUDIO_HEAD_KEYS = [
    AUDIO_PREFIX + k for k in ("classifier.bias", "classifier.weight", "projector.bias", "projector.weight")
]


def _groups(keys) -> set[str]:
    return {k if k == "lm_head.weight" else ".".join(k.split(".")[:2]) for k in keys} - {"model.vision_tower"} | (
        {"model.vision_tower"} if any(k.startswith("model.vision_tower.") for k in keys) else set()
    )


def _batch(tokenizer, model: OmniModel):
    counts = model.token_counts()
    collator = OmniCollator(
        tokenizer,
        tokenizer,
        num_video_tokens=counts["video"],
        num_audio_tokens=counts["audio"],
        padding_side="left",
        wrap_media=True,
    )
    return collator(make_examples([(True, True), (False, True)], image_size=model.config.image_size))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_released_layout_has_its_key_list_and_loads_strictly(layout, tokenizer, tmp_path, caplog):
    model = source_model(tokenizer, layout)
    state = write_release(model, tokenizer, tmp_path / layout, layout)
    assert _groups(state) == GROUPS[layout]
    assert {k.split(".")[2] for k in state if k.startswith("model.mm_projector.")} == PROJECTOR_PARTS
    assert sorted(k for k in state if k.startswith("model.feature_compressor.")) == (
        COMPRESSOR_KEYS if LAYOUTS[layout]["compressor"] else []
    )
    with caplog.at_level(logging.INFO, logger="src.models.humanomni"):
        loaded = load_model(tmp_path / layout)
    report = loaded.model.load_report
    towers = "checkpoint" if LAYOUTS[layout]["towers"] else "folder"
    assert {k: ("checkpoint" if v == "checkpoint" else "folder") for k, v in report["tower_sources"].items()} == {
        "vision_tower": towers,
        "audio_tower": towers,
    }
    if LAYOUTS[layout]["towers"]:  # the 4 head tensors are expected, named in the log, and not a warning
        assert report["unused_by_reason"] == {
            "buffer": ["model.bert_model.embeddings.position_ids"],
            "audio_head": AUDIO_HEAD_KEYS,
        }
        assert any("4 tensors, Whisper heads" in r.message and r.levelno == logging.INFO for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    config = loaded.model.config
    assert (config.preprocess, config.wrap_media_tokens) == ("upstream_train", True)  # pad + mm_use_x_start_end
    assert config.video_compressor == ("slow_fast" if LAYOUTS[layout]["compressor"] else "none")
    assert config.num_video_tokens == (16 if LAYOUTS[layout]["compressor"] else 32)
    assert {k: config.vision[k] for k in model.config.vision} == model.config.vision  # from the tower config
    batch = _batch(tokenizer, loaded.model)
    with torch.no_grad():
        expected = model(batch.input_ids, batch.attention_mask, batch.media).logits
        got = loaded.model(batch.input_ids, batch.attention_mask, batch.media).logits
    assert torch.equal(expected, got)


def test_the_compressor_can_be_switched_against_the_checkpoint(tokenizer, tmp_path):
    with_keys = source_model(tokenizer, "HumanOmni-0.5B")
    write_release(with_keys, tokenizer, tmp_path / "h", "HumanOmni-0.5B")
    off = load_humanomni(tmp_path / "h", video_compressor="none")
    assert off.model.config.num_video_tokens == 32
    assert off.model.load_report["unused_by_reason"]["compressor_off"] == COMPRESSOR_KEYS
    write_release(source_model(tokenizer, "R1-Omni-0.5B"), tokenizer, tmp_path / "r", "R1-Omni-0.5B")
    on = load_humanomni(tmp_path / "r", video_compressor="slow_fast")  # as HumanOmni's current code runs R1-Omni
    assert on.model.config.num_video_tokens == 16
    assert all(p.abs().sum() == 0 for p in on.model.feature_compressor.parameters())  # never run: zero-filled


def test_tower_weights_that_disagree_with_the_tower_config_are_an_error(tokenizer, tmp_path):
    model = source_model(tokenizer, "R1-Omni-0.5B")
    write_release(model, tokenizer, tmp_path / "ckpt", "R1-Omni-0.5B")
    SiglipVisionConfig(**{**model.config.vision, "num_hidden_layers": 2}).save_pretrained(
        tmp_path / "ckpt-towers" / "siglip"
    )
    with pytest.raises(CheckpointError, match=r"stored vision_tower .*\(3 stored layers vs num_hidden_layers=2\)"):
        load_model(tmp_path / "ckpt")


def test_missing_tower_folders_are_a_clear_error(tokenizer, tmp_path):
    write_release(source_model(tokenizer, "EMER-SFT-0.5B"), tokenizer, tmp_path / "ckpt", "EMER-SFT-0.5B")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["mm_vision_tower"] = "/mnt/authors/siglip-base-patch16-224"  # someone else's absolute path
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"mm_hidden_size=64 matches no known SigLIP tower; pass vision_tower_path"
    ):
        load_humanomni(tmp_path / "ckpt", vision_tower_path=None)
    loaded = load_humanomni(tmp_path / "ckpt", vision_tower_path=tmp_path / "ckpt-towers" / "siglip")
    assert loaded.model.load_report["tower_sources"]["vision_tower"] == str(tmp_path / "ckpt-towers" / "siglip")


def test_unknown_keys_in_a_release_are_an_error(tokenizer, tmp_path):
    folder = tmp_path / "ckpt"
    write_release(source_model(tokenizer, "R1-Omni-0.5B"), tokenizer, folder, "R1-Omni-0.5B")
    write_safetensors({"model.speaker_head.weight": torch.zeros(2)}, tmp_path / "extra")
    (tmp_path / "extra" / "model.safetensors").rename(folder / "model-extra.safetensors")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.speaker_head.weight"] = "model-extra.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        CheckpointError, match=r"1 keys match no part of the model: \['model.speaker_head.weight'\]"
    ):
        load_model(folder)


def test_model_spec_chooses_preprocessing_and_compressor(tokenizer, tmp_path):
    from src.models.factory import ModelSpec, describe

    write_release(source_model(tokenizer, "HumanOmni-0.5B"), tokenizer, tmp_path / "h", "HumanOmni-0.5B")
    own = describe(ModelSpec(pretrained=str(tmp_path / "h")))
    assert (own.config.preprocess, own.token_counts["video"]) == ("upstream_train", 16)
    asked = describe(
        ModelSpec(pretrained=str(tmp_path / "h"), preprocess="upstream_inference", video_compressor="none")
    )
    assert (asked.config.preprocess, asked.token_counts["video"]) == ("upstream_inference", 32)
    tiny = describe(ModelSpec(preset="tiny", video_compressor="slow_fast"))
    assert (tiny.config.preprocess, tiny.token_counts["video"]) == ("migr", 16)


def test_tower_configs_fill_left_out_fields_with_their_defaults():
    from src.models.humanomni import _VISION_FIELDS, _tower_fields

    # the hub's siglip-base-patch16-224 config.json: a SiglipConfig whose vision_config holds no shape at all
    vision = _tower_fields(
        {"model_type": "siglip", "vision_config": {"model_type": "siglip_vision_model"}}, "vision", _VISION_FIELDS
    )
    released = get_preset("humanomni-0.5b").vision
    assert {k: vision[k] for k in released} == released
