"""A real chat-completions server on 127.0.0.1 for the LLM tests, scripted per test.

It speaks the OpenAI/DeepSeek protocol over real HTTP (``http.server`` in a
thread), so the client's retries, timeouts and parsing meet real sockets. A
test queues replies (``script``), each a ``Reply`` or a function of the
``Request`` that returns one; when the script runs out, ``default`` answers.
Replies can fail the way DeepSeek does: any status with ``Retry-After``,
blank keep-alive lines before the body, a hang, blank content, bad JSON.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FENCE = re.compile(r"<transcript (\w+)>\n(.*?)\n</transcript \1>", re.S)
LOW_MARK = "~"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])

    def segments(self) -> list[dict[str, Any]]:
        """The transcript lines between the fences, parsed: ``s`` the segment index
        (None for read-only context), ``w`` the words without their marks, ``low``
        the positions of words marked unsure (when there are any), ``ro`` whether
        the line is read-only context."""
        match = FENCE.search(self.user)
        assert match is not None, "no fenced transcript in the request"
        parsed = []
        for line in match.group(2).splitlines():
            index, _, text = line.partition("|")
            shown = text.split(" ")
            entry: dict[str, Any] = {
                "s": None if index == "-" else int(index),
                "w": [w.removesuffix(LOW_MARK) for w in shown],
                "ro": index == "-",
            }
            low = [i for i, w in enumerate(shown) if w.endswith(LOW_MARK)]
            if low:
                entry["low"] = low
            parsed.append(entry)
        return parsed

    def editable(self) -> list[dict[str, Any]]:
        return [s for s in self.segments() if not s.get("ro")]


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """A dict (sent as JSON), bytes or str (sent as they are)."""
    headers: dict[str, str] = field(default_factory=dict)
    keepalive: int = 0
    """Blank lines sent before the body, ``keepalive_every_s`` apart (DeepSeek's keep-alive)."""
    keepalive_every_s: float = 0.05
    hang_s: float = 0.0
    """Send nothing for this long first (ended early when the server stops)."""


Responder = Callable[[Request], Reply]


def completion(content: str | None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A chat-completions response whose message content is ``content``."""
    return {
        "id": "cmpl-test",
        "object": "chat.completion",
        "model": "test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "prompt_cache_hit_tokens": 600,
            "prompt_cache_miss_tokens": 400,
            "total_tokens": 1050,
        },
    }


def edits_reply(edits: list[Any], **kwargs: Any) -> Reply:
    """An answer in the asked-for form: ``{"e": [[segment, position, before, after]]}``."""
    return Reply(body=completion(json.dumps({"e": edits})), **kwargs)


def error_reply(status: int, message: str, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": "error", "code": status}}
    return Reply(status=status, body=body, headers=dict(headers))


class LLMServer:
    """Start with ``with LLMServer() as server:``; ``server.url`` is its base URL."""

    def __init__(self) -> None:
        self.script: list[Reply | Responder] = []
        self.default: Reply | Responder = edits_reply([])
        self.requests: list[Request] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else self.default
        return step if isinstance(step, Reply) else step(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Request(self.path, dict(self.headers.items()), body)
                reply = server._next(request)
                if reply.hang_s:
                    server.release.wait(reply.hang_s)
                if isinstance(reply.body, dict):
                    payload = json.dumps(reply.body).encode()
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                else:
                    payload = reply.body or b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if not reply.keepalive:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    for _ in range(reply.keepalive):
                        self.wfile.write(b"\n")
                        self.wfile.flush()
                        if server.release.wait(reply.keepalive_every_s):
                            return
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a deadline): that is the test

        return Handler


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
