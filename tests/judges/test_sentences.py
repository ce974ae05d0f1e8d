"""The committed sentence set is what the generator writes, and its held-out splits share no wording."""

from __future__ import annotations

import json

import pytest

from src.judges.sentence_cues import CUES
from src.judges.sentences import DEFAULT_PATH, generate, main, read_sentences


def test_committed_file_is_the_generator_output():
    assert read_sentences(DEFAULT_PATH) == generate()


def test_held_out_sentences_use_no_train_cue_phrase():
    rows = read_sentences(DEFAULT_PATH)
    train_text = " ".join(row["text"] for row in rows if row["split"] == "train")
    for concept, cues in CUES.items():
        for phrase in cues.visual[1] + cues.audio[1]:
            for possessive in ("his", "her"):
                text = phrase.replace("{pos}", possessive)
                assert text not in train_text, f"{concept}: held-out cue {text!r} appears in train sentences"
    assert not {r["text"] for r in rows if r["split"] == "train"} & {
        r["text"] for r in rows if r["split"] != "train"
    }


def test_every_concept_has_every_split():
    rows = read_sentences(DEFAULT_PATH)
    counts = {(row["concept"], row["split"]) for row in rows}
    assert counts == {(concept, split) for concept in CUES for split in ("train", "test", "handwritten")}


def test_generation_is_deterministic_and_writes_jsonl(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    main(["--out", str(out), "--per-concept-train", "3", "--per-concept-test", "2", "--seed", "5"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == generate(per_concept_train=3, per_concept_test=2, seed=5)
    assert "wrote" in capsys.readouterr().out


def test_bad_lines_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "ok", "concept": "happy", "split": "train"}\n{"text": "x", "concept": "sad", "split": "dev"}\n'
    )
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a JSON object .* split must be one of"):
        read_sentences(path)
