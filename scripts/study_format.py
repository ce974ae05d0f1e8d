"""Where a study's arms lose MIGR's format: SFT or GRPO, and how (the README's study section, issue 16).

    python scripts/study_format.py [runs/study]

For every regime x arm of a finished study it prints, per seed:

- the share of strictly well-formed completions (:func:`rewards.format.migr_format_ok`) among the GRPO rollouts
  of the first and of the last ``--steps`` logged steps (``<arm>_grpo/completions.jsonl``): the first steps
  sample the SFT model (at the GRPO temperature), so a low share there was lost in SFT, not in GRPO;
- among the malformed test explanations (``eval_<arm>/predictions.jsonl``), how many open one modality's
  description and close it with the other modality's tag (``<aud_desc>...</vis_desc>``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rewards.format import migr_format_ok  # noqa: E402

# a description opened with one modality's tag and closed with the other's, with no tag of either in between
CROSSED = re.compile(
    r"<aud_desc>(?:(?!</aud_desc>|<vis_desc>|<aud_desc>).)*?</vis_desc>"
    r"|<vis_desc>(?:(?!</vis_desc>|<aud_desc>|<vis_desc>).)*?</aud_desc>",
    re.S,
)


def crossed_tags(text: str) -> bool:
    """True when a description segment is closed by the other modality's tag."""
    return CROSSED.search(text) is not None


def well_formed_share(completions: Iterable[str]) -> float | None:
    """Percentage of strictly well-formed completions (None for none)."""
    texts = list(completions)
    return 100.0 * sum(migr_format_ok(t) for t in texts) / len(texts) if texts else None


def rollout_shares(path: Path, steps: int) -> tuple[float | None, float | None]:
    """Well-formed share of the rollouts of the first and of the last ``steps`` logged steps of a GRPO run."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    logged = sorted({row["step"] for row in rows})
    first, last = set(logged[:steps]), set(logged[-steps:])
    return (
        well_formed_share(r["completion"] for r in rows if r["step"] in first),
        well_formed_share(r["completion"] for r in rows if r["step"] in last),
    )


def malformed_counts(path: Path) -> tuple[int, int]:
    """(malformed test explanations, those with crossed description tags) of an evaluation's predictions."""
    malformed = crossed = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        text = json.loads(line)["completion"] or ""
        if not migr_format_ok(text):
            malformed += 1
            crossed += crossed_tags(text)
    return malformed, crossed


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def report(study: Path, steps: int = 10) -> str:
    lines = []
    for regime in sorted(p for p in study.iterdir() if p.is_dir() and any(p.glob("seed_*"))):
        seeds = sorted(regime.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
        arms = sorted(
            {p.name[len("eval_") :] for s in seeds for p in s.glob("eval_*") if "_embedding" not in p.name}
        )
        for arm in arms:
            rollouts, malformed, crossed = [], 0, 0
            for seed in seeds:
                completions = seed / f"{arm}_grpo" / "completions.jsonl"
                if completions.is_file():
                    first, last = rollout_shares(completions, steps)
                    rollouts.append(f"{seed.name} {_percent(first)} -> {_percent(last)}")
                predictions = seed / f"eval_{arm}" / "predictions.jsonl"
                if predictions.is_file():
                    m, c = malformed_counts(predictions)
                    malformed, crossed = malformed + m, crossed + c
            share = f" ({100 * crossed / malformed:.0f}%)" if malformed else ""
            lines.append(
                f"{regime.name}/{arm}: well-formed rollouts, first -> last {steps} GRPO steps: "
                f"{', '.join(rollouts) or 'no GRPO run'}; malformed test explanations {malformed}, "
                f"with crossed description tags {crossed}{share}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", default="runs/study", help="the study's output folder")
    parser.add_argument("--steps", type=int, default=10, help="GRPO steps at each end (default 10)")
    args = parser.parse_args(argv)
    study = Path(args.study)
    if not study.is_dir():
        parser.error(f"{study}: no such folder (run python -m src.study first)")
    print(report(study, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
