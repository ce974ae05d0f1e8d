"""Where each stage's time goes, on the tiny preset: towers, projectors, LLM, data, logging, validation, overhead.

Runs the demo's stages in a short form, in this process, with the demo's own overrides
(``configs/pipeline.yaml``: ``base``, ``sft``, ``grpo``, ``build``, ``evaluate``) plus a step cap: a small
synthetic corpus, ``base`` -> MIGR build -> SFT (towers frozen) -> GRPO -> evaluation, each stage reading the
previous one's export as in ``make demo``. Every stage is timed by wall clock with labels pushed and popped
around the parts that matter, each label charged only its *exclusive* time (a label's children are charged
to themselves), so the rows of a stage add up to its wall-clock:

* ``towers/vision``, ``towers/audio``, ``towers/bert`` (SigLIP, Whisper encoder, BERT gate encoder),
  ``projectors`` (visual projector, audio projector, BERT gate MLP), ``llm`` (Qwen2 decoder and LM head):
  forward hooks on every :class:`~src.models.omni.OmniModel` built during the run (the GRPO reference copy
  included);
* ``backward`` and ``optimizer`` (Lightning's backward hooks, torch's optimizer step hooks), ``rewards``
  (``GRPOModule.score``), ``logging`` (``LightningModule.log``, the loggers' writes, GRPO's completion log),
  ``checkpoint`` and ``export``;
* ``data/decode`` (:meth:`MediaLoader.load`: video/audio decoding or the media cache), ``data/collate``
  (tokenising, padding; :class:`OmniCollator`), ``data/other`` (the rest of ``__getitem__``);
* ``other``: what no label covers: Python and Lightning's loop around the labelled parts (the loss and
  sampling code outside the model, masks, the decode loop's bookkeeping, metric updates, judging).

Validation (SFT, ``base``) is reported as its own column, so the same labels inside it are not mixed with
the training steps. A second measure of Python overhead comes from ``torch.profiler`` over a window of
training steps: the share of wall-clock spent outside every ATen operator (``--no-torch-profiler`` skips it).

``--flops`` prints the forward FLOPs per clip of each component at the tiny, 0.5B and 7B presets, counted by
``torch.utils.flop_counter.FlopCounterMode`` on ``meta`` tensors of the preset shapes (the real modules run,
no weights are allocated), and the towers' share of an SFT step and of a GRPO step with frozen towers.

    python benchmarks/profile_stage.py [--threads 1] [--corpus 140] [--steps 40] [--grpo-steps 8] [--flops]
    python benchmarks/profile_stage.py --flops-only

``--ab`` measures one change instead: the stage fitted repeatedly with ``--off`` and ``--on`` overrides,
interleaved in this process (so both sides share the host's load), the ratio of their wall-clocks and whether
their exported weights are bit-identical:

    python benchmarks/profile_stage.py --ab --stage base --steps 30 --off ++data.media_memory_mb=0 --on ""
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPONENTS = {  # OmniModel attribute -> label
    "vision_tower": "towers/vision",
    "audio_tower": "towers/audio",
    "bert_model": "towers/bert",
    "mm_projector": "projectors",
    "audio_projector": "projectors",
    "bert_gate": "projectors",
}
ROW_ORDER = (
    "towers/vision",
    "towers/audio",
    "towers/bert",
    "projectors",
    "llm",
    "backward",
    "optimizer",
    "rewards",
    "data/decode",
    "data/collate",
    "data/other",
    "logging",
    "checkpoint",
    "export",
    "other",
)


class Timers:
    """Exclusive wall-clock per (phase, label): a label's time minus the time of the labels opened inside it."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.totals: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.stack: list[list[Any]] = []  # [label, start, children seconds]
        self.phase_started = time.perf_counter()
        self.phase_wall: dict[str, float] = defaultdict(float)

    def push(self, label: str) -> None:
        self.stack.append([label, time.perf_counter(), 0.0])

    def pop(self, label: str) -> None:
        if not self.stack or self.stack[-1][0] != label:
            raise RuntimeError(f"timer {label!r} closed while {[s[0] for s in self.stack]} are open")
        _, start, children = self.stack.pop()
        elapsed = time.perf_counter() - start
        self.totals[(self.phase, label)] += elapsed - children
        self.calls[(self.phase, label)] += 1
        if self.stack:
            self.stack[-1][2] += elapsed

    @contextlib.contextmanager
    def span(self, label: str) -> Iterator[None]:
        self.push(label)
        try:
            yield
        finally:
            self.pop(label)

    def set_phase(self, phase: str) -> None:
        now = time.perf_counter()
        self.phase_wall[self.phase] += now - self.phase_started
        self.phase, self.phase_started = phase, now

    def finish(self) -> dict[str, dict[str, float]]:
        """``{phase: {label: seconds}}`` with ``other`` = the phase's wall-clock not under any label."""
        self.set_phase("done")
        table: dict[str, dict[str, float]] = {}
        for phase, wall in self.phase_wall.items():
            if phase == "done":
                continue
            rows = {label: s for (p, label), s in self.totals.items() if p == phase}
            rows["other"] = wall - sum(rows.values())
            rows["(wall)"] = wall
            table[phase] = rows
        return table


TIMERS = Timers()


def _wrap_method(cls: type, name: str, label: str) -> None:
    """Time every call of ``cls.name`` under ``label`` (instrumentation of this process only)."""
    original = getattr(cls, name, None)
    if original is None:
        print(f"(no {cls.__name__}.{name} in this version: not timed)")
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        with TIMERS.span(label):
            return original(*args, **kwargs)

    setattr(cls, name, timed)


def _hook(module: torch.nn.Module, label: str) -> None:
    module.register_forward_pre_hook(lambda *_: TIMERS.push(label))
    module.register_forward_hook(lambda *_: TIMERS.pop(label))


def instrument() -> None:
    """Label the model components, data, logging, rewards, checkpoints and optimiser steps of this process."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    from src.data.collate import OmniCollator
    from src.data.datamodule import EmotionDataset
    from src.data.media import MediaLoader
    from src.models.omni import OmniModel
    from src.stages.export import ExportOnTrainEnd
    from src.stages.grpo import GRPOModule

    init = OmniModel.__init__

    def instrumented_init(self: OmniModel, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for attribute, label in COMPONENTS.items():
            _hook(getattr(self, attribute), label)
        # SigLIP runs block by block up to the selected layer (src.models.towers), never through its forward
        for block in (self.vision_tower.embeddings, *self.vision_tower.encoder.layers):
            _hook(block, "towers/vision")
        _hook(self.llm.model, "llm")  # decoder (SFT calls it directly, GRPO through the causal LM)
        _hook(self.llm.lm_head, "llm")

    OmniModel.__init__ = instrumented_init
    _wrap_method(MediaLoader, "load", "data/decode")
    _wrap_method(OmniCollator, "__call__", "data/collate")
    _wrap_method(EmotionDataset, "__getitem__", "data/other")
    _wrap_method(GRPOModule, "score", "rewards")
    _wrap_method(GRPOModule, "log_completions", "logging")
    _wrap_method(L.LightningModule, "log", "logging")
    _wrap_method(CSVLogger, "log_metrics", "logging")
    _wrap_method(CSVLogger, "save", "logging")
    _wrap_method(L.Trainer, "save_checkpoint", "checkpoint")
    _wrap_method(ExportOnTrainEnd, "on_train_end", "export")
    register_optimizer_step_pre_hook(lambda *_: TIMERS.push("optimizer"))
    register_optimizer_step_post_hook(lambda *_: TIMERS.pop("optimizer"))


def phase_callback(profile_steps: tuple[int, int] | None) -> Any:
    """Switches the timers' phase (setup / train / validation / end), times backward, runs the torch profiler."""
    import lightning as L

    class Phases(L.Callback):
        def __init__(self) -> None:
            self.profiler: torch.profiler.profile | None = None
            self.steps = 0
            self.window_wall = 0.0
            self.aten = 0.0

        def on_train_start(self, trainer, pl_module) -> None:
            TIMERS.set_phase("train")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if profile_steps and self.steps == profile_steps[0]:
                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()
                self.window_started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps += 1
            if self.profiler is not None and self.steps == profile_steps[1]:
                self.window_wall = time.perf_counter() - self.window_started
                self.profiler.__exit__(None, None, None)
                self.aten = aten_seconds(self.profiler)
                self.profiler = None

        def on_validation_start(self, trainer, pl_module) -> None:
            TIMERS.set_phase("validation")

        def on_validation_end(self, trainer, pl_module) -> None:
            TIMERS.set_phase("train")

        def on_before_backward(self, trainer, pl_module, loss) -> None:
            TIMERS.push("backward")

        def on_after_backward(self, trainer, pl_module) -> None:
            TIMERS.pop("backward")

        def on_train_end(self, trainer, pl_module) -> None:
            TIMERS.set_phase("end")

    return Phases()


def aten_seconds(prof: torch.profiler.profile) -> float:
    """Seconds inside outermost ATen operators (an ATen op called by another one is counted once)."""
    total = 0.0
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            total += event.time_range.elapsed_us() / 1e6
    return total


def pipeline_overrides() -> dict[str, list[str]]:
    """The demo's overrides per stage, from ``configs/pipeline.yaml`` (resolved)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONFIGS / "pipeline.yaml")
    cfg.runs_dir = "unused"
    return {
        key: [str(x) for x in OmegaConf.to_container(cfg[key], resolve=True)]
        for key in ("train", "base", "sft", "grpo", "build", "evaluate")
    }


def compose(config_name: str, overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def fit(overrides: list[str], *callbacks: Any) -> Any:
    """Compose ``python -m src.train`` with ``overrides``, fit it in this process; returns the Trainer."""
    from src.models.factory import ModelSpec, describe
    from src.stages.runner import build_datamodule, build_module, build_trainer, resolve_init_from, to_dict

    cfg = compose("train", overrides)
    init_from = resolve_init_from(cfg)
    description = describe(ModelSpec(**to_dict(cfg.model)), init_from)
    datamodule = build_datamodule(cfg, description)
    module = build_module(cfg, init_from)
    trainer = build_trainer(cfg, extra_callbacks=list(callbacks))
    trainer.fit(module, datamodule=datamodule)
    return trainer


def make_corpus(args: argparse.Namespace, work: Path) -> list[str]:
    """The conflict-regime synthetic corpus of ``args.corpus`` clips under ``work``; its ``data`` overrides."""
    from src.data.synth import ensure_corpus

    corpus = work / "synth"
    started = time.perf_counter()
    ensure_corpus(corpus, n=args.corpus, seed=0, variation=0.3, phrasings=None, regime="conflict")
    print(f"corpus of {args.corpus} clips: {time.perf_counter() - started:.1f} s (not profiled)")
    return [
        f"data.root={corpus}",
        f"data.synth.n={args.corpus}",
        "data.synth.phrasings=null",
        "++data.synth.regime=conflict",
    ]


def exported_tensors(export: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {f"{f.name}:{k}": v for f in sorted(export.glob("*.safetensors")) for k, v in load_file(f).items()}


def run_ab(args: argparse.Namespace, work: Path) -> None:
    """Interleave fits of one stage with ``--off`` and ``--on`` overrides; wall-clock ratio and weight identity.

    Each repeat fits the stage twice, off then on (the order alternates between repeats, so a drift in the
    host's load hits both sides alike), each into its own run folder from the same start. The exported weights
    of every fit are compared with the first off fit's: ``identical`` means bit for bit.
    """
    demo = pipeline_overrides()
    data = make_corpus(args, work)
    stage = {"base": demo["base"], "sft": demo["sft"], "grpo": demo["grpo"]}[args.stage]
    start: list[str] = []
    if args.stage != "base":  # SFT and GRPO start from a short base (and SFT) run, as in the demo
        fit([*demo["train"], *demo["base"], *data, f"runs_dir={work / 'start'}", f"stage.max_steps={args.steps}"])
        start = [f"stage.init_from={work / 'start' / 'base' / 'export'}"]
        if args.stage == "grpo":
            fit(
                [
                    *demo["train"],
                    *demo["sft"],
                    *data,
                    *start,
                    f"runs_dir={work / 'start'}",
                    f"stage.max_steps={args.steps}",
                ]
            )
            start = [f"stage.init_from={work / 'start' / 'sft' / 'export'}"]
    for old in [*work.glob("off*"), *work.glob("on*"), work / "warmup"]:  # fits of an earlier --ab in --work
        shutil.rmtree(old, ignore_errors=True)
    # untimed: decodes every clip into the corpus's media cache, which every timed fit then reads
    fit([*demo["train"], *stage, *data, *start, *args.off, f"runs_dir={work / 'warmup'}", "stage.max_steps=1"])
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # this process's CPU time: robust to a loaded host
    reference: dict[str, torch.Tensor] | None = None
    largest = 0.0
    load = [os.getloadavg()[0]]
    for repeat in range(args.repeats):
        for side in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
            runs = work / f"{side}{repeat}"
            extra = args.off if side == "off" else args.on
            began, began_cpu = time.perf_counter(), time.process_time()
            fit(
                [
                    *demo["train"],
                    *stage,
                    *data,
                    *start,
                    *extra,
                    f"runs_dir={runs}",
                    f"stage.max_steps={args.steps}",
                ]
            )
            seconds[side].append(time.perf_counter() - began)
            cpu[side].append(time.process_time() - began_cpu)
            weights = exported_tensors(runs / args.stage / "export")
            if reference is None:
                reference = weights
            assert weights.keys() == reference.keys(), "the two sides export different tensors"
            for name, tensor in weights.items():
                largest = max(largest, float((tensor.double() - reference[name].double()).abs().max()))
            print(f"repeat {repeat} {side}: {seconds[side][-1]:.1f} s, {cpu[side][-1]:.1f} s CPU", flush=True)
            load.append(os.getloadavg()[0])
    print(f"\n{args.stage}, {args.steps} steps, {args.corpus}-clip corpus, {torch.get_num_threads()} thread(s)")
    for name, values in (("wall-clock", seconds), ("CPU time", cpu)):
        ratios = [a / b for a, b in zip(values["off"], values["on"])]
        print(f"{name}: off {args.off}: " + ", ".join(f"{x:.1f}" for x in values["off"]) + " s")
        print(f"{name}: on  {args.on}: " + ", ".join(f"{x:.1f}" for x in values["on"]) + " s")
        print(
            f"{name}: ratio off/on per repeat {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}"
        )
    print(
        f"exported weights, largest difference from the first fit: {largest:.3g} ({'identical' if largest == 0 else 'DIFFERENT'})"
    )
    print(f"load average (1 min) during the runs: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs")


def run_stages(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    from src.evaluation.runner import run_evaluation
    from src.migr.build import build

    instrument()
    demo = pipeline_overrides()
    data = make_corpus(args, work)
    runs = work / "runs"
    results: dict[str, dict[str, Any]] = {}
    window = (args.warmup, args.warmup + args.profile_steps) if args.torch_profiler else None

    def train(name: str, stage_overrides: list[str], steps: int) -> None:
        global TIMERS
        TIMERS = Timers()
        phases = phase_callback(window if steps > window[1] else None) if window else phase_callback(None)
        began = time.perf_counter()
        trainer = fit(
            [*demo["train"], *stage_overrides, *data, f"runs_dir={runs}", f"stage.max_steps={steps}"], phases
        )
        wall = time.perf_counter() - began
        results[name] = {
            "table": TIMERS.finish(),
            "wall": wall,
            "steps": trainer.global_step,
            "aten": phases.aten,
            "window_wall": phases.window_wall,
        }

    def other(name: str, run: Callable[[], Any]) -> None:
        global TIMERS
        TIMERS = Timers()
        TIMERS.set_phase("run")
        began = time.perf_counter()
        run()
        results[name] = {"table": TIMERS.finish(), "wall": time.perf_counter() - began, "steps": None, "aten": 0.0}

    base_export = runs / "base" / "export"
    train("base", demo["base"], args.steps)
    other(
        "migr_build",
        lambda: build(compose("build", [*demo["build"], *data, f"runs_dir={runs}", f"model_path={base_export}"])),
    )
    train("sft", [*demo["sft"], f"stage.init_from={base_export}"], args.steps)
    train("grpo", [*demo["grpo"], f"stage.init_from={runs / 'sft' / 'export'}"], args.grpo_steps)
    other(
        "evaluate",
        lambda: run_evaluation(
            compose(
                "evaluate",
                [
                    *demo["evaluate"],
                    *data,
                    f"runs_dir={runs}",
                    f"model_path={runs / 'grpo' / 'export'}",
                    f"output_dir={work / 'eval'}",
                    f"limit={args.eval_clips}",
                ],
            )
        ),
    )
    return results


def print_results(results: dict[str, dict[str, Any]]) -> None:
    for name, result in results.items():
        table = result["table"]
        phases = [p for p in ("setup", "train", "validation", "end", "run") if p in table]
        steps = f", {result['steps']} steps" if result["steps"] else ""
        print(f"\n### {name}: {result['wall']:.1f} s wall-clock{steps}\n")
        print("| part | " + " | ".join(f"{p} (s)" for p in phases) + " | total (s) | share |")
        print("|---|" + "---:|" * (len(phases) + 2))
        total_wall = sum(table[p]["(wall)"] for p in phases)
        for label in ROW_ORDER:
            values = [table[p].get(label, 0.0) for p in phases]
            if sum(values) < 0.005:
                continue
            cells = " | ".join(f"{v:.2f}" for v in values)
            print(f"| {label} | {cells} | {sum(values):.2f} | {100 * sum(values) / total_wall:.1f}% |")
        cells = " | ".join(f"{table[p]['(wall)']:.2f}" for p in phases)
        print(f"| **wall** | {cells} | {total_wall:.2f} | 100% |")
        if result.get("aten"):
            share = 1 - result["aten"] / result["window_wall"]
            print(
                f"\ntorch.profiler over {result['window_wall']:.2f} s of training steps: "
                f"{result['aten']:.2f} s inside ATen operators, {100 * share:.0f}% outside (Python, Lightning, "
                "hooks, the profiler's own cost)"
            )


# ---- FLOPs ------------------------------------------------------------------------------------------------
def component_flops(preset: str, prompt_text: int, answer: int) -> dict[str, float]:
    """Forward FLOPs per clip by part: 8 frames, the audio window, ``prompt_text`` + ``answer`` text tokens.

    ``llm/prompt`` is the LLM over the prompt (media placeholders + instruction), ``llm/answer`` the extra
    cost of ``answer`` more tokens after it (what one sampled completion adds).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from src.models.omni import OmniModel
    from src.models.presets import get_preset

    with torch.device("meta"):
        model = OmniModel(get_preset(preset), video_token_id=1, audio_token_id=2)
    cfg = model.config
    counts: dict[str, float] = {}

    def count(name: str, fn: Callable[[], Any]) -> Any:
        with FlopCounterMode(display=False) as counter:
            out = fn()
        counts[name] = float(counter.get_total_flops())
        return out

    def llm(length: int) -> Any:
        embeds = torch.empty(1, length, cfg.hidden_size)
        return model.llm.lm_head(model.llm.model(inputs_embeds=embeds).last_hidden_state)

    with torch.device("meta"), torch.no_grad():
        frames = torch.empty(1, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
        mel = torch.empty(1, cfg.n_mels, cfg.num_mel_frames)
        gate = torch.zeros(1, prompt_text, dtype=torch.long)  # the instruction the BERT gate reads
        patches = count("towers/vision", lambda: model.video_patches(frames))
        states = count("towers/audio", lambda: model.audio_states(mel))
        count("towers/bert", lambda: model.bert_model(input_ids=gate))
        count("projectors", lambda: (model.project_video(patches, gate), model.project_audio(states)))
        prompt = cfg.num_video_tokens + cfg.num_audio_tokens + prompt_text
        count("llm/prompt", lambda: llm(prompt))
        count("llm/full", lambda: llm(prompt + answer))
    counts["llm/answer"] = counts.pop("llm/full") - counts["llm/prompt"]
    counts["prompt"], counts["answer"] = float(prompt), float(answer)
    return counts


def flop_shares(f: dict[str, float], generations: int = 4) -> dict[str, float]:
    """The towers' share of the FLOPs of one clip in a forward, an SFT step and a GRPO step (frozen towers).

    * forward (MI's scoring, an evaluation's prefill): towers + projectors + LLM over the prompt;
    * SFT step: towers forward only (frozen: no backward); projectors and the LLM over prompt + answer,
      forward and backward (backward ~ 2x forward);
    * GRPO step, G completions: towers once; the rollout (prefill once, G answers decoded against the repeated
      cache), the reference forward and the policy's forward + backward each cost prompt + G answers, and
      the projectors run once for each of those (5 forward-equivalents).
    """
    towers = f["towers/vision"] + f["towers/audio"] + f["towers/bert"]
    forward = towers + f["projectors"] + f["llm/prompt"]
    sft = towers + 3 * (f["projectors"] + f["llm/prompt"] + f["llm/answer"])
    grpo = towers + 5 * (f["projectors"] + f["llm/prompt"] + generations * f["llm/answer"])
    return {"forward": towers / forward, "sft": towers / sft, "grpo": towers / grpo}


# (prompt text tokens, answer tokens): the tiny demo's ~40-token prompt and ~60-token explanations; the
# paper's explanations run ~200-250 tokens
TEXT_TOKENS = {"tiny": (40, 60), "humanomni-0.5b": (60, 250), "humanomni-7b": (60, 250)}


def print_flops() -> None:
    print("\n### Forward FLOPs per clip (FlopCounterMode on meta tensors of the preset shapes)\n")
    print(
        "| preset | prompt + answer tokens | vision | audio | BERT | projectors | LLM prompt | LLM answer "
        "| towers / forward | towers / SFT step | towers / GRPO step (G=4) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset, (prompt_text, answer) in TEXT_TOKENS.items():
        f = component_flops(preset, prompt_text, answer)
        shares = flop_shares(f)
        parts = ("towers/vision", "towers/audio", "towers/bert", "projectors", "llm/prompt", "llm/answer")
        cells = " | ".join(f"{f[k]:.2e}" for k in parts)
        print(
            f"| {preset} | {int(f['prompt'])} + {int(f['answer'])} | {cells} | {100 * shares['forward']:.0f}% | "
            f"{100 * shares['sft']:.0f}% | {100 * shares['grpo']:.0f}% |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the demo's arms run with 1 each)")
    parser.add_argument("--corpus", type=int, default=140, help="synthetic clips")
    parser.add_argument("--steps", type=int, default=40, help="steps of base and of SFT")
    parser.add_argument("--grpo-steps", type=int, default=8)
    parser.add_argument("--eval-clips", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5, help="training steps before the torch.profiler window")
    parser.add_argument("--profile-steps", type=int, default=5, help="training steps under torch.profiler")
    parser.add_argument("--no-torch-profiler", dest="torch_profiler", action="store_false")
    parser.add_argument("--flops", action="store_true", help="also print the FLOP shares of the presets")
    parser.add_argument("--flops-only", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="folder for the corpus and runs (default: temp)")
    ab = parser.add_argument_group("A/B: one stage fitted with --off and --on overrides, interleaved")
    ab.add_argument("--ab", action="store_true", help="time --stage with --off vs --on instead of the profile")
    ab.add_argument("--stage", choices=("base", "sft", "grpo"), default="base")
    ab.add_argument("--off", nargs="*", default=[], help="src.train overrides of the side without the change")
    ab.add_argument("--on", nargs="*", default=[], help="src.train overrides of the side with the change")
    ab.add_argument("--repeats", type=int, default=3, help="pairs of fits")
    args = parser.parse_args()
    args.off, args.on = [x for x in args.off if x], [x for x in args.on if x]  # --on "": no override
    torch.set_num_threads(args.threads)
    if args.ab:
        with contextlib.ExitStack() as stack:
            work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="profile_ab_")))
            run_ab(args, work)
        return
    if not args.flops_only:
        with contextlib.ExitStack() as stack:
            work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="profile_stage_")))
            print_results(run_stages(args, work))
    if args.flops or args.flops_only:
        print_flops()


if __name__ == "__main__":
    main()
