"""Twilio inbound and status webhooks through the real app: signed, forged, unsigned and garbage."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.fuzz import strategies as S
from tests.fuzz.harness import PUBLIC, App

PATHS = ["/webhooks/twilio", "/webhooks/twilio/status"]
STATUSES = ["queued", "sent", "delivered", "undelivered", "failed", "read", "canceled", "weird", ""]
FIELDS = ["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MessageStatus", "SmsStatus", "ErrorCode"]


@st.composite
def twilio_form(draw: Any) -> dict[str, str]:
    form: dict[str, str] = {}
    for name in FIELDS:
        if draw(st.integers(0, 4)) == 0:
            continue  # any field may be missing
        if name in ("From", "To"):
            form[name] = draw(S.phone_like)
        elif name == "Body":
            form[name] = draw(S.text)
        elif name in ("MessageStatus", "SmsStatus"):
            form[name] = draw(st.one_of(st.sampled_from(STATUSES), S.small_text))
        elif name == "ErrorCode":
            form[name] = draw(st.one_of(st.sampled_from(["21610", "30003", "0", "²", "-1", "9" * 30]), S.small_text))
        else:
            form[name] = draw(st.one_of(st.from_regex(r"\ASM[0-9a-f]{32}\Z"), S.small_text))
    for _ in range(draw(st.integers(0, 2))):
        form[draw(S.small_text)] = draw(S.small_text)
    return form


# How the request is signed: properly, forged, missing, or a valid signature over other parameters.
SIGNING = st.sampled_from(["valid", "valid", "valid", "forged", "missing", "other_params", "garbage_body"])


def post_twilio(app: App, path: str, form: dict[str, str], signing: str, garbage: bytes = b"") -> Any:
    token = app.twilio.auth_token
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sig = RequestValidator(token).compute_signature(PUBLIC + path, form)
    if signing == "forged":
        sig = RequestValidator("not-the-token").compute_signature(PUBLIC + path, form)
    elif signing == "other_params":
        sig = RequestValidator(token).compute_signature(PUBLIC + path, {**form, "Body": "something else"})
    elif signing == "garbage_body":
        body = garbage
    if signing != "missing":
        headers["X-Twilio-Signature"] = sig
    return app.client.post(path, content=body, headers=headers)


def check_twilio(app: App, path: str, form: dict[str, str], signing: str, garbage: bytes) -> None:
    before = app.rows()
    resp = post_twilio(app, path, form, signing, garbage)
    assert resp.status_code < 500, (resp.status_code, resp.text[:200])
    refused = resp.status_code >= 400
    too_big = len(urlencode(form)) > 64 * 1024 and signing != "garbage_body"
    if too_big:
        assert resp.status_code == 413, resp.status_code  # the size is checked before anything else
    elif signing in ("forged", "missing") or (signing == "other_params" and form.get("Body") != "something else"):
        assert resp.status_code == 403, resp.status_code
    if signing == "garbage_body":
        assert resp.status_code in (400, 403, 413), resp.status_code
    if refused:
        assert app.rows() == before, "a refused webhook wrote to the database"
    elif path == "/webhooks/twilio":
        assert resp.headers["content-type"].startswith("text/xml")
    else:
        assert resp.status_code == 204


@settings(S.FUZZ, max_examples=40)
@given(
    path=st.sampled_from(PATHS),
    form=twilio_form(),
    signing=SIGNING,
    garbage=S.hostile_bytes(),
)
def test_twilio_webhooks_never_500_and_refusals_write_nothing(
    app: App, path: str, form: dict[str, str], signing: str, garbage: bytes
) -> None:
    check_twilio(app, path, form, signing, garbage)
