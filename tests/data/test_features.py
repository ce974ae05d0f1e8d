from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from src.data.features import WhisperLogMel, log_mel


def _waves(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * rng.uniform(0.01, 0.5)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize(
    ("seconds", "lengths"),
    [
        (30, [160000, 16000, 5]),  # 10 s, 1 s, a few samples: the skipped-frames path
        (30, [480000, 500000]),  # exactly the window, and longer (truncated)
        (30, [479800, 479799, 479798]),  # right at the edge of the skipped-frames path
        (3, [48000, 30000, 70000]),  # the tiny preset's window
    ],
)
def test_matches_whisper_feature_extractor(seconds: int, lengths: list[int]) -> None:
    waves = _waves(lengths)
    reference = WhisperFeatureExtractor(feature_size=128, chunk_length=seconds)(
        waves, sampling_rate=16000, return_tensors="pt"
    )["input_features"]
    ours = log_mel([torch.from_numpy(wave) for wave in waves], n_mels=128, num_seconds=seconds)
    assert ours.shape == reference.shape == (len(lengths), 128, 100 * seconds)
    assert (ours - reference).abs().max() < 1e-4


def test_80_bin_variant_matches_too() -> None:
    waves = _waves([32000])
    reference = WhisperFeatureExtractor(feature_size=80)(waves, sampling_rate=16000, return_tensors="pt")
    assert (log_mel(torch.from_numpy(waves[0]), n_mels=80) - reference["input_features"]).abs().max() < 1e-4


def test_batch_tensor_and_list_inputs_agree() -> None:
    waves = torch.from_numpy(np.stack(_waves([16000, 16000])))
    as_tensor = log_mel(waves, num_seconds=3)  # [B, N]
    as_list = log_mel(list(waves), num_seconds=3)
    assert torch.equal(as_tensor, as_list)
    assert torch.equal(log_mel(waves[0], num_seconds=3), as_list[:1])  # a 1-D tensor is a batch of one


def test_each_clip_is_normalised_on_its_own() -> None:
    quiet, loud = _waves([16000, 16000])
    alone = log_mel(torch.from_numpy(quiet), num_seconds=3)[0]
    together = log_mel([torch.from_numpy(quiet), torch.from_numpy(loud * 100)], num_seconds=3)[0]
    assert torch.equal(alone, together)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"waveform 1 must be 1-D mono audio; got shape \(2, 10\)"):
        log_mel([torch.zeros(10), torch.zeros(2, 10)])
    with pytest.raises(ValueError, match="at least one waveform"):
        log_mel([])
    with pytest.raises(ValueError, match=r"expected waveforms of shape \[N\] or \[B, N\]"):
        log_mel(torch.zeros(2, 2, 10))
    with pytest.raises(ValueError, match="must be positive"):
        WhisperLogMel(n_mels=0)
    with pytest.raises(ValueError, match="Whisper features need 16000 Hz audio; got sample_rate=8000"):
        WhisperLogMel(sample_rate=8000)


def test_the_callers_thread_setting_is_restored() -> None:
    before = torch.get_num_threads()
    log_mel(torch.zeros(1600), num_seconds=3)  # computed single-threaded inside
    assert torch.get_num_threads() == before
