"""`python -m src.evaluate` end to end on a tiny random model: artefacts, resuming, bad inputs, judge failures.

The model has random weights, so its completions are noise; what is tested is the plumbing around it. Where an
explanation is needed (judging through an endpoint), the test writes tagged completions into predictions.jsonl
as a model that explains would have.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rewards.format import migr_format_ok
from src.analysis.first_tag import first_tag_summary
from src.data.labels import labels_for
from src.data.manifest import ManifestError, read_manifest
from src.data.media import MediaError
from src.evaluation.figures import attention_summary, compute_figures
from src.evaluation.predictions import EvaluationError, PredictionStore
from src.folder_lock import LOCK_NAME, FolderLockError
from src.models.checkpoint import CheckpointError
from tests import launcher

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = [
    ".lock",  # the folder lock (empty once released)
    "anchoring.json",
    "attention.json",
    "attention.png",
    "confusion.png",
    "first_tag.json",
    "metrics.json",
    "predictions.jsonl",
    "recall.png",
    "report.md",
    "run.json",
]


def _completions(folder: Path) -> dict[str, str]:
    return {
        record.id: record.completion for record in PredictionStore(folder / "predictions.jsonl").load().records
    }


def test_every_artefact_and_metrics_that_match_the_predictions(evaluate, tmp_path) -> None:
    result = evaluate()
    out = result.output_dir
    assert sorted(p.name for p in out.iterdir()) == ARTEFACTS
    assert (result.generated, result.resumed, result.skipped) == (8, 0, 0)
    records = PredictionStore(out / "predictions.jsonl").load().records
    assert len(records) == 8
    assert {r.judge for r in records} == {"KeywordJudge(top_k=2, related=True)|explanation"}
    assert all(len(r.attention["text"]) == 100 for r in records)
    metrics = json.loads((out / "metrics.json").read_text())
    attention = json.loads((out / "attention.json").read_text())
    assert attention["layer"] == 1  # the tiny LLM's 2 layers: the paper's depth is the second
    recomputed = compute_figures(
        records, labels_for("synth"), attention=attention_summary(records, layer=1, bins=100)
    )
    assert {key: metrics[key] for key in recomputed} == json.loads(json.dumps(recomputed))
    assert metrics["num_skipped"] == 0
    assert metrics["run"]["generated_now"] == 8
    dominant = {r.dominant for r in records}
    assert set(attention["counts"]) == {"all", *dominant}
    assert attention["counts"]["all"] == 8
    assert (out / "report.md").read_text().startswith("# Evaluation: sft")
    # the first-tag margins: one per clip and condition, summarised as metrics.json reports them
    stored = json.loads((out / "first_tag.json").read_text())
    assert sorted(stored["value"]) == sorted(r.id for r in records)
    samples = [s for s in read_manifest(metrics["run"]["manifest"]) if s.id in stored["value"]]
    assert metrics["first_tag"] == json.loads(
        json.dumps(first_tag_summary(stored["value"], samples, "mi_dominant"))
    )
    assert "## First-tag margin" in (out / "report.md").read_text()
    # the anchoring probe: two forced openings per audio- or visual-dominant clip, the others skipped and counted
    probed = [s for s in samples if s.dominant in ("audio", "visual")]
    anchoring = json.loads((out / "anchoring.json").read_text())["value"]
    assert sorted(anchoring) == sorted(s.id for s in probed)
    assert metrics["anchoring"]["non_dominant"]["all"]["n"] == len(probed)
    assert metrics["anchoring"]["skipped"] == 8 - len(probed)
    assert "## Anchoring probe" in (out / "report.md").read_text()
    # the breakdowns: the cells of the selection, well-formedness by MIGR's structure
    assert sum(block["n"] for block in metrics["breakdowns"]["by_cell"].values()) == 8
    assert metrics["breakdowns"]["well_formed"] == sum(migr_format_ok(r.completion) for r in records) / 8


def test_extra_judges_rejudge_the_same_predictions(evaluate) -> None:
    from src.evaluation.judging import judge_records
    from src.judges.keywords import KeywordJudge
    from src.metrics import ConsistencyMetrics

    first = evaluate("anchoring=false", "first_tag=false")
    result = evaluate("anchoring=false", "first_tag=false", "extra_judges=[{name: keywords, related: false}]")
    assert result.generated == 0 and result.judged == 0  # nothing regenerated, the primary judgement kept
    out = result.output_dir
    records = PredictionStore(out / "predictions.jsonl").load().records
    assert {r.judge for r in records} == {"KeywordJudge(top_k=2, related=True)|explanation"}
    other, _ = judge_records(records, KeywordJudge(related=False), labels_for("synth"))
    reference = ConsistencyMetrics(labels_for("synth"))
    reference.update([r.prediction for r in records], [r.label for r in records], [r.judged for r in other])
    metrics = json.loads((out / "metrics.json").read_text())
    extra = metrics["judges"]["keywords"]
    assert extra["judge"] == "KeywordJudge(top_k=2, related=False)|explanation"
    assert extra["breakdowns"]["overall"]["epc"] == pytest.approx(reference.compute()["epc"])
    assert metrics["consistency"]["judge"].startswith("KeywordJudge(top_k=2, related=True)")
    cached = json.loads((out / "judges.json").read_text())
    assert sorted(cached[extra["judge"]]) == sorted(r.id for r in records)
    assert first.output_dir == out
    with pytest.raises(EvaluationError, match=r"extra_judges\[0\]='nope': no configs/judge/nope.yaml"):
        evaluate("extra_judges=[nope]")


def test_a_finished_evaluation_reruns_without_loading_the_model(evaluate, monkeypatch) -> None:
    import src.evaluation.runner as runner

    loads = []
    load = runner.load_for_evaluation
    monkeypatch.setattr(runner, "load_for_evaluation", lambda *a, **k: loads.append(1) or load(*a, **k))
    first = evaluate()
    assert len(loads) == 1  # one load serves generation and the first-tag margins

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(runner, "load_for_evaluation", refuse)
    again = evaluate()  # predictions and first-tag margins are reused
    assert (again.generated, again.resumed) == (0, 8)
    assert again.figures["first_tag"] == first.figures["first_tag"]
    (again.output_dir / "report.md").write_bytes(b"")  # what a crash while writing the report used to leave
    evaluate()
    assert (again.output_dir / "report.md").read_text().startswith("# Evaluation")


def test_a_torn_file_resumes_with_only_the_missing_samples(evaluate, tmp_path) -> None:
    straight = evaluate(output_dir=tmp_path / "straight")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(straight.output_dir / "run.json", partial / "run.json")
    lines = (straight.output_dir / "predictions.jsonl").read_text().splitlines(keepends=True)
    (partial / "predictions.jsonl").write_text("".join(lines[:4]) + lines[4][:50])  # killed mid-line
    resumed = evaluate(output_dir=partial)
    assert (resumed.generated, resumed.resumed) == (4, 4)
    assert _completions(partial) == _completions(straight.output_dir)  # greedy: the same text either way
    assert resumed.figures["recognition"] == straight.figures["recognition"]


def test_sampling_resumes_exactly_between_batches(evaluate, tmp_path) -> None:
    sampled = ("temperature=0.7", "seed=3")
    straight = evaluate(*sampled, output_dir=tmp_path / "straight")
    greedy = evaluate(output_dir=tmp_path / "greedy")
    assert _completions(straight.output_dir) != _completions(greedy.output_dir)  # it really samples
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(straight.output_dir / "run.json", partial / "run.json")
    lines = (straight.output_dir / "predictions.jsonl").read_text().splitlines(keepends=True)
    (partial / "predictions.jsonl").write_text("".join(lines[:6]))  # two whole batches of 3 were written
    resumed = evaluate(*sampled, output_dir=partial)
    assert (resumed.generated, resumed.resumed) == (2, 6)
    assert _completions(partial) == _completions(straight.output_dir)


def test_a_killed_evaluation_continues_where_it_stopped(
    eval_corpus, tiny_export, tmp_path, evaluate, caplog
) -> None:
    out = tmp_path / "killed"
    config_args = dict(manifest=str(eval_corpus), model=str(tiny_export), out=str(out))
    script = textwrap.dedent(
        f"""
        import os, signal
        from src.evaluation.predictions import PredictionStore
        from src.evaluation.runner import run_evaluation
        from tests.evaluation.conftest import eval_config
        from pathlib import Path

        append = PredictionStore.append
        calls = []

        def append_then_die(self, records):
            append(self, records)
            calls.append(len(records))
            if len(calls) == 2:  # two batches of 3 are on disk: die like a killed job
                os.kill(os.getpid(), signal.SIGKILL)

        PredictionStore.append = append_then_die
        args = {config_args!r}
        run_evaluation(eval_config(Path(args["manifest"]), Path(args["model"]), Path(args["out"])))
        """
    )
    killed = launcher.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(PredictionStore(out / "predictions.jsonl").load().records) == 6
    assert not (out / "metrics.json").exists()
    dead = json.loads((out / LOCK_NAME).read_text())["pid"]  # the killed holder's lock is left behind
    with caplog.at_level("INFO", logger="src.folder_lock"):
        resumed = evaluate(output_dir=out)
    assert f"taking over the lock left by pid {dead}" in caplog.text
    assert (resumed.generated, resumed.resumed) == (2, 6)
    assert _completions(out) == _completions(evaluate(output_dir=tmp_path / "straight").output_dir)


def test_two_evaluations_into_one_folder_the_second_fails_naming_the_first(
    eval_corpus, tiny_export, tmp_path, evaluate
) -> None:
    out = tmp_path / "shared"
    config_args = dict(manifest=str(eval_corpus), model=str(tiny_export), out=str(out), flags=str(tmp_path))
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from src.evaluation.predictions import PredictionStore
        from src.evaluation.runner import run_evaluation
        from tests.evaluation.conftest import eval_config

        args = {config_args!r}
        flags = Path(args["flags"])
        append = PredictionStore.append

        def append_then_wait(self, records):  # hold the folder mid-generation until the test says go
            append(self, records)
            (flags / "started").touch()
            while not (flags / "go").exists():
                time.sleep(0.05)

        PredictionStore.append = append_then_wait
        run_evaluation(eval_config(Path(args["manifest"]), Path(args["model"]), Path(args["out"])))
        """
    )
    first = launcher.popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "started").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-2000:]
            time.sleep(0.1)
        with pytest.raises(FolderLockError, match=rf"{out} is in use by pid {first.pid} on .* \(.*-c"):
            evaluate(output_dir=out)
    finally:
        (tmp_path / "go").touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["run"]["generated_now"] == 8


def test_changed_generation_settings_are_refused_but_a_new_judge_rejudges(evaluate, tmp_path) -> None:
    evaluate()
    with pytest.raises(
        EvaluationError, match=r"holds an evaluation made with other settings \(temperature: 0.0 -> 0.3\)"
    ):
        evaluate("temperature=0.3")
    rejudged = evaluate("explanation_mode=sentences")
    assert (rejudged.generated, rejudged.judged) == (0, 8)
    records = PredictionStore(rejudged.output_dir / "predictions.jsonl").load().records
    assert {r.judge for r in records} == {"KeywordJudge(top_k=2, related=True)|sentences"}
    fresh = evaluate("temperature=0.3", "overwrite=true")
    assert (fresh.generated, fresh.resumed) == (8, 0)


def test_bad_inputs_fail_with_clear_errors(evaluate, eval_corpus, tiny_export, tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ManifestError, match=r"empty.jsonl: manifest is empty"):
        evaluate(f"data.manifest={empty}")
    with pytest.raises(EvaluationError, match=r"split='dev': expected one of train, val, test"):
        evaluate("split=dev")  # not a split name: refused with the config (tests/evaluation/test_config.py)
    rows = [json.loads(line) for line in eval_corpus.read_text().splitlines()]
    train = [{**row, "video": str(eval_corpus.parent / row["video"])} for row in rows if row["split"] == "train"]
    only_train = tmp_path / "train_only.jsonl"
    only_train.write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k != "au_csv"}) + "\n" for row in train)
    )
    with pytest.raises(EvaluationError, match=r"no samples with split 'val' .* splits present: \['train'\]"):
        evaluate(f"data.manifest={only_train}", "split=val")
    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_export, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(
        CheckpointError, match=r"broken_model: no model.safetensors or model.safetensors.index.json"
    ):
        evaluate(f"model_path={broken}")
    shutil.rmtree(broken / "tokenizer")
    (broken / "model.safetensors").write_bytes((tiny_export / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"broken_model: missing tokenizer/ folder"):
        evaluate(f"model_path={broken}", f"output_dir={tmp_path / 'other'}")
    with pytest.raises(EvaluationError, match=r"explanation_mode='whole': expected one of explanation, sentences"):
        evaluate("explanation_mode=whole")  # refused before anything is read (tests/evaluation/test_config.py)
    with pytest.raises(EvaluationError, match=r"model_path=auto found no exported model"):
        evaluate("model_path=auto", f"runs_dir={tmp_path / 'no_runs'}")


def test_unreadable_clips_are_skipped_and_listed(evaluate, eval_corpus, tmp_path) -> None:
    rows = [json.loads(line) for line in eval_corpus.read_text().splitlines()]
    train = [row for row in rows if row["split"] == "train"][:4]
    for row in train:  # the manifest moves to tmp_path: make its media paths absolute
        row["video"] = str(eval_corpus.parent / row["video"])
        row["au_csv"] = str(eval_corpus.parent / row["au_csv"])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    train[1]["video"] = str(broken)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in train))
    with pytest.raises(MediaError, match=r"broken.mp4: unreadable"):
        evaluate(f"data.manifest={manifest}", "on_error=raise", f"output_dir={tmp_path / 'raise'}")
    result = evaluate(f"data.manifest={manifest}", "on_error=skip", f"output_dir={tmp_path / 'skip'}")
    assert (result.generated, result.skipped) == (3, 1)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["num_samples"] == 3
    assert [(s["sample_id"], s["reason"]) for s in metrics["run"]["skipped"]] == [(train[1]["id"], "unreadable")]
    assert (
        f"| {train[1]['id']} | {manifest}:2 | {broken} | unreadable |"
        in (result.output_dir / "report.md").read_text()
    )


class ChatServer:
    """A chat-completions endpoint on 127.0.0.1 answering "happy", that can be taken down (HTTP 503)."""

    def __init__(self, healthy_requests: int | None = None) -> None:
        self.requests = 0
        self.healthy_requests = healthy_requests
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                down = server.healthy_requests is not None and server.requests > server.healthy_requests
                body = (
                    b'{"error": "down"}'
                    if down
                    else json.dumps({"choices": [{"message": {"content": "happy"}}]}).encode()
                )
                self.send_response(503 if down else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_judge_endpoint_down_keeps_predictions_and_cached_judgements(evaluate, tmp_path) -> None:
    first = evaluate()
    store = PredictionStore(first.output_dir / "predictions.jsonl")
    # what a model that explains would have written (the random tiny model writes no tags)
    explained = [
        dataclasses.replace(
            record,
            completion=f"<vis_desc>Face {i} smiles.</vis_desc><think>Happy {i}.</think><answer>happy</answer>",
        )
        for i, record in enumerate(store.load().records)
    ]
    store.rewrite(explained)
    server = ChatServer(healthy_requests=4)
    judge = [
        "judge=openai",
        f"judge.base_url={server.url}",
        "judge.api_key_env=null",
        f"judge.cache_path={tmp_path / 'judge.sqlite'}",
        "judge.max_retries=0",
        "judge.max_workers=1",
        "judge_batch_size=3",
    ]
    try:
        with pytest.raises(
            EvaluationError,
            match=r"the openai judge failed after 3 of 8 explanations .*HTTP 503.*4 answers are cached .*rerun the same command",
        ):
            evaluate(*judge)
        after_failure = store.load().records
        assert [r.completion for r in after_failure] == [r.completion for r in explained]  # predictions kept
        assert sum(r.judge is not None and r.judge.startswith("OpenAIJudge") for r in after_failure) == 3
        server.healthy_requests = None  # the endpoint is back
        done = evaluate(*judge)
        assert (done.generated, done.judged) == (0, 5)
        assert server.requests == 4 + 1 + 4  # 4 answered, 1 refused, then only the 4 never answered (1 was cached)
        assert done.figures["consistency"]["eea"] == pytest.approx(sum(r.label == "happy" for r in explained) / 8)
    finally:
        server.close()


def test_the_command_line_with_model_path_auto(eval_corpus, tiny_export, tmp_path) -> None:
    runs = tiny_export.parent.parent  # <runs>/sft/export
    env = {**os.environ, "MIGR_RUNS": str(runs), "WANDB_MODE": "offline"}
    args = [
        f"data.manifest={eval_corpus}",
        "data.synth=null",
        f"data.cache_dir={eval_corpus.parent / '.cache'}",
        "split=train",
        "limit=3",
        "max_new_tokens=6",
        "progress_bar=false",
        "logger=wandb",
    ]
    result = launcher.run(
        [sys.executable, "-m", "src.evaluate", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = runs / "eval" / "sft-synth-train"
    assert (
        f"evaluating {runs / 'sft' / 'export'} (model_path=auto: first of grpo, sft, base"
        in result.stdout + result.stderr
    )
    assert f"evaluation written to {out}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([*ARTEFACTS, "wandb"])
    wandb_runs = list((out / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    assert list(wandb_runs[0].glob("run-*.wandb"))  # the offline run file `wandb sync` uploads
    media = wandb_runs[0] / "files" / "media"
    images = sorted(path.name.split("_0_")[0] for path in (media / "images" / "eval").iterdir())
    tables = sorted(path.name.split("_0_")[0] for path in (media / "table" / "eval").iterdir())
    assert images == ["attention", "confusion", "recall_plot"]
    assert tables == ["attention_curves", "metrics", "predictions", "recall"]
    assert not (tmp_path / ".hydra").exists() and not list(tmp_path.glob("*.log"))  # Hydra writes nothing
