"""One rank of ``test_sharded_ranks_decode_in_lockstep`` (tests/models/test_generation.py), run as
``python -m tests.models.fsdp_decode_rank RANK WORLD INIT_FILE OUT_JSON``.

The tiny model is sharded with FSDP2 over the ranks (gloo). Each rank decodes its own prompt greedily; rank 0's
EOS is its first greedy token (it is done after one step), the other ranks' EOS a token they never produce (they
run all steps). Then every rank runs one more sharded forward and a barrier: that only completes if the ranks
decoded the same number of steps, so that their collectives paired up.
"""

from __future__ import annotations

import datetime
import json
import sys


def main(rank: int, world: int, init_file: str, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from src.models.generation import generate
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer
    from src.stages.common import shard_fsdp2

    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)  # the same weights on every rank, as FSDP expects
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    prompt = tokenizer(["the face looks happy" if rank == 0 else "the voice sounds sad"], return_tensors="pt")
    options = {"max_new_tokens": 6, "pad_token_id": tokenizer.pad_token_id}
    reference = generate(model, prompt.input_ids, prompt.attention_mask, eos_token_id=-1, **options).tokens[0]
    unused = next(i for i in range(len(tokenizer)) if i not in reference.tolist() and i != tokenizer.pad_token_id)
    eos = int(reference[0]) if rank == 0 else unused
    shard_fsdp2(model, init_device_mesh("cpu", (world,)))
    tokens = generate(model, prompt.input_ids, prompt.attention_mask, eos_token_id=eos, **options).tokens[0]
    model(prompt.input_ids, prompt.attention_mask, None)  # one more sharded forward on every rank
    dist.barrier()
    with open(out, "w") as handle:
        json.dump({"tokens": tokens.tolist(), "reference": reference.tolist(), "eos": eos}, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
