"""The HumanOmni-architecture multimodal LLM: towers + projectors + BERT gate + Qwen2.

Data flow for one batch (any subset of modalities per row)::

    frames [Nv, T, 3, S, S] --SigLIP(layer -2)--> [Nv*T, P*P, Dv] --3 branches--> mixed by gate --> [Nv, T*S*S, H]
        (--> slow-fast compressor --> [Nv, T*(S//2)^2 + 2*S*S, H] when config.video_compressor == "slow_fast")
    instruction ids [Nv, Lg] --BERT CLS--> gate MLP --> softmax [Nv, 3] ---------^
    log-mel [Na, 128, F] --Whisper encoder--> avg-pool 3 --> MLP --> [Na, F/6, H]
    input_ids [B, L] with <video>/<audio> placeholder runs --embed + splice--> inputs_embeds [B, L, H] --> Qwen2

A row is audio-only / visual-only / audio-visual simply by which placeholder runs its ``input_ids`` contain
(:mod:`src.data.prompts`), so the three Modality Importance conditions share one batch. Media are encoded once
per *clip*: ``MediaInputs.video_index`` / ``audio_index`` map placeholder rows to encoded clips, so the G
copies of a GRPO prompt or the V-only and AV rows of one clip reuse one encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BertModel, Qwen2ForCausalLM, SiglipVisionModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from src.data.collate import IGNORE_INDEX, MediaInputs
from src.data.prompts import media_token_ids
from src.models.feature_cache import FeatureCache, weights_signature
from src.models.presets import OmniConfig
from src.models.projectors import SlowFastCompressor, VisualProjector, audio_projector, branch_gate
from src.models.towers import siglip_patch_features, whisper_pooled_states


@dataclass
class TowerFeatures:
    """Tower outputs of a batch's clips, reusable across forwards when the towers are frozen."""

    video_patches: Tensor | None = None  # [Nv, T, P*P, Dv]
    audio_states: Tensor | None = None  # [Na, N_audio, Da]


@dataclass
class OmniOutput:
    """``loss`` (mean token cross-entropy) when labels were given, ``logits`` for the kept positions."""

    loss: Tensor | None
    logits: Tensor | None
    num_target_tokens: int = 0
    past_key_values: object | None = None
    video_features: Tensor | None = None  # [R_v, N_v, H] projected features of the rows with video
    audio_features: Tensor | None = None  # [R_a, N_a, H] likewise for audio


class OmniModel(nn.Module):
    """HumanOmni ("HumanOmni_qwen2") re-implemented on transformers/timm building blocks.

    Submodule names follow the released checkpoint (``mm_projector``, ``audio_projector``, ``bert_model``,
    ``bert_gate``) so :mod:`src.models.humanomni` maps keys by prefix alone.

    Example:
        >>> from src.models.presets import get_preset
        >>> from src.models.tokenizer import build_tiny_tokenizer
        >>> tok = build_tiny_tokenizer()
        >>> model = OmniModel.from_tokenizer(get_preset("tiny"), tok)
        >>> model.config.num_video_tokens, model.config.num_audio_tokens
        (32, 50)
    """

    def __init__(self, config: OmniConfig, *, video_token_id: int, audio_token_id: int) -> None:
        super().__init__()
        self.config = config
        self.video_token_id = int(video_token_id)
        self.audio_token_id = int(audio_token_id)
        self.llm = Qwen2ForCausalLM(config.llm_config())
        self.vision_tower = SiglipVisionModel(config.vision_config())
        self.mm_projector = VisualProjector(
            config.vision["hidden_size"], config.hidden_size, config.projector_type
        )
        self.audio_tower = WhisperEncoder(config.audio_config())
        self.audio_projector = audio_projector(config.audio["d_model"], config.hidden_size)
        self.bert_model = BertModel(config.text_encoder_config())
        self.bert_gate = branch_gate(self.bert_model.config.hidden_size, config.gate_hidden_size)
        if config.video_compressor == "slow_fast":
            self.feature_compressor = SlowFastCompressor(config.vision["hidden_size"])
        self._gate_cls_cache: dict[bytes, Tensor] = {}
        self._gate_cls_signature: tuple | None = None
        # Frozen-tower outputs per clip (src/models/feature_cache.py); attached by the stages, evaluation and
        # the MIGR build when `feature_cache.enabled`; None recomputes the towers at every forward.
        self.feature_cache: FeatureCache | None = None
        self.freeze()  # towers frozen by default, as HumanOmni trains; unfreeze per training config

    @classmethod
    def from_tokenizer(cls, config: OmniConfig, tokenizer, gate_tokenizer=None) -> OmniModel:
        """Build with vocabulary sizes and placeholder ids taken from the tokenizers (gate defaults to the LLM's)."""
        config.llm["vocab_size"] = len(tokenizer)
        config.text_encoder["vocab_size"] = len(gate_tokenizer if gate_tokenizer is not None else tokenizer)
        ids = media_token_ids(tokenizer)
        return cls(config, video_token_id=ids["video"], audio_token_id=ids["audio"])

    # ---- freezing ---------------------------------------------------------------------------------------
    def frozen_parts(self) -> dict[str, bool]:
        """Which towers are frozen (no parameter that runs requires grad)."""
        parts = {"vision_tower": self.vision_tower, "audio_tower": self.audio_tower, "bert_model": self.bert_model}
        return {name: not any(p.requires_grad for p in m.parameters()) for name, m in parts.items()}

    def freeze(self, *, vision_tower: bool = True, audio_tower: bool = True, bert_model: bool = True) -> None:
        """Freeze (True) or unfreeze (False) each tower; frozen towers run in eval mode without autograd."""
        for module, frozen in (
            (self.vision_tower, vision_tower),
            (self.audio_tower, audio_tower),
            (self.bert_model, bert_model),
        ):
            module.requires_grad_(not frozen)
        # SigLIP blocks after the selected layer, its post-layernorm and pooling head never run: never train them.
        for module in self.unused_vision_modules():
            module.requires_grad_(False)
        if hasattr(self, "feature_compressor"):  # its two Linear layers are stored but never run
            self.feature_compressor.requires_grad_(False)
        self._gate_cls_cache.clear()
        self.train(self.training)

    def unused_vision_modules(self) -> list[nn.Module]:
        """Parts of the SigLIP tower that HumanOmni stores but never runs (features come from layer -2)."""
        layers = self.vision_tower.encoder.layers
        select = self.config.vision_select_layer
        run = len(layers) + 1 + select if select < 0 else select
        unused: list[nn.Module] = [*layers[run:], self.vision_tower.post_layernorm]
        if getattr(self.vision_tower, "head", None) is not None:
            unused.append(self.vision_tower.head)
        return unused

    def train(self, mode: bool = True) -> OmniModel:
        super().train(mode)
        for name, frozen in self.frozen_parts().items():
            if frozen:
                getattr(self, name).eval()
        return self

    # ---- media encoding --------------------------------------------------------------------------------
    def _text_cls(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        if not self.frozen_parts()["bert_model"] or input_ids.is_meta:
            return self.bert_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        # Frozen BERT: the CLS vector of an instruction never changes, so compute each distinct one once (and
        # again after BERT's weights were replaced or modified, e.g. by loading a checkpoint).
        signature = weights_signature(self.bert_model)
        if signature != self._gate_cls_signature:
            self._gate_cls_cache.clear()
            self._gate_cls_signature = signature
        rows = []
        for i in range(input_ids.shape[0]):
            mask = attention_mask[i] if attention_mask is not None else torch.ones_like(input_ids[i])
            ids = input_ids[i][mask.bool()]
            key = ids.cpu().numpy().tobytes()
            if key not in self._gate_cls_cache:
                with torch.no_grad():
                    self._gate_cls_cache[key] = self.bert_model(input_ids=ids[None]).last_hidden_state[0, 0]
            rows.append(self._gate_cls_cache[key].to(input_ids.device))
        return torch.stack(rows)

    def branch_weights(self, gate_input_ids: Tensor, gate_attention_mask: Tensor | None = None) -> Tensor:
        """``[N, 3]`` softmax weights of the (video, body, face) branches from the instruction text."""
        return torch.softmax(self.bert_gate(self._text_cls(gate_input_ids, gate_attention_mask)), dim=-1)

    def video_patches(self, frames: Tensor) -> Tensor:
        """``[N, T, 3, S, S]`` frames -> ``[N, T, P*P, Dv]`` SigLIP patch features (no autograd when frozen)."""
        n, t = frames.shape[:2]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_parts()["vision_tower"]):
            patches = siglip_patch_features(
                self.vision_tower, frames.flatten(0, 1), self.config.vision_select_layer
            )
        return patches.reshape(n, t, *patches.shape[1:])

    def audio_states(self, mel: Tensor) -> Tensor:
        """``[N, n_mels, F]`` log-mel -> ``[N, F/6, Da]`` pooled Whisper states (no autograd when frozen)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_parts()["audio_tower"]):
            return whisper_pooled_states(self.audio_tower, mel, self.config.audio_pool)

    def tower_features(self, media: MediaInputs) -> TowerFeatures:
        """Run the towers once; pass the result to :meth:`embed` to reuse it across forwards (GRPO).

        With a :attr:`feature_cache` attached, a frozen tower runs only on the clips it has not seen with these
        weights (in this or an earlier process).
        """
        video = audio = None
        if media.frames is not None:
            video = self._cached("vision_tower", f"select_layer={self.config.vision_select_layer}", media.frames)
        if media.mel is not None:
            audio = self._cached("audio_tower", f"pool={self.config.audio_pool}", media.mel)
        return TowerFeatures(video_patches=video, audio_states=audio)

    def _cached(self, tower: str, settings: str, inputs: Tensor) -> Tensor:
        compute = self.video_patches if tower == "vision_tower" else self.audio_states
        cache = self.feature_cache
        if cache is None or inputs.is_meta or not self.frozen_parts()[tower]:
            return compute(inputs)
        return cache.lookup(tower, getattr(self, tower), settings, inputs, compute)

    def encode_video(
        self, frames: Tensor, gate_input_ids: Tensor, gate_attention_mask: Tensor | None = None
    ) -> Tensor:
        """``[N, T, 3, S, S]`` frames -> ``[N, num_video_tokens, H]`` LLM-space features."""
        return self.project_video(self.video_patches(frames), gate_input_ids, gate_attention_mask)

    def project_video(
        self, patches: Tensor, gate_input_ids: Tensor, gate_attention_mask: Tensor | None = None
    ) -> Tensor:
        """Patch features ``[N, T, P*P, Dv]`` -> ``[N, num_video_tokens, H]``: the three branches mixed by the
        instruction gate (``[N, T*S*S, H]``), then the slow-fast compressor when the config has one."""
        branches = self.mm_projector(patches.to(self.mm_projector.mlp_2xgelu_face[0].weight.dtype))
        mixed = VisualProjector.mix(branches, self.branch_weights(gate_input_ids, gate_attention_mask))
        if hasattr(self, "feature_compressor"):
            return self.feature_compressor(mixed, patches.shape[1])
        return mixed

    def encode_audio(self, mel: Tensor) -> Tensor:
        """``[N, n_mels, F]`` log-mel -> ``[N, num_audio_tokens, H]`` LLM-space features."""
        return self.project_audio(self.audio_states(mel))

    def project_audio(self, states: Tensor) -> Tensor:
        return self.audio_projector(states.to(self.audio_projector[0].weight.dtype))

    def _splice(self, embeds: Tensor, input_ids: Tensor, token_id: int, feats: Tensor, name: str) -> Tensor:
        mask = input_ids == token_id  # [B, L]
        per_row = mask.sum(dim=1)
        tokens = feats.shape[1]
        rows_with = int((per_row > 0).sum())
        if bool(((per_row != 0) & (per_row != tokens)).any()) or rows_with != feats.shape[0]:
            raise ValueError(
                f"<{name}> placeholders do not match the {name} features: rows have {per_row.tolist()} "
                f"placeholder positions, but {feats.shape[0]} {name} inputs of {tokens} tokens each were given "
                f"(each row needs 0 or {tokens} positions; expand placeholders with the model's token counts)"
            )
        if rows_with == 0:
            return embeds
        return embeds.masked_scatter(mask[..., None], feats.to(embeds.dtype))

    def embed(
        self, input_ids: Tensor, media: MediaInputs | None = None, towers: TowerFeatures | None = None
    ) -> Tensor:
        """Token embeddings with media features spliced in at the placeholder runs: ``[B, L, H]``.

        ``towers`` (from :meth:`tower_features` on the same ``media``) skips the tower passes.
        """
        return self.embed_with_media(input_ids, media, towers)[0]

    def embed_with_media(
        self, input_ids: Tensor, media: MediaInputs | None = None, towers: TowerFeatures | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """:meth:`embed`, plus the projected video / audio features of the rows that have them.

        Returns ``(embeds [B, L, H], video [R_v, N_v, H] | None, audio [R_a, N_a, H] | None)``, features in
        the row order of the rows showing each modality (what was spliced in).
        """
        embeds = self.llm.get_input_embeddings()(input_ids)
        media = media or MediaInputs()
        if towers is None:
            towers = self.tower_features(media)
        video = audio = None
        if media.frames is not None:
            if media.gate_input_ids is None:
                raise ValueError("video input needs gate_input_ids (the instruction tokens for the BERT gate)")
            video = self.project_video(towers.video_patches, media.gate_input_ids, media.gate_attention_mask)
            video = video if media.video_index is None else video[media.video_index]
            embeds = self._splice(embeds, input_ids, self.video_token_id, video, "video")
        elif bool((input_ids == self.video_token_id).any()):
            raise ValueError("input_ids contain <video> placeholders but no frames were given")
        if media.mel is not None:
            audio = self.project_audio(towers.audio_states)
            audio = audio if media.audio_index is None else audio[media.audio_index]
            embeds = self._splice(embeds, input_ids, self.audio_token_id, audio, "audio")
        elif bool((input_ids == self.audio_token_id).any()):
            raise ValueError("input_ids contain <audio> placeholders but no audio features were given")
        return embeds, video, audio

    # ---- language model ----------------------------------------------------------------------------------
    @property
    def causal_lm(self) -> Qwen2ForCausalLM:
        """The Qwen2 causal LM under any peft wrapper (its ``.model`` is the decoder, ``.lm_head`` the head)."""
        llm = self.llm
        return llm.get_base_model() if hasattr(llm, "get_base_model") else llm

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        media: MediaInputs | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        towers: TowerFeatures | None = None,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: object | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> OmniOutput:
        """Run the LLM on spliced embeddings.

        With ``labels`` (``[B, L]``, ``-100`` outside the targets) the loss is the mean cross-entropy over
        target tokens, and the vocabulary projection runs only at the positions that predict a target (no
        logits for prompt or media positions). Without labels, ``logits_to_keep`` follows HF (0 = all).
        """
        video = audio = None
        if inputs_embeds is None:
            inputs_embeds, video, audio = self.embed_with_media(input_ids, media, towers)
        if labels is None:
            out = self.llm(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
                logits_to_keep=logits_to_keep,
            )
            return OmniOutput(
                loss=None,
                logits=out.logits,
                past_key_values=out.past_key_values,
                video_features=video,
                audio_features=audio,
            )
        hidden = self.causal_lm.model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state  # [B, L, H]
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX  # position t predicts token t + 1
        logits = self.causal_lm.lm_head(hidden[:, :-1][keep])  # [N_target, V]
        loss = F.cross_entropy(logits.float(), targets[keep])
        return OmniOutput(
            loss=loss,
            logits=logits,
            num_target_tokens=int(keep.sum()),
            video_features=video,
            audio_features=audio,
        )

    def token_counts(self) -> dict[str, int]:
        """LLM positions per modality for one clip (``{"video": ..., "audio": ...}``)."""
        return {"video": self.config.num_video_tokens, "audio": self.config.num_audio_tokens}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component (works on the ``meta`` device)."""
        parts = (
            "llm",
            "vision_tower",
            "mm_projector",
            "audio_tower",
            "audio_projector",
            "bert_model",
            "bert_gate",
            *(("feature_compressor",) if hasattr(self, "feature_compressor") else ()),
        )
        return {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in parts}
