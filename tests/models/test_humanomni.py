"""Released HumanOmni checkpoints: written here in exactly the released layout, loaded key for key."""

from __future__ import annotations

import json

import pytest
import torch

from src.models.checkpoint import CheckpointError, load_model, write_safetensors
from src.models.presets import get_preset
from tests.models.conftest import collator_for, make_examples

# The released naming, written out independently of the loader's mapping table.
RELEASED_PREFIX = {
    "llm.model.": "model.",
    "llm.lm_head.": "lm_head.",
    "mm_projector.": "model.mm_projector.",
    "audio_projector.": "model.audio_projector.",
    "bert_model.": "model.bert_model.",
    "bert_gate.": "model.bert_gate.",
    "vision_tower.": "model.vision_tower.vision_tower.vision_model.",
    "audio_tower.": "model.audio_tower.audio_tower.encoder.",
}


def _released_state(model, *, with_towers: bool = True):
    out = {}
    for key, value in model.state_dict().items():
        if key == "llm.lm_head.weight" and model.llm.config.tie_word_embeddings:
            continue
        for ours, theirs in RELEASED_PREFIX.items():
            if key.startswith(ours):
                if with_towers or not key.startswith(("vision_tower.", "audio_tower.")):
                    out[theirs + key[len(ours) :]] = value.contiguous()
                break
    return out


def _write_release(model, tokenizer, folder, *, with_towers=True):
    llm = model.llm.config
    config = {
        "model_type": "HumanOmni_qwen2",
        "architectures": ["HumanOmniQwen2ForCausalLM"],
        "mm_vision_tower": "/mnt/authors/siglip-base-patch16-224",  # absolute path of someone else's machine
        "mm_audio_tower": "/mnt/authors/whisper-large-v3",
        "mm_hidden_size": model.config.vision["hidden_size"],
        "audio_hidden_size": model.config.audio["d_model"],
        "mm_projector_type": "all_in_one_small",
        "mm_audio_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "num_frames": 8,
        "image_aspect_ratio": "pad",
        **{
            k: getattr(llm, k)
            for k in (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "max_position_embeddings",
                "rms_norm_eps",
                "tie_word_embeddings",
            )
        },
    }
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    state = _released_state(model, with_towers=with_towers)
    state["model.bert_model.embeddings.position_ids"] = torch.arange(8)[None]  # an old-style stored buffer
    write_safetensors(state, folder, max_shard_bytes=1_500_000)  # several shards + index, as released
    tokenizer.save_pretrained(folder)
    tokenizer.save_pretrained(folder / "bert")
    return state


@pytest.fixture
def released_shaped_model(tokenizer, monkeypatch):
    """The tiny model, but declared with the 0.5B projector type's tower shapes replaced by tiny ones."""
    import src.models.humanomni as humanomni

    tiny = get_preset("tiny")
    monkeypatch.setattr(humanomni, "get_preset", lambda name: get_preset("tiny", preset=name))
    from src.models.omni import OmniModel

    torch.manual_seed(3)
    return OmniModel.from_tokenizer(tiny, tokenizer).eval()


def test_released_layout_loads_every_key_and_reproduces_logits(released_shaped_model, tokenizer, tmp_path):
    model = released_shaped_model
    state = _write_release(model, tokenizer, tmp_path / "HumanOmni-0.5B")
    loaded = load_model(tmp_path / "HumanOmni-0.5B")
    assert loaded.model.load_report["tower_sources"] == {"vision_tower": "checkpoint", "audio_tower": "checkpoint"}
    assert loaded.model.load_report["unused_keys"] == ["model.bert_model.embeddings.position_ids"]
    assert len(state) > 100
    batch = collator_for(model, tokenizer)(make_examples([(True, True), (True, False)]))
    with torch.no_grad():
        expected = model(batch.input_ids, batch.attention_mask, batch.media).logits
        got = loaded.model(batch.input_ids, batch.attention_mask, batch.media).logits
    assert torch.equal(expected, got)


def test_towers_missing_from_the_checkpoint_come_from_their_folders(released_shaped_model, tokenizer, tmp_path):
    model = released_shaped_model
    _write_release(model, tokenizer, tmp_path / "ckpt", with_towers=False)
    with pytest.raises(
        CheckpointError,
        match=r"ckpt: the checkpoint stores no vision_tower weights .*\(config mm_vision_tower='/mnt/authors",
    ):
        load_model(tmp_path / "ckpt")
    from src.models.humanomni import load_humanomni

    # SigLIP folder as HF writes a SiglipModel (vision_model.*), Whisper as WhisperForConditionalGeneration
    siglip = {"vision_model." + k: v.contiguous() for k, v in model.vision_tower.state_dict().items()}
    siglip["text_model.embeddings.token_embedding.weight"] = torch.zeros(4, 4)
    whisper = {"model.encoder." + k: v.contiguous() for k, v in model.audio_tower.state_dict().items()}
    whisper["model.decoder.embed_tokens.weight"] = torch.zeros(4, 4)
    write_safetensors(siglip, tmp_path / "siglip")
    write_safetensors(whisper, tmp_path / "whisper")
    loaded = load_humanomni(
        tmp_path / "ckpt", vision_tower_path=tmp_path / "siglip", audio_tower_path=tmp_path / "whisper"
    )
    assert loaded.model.load_report["tower_sources"] == {
        "vision_tower": str(tmp_path / "siglip"),
        "audio_tower": str(tmp_path / "whisper"),
    }
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_unknown_keys_in_a_release_are_an_error(released_shaped_model, tokenizer, tmp_path):
    folder = tmp_path / "ckpt"
    _write_release(released_shaped_model, tokenizer, folder)
    write_safetensors({"model.feature_compressor.weight": torch.zeros(2)}, tmp_path / "extra")
    (tmp_path / "extra" / "model.safetensors").rename(folder / "model-extra.safetensors")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.feature_compressor.weight"] = "model-extra.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        CheckpointError, match=r"1 keys match no part of the model: \['model.feature_compressor.weight'\]"
    ):
        load_model(folder)
