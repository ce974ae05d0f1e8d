"""KV-cache decoding: equal to HF generate and to the no-cache path; G samples share one prefill."""

from __future__ import annotations

import math

import pytest
import torch

from src.models.generation import generate
from tests.helpers import eos_biased
from tests.models.conftest import collator_for, make_examples

AV, V, A = (True, True), (True, False), (False, True)


def _batch(model, tokenizer):
    return collator_for(model, tokenizer, "left")(make_examples([AV, V, A]))


def test_greedy_with_and_without_cache_and_hf_generate_agree(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)
    kwargs = dict(max_new_tokens=24, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    cached = generate(tiny_model, batch.input_ids, batch.attention_mask, batch.media, **kwargs)
    uncached = generate(tiny_model, batch.input_ids, batch.attention_mask, batch.media, use_cache=False, **kwargs)
    assert torch.equal(cached.tokens, uncached.tokens)
    embeds = tiny_model.embed(batch.input_ids, batch.media)
    hf = tiny_model.llm.generate(
        inputs_embeds=embeds, attention_mask=batch.attention_mask, do_sample=False, **kwargs
    )
    assert torch.equal(hf[:, : cached.tokens.shape[1]], cached.tokens)


def test_samples_of_a_prompt_share_one_media_encoding_and_one_prefill(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)
    vision_calls, prefill_rows = [], []
    tiny_model.vision_tower.embeddings.register_forward_hook(lambda m, i, o: vision_calls.append(o.shape[0]))
    generate(
        tiny_model,
        batch.input_ids,
        batch.attention_mask,
        batch.media,
        max_new_tokens=8,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_return_sequences=4,
        temperature=1.0,
        on_step=lambda step, out: prefill_rows.append(out.logits.shape[0]) if step == 0 else None,
    )
    assert vision_calls == [2 * 8]  # two clips with video, 8 frames each, encoded once for 4 samples
    assert prefill_rows == [3]  # the prompt rows, not 12


def test_completions_stop_at_eos_and_are_masked_after_it(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    # a model biased to emit EOS: about one step in three draws it, so rows stop at different lengths
    with eos_biased(tiny_model.llm, eos, bias=float(math.log(len(tokenizer)) - 0.5)):
        gen = generate(
            tiny_model,
            batch.input_ids,
            batch.attention_mask,
            batch.media,
            max_new_tokens=40,
            eos_token_id=eos,
            pad_token_id=pad,
            num_return_sequences=4,
            temperature=1.0,
            generator=torch.Generator().manual_seed(0),
        )
    lengths = []
    for row, mask in zip(gen.tokens, gen.completion_mask):
        hits = (row == eos).nonzero()
        assert len(hits) >= 1, "every row reaches EOS"
        first = int(hits[0])
        lengths.append(first + 1)
        assert mask[: first + 1].all() and not mask[first + 1 :].any()  # mask up to and including EOS
        assert (row[first + 1 :] == pad).all()  # padding after it
    assert gen.lengths.tolist() == lengths
    assert len(set(lengths)) > 1 and max(lengths) > 1  # rows stopped at different points, not all at once
    assert gen.tokens.shape[1] == max(lengths) < 40  # decoding ended when the last row stopped


def test_sampling_is_reproducible_with_a_generator(tiny_model, tokenizer):
    batch = _batch(tiny_model, tokenizer)
    runs = [
        generate(
            tiny_model,
            batch.input_ids,
            batch.attention_mask,
            batch.media,
            max_new_tokens=12,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            num_return_sequences=3,
            temperature=0.7,
            top_p=0.9,
            generator=torch.Generator().manual_seed(7),
        ).tokens
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape[0] == 9


@pytest.mark.slow
def test_sharded_ranks_decode_in_lockstep(tmp_path):
    """Under FSDP a rank whose rows all reached EOS keeps stepping (emitting padding) until every rank is done:
    otherwise it leaves the decode loop while the others still call the sharded forward, and the ranks'
    collectives stop pairing up (a hang, here a 60 s timeout). 2 CPU processes, gloo, FSDP2 on the tiny model."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    ranks = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.models.fsdp_decode_rank",
                str(rank),
                "2",
                str(tmp_path / "init"),
                str(tmp_path / f"rank{rank}.json"),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in ranks]
    for rank, process in enumerate(ranks):
        assert process.returncode == 0, f"rank {rank} failed:\n{outputs[rank][-3000:]}"
    first, second = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2))
    pad = first["tokens"][-1]
    assert first["tokens"] == [first["eos"]] + [pad] * 5  # done after one step, then padding while rank 1 ran
    assert second["tokens"] == second["reference"]  # all 6 steps, the unsharded model's greedy tokens
