"""The labelled sentence set the embedding judge's heads are trained and tested on (written here, no download).

Explanations in MIGR's format describe visual cues, vocal cues, and a conclusion. This module writes such
sentences for the 11 emotion concepts of MAFW (which include DFEW's 7 and, with worry folded into anxiety,
EMER's 5) from hand-written cue phrases and sentence templates, plus a few free-form hand-written sentences.

Splits, so held-out accuracy measures generalisation to new wording rather than memorised templates:

- ``train``: train cue phrases x train templates x train subjects;
- ``test``: *held-out* cue phrases, emotion words, templates and subjects only (nothing shared with train but the
  concept);
- ``handwritten``: free-form sentences in none of the templates (test only).

Regenerate the committed file (deterministic for a seed)::

    python -m src.judges.sentences --out src/judges/data/emotion_sentences.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from src.judges.sentence_cues import CUES, HANDWRITTEN, Cues

DEFAULT_PATH = Path(__file__).parent / "data" / "emotion_sentences.jsonl"
SPLITS = ("train", "test", "handwritten")

# (subject, pronoun, possessive)
_TRAIN_SUBJECTS = (
    ("the woman", "she", "her"),
    ("the man", "he", "his"),
    ("the girl", "she", "her"),
    ("the old man", "he", "his"),
    ("she", "she", "her"),
    ("he", "he", "his"),
)
_TEST_SUBJECTS = (("the speaker", "he", "his"), ("the young woman", "she", "her"), ("the boy", "he", "his"))

# {S} subject (capitalised), {s} subject, {p} possessive, {v} visual cue, {a} audio cue, {adj}, {noun}.
_TRAIN_TEMPLATES = (
    "{S} {v}.",
    "In the video, {s} {v}.",
    "{S} {v}, which suggests {noun}.",
    "From the visual cues, {s} {v}.",
    "{P} voice {a}.",
    "The speaker's voice {a}.",
    "In the audio, {p} voice {a}, indicating {noun}.",
    "{S} seems {adj}.",
    "Overall, {s} is {adj}.",
    "{S} {v}, so the emotion is {noun}.",
    "Since {p} voice {a}, {s} appears {adj}.",
)
_TEST_TEMPLATES = (
    "We can see that {s} {v}.",
    "On screen, {s} {v} throughout the clip.",
    "Listening closely, {p} voice {a}.",
    "Throughout the clip, the voice {a}.",
    "Taken together, the clues show {noun}.",
    "I think {s} feels {adj}.",
    "Both cues point to {noun}: {s} {v}.",
)


def _fill(template: str, cues: Cues, subject: tuple[str, str, str], rng: random.Random, held_out: bool) -> str:
    """One sentence from ``template`` with cues of the split (``held_out`` picks the test half of each list)."""
    name, _, possessive = subject

    def pick(items: tuple[str, ...]) -> str:
        return rng.choice(items).replace("{pos}", possessive)

    part = 1 if held_out else 0
    values = {
        "s": name,
        "S": name[0].upper() + name[1:],
        "p": possessive,
        "P": possessive.capitalize(),
        "v": pick(cues.visual[part]),
        "a": pick(cues.audio[part]),
        "adj": pick(cues.adjectives[part]),
        "noun": pick(cues.nouns[part]),
    }
    return template.format(**values)


def generate(*, per_concept_train: int = 200, per_concept_test: int = 50, seed: int = 0) -> list[dict[str, str]]:
    """Rows ``{"text", "concept", "split"}``: templated train/test sentences and the hand-written ones."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for concept, cues in CUES.items():
        for split, count, templates, subjects in (
            ("train", per_concept_train, _TRAIN_TEMPLATES, _TRAIN_SUBJECTS),
            ("test", per_concept_test, _TEST_TEMPLATES, _TEST_SUBJECTS),
        ):
            seen: set[str] = set()
            attempts = 0
            while len(seen) < count and attempts < count * 50:
                attempts += 1
                text = _fill(rng.choice(templates), cues, rng.choice(subjects), rng, held_out=split == "test")
                if text not in seen:
                    seen.add(text)
                    rows.append({"text": text, "concept": concept, "split": split})
        rows.extend({"text": text, "concept": concept, "split": "handwritten"} for text in HANDWRITTEN[concept])
    return rows


def read_sentences(path: str | Path = DEFAULT_PATH) -> list[dict[str, str]]:
    """Rows of a sentence file; a malformed line fails with its path and line number."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not (
                    isinstance(row["text"], str) and isinstance(row["concept"], str) and row["split"] in SPLITS
                ):
                    raise ValueError(f"split must be one of {SPLITS}")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"{path}:{number}: expected a JSON object with string `text`, `concept` and `split` in {SPLITS} "
                    f"({type(error).__name__}: {error})"
                ) from None
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.judges.sentences", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--per-concept-train", type=int, default=200)
    parser.add_argument("--per-concept-test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = generate(
        per_concept_train=args.per_concept_train, per_concept_test=args.per_concept_test, seed=args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {split: sum(row["split"] == split for row in rows) for split in SPLITS}
    print(f"wrote {len(rows)} sentences to {args.out}: {counts}")


if __name__ == "__main__":
    main()
