"""While a person has taken a conversation over, the scripts do not answer the client; handing it
back returns the client to the scripts. Safety still runs first."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from bot.service import Service
from channels.base import Inbound
from tests.channels.helpers import CLIENT_PHONE, add_client, messages


def sms(svc: Service, text: str, pid: str) -> str:
    return svc.handle_inbound(Inbound("sms", text, address=CLIENT_PHONE, provider_id=pid), datetime.now(UTC))


def test_the_scripts_stay_quiet_while_taken_over(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    web.post("/admin/inbox/c1/takeover", data={"csrf": admin})
    before = len(messages(svc, "out"))
    assert sms(svc, "blue elephants", "SM1") == "taken_over"
    assert len(messages(svc, "out")) == before
    assert "blue elephants" in web.get("/admin/inbox/c1").text  # recorded for the person to read
    web.post("/admin/inbox/c1/handback", data={"csrf": admin})
    assert sms(svc, "blue elephants again", "SM2") == "fallback"
    web.post("/admin/inbox/c1/takeover", data={"csrf": admin})
    assert sms(svc, "I want to kill myself", "SM3") == "crisis"  # safety first, whatever the state
