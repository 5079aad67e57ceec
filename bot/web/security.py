"""Response headers, cookie flags, body-size limits and the /metrics credential, for every route.

One ASGI middleware in front of the whole app, so a route added later gets the same protection
without remembering to ask for it (SECURITY.md lists the controls and the tests that enforce them):

- every request body is capped by its path (``LIMITS``) before any handler reads it: a declared
  ``Content-Length`` over the cap, or a streamed body that grows past it, is a 413;
- every response gets ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy`` and a
  Content-Security-Policy (a handler's own CSP wins: the admin pages set theirs); the simulator
  page's inline script and style are allowed by their SHA-256 taken from the template file, never
  from the response (hashing the response would allow an injected script too);
- cookies are HttpOnly and SameSite=Lax, and Secure when ``RAPPORT_PUBLIC_URL`` is https;
- ``/metrics`` needs ``Authorization: Bearer $RAPPORT_METRICS_TOKEN`` when that is set, and is
  otherwise answered only to a loopback client that no proxy relayed (see ``metrics_allowed``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KIB = 1024
# Longest first: the first prefix that matches decides. Webhooks and the API carry one small
# object; admin forms are a reply or a script text; the simulator sends one chat line.
LIMITS: tuple[tuple[str, int], ...] = (
    ("/webhooks/", 64 * KIB),
    ("/api/", 64 * KIB),
    ("/admin", 32 * KIB),
    ("/sim/", 8 * KIB),
)
DEFAULT_LIMIT = 16 * KIB
SIM_TEMPLATE = Path(__file__).resolve().parent / "templates" / "sim.html"
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def limit_for(path: str) -> int:
    for prefix, limit in LIMITS:
        if path.startswith(prefix):
            return limit
    return DEFAULT_LIMIT


def inline_hashes(html: str) -> dict[str, list[str]]:
    """CSP source expressions for each inline ``<script>`` and ``<style>`` block of a template."""
    out: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        out[kind].append(f"'sha256-{digest}'")
    return out


def page_csp(template: Path = SIM_TEMPLATE) -> str:
    """The simulator (or status) page at ``/``: its own inline code only, talking to this origin."""
    try:
        h = inline_hashes(template.read_text(encoding="utf-8"))
    except OSError:
        h = {"script": [], "style": []}
    script = " ".join(["'self'", *h["script"]])
    style = " ".join(["'self'", *h["style"]])
    return (
        f"default-src 'self'; script-src {script}; style-src {style}; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def bearer_ok(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_allowed(scope: Scope, token: str | None) -> bool:
    """With a token: the bearer token, from anywhere. Without: loopback only, and not via a proxy.

    A reverse proxy on the same host connects from 127.0.0.1, so a request carrying forwarding
    headers is treated as coming from outside: set ``RAPPORT_METRICS_TOKEN`` in that setup.
    """
    headers = dict(scope.get("headers") or [])
    if token:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        return bearer_ok(auth, token)
    client = scope.get("client")
    if not client or not is_loopback(client[0]):
        return False
    return not any(h in headers for h in PROXY_HEADERS)


class SecurityMiddleware:
    """Mounted last (outermost) in ``bot.web.app.create_app``; see the module docstring."""

    def __init__(self, app: ASGIApp, *, https: bool = False, metrics_token: str | None = None):
        self.app = app
        self.https = https
        self.metrics_token = metrics_token
        self.page_csp = page_csp()
        # The headers every answer gets unless it set its own, built once: for the status page,
        # for the API and the simulator (not cached), for everything else.
        self.defaults = (
            self._default_headers(self.page_csp, no_store=False),
            self._default_headers(STRICT_CSP, no_store=True),
            self._default_headers(STRICT_CSP, no_store=False),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        wrapped = self._headers(send, path)
        if path == "/metrics" and not metrics_allowed(scope, self.metrics_token):
            await _plain(wrapped, 401 if self.metrics_token else 403, b"metrics: not allowed from here\n")
            return
        limit = limit_for(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(wrapped, path)
            return
        body, tail = await _read_capped(receive, limit)
        if body is None:
            await _too_large(wrapped, path)
            return
        await self.app(scope, _replay(body, tail, receive), wrapped)

    def _headers(self, send: Send, path: str) -> Send:
        kind = 0 if path == "/" else 1 if path.startswith(("/api/", "/sim/")) else 2
        defaults = self.defaults[kind]
        https = self.https

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _v in headers}
                headers += [(k, v) for k, v in defaults if k not in names]
                if b"set-cookie" in names:
                    headers = [(k, _cookie_flags(v, https) if k.lower() == b"set-cookie" else v) for k, v in headers]
                message["headers"] = headers
            await send(message)

        return wrapped

    def _default_headers(self, csp: str, *, no_store: bool) -> tuple[tuple[bytes, bytes], ...]:
        out = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", csp.encode()),
        ]
        if self.https:
            out.append((b"strict-transport-security", b"max-age=31536000"))
        if no_store:
            out.append((b"cache-control", b"no-store"))
        return tuple(out)


def _cookie_flags(value: bytes, https: bool) -> bytes:
    """Add the flags a cookie lacks; never removes one a handler set."""
    lower = value.lower()
    out = value
    if b"httponly" not in lower:
        out += b"; HttpOnly"
    if b"samesite" not in lower:
        out += b"; SameSite=Lax"
    if https and b"secure" not in lower:
        out += b"; Secure"
    return out


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == b"content-length":
            return int(v) if v.isdigit() else None
    return None


async def _read_capped(receive: Receive, limit: int) -> tuple[bytes | None, Message | None]:
    """The body read up to ``limit`` (None when it is longer), and a disconnect that cut it short.

    Bodies here are small (the caps are kilobytes), so reading them before the handler costs
    nothing and means no handler can be fed more than its cap.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, tail: Message | None, receive: Receive) -> Receive:
    """The handler's ``receive``: the body in one piece, then whatever the connection says next."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if tail is not None:
        queue.append(tail)

    async def again() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return again


async def _too_large(send: Send, path: str) -> None:
    if path.startswith("/api/"):  # the practice API answers in its own error shape (DESIGN §5)
        body = b'{"error": {"field": null, "message": "request body too large"}}'
        await _plain(send, 413, body, b"application/json")
    else:
        await _plain(send, 413, b"request body too large\n")


async def _plain(send: Send, status: int, body: bytes, ctype: bytes = b"text/plain; charset=utf-8") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- secrets out of the logs ------------------------------------------------------------------------

REDACTED = "[redacted]"
PHONE_MASK = "[phone]"
# E.164 as written, or URL-encoded in a logged path (/admin/inbox/%2B15551234567: a client whose id
# is their phone number, as an iCalendar import makes them).
_PHONE = re.compile(r"(?<![\w+])(?:\+|%2[Bb])[1-9]\d{6,14}(?!\d)")
_MIN_SECRET = 6  # shorter values would redact ordinary words
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed = False


def secret_values(settings: Any, env: Mapping[str, str], db_url: Any = None) -> set[str]:
    """Every secret this process holds: the settings' secret fields, what is derived from them,
    the data keys, the write-back secret, and the database password (of the URL in use)."""
    from bot.settings import SECRET_FIELDS

    out: set[str] = set()
    for name in SECRET_FIELDS - {"database_url"}:
        v = getattr(settings, name, None)
        if isinstance(v, str):
            out.add(v)
    tg = getattr(settings, "telegram_secret", None)
    link = getattr(settings, "deep_link_key", None)
    out.update(v for v in (tg, link.decode() if isinstance(link, bytes) else None) if v)
    out.update(k.strip() for k in (env.get("RAPPORT_DATA_KEY") or "").split(","))
    out.add(env.get("RAPPORT_WRITEBACK_SECRET") or "")
    out.update(p for p in (_password(getattr(settings, "database_url", None)), _password(db_url)) if p)
    return {v for v in out if len(v) >= _MIN_SECRET}


def _password(url: Any) -> str | None:
    """The password in a database URL (a string, or SQLAlchemy's URL object, which masks it in str())."""
    if url is None:
        return None
    if hasattr(url, "password"):
        return str(url.password) if url.password else None
    try:
        p = make_url(str(url)).password
    except Exception:  # an unparsable URL has no password to find
        return None
    return str(p) if p else None


def protect_logs(values: set[str]) -> None:
    """Redact these values from every log record from now on, whatever logger or handler.

    A record factory sees each record that passes its logger's level, before any handler: a
    library that logs a URL with the Telegram token in it (httpx at INFO) or a traceback quoting a
    connection string is caught here even when an operator turns debug logging on.
    """
    global _installed
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET)
        if _installed:
            return
        _installed = True
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            _redact(record)
            return record

        logging.setLogRecordFactory(factory)


def redact(text: str) -> str:
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def mask_phones(text: str) -> str:
    return _PHONE.sub(PHONE_MASK, text)


def _redact(record: logging.LogRecord) -> None:
    """Clean the record's arguments one by one (formatters such as uvicorn's access log unpack
    them), and fall back to a cleaned, pre-formatted message if a secret still shows."""
    phones = record.levelno >= logging.INFO  # DEBUG is an operator's explicit choice

    def clean(text: str) -> str:
        text = redact(text)
        return mask_phones(text) if phones else text

    def clean_arg(a: Any) -> Any:
        if isinstance(a, bool | int | float) or a is None:
            return a
        text = str(a)
        cleaned = clean(text)
        return a if cleaned == text else cleaned

    try:
        message = record.getMessage()
        if clean(message) != message:  # rare: most records hold nothing to hide
            if isinstance(record.msg, str):
                record.msg = clean(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(clean_arg(a) for a in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {k: clean_arg(v) for k, v in record.args.items()}
            message = record.getMessage()
            cleaned = clean(message)
            if cleaned != message:  # the parts were clean but their combination is not
                record.msg, record.args = cleaned, None
    except Exception:  # a broken format string is the handler's problem, as before
        return
    if record.exc_info and not record.exc_text:
        record.exc_text = clean("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = clean(record.stack_info)
