"""The practice API bodies (DESIGN §5): any JSON, any id, any token -> a 2xx or a shaped 4xx.

A refused request leaves every table as it was; an accepted client or appointment reads back as
it was written.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import strategies as S
from tests.fuzz.harness import AUTH, App

ids = st.one_of(
    st.sampled_from(["c1", "a1", "1", "²", "١", "0", "-1", "9" * 40, ".", "..", "%2F", " "]),
    S.small_text.filter(bool),
)

client_body = st.fixed_dictionaries(
    {},
    optional={
        "id": S.maybe(ids),
        "name": S.maybe(S.text),
        "phone": S.maybe(S.phone_like),
        "telegram": S.maybe(st.one_of(st.integers(), S.small_text)),
        "lang": S.maybe(S.lang_like),
        "tz": S.maybe(S.tz_like),
        "country": S.maybe(st.one_of(st.sampled_from(["BR", "us", "ß", "ÉÉ", "X1"]), S.small_text)),
        "channel": S.maybe(st.sampled_from(["sms", "telegram", "sim", ""])),
        "consent": S.maybe(st.booleans()),
        "extra": S.json_values,
    },
)
appointment_body = st.fixed_dictionaries(
    {},
    optional={
        "id": S.maybe(ids),
        "client": S.maybe(st.one_of(st.just("c1"), ids)),
        "clinician": S.maybe(st.sampled_from(["rivera", "nobody", ""])),
        "start": S.maybe(S.iso_like),
        "minutes": S.maybe(st.one_of(st.integers(-10, 1000), st.integers())),
        "bogus": S.json_values,
    },
)
attendance_body = st.fixed_dictionaries(
    {}, optional={"status": S.maybe(st.sampled_from(["attended", "missed", "cancelled", ""])), "x": S.json_values}
)
staff_body = st.fixed_dictionaries({}, optional={"by": S.maybe(S.small_text), "y": S.json_values})


@st.composite
def api_call(draw: Any) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["client", "appointment", "attendance", "ack", "resolve"]))
    rid = draw(ids)
    path = {
        "client": "/api/clients/{}",
        "appointment": "/api/appointments/{}",
        "attendance": "/api/appointments/{}/attendance",
        "ack": "/api/alerts/{}/ack",
        "resolve": "/api/alerts/{}/resolve",
    }[kind].format(quote(rid, safe=""))
    method = "PUT" if kind in ("client", "appointment") else "POST"
    body_strategy = {
        "client": client_body,
        "appointment": appointment_body,
        "attendance": attendance_body,
        "ack": staff_body,
        "resolve": staff_body,
    }[kind]
    # Mostly a JSON object; sometimes any JSON, garbage bytes, or nothing.
    shape = draw(st.sampled_from(["object"] * 6 + ["json", "bytes", "empty"]))
    if shape == "object":
        body = json.dumps(draw(body_strategy), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif shape == "json":
        body = json.dumps(draw(S.json_values)).encode()
    elif shape == "bytes":
        body = draw(S.hostile_bytes())
    else:
        body = b""
    auth = draw(st.sampled_from(["good"] * 8 + ["none", "bad"]))
    headers = {"Content-Type": "application/json"}
    if auth == "good":
        headers.update(AUTH)
    elif auth == "bad":
        headers["Authorization"] = "Bearer " + draw(S.small_text).encode("ascii", "ignore").decode()
    return method, path, body, headers


def check_api(app: App, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    from tests.fuzz.harness import assert_error_shape

    before = app.rows()
    resp = app.client.request(method, path, content=body, headers=headers)
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    too_big = len(body) > 64 * 1024  # refusing a big body before reading the token is fine
    if headers.get("Authorization") != AUTH["Authorization"]:
        assert resp.status_code in ((401, 413) if too_big else (401,)), resp.status_code
    if resp.status_code >= 400:
        assert resp.status_code in (400, 401, 404, 409, 413, 422), resp.status_code
        assert_error_shape(resp)
        assert app.rows() == before, "a refused request wrote to the database"
        return
    out = resp.json()
    if method == "PUT":
        # Round trip: what the API answered is what it now reads back.
        got = app.client.get(path, headers=AUTH)
        assert got.status_code == 200, got.text[:200]
        read = got.json()
        for k, v in out.items():
            if k != "history":
                assert read[k] == v, (k, read[k], v)


@settings(S.FUZZ, max_examples=40)
@given(call=api_call())
def test_api_never_500_and_refusals_write_nothing(app: App, call: tuple[str, str, bytes, dict[str, str]]) -> None:
    check_api(app, *call)
