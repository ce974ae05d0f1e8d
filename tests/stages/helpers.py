"""Test-only Lightning callbacks injected through the `callbacks` config of a real `python -m src.train` run."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process at the end of training step ``step`` (before that step's checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillDuringCheckpointWrite(L.Callback):
    """SIGKILL this process while step ``step``'s checkpoint is written: after its tensor file, before the commit."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            from src import atomic

            atomic.save_tensors = _then_die(atomic.save_tensors)  # the checkpoint callback runs after this one


class KillBeforeLastCheckpoint(L.Callback):
    """SIGKILL this process after step ``step``'s ``step=N.ckpt`` is committed and before its ``last.ckpt`` is
    written (Lightning's checkpoint callback writes the two one after the other; at the first checkpoint this
    leaves no ``last.ckpt`` at all)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:  # the checkpoint callback runs after this one

            def die(*args: object, **kwargs: object) -> None:
                os.kill(os.getpid(), signal.SIGKILL)

            trainer.checkpoint_callback._save_last_checkpoint = die


class KillDuringExport(L.Callback):
    """SIGKILL this process while the final export is written (its weights are on disk, the folder is not)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step != trainer.max_steps:
            return
        from src.models import checkpoint

        checkpoint.write_safetensors = _then_die(checkpoint.write_safetensors)


def _then_die(write):
    """``write`` followed by a SIGKILL of this process (the write is complete, what follows it never runs)."""

    def write_then_die(*args: object, **kwargs: object) -> None:
        write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return write_then_die


class LengthRewardOnly(L.Callback):
    """Give a GRPO run one reward with spread on a random model's completions (length / 100), so updates differ."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from src.reward_set import RewardSet, RewardSpec

        pl_module.reward_set = RewardSet([RewardSpec("length")], registry=_LengthRegistry())


class LengthReward:
    name = "length"

    def __call__(self, *, completions: list[str], **batch: object) -> list[float]:
        return [len(text) / 100 for text in completions]


class _LengthRegistry:
    def load(self, name: str) -> type:
        return LengthReward

    def create(self, name: str, **kwargs: object) -> LengthReward:
        return LengthReward()

    def provenance(self, name: str) -> dict[str, str]:
        return {"package": "tests", "version": "0", "object": "tests.stages.helpers:LengthReward"}


class RecordSampleIds(L.Callback):
    """Append each training step's sample ids, as this rank read them, to ``<run_dir>/sample_ids.rank<r>.jsonl``."""

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        import json
        from pathlib import Path

        path = Path(trainer.default_root_dir) / f"sample_ids.rank{trainer.global_rank}.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "ids": [m["id"] for m in batch.meta]}) + "\n")


class DumpProcessState(L.Callback):
    """Write the process-wide state a run can depend on to ``<run_dir>/process_state.json`` at setup, for
    ``tests/test_launcher.py`` to compare a fresh process with a child of the warm-process launcher."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        import json
        from pathlib import Path

        path = Path(trainer.default_root_dir) / "process_state.json"
        path.write_text(json.dumps(process_state(), indent=1, sort_keys=True))


def process_state() -> dict:
    """What a run can read from its process besides its arguments: the interpreter's settings, environment,
    ``__main__``, warning filters, logging setup, torch's global settings, OmegaConf's resolvers, signal handlers,
    the standard streams and the imported modules."""
    import gc
    import logging
    import stat
    import sys
    import threading
    import warnings

    import torch
    from omegaconf.basecontainer import BaseContainer

    main = sys.modules["__main__"]
    umask = os.umask(0)
    os.umask(umask)
    loggers = {
        name: [logger.level, logger.propagate, logger.disabled, [type(h).__name__ for h in logger.handlers]]
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "path": sys.path,
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "main": [
            sorted(vars(main)),
            main.__spec__.name if main.__spec__ else None,
            getattr(main, "__file__", None),
        ],
        "flags": repr(sys.flags),
        "warnoptions": sys.warnoptions,
        "warning_filters": [repr(f) for f in warnings.filters],
        "root_logger": [logging.root.level, [type(h).__name__ for h in logging.root.handlers]],
        "loggers": loggers,
        "torch": [
            torch.get_num_threads(),
            torch.get_num_interop_threads(),
            str(torch.get_default_dtype()),
            torch.are_deterministic_algorithms_enabled(),
            torch.get_float32_matmul_precision(),
            torch.is_grad_enabled(),
            torch.is_anomaly_enabled(),
            torch.backends.mkldnn.enabled,
        ],
        "resolvers": sorted(BaseContainer._resolvers),
        "signals": {
            s.name: repr(signal.getsignal(s)) for s in signal.valid_signals() if isinstance(s, signal.Signals)
        },
        "stdio": [
            [stat.S_IFMT(os.fstat(fd).st_mode) for fd in (0, 1, 2)],
            [(s.encoding, s.errors, s.line_buffering) for s in (sys.stdin, sys.stdout, sys.stderr)],
        ],
        "limits": [sys.getrecursionlimit(), sys.getswitchinterval(), gc.isenabled(), gc.get_threshold(), umask],
        "hooks": [repr(sys.excepthook), repr(threading.excepthook), repr(sys.displayhook)],
        "modules": sorted(sys.modules),
    }
