"""Explain single clips: ``python -m src.explain PATH [PATH ...] [--json FILE] [--attention DIR] [key=value ...]``.

PATH is a video (with or without a sound track), an audio file, or a folder of them. ``key=value`` overrides
``configs/explain.yaml`` (``model_path=``, ``task=r1omni``, ``temperature=``, ``seed=``, ``label=``,
``modalities=video|audio``, ``judge=embedding`` ...). Prints, per clip, the explanation with its segments, the
answer, Modality Importance, the first-tag margin and whether the judge's reading of the explanation agrees with
the answer; ``--json`` writes the same as one JSON object per clip (``-`` for standard output).
See :mod:`src.evaluation.explain` for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TAG_NAMES = {"visual": "vis_desc", "audio": "aud_desc", "think": "think", "answer": "answer"}
CONDITION_NAMES = {"audio": "audio only", "visual": "visual only", "audio_visual": "audio + visual"}

log = logging.getLogger("src.explain")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m src.explain",
        description=(
            "Explain why the person in a clip feels an emotion: the model's explanation, answer, Modality "
            "Importance (audio only / visual only / both), first-tag margin, and the judge's consistency check."
        ),
        epilog="Overrides (key=value) of configs/explain.yaml, e.g. model_path=runs/demo/baseline_grpo/export "
        "task=r1omni temperature=0.3 seed=1 label=angry modalities=video judge=embedding",
    )
    parser.add_argument("paths", nargs="+", help="video/audio files or folders of them, then key=value overrides")
    parser.add_argument("--json", metavar="FILE", help="write one JSON object per clip to FILE ('-': stdout)")
    parser.add_argument("--attention", metavar="DIR", help="save each clip's attention-share plot (PNG) in DIR")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the --json output")
    args = parser.parse_intermixed_args(argv)
    overrides = [p for p in args.paths if "=" in p and not Path(p).exists()]
    args.paths = [p for p in args.paths if p not in overrides]
    if not args.paths:
        parser.error("give at least one video/audio file or folder")
    return args, overrides


def compose_config(overrides: list[str]):
    """``configs/explain.yaml`` with ``overrides`` (a misspelled key fails naming it)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="explain", overrides=overrides)


def format_explanation(result: dict[str, Any]) -> str:
    """The human-readable report of one clip (a :meth:`ClipExplanation.to_dict`)."""
    lines = [f"== {result['path']}  ({result['modalities'].replace('_', '+')})"]
    if result["note"]:
        lines.append(f"   note: {result['note']}")
    if result["label"] or result["dominant"]:
        lines.append(f"   known: label {result['label'] or '?'}, dominant modality {result['dominant'] or '?'}")
    lines.append("explanation:")
    for segment in result["segments"]:
        lines.append(f"  <{TAG_NAMES[segment['tag']]}> {segment['text']}")
    if not result["segments"]:
        lines.append(f"  (no tagged segment) {result['completion']!r}")
    flags = [] if result["well_formed"] else ["malformed"]
    if result["truncated"]:
        flags.append("truncated")
    suffix = f"  [{', '.join(flags)}]" if flags else ""
    lines.append(f"answer: {result['prediction'] or result['answer'] or '(none)'}{suffix}")
    verdict = {True: "consistent", False: "INCONSISTENT", None: "cannot tell"}[result["consistent"]]
    lines.append(
        f"judge ({result['judge']}) reads the explanation as: {result['judged'] or '(no emotion)'} -> {verdict}"
    )
    importance = result["importance"]
    if importance is None:
        lines.append(f"Modality Importance: n/a ({result['not_applicable'].get('importance', '')})")
    else:
        lines.append("Modality Importance:")
        for condition, entry in importance["conditions"].items():
            top = sorted(entry["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            shown = ", ".join(f"{label} {p:.2f}" for label, p in top)
            lines.append(f"  {CONDITION_NAMES[condition]:<15} answer {entry['answer'] or '(none)':<10} p: {shown}")
        score = importance["score"]
        score_text = "n/a" if score is None else f"{score:+.2f}"
        lines.append(
            f"  -> dominant modality: {importance['dominant'] or 'n/a'} (reference: {importance['reference_from']} "
            f"{importance['reference'] or '?'}; log p(ref|audio) - log p(ref|visual) = {score_text})"
        )
    margins = result["first_tag_margin"]
    if margins is None:
        lines.append(f"first-tag margin: n/a ({result['not_applicable'].get('first_tag_margin', '')})")
    else:
        margin = margins["audio_visual"]
        opens = "<aud_desc>" if margin > 0 else "<vis_desc>"
        lines.append(f"first-tag margin log p(<aud_desc>) - log p(<vis_desc>): {margin:+.2f} (prefers {opens})")
    if result["attention_drift"] is not None:
        lines.append(f"attention drift (generated-text share slope): {result['attention_drift']:+.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = compose_config(overrides)
    except Exception as error:  # Hydra's own messages name the key
        print(f"error: {error}", file=sys.stderr)
        return 2
    from src.data.manifest import ManifestError
    from src.evaluation.explain import run_explain
    from src.evaluation.predictions import EvaluationError

    try:
        results = run_explain(cfg, args.paths, attention_dir=args.attention, progress=not args.quiet)
    except (EvaluationError, ManifestError) as error:  # the file, line, sample and what was expected
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = [result.to_dict() for result in results]
    if args.json:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    if not args.quiet and args.json != "-":
        print(f"model: {results[0].model if results else cfg.model_path}")
        for row in rows:
            print(format_explanation(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
