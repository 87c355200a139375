"""Signed webhook delivery of catalog events to GenFeed (plain Python, no Dagster).

Each event is serialised once; the same bytes go to every configured URL, signed with
`X-GenFeed-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>`. A receiver verifies the signature over
the raw body it read, before parsing it, with `verify_signature`:

    body = await request.body()
    if not verify_signature(secret, body, request.headers.get("X-GenFeed-Signature")):
        return 401

Webhook URLs often carry tokens (in the userinfo or the query string), so a URL is only ever logged or
returned as `scheme://host[:port]/path`. Requests go straight to an `httpx.HTTPTransport` rather than through
`httpx.Client`, because the client logs every request's full URL at INFO.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from tenacity import RetryCallState

from genfeed_pipeline.retry import AttemptError, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

URLS_ENV = "GENFEED_WEBHOOK_URLS"
SECRET_ENV = "GENFEED_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-GenFeed-Signature"
EVENT_HEADER = "X-GenFeed-Event"
DELIVERY_HEADER = "X-GenFeed-Delivery"
SIGNATURE_PREFIX = "sha256="
USER_AGENT = "genfeed-pipeline-webhook/1"
MAX_PARALLEL_DELIVERIES = 8
ERROR_BODY_CHARS = 200
REDACTED = "***"
MIN_SCRUBBED_CHARS = 4


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of delivering one event to one URL; `url_redacted` never holds userinfo or query."""

    url_redacted: str
    delivered: bool
    attempts: int
    status: int | None
    error: str | None


class _AttemptFailed(AttemptError):
    """One failed attempt, already described without the URL's secrets."""

    def __init__(
        self, reason: str, *, status: int | None = None, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self._retryable = retryable
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self._retryable


def sign(secret: str, body: bytes) -> str:
    """The `X-GenFeed-Signature` value for `body`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of the raw `body` under `secret` (constant-time comparison)."""
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def serialize_event(event: Mapping[str, Any]) -> bytes:
    """The canonical body: sorted keys, no spaces; Decimal, datetime and other non-JSON values as strings."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()


def redact_url(url: str) -> str:
    """`scheme://host[:port]/path` — without userinfo, query string or fragment, which may carry tokens."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _url_secrets(url: str) -> list[str]:
    """The substrings of `url` that must never appear in a log record or a result, longest first.

    Parts shorter than `MIN_SCRUBBED_CHARS` (a `?page=1`) are left alone: replacing them would garble the
    message without hiding anything.
    """
    try:
        parts = urlsplit(url)
        query_values = [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:
        return [url] if url else []
    found = [parts.query, unquote(parts.query), parts.fragment, *query_values]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo, unquote(userinfo), *userinfo.split(":", 1), *unquote(userinfo).split(":", 1)]
    scrubbed = {item for item in found if len(item) >= MIN_SCRUBBED_CHARS}
    return sorted({url, *scrubbed} - {""}, key=len, reverse=True)


class WebhookSender:
    """Delivers catalog events to GenFeed's webhook URLs, signed, with retries; `send` never raises."""

    def __init__(
        self,
        urls: Sequence[str],
        secret: str | None,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._urls = [url.strip() for url in urls if url and url.strip()]
        self._secret = secret or None
        self.timeout_seconds = timeout_seconds
        # A receiver that asks for a longer wait than the backoff's cap is given up on, not waited for.
        self.retry_policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_initial_seconds=backoff_initial_seconds,
            backoff_max_seconds=backoff_max_seconds,
            max_retry_after_seconds=backoff_max_seconds,
        )
        if self._urls and self._secret is None:
            log.warning(
                "%s is not set: webhook messages to %d URL(s) are sent unsigned", SECRET_ENV, len(self._urls)
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **options: Any) -> WebhookSender:
        """A sender for `GENFEED_WEBHOOK_URLS` (comma-separated, blanks ignored), `GENFEED_WEBHOOK_SECRET`."""
        urls = [url.strip() for url in environ.get(URLS_ENV, "").split(",") if url.strip()]
        return cls(urls, environ.get(SECRET_ENV) or None, **options)

    @property
    def urls_redacted(self) -> list[str]:
        return [redact_url(url) for url in self._urls]

    @property
    def signed(self) -> bool:
        return self._secret is not None

    def __repr__(self) -> str:
        return f"WebhookSender(urls={self.urls_redacted!r}, signed={self.signed})"

    def send(self, event: Mapping[str, Any]) -> list[DeliveryResult]:
        """POST `event` to every URL (in parallel); one result per URL, in the order configured."""
        if not self._urls:
            return []
        event_type = str(event.get("type", "unknown"))
        try:
            body = serialize_event(event)
        except Exception as exc:
            reason = f"event could not be serialised: {type(exc).__name__}: {exc}"
            log.error("webhook event %s not sent: %s", event_type, reason)
            return [DeliveryResult(redact_url(url), False, 0, None, reason) for url in self._urls]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: event_type,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            with (
                httpx.HTTPTransport(retries=0) as transport,
                ThreadPoolExecutor(
                    max_workers=min(len(self._urls), MAX_PARALLEL_DELIVERIES),
                    thread_name_prefix="genfeed-webhook",
                ) as pool,
            ):
                futures = [pool.submit(self._deliver, transport, url, body, headers) for url in self._urls]
                return [future.result() for future in futures]
        except Exception as exc:
            reason = self._scrub(f"webhook delivery could not run: {type(exc).__name__}: {exc}", *self._urls)
            log.error("webhook event %s not sent: %s", event_type, reason)
            return [DeliveryResult(redact_url(url), False, 0, None, reason) for url in self._urls]

    def _deliver(
        self, transport: httpx.HTTPTransport, url: str, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryResult:
        redacted = redact_url(url)
        delivery_id = str(uuid.uuid4())
        attempts = 0
        try:
            request_headers = {**headers, DELIVERY_HEADER: delivery_id, **self._auth_header(url)}

            def attempt() -> int:
                nonlocal attempts
                attempts += 1
                return self._post_once(transport, url, body, request_headers)

            retrying = self.retry_policy.retrying(lambda state: self._log_retry(state, url, delivery_id))
            status = retrying(attempt)
        except _AttemptFailed as exc:
            error = self._scrub(exc.reason, url)
            log.error(
                "webhook delivery %s to %s failed after %d attempt(s): %s",
                delivery_id,
                redacted,
                attempts,
                error,
            )
            return DeliveryResult(redacted, False, attempts, exc.status, error)
        except Exception as exc:
            error = self._scrub(f"{type(exc).__name__}: {exc}", url)
            log.error("webhook delivery %s to %s failed: %s", delivery_id, redacted, error)
            return DeliveryResult(redacted, False, attempts, None, error)
        log.info(
            "webhook delivery %s to %s: HTTP %d after %d attempt(s)", delivery_id, redacted, status, attempts
        )
        return DeliveryResult(redacted, True, attempts, status, None)

    def _post_once(
        self, transport: httpx.HTTPTransport, url: str, body: bytes, headers: Mapping[str, str]
    ) -> int:
        try:
            request = httpx.Request(
                "POST",
                url,
                content=body,
                headers=headers,
                extensions={"timeout": httpx.Timeout(self.timeout_seconds).as_dict()},
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            raise _AttemptFailed(f"invalid webhook URL: {exc}", retryable=False) from None
        if request.url.scheme not in ("http", "https") or not request.url.host:
            raise _AttemptFailed(
                "invalid webhook URL: an http(s) URL with a host is required", retryable=False
            )
        try:
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        snippet = response.content[:ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
        if snippet:
            reason += f": {' '.join(snippet.split())}"
        retryable = status == 429 or status >= 500
        retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
        if retry_after is not None and self.retry_policy.asks_too_long(retry_after):
            limit = self.retry_policy.max_retry_after_seconds
            reason += f" (Retry-After {retry_after:g}s exceeds the {limit:g}s limit)"
            raise _AttemptFailed(reason, status=status, retryable=False)
        raise _AttemptFailed(reason, status=status, retryable=retryable, retry_after=retry_after)

    def _log_retry(self, state: RetryCallState, url: str, delivery_id: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, _AttemptFailed) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "webhook delivery %s to %s: attempt %d failed (%s); retrying in %.2fs",
            delivery_id,
            redact_url(url),
            state.attempt_number,
            self._scrub(reason, url),
            wait,
        )

    @staticmethod
    def _auth_header(url: str) -> dict[str, str]:
        """Basic credentials from the URL's userinfo, as `httpx.Client` would send them."""
        parts = urlsplit(url)
        if parts.username is None:
            return {}
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}

    def _scrub(self, text: str, *urls: str) -> str:
        secrets = [part for url in urls for part in _url_secrets(url)]
        if self._secret:
            secrets.append(self._secret)
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text
