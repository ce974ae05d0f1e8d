"""The web app (``python -m src.app``) in a real headless Chromium: explain an example clip, reject a broken upload.

Needs Debian's ``chromium`` (``make`` installs it as root; elsewhere ``apt-get install chromium`` or point
``MIGR_CHROMIUM`` at any Chromium/Chrome binary). Without a browser the test is skipped with that reason,
except where ``MIGR_REQUIRE_BROWSER=1`` (CI) makes a missing browser a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, scripted_export

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = [  # no network here: keep Chromium from reaching for any
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    found = os.environ.get("MIGR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "no Chromium binary (apt-get install chromium, or set MIGR_CHROMIUM)"
    if os.environ.get("MIGR_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the app did not listen on {port} within {timeout} s:\n{log.read_text()[-3000:]}")


def test_explain_an_example_clip_and_reject_a_broken_upload(stage_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="the app extra (pip install -e '.[app]'; make installs it)")
    from playwright.sync_api import sync_playwright

    browser_path = chromium()
    models = [scripted_export(tmp_path / "runs" / arm / "export") for arm in ("migr_grpo", "baseline_grpo")]
    port = free_port()
    log = tmp_path / "app.log"
    env = {**os.environ, "MIGR_RUNS": str(tmp_path / "runs"), "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [
        sys.executable, "-m", "src.app", "--port", str(port), "--models", ",".join(map(str, models)),
        f"manifest={stage_corpus}", "max_new_tokens=48",
    ]  # fmt: skip
    with log.open("w") as handle:
        app = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for(port, app, log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
            page.wait_for_selector("#explain", timeout=60_000)
            example = page.locator("#example input")
            example.click()
            page.get_by_role("option").first.click()  # the first test clip of the corpus
            page.click("#explain")
            page.wait_for_selector("#result-1 .seg-answer", timeout=180_000)
            for slot in ("#result-0", "#result-1"):
                for tag in ("vis_desc", "aud_desc", "think", "answer"):
                    assert page.locator(f"{slot} .seg-{tag}").count() == 1, (slot, tag)
                assert "Answer: angry" in page.inner_text(f"{slot} .answer")
                assert "consistent" in page.inner_text(f"{slot} .judge")
            for plot in ("#mi-0", "#attention-0", "#mi-1", "#attention-1"):
                page.wait_for_selector(f"{plot} img", timeout=30_000)  # matplotlib figures render as images
            assert "Explained" in page.inner_text("#status")
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

            broken = tmp_path / "broken.mp4"
            broken.write_bytes(os.urandom(4096))
            page.locator("#upload input[type=file]").set_input_files(str(broken))
            page.wait_for_timeout(1000)  # the upload lands before the click reads it
            page.click("#explain")
            page.wait_for_selector("#status .error", timeout=120_000)
            message = page.inner_text("#status")
            assert "Cannot explain this clip" in message and "broken.mp4" in message
            assert "Traceback" not in page.content()
            page.screenshot(path=str(tmp_path / "app_error.png"), full_page=True)
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_a_clip_skipped_under_on_error_skip_is_reported_not_an_index_error(
    stage_corpus: Path, tmp_path: Path
) -> None:
    # Under on_error=skip the media layer leaves an undecodable clip out; the app must say so (with the skip
    # report naming the clip), not fail on an empty list of clips. An example clip of the manifest is broken on
    # disk (an upload is checked by its container first). No browser: ExplainApp.run is what the button calls.
    pytest.importorskip("gradio", reason="the app extra (pip install -e '.[app]'; make installs it)")
    from src.app import ExplainApp
    from src.explain import compose_config

    corpus = tmp_path / "corpus"
    shutil.copytree(stage_corpus.parent, corpus, ignore=shutil.ignore_patterns(".cache"))
    model = scripted_export(tmp_path / "export")
    overrides = [
        "on_error=skip",
        "max_new_tokens=8",
        f"runs_dir={tmp_path}",
        f"manifest={corpus / 'manifest.jsonl'}",
    ]
    app = ExplainApp(compose_config(overrides), models=[str(model)], max_seconds=60)
    key, sample = next(iter(app.examples.items()))
    sample.video.write_bytes(b"not an mp4 at all")
    status, *slots = app.run(key, None, str(model), None)
    assert "Cannot explain this clip" in status and "skipped" in status and sample.id in status, status
    assert slots == ["", None, None, "", None, None]
