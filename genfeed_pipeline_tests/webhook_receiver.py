"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every request.

The signature is checked the way GenFeed's receiver must check it, independently of the pipeline's code: the
HMAC-SHA256 of the raw body under the configured secret is recomputed here with `hmac` and `hashlib` and
compared with `X-GenFeed-Signature`. A test can script the next answers (`respond_with(500, times=2)`,
`respond_with(429, headers={"Retry-After": "0.2"})`); every other request gets 200.

Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

SIGNATURE_HEADER = "x-genfeed-signature"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. `headers` keys are lower-cased; `json` is None when the body is not JSON."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    signature_valid: bool
    received_at: float
    answered_status: int


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class WebhookReceiver:
    """Run with `with WebhookReceiver(secret) as receiver:` and POST to `receiver.url`.

    `signature_valid` is True only when a secret is configured and the request's signature header equals
    `sha256=` + the hex HMAC-SHA256 of the raw body under it.
    """

    def __init__(self, secret: str | None = None, path: str = "/hooks/genfeed") -> None:
        self.secret = secret
        self.path = path
        self._requests: list[RecordedRequest] = []
        self._answers: deque[_Answer] = deque()
        self._condition = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        handler = type("BoundHandler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # -- scripting and inspection ---------------------------------------------------------------------------

    def respond_with(
        self, status: int, *, times: int = 1, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer the next `times` requests with `status` (after those already scripted)."""
        with self._condition:
            self._answers.extend(_Answer(status, dict(headers or {}), body) for _ in range(times))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._condition:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The first `count` requests, waiting up to `timeout` seconds for them to arrive."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} request(s) within {timeout}s, got {len(self._requests)}"
                    )
                self._condition.wait(remaining)
            return list(self._requests[:count])

    def expected_signature(self, body: bytes) -> str | None:
        if self.secret is None:
            return None
        return "sha256=" + hmac.new(self.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()

    # -- called by the handler ------------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Answer:
        expected = self.expected_signature(body)
        received = headers.get(SIGNATURE_HEADER)
        valid = (
            expected is not None
            and received is not None
            and hmac.compare_digest(expected.encode(), received.encode())
        )
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self._condition:
            answer = self._answers.popleft() if self._answers else _Answer(200, {}, b"ok")
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    json=parsed,
                    signature_valid=valid,
                    received_at=time.monotonic(),
                    answered_status=answer.status,
                )
            )
            self._condition.notify_all()
        return answer


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.receiver._record(self.command, self.path, headers, body)
        payload = answer.body or (b"" if answer.status < 300 else f"status {answer.status}".encode())
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass
