"""The frozen-tower feature cache: same numbers as recomputing, never stale, bounded, safe across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from src.models.feature_cache import FeatureCache, attach_feature_cache
from src.models.omni import OmniModel
from tests.models.conftest import collator_for, make_examples

AV, V, A = (True, True), (True, False), (False, True)


def frozen(model: OmniModel) -> OmniModel:
    model.freeze(vision_tower=True, audio_tower=True, bert_model=True)
    return model


def uncached_towers(
    model: OmniModel, frames: torch.Tensor, mel: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model.video_patches(frames), model.audio_states(mel)


def cached_towers(model: OmniModel, frames: torch.Tensor, mel: torch.Tensor):
    from src.models.omni import MediaInputs

    towers = model.tower_features(MediaInputs(frames=frames, mel=mel))
    return towers.video_patches, towers.audio_states


@pytest.fixture
def media():
    gen = torch.Generator().manual_seed(3)
    return torch.randn(3, 8, 3, 64, 64, generator=gen), torch.randn(3, 128, 300, generator=gen)


def test_cached_loss_and_features_equal_the_recomputed_ones(tiny_model, tokenizer, tmp_path):
    model = frozen(tiny_model)
    batch = collator_for(model, tokenizer, "right")(make_examples([AV, V, A, AV], target="happy"))
    reference = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
    cache = attach_feature_cache(model, {"enabled": True, "dir": str(tmp_path)})
    first = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)  # fills the cache
    second = model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)  # reads it
    assert cache.stats.misses == 3 + 3  # 3 clips with video, 3 with audio
    assert cache.stats.memory_hits == 6
    for out in (first, second):
        torch.testing.assert_close(out.loss, reference.loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.video_features, reference.video_features, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.audio_features, reference.audio_features, rtol=1e-5, atol=1e-6)


def test_entries_are_safetensors_files_a_new_process_reads(tiny_model, tmp_path, media):
    frames, mel = media
    model = frozen(tiny_model)
    model.feature_cache = FeatureCache(tmp_path)
    cached_towers(model, frames, mel)
    files = sorted(tmp_path.glob("*/*.safetensors"))
    assert len(files) == 6
    assert all(set(load_file(f)) == {"features"} for f in files)
    model.feature_cache = fresh = FeatureCache(tmp_path)  # what a later stage's process opens
    video, audio = cached_towers(model, frames, mel)
    assert (fresh.stats.disk_hits, fresh.stats.misses) == (6, 0)
    expected_video, expected_audio = uncached_towers(model, frames, mel)
    torch.testing.assert_close(video, expected_video, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(audio, expected_audio, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change", ["in_place", "load_state_dict"])
def test_changed_tower_weights_never_serve_old_features(tiny_model, tmp_path, media, change):
    frames, mel = media
    model = frozen(tiny_model)
    model.feature_cache = cache = FeatureCache(tmp_path)
    old_video, old_audio = cached_towers(model, frames, mel)
    with torch.no_grad():
        if change == "in_place":
            model.vision_tower.embeddings.patch_embedding.weight.mul_(1.5)
            model.audio_tower.conv1.weight.add_(0.1)
        else:
            state = {k: v + 0.05 for k, v in model.vision_tower.state_dict().items() if v.is_floating_point()}
            model.vision_tower.load_state_dict(state, strict=False)
            state = {k: v * 0.9 for k, v in model.audio_tower.state_dict().items()}
            model.audio_tower.load_state_dict(state)
    video, audio = cached_towers(model, frames, mel)
    assert cache.stats.misses == 12 and cache.stats.hits == 0
    expected_video, expected_audio = uncached_towers(model, frames, mel)
    torch.testing.assert_close(video, expected_video, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(audio, expected_audio, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(video, old_video) and not torch.allclose(audio, old_audio)
    # ... also for a process that opens the cache after the change (the fingerprint hashes the weights' bytes)
    model.feature_cache = FeatureCache(tmp_path)
    cached_towers(model, frames, mel)
    assert model.feature_cache.stats.disk_hits == 6


@pytest.mark.parametrize(
    "preprocess",
    [
        "one_pixel",  # the media file's content
        "frame_indices",  # other frames sampled from the clip
        "padding",  # a short clip padded with black instead of repeated frames
        "mel_settings",  # other log-mel settings (here: a different floor)
        "dtype",  # frames handed over in another precision
    ],
)
def test_changed_preprocessing_never_serves_old_features(tiny_model, tmp_path, media, preprocess):
    frames, mel = media
    model = frozen(tiny_model)
    model.feature_cache = cache = FeatureCache(tmp_path)
    cached_towers(model, frames, mel)
    frames, mel = frames.clone(), mel.clone()
    if preprocess == "one_pixel":
        frames[1, 4, 0, 10, 10] += 0.25
        mel[2, 5, 7] += 0.25
    elif preprocess == "frame_indices":
        frames = frames[:, [0, 0, 1, 2, 3, 4, 5, 6]]
        mel = torch.roll(mel, shifts=1, dims=-1)
    elif preprocess == "padding":
        frames[:, 6:] = 0.0
        mel[:, :, 200:] = mel.min()
    elif preprocess == "mel_settings":
        frames = frames * 1.01
        mel = torch.clamp(mel, min=float(mel.max()) - 3.0)
    else:
        frames, mel = frames.double(), mel.double()
    before = cache.stats.misses
    video, audio = cached_towers(model, frames, mel)
    changed = {"one_pixel": 2}.get(preprocess, 6)  # only the edited clips miss
    assert cache.stats.misses - before == changed
    expected_video, expected_audio = uncached_towers(model, frames, mel)
    torch.testing.assert_close(video, expected_video, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(audio, expected_audio, rtol=1e-5, atol=1e-6)


def test_the_gate_still_reads_the_instruction(tiny_model, tmp_path, media):
    """Only the clip's raw tower outputs are cached: the BERT gate mixes them per instruction text."""
    frames, _ = media
    model = frozen(tiny_model)
    model.feature_cache = FeatureCache(tmp_path)
    patches = cached_towers(model, frames, torch.zeros(3, 128, 300))[0]
    first = model.project_video(patches, torch.tensor([[5, 6, 7]] * 3))
    other = model.project_video(
        cached_towers(model, frames, torch.zeros(3, 128, 300))[0], torch.tensor([[9, 8]] * 3)
    )
    assert model.feature_cache.stats.hits == 6
    assert not torch.allclose(first, other)
    torch.testing.assert_close(other, model.encode_video(frames, torch.tensor([[9, 8]] * 3)), rtol=1e-5, atol=1e-6)


def test_trainable_towers_are_never_cached(tiny_model, tmp_path, media):
    frames, mel = media
    model = tiny_model.train()
    model.freeze(vision_tower=False, audio_tower=True)
    model.feature_cache = cache = FeatureCache(tmp_path)
    video, _ = cached_towers(model, frames, mel)
    assert video.requires_grad
    assert cache.stats.misses == 3  # the frozen audio tower only


def test_training_with_the_cache_gives_the_same_weights(tiny_model, tokenizer, tmp_path):
    collate = collator_for(tiny_model, tokenizer, "right")
    batches = [collate(make_examples([AV, V, A], target="happy", seed=s)) for s in (1, 2)]
    start = {k: v.clone() for k, v in frozen(tiny_model).state_dict().items()}

    def train(cache: FeatureCache | None) -> dict[str, torch.Tensor]:
        tiny_model.load_state_dict(start)
        tiny_model.train()
        tiny_model.feature_cache = cache
        params = [p for p in tiny_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        for step in range(4):  # two epochs of two batches: the second reads the cache
            batch = batches[step % 2]
            loss = tiny_model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {k: v.clone() for k, v in tiny_model.state_dict().items()}

    torch.manual_seed(0)
    without = train(None)
    cache = FeatureCache(tmp_path)
    torch.manual_seed(0)
    with_cache = train(cache)
    assert cache.stats.hits == 8  # epoch 2 read all 4 + 4 clips
    assert without.keys() == with_cache.keys()
    for key in without:
        torch.testing.assert_close(with_cache[key], without[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(
        without["mm_projector.mlp_2xgelu_face.0.weight"], start["mm_projector.mlp_2xgelu_face.0.weight"]
    )


def test_memory_and_disk_stay_within_their_limits(tmp_path):
    tower = torch.nn.Linear(1024, 1024)
    entry = 1024 * 4  # one float32 output row
    cache = FeatureCache(tmp_path, memory_mb=10 * entry / 2**20, disk_mb=20 * (entry + 200) / 2**20)
    for _ in range(6):
        cache.lookup("t", tower, "", torch.randn(8, 1024), lambda rows: tower(rows).detach())
    assert cache.stats.misses == 48
    assert cache._memory.bytes <= 10 * entry and len(cache._memory) == 10
    on_disk = sum(f.stat().st_size for f in tmp_path.glob("*/*.safetensors"))
    assert on_disk <= 20 * (entry + 200)
    assert cache.stats.evicted_memory == 38 and cache.stats.evicted_disk > 0
    assert "48 misses" in cache.summary()


def test_a_damaged_entry_is_recomputed(tiny_model, tmp_path, media):
    frames, mel = media
    model = frozen(tiny_model)
    model.feature_cache = FeatureCache(tmp_path)
    cached_towers(model, frames, mel)
    for file in tmp_path.glob("*/*.safetensors"):
        file.write_bytes(file.read_bytes()[:40])  # a torn write from some other tool
    model.feature_cache = cache = FeatureCache(tmp_path)
    video, _ = cached_towers(model, frames, mel)
    assert cache.stats.misses == 6
    torch.testing.assert_close(video, uncached_towers(model, frames, mel)[0], rtol=1e-5, atol=1e-6)


def _fill(directory: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same tower and inputs in both processes: they race on the same keys
    tower = torch.nn.Linear(256, 256)
    cache = FeatureCache(directory)
    inputs = torch.randn(40, 256)
    for round_ in range(4):
        if round_:  # delete what is there, so both processes write every entry again, concurrently
            cache._memory.clear()
            for file in Path(directory).glob("*/*.safetensors"):
                file.unlink(missing_ok=True)
        cache.lookup("t", tower, "", inputs, lambda rows: tower(rows).detach())


@pytest.mark.slow  # two spawned interpreters import torch
def test_two_processes_writing_the_same_entries_leave_only_complete_files(tmp_path):
    context = multiprocessing.get_context("spawn")  # fork would inherit torch's thread pool (deadlocks)
    workers = [context.Process(target=_fill, args=(str(tmp_path),)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    torch.manual_seed(0)
    tower = torch.nn.Linear(256, 256)
    inputs = torch.randn(40, 256)
    files = list(tmp_path.glob("*/*.safetensors"))
    assert len(files) == 40  # the last writer of each entry left it complete
    assert not list(tmp_path.glob("*/.*.tmp")), "temporary files left behind"
    assert all(load_file(f)["features"].shape == (256,) for f in files)
    cache = FeatureCache(tmp_path)
    out = cache.lookup("t", tower, "", inputs, lambda rows: tower(rows).detach())
    assert cache.stats.disk_hits == 40
    torch.testing.assert_close(out, tower(inputs).detach())


def test_the_switch_turns_it_off(tiny_model):
    assert attach_feature_cache(tiny_model, {"enabled": False, "dir": "x"}) is None
    assert tiny_model.feature_cache is None
    with pytest.raises(ValueError, match="unknown keys"):
        FeatureCache.from_config({"enabled": True, "size": 3})


def test_an_entry_removed_between_the_check_and_the_read_is_a_miss(tmp_path, monkeypatch, caplog):
    # the race test_two_processes_... hit once in a clean-clone run: another process unlinked the file after
    # get() saw it and before safetensors opened it (safetensors raises RuntimeError, not OSError, there)
    import src.data.cache as cache_module

    cache = cache_module.TensorCache(tmp_path)
    cache.put("ab" * 32, {"x": torch.ones(3)})
    real_load = cache_module.load_file

    def load_after_removal(file):
        Path(file).unlink()  # the other process wins the race
        return real_load(file)

    monkeypatch.setattr(cache_module, "load_file", load_after_removal)
    with caplog.at_level("WARNING"):
        assert cache.get("ab" * 32) is None
    assert "unreadable" not in caplog.text  # a miss, not a damaged entry
    monkeypatch.setattr(cache_module, "load_file", real_load)
    file = cache.file("ab" * 32)
    cache.put("ab" * 32, {"x": torch.ones(3)})
    file.write_bytes(b"not a safetensors file")
    with caplog.at_level("WARNING"):
        assert cache.get("ab" * 32) is None
    assert "unreadable" in caplog.text and not file.exists()  # a damaged entry is still removed, with a warning
