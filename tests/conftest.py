"""Shared test settings: deterministic, offline, quiet."""

from __future__ import annotations

import os
import subprocess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# a feature cache the shell points at would be shared by every test (tests that count tower calls need their own)
os.environ.pop("MIGR_FEATURE_CACHE_DIR", None)

from pathlib import Path

import pytest
import torch

from tests.helpers import REPO

# Under pytest-xdist (`make test` runs 2 workers) the cores are split between the workers, and the processes the
# tests start inherit the share: threads competing for the same core spin and slow every test down.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, torch.get_num_threads() // _WORKERS)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_THREADS)
    torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _environment_is_left_as_found():
    """Fail a test that leaves a ``MIGR_*`` variable changed: a later test in the same worker would inherit it (a
    leaked MIGR_FEATURE_CACHE_DIR once made a GRPO test read another run's tower outputs, in CI only)."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MIGR_")}
    yield
    after = {k: v for k, v in os.environ.items() if k.startswith("MIGR_")}
    assert after == before, f"the test changed the process environment: before {before}, after {after}"


@pytest.fixture(autouse=True)
def _torch_threads_are_left_as_found():
    """Fail a test that leaves torch's thread count changed: later in-process runs would compute with another
    count than the runs they are compared with in subprocesses (test_speedups_keep_weights.py once set 1 thread
    for good, and test_train_cli.py, run after it in one process, found its resumed weights off by more than 1e-5)."""
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before, (
        f"the test left torch at {torch.get_num_threads()} threads, not {before}"
    )


@pytest.fixture(scope="session")
def stage_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 28-clip synthetic corpus (4 per emotion), generated once per session."""
    from src.data.synth import ensure_corpus

    return ensure_corpus(tmp_path_factory.mktemp("stage_synth") / "corpus", n=28, seed=0, workers=1)


@pytest.fixture(scope="session")
def learnable_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 420-clip synthetic corpus (seed 1; 126 held-out clips) for the tests that learn from it.

    Generated once per run and shared by the pytest-xdist workers, with its media cache (``.cache`` beside the
    manifest): :func:`ensure_corpus` lets one process generate while the others wait on its lock.
    """
    from src.data.synth import ensure_corpus

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder, not a worker's
    return ensure_corpus(shared / "shared" / "learnable_corpus", n=420, seed=1)


@pytest.fixture(scope="session")
def clips_and_random_tiny(tmp_path_factory: pytest.TempPathFactory):
    """``(samples, model, tokenizer, loader)``: 5 clips of a 14-clip synthetic corpus, a random tiny model in
    eval mode, its tokenizer and a media loader of its shapes (for comparing batched scoring with references)."""
    from src.data.manifest import read_manifest
    from src.data.media import MediaLoader
    from src.data.synth import ensure_corpus
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer

    manifest = ensure_corpus(tmp_path_factory.mktemp("clips") / "corpus", n=14, seed=0, workers=1)
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer).eval()
    return read_manifest(manifest)[:5], model, tokenizer, MediaLoader(image_size=64, audio_seconds=3)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised tiny model exported as a model folder (what a stage hands to the next)."""
    from src.models.checkpoint import save_model
    from src.models.omni import OmniModel
    from src.models.presets import get_preset
    from src.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = OmniModel.from_tokenizer(get_preset("tiny"), tokenizer)
    return save_model(model, tokenizer, tokenizer, tmp_path_factory.mktemp("tiny_export") / "export")


# ---- the suite leaves the repository as it found it -----------------------------------------------------------
# Caches of the tools themselves (not written by the code under test) and the installed package's metadata
_TOOL_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "htmlcov", ".ipynb_checkpoints"}


def _repo_files() -> set[str]:
    """Every file under the repository (relative paths), tools' caches aside."""
    found = set()
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _TOOL_DIRS and not d.endswith(".egg-info")]
        relative = Path(folder).relative_to(REPO)
        found.update((relative / name).as_posix() for name in files if not name.startswith(".coverage"))
    return found


def _tracked_files() -> set[str]:
    """The files git tracks (a checkout or rebase during the run adds files no test wrote); none without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return set(listed.decode().split("\0")) - {""}


# ---- the order in which pytest-xdist hands out the test modules ------------------------------------------------
# `make test` runs `--dist loadscope --no-loadscope-reorder`: a worker takes a whole module at a time (its module
# fixtures are built once), the next free worker the next module in collection order. Ordering the modules
# longest first (the seconds measured by earlier runs, kept in pytest's cache) leaves short ones for the end, so
# no worker sits idle while the other finishes a long module. A test without a measured time counts as
# _UNMEASURED seconds (a slow one as _UNMEASURED_SLOW).
_DURATIONS_KEY = "migr/test_seconds"
_UNMEASURED, _UNMEASURED_SLOW = 0.1, 30.0


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (each worker sorts its own collection alike), the modules longest first, each
    module's tests together and in their own order."""
    if _WORKERS <= 1 or getattr(config, "cache", None) is None:
        return
    known = config.cache.get(_DURATIONS_KEY, {})
    seconds: dict[str, float] = {}
    first: dict[str, int] = {}  # module -> position of its first test (the order among equals)
    for index, item in enumerate(items):
        guess = _UNMEASURED_SLOW if item.get_closest_marker("slow") else _UNMEASURED
        module = _module(item.nodeid)
        seconds[module] = seconds.get(module, 0.0) + known.get(item.nodeid, guess)
        first.setdefault(module, index)
    items.sort(key=lambda item: (-seconds[_module(item.nodeid)], first[_module(item.nodeid)]))


class _Session:
    """What the controlling process (or the only one) keeps for the whole run: the repository's files before
    the first test, and each test's seconds (setup + call + teardown, reported by whichever worker ran it)."""

    files_before: set[str] | None = None
    seconds: dict[str, float] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # not a pytest-xdist worker
        _Session.files_before = _repo_files()
        _Session.seconds = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _Session.seconds is not None:
        _Session.seconds[report.nodeid] = _Session.seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the warm-process servers (tests/launcher.py) of this process; keep this run's test times for the next
    run's order; fail the run when its tests left new files in the repository (a run that wrote under ``./runs``,
    ``./data``, ``./wandb`` ... instead of its ``tmp_path``)."""
    import sys

    if "tests.launcher" in sys.modules:
        sys.modules["tests.launcher"].shutdown()
    if _Session.files_before is None:
        return
    if _Session.seconds and getattr(session.config, "cache", None) is not None:  # none under -p no:cacheprovider
        known = session.config.cache.get(_DURATIONS_KEY, {})
        session.config.cache.set(
            _DURATIONS_KEY, {**known, **{k: round(v, 2) for k, v in _Session.seconds.items()}}
        )
    new = sorted(_repo_files() - _Session.files_before - _tracked_files())
    if new:
        shown = "\n  ".join(new[:20]) + (f"\n  ... and {len(new) - 20} more" if len(new) > 20 else "")
        message = (
            f"the tests left {len(new)} new file(s) in the repository {REPO} (write under tmp_path):\n  {shown}"
        )
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "files left in the repository", red=True)
            reporter.write_line(message)
        else:
            print(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
