"""A judge that asks any OpenAI-compatible chat endpoint (the paper uses GPT-4.1-mini) which emotion a text shows.

One request per sentence (or explanation), the ERV/paper prompt ("respond with the appropriate emotion in
{labels}; only the emotion word"), temperature 0. Only the standard library is used (``urllib``).

- Key: read from the environment variable *named* by ``api_key_env`` (default ``OPENAI_API_KEY``); never put in
  configs, logs, reprs or error messages. ``api_key_env=None`` sends no key (local vLLM/ollama servers).
- Retries: HTTP 429, 5xx, timeouts and connection errors are retried ``max_retries`` times with exponential
  backoff (``backoff_s * 2**attempt``, capped at ``max_backoff_s``; a ``Retry-After`` header wins). Other HTTP
  errors (400, 401, 404...) fail at once with the status and the server's message.
- Cache: every reply is stored in an sqlite file keyed by (model, prompt) (:class:`src.judges.cache.AnswerCache`)
  as soon as it arrives; a rerun pays only for what is missing. When the endpoint stays down,
  :class:`JudgeEndpointError` says how many answers are cached and that rerunning resumes.
- Replies map onto the labels by exact word, then by the label normalisation's surface forms, then by the first
  label named anywhere in the reply; anything else is None (counted in ``stats["unparsed"]``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from src.judges.base import check_labels, concept_to_label
from src.judges.cache import AnswerCache

PROMPT_TEMPLATE = (
    "Read the following text describing a person in a video and respond with the appropriate emotion in "
    "[{labels}]. Respond with only the emotion word.\n\nText: {text}"
)
_RETRY_STATUS = frozenset({408, 409, 429})


class JudgeEndpointError(RuntimeError):
    """The chat endpoint failed (after retries where they apply); cached answers are kept."""


class OpenAIJudge:
    """OpenAI-compatible chat judge; see the module docstring.

    Args:
        base_url: endpoint root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: model name sent with each request.
        api_key_env: name of the environment variable holding the key, or None for no key.
        cache_path: sqlite answer cache.
        timeout_s, max_retries, backoff_s, max_backoff_s: request robustness.
        max_workers: concurrent requests.
        prompt_template: must contain ``{labels}`` and ``{text}``.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4.1-mini",
        api_key_env: str | None = "OPENAI_API_KEY",
        cache_path: str | Path = "runs/judge_cache/openai.sqlite",
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_workers: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 16,
        prompt_template: str = PROMPT_TEMPLATE,
    ) -> None:
        if not re.match(r"https?://", base_url):
            raise ValueError(f"judge.base_url must start with http:// or https://; got {base_url!r}")
        if "{labels}" not in prompt_template or "{text}" not in prompt_template:
            raise ValueError("judge.prompt_template must contain the placeholders {labels} and {text}")
        self._api_key: str | None = None
        if api_key_env is not None:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise ValueError(
                    f"the openai judge reads its API key from the environment variable {api_key_env} "
                    "(judge.api_key_env), which is not set; export it, or set judge.api_key_env=null for a server "
                    "that needs no key"
                )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.cache = AnswerCache(cache_path)
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_workers = max_workers
        self.temperature, self.max_tokens = temperature, max_tokens
        self.prompt_template = prompt_template
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "unparsed": 0}

    def __repr__(self) -> str:
        return f"OpenAIJudge(url={self.url!r}, model={self.model!r}, cache={str(self.cache.path)!r})"

    def prompt(self, text: str, labels: Sequence[str]) -> str:
        """The user message sent for ``text``."""
        return self.prompt_template.format(labels=", ".join(labels), text=text)

    def classify(self, sentences: Sequence[str], labels: Sequence[str]) -> list[str | None]:
        """Ask the endpoint about each sentence (cached answers are reused, new ones cached at once)."""
        labels = check_labels(labels)
        replies = self.complete([self.prompt(sentence, labels) for sentence in sentences])
        parsed = [parse_reply(reply, labels) for reply in replies]
        self.stats["unparsed"] += parsed.count(None)
        return parsed

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """The endpoint's reply to each user message as given (cached ones reused, new ones cached at once).

        The judge's own questions go through here; so do other requests to the same endpoint (the MIGR recipe's
        reasoning writer, :class:`src.migr.recipe.EndpointSource`).
        """
        replies: dict[str, str] = {}
        for prompt in dict.fromkeys(prompts):
            cached = self.cache.get(self.model, prompt)
            if cached is not None:
                replies[prompt] = cached
        self.stats["cache_hits"] += sum(prompt in replies for prompt in prompts)
        missing = [prompt for prompt in dict.fromkeys(prompts) if prompt not in replies]
        if missing:
            replies.update(self._ask_all(missing))
        return [replies[prompt] for prompt in prompts]

    def _ask_all(self, prompts: list[str]) -> dict[str, str]:
        answers: dict[str, str] = {}
        errors: list[JudgeEndpointError] = []
        # A request that exhausts its retries means the endpoint is down: queued requests are then not sent.
        endpoint_down = threading.Event()

        def ask_unless_down(prompt: str) -> str | None:
            if endpoint_down.is_set():
                return None
            try:
                return self._ask(prompt)
            except JudgeEndpointError:
                endpoint_down.set()
                raise

        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            futures = [(prompt, pool.submit(ask_unless_down, prompt)) for prompt in prompts]
            for prompt, future in futures:
                try:
                    reply = future.result()
                except JudgeEndpointError as error:
                    errors.append(error)
                    continue
                if reply is not None:
                    answers[prompt] = reply
        if errors:
            raise JudgeEndpointError(
                f"{errors[0]} ({len(answers)} of {len(prompts)} new answers were obtained in this call; "
                f"{len(self.cache)} answers are cached in {self.cache.path} and are reused when you rerun)"
            ) from errors[0]
        return answers

    def _ask(self, prompt: str) -> str:
        """One chat completion with retries; the reply is cached before it is returned."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            self.stats["requests"] += 1
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    reply = _reply_text(json.loads(response.read().decode("utf-8")), self.url)
                self.cache.put(self.model, prompt, reply)
                return reply
            except urllib.error.HTTPError as error:
                message = error.read().decode("utf-8", "replace")[:300]
                last_problem = f"HTTP {error.code}: {message}"
                if error.code not in _RETRY_STATUS and error.code < 500:
                    raise JudgeEndpointError(
                        f"judge endpoint {self.url} refused the request with {last_problem}"
                    ) from None
                retry_after = _seconds(error.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                last_problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                last_problem = f"unreadable response ({error})"
            if attempt < self.max_retries:
                wait = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(min(wait, self.max_backoff_s))
        raise JudgeEndpointError(
            f"judge endpoint {self.url} (model {self.model}) failed after {self.max_retries + 1} attempts; "
            f"last error: {last_problem}"
        )


def _reply_text(payload: Any, url: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeEndpointError(
            f"judge endpoint {url} returned JSON without choices[0].message.content: {str(payload)[:300]}"
        ) from None
    return str(content or "")


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff


def parse_reply(reply: str, labels: Sequence[str]) -> str | None:
    """Map a free-text reply onto ``labels``: exact word, known surface form, or first label named; else None.

    Example:
        >>> parse_reply("Fear.", ["happy", "fear"]), parse_reply("joyful", ["happy", "fear"])
        ('fear', 'happy')
        >>> parse_reply("The emotion is most likely fear", ["happy", "fear"]), parse_reply("unclear", ["fear"])
        ('fear', None)
    """
    word = re.sub(r"[^a-z ]+", " ", reply.lower()).strip()
    word = re.sub(r"\s+", " ", word)
    by_lower = {label.lower(): label for label in labels}
    if word in by_lower:
        return by_lower[word]
    mapping = concept_to_label(labels, related=False)
    if word in mapping:
        return mapping[word]
    forms = sorted(mapping, key=len, reverse=True)
    match = re.search(r"\b(?:" + "|".join(re.escape(form) for form in forms) + r")\b", word)
    return mapping[match.group(0)] if match else None
