"""Secrets are compared in constant time: no ``==`` / ``!=`` on a secret-named value in our code.

An AST scan of bot/, channels/ and storage/ flags every equality comparison that touches a name,
attribute or ``.get("…")`` key that looks like a credential (token, secret, signature, CSRF, MAC,
digest, password, hash). The few that are not secret comparisons are listed with the reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "channels", "storage")
SECRET = re.compile(
    r"(token|secret|signature|(^|_)sig($|_)|csrf|(^|_)mac($|_)|digest|password|passw|(^|_)hash($|_)|api_?key)", re.I
)
# (file, source of the comparison): why it is not a secret compared in variable time.
ALLOWED = {
    (
        "bot/web/admin/auth.py",
        "col(StaffSession.token_hash) == _digest(token)",
    ): "a SQL lookup by the SHA-256 of the cookie: timing reveals at most a prefix of a hash, not the token",
    (
        "channels/telegram.py",
        "len(raw) != _NONCE + 4 + _MAC",
    ): "the token's length, a public constant; the MAC itself goes through hmac.compare_digest",
}


def _names(node: ast.AST) -> Iterator[str]:
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            yield n.id
        elif isinstance(n, ast.Attribute):
            yield n.attr
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("get", "getlist", "first")
            and n.args
            and isinstance(n.args[0], ast.Constant)
            and isinstance(n.args[0].value, str)
        ):
            yield n.args[0].value
        elif isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
            yield n.slice.value


def suspicious(source: str) -> list[tuple[int, str]]:
    """(line, comparison) for each ``==``/``!=`` whose operands name something secret-looking."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)):
            continue
        if any(SECRET.search(name) for operand in (node.left, *node.comparators) for name in _names(operand)):
            out.append((node.lineno, ast.unparse(node)))
    return out


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("ok = given == settings.api_token", True),
        ("if request.headers.get('x-telegram-bot-api-secret-token') != secret: pass", True),
        ("ok = form['csrf'] == user.csrf", True),
        ("ok = mac != expected_mac", True),
        ("ok = hmac.compare_digest(given.encode(), token.encode())", False),
        ("ok = scheme.lower() != 'bearer'", False),
        ("ok = token is None", False),
    ],
)
def test_the_scan_finds_what_it_should(source: str, flagged: bool) -> None:
    assert bool(suspicious(source)) is flagged


def test_no_secret_is_compared_with_equality() -> None:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            for line, text in suspicious(path.read_text(encoding="utf-8")):
                if (rel, text) not in ALLOWED:
                    found.append(f"{rel}:{line}: {text}")
    assert not found, "use hmac.compare_digest (or list the line in ALLOWED with why):\n" + "\n".join(found)


def test_the_allow_list_is_current() -> None:
    """An allowed comparison that no longer exists is dropped, so the list cannot hide a new one."""
    present = set()
    for rel, text in ALLOWED:
        src = (ROOT / rel).read_text(encoding="utf-8")
        if any(t == text for _line, t in suspicious(src)):
            present.add((rel, text))
    assert present == set(ALLOWED)


def test_the_twilio_validator_compares_in_constant_time() -> None:
    """We rely on twilio's RequestValidator for X-Twilio-Signature: check its compare has no early exit."""
    import inspect

    from twilio import request_validator

    src = inspect.getsource(request_validator.compare)
    loop = src[src.index("for ") :]
    assert "return False" not in loop and "&=" in loop, "twilio's compare changed: review it (SECURITY.md)"
