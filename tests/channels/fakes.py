"""Fake Twilio and Telegram Bot API servers on 127.0.0.1, for the real client libraries to talk to.

Each fake records what it was given and answers from a plan (a list of canned outcomes, one per
call, then success): the tests drive 429s, 5xx, refusals, dead connections and lost answers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeProvider:
    # python-telegram-bot's tests run one event loop per call, which a pooled connection would outlive.
    keep_alive = False

    def __init__(self) -> None:
        self.plan: list[Any] = []
        self.down = False  # drop every connection without an answer
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        # False for long load runs: keep counts, not every request and message (a soak's fake would
        # otherwise hold hundreds of thousands of dicts, and the garbage collector's full passes
        # over them stall the load generator sharing its process)
        self.record = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive (as the real API) where the client library pools connections across calls.
            protocol_version = "HTTP/1.1" if outer.keep_alive else "HTTP/1.0"
            # headers and body leave in separate writes: without this, Nagle and the client's
            # delayed ACK hold every kept-alive answer for 40 ms
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                ctype = self.headers.get("content-type", "")
                if "json" in ctype:
                    return json.loads(raw or b"{}")
                form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                return form

            def _handle(self, method: str) -> None:
                if outer.down:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                url = urlsplit(self.path)
                params = self._body() if method == "POST" else {k: v[0] for k, v in parse_qs(url.query).items()}
                if outer.record:
                    with outer.lock:
                        outer.requests.append((method, url.path, params))
                status, payload, headers = outer.answer(method, url.path, params, self.headers)
                if status == 0:  # lose the answer: the request was taken, the client never hears back
                    time.sleep(outer.lost_answer_seconds)
                    self.close_connection = True
                    return
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

        self.lost_answer_seconds = 2.0
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def next_planned(self) -> Any:
        with self.lock:
            return self.plan.pop(0) if self.plan else None

    def answer(self, method: str, path: str, params: dict[str, Any], headers: Any) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def start(self) -> FakeProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeTwilio(FakeProvider):
    """``/2010-04-01/Accounts/{sid}/Messages.json``: create (POST) and list (GET)."""

    keep_alive = True

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "secret-auth-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []
        self.created = 0  # messages taken, recorded or not
        super().__init__()

    def _auth_ok(self, headers: Any) -> bool:
        want = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return bool(headers.get("Authorization") == want)

    def answer(self, method: str, path: str, params: dict[str, Any], headers: Any) -> tuple[int, Any, dict[str, str]]:
        expected = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if path != expected:
            return 404, {"code": 20404, "message": "not found", "status": 404}, {}
        if not self._auth_ok(headers):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}, {}
        if method == "GET":
            to = params.get("To")
            with self.lock:
                found = [m for m in reversed(self.messages) if to is None or m["to"] == to]
            return (
                200,
                {
                    "messages": found,
                    "next_page_uri": None,
                    "page": 0,
                    "page_size": 50,
                    "uri": path,
                    "first_page_uri": path,
                    "previous_page_uri": None,
                    "start": 0,
                    "end": len(found),
                },
                {},
            )
        planned = self.next_planned()
        if planned == 429:
            return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {}
        if planned == 500:
            return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {}
        if planned == 21610:
            return 400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}, {}
        msg = self._store(params)
        if planned == "lost":
            return 0, None, {}
        return 201, msg, {}

    def _store(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.created += 1
            sid = f"SM{self.created:032x}".replace("SM0", "SMf", 1)  # never equal to an inbound sid
            msg = {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": params.get("To"),
                "from": params.get("From"),
                "messaging_service_sid": params.get("MessagingServiceSid"),
                "body": params.get("Body"),
                "status": "queued",
                "direction": "outbound-api",
                "status_callback": params.get("StatusCallback"),
                "date_created": format_datetime(datetime.now(UTC), usegmt=True),
                "date_sent": None,
                "num_segments": "1",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            }
            if self.record:
                self.messages.append(msg)
        return msg


class FakeTelegram(FakeProvider):
    """``/bot{token}/{method}`` for the methods Rapport calls."""

    def __init__(self, token: str = "123456:TEST-token"):
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.webhook: dict[str, Any] | None = None
        self.updates: list[dict[str, Any]] = []
        super().__init__()

    @staticmethod
    def _ok(result: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, {"ok": True, "result": result}, {}

    def answer(self, method: str, path: str, params: dict[str, Any], headers: Any) -> tuple[int, Any, dict[str, str]]:
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        name = path[len(prefix) :]
        if name == "getMe":
            return self._ok(
                {
                    "id": 42,
                    "is_bot": True,
                    "first_name": "Rapport",
                    "username": "rapport_test_bot",
                    "can_join_groups": False,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                }
            )
        if name in ("setWebhook", "deleteWebhook"):
            self.webhook = params if name == "setWebhook" else None
            return self._ok(True)
        if name == "answerCallbackQuery":
            with self.lock:
                self.answered.append(str(params.get("callback_query_id")))
            return self._ok(True)
        if name == "getUpdates":
            with self.lock:
                ups, self.updates = self.updates, []
            if not ups:
                time.sleep(0.05)
            return self._ok(ups)
        if name == "sendMessage":
            planned = self.next_planned()
            if planned == 403:
                return (
                    403,
                    {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
                    {},
                )
            if planned == 429:
                return (
                    429,
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": "Too Many Requests: retry after 1",
                        "parameters": {"retry_after": 1},
                    },
                    {},
                )
            if planned == 502:
                return 502, b"Bad Gateway", {}
            if planned == "bad_markup" and params.get("reply_markup"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: BUTTON_DATA_INVALID"}, {}
            with self.lock:
                self.sent.append(params)
                mid = len(self.sent)
            chat = params.get("chat_id")
            return self._ok(
                {
                    "message_id": mid,
                    "date": int(time.time()),
                    "chat": {"id": int(chat) if str(chat).lstrip("-").isdigit() else 0, "type": "private"},
                    "text": params.get("text"),
                }
            )
        return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: method {name} unknown"}, {}


@contextmanager
def running(fake: FakeProvider) -> Iterator[Any]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
