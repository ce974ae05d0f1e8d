"""The multimodal model: modality subsets in one batch, splicing, freezing, loss masking."""

from __future__ import annotations

import pytest
import torch

from src.models.omni import IGNORE_INDEX, MediaInputs
from tests.models.conftest import collator_for, make_examples

AV, V, A = (True, True), (True, False), (False, True)


def test_one_batch_mixes_audio_visual_visual_only_and_audio_only_rows(tiny_model, tokenizer):
    batch = collator_for(tiny_model, tokenizer)(make_examples([AV, V, A]))
    video_id, audio_id = tiny_model.video_token_id, tiny_model.audio_token_id
    assert (batch.input_ids == video_id).sum(1).tolist() == [32, 32, 0]
    assert (batch.input_ids == audio_id).sum(1).tolist() == [50, 0, 50]
    assert batch.media.frames.shape == (2, 8, 3, 64, 64)
    assert batch.media.mel.shape == (2, 128, 300)
    logits = tiny_model(batch.input_ids, batch.attention_mask, batch.media).logits
    assert logits.shape == (3, batch.input_ids.shape[1], len(tokenizer))


def test_dropping_a_modality_removes_exactly_its_tokens(tiny_model, tokenizer):
    collate = collator_for(tiny_model, tokenizer)
    lengths = {cond: int(collate(make_examples([cond])).attention_mask.sum()) for cond in (AV, V, A)}
    # "<video>\n" and "<audio>\n" are a placeholder plus a newline token in the prompt
    newline = len(tokenizer.encode("\n", add_special_tokens=False))
    assert lengths[AV] - lengths[V] == 50 + newline - 1 + 1  # audio placeholder run (+ its newline) gone
    assert lengths[AV] - lengths[A] == 32 + newline - 1 + 1


def test_media_rows_are_spliced_in_row_order(tiny_model, tokenizer):
    examples = make_examples([AV, A, AV])
    batch = collator_for(tiny_model, tokenizer)(examples)
    embeds = tiny_model.embed(batch.input_ids, batch.media)
    audio = tiny_model.encode_audio(batch.media.mel)
    for row, clip in ((0, 0), (1, 1), (2, 2)):
        positions = batch.input_ids[row] == tiny_model.audio_token_id
        torch.testing.assert_close(embeds[row, positions], audio[clip])


def test_clip_index_reuses_one_encoding_for_several_rows(tiny_model, tokenizer):
    # rows 0 and 1 are the same clip (audio-visual and visual-only): encode it once via video_index
    examples = make_examples([AV, V])
    examples[1].frames = examples[0].frames
    batch = collator_for(tiny_model, tokenizer)(examples)
    shared = MediaInputs(
        frames=batch.media.frames[:1],
        gate_input_ids=batch.media.gate_input_ids[:1],
        gate_attention_mask=batch.media.gate_attention_mask[:1],
        mel=batch.media.mel,
        video_index=torch.tensor([0, 0]),
    )
    torch.testing.assert_close(
        tiny_model.embed(batch.input_ids, shared), tiny_model.embed(batch.input_ids, batch.media)
    )


def test_placeholder_and_media_mismatch_is_a_clear_error(tiny_model, tokenizer):
    batch = collator_for(tiny_model, tokenizer)(make_examples([AV, AV]))
    one_clip = MediaInputs(
        frames=batch.media.frames[:1],
        gate_input_ids=batch.media.gate_input_ids[:1],
        mel=batch.media.mel,
    )
    with pytest.raises(ValueError, match=r"rows have \[32, 32\] placeholder positions, but 1 video inputs"):
        tiny_model.embed(batch.input_ids, one_clip)
    with pytest.raises(ValueError, match="<audio> placeholders but no audio features"):
        tiny_model.embed(
            batch.input_ids, MediaInputs(frames=batch.media.frames, gate_input_ids=batch.media.gate_input_ids)
        )


def test_loss_covers_only_target_tokens(tiny_model, tokenizer):
    collate = collator_for(tiny_model, tokenizer, padding_side="right")
    batch = collate(make_examples([AV, A], target="<answer>happy</answer>"))
    target_len = len(tokenizer.encode("<answer>happy</answer>", add_special_tokens=False)) + 1  # + <|im_end|>
    assert ((batch.labels != IGNORE_INDEX).sum(1) == target_len).all()
    out = tiny_model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels)
    assert out.num_target_tokens == 2 * target_len
    # the same loss from full logits: the target positions alone matter
    logits = tiny_model(batch.input_ids, batch.attention_mask, batch.media).logits
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(out.loss, reference)


def test_frozen_towers_get_no_gradient_and_trained_parts_do(tiny_model, tokenizer):
    tiny_model.freeze(vision_tower=True, audio_tower=True, bert_model=True)
    tiny_model.train()
    assert not tiny_model.vision_tower.training and tiny_model.llm.training
    batch = collator_for(tiny_model, tokenizer, "right")(make_examples([AV, V], target="<answer>sad</answer>"))
    tiny_model(batch.input_ids, batch.attention_mask, batch.media, labels=batch.labels).loss.backward()
    grads = {name: p.grad for name, p in tiny_model.named_parameters()}
    assert all(
        g is None for n, g in grads.items() if n.startswith(("vision_tower.", "audio_tower.", "bert_model."))
    )
    for prefix in ("llm.", "mm_projector.", "audio_projector.", "bert_gate."):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(prefix)), prefix


def test_frozen_gate_encoder_runs_once_per_distinct_instruction(tiny_model, tokenizer):
    calls = []
    tiny_model.bert_model.register_forward_hook(lambda *_: calls.append(1))
    batch = collator_for(tiny_model, tokenizer)(make_examples([AV, AV, V]))
    tiny_model.embed(batch.input_ids, batch.media)
    tiny_model.embed(batch.input_ids, batch.media)
    assert len(calls) == 1  # three rows, two batches, one instruction
