"""Every row of the README's table "What bad input gets", on real broken files, through each command that reads
clips: training (:func:`src.stages.runner.run_stage`, what ``python -m src.train`` runs), the MIGR build
(:func:`src.migr.build.build`) and evaluation (:func:`src.evaluation.runner.run_evaluation`), under both error
policies; and single clips through ``python -m src.explain``.

The table's rows are read from README.md, and each test is parametrised by them (ids = the rows' first cells):
a row without cases here, or a case whose row the README lost, fails. Every case is a real file the test writes
(a truncated mp4, a 0-byte file, bytes that are not UTF-8, ...).

* An error (a manifest problem under either policy, a clip problem under ``on_error=raise``) stops a command
  before any training step or generation, so each case runs by itself: a manifest of two good clips (lines 1-2)
  and the case on line 3, whose error must name the file, the line, the sample and what was expected.
* Everything that runs to the end runs once per command (module fixtures): under ``skip`` over a corpus holding
  every clip case at once (each under its own id), under ``raise`` over the cases that are used; both manifests
  begin with a UTF-8 byte-order mark and end their lines with CRLF. Each row's test reads its clips' outcome:
  kept, or skipped with its reason and manifest line, or counted as short.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.data.manifest import ManifestError
from src.data.media import MediaError
from tests.fixtures.media import grey_clip
from tests.helpers import REPO, compose, compose_train, corpus_overrides

pytestmark = pytest.mark.slow

XFF = os.fsdecode(b"clip_\xff.mp4")  # a file name that is not UTF-8 (bytes 0xff)
SHOWN = r"clip_\xff.mp4"  # how it appears in messages, logs and reports


def readme_rows() -> list[str]:
    """The first cell of each row of the README's table "What bad input gets"."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("#### What bad input gets", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [row[2:].split(" | ", 1)[0].strip() for row in rows]
    assert cells[0] == "Case", f"the table's header changed: {rows[0]}"
    return cells[1:]


def _row(sample_id: str, video: str, **fields: object) -> dict:
    return {"id": sample_id, "label": "happy", "dataset": "synth", "split": "train", "video": video, **fields}


def _line(row: dict) -> bytes:
    return json.dumps(row).encode("utf-8")


@dataclass(frozen=True)
class Case:
    """One variant of a README row: what line 3 holds, and what it gets.

    ``error``: the message (regex) under both policies (a manifest problem); ``skip``: the reason under
    ``on_error=skip`` and ``raise_error`` the message under ``raise`` (a clip problem); neither: the clip is used
    (``short``: counted as short). ``explain``: the message ``src.explain`` gives for the clip when it differs
    from the evaluation's (None: the same).
    """

    row: str  # the README row (its first cell)
    name: str
    write: Callable[[Path], bytes]  # writes the case's files, returns line 3 of the manifest (bytes)
    error: str | None = None
    skip: str | None = None
    raise_error: str | None = None
    short: bool = False
    shown: str | None = None  # how the clip's file appears in messages and reports
    explain: str | None = None


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


def _xff_path(folder: Path) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(XFF))))


def _non_utf8_name(folder: Path) -> bytes:
    grey_clip(_xff_path(folder))
    return _line(_row("c", XFF))  # JSON writes the byte as the escape "\udcff"


def _non_utf8_name_truncated(folder: Path) -> bytes:
    data = grey_clip(_xff_path(folder)).read_bytes()
    _xff_path(folder).write_bytes(data[: len(data) // 2])
    return _line(_row("c", XFF))


def _raw_bytes(folder: Path) -> bytes:
    return _line(_row("c", "PLACEHOLDER")).replace(b"PLACEHOLDER", b"clip_\xff.mp4")


def _good_clip(folder: Path, **fields: object) -> bytes:
    grey_clip(folder / "c.mp4")
    return _line(_row("c", "c.mp4", **fields))


def _fields(**fields: object) -> Callable[[Path], bytes]:
    return lambda folder: _good_clip(folder, **fields)


def _without(key: str) -> Callable[[Path], bytes]:
    def write(folder: Path) -> bytes:
        row = json.loads(_good_clip(folder))
        del row[key]
        return _line(row)

    return write


def _invalid_json(folder: Path) -> bytes:
    return _good_clip(folder)[:-1]  # the closing brace cut off


def _good(folder: Path) -> bytes:
    return _good_clip(folder)


ROWS = readme_rows()  # the tests' parameters: a row added to the README without cases here fails
BYTES = "manifest bytes that are not UTF-8"
MANIFEST = "invalid JSON, a missing field, a duplicate id, an unknown dataset or split"
LABEL = 'a label that is not an emotion of the dataset (`"None"`, `"null"`, `3`, `"blue"`)'
MISSING = "a media file that does not exist"
EMPTY = "an empty (0-byte) file"
CORRUPT = "a truncated or corrupt mp4, random bytes"
NO_AUDIO = "a video without a sound track"
SHORT = "a clip shorter than the model's 8 frames (0.2 s)"
NAME = 'a file name that is not UTF-8 (written `"clip_\\udcff.mp4"` in JSON)'
BOM_CRLF = "a UTF-8 byte-order mark, CRLF line ends"
LINE3 = r"m\.jsonl:3: "
CLIP3 = LINE3 + r"sample 'c': "
UNREADABLE = (
    CLIP3 + r".*bad\.mp4: unreadable \(.+\); expected a video .* that decord / ffmpeg can decode"
)  # a truncated mp4 and random bytes alike
LABELS = r"expected one of its labels \(.*\) or a synonym"
CASES = [
    Case(BYTES, "raw bytes", _raw_bytes, error=LINE3 + r"not UTF-8: byte 0xff at column \d+; save the manifest as UTF-8"),
    Case(MANIFEST, "invalid JSON", _invalid_json, error=LINE3 + r"invalid JSON \(.* at column \d+\)"),
    Case(MANIFEST, "missing field", _without("split"), error=LINE3 + r"missing required field\(s\) split; found fields"),
    Case(MANIFEST, "duplicate id", _fields(id="a"), error=LINE3 + r"duplicate id 'a' \(first seen on line 1\)"),
    Case(MANIFEST, "unknown dataset", _fields(dataset="dfw"), error=LINE3 + r"unknown dataset 'dfw'; known datasets: "),
    Case(MANIFEST, "unknown split", _fields(split="tran"), error=LINE3 + r"split must be one of train, val, test; found 'tran'"),
    Case(LABEL, "label None", _fields(label="None"), error=LINE3 + r"label 'None' is not an emotion of dataset 'synth'; " + LABELS),
    Case(LABEL, "label null", _fields(label="null"), error=LINE3 + r"label 'null' is not an emotion of dataset 'synth'; " + LABELS),
    Case(LABEL, "label empty", _fields(label=""), error=LINE3 + r"missing required field\(s\) label"),
    Case(LABEL, "label 3", _fields(label=3), error=LINE3 + r"label 3 is not an emotion of dataset 'synth'; " + LABELS),
    Case(LABEL, "label blue", _fields(label="blue"), error=LINE3 + r"label 'blue' is not an emotion of dataset 'synth'; " + LABELS),
    Case(
        MISSING, "missing file", _missing, skip="missing file",
        raise_error=CLIP3 + r"video file not found: .*gone\.mp4; expected an existing file",
        explain=r"gone\.mp4: no such file or folder",
    ),
    Case(
        EMPTY, "empty file", _empty, skip="empty file",
        raise_error=CLIP3 + r".*bad\.mp4: empty file \(0 bytes\); expected a video or audio file with content",
    ),
    Case(CORRUPT, "truncated mp4", _truncated, skip="unreadable", raise_error=UNREADABLE),
    Case(CORRUPT, "random bytes", _random, skip="unreadable", raise_error=UNREADABLE),
    Case(
        NO_AUDIO, "no audio", _no_audio, skip="no audio track",
        raise_error=CLIP3 + r".*bad\.mp4: no audio track \(.+\); expected a sound track",
        explain="",  # explained from its frames (see test_explain_gets_the_tables_answer)
    ),
    Case(SHORT, "0.2 s clip", _short, short=True),
    Case(NAME, "non-UTF8 name", _non_utf8_name, shown=SHOWN),
    Case(
        NAME, "non-UTF8 name, truncated", _non_utf8_name_truncated, skip="unreadable",
        raise_error=CLIP3 + r".*" + re.escape(SHOWN) + r": unreadable \(.+\); expected a video",
        shown=SHOWN,
    ),
    Case(BOM_CRLF, "BOM and CRLF", _good),
]  # fmt: skip
CLIP_CASES = [case for case in CASES if case.error is None]  # in the combined corpora (BOM, CRLF: every one)
USED = [case for case in CLIP_CASES if case.skip is None]


def cases_of(row: str) -> list[Case]:
    cases = [case for case in CASES if case.row == row]
    assert cases, f"README row {row!r} of 'What bad input gets' has no case in {__file__}"
    return cases


def test_the_readme_table_and_the_cases_agree_row_for_row() -> None:
    assert [row for row in ROWS if not any(case.row == row for case in CASES)] == []  # a row without cases
    assert [case.name for case in CASES if case.row not in ROWS] == []  # a case whose row the README lost


def write_case(folder: Path, case: Case) -> Path:
    """The case's manifest ``folder/m.jsonl``: two good clips, then the case on line 3."""
    folder.mkdir(parents=True, exist_ok=True)
    grey_clip(folder / "a.mp4")
    (folder / "b.mp4").write_bytes((folder / "a.mp4").read_bytes())
    lines = [_line(_row("a", "a.mp4")), _line(_row("b", "b.mp4")), case.write(folder)]
    bom, newline = (b"\xef\xbb\xbf", b"\r\n") if case.row == BOM_CRLF else (b"", b"\n")
    (folder / "m.jsonl").write_bytes(bom + newline.join(lines) + newline)
    return folder / "m.jsonl"


def _slug(case: Case) -> str:
    return re.sub(r"[^a-z0-9]+", "_", case.name.lower()).strip("_")


def write_combined(root: Path, cases: list[Case]) -> Path:
    """``root/m.jsonl``: a BOM, the two good clips, then each case in its own folder (id = its slug), CRLF."""
    root.mkdir(parents=True)
    grey_clip(root / "a.mp4")
    (root / "b.mp4").write_bytes((root / "a.mp4").read_bytes())
    lines = [_line(_row("a", "a.mp4")), _line(_row("b", "b.mp4"))]
    for case in cases:
        folder = root / _slug(case)
        folder.mkdir()
        row = json.loads(case.write(folder))
        lines.append(_line({**row, "id": _slug(case), "video": f"{_slug(case)}/{row['video']}"}))
    (root / "m.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    return root / "m.jsonl"


def where(manifest: Path, cases: list[Case], case: Case) -> str:
    return f"{manifest}:{3 + cases.index(case)}"


@dataclass
class Outcome:
    """What one command did with a combined corpus: the ids it used, skipped (id -> (reason, where, path)) and
    counted as short, and the text it wrote for people (log, report)."""

    manifest: Path
    cases: list[Case]
    kept: list[str]
    skipped: dict[str, tuple[str, str, str]]
    short: list[str]
    text: str


# ---- training ------------------------------------------------------------------------------------------------
def train_config(manifest: Path, runs: Path, on_error: str):
    return compose_train(
        "stage=base",
        *corpus_overrides(manifest),
        f"runs_dir={runs}",
        f"data.on_error={on_error}",
        "data.batch_size=2",
        "data.num_workers=0",
        "stage.max_steps=1",
        "logger=none",
        "trainer.limit_val_batches=0",
    )


@contextlib.contextmanager
def warnings_logged() -> Iterator[list[str]]:
    """The WARNING records of the ``src`` loggers while the block runs (module fixtures cannot use caplog)."""
    lines: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler, logger = Handler(logging.WARNING), logging.getLogger("src")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def train(manifest: Path, on_error: str, monkeypatch) -> Outcome:
    """One training run (max_steps=1) of the tiny model; the data module it built is read back."""
    import src.stages.runner as runner

    modules = []
    real = runner.build_datamodule
    monkeypatch.setattr(runner, "build_datamodule", lambda *a, **k: modules.append(real(*a, **k)) or modules[-1])
    with warnings_logged() as logged:
        runner.run_stage(train_config(manifest, manifest.parent / f"runs_{on_error}", on_error))
    (datamodule,) = modules
    report = datamodule.media.report
    return Outcome(
        manifest,
        [],
        [sample.id for sample in datamodule.splits["train"]],
        {r.sample_id: (r.reason, r.where, r.path) for r in report.skipped},
        [clip.sample_id for clip in report.short_clips],
        "\n".join(logged),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Outcome]:
    """Training under each policy: ``skip`` over every clip case, ``raise`` over the used ones."""
    outcomes = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for policy, cases in (("skip", CLIP_CASES), ("raise", USED)):
            manifest = write_combined(tmp_path_factory.mktemp("train") / "corpus", cases)
            outcomes[policy] = train(manifest, policy, monkeypatch)
            outcomes[policy].cases = cases
    return outcomes


# ---- the build -------------------------------------------------------------------------------------------------
def build_config(manifest: Path, model: Path, on_error: str):
    return compose(
        "build",
        f"data.manifest={manifest}",
        "data.synth=null",
        f"data.cache_dir={manifest.parent / '.cache'}",
        f"data.on_error={on_error}",
        f"model_path={model}",
        f"out_dir={manifest.parent / f'build_{on_error}'}",
        f"runs_dir={manifest.parent}",  # (the feature cache): not under ./runs
        "importance.batch_size=8",
        "splits=[train]",
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_export) -> dict[str, Outcome]:
    from src.migr.build import build

    outcomes = {}
    for policy, cases in (("skip", CLIP_CASES), ("raise", USED)):
        manifest = write_combined(tmp_path_factory.mktemp("build") / "corpus", cases)
        summary = build(build_config(manifest, tiny_export, policy))
        out = manifest.parent / f"build_{policy}"
        kept = [json.loads(line)["id"] for line in (out / "annotated_manifest.jsonl").read_text().splitlines()]
        report = (out / "report.md").read_text(encoding="utf-8")  # whole, and UTF-8
        skipped = {}
        for line in summary["media_report"].splitlines():  # "  <id>  <path>  <reason> (<detail>)  (<where>)"
            found = re.fullmatch(r"  (\S+)  (.+?)  ([a-z ]+?)(?: \(.*\))?  \((.+)\)", line)
            if found:
                skipped[found[1]] = (found[3], found[4], found[2])
        assert len(skipped) == summary["skipped"], summary["media_report"]
        short = re.findall(r"(\w+) \(\d+\)", summary["media_report"].split("fewer than", 1)[-1])
        outcomes[policy] = Outcome(manifest, cases, kept, skipped, short if "fewer than" in report else [], report)
    return outcomes


# ---- evaluation ------------------------------------------------------------------------------------------------
def evaluate(manifest: Path, model: Path, on_error: str, out: Path):
    from src.evaluation.runner import run_evaluation
    from tests.evaluation.conftest import eval_config

    overrides = (f"on_error={on_error}", "max_new_tokens=3", "attention.enabled=false", "first_tag=false")
    return run_evaluation(eval_config(manifest, model, out, *overrides, "limit=null", "batch_size=8"))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_export) -> dict[str, Outcome]:
    outcomes = {}
    for policy, cases in (("skip", CLIP_CASES), ("raise", USED)):
        manifest = write_combined(tmp_path_factory.mktemp("evaluate") / "corpus", cases)
        out = manifest.parent / "eval"
        result = evaluate(manifest, tiny_export, policy, out)
        run = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["run"]
        kept = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
        skipped = {s["sample_id"]: (s["reason"], s["where"], s["path"]) for s in run["skipped"]}
        assert result.skipped == len(skipped)
        report = (out / "report.md").read_text(encoding="utf-8")  # whole, and UTF-8
        short = [clip["sample_id"] for clip in run["short_clips"]]
        outcomes[policy] = Outcome(manifest, cases, kept, skipped, short, report)
    return outcomes


# ---- the checks, per README row ------------------------------------------------------------------------------
def check_outcome(outcome: Outcome, case: Case, policy: str) -> None:
    """The combined run's answer for ``case``: kept (as short or not), or skipped with its reason and line."""
    slug = _slug(case)
    if case not in outcome.cases:
        return  # a skipped case is in the raise corpus by itself (its error is checked per case)
    assert outcome.kept[:2] == ["a", "b"], "the BOM-prefixed first line and the CRLF line ends read as rows"
    if case.skip:
        assert slug not in outcome.kept
        reason, line, path = outcome.skipped[slug]
        assert (reason, line) == (case.skip, where(outcome.manifest, outcome.cases, case)), (policy, slug)
        assert slug in outcome.text and line in outcome.text  # listed for people, with its line
        if case.shown:
            assert case.shown in path and case.shown in outcome.text
    else:
        assert slug in outcome.kept and slug not in outcome.skipped
    assert (slug in outcome.short) == case.short
    outcome.text.encode("utf-8")  # whatever the file names, the account is writable


def errors(case: Case, policy: str) -> str | None:
    return case.error or (case.raise_error if policy == "raise" else None)


def check_row(row: str, policy: str, outcomes: dict[str, Outcome], run: Callable[[Path], object], folder: Path):
    """Each case of ``row`` under ``policy``: its outcome in the shared run, or (an error) ``run`` on the case's
    own manifest raising the table's message."""
    for case in cases_of(row):
        message = errors(case, policy)
        if message is None:
            check_outcome(outcomes[policy], case, policy)
            continue
        manifest = write_case(folder / _slug(case), case)
        with pytest.raises((ManifestError, MediaError), match=message):
            run(manifest)


@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("row", ROWS)
def test_training_gets_the_tables_answer(row: str, policy: str, trained, tmp_path, monkeypatch) -> None:
    """Errors come before the model is built (a manifest problem) or before any training step (a clip's)."""
    check_row(row, policy, trained, lambda manifest: train(manifest, policy, monkeypatch), tmp_path)
    if policy == "skip":  # the account reaches the log (train.log)
        assert "media problems during this run" in trained["skip"].text


@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("row", ROWS)
def test_the_build_gets_the_tables_answer(row: str, policy: str, built, tiny_export, tmp_path) -> None:
    """Errors come before the model is loaded (a manifest problem) or before Modality Importance (a clip's)."""
    from src.migr.build import build

    check_row(row, policy, built, lambda manifest: build(build_config(manifest, tiny_export, policy)), tmp_path)


@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("row", ROWS)
def test_evaluation_gets_the_tables_answer(row: str, policy: str, evaluated, tiny_export, tmp_path) -> None:
    """Errors come before the model is loaded (a manifest problem) or with the first batch (a clip's)."""
    check_row(
        row,
        policy,
        evaluated,
        lambda manifest: evaluate(manifest, tiny_export, policy, manifest.parent / "eval"),
        tmp_path,
    )


# ---- src.explain -------------------------------------------------------------------------------------------------
def explain_cli(paths: list[Path], model: Path, *overrides: str) -> list[str]:
    """The argv of ``python -m src.explain PATHS model_path=MODEL ... --quiet`` (small settings)."""
    cache = model.parent / "explain_cache"
    argv = [*map(str, paths), f"model_path={model}", "max_new_tokens=3", f"data.cache_dir={cache}", "--quiet"]
    return [*argv, f"runs_dir={model.parent / 'explain_runs'}", "attention.enabled=false", *overrides]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run ``src.explain``'s entry point in this process: (exit code, what it printed to stderr)."""
    from src.explain import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def explained(tmp_path_factory, tiny_export) -> tuple[dict[str, dict], str]:
    """One ``src.explain`` run over every clip the table says is used, and a video without a sound track, each
    known from the (BOM-prefixed, CRLF) manifest: the results by id, and the warnings logged."""
    from src.explain import main

    cases = [*USED, *(case for case in CLIP_CASES if case.skip == "no audio track")]
    manifest = write_combined(tmp_path_factory.mktemp("explain") / "corpus", cases)
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8-sig").splitlines()]
    clips = [manifest.parent / row["video"] for row in rows if row["id"] not in ("a", "b")]
    out = manifest.parent / "explained.jsonl"
    with warnings_logged() as logged:
        assert main(explain_cli(clips, tiny_export, f"manifest={manifest}", "--json", str(out))) == 0
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return {result["id"]: result for result in results}, "\n".join(logged)


@pytest.mark.parametrize("row", ROWS)
def test_explain_gets_the_tables_answer(row: str, explained, tiny_export, tmp_path, capsys) -> None:
    """A clip given to ``python -m src.explain`` goes through the same layer: a problem of its ``manifest=`` and a
    clip that cannot be decoded get the very text evaluation gives (the line included when the clip is in the
    manifest; without one, the file's stem is the sample id); a clip that evaluation uses is explained. Two
    differences, by design: a path that does not exist is named as given, and a video without a sound track is
    explained from its frames.
    """
    from src.paths import printable

    results, logged = explained
    for case in cases_of(row):
        manifest = write_case(tmp_path / _slug(case), case)
        if case.error or (case.raise_error and case.explain is None):
            with pytest.raises((ManifestError, MediaError)) as raised:  # evaluation's answer under raise
                evaluate(manifest, tiny_export, "raise", manifest.parent / "eval")
        if case.error:  # the manifest's problem, whichever clip is explained
            argv = explain_cli([manifest.parent / "a.mp4"], tiny_export, f"manifest={manifest}")
            assert run_cli(argv, capsys) == (2, f"error: {raised.value}\n")
        elif case.explain == "":  # no sound track: explained from the frames
            result = results[_slug(case)]
            assert result["modalities"] == "visual" and "no sound track" in result["note"]
        elif case.explain:
            code, err = run_cli(explain_cli([manifest.parent / "gone.mp4"], tiny_export), capsys)
            assert code == 2 and re.fullmatch(rf"error: .*{case.explain}\n", err), err
        elif case.raise_error:
            clip = Path(raised.value.path)
            argv = explain_cli([clip], tiny_export, f"manifest={manifest}")
            assert run_cli(argv, capsys) == (2, f"error: {raised.value}\n")
            text = str(raised.value).removeprefix(f"{manifest}:3: ")  # no manifest: no line, the stem is the id
            text = text.replace("sample 'c'", f"sample {printable(clip.stem)!r}")
            assert run_cli(explain_cli([clip], tiny_export), capsys) == (2, f"error: {text}\n")
        else:
            result = results[_slug(case)]
            assert result["label"] == "happy", "the clip's label is read from the BOM-prefixed CRLF manifest"
            assert result["modalities"] == "audio_visual" and result["completion"] is not None
            if case.short:
                assert f"1 clip had fewer than 8 frames (short_clip=repeat): {_slug(case)} (2)" in logged
            if case.shown:
                assert result["path"].endswith(case.shown)
