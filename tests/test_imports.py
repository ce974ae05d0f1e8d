"""The import graph of ``src/`` and ``rewards/``: no cycle, and every import goes down the layers.

The graph is read from the source with :mod:`ast` (nothing is imported or run), with every ``import`` counted
wherever it stands, inside functions too: a function-level import hides a dependency from nobody. The layers,
lowest first (README "Layout"): a module may import its own layer and the layers below it, never one above.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("src", "rewards")

# Lowest first. A module belongs to the layer of the longest prefix listed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("src", "src.atomic", "src.folder_lock", "src.paths", "src.config_check", "src.data"),
    ("src.models",),
    ("src.rl", "rewards", "src.judges", "src.metrics", "src.registry", "src.reward_set"),
    ("src.migr",),
    ("src.stages",),
    ("src.evaluation", "src.analysis"),
    (
        "src.demo",
        "src.study",
        "src.explain",
        "src.app",
        "src.train",
        "src.evaluate",
        "src.pipeline",
        "src.__main__",
    ),
)


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Our modules that ``name`` imports (anywhere in the file), each with the line of its first import."""

    def ours(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from pkg import mod` imports the submodule when there is one, else a name of pkg
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        for target in targets:
            module = ours(target)
            if module is not None and module != name:
                found.setdefault(module, node.lineno)
    return found


def layer_of(name: str) -> int:
    best, layer = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, layer = prefix, index
    if layer < 0 or (best == "src" and name != "src"):
        raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__} and to the README's Layout")
    return layer


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A hand-written package: absolute, relative, function-level and `from pkg import module` imports."""
    files = {
        "src/__init__.py": "",
        "src/a.py": "import src.b\n",
        "src/b.py": "def f():\n    from .c import x\n",
        "src/c.py": "from src import a\nx = 1\n",
        "src/d/__init__.py": "from . import e\n",
        "src/d/e.py": "from ..c import x\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = {}
    for rel in files:
        parts = list(Path(rel).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = tmp_path / rel
    fake = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert fake == {
        "src": {},
        "src.a": {"src.b": 1},
        "src.b": {"src.c": 2},
        "src.c": {"src.a": 1},
        "src.d": {"src.d.e": 1},
        "src.d.e": {"src.c": 1},
    }
    assert cycles(fake) == [["src.a", "src.b", "src.c"]]


def test_no_import_cycle(graph) -> None:
    found = cycles(graph)
    assert not found, "import cycles (move the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_imports_go_down_the_layers(graph) -> None:
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)}) at line {line}"
        for name, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if layer_of(target) > layer_of(name)
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


HEAVY_OPTIONAL = ("wandb", "peft", "timm")
SYNTH_GENERATOR = ("src.data.synth.corpus", "av")  # only a process that makes a corpus needs them


@pytest.mark.slow
def test_training_stack_leaves_heavy_optional_modules_unimported() -> None:
    """Importing the trainer and the stage modules pulls in none of the optional heavy packages.

    wandb is imported only by ``logger=wandb`` (timm imported it whenever installed: the projectors no longer
    use timm), peft only for LoRA; the synthetic corpus's generator (and PyAV) only where a corpus is made,
    not by the tiny tokenizer, which reads its vocabulary. Not listed, because Lightning imports them whenever they are installed and
    no code of ours can stop it: torchmetrics (Lightning reads its version by importing it), and through it
    matplotlib, torchvision and torch._dynamo/_inductor (docs/performance.md, "Start-up").
    """
    code = (
        "import sys\n"
        "import src.stages.runner, src.stages.sft, src.stages.grpo, src.evaluation.runner, src.migr.build\n"
        "from src.models.tokenizer import build_tiny_tokenizer\n"
        "build_tiny_tokenizer()\n"  # reads the synthetic corpus's vocabulary, not its generator
        f"print(' '.join(m for m in {HEAVY_OPTIONAL + SYNTH_GENERATOR!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == [], f"imported by the training stack: {out.stdout.strip()}"


def test_the_evaluation_refuses_a_bad_value_before_importing_torch(tmp_path: Path) -> None:
    """``python -m src.evaluate`` checks its settings (EvalConfig) with no torch, transformers or torchmetrics
    imported, so a bad value is refused in well under a second of CPU (benchmarks/startup.py times it)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['src.evaluate', 'batch_size=0', 'hydra.run.dir=.', 'hydra.output_subdir=null']\n"
        "try:\n"
        "    runpy.run_module('src.evaluate', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code)\n"
        "print('loaded', ' '.join(m for m in ('torch', 'transformers', 'torchmetrics', 'lightning') if m in sys.modules))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "batch_size=0: expected an integer >= 1" in out.stderr, out.stderr[-2000:]
    assert "exit 1" in out.stdout
    assert out.stdout.splitlines()[-1].strip() == "loaded", out.stdout
