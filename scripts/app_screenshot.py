"""The README's screenshot of the web app: ``python scripts/app_screenshot.py [--clip ID] [--out docs/app.png]``.

Starts ``python -m src.app`` (default models: the demo's MIGR and baseline exports; run ``make demo`` first) on a
free loopback port, opens it in headless Chromium (Debian's ``chromium``, or ``MIGR_CHROMIUM``), picks the example
clip `--clip ID`, explains it and saves a full-page PNG. The same steps as ``tests/test_app.py``, on the real exports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="", help="the example clip's id (default: the first test clip)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "app.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("overrides", nargs="*", help="key=value overrides passed to python -m src.app")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    browser_path = os.environ.get("MIGR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser_path:
        parser.error("no Chromium binary (apt-get install chromium, or set MIGR_CHROMIUM)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    app = subprocess.Popen(
        [sys.executable, "-m", "src.app", "--port", str(port), *args.overrides], cwd=REPO, env=env
    )
    try:
        deadline = time.monotonic() + 300
        while not _listening(port):
            if app.poll() is not None or time.monotonic() > deadline:
                print(f"the app did not start (exit code {app.poll()})", file=sys.stderr)
                return 1
            time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 1200})
            page.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
            page.wait_for_selector("#explain", timeout=120_000)
            page.locator("#example input").click()
            options = page.get_by_role("option")
            (options.filter(has_text=f"{args.clip} (") if args.clip else options).first.click()
            began = time.monotonic()
            page.click("#explain")
            page.wait_for_selector("#result-0 .answer", timeout=600_000)
            for plot in ("#mi-0", "#attention-0"):
                page.wait_for_selector(f"{plot} img", timeout=60_000)
            print(f"explained in {time.monotonic() - began:.1f} s: {page.inner_text('#status')}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
