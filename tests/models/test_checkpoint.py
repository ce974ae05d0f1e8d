"""Our export folder: exact reload, sharding, strict key checking."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from src.models.checkpoint import CheckpointError, load_model, read_safetensors, save_model, write_safetensors
from tests.models.conftest import collator_for, make_examples


def _logits(model, batch):
    with torch.no_grad():
        return model(batch.input_ids, batch.attention_mask, batch.media).logits


def test_saved_tiny_model_reloads_to_identical_logits(tiny_model, tokenizer, tmp_path):
    folder = save_model(tiny_model, tokenizer, tokenizer, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "gate_tokenizer",
        "model.safetensors",
        "tokenizer",
    ]
    assert not any(p.suffix in {".bin", ".pt", ".pkl"} for p in folder.rglob("*"))
    loaded = load_model(folder)
    batch = collator_for(tiny_model, tokenizer)(make_examples([(True, True), (False, True)]))
    assert torch.equal(_logits(tiny_model, batch), _logits(loaded.model, batch))
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()
    # tied embeddings are stored once and tied again on load
    assert "llm.lm_head.weight" not in load_file(folder / "model.safetensors")
    assert loaded.model.llm.lm_head.weight.data_ptr() == loaded.model.llm.model.embed_tokens.weight.data_ptr()


def test_large_states_are_sharded_with_an_index(tiny_model, tmp_path):
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items() if k != "llm.lm_head.weight"}
    names = write_safetensors(state, tmp_path, max_shard_bytes=2_000_000)
    assert len(names) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(state)
    reread = read_safetensors(tmp_path)
    assert all(torch.equal(reread[k], state[k]) for k in state)


def test_missing_and_unexpected_keys_are_listed_never_random_init(tiny_model, tokenizer, tmp_path):
    folder = save_model(tiny_model, tokenizer, tokenizer, tmp_path / "export")
    tensors = load_file(folder / "model.safetensors")
    tensors.pop("audio_projector.0.weight")
    tensors["mystery.weight"] = torch.zeros(2)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"missing 1 keys: audio_projector.0.weight \| unexpected 1 keys: mystery.weight"
    ):
        load_model(folder)


def test_folder_without_weights_or_config_names_what_is_missing(tiny_model, tokenizer, tmp_path):
    folder = save_model(tiny_model, tokenizer, tokenizer, tmp_path / "export")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors or model\.safetensors\.index\.json"):
        load_model(folder)
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(CheckpointError, match="model_type 'llava' is not supported"):
        load_model(tmp_path)


def test_every_loader_dispatches_on_model_type_the_same_way(tiny_model, tokenizer, tmp_path):
    """load_model, describe and instantiate (and the evaluation's layer count) read model_type through one
    dispatcher: the same kinds, the same error for a type none of them knows."""
    from src.evaluation.runner import llm_layers
    from src.models.checkpoint import model_kind
    from src.models.factory import ModelSpec, describe, instantiate

    folder = save_model(tiny_model, tokenizer, tokenizer, tmp_path / "export")
    assert model_kind(folder) == "export"
    assert model_kind(folder, {"model_type": "HumanOmni_qwen2"}) == "humanomni"
    assert llm_layers(folder) == tiny_model.config.llm["num_hidden_layers"]
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    for load in (
        lambda: load_model(folder),
        lambda: describe(ModelSpec(pretrained=str(folder))),  # used to fail with KeyError 'omni'
        lambda: instantiate(ModelSpec(pretrained=str(folder))),
        lambda: llm_layers(folder),
    ):
        with pytest.raises(CheckpointError, match=re.escape(f"{folder}/config.json: model_type 'llava' is not")):
            load()
