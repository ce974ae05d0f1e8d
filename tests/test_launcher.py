"""The warm-process launcher (tests/launcher.py) against fresh interpreters: the same run gives the same files,
exit codes and output, and starts from the same process state."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import launcher
from tests.helpers import REPO, corpus_overrides

PYTHON = sys.executable


def _env(**extra: str) -> dict[str, str]:
    """The environment the stage tests' runs get (tests/stages/conftest.py), so the server is theirs too."""
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore", **extra}


def _untimed(text: str) -> str:
    return re.sub(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]", "[time]", text, flags=re.M)


def _both(args: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None):
    """``args`` run by a fresh interpreter and by the launcher: the two ``CompletedProcess``."""
    env = _env() if env is None else env
    kwargs = dict(cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    return subprocess.run(args, **kwargs), launcher.run(args, **kwargs)


@pytest.mark.slow
def test_a_warm_run_trains_what_a_fresh_process_trains(stage_corpus, tmp_path):
    """A 2-step SFT run: the exported files are byte-identical, the output the same, and the process state at
    the start of training (environment, argv, sys.path, ``__main__``, warning filters, logging, torch settings,
    resolvers, signals, streams) equal but for the variable that differs on purpose."""
    overrides = [
        "stage=sft",
        "stage.max_steps=2",
        "data.batch_size=2",
        "logger=none",
        "trainer.limit_val_batches=0",
        "run_name=run",
        "+callbacks.state._target_=tests.stages.helpers.DumpProcessState",
        *corpus_overrides(stage_corpus),
    ]
    args = [PYTHON, "-m", "src.train", *overrides]
    kwargs = dict(cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    # the first run decodes the clips into the corpus's media cache (importing decord), the others read it
    launcher.run(args, env=_env(MIGR_RUNS=str(tmp_path / "first")), check=True, **kwargs)
    fresh = subprocess.run(args, env=_env(MIGR_RUNS=str(tmp_path / "fresh")), **kwargs)
    warm = launcher.run(args, env=_env(MIGR_RUNS=str(tmp_path / "warm")), **kwargs)
    assert isinstance(warm, subprocess.CompletedProcess) and warm.args == args
    assert fresh.returncode == warm.returncode == 0, fresh.stderr[-3000:] + warm.stderr[-3000:]
    for stream in ("stdout", "stderr"):  # the log's timestamps aside
        fresh_text = _untimed(getattr(fresh, stream).replace(str(tmp_path / "fresh"), str(tmp_path / "warm")))
        assert fresh_text == _untimed(getattr(warm, stream)), stream
    exports = [tmp_path / side / "run" / "export" for side in ("fresh", "warm")]
    files = [sorted(p.relative_to(e) for p in e.rglob("*") if p.is_file()) for e in exports]
    assert Path("model.safetensors") in files[0] and files[0] == files[1]
    for name in files[0]:
        assert (exports[0] / name).read_bytes() == (exports[1] / name).read_bytes(), name

    states = [
        json.loads((tmp_path / side / "run" / "process_state.json").read_text()) for side in ("fresh", "warm")
    ]
    for state, side in zip(states, ("fresh", "warm"), strict=True):
        assert state["environ"].pop("MIGR_RUNS") == str(tmp_path / side)
    fresh_modules, warm_modules = set(states[0].pop("modules")), set(states[1].pop("modules"))
    assert fresh_modules <= warm_modules, sorted(fresh_modules - warm_modules)
    # loggers that only the preloaded modules create are not the run's; the run's own are compared
    warm_loggers = states[1].pop("loggers")
    assert {name: warm_loggers.get(name) for name in states[0]["loggers"]} == states[0].pop("loggers")
    # the filters the imports add, in the order of the imports: the same filters (each for its own category or
    # message, so their order decides nothing)
    assert sorted(states[0].pop("warning_filters")) == sorted(states[1].pop("warning_filters"))
    assert states[0] == states[1]


def test_a_config_error_reads_the_same():
    fresh, warm = _both([PYTHON, "-m", "src.train", "stage=sft", "stage.optim.lrr=1"])
    assert fresh.returncode == warm.returncode == 1
    assert "lrr" in fresh.stderr
    assert (fresh.stdout, fresh.stderr) == (warm.stdout, warm.stderr)


@pytest.mark.parametrize(
    "code",
    [
        "print('out'); import sys; print('err', file=sys.stderr); sys.exit(3)",
        "raise SystemExit('a message, exit 1')",
        "def f():\n    raise ValueError('boom')\nf()",
        "raise KeyboardInterrupt",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "import sys; print(sys.argv, repr(sys.path[0]), sorted(vars(sys.modules['__main__'])))",
    ],
)
def test_exits_and_errors_read_the_same(code):
    fresh, warm = _both([PYTHON, "-c", code, "an argument"])
    assert (fresh.returncode, fresh.stdout, fresh.stderr) == (warm.returncode, warm.stdout, warm.stderr)


def test_a_missing_module_and_a_module_run_read_the_same():
    for args in ([PYTHON, "-m", "no_such_module"], [PYTHON, "-m", "src.train", "--help"]):
        fresh, warm = _both(args)
        assert (fresh.returncode, fresh.stdout, fresh.stderr) == (warm.returncode, warm.stdout, warm.stderr)
    assert "train is powered by Hydra" in warm.stdout


def test_each_child_has_its_environment_and_its_own_seeds_from_one_server():
    code = "import os, torch; print(os.environ.get('MIGR_RUNS'), torch.initial_seed())"
    first = launcher.run([PYTHON, "-c", code], env=_env(MIGR_RUNS="/a"), capture_output=True, text=True)
    servers = dict(launcher._servers)
    second = launcher.run([PYTHON, "-c", code], env=_env(), capture_output=True, text=True)
    assert launcher._servers == servers  # MIGR_RUNS differs at run time only: the same server
    (runs_a, seed_a), (runs_b, seed_b) = first.stdout.split(), second.stdout.split()
    assert (runs_a, runs_b) == ("/a", "None")
    assert seed_a != seed_b  # a fresh process seeds torch from the OS; so does each child


def test_concurrent_children_a_timeout_and_a_kill(tmp_path):
    flag = tmp_path / "go"
    wait = f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.02)\nprint('done')"
    waiting = launcher.popen([PYTHON, "-c", wait], env=_env(), stdout=subprocess.PIPE, text=True)
    assert isinstance(waiting, launcher.WarmProcess) and waiting.poll() is None
    quick = launcher.run([PYTHON, "-c", "print('quick')"], env=_env(), capture_output=True, text=True)
    assert quick.stdout == "quick\n" and waiting.poll() is None  # ran while the first one waits
    with pytest.raises(subprocess.TimeoutExpired):
        launcher.run([PYTHON, "-c", "import time; time.sleep(600)"], env=_env(), timeout=1)
    flag.touch()
    assert waiting.communicate(timeout=60) == ("done\n", None) and waiting.returncode == 0
    killed = launcher.popen([PYTHON, "-c", "import time; time.sleep(600)"], env=_env())
    killed.kill()
    assert killed.wait(timeout=60) == -9


def test_a_run_started_outside_the_repository_runs_fresh(tmp_path):
    """A working directory with its own ``src`` package: a fresh ``python -m src.x`` imports that one, and so does
    the launcher's run (its child replaces itself with a fresh interpreter, which has not imported torch)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "__init__.py").write_text("")
    (tmp_path / "src" / "where.py").write_text("import src, sys\nprint(src.__file__, 'torch' in sys.modules)\n")
    fresh, warm = _both([PYTHON, "-m", "src.where"], cwd=tmp_path)
    assert fresh.stdout == warm.stdout == f"{tmp_path / 'src' / '__init__.py'} False\n"


def test_other_commands_run_as_subprocess_does(tmp_path):
    result = launcher.run(["bash", "-c", "echo $0 $1", "a", "b"], capture_output=True, text=True)
    assert result.stdout == "a b\n"
    assert not isinstance(launcher.popen([PYTHON, "-V"], stdout=subprocess.DEVNULL), launcher.WarmProcess)
