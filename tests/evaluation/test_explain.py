"""Explaining single clips (``python -m src.explain``): the report, its JSON, and one code path with evaluation."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.labels import labels_for
from src.data.manifest import read_manifest
from src.data.media import load_audio
from src.evaluation.explain import ANSWER_CLOSE, ANSWER_OPEN, run_explain
from src.evaluation.predictions import EvaluationError, PredictionStore
from src.evaluation.runner import run_evaluation
from src.models.checkpoint import load_model
from tests import launcher
from tests.evaluation.conftest import eval_config
from tests.helpers import REPO, compose, scripted_export


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that writes ``tests.helpers.SCRIPT`` for any clip (runs/demo/migr_grpo/export layout)."""
    return scripted_export(tmp_path_factory.mktemp("explain_runs") / "demo" / "migr_grpo" / "export")


def explain_config(model: Path | str, *overrides: str):
    cache = Path(model).parent / "media_cache"  # beside the test's model, not under the working directory
    return compose("explain", f"model_path={model}", "max_new_tokens=48", f"data.cache_dir={cache}", *overrides)


def clip_paths(manifest: Path, n: int, split: str = "train") -> list[Path]:
    return [Path(s.video) for s in read_manifest(manifest) if s.split == split][:n]


@pytest.mark.slow
def test_the_cli_report_and_its_json(scripted: Path, eval_corpus: Path, tmp_path: Path) -> None:
    clip = clip_paths(eval_corpus, 1)[0]
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "MIGR_RUNS": str(scripted.parents[2])}  # model_path=auto finds demo/migr_grpo
    result = launcher.run(
        [sys.executable, "-m", "src.explain", str(clip), "--json", str(out), "max_new_tokens=48",
         f"manifest={eval_corpus}", "--attention", str(tmp_path / "plots")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    assert f"model: {scripted}" in printed
    for line in ("<vis_desc> Her jaw is tight", "<aud_desc> The voice rises furiously.", "<think> So enraged!"):
        assert line in printed
    assert "answer: angry" in printed
    assert "reads the explanation as: angry -> consistent" in printed
    assert "Modality Importance:" in printed and "-> dominant modality: both" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    sample = next(s for s in read_manifest(eval_corpus) if Path(s.video) == clip)
    assert (row["id"], row["label"], row["dominant"]) == (sample.id, sample.label, sample.dominant)
    assert [s["tag"] for s in row["segments"]] == ["visual", "audio", "think", "answer"]
    assert row["segments"][2]["text"] == "So enraged!"
    assert (row["prediction"], row["well_formed"], row["truncated"]) == ("angry", True, False)
    # the keyword lexicon reads "furiously" and "enraged" as angry (hand-checked), the answer says angry
    assert (row["judged"], row["consistent"]) == ("angry", True)
    importance = row["importance"]
    assert set(importance["conditions"]) == {"audio", "visual", "audio_visual"}
    for entry in importance["conditions"].values():
        assert entry["answer"] == "angry"  # the script ignores the media: every condition answers angry
        assert set(entry["probabilities"]) == set(labels_for("synth"))
        assert math.isclose(sum(entry["probabilities"].values()), 1.0, rel_tol=1e-5)
        assert max(entry["probabilities"], key=entry["probabilities"].get) == "angry"
    # truth known from the manifest: right under every condition -> "both" (the paper's default tie rule),
    # unless the clip's label is not angry, in which case all three are wrong -> "both" as well
    assert importance["reference_from"] == "label" and importance["dominant"] == "both"
    margins = row["first_tag_margin"]
    assert set(margins) == {"audio", "visual", "audio_visual"} and margins["audio_visual"] < 0  # opens <vis_desc>
    assert len(row["attention"]["text"]) == 100 and row["not_applicable"] == {}
    assert (tmp_path / "plots" / f"{sample.id}.attention.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_explanation_is_the_evaluations(eval_corpus: Path, tiny_export: Path, tmp_path: Path) -> None:
    # the random tiny model writes deterministic noise: any difference in prompt, media or decoding shows
    evaluation = run_evaluation(eval_config(eval_corpus, tiny_export, tmp_path / "eval", "limit=3"))
    records = PredictionStore(evaluation.output_dir / "predictions.jsonl").load().records
    paths = {s.id: Path(s.video) for s in read_manifest(eval_corpus)}
    cfg = explain_config(tiny_export, "max_new_tokens=12", f"manifest={eval_corpus}", "batch_size=2")
    explained = run_explain(cfg, [paths[r.id] for r in records], progress=False)
    assert [e.id for e in explained] == [r.id for r in records]
    for record, result in zip(records, explained):
        assert result.completion == record.completion
        assert result.prediction == record.prediction
        assert result.attention == record.attention


def test_answer_probabilities_match_whole_sequence_likelihoods(eval_corpus: Path, tiny_export: Path) -> None:
    from src.evaluation.explain import load_explainer
    from tests.helpers import one_clip_batch

    explainer = load_explainer(explain_config(tiny_export))
    sample = read_manifest(eval_corpus)[0]
    completion = "<vis_desc>A smile.</vis_desc><think>Happy.</think><answer>sad</answer>"
    got = explainer.answer_probabilities(sample, completion, video=True, audio=False)
    # reference: the model's own loss over the whole target (prompt masked), one clip and label at a time
    model, tokenizer = explainer.loaded.model, explainer.loaded.tokenizer
    totals = []
    for label in labels_for("synth"):
        target = f"{completion.split(ANSWER_OPEN)[0]}\n{ANSWER_OPEN}{label}{ANSWER_CLOSE}"
        batch = one_clip_batch(
            model, tokenizer, explainer.loader, sample, "visual", task="reasoning", target=target
        )
        with torch.no_grad():
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, media=batch.media,
                        labels=batch.labels)  # fmt: skip
        totals.append(-float(out.loss) * out.num_target_tokens)
    expected = torch.softmax(torch.tensor(totals, dtype=torch.float64), dim=0)
    assert np.allclose([got[label] for label in labels_for("synth")], expected.numpy(), atol=1e-5)


def test_a_silent_video_and_an_audio_file(scripted: Path, eval_corpus: Path, tmp_path: Path) -> None:
    import av
    import soundfile

    clip = clip_paths(eval_corpus, 1)[0]
    silent = tmp_path / "silent.mp4"
    with av.open(str(clip)) as source, av.open(str(silent), "w") as target:
        stream = target.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 112, 112, "yuv420p"
        for frame in source.decode(video=0):
            for packet in stream.encode(frame.reformat(width=112, height=112, format="yuv420p")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    wav = tmp_path / "voice.wav"
    soundfile.write(wav, load_audio(clip).numpy(), 16000)
    results = run_explain(explain_config(scripted), [silent, wav], progress=False)
    video_only, audio_only = results
    assert (video_only.modalities, audio_only.modalities) == ("visual", "audio")
    assert "no sound track" in video_only.note
    for result in results:
        assert result.prediction == "angry" and result.consistent is True
        assert result.importance is None and result.first_tag_margin is None
        assert "needs both video and audio" in result.not_applicable["importance"]
    assert audio_only.attention is not None and max(audio_only.attention["visual"]) == 0.0  # nothing to look at


def test_bad_paths_are_named(scripted: Path, tmp_path: Path) -> None:
    cfg = explain_config(scripted)
    (tmp_path / "notes.txt").write_text("not a clip")
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2048))
    cases = {
        tmp_path / "missing.mp4": "missing.mp4: no such file or folder",
        tmp_path / "notes.txt": "notes.txt: not a video or audio file",
        tmp_path / "empty": "empty: no video or audio file in this folder",
        broken: "broken.mp4: unreadable",
    }
    for path, message in cases.items():
        with pytest.raises(EvaluationError, match=message):
            run_explain(cfg, [path], progress=False)
    with pytest.raises(EvaluationError, match="label='xyz' is not a synth label"):
        run_explain(explain_config(scripted, "label=xyz"), [next(iter(cases))], progress=False)


def test_no_model_says_which_command_makes_one(tmp_path: Path) -> None:
    env = {**os.environ, "MIGR_RUNS": str(tmp_path / "runs")}
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    result = launcher.run(
        [sys.executable, "-m", "src.explain", str(clip)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "found no MIGR export" in result.stderr and "make demo" in result.stderr
    typo = launcher.run(
        [sys.executable, "-m", "src.explain", str(clip), "temprature=0.3"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert typo.returncode == 2 and "temprature" in typo.stderr


def test_the_model_loads_once_per_run(scripted: Path, eval_corpus: Path, monkeypatch) -> None:
    import src.evaluation.runner as runner

    calls = []
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: calls.append(a) or load_model(*a, **k))
    run_explain(explain_config(scripted), clip_paths(eval_corpus, 2), progress=False)
    assert len(calls) == 1
