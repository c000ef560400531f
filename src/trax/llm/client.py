"""An OpenAI-compatible chat client that asks for one JSON object and gets it, or says why not.

It speaks ``POST {base_url}/chat/completions`` with ``httpx`` (no SDK: the
request is one dictionary, and every failure below is ours to shape). What it
is hardened against is what DeepSeek does in practice:

- 429 and 5xx: retried with exponential backoff and jitter, waiting at least
  what ``Retry-After`` asks;
- a connection held open for minutes, sending blank keep-alive lines before
  the body: the answer is streamed and an overall deadline is checked between
  reads, while a silent connection ends at the read timeout;
- blank content (what DeepSeek sends when its JSON output fails) and invalid
  JSON: asked again at most twice;
- 400/401/402/422: never retried (the same request fails the same way), each
  reported as one line (402 is "no balance").

The key travels in one header and nowhere else: not in an error, a log line
or a repr (``Secret`` masks it, and ``trax.errors.scrub`` removes it from
anything a server quotes back).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trax.errors import TraxError, scrub

if TYPE_CHECKING:
    import httpx

    from trax.config import Config, Secret

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({408, 409, 429})
"""Besides every 5xx: a request timeout, a conflict and rate limiting pass with time."""

NO_KEY = "needs an API key (set TRAX_LLM_API_KEY or DEEPSEEK_API_KEY)"


class LLMError(TraxError):
    """Enhancement could not get an answer: one line, with the tokens already spent.

    ``fatal`` errors (a refused key, no balance, a request the server rejects)
    would fail the same way for every other chunk: the caller stops sending.
    """

    def __init__(self, message: str, usage: Usage | None = None, fatal: bool = False) -> None:
        super().__init__(scrub(message))
        self.usage = usage or Usage()
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one or more requests used, as the API counts them (``usage``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hit_tokens: int = 0
    cache_miss_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cache_hit_tokens + other.cache_hit_tokens,
            self.cache_miss_tokens + other.cache_miss_tokens,
            self.requests + other.requests,
        )

    @classmethod
    def from_api(cls, data: Any) -> Usage:
        """DeepSeek's ``prompt_cache_hit/miss_tokens``, or OpenAI's ``cached_tokens``."""
        if not isinstance(data, dict):
            return cls(requests=1)
        prompt = _int(data.get("prompt_tokens"))
        hit = data.get("prompt_cache_hit_tokens")
        if hit is None:
            details = data.get("prompt_tokens_details")
            hit = details.get("cached_tokens") if isinstance(details, dict) else 0
        miss = data.get("prompt_cache_miss_tokens")
        hit_tokens = _int(hit)
        miss_tokens = _int(miss) if miss is not None else max(prompt - hit_tokens, 0)
        return cls(prompt, _int(data.get("completion_tokens")), hit_tokens, miss_tokens, 1)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach the server and how long to try. None of it changes an answer."""

    base_url: str
    api_key: Secret | None = field(repr=False)
    model: str
    read_timeout_s: float = 60.0
    deadline_s: float = 300.0
    retries: int = 4
    invalid_retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_tokens: int = 4096

    @classmethod
    def from_config(cls, config: Config) -> ClientSettings:
        return cls(
            base_url=config.llm_base_url,
            api_key=config.llm_api_key,
            model=config.llm_model,
            read_timeout_s=config.llm_timeout_s,
            deadline_s=config.llm_deadline_s,
            retries=config.llm_retries,
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """The JSON object the model answered, and what getting it cost (every attempt)."""

    data: dict[str, Any]
    usage: Usage
    attempts: int


class _Retry(Exception):  # noqa: N818 - control flow, never escapes this module
    def __init__(self, problem: str, wait_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait_s = wait_s


class ChatClient:
    """One connection pool to one server; safe to share between threads."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        import httpx

        if settings.api_key is None:
            raise LLMError(f"LLM enhancement {NO_KEY}", fatal=True)
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.api_key.reveal()}"},
            follow_redirects=False,  # a redirect would carry the key elsewhere
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The chat-completions request: JSON mode, no thinking, no sampling noise."""
        return {
            "model": self.settings.model,
            "messages": messages,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "thinking": {"type": "disabled"},
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }

    def chat_json(self, messages: list[dict[str, str]]) -> Answer:
        """The model's JSON object for ``messages``, retrying what may pass; else ``LLMError``."""
        body = self.request_body(messages)
        deadline = self._clock() + self.settings.deadline_s
        usage = Usage()
        attempts = transient = invalid = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise LLMError(self._late(), usage)
            attempts += 1
            try:
                data, spent = self._attempt(body, remaining, deadline)
                usage += spent
                return Answer(data, usage, attempts)
            except _Invalid as exc:
                usage += exc.usage
                invalid += 1
                if invalid > self.settings.invalid_retries:
                    raise LLMError(
                        f"LLM answered {exc.problem} {invalid} times; gave up", usage
                    ) from None
                log.info("LLM answered %s; asking again", exc.problem)
                continue  # no wait: the server is fine, the answer was not
            except _Retry as exc:
                transient += 1
                if transient > self.settings.retries:
                    raise LLMError(
                        f"LLM server: {exc.problem} (gave up after {attempts} attempts)", usage
                    ) from None
                wait = self._backoff(transient, exc.wait_s)
                if self._clock() + wait >= deadline:
                    raise LLMError(
                        f"LLM server: {exc.problem}; the next try would pass the "
                        f"{self.settings.deadline_s:g} s deadline",
                        usage,
                    ) from None
                log.info("LLM server: %s; retrying in %.1f s", exc.problem, wait)
                self._sleep(wait)

    def _late(self) -> str:
        return f"LLM server gave no answer within the {self.settings.deadline_s:g} s deadline"

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential with jitter (so parallel chunks do not retry in step); never
        sooner than the server's ``Retry-After``."""
        step = min(self.settings.backoff_max_s, self.settings.backoff_s * 2.0 ** (attempt - 1))
        wait = step * (0.5 + self._jitter() / 2)
        if retry_after is not None:
            wait = retry_after + step * self._jitter() / 4
        return wait

    def _attempt(
        self, body: dict[str, Any], remaining: float, deadline: float
    ) -> tuple[dict[str, Any], Usage]:
        import httpx

        read = min(self.settings.read_timeout_s, remaining)
        timeout = httpx.Timeout(read, connect=min(10.0, remaining))
        try:
            with self._http.stream("POST", "/chat/completions", json=body, timeout=timeout) as r:
                chunks: list[bytes] = []
                # Streamed so that a server trickling keep-alive lines cannot keep us
                # past the deadline: each read is bounded, and so is their sum.
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    if self._clock() >= deadline:
                        raise LLMError(self._late())
                status, headers, raw = r.status_code, r.headers, b"".join(chunks)
        except httpx.TimeoutException as exc:
            if self._clock() >= deadline - 0.01:
                raise LLMError(self._late()) from None
            raise _Retry(f"no answer within {read:g} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from None
        if status == 200:
            return _parse(raw)
        if status >= 500 or status in RETRIED_STATUSES:
            raise _Retry(f"HTTP {status}{_detail(raw)}", _retry_after(headers))
        raise LLMError(_refusal(status, raw), fatal=True)


class _Invalid(Exception):  # noqa: N818
    def __init__(self, problem: str, usage: Usage) -> None:
        super().__init__(problem)
        self.problem = problem
        self.usage = usage


def _parse(raw: bytes) -> tuple[dict[str, Any], Usage]:
    """The JSON object in the first choice's content; blank lines before the body are
    DeepSeek's keep-alives and mean nothing."""
    try:
        envelope = json.loads(raw.decode("utf-8", "replace").strip())
    except json.JSONDecodeError:
        raise _Invalid("a body that is not JSON", Usage(requests=1)) from None
    if not isinstance(envelope, dict):
        raise _Invalid("a body that is not a completion", Usage(requests=1))
    usage = Usage.from_api(envelope.get("usage"))
    try:
        content = envelope["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Invalid("a completion without content", usage) from None
    text = (content or "").strip() if isinstance(content, str | type(None)) else ""
    if text.startswith("```"):  # some servers fence JSON mode's output anyway
        text = text.strip("`").removeprefix("json").strip()
    if not text:
        raise _Invalid("blank content", usage)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise _Invalid("invalid JSON", usage) from None
    if not isinstance(data, dict):
        raise _Invalid("JSON that is not an object", usage)
    return data, usage


def _detail(raw: bytes) -> str:
    """The server's own error message, one short line (scrubbed by ``LLMError``)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        text = str(message or data.get("message") or "") if isinstance(data, dict) else text
    except json.JSONDecodeError:
        pass
    line = " ".join(text.split())[:160]
    return f": {line}" if line else ""


def _refusal(status: int, raw: bytes) -> str:
    detail = _detail(raw)
    said = f" ({detail[2:]})" if detail else ""
    if status == 401:
        return f"LLM API refused the key (401){said}: check TRAX_LLM_API_KEY or DEEPSEEK_API_KEY"
    if status == 402:
        return f"LLM API account has no balance (402){said}: top it up to enhance"
    if status == 400:
        return f"LLM API rejected the request (400){detail}"
    if status == 422:
        return f"LLM API rejected the request's parameters (422){detail}"
    return f"LLM API answered HTTP {status}{detail}"


def _retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    value: str | None = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
