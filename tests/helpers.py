"""Helpers shared by tests: composing the real configs, pointing a run at a test corpus."""

from __future__ import annotations

import itertools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def corpus_overrides(manifest: Path) -> list[str]:
    """Overrides that point a run at a test corpus (and its media cache) without building the default one."""
    return [
        f"data.manifest={manifest}",
        "data.synth=null",
        f"data.cache_dir={manifest.parent / '.cache'}",
        "trainer.enable_progress_bar=false",
    ]


def compose(config_name: str, *overrides: str):
    """The composed ``configs/<config_name>.yaml`` with ``overrides``, as the command line would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def compose_train(*overrides: str):
    """The composed `configs/train.yaml` (what `python -m src.train <overrides>` runs)."""
    return compose("train", *overrides)


def one_clip_batch(model, tokenizer, loader, sample, condition: str, *, task: str, target: str | None = None):
    """The collated batch of one clip under one Modality Importance condition (``audio`` | ``visual`` |
    ``audio_visual``): the reference that batched, padded, cache-sharing code is compared with."""
    from src.data.collate import Example, OmniCollator
    from src.data.prompts import build_prompt, instruction_for
    from src.migr.importance import CONDITION_MODALITIES

    has_video, has_audio = CONDITION_MODALITIES[condition]
    item = loader.load(sample, video=has_video, audio=has_audio)
    instruction = instruction_for(task)
    example = Example(
        prompt=build_prompt(instruction, has_video=has_video, has_audio=has_audio),
        target=target,
        frames=item.frames,
        mel=item.mel,
        instruction=instruction,
    )
    counts = model.token_counts()
    collate = OmniCollator(
        tokenizer, tokenizer, num_video_tokens=counts["video"], num_audio_tokens=counts["audio"]
    )
    return collate([example])


def wandb_history(run_root: Path, *, timeout: float = 60.0) -> list[dict]:
    """The history rows (one dict per ``log`` call) of the one offline W&B run under ``run_root/wandb``.

    Reads the run's ``.wandb`` file as W&B writes it: a 7-byte header (``:W&B``, magic, version), then records
    in LevelDB's log format (32 KiB blocks; each chunk has a CRC, a 2-byte length and a FULL/FIRST/MIDDLE/LAST
    type), each record a ``wandb_internal_pb2.Record`` protobuf. W&B's service process writes the file on its
    own schedule, so this waits (up to ``timeout`` seconds) for the run's ``exit`` record.
    """
    import time

    (path,) = sorted((run_root / "wandb").glob("offline-run-*/run-*.wandb"))
    deadline = time.monotonic() + timeout
    while True:
        kinds, rows = _wandb_records(path)
        if "exit" in kinds or time.monotonic() > deadline:
            assert "exit" in kinds, f"{path} has no exit record after {timeout} s: the run did not finish"
            return rows
        time.sleep(0.5)


def _wandb_records(path: Path) -> tuple[set[str], list[dict]]:
    """The record types in a ``.wandb`` file and its history rows (see :func:`wandb_history`)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} does not start with the W&B header: {data[:7]!r}"
    block, header = 32768, 7
    position, pending, rows, kinds = header, b"", [], set()
    while position + header <= len(data):
        if block - position % block < header:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + header])
        payload = data[position + header : position + header + length]
        position += header + length
        if kind in (2, 3):  # FIRST, MIDDLE
            pending += payload
            continue
        if kind not in (1, 4):  # padding
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending + payload)
        pending = b""
        kinds.add(record.WhichOneof("record_type"))
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return kinds, rows


SCRIPT = (
    "<vis_desc>Her jaw is tight</vis_desc><aud_desc>The voice rises furiously.</aud_desc>"
    "<think>So enraged!</think><answer>angry</answer>"
)


def scripted_export(folder: Path, script: str = SCRIPT) -> Path:
    """A tiny model folder whose greedy output is ``script`` whatever it is shown (an independent, known answer).

    See :func:`scripted_model`; saved as our export.
    """
    from src.models.checkpoint import save_model

    model, tokenizer = scripted_model(script)
    return save_model(model, tokenizer, tokenizer, folder)


def scripted_model(script: str = SCRIPT, **overrides):
    """A tiny model (and its tokenizer) whose greedy output is ``script`` whatever it is shown.

    Every transformer block's output projections are zero, so the last position's hidden state is the (normed)
    embedding of the last token, and the untied LM head maps each token of the script to the next one (the
    prompt's last token to the first). The script's tokens must be distinct; the media still pass through the
    towers, projectors and attention (attention shares are real, only the text is fixed). ``overrides`` are
    tiny-preset overrides (e.g. a released layout's, :func:`tests.fixtures.released.layout_overrides`); the LM
    head is always untied.
    """
    import torch

    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    llm = {**overrides.pop("llm", {}), "tie_word_embeddings": False}
    model = OmniModel.from_tokenizer(get_preset("tiny", llm=llm, **overrides), tokenizer)
    chain = [tokenizer.encode("\n", add_special_tokens=False)[-1]]
    chain += [*tokenizer.encode(script, add_special_tokens=False), tokenizer.eos_token_id]
    if len(set(chain)) != len(chain):
        raise ValueError(f"script tokens repeat: {tokenizer.convert_ids_to_tokens(chain)}")
    lm = model.causal_lm
    with torch.no_grad():
        for layer in lm.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.model.norm.weight.fill_(1.0)
        embeddings = lm.model.embed_tokens.weight
        lm.lm_head.weight.zero_()
        for current, following in itertools.pairwise(chain):
            direction = embeddings[current] / embeddings[current].pow(2).mean().sqrt()
            lm.lm_head.weight[following] += 10.0 * direction / direction.norm()
    return model.eval(), tokenizer


def eos_biased(llm, eos_token_id: int, bias: float):
    """Context manager: ``llm``'s output layer adds ``bias`` to the EOS logit (a model biased to stop).

    The head is replaced by a copy with a bias vector (zero except at EOS) and restored on exit.
    """
    import contextlib

    import torch

    @contextlib.contextmanager
    def biased():
        head = llm.lm_head
        replacement = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        with torch.no_grad():
            replacement.weight.copy_(head.weight)
            replacement.bias.zero_()
            replacement.bias[eos_token_id] = bias
        llm.lm_head = replacement
        try:
            yield llm
        finally:
            llm.lm_head = head

    return biased()


def worker_pids(module: str, config_file: Path) -> list[int]:
    """Pids of the worker processes ``python -m <module> <config_file> ...`` (src.demo.arm_worker, src.study.plan)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone meanwhile
            continue
        if module.encode() in cmdline and str(config_file).encode() in cmdline:
            pids.append(int(proc.name))
    return pids
