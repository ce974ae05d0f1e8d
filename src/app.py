"""A web app that explains one clip: ``python -m src.app [--port 7860] [--models A,B] [key=value ...]``.

Pick a synthetic test clip (or upload a video / audio file), choose one or two models (default: the demo's MIGR
and baseline exports side by side) and see, for each model, the explanation with its ``<vis_desc>`` /
``<aud_desc>`` / ``<think>`` / ``<answer>`` segments marked, the answer and whether the judge's reading of the
explanation agrees with it, the Modality Importance bars (label probabilities from audio only, visual only and
both), and the attention-share curve over the generated tokens (visual / audio / text: the paper's Fig. 5 for one
clip). Everything comes from :mod:`src.evaluation.explain`, the code ``python -m src.explain`` and
``python -m src.evaluate`` run. Bad uploads (not a video, undecodable, too long) get a message in the page.

Gradio is an optional extra (``pip install -e '.[app]'``; ``make`` installs it).
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SEGMENT_STYLE = {  # tag -> (label, background colour)
    "visual": ("vis_desc", "#dbeafe"),
    "audio": ("aud_desc", "#dcfce7"),
    "think": ("think", "#fef9c3"),
    "answer": ("answer", "#fce7f3"),
}
CSS = """
.seg { border-radius: 6px; padding: 6px 10px; margin: 4px 0; }
.seg .tag { font-family: monospace; font-weight: 600; margin-right: 6px; }
.verdict-ok { color: #166534; font-weight: 600; }
.verdict-bad { color: #991b1b; font-weight: 600; }
#status .error { color: #991b1b; font-weight: 600; }
"""
DEMO_MODELS = ("demo/migr_grpo", "demo/baseline_grpo")
log = logging.getLogger("src.app")


def render_explanation(result: dict[str, Any], *, title: str) -> str:
    """HTML of one model's explanation: each segment marked (class ``seg seg-<tag>``), answer, judge verdict."""
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if result.get("note"):
        parts.append(f"<p class='note'><em>{html.escape(result['note'])}</em></p>")
    for segment in result["segments"]:
        tag, colour = SEGMENT_STYLE[segment["tag"]]
        parts.append(
            f"<div class='seg seg-{tag}' style='background:{colour}'><span class='tag'>&lt;{tag}&gt;</span>"
            f"{html.escape(segment['text'])}</div>"
        )
    if not result["segments"]:
        parts.append(f"<div class='seg seg-none'>(no tagged segment) {html.escape(result['completion'])}</div>")
    answer = result["prediction"] or result["answer"] or "(none)"
    parts.append(f"<p class='answer'>Answer: <strong>{html.escape(answer)}</strong></p>")
    verdict = result["consistent"]
    css = "verdict-ok" if verdict else "verdict-bad"
    text = {True: "consistent", False: "inconsistent", None: "cannot tell"}[verdict]
    judged = html.escape(result["judged"] or "no emotion")
    parts.append(
        f"<p class='judge'>The {html.escape(result['judge'])} judge reads the explanation as <strong>{judged}"
        f"</strong>: <span class='{css}'>{text}</span> with the answer.</p>"
    )
    importance = result["importance"]
    if importance is not None:
        parts.append(
            f"<p class='mi'>Modality Importance: dominant modality <strong>"
            f"{html.escape(str(importance['dominant']))}</strong> (reference: {importance['reference_from']} "
            f"{html.escape(str(importance['reference']))})</p>"
        )
    margin = (result["first_tag_margin"] or {}).get("audio_visual")
    if margin is not None:
        parts.append(
            f"<p class='margin'>First-tag margin log p(&lt;aud_desc&gt;) - log p(&lt;vis_desc&gt;): {margin:+.2f}</p>"
        )
    return "\n".join(parts)


def importance_figure(result: dict[str, Any]):
    """Bars of each label's probability under audio only / visual only / both (None when not applicable)."""
    importance = result["importance"]
    if importance is None:
        return None
    import numpy as np
    from matplotlib.figure import Figure

    conditions = importance["conditions"]
    labels = list(next(iter(conditions.values()))["probabilities"])
    fig = Figure(figsize=(6.0, 2.8))
    ax = fig.subplots()
    width = 0.8 / len(conditions)
    x = np.arange(len(labels))
    names = {"audio": "audio only", "visual": "visual only", "audio_visual": "audio + visual"}
    for k, (condition, entry) in enumerate(conditions.items()):
        ax.bar(x + k * width, [entry["probabilities"][label] for label in labels], width, label=names[condition])
    ax.set_xticks(x + width * (len(conditions) - 1) / 2, labels, rotation=30, fontsize=8)
    ax.set_ylabel("p(label) at the answer")
    ax.set_ylim(0, 1)
    ax.set_title(f"Modality Importance: dominant = {importance['dominant']}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def clip_seconds(path: Path) -> float | None:
    """Duration of a media file from its container (None when the container does not say)."""
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return container.duration / 1_000_000
        streams = [s for s in container.streams if s.duration is not None and s.time_base is not None]
        return max((float(s.duration * s.time_base) for s in streams), default=None)


def find_models(runs_dir: Path) -> list[str]:
    """Exported model folders under ``runs_dir`` (``*/export`` and ``*/*/export``), newest first."""
    found = [
        p.parent for pattern in ("*/export/config.json", "*/*/export/config.json") for p in runs_dir.glob(pattern)
    ]
    return [str(p) for p in sorted(found, key=lambda p: -(p / "config.json").stat().st_mtime)]


class ExplainApp:
    """The app's state: the composed config, the example clips, and one explainer per model folder (loaded once)."""

    def __init__(self, cfg, *, models: Sequence[str], max_seconds: float) -> None:
        self.cfg = cfg
        self.models = list(models)
        self.max_seconds = max_seconds
        self.explainers: dict[str, Any] = {}
        self.examples = self._examples()

    def _examples(self) -> dict[str, Any]:
        """Test-split clips of the configured manifest: ``{"<id> (<label>, <dominant>-dominant)": Sample}``."""
        from src.data.manifest import read_manifest

        if not self.cfg.manifest or not Path(self.cfg.manifest).is_file():
            return {}
        samples = [s for s in read_manifest(self.cfg.manifest) if s.split == "test"]
        return {f"{s.id} ({s.label}, {s.dominant or '?'}-dominant)": s for s in samples}

    def explainer(self, model: str):
        from omegaconf import OmegaConf

        from src.evaluation.explain import load_explainer

        if model not in self.explainers:
            cfg = OmegaConf.merge(self.cfg, {"model_path": model})
            self.explainers[model] = load_explainer(cfg)
        return self.explainers[model]

    def run(self, example: str | None, upload: str | None, model_a: str | None, model_b: str | None):
        """Explain the chosen clip with the chosen models: (status HTML, then per model slot HTML, MI, attention)."""
        from src.data.media import MediaError
        from src.evaluation.explain import attention_figure, clip_inputs, display_path
        from src.evaluation.predictions import EvaluationError

        empty = ("", None, None)
        models = [m for m in (model_a, model_b) if m]
        if not models:
            return ("<p class='error'>Choose at least one model.</p>", *empty, *empty)
        try:
            if upload:
                path = Path(upload)
                seconds = clip_seconds_or_error(path)
                if seconds is not None and seconds > self.max_seconds:
                    raise EvaluationError(
                        f"{path.name}: {seconds:.1f} s long; this app explains clips up to {self.max_seconds:.0f} s "
                        "(python -m src.explain has no limit)"
                    )
                known = None
            elif example:
                sample = self.examples[example]
                path = Path(sample.video if sample.video is not None else sample.audio)
                known = {path.resolve(): sample}
            else:
                return ("<p class='error'>Pick an example clip or upload a video.</p>", *empty, *empty)
            outputs: list[Any] = []
            notes = []
            for model in models:
                explainer = self.explainer(model)
                clips = clip_inputs([path], dataset=self.cfg.dataset, loader=explainer.loader, known=known)
                if not clips:  # on_error=skip left the clip out: say why instead of explaining nothing
                    raise EvaluationError(
                        f"{path.name} was skipped (on_error={self.cfg.on_error}):\n"
                        f"{explainer.loader.report.summary()}"
                    )
                result = explainer.explain(clips)[0]
                row = result.to_dict()
                name = Path(model).parent.name if Path(model).name == "export" else Path(model).name
                outputs += [
                    render_explanation(row, title=name),
                    importance_figure(row),
                    attention_figure(result, name=name),
                ]
                notes.append(row["note"])
        except (EvaluationError, MediaError, ValueError, OSError) as error:
            message = str(error)  # a MediaError's is the evaluation's text (sample id, file, what is wrong)
            log.warning("explain failed: %s", message)
            return (f"<p class='error'>Cannot explain this clip: {html.escape(message)}</p>", *empty, *empty)
        while len(outputs) < 6:
            outputs += list(empty)
        shown = display_path(path.name)
        note = next((n for n in notes if n), None)
        status = f"<p class='ok'>Explained <code>{html.escape(shown)}</code>.</p>"
        if note:
            status += f"<p class='note'>{html.escape(note)}</p>"
        return (status, *outputs)


def clip_seconds_or_error(path: Path) -> float | None:
    """:func:`clip_seconds`, with a file no container can open reported as not a video."""
    from src.evaluation.predictions import EvaluationError

    try:
        return clip_seconds(path)
    except Exception as error:  # PyAV raises its own error types for every kind of broken file
        raise EvaluationError(f"{path.name}: not a readable video or audio file ({error})") from None


def build_blocks(app: ExplainApp):
    """The Gradio page (``gr.Blocks``) wired to ``app.run``."""
    import gradio as gr

    choices = app.models + [m for m in find_models(Path(app.cfg.runs_dir)) if m not in app.models]
    with gr.Blocks(title="migr: explain a clip", analytics_enabled=False) as blocks:
        gr.Markdown(
            "# Why does this person feel that?\nPick a synthetic test clip or upload a video, choose one or two "
            "models, and read each explanation: which modality it opens with, what it concludes, and where its "
            "attention goes while it writes."
        )
        with gr.Row():
            example = gr.Dropdown(
                choices=list(app.examples),
                value=next(iter(app.examples), None),
                label="Example clip (test split)",
                elem_id="example",
            )
            upload = gr.File(label="...or upload a video / audio file", type="filepath", elem_id="upload")
        with gr.Row():
            model_a = gr.Dropdown(
                choices=choices,
                value=app.models[0] if app.models else None,
                label="Model A",
                allow_custom_value=True,
                elem_id="model-a",
            )
            model_b = gr.Dropdown(
                choices=[*choices],
                value=app.models[1] if len(app.models) > 1 else None,
                label="Model B (optional)",
                allow_custom_value=True,
                elem_id="model-b",
            )
        button = gr.Button("Explain", variant="primary", elem_id="explain")
        status = gr.HTML(elem_id="status")
        slots = []
        with gr.Row():
            for k in range(2):
                with gr.Column():
                    slots += [
                        gr.HTML(elem_id=f"result-{k}"),
                        gr.Plot(label="Modality Importance", show_label=False, elem_id=f"mi-{k}"),
                        gr.Plot(
                            label="Attention over generated tokens", show_label=False, elem_id=f"attention-{k}"
                        ),
                    ]
        button.click(app.run, inputs=[example, upload, model_a, model_b], outputs=[status, *slots])
    return blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--models", help="comma-separated model folders (default: the demo's MIGR and baseline)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest upload explained (seconds)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of configs/explain.yaml")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from src.explain import compose_config

    cfg = compose_config(args.overrides)
    if args.models:
        models = [m for m in args.models.split(",") if m]
    else:
        models = [
            str(Path(cfg.runs_dir) / m / "export")
            for m in DEMO_MODELS
            if (Path(cfg.runs_dir) / m / "export").is_dir()
        ]
    if cfg.manifest is None:
        # the demo corpus (configs/pipeline.yaml corpus.root)
        default = Path(os.environ.get("MIGR_DATA", "data")) / "synth_conflict" / "manifest.jsonl"
        from omegaconf import OmegaConf

        cfg = OmegaConf.merge(cfg, {"manifest": str(default) if default.is_file() else None})
    app = ExplainApp(cfg, models=models, max_seconds=args.max_seconds)
    if not models:
        log.warning("no demo exports under %s: make demo (or pass --models)", cfg.runs_dir)
    build_blocks(app).launch(server_name=args.host, server_port=args.port, show_error=False, css=CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
