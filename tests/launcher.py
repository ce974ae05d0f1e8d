"""A warm-process launcher for the tests' command-line runs: ``run([sys.executable, "-m", module, ...])``.

A fresh ``python -m src.train`` spends ~8.5 s importing torch, transformers and Lightning before its first line
of work; the suite starts such runs dozens of times. :func:`run` is a drop-in for ``subprocess.run`` that hands a
``[sys.executable, "-m", module, *args]`` or ``[sys.executable, "-c", code, *args]`` command to a *fork server*: a
process (one per test process and import environment, started on first use) that has imported :data:`PRELOAD`
once and forks one child per run. The child becomes what a fresh interpreter would be at the point where it starts
running the module, runs it as the interpreter does, and its exit status and captured output come back as a
``subprocess.CompletedProcess``. Any other command (a script, interpreter options, another program) runs through
``subprocess.run`` unchanged; :func:`popen` is the same for ``subprocess.Popen``.

What the child does, in order (``_become``): it takes the stdin/stdout/stderr the caller passed (pipes, like
``subprocess``; stdin is /dev/null unless given), sets the working directory, replaces the environment by the
one of the request (``os.environ`` cleared and refilled, so ``getenv`` in C sees it too), applies the two
variables the preloaded imports set in a fresh process too (``PYTORCH_NVML_BASED_CUDA_CHECK``,
``TORCHINDUCTOR_CACHE_DIR``: every change of ``os.environ`` made during the preload is recorded and reapplied),
reseeds the generators a fresh process seeds from the OS (``random``, numpy's global one, torch's default CPU
generator: a fresh process gets a random ``torch.initial_seed()``), sets ``sys.argv``, ``sys.orig_argv`` and
``sys.path[0]`` as ``python -m`` (the working directory) or ``python -c`` (``''``) does, installs a fresh
``__main__`` module and runs the module with ``runpy._run_module_as_main`` (what ``python -m`` calls) or the code
compiled as ``<string>``. Its end is the interpreter's own: ``SystemExit`` gives the exit code (a non-integer
code is printed, exit 1), an uncaught exception prints its traceback through ``sys.excepthook`` (the launcher's
frames cut off, so the text is what a fresh process prints) and exits 1, and the process then ends
as the interpreter does (non-daemon threads joined, ``atexit`` handlers, streams flushed; exit 120 if stdout
cannot be flushed) except for the teardown of the modules (:func:`_exit` says why). A child killed by a signal is
reported as ``-signal``, as ``subprocess`` does.

What still differs from a fresh process, and why it does not matter here:

* **The import-time environment.** The modules of :data:`PRELOAD` are imported once, with the server's
  environment. A server serves only requests whose environment equals its own except for
  :data:`RUN_TIME_ONLY` variables (``MIGR_RUNS``: read by the configs' ``${oc.env:MIGR_RUNS,runs}`` when Hydra
  composes, at run time; ``PYTEST_CURRENT_TEST``: pytest's, read by no code under test); another environment gets
  a server of its own. So anything read from the environment at import (``HF_HUB_OFFLINE``,
  ``TOKENIZERS_PARALLELISM``, ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, ``PYTHONWARNINGS``,
  ``PYTHONHASHSEED``, ``TMPDIR`` ...) has the value the fresh process would read. Under coverage
  (``COVERAGE_PROCESS_START``) every run is fresh.
* **Modules already imported.** :data:`PRELOAD` (and what it imports) is in ``sys.modules`` before the run starts,
  also when the run would not have imported all of it (a config error exits before torch is imported). Their
  import side effects on shared state are those of a fresh run: the same warning filters, logging setup, torch
  settings, OmegaConf resolvers and environment (compared at the start of training by
  ``tests/test_launcher.py::test_a_warm_run_trains_what_a_fresh_process_trains``); Lightning, whose import
  depends on the logging setup, is imported by the run itself (see :data:`PRELOAD`). Output printed while
  importing them (nothing, on this stack) would be printed by the server once, not by each run. The entry
  modules (``src.train``, ``src.evaluate``, ``src.explain``) are run fresh by ``runpy``.
* **The working directory.** The server's is the repository, and only a run started there is forked: there
  ``sys.path[0]`` (the working directory for ``-m``, ``''`` for ``-c``) finds the same files as the server's, and
  what the preloaded modules read from the working directory at import (matplotlib's ``./matplotlibrc``) is the
  same. A run started elsewhere (a copy of the repository, a test's ``tmp_path``) replaces its forked child with
  a fresh interpreter (``exec``: same pid and streams, none of the above differences).
* **Identity.** The child's parent is the server, ``/proc/<pid>/cmdline`` is the server's (``sys.orig_argv`` is
  set: our folder locks name the command from it), and the hash seed of ``str`` is shared by the server's
  children (random in each process, as without ``PYTHONHASHSEED``).
* **Threads at the fork.** The server runs no Python thread besides its main one (asserted before each fork) and
  no torch operation (no OpenMP pool exists). Importing numpy and scipy starts their OpenBLAS thread servers
  (idle); OpenBLAS stops them in its ``pthread_atfork`` handler and restarts them in the child on first use.
* **Resources.** The server's memory pages are shared copy-on-write; stdin is /dev/null (the tests' runs read
  none; an xdist worker's stdin is its channel to the controller).

Which runs stay on fresh interpreters: everything not started through this module. Among the tests' runs, those
where the start of a process is what is tested: ``tests/test_imports.py`` (what a fresh import pulls in), the
demo's and the study's pipeline runs (they start their own worker processes with ``sys.executable`` and the tests
find and kill them by command line), ``scripts/paper_recipe.sh`` (run in a fresh copy of the repository: a run started
there would be exec'd fresh anyway), the app's server, and the benchmark scripts (``python script.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from tests.helpers import REPO

# Imported once by each server: the libraries that make a process start slow (6.5 of its 7.3 s of CPU time to
# import src.stages.runner and src.evaluation.runner). Not Lightning, nor our modules that import it: Lightning
# decides at import whether to give its loggers a handler of their own by whether the root logger has one, which
# Hydra's job logging adds in a fresh `python -m src.train` before Lightning is imported (preloaded, its messages
# went to stderr instead of Hydra's stdout handler: test_a_warm_run_trains_what_a_fresh_process_trains).
PRELOAD = (
    "torch", "transformers", "torchvision", "torchmetrics", "scipy", "matplotlib", "accelerate", "hydra", "omegaconf"
)  # fmt: skip
# Environment variables a server's requests may set differently from the server: read by nothing at import time
RUN_TIME_ONLY = frozenset({"MIGR_RUNS", "PYTEST_CURRENT_TEST"})
_FRESH_ONLY = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
_MESSAGE = 1 << 20  # bytes: the largest request (an environment and a command)


# ---- the caller's side ----------------------------------------------------------------------------------------


class _Server:
    """One fork server: a process with :data:`PRELOAD` imported, started with ``env``."""

    def __init__(self, env: dict[str, str]) -> None:
        import tempfile

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        with tempfile.TemporaryFile() as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVER_MAIN, str(theirs.fileno())],
                cwd=REPO,
                env=env,
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            theirs.close()
            ready = self.control.recv(_MESSAGE)
            if ready != b"ready":
                self.process.wait(timeout=60)
                log.seek(0)
                raise RuntimeError(
                    f"the warm-process server did not start (exit {self.process.returncode}):\n"
                    f"{log.read().decode(errors='replace')[-4000:]}"
                )

    def start(
        self, argv: list[str], cwd: str, env: dict[str, str], stdio: list[int]
    ) -> tuple[socket.socket, int, int]:
        """Fork a child that runs ``argv``; returns the socket its exit status arrives on, its pid and a pidfd."""
        reply, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
        try:
            socket.send_fds(self.control, [request], [theirs.fileno(), *stdio])
        finally:
            theirs.close()
        message, fds, _, _ = socket.recv_fds(reply, _MESSAGE, 1)
        if not message:
            raise RuntimeError("the warm-process server died; see the run's stderr")
        return reply, json.loads(message)["pid"], fds[0]

    def close(self) -> None:
        self.control.close()  # the server exits on end of file
        self.process.wait(timeout=60)


_servers: dict[tuple[tuple[str, str], ...], _Server] = {}
_lock = threading.Lock()


def _server_for(env: dict[str, str]) -> _Server:
    """The server for ``env`` (started when there is none, or when the last one has died)."""
    key = tuple(sorted((k, v) for k, v in env.items() if k not in RUN_TIME_ONLY))
    with _lock:
        if key in _servers and _servers[key].process.poll() is not None:
            del _servers[key]
        if key not in _servers:
            _servers[key] = _Server(dict(key))
        return _servers[key]


def shutdown() -> None:
    """Stop every server this process started (they also stop when it exits)."""
    with _lock:
        while _servers:
            _servers.popitem()[1].close()


def _warm_form(args: Sequence[str | os.PathLike]) -> list[str] | None:
    """``args`` as strings when they are ``python -m module ...`` or ``python -c code ...`` of this interpreter."""
    argv = [os.fspath(a) for a in args]
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] in ("-m", "-c"):
        return argv
    return None


class WarmProcess:
    """The part of ``subprocess.Popen``'s interface the tests use, for a run forked by a server."""

    def __init__(self, argv: list[str], *, cwd, env, stdin, stdout, stderr, text: bool) -> None:
        self.args = argv
        self.text = text
        self.returncode: int | None = None
        self.stdout = self.stderr = None
        ends, stdio = [], []
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            stdio.append(devnull if stdin in (None, subprocess.DEVNULL) else stdin.fileno())
            for stream, kind in (("stdout", stdout), ("stderr", stderr)):
                if kind == subprocess.PIPE:
                    read, write = os.pipe()
                    setattr(self, stream, open(read, "rb"))  # noqa: SIM115 (closed by communicate/__exit__)
                    stdio.append(write)
                    ends.append(write)
                elif kind == subprocess.STDOUT and stream == "stderr":
                    stdio.append(stdio[1])
                elif kind == subprocess.DEVNULL:
                    stdio.append(devnull)
                elif kind is None:
                    stdio.append(1 if stream == "stdout" else 2)
                else:
                    stdio.append(kind.fileno())
            server = _server_for(env)
            self._reply, self.pid, self._pidfd = server.start(argv, os.fspath(cwd), env, stdio)
        finally:
            for fd in {devnull, *ends}:
                os.close(fd)

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reply.setblocking(False)
            try:
                message = self._reply.recv(_MESSAGE)
            except BlockingIOError:
                return None
            finally:
                self._reply.setblocking(True)
            self._finish(message)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._reply.settimeout(timeout)
            try:
                message = self._reply.recv(_MESSAGE)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            self._finish(message)
        return self.returncode

    def _finish(self, message: bytes) -> None:
        if not message:
            raise RuntimeError(f"the warm-process server died while running {self.args}")
        result = json.loads(message)
        self.returncode, self.cpu_seconds = result["returncode"], result["cpu"]
        self._reply.close()
        os.close(self._pidfd)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # the pidfd names this child even if it has exited meanwhile
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple:
        """Read stdout and stderr to their end and wait for the exit, as ``Popen.communicate`` (no input)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        chunks = {}
        with selectors.DefaultSelector() as selector:
            for stream in (self.stdout, self.stderr):
                if stream is not None and not stream.closed:
                    selector.register(stream, selectors.EVENT_READ)
                    chunks[stream] = []
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fileobj].append(data)
                    else:
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        out = [
            None if stream is None else self._decode(b"".join(chunks.get(stream, [])))
            for stream in (self.stdout, self.stderr)
        ]
        return out[0], out[1]

    def _decode(self, data: bytes):
        if not self.text:
            return data
        import locale

        return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def _goes_fresh(env: dict[str, str]) -> bool:
    return any(name in env for name in _FRESH_ONLY)


def popen(args, *, cwd=None, env=None, stdin=None, stdout=None, stderr=None, text=False, **kwargs):
    """``subprocess.Popen(args, ...)``, forked by a warm server when ``args`` is ``python -m/-c`` (see module doc)."""
    env = dict(os.environ if env is None else env)
    argv = _warm_form(args)
    if argv is None or kwargs or _goes_fresh(env):
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr, text=text, **kwargs
        )
    cwd = os.getcwd() if cwd is None else cwd
    return WarmProcess(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr, text=text)


def run(
    args, *, cwd=None, env=None, timeout=None, check=False, capture_output=False, text=False, stdout=None,
    stderr=None, **kwargs
) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run(args, ...)``, forked by a warm server when ``args`` is ``python -m/-c`` (see module doc)."""
    if capture_output:
        stdout = stderr = subprocess.PIPE
    process = popen(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=text, **kwargs)
    with process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if check:
        result.check_returncode()
    return result


# ---- the server's side ----------------------------------------------------------------------------------------

_SERVER_MAIN = "import os, sys; sys.path[0] = os.getcwd(); from tests.launcher import _serve; _serve()"


class _Preloaded:
    """What the server records while importing :data:`PRELOAD`, for its children."""

    path0: str  # the server's sys.path[0] (the repository)
    environ_set: dict[str, str]  # variables the imports set or changed
    environ_removed: set[str]  # and removed


def _serve() -> None:
    """The server's main loop (``sys.argv[1]``: its control socket). Returns only in a forked child, which then
    becomes the requested run (:func:`_become`) and ends as that run ends."""
    import importlib
    import random  # noqa: F401  (reseeded in the children)

    control = socket.socket(fileno=int(sys.argv[1]))
    before = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    sys.stdout.flush()
    sys.stderr.flush()
    _Preloaded.path0 = sys.path[0]
    _Preloaded.environ_set = {k: v for k, v in os.environ.items() if before.get(k) != v}
    _Preloaded.environ_removed = set(before) - set(os.environ)
    control.send(b"ready")

    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply socket)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                message, fds, _, _ = socket.recv_fds(control, _MESSAGE, 4)
                if not message:  # the test process closed its end, or exited
                    os._exit(0)  # no atexit handlers: they are the children's (each runs them at its exit)
                reply, stdio = socket.socket(fileno=fds[0]), fds[1:]
                if threading.active_count() != 1:
                    raise RuntimeError(f"the server runs threads {threading.enumerate()}: forking is unsafe")
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    control.close()
                    reply.close()
                    for pidfd, (_, other) in children.items():
                        os.close(pidfd)
                        other.close()
                    for target, fd in enumerate(stdio):
                        os.dup2(fd, target)
                    for fd in set(stdio) - {0, 1, 2}:
                        os.close(fd)
                    _become(json.loads(message))
                    return
                for fd in set(stdio):
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                socket.send_fds(reply, [json.dumps({"pid": pid}).encode()], [pidfd])
                children[pidfd] = (pid, reply)
                selector.register(pidfd, selectors.EVENT_READ)
            else:
                pidfd = key.fd
                pid, reply = children.pop(pidfd)
                selector.unregister(pidfd)
                _, status, usage = os.wait4(pid, 0)
                result = {"returncode": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime}
                with contextlib.suppress(OSError):  # the caller is gone
                    reply.send(json.dumps(result).encode())
                reply.close()
                os.close(pidfd)


def _become(request: dict) -> None:
    """In a forked child: become ``python <argv[1:]>`` started in ``cwd`` with ``env`` (see the module doc)."""
    import importlib.machinery
    import random
    import runpy
    import types

    import torch

    argv, cwd = request["argv"], request["cwd"]
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(_Preloaded.environ_set)
    for name in _Preloaded.environ_removed:
        os.environ.pop(name, None)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    torch.seed()

    option, target, args = argv[1], argv[2], argv[3:]
    if os.path.realpath(cwd) != os.path.realpath(_Preloaded.path0):  # see the module doc: be a fresh interpreter
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.execve(sys.executable, argv, request["env"])
    sys.path[0] = os.getcwd() if option == "-m" else ""
    importlib.invalidate_caches()
    sys.orig_argv[:] = argv
    main = types.ModuleType("__main__")
    main.__builtins__ = sys.modules["builtins"]
    main.__annotations__ = {}
    main.__loader__ = importlib.machinery.BuiltinImporter
    sys.modules["__main__"] = main
    if option == "-m":
        sys.argv[:] = ["-m", *args]
        run, first = (lambda: runpy._run_module_as_main(target, alter_argv=True)), runpy._run_module_as_main
    else:
        sys.argv[:] = ["-c", *args]
        code = compile(target, "<string>", "exec")
        run, first = (lambda: exec(code, main.__dict__)), code
    try:
        run()
    except SystemExit as error:  # the interpreter's handling of SystemExit
        code = error.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        _exit(code or 0)
    except BaseException as error:  # printed by sys.excepthook from the first frame a fresh process would show
        traceback = error.__traceback__
        code_object = first if isinstance(first, types.CodeType) else first.__code__
        while traceback is not None and traceback.tb_frame.f_code is not code_object:
            traceback = traceback.tb_next
        traceback = traceback or error.__traceback__
        sys.excepthook(type(error), error.with_traceback(traceback), traceback)
        _exit(1, signal.SIGINT if isinstance(error, KeyboardInterrupt) else None)
    _exit(0)


def _exit(code: int, sig: int | None = None) -> None:
    """End the child as ``Py_FinalizeEx`` ends an interpreter, but for the teardown of the modules: wait for the
    non-daemon threads, run the ``atexit`` handlers, flush the standard streams (exit code 120 when stdout cannot
    be flushed); an interrupted run ends by SIGINT as the interpreter does. Tearing down the preloaded modules
    would cost ~2 s of CPU per run (every page of the server's heap copied as reference counts drop) and runs no
    code of ours: nothing in ``src/`` relies on ``__del__`` at exit (``FolderLock.__del__`` closes a descriptor the
    kernel closes anyway), and Python does not promise those calls (the note on ``object.__del__``)."""
    import atexit

    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout:
                code = 120
    if sig is not None:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(code & 0xFF)
