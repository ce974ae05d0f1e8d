"""``report.md``: an evaluation's figures in the layout of the paper's tables (values in %).

- Table 1: FCR, EEA, EPC | UAR, WAR (consistency and accuracy);
- Table 2: R✗/A✓ over all samples and among correct predictions;
- Table 3: per-class recall with UAR and WAR;
- modality openings: which segment explanations start with, and the share starting with the dominant modality;
- attention (Fig. 5): drift and peak shares per MI group, with the plot;
- Tables 4 and 6 for the focus classes when the data has concurrent labels;
- format and skipped clips.

:func:`comparison_table` puts several evaluations side by side (e.g. MIGR vs the visual-first baseline).

Example:
    >>> percent(0.7393), percent(None)
    ('73.93', 'n/a')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PAPER_ABBREVIATIONS = {
    "happy": "Hap",
    "sad": "Sad",
    "neutral": "Neu",
    "angry": "Ang",
    "surprise": "Sur",
    "disgust": "Dis",
    "fear": "Fea",
    "unknown": "Unk",
}

COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("WAR", "war"),
    ("UAR", "uar"),
    ("EEA", "eea"),
    ("EPC", "epc"),
    ("FCR", "fcr"),
    ("R✗/A✓ all", "r_wrong_a_right"),
    ("R✗/A✓ among correct", "r_wrong_a_right_among_correct"),
    ("dominant-first", "dominant_first"),
    ("attention drift", "attention/drift/all"),
)


def percent(value: float | None, digits: int = 2) -> str:
    """``0.7393 -> '73.93'``; None (undefined) -> ``'n/a'``."""
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(str(cell) for cell in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(
    figures: Mapping[str, Any], run: Mapping[str, Any], *, name: str = "model", images: bool = True
) -> str:
    """The markdown report of one evaluation.

    Args:
        figures: the content of ``metrics.json``.
        run: facts about the run (``model``, ``manifest``, ``split``, ``judge``, ``temperature``,
            ``max_new_tokens``, ``skipped`` list, ...), shown in the header.
        name: the row name in the tables (e.g. the model's stage).
        images: link the PNG plots of the evaluation folder (off where the plots are drawn otherwise).
    """
    recognition = figures["recognition"]
    consistency = figures.get("consistency") or {}
    labels = figures["labels"]
    plots = ["![confusion matrix](confusion.png)", "", "![per-class recall](recall.png)", ""] if images else []
    parts = [
        f"# Evaluation: {name}",
        "",
        _run_facts(figures, run),
        "",
        "## Consistency and accuracy (paper Table 1)",
        "",
        table(
            ["Model", "FCR", "EEA", "EPC", "UAR", "WAR"],
            [
                [
                    name,
                    percent(consistency.get("fcr")),
                    percent(consistency.get("eea")),
                    percent(consistency.get("epc")),
                    percent(recognition["uar"]),
                    percent(recognition["war"]),
                ]
            ],
        ),
        "",
        "## Reasoning-answer inconsistency (paper Table 2)",
        "",
        table(
            ["Model", "R✗/A✓ all samples", "R✗/A✓ among correct"],
            [
                [
                    name,
                    percent(consistency.get("r_wrong_a_right")),
                    percent(consistency.get("r_wrong_a_right_among_correct")),
                ]
            ],
        ),
        "",
        "## Emotion-wise accuracy (paper Table 3)",
        "",
        table(
            ["Method", *[PAPER_ABBREVIATIONS.get(label, label) for label in labels], "UAR", "WAR"],
            [
                [
                    name,
                    *[percent(recognition["recall"][label]) for label in labels],
                    percent(recognition["uar"]),
                    percent(recognition["war"]),
                ]
            ],
        ),
        "",
        f"Unparseable answers (counted wrong): {percent(recognition['unknown_rate'])}%. "
        f"Explanations the judge found no emotion in: {percent(consistency.get('judge_unknown_rate'))}%.",
        "",
        *plots,
        *_openings(figures),
        *_first_tag(figures),
        *_breakdowns(figures),
        *_anchoring(figures),
        *_extra_judges(figures),
        *_attention(figures, images),
        *_concurrent(figures),
        *_format(figures, run),
    ]
    return "\n".join(parts).rstrip() + "\n"


def _run_facts(figures: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    facts = [
        ("model", run.get("model")),
        ("data", f"{run.get('manifest')} (split {run.get('split')})"),
        ("samples", f"{figures['num_samples']} evaluated, {len(run.get('skipped') or [])} skipped"),
        ("generation", _generation_text(run)),
        ("judge", f"{run.get('judge')} (explanation mode: {run.get('explanation_mode')})"),
    ]
    return "\n".join(f"- **{key}**: {value}" for key, value in facts)


def _generation_text(run: Mapping[str, Any]) -> str:
    temperature = run.get("temperature")
    how = "greedy" if not temperature else f"temperature {temperature}"
    return f"{how}, up to {run.get('max_new_tokens')} new tokens, prompt task {run.get('task')}"


def _openings(figures: Mapping[str, Any]) -> list[str]:
    opening = figures["opening"]
    lines = [
        "## Where explanations start",
        "",
        table(
            ["opens with", *opening["shares"]],
            [["share (%)", *[percent(value) for value in opening["shares"].values()]]],
        ),
        "",
    ]
    for source, title in (("dominant", "ground-truth dominant modality"), ("mi_dominant", "MI estimate")):
        result = (figures.get("dominant_first") or {}).get(source)
        if result is None:
            continue
        lines += [
            f"Share of explanations opening with the {title}: **{percent(result['share'])}%** "
            f"(over {result['n']} samples whose dominant modality is audio or visual).",
            "",
            table(
                [f"{source}", "samples", "opens with audio (%)", "opens with visual (%)"],
                [
                    [group, value["n"], percent(value["opens_audio"]), percent(value["opens_visual"])]
                    for group, value in result["by_group"].items()
                ],
            ),
            "",
        ]
    return lines


def _first_tag(figures: Mapping[str, Any]) -> list[str]:
    first_tag = figures.get("first_tag")
    if not first_tag:
        return []
    groups = sorted({g for condition in first_tag.values() for g in condition["by_dominant"]})
    rows = []
    for condition, summary in first_tag.items():
        cells = [summary["by_dominant"].get(g) for g in groups]
        rows.append(
            [
                condition.replace("_", "-"),
                *["" if cell is None else f"{_signed(cell['mean'])} ({cell['n']})" for cell in cells],
                "" if summary["separation"] is None else _signed(summary["separation"]),
            ]
        )
    return [
        "## First-tag margin",
        "",
        "log p(`<aud_desc>`) - log p(`<vis_desc>`) at the first generated position, mean (clips) per ground-truth "
        "dominant modality, under each prompt condition; separation = audio-dominant minus visual-dominant (how "
        "much the media move the opening; near 0: the order is a learned prior).",
        "",
        table(["prompt shows", *groups, "separation"], rows),
        "",
    ]


def _breakdowns(figures: Mapping[str, Any]) -> list[str]:
    section = figures.get("breakdowns")
    if not section:
        return []
    groups = [("all clips", section["overall"])]
    groups += [(cell, block) for cell, block in section["by_cell"].items()]
    groups += [(f"opened {name.replace('_', '-')}", block) for name, block in section["by_opening"].items()]
    for cell, parts in section["by_cell_opening"].items():
        groups += [(f"{cell}, opened {name.replace('_', '-')}", block) for name, block in parts.items()]
    header = ["group", "n", "well-formed", "WAR", "EEA", "EPC", "FCR", "R✗/A✓ among correct"]

    def rows(well_formed_only: bool) -> list[list[Any]]:
        out = []
        for name, block in groups:
            figures_ = block["well_formed_only"] if well_formed_only else block
            out.append(
                [
                    name,
                    figures_["n"],
                    "" if well_formed_only else percent(block["well_formed"]),
                    *[percent(figures_[key]) for key in ("war", "eea", "epc", "fcr")],
                    percent(figures_["r_wrong_a_right_among_correct"]),
                ]
            )
        return out

    return [
        "## Breakdowns: per cell, by opening, over well-formed explanations",
        "",
        f"Well-formed (MIGR's structure: both descriptions, think, answer): **{percent(section['well_formed'])}%**. "
        "Cells are `<dominant>/<non-dominant cue>` of synthetic clips"
        + (f" ({section['no_cell']} clips have none)" if section["no_cell"] else "")
        + "; opened dominant-first / other-first: clips whose dominant modality is audio or visual, by the "
        "segment the explanation opened with. Values in %.",
        "",
        "All explanations:",
        "",
        table(header, rows(False)),
        "",
        "Well-formed explanations only:",
        "",
        table(header, rows(True)),
        "",
    ]


def _anchoring(figures: Mapping[str, Any]) -> list[str]:
    summary = figures.get("anchoring")
    if not summary:
        return []
    rows = []
    for condition in ("non_dominant", "dominant"):
        block = summary[condition]
        for name, rates in [("all clips", block["all"]), *block["by_cell"].items()]:
            rows.append(
                [
                    condition.replace("_", "-"),
                    name,
                    rates["n"],
                    percent(rates["think_follows_forced"]),
                    percent(rates["think_follows_label"]),
                    percent(rates["answer_follows_forced"]),
                    percent(rates["answer_follows_label"]),
                ]
            )
    return [
        "## Anchoring probe",
        "",
        "The first description is teacher-forced with the non-dominant (or the dominant) modality's true "
        "description and the model continues greedily: how often `<think>` (as the judge reads it) and `<answer>` "
        "follow the forced text's emotion and how often the clip's label (both, when they are the same emotion). "
        f"Clips without gold descriptions skipped: {summary['skipped']}. Values in %.",
        "",
        table(
            ["forced", "group", "n", "think = forced", "think = label", "answer = forced", "answer = label"], rows
        ),
        "",
    ]


def _extra_judges(figures: Mapping[str, Any]) -> list[str]:
    judges = figures.get("judges")
    if not judges:
        return []
    rows = []
    for name, result in judges.items():
        overall = result["breakdowns"]["overall"]
        for subset, block in (("all", overall), ("well-formed", overall["well_formed_only"])):
            keys = ("eea", "epc", "fcr", "r_wrong_a_right_among_correct")
            rows.append([name, subset, block["n"], *[percent(block[key]) for key in keys]])
    return [
        "## The same explanations read by other judges",
        "",
        "Every figure per cell and opening is in `metrics.json` under `judges`. Values in %.",
        "",
        table(["judge", "explanations", "n", "EEA", "EPC", "FCR", "R✗/A✓ among correct"], rows),
        "",
    ]


def _attention(figures: Mapping[str, Any], images: bool) -> list[str]:
    attention = figures.get("attention")
    if attention is None:
        return []
    rows = [
        [
            group,
            attention["counts"][group],
            _signed(attention["drift"][group]),
            percent(attention["peaks"][group]["visual"]),
            percent(attention["peaks"][group]["audio"]),
            percent(attention["means"][group]["text"]),
        ]
        for group in attention["counts"]
    ]
    return [
        f"## Attention over generation (paper Fig. 5, layer {attention['layer']})",
        "",
        "Drift: least-squares slope of the generated-text share over the normalised generation (x in [0, 1]); "
        "positive means attention moves from the audio-visual input to the model's own text.",
        "",
        table(["MI group", "samples", "drift", "peak visual (%)", "peak audio (%)", "mean text (%)"], rows),
        "",
        *(["![attention](attention.png)", ""] if images else []),
    ]


def _concurrent(figures: Mapping[str, Any]) -> list[str]:
    concurrent = figures.get("concurrent")
    if concurrent is None:
        return []
    overall = concurrent["overall"]
    lines = [
        "## Misses and concurrent labels (paper Tables 4 and 6)",
        "",
        f"{overall['misses']} misses"
        + (" among samples the reference model got right" if concurrent["restricted_to_reference_correct"] else "")
        + f"; the prediction is one of the sample's concurrent labels for {percent(overall['prediction_in_secondary'])}%.",
        "",
    ]
    labels = figures["labels"]
    for label in concurrent["focus"]:
        result = concurrent["by_class"].get(label)
        if result is None:
            lines += [f"No misses of class {label}.", ""]
            continue
        n = result["misses"]
        predicted = result["predicted"]
        columns = [name for name in predicted if name != label]
        top2 = result["true_in_judged_top2"]
        lines += [
            f"### {label}: {n} misses",
            "",
            "Predicted label distribution (Table 4); last column: share whose explanation keeps "
            f"{label} among the judge's top labels.",
            "",
            table(
                ["", *[PAPER_ABBREVIATIONS.get(c, c) for c in columns], f"{label} in top-2"],
                [
                    ["# samples", *[predicted[c] for c in columns], "n/a" if top2 is None else round(top2 * n)],
                    ["ratio (%)", *[_ratio(predicted[c], n) for c in columns], percent(top2, 1)],
                ],
            ),
            "",
            f"Concurrent annotations of these misses (Table 6); prediction among them: "
            f"{percent(result['prediction_in_secondary'])}%.",
            "",
            table(
                ["", *[PAPER_ABBREVIATIONS.get(c, c) for c in labels if c != label], "total"],
                [
                    ["# samples", *[result["secondary"][c] for c in labels if c != label], n],
                    ["ratio (%)", *[_ratio(result["secondary"][c], n) for c in labels if c != label], "100.0"],
                ],
            ),
            "",
        ]
    return lines


def _format(figures: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    fmt = figures["format"]
    lines = [
        "## Output format",
        "",
        f"Well-formed: {percent(fmt['well_formed'])}%; truncated at max_new_tokens: {percent(fmt['truncated'])}%; "
        f"mean length {fmt['mean_tokens']:.1f} tokens.",
        "",
    ]
    skipped, short = run.get("skipped") or [], run.get("short_clips") or []
    sections = [
        (
            f"## Skipped clips ({len(skipped)}, on_error=skip)",
            ["id", "manifest line", "file", "reason"],
            [[s["sample_id"], s.get("where", ""), s["path"], s["reason"]] for s in skipped],
        ),
        (
            f"## Short clips ({len(short)}, fewer frames than the model reads; "
            f"short_clip={short[0]['policy'] if short else ''})",
            ["id", "file", "frames", "needed"],
            [[s["sample_id"], s["path"], s["frames"], s["needed"]] for s in short],
        ),
    ]
    for title, header, rows in sections:
        if rows:
            lines += [title, "", table(header, rows), ""]
    return lines


def comparison_table(runs: Mapping[str, Mapping[str, float]]) -> str:
    """Several evaluations side by side: ``{name: flat figures}`` (see :func:`src.evaluation.figures.flat_figures`).

    Example:
        >>> print(comparison_table({"migr": {"war": 0.5, "epc": 0.9}}).splitlines()[2])
        | migr | 50.00 | n/a | n/a | 90.00 | n/a | n/a | n/a | n/a | n/a |
    """
    rows = []
    for name, flat in runs.items():
        row: list[str] = [name]
        for _, key in COMPARISON_COLUMNS:
            value = flat.get(key)
            row.append(_signed(value) if key.startswith("attention/") else percent(value))
        rows.append(row)
    return table(["Model", *[title for title, _ in COMPARISON_COLUMNS]], rows)


def _ratio(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}" if total else "n/a"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"
