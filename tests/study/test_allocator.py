"""The workers' allocator (src/demo/allocator.py): which library the setting names, that a worker really runs on
it, and that a stage trained on it exports the same weights bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from src.demo.allocator import preload_library, with_preload
from tests.helpers import corpus_overrides

REPO = Path(__file__).resolve().parents[2]


def _ldconfig_has(name: str) -> bool:
    """Whether the dynamic linker's cache lists ``lib<name>.so`` (read from ``ldconfig -p``, not ctypes)."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        listing = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    return any(line.strip().startswith(f"lib{name}.so") for line in listing.splitlines())


@pytest.fixture
def tcmalloc() -> str:
    """tcmalloc's soname; CI (.ci/run, which make installs it for) requires it, elsewhere the test is skipped."""
    library = preload_library("auto")
    if library is None:
        if os.environ.get("MIGR_REQUIRE_TCMALLOC"):
            pytest.fail("MIGR_REQUIRE_TCMALLOC is set but no libtcmalloc_minimal is installed (make allocator)")
        pytest.skip("no libtcmalloc_minimal on this machine (make allocator installs it as root)")
    return library


def test_the_setting_names_the_library():
    assert preload_library("system") is None
    auto = preload_library("auto")
    if sys.platform.startswith("linux"):
        assert (auto is not None) == _ldconfig_has("tcmalloc_minimal")
    libc = (
        next(
            Path(p)
            for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6")
            if Path(p).exists()
        )
        if sys.platform.startswith("linux")
        else None
    )
    if libc is not None:
        assert preload_library(str(libc)) == str(libc.resolve())
    with pytest.raises(ValueError, match=r"worker_allocator='/no/such/lib.so': expected auto, system or the path"):
        preload_library("/no/such/lib.so")


def test_the_preload_goes_first_and_keeps_what_was_there():
    assert with_preload({"A": "1"}, None) == {"A": "1"}
    env = with_preload({"LD_PRELOAD": "/x/libother.so"}, "/y/libjemalloc.so.2")
    assert env["LD_PRELOAD"] == "/y/libjemalloc.so.2 /x/libother.so"
    assert "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD" not in env
    quiet = with_preload({"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "5"}, "libtcmalloc_minimal.so.4")
    assert quiet == {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "5", "LD_PRELOAD": "libtcmalloc_minimal.so.4"}


def test_a_worker_runs_on_the_preloaded_allocator(tmp_path, tcmalloc):
    from src.demo.arms import Task, run_workers
    from src.demo.stages import Ledger, Stage

    stages = {name: Stage(name, tmp_path / f"{name}.done", lambda: None) for name in ("on", "off")}
    spec = {
        name: {"marker": str(stage.done_marker), "needs": [], "seconds": 0.0} for name, stage in stages.items()
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    for name, preload in (("on", tcmalloc), ("off", None)):
        task = Task(name, [stages[name]], Ledger(tmp_path, f"_{name}"), tmp_path / f"{name}.log")
        run_workers(
            "tests.study.fake_worker",
            tmp_path / "spec.json",
            [task],
            workers=1,
            threads=1,
            progress=False,
            poll_seconds=0.05,
            preload=preload,
        )
    mapped = {name: json.loads((tmp_path / f"{name}.libs").read_text()) for name in stages}
    assert any("libtcmalloc" in Path(lib).name for lib in mapped["on"]), mapped["on"]
    assert not any("libtcmalloc" in Path(lib).name for lib in mapped["off"])


@pytest.mark.slow
def test_a_stage_on_tcmalloc_exports_the_same_weights_bit_for_bit(tmp_path, stage_corpus, tcmalloc):
    """The claim the study's speed rests on: the allocator changes where tensors live, not what is computed."""
    exports = {}
    for name, preload in (("tcmalloc", tcmalloc), ("system", None)):
        env = with_preload({**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, preload)
        command = [
            sys.executable, "-m", "src.train", "stage=base", *corpus_overrides(stage_corpus),
            f"runs_dir={tmp_path / name}", "data.batch_size=4", "stage.max_steps=-1", "stage.max_epochs=2",
            "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", "logger=csv",
        ]  # fmt: skip
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        files = sorted((tmp_path / name / "base" / "export").glob("*.safetensors"))
        assert files
        exports[name] = {key: value for file in files for key, value in load_file(file).items()}
    import torch

    assert exports["tcmalloc"].keys() == exports["system"].keys()
    different = [k for k in exports["tcmalloc"] if not torch.equal(exports["tcmalloc"][k], exports["system"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
