"""The metrics under real data parallelism: 2 CPU processes (gloo), each counting half of the samples.

``compute()`` and the tensor helpers must return the figures of one process that saw everything, and
leave each rank's local counts in place afterwards (so accumulation can go on).
"""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.data.labels import labels_for
from src.metrics import ConsistencyMetrics, RecognitionMetrics

LABELS = labels_for("mafw")
WORLD_SIZE = 2
NUM_SAMPLES, RANK0_SAMPLES = 90, 37
JOIN_TIMEOUT_S = 120


def _cases(size: int = NUM_SAMPLES) -> list[tuple[str | None, str, str | None]]:
    rng = random.Random(7)
    cases = []
    for _ in range(size):
        truth = rng.choice(LABELS)
        pred = truth if rng.random() < 0.5 else rng.choice([*LABELS, None])
        cases.append((pred, truth, rng.choice([truth, pred, None])))
    return cases


def _measure(cases: list[tuple[str | None, str, str | None]]) -> dict:
    preds, targets, judged = (list(column) for column in zip(*cases))
    recognition, consistency = RecognitionMetrics(LABELS), ConsistencyMetrics(LABELS)
    recognition.update(preds, targets)
    consistency.update(preds, targets, judged)
    local_total = int(recognition.confusion.sum())
    result = {
        "recognition": recognition.compute(),
        "consistency": consistency.compute(),
        "confusion": recognition.confusion_matrix().tolist(),
        "joint": consistency.joint_counts().tolist(),
    }
    result["local_total_after_sync"] = int(recognition.confusion.sum())
    result["local_total"] = local_total
    return result


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        cases = _cases()
        # Uneven shards on purpose: only the summed counts may matter.
        shard = cases[:RANK0_SAMPLES] if rank == 0 else cases[RANK0_SAMPLES:]
        result = _measure(shard)
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two processes and a gloo group (about 5 s)
def test_two_processes_agree_with_one(tmp_path: Path) -> None:
    # A fork server that has already imported this module (and so torchmetrics, ~4 s) forks the two ranks.
    # Plain fork deadlocked the ranks when earlier tests (the TRL ones) had started thread pools in this process.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    ranks = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=False, start_method="forkserver"
    )
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail(f"the {WORLD_SIZE} ranks did not finish within {JOIN_TIMEOUT_S} s")
    expected = _measure(_cases())
    for rank in range(WORLD_SIZE):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for group in ("recognition", "consistency"):
            for name, value in expected[group].items():
                assert result[group][name] == pytest.approx(value, nan_ok=True), (rank, group, name)
        assert result["confusion"] == expected["confusion"]
        assert result["joint"] == expected["joint"]
        assert result["local_total"] == (RANK0_SAMPLES if rank == 0 else NUM_SAMPLES - RANK0_SAMPLES)
        assert result["local_total_after_sync"] == result["local_total"]  # local counts restored


def test_single_process_helpers_do_not_need_a_process_group() -> None:
    assert not dist.is_initialized()
    result = _measure(_cases())
    assert torch.tensor(result["confusion"]).sum() == NUM_SAMPLES
