"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 (no network beyond the loopback)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.judges.cache import AnswerCache
from src.judges.openai import JudgeEndpointError, OpenAIJudge

KEY = "sk-test-secret-123"
LABELS = ["happy", "sad", "fear"]


class ChatServer:
    """A minimal chat-completions endpoint: scripted failures first, then answers by keyword in the prompt."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: deque[tuple[int, dict | str, dict[str, str]]] = deque()
        self.delay_s = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                    )
                    step = server.script.popleft() if server.script else None
                if server.delay_s:
                    time.sleep(server.delay_s)
                status, payload, headers = step or (200, server.answer(json.loads(body)), {})
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out on purpose (timeout test)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @staticmethod
    def answer(request: dict) -> dict:
        text = request["messages"][0]["content"].split("Text: ", 1)[1]
        reply = "Fear." if "trembl" in text else "Happiness" if "smil" in text else "I cannot tell."
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    chat = ChatServer()
    yield chat
    chat.stop()


@pytest.fixture
def make_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGR_TEST_JUDGE_KEY", KEY)

    def build(url: str, **options) -> OpenAIJudge:
        settings = dict(
            base_url=url,
            model="gpt-test",
            api_key_env="MIGR_TEST_JUDGE_KEY",
            cache_path=tmp_path / "cache.sqlite",
            timeout_s=2.0,
            max_retries=2,
            backoff_s=0.01,
            max_workers=2,
        )
        return OpenAIJudge(**{**settings, **options})

    return build


def test_request_shape_auth_and_parsing(server, make_judge):
    judge = make_judge(server.url)
    sentences = ["Her voice trembles.", "She smiles.", "The room is dark."]
    assert judge.classify(sentences, LABELS) == ["fear", "happy", None]  # "Happiness" -> happy; unclear -> None
    assert len(server.requests) == 3
    request = next(r for r in server.requests if "trembles" in r["json"]["messages"][0]["content"])
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["json"]
    assert body["model"] == "gpt-test" and body["temperature"] == 0.0 and body["max_tokens"] == 16
    assert body["messages"] == [{"role": "user", "content": judge.prompt("Her voice trembles.", LABELS)}]
    assert "respond with the appropriate emotion in [happy, sad, fear]" in body["messages"][0]["content"]
    assert "only the emotion word" in body["messages"][0]["content"]
    assert judge.stats["unparsed"] == 1


def test_cache_serves_repeats_and_a_new_process(server, make_judge, tmp_path):
    judge = make_judge(server.url)
    judge.classify(["Her voice trembles.", "She smiles.", "Her voice trembles."], LABELS)
    assert len(server.requests) == 2  # the duplicate is asked once
    assert judge.classify(["She smiles."], LABELS) == ["happy"]
    assert len(server.requests) == 2 and judge.stats["cache_hits"] == 1
    resumed = make_judge(server.url)  # a rerun of the evaluation: same cache file
    assert resumed.classify(["Her voice trembles.", "She smiles."], LABELS) == ["fear", "happy"]
    assert len(server.requests) == 2 and resumed.stats == {
        "requests": 0,
        "retries": 0,
        "cache_hits": 2,
        "unparsed": 0,
    }
    other_model = make_judge(server.url, model="gpt-other")  # the key includes the model
    other_model.classify(["She smiles."], LABELS)
    assert len(server.requests) == 3


def test_retries_on_429_5xx_and_timeouts_then_succeeds(server, make_judge):
    server.script.extend([(503, "overloaded", {}), (429, {"error": "slow down"}, {"Retry-After": "0"})])
    judge = make_judge(server.url, max_workers=1)
    assert judge.classify(["Her voice trembles."], LABELS) == ["fear"]
    assert len(server.requests) == 3 and judge.stats["retries"] == 2


def test_timeout_is_retried(server, make_judge):
    server.delay_s = 0.5
    judge = make_judge(server.url, timeout_s=0.2, max_retries=1)
    with pytest.raises(JudgeEndpointError, match=r"failed after 2 attempts; last error: .*timed out"):
        judge.classify(["Her voice trembles."], LABELS)
    server.delay_s = 0.0
    assert judge.classify(["Her voice trembles."], LABELS) == ["fear"]


def test_client_errors_fail_at_once_without_the_key(server, make_judge):
    server.script.append((401, {"error": {"message": "Incorrect API key provided"}}, {}))
    judge = make_judge(server.url)
    with pytest.raises(
        JudgeEndpointError, match=r"refused the request with HTTP 401: .*Incorrect API key"
    ) as info:
        judge.classify(["Her voice trembles."], LABELS)
    assert len(server.requests) == 1
    assert KEY not in str(info.value) and KEY not in repr(judge)


def test_endpoint_down_keeps_the_cached_answers(server, make_judge, tmp_path):
    judge = make_judge(server.url, max_workers=1)
    server.script.extend([(200, ChatServer.answer({"messages": [{"content": "Text: smiles"}]}), {})])
    server.script.extend([(500, "boom", {})] * 10)
    with pytest.raises(JudgeEndpointError) as info:
        judge.classify(["She smiles.", "Her voice trembles.", "He smiles again."], LABELS)
    message = str(info.value)
    assert "failed after 3 attempts; last error: HTTP 500: boom" in message
    assert f"1 answers are cached in {tmp_path / 'cache.sqlite'} and are reused when you rerun" in message
    assert len(server.requests) == 4  # one answer, then three attempts; the third sentence was never sent
    assert (
        AnswerCache(tmp_path / "cache.sqlite").get("gpt-test", judge.prompt("She smiles.", LABELS)) == "Happiness"
    )


def test_connection_refused_is_retried_then_reported(make_judge):
    probe = ChatServer()
    url = probe.url
    probe.stop()  # nothing listens on that port any more
    judge = make_judge(url, max_retries=1)
    with pytest.raises(JudgeEndpointError, match=r"failed after 2 attempts; last error: URLError: .*refused"):
        judge.classify(["Her voice trembles."], LABELS)


def test_missing_key_names_the_variable_and_null_sends_no_header(server, make_judge, monkeypatch):
    monkeypatch.delenv("MIGR_TEST_JUDGE_KEY")
    with pytest.raises(ValueError, match="environment variable MIGR_TEST_JUDGE_KEY"):
        make_judge(server.url)
    judge = make_judge(server.url, api_key_env=None)
    judge.classify(["She smiles."], LABELS)
    assert "Authorization" not in server.requests[0]["headers"]


def test_response_without_choices_is_an_error(server, make_judge):
    server.script.append((200, {"unexpected": True}, {}))
    with pytest.raises(JudgeEndpointError, match=r"without choices\[0\]\.message\.content"):
        make_judge(server.url).classify(["She smiles."], LABELS)


def test_config_validation(make_judge):
    with pytest.raises(ValueError, match="must start with http"):
        make_judge("127.0.0.1:8000")
    with pytest.raises(ValueError, match=r"placeholders \{labels\} and \{text\}"):
        make_judge("http://127.0.0.1:1/v1", prompt_template="Which emotion? {text}")
