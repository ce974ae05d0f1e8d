"""Every row of the README's table "What bad input gets", on real broken files, through training (the data
module a stage builds), the MIGR build and evaluation: the same error text or the same counted skip everywhere.

Each case writes a manifest of two good clips (lines 1-2) and the case on line 3 (in a real mp4/wav, a real
0-byte file, real bytes that are not UTF-8, ...). Training and evaluation run every case; the build, heavier,
runs one corpus holding every skipped case at once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.data.manifest import ManifestError
from src.data.media import MediaError
from tests.fixtures.media import grey_clip
from tests.helpers import compose, compose_train, corpus_overrides

pytestmark = pytest.mark.slow

XFF = os.fsdecode(b"clip_\xff.mp4")  # a file name that is not UTF-8 (bytes 0xff)


def _row(sample_id: str, video: str, **fields: object) -> dict:
    return {"id": sample_id, "label": "happy", "dataset": "synth", "split": "train", "video": video, **fields}


@dataclass(frozen=True)
class Case:
    """A README row: what line 3 holds, and what it gets.

    ``error``: the message (regex) under both policies; ``skip``: the skip reason under ``on_error=skip`` and
    ``raise_error`` the message under ``raise``; neither: the clip is used (``short``: counted as short).
    """

    name: str
    write: Callable[[Path], bytes]  # writes the case's files, returns line 3 of the manifest (bytes)
    error: str | None = None
    skip: str | None = None
    raise_error: str | None = None
    short: bool = False
    shown: str | None = None  # how the clip's file appears in messages and reports


def _line(row: dict) -> bytes:
    return json.dumps(row).encode("utf-8")


def _truncated(folder: Path) -> bytes:
    data = grey_clip(folder / "bad.mp4").read_bytes()
    (folder / "bad.mp4").write_bytes(data[: len(data) // 2])
    return _line(_row("c", "bad.mp4"))


def _empty(folder: Path) -> bytes:
    (folder / "bad.mp4").write_bytes(b"")
    return _line(_row("c", "bad.mp4"))


def _random(folder: Path) -> bytes:
    (folder / "bad.mp4").write_bytes(bytes(range(256)) * 8)
    return _line(_row("c", "bad.mp4"))


def _no_audio(folder: Path) -> bytes:
    grey_clip(folder / "bad.mp4", audio_seconds=None)
    return _line(_row("c", "bad.mp4"))


def _short(folder: Path) -> bytes:
    grey_clip(folder / "short.mp4", frames=2, fps=10, audio_seconds=0.2)  # 0.2 s: 2 frames of 8
    return _line(_row("c", "short.mp4"))


def _missing(folder: Path) -> bytes:
    return _line(_row("c", "gone.mp4"))


def _non_utf8_name(folder: Path) -> bytes:
    grey_clip(Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(XFF)))))
    return _line(_row("c", XFF))  # JSON writes the byte as the escape "\udcff"


def _non_utf8_name_truncated(folder: Path) -> bytes:
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(XFF))))
    data = grey_clip(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _line(_row("c", XFF))


def _raw_bytes(folder: Path) -> bytes:
    return _line(_row("c", "PLACEHOLDER")).replace(b"PLACEHOLDER", b"clip_\xff.mp4")


def _label(value: object) -> Callable[[Path], bytes]:
    def write(folder: Path) -> bytes:
        grey_clip(folder / "c.mp4")
        return _line(_row("c", "c.mp4", label=value))

    return write


def _good(folder: Path) -> bytes:
    grey_clip(folder / "c.mp4")
    return _line(_row("c", "c.mp4"))


LINE3 = r"m\.jsonl:3: "
CASES = [
    Case(
        "truncated mp4", _truncated, skip="unreadable", raise_error=LINE3 + r"sample 'c': .*bad\.mp4: unreadable"
    ),
    Case("empty file", _empty, skip="empty file", raise_error=LINE3 + r"sample 'c': .*bad\.mp4: empty file"),
    Case("random bytes", _random, skip="unreadable", raise_error=LINE3 + r"sample 'c': .*bad\.mp4: unreadable"),
    Case("no audio", _no_audio, skip="no audio track", raise_error=LINE3 + r"sample 'c': .*: no audio track"),
    Case("missing file", _missing, skip="missing file", raise_error=LINE3 + r"video file not found: .*gone\.mp4"),
    Case("0.2 s clip", _short, short=True),
    Case("non-UTF8 name", _non_utf8_name, shown=r"clip_\xff.mp4"),
    Case(
        "non-UTF8 name, truncated",
        _non_utf8_name_truncated,
        skip="unreadable",
        raise_error=LINE3 + r"sample 'c': .*clip_\\xff\.mp4: unreadable",
        shown=r"clip_\xff.mp4",
    ),
    Case("raw bytes", _raw_bytes, error=LINE3 + r"not UTF-8: byte 0xff at column \d+"),
    Case("label None", _label("None"), error=LINE3 + r"label 'None' is not an emotion of dataset 'synth'"),
    Case("label null", _label("null"), error=LINE3 + r"label 'null' is not an emotion"),
    Case("label empty", _label(""), error=LINE3 + r"missing required field\(s\) label"),
    Case("label number", _label(3), error=LINE3 + r"label 3 is not an emotion"),
    Case("BOM", _good),
    Case("CRLF", _good),
]


def write_case(folder: Path, case: Case) -> Path:
    """The case's manifest ``folder/m.jsonl`` (two good clips first)."""
    folder.mkdir(parents=True, exist_ok=True)
    grey_clip(folder / "a.mp4")
    (folder / "b.mp4").write_bytes((folder / "a.mp4").read_bytes())
    lines = [_line(_row("a", "a.mp4")), _line(_row("b", "b.mp4")), case.write(folder)]
    newline = b"\r\n" if case.name == "CRLF" else b"\n"
    data = newline.join(lines) + newline
    if case.name == "BOM":
        data = b"\xef\xbb\xbf" + data
    (folder / "m.jsonl").write_bytes(data)
    return folder / "m.jsonl"


@pytest.fixture(scope="module")
def description():
    """The tiny model's description (tokenizers, shapes) a training stage builds its data module from."""
    from src.models.factory import ModelSpec, describe
    from src.stages.runner import to_dict

    return describe(ModelSpec(**to_dict(compose_train("stage=sft").model)), None)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_training_gets_the_tables_answer(case: Case, on_error: str, description, tmp_path, caplog) -> None:
    from src.stages.runner import build_datamodule

    manifest = write_case(tmp_path, case)
    cfg = compose_train("stage=sft", *corpus_overrides(manifest), f"data.on_error={on_error}")
    datamodule = build_datamodule(cfg, description)
    message = case.error or (case.raise_error if on_error == "raise" else None)
    if message is not None:
        with pytest.raises((ManifestError, MediaError), match=message):
            datamodule.setup("fit")
        return
    with caplog.at_level("WARNING"):
        datamodule.setup("fit")
    kept = [sample.id for sample in datamodule.splits["train"]]
    report = datamodule.media.report
    if case.skip:
        assert kept == ["a", "b"]
        (record,) = report.skipped
        assert (record.sample_id, record.reason, record.where) == ("c", case.skip, f"{manifest}:3")
    else:
        assert kept == ["a", "b", "c"] and not report.skipped
    assert [clip.sample_id for clip in report.short_clips] == (["c"] if case.short else [])
    if case.skip or case.short:  # the summary reaches the log (and, through it, train.log: always encodable)
        assert report.summary() in caplog.text
        report.summary().encode("utf-8")
    if case.shown and case.skip:
        assert case.shown in report.summary()


def _slug(case: Case) -> str:
    return re.sub(r"[^a-z0-9]+", "_", case.name.lower()).strip("_")


@pytest.fixture(scope="module")
def combined(tmp_path_factory) -> Path:
    """One manifest holding every case that is not a manifest error (each in its own folder, id = its slug),
    after the two good clips: the heavier commands (evaluation, build) run it once for all the rows."""
    root = tmp_path_factory.mktemp("combined")
    lines = [_line(_row("a", "a.mp4")), _line(_row("b", "b.mp4"))]
    grey_clip(root / "a.mp4")
    (root / "b.mp4").write_bytes((root / "a.mp4").read_bytes())
    for case in CASES:
        if case.error is None:
            folder = root / _slug(case)
            folder.mkdir()
            row = json.loads(case.write(folder))
            lines.append(_line({**row, "id": _slug(case), "video": f"{_slug(case)}/{row['video']}"}))
    (root / "m.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root / "m.jsonl"


def _combined_line(case: Case) -> int:
    return 3 + [c for c in CASES if c.error is None].index(case)


def _evaluate(manifest: Path, model: Path, on_error: str, out: Path):
    from src.evaluation.runner import run_evaluation
    from tests.evaluation.conftest import eval_config

    overrides = (f"on_error={on_error}", "max_new_tokens=3", "attention.enabled=false", "first_tag=false")
    overrides = (*overrides, "limit=null", "batch_size=8")
    return run_evaluation(eval_config(manifest, model, out, *overrides))


@pytest.fixture(scope="module")
def evaluated(combined, tiny_export):
    """The combined corpus evaluated under on_error=skip: the result, metrics.json's run and report.md."""
    out = combined.parent / "eval"
    result = _evaluate(combined, tiny_export, "skip", out)
    run = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["run"]
    return result, run, (out / "report.md").read_text(encoding="utf-8")  # whole, and UTF-8


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_evaluation_gets_the_tables_answer(case: Case, combined, evaluated, tiny_export, tmp_path) -> None:
    if case.error is not None:  # manifest errors stop the evaluation before any model is loaded
        for on_error in ("raise", "skip"):
            with pytest.raises(ManifestError, match=case.error):
                _evaluate(write_case(tmp_path, case), tiny_export, on_error, tmp_path / "eval")
        return
    _, run, report = evaluated
    slug, where = _slug(case), f"{combined}:{_combined_line(case)}"
    skipped = {s["sample_id"]: s for s in run["skipped"]}
    if case.skip:
        assert (skipped[slug]["reason"], skipped[slug]["where"]) == (case.skip, where)
        assert re.search(rf"\| {slug} \| {re.escape(where)} \| .* \| {case.skip} \|", report)
    else:
        assert slug not in skipped
    short = [clip["sample_id"] for clip in run["short_clips"]]
    assert (slug in short) == case.short and (f"| {slug} |" in report) == bool(case.skip or case.short)
    if case.shown and case.skip:
        assert case.shown in skipped[slug]["path"] and case.shown in report


def test_evaluation_raises_naming_the_manifest_line(tiny_export, tmp_path) -> None:
    """on_error=raise: the first clip that cannot be decoded stops the evaluation (the line, sample and file)."""
    case = CASES[0]  # truncated mp4
    with pytest.raises(MediaError, match=case.raise_error):
        _evaluate(write_case(tmp_path, case), tiny_export, "raise", tmp_path / "eval")


def test_evaluated_counts(evaluated) -> None:
    result, run, _ = evaluated
    skips = [case for case in CASES if case.skip]
    used = [case for case in CASES if case.error is None and not case.skip]
    assert (result.skipped, result.generated) == (len(skips), 2 + len(used))
    assert len(run["skipped"]) == len(skips)


def test_the_build_gets_the_tables_answer(combined, tiny_export, tmp_path) -> None:
    """The MIGR build on the combined corpus under on_error=skip: every row's skip counted with its line."""
    from src.migr.build import build

    cfg = compose(
        "build",
        f"data.manifest={combined}",
        "data.synth=null",
        "data.on_error=skip",
        f"model_path={tiny_export}",
        f"out_dir={tmp_path / 'build'}",
        f"runs_dir={tmp_path}",
        "importance.batch_size=8",
        "splits=[train]",
    )
    summary = build(cfg)
    skips = [case for case in CASES if case.skip]
    expected: dict[str, int] = {}
    for case in skips:
        expected[case.skip] = expected.get(case.skip, 0) + 1  # type: ignore[index]
    assert summary["skipped_by_reason"] == expected
    assert summary["clips"] == 2 + len([case for case in CASES if case.error is None and not case.skip])
    report = (tmp_path / "build" / "report.md").read_text(encoding="utf-8")
    for case in skips:
        assert f"{_slug(case)}  " in report and f"({combined}:{_combined_line(case)})" in report
    assert r"clip_\xff.mp4" in report
