"""The practice's day in a real browser: sign in, see a confirmation, acknowledge a crisis alert,
answer a client, edit a script and see the simulator use it, read the dashboard. Each page is
saved as a screenshot under test-output/screenshots/."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.web.admin import auth
from channels.base import Inbound
from storage.tables import Alert, Message
from tests.browser.conftest import SCREENSHOTS, Server
from tests.channels.helpers import add_client

PASSWORD = "a long enough password"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def client_says(srv: Server, text: str) -> str:
    inb = Inbound("sim", text, client_id="c1", provider_id=f"browser-{secrets.token_hex(6)}")
    return srv.svc.handle_inbound(inb, datetime.now(UTC))


def wait_for(cond: Any, what: str, timeout: float = 10.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_practice_day_in_the_browser(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    svc = server.svc
    auth.create_user(svc.db, "rivera", PASSWORD, "admin", datetime.now(UTC), name="Dr Rivera")
    add_client(svc)
    ny = ZoneInfo("America/New_York")
    d = datetime.now(ny).date() + timedelta(days=1)
    start = datetime(d.year, d.month, d.day, 11, tzinfo=ny)
    svc.upsert_appointment(
        {"id": "a1", "client": "c1", "clinician": "rivera", "start": start.isoformat()}, datetime.now(UTC)
    )
    assert client_says(server, "yes, see you then") == "confirm"

    # sign in: an unauthenticated visit lands on the sign-in page first
    page.goto(f"{server.base}/admin/appointments")
    assert page.url.startswith(f"{server.base}/admin/login")
    shot(page, "01-sign-in")
    page.fill("input[name=username]", "rivera")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.base}/admin/appointments")
    row = page.locator('tr[data-appointment="a1"]')
    assert "confirmed by client" in row.inner_text()
    shot(page, "02-appointments")

    # a crisis alert, acknowledged from the alerts page
    assert client_says(server, "i don't want to live anymore, i want to end it all") == "crisis"
    page.click("nav >> text=Alerts")
    with Session(svc.db) as s:
        alert = s.exec(select(Alert)).one()
    page.locator(f'tr[data-alert="{alert.id}"] >> text=Acknowledge').click()
    page.wait_for_url("**/admin/alerts?done=acked")
    assert "Alert acknowledged" in page.inner_text("main")
    with Session(svc.db) as s:
        a = s.get(Alert, alert.id)
        assert a is not None and a.status == "acked" and a.acked_by == "Dr Rivera"
    shot(page, "03-alerts")

    # answer the client from the inbox
    page.click("nav >> text=Inbox")
    shot(page, "04-inbox")
    page.click("a[href='/admin/inbox/c1']")
    page.fill("textarea[name=text]", "Hi Ana, this is Dr Rivera. I'll call you in five minutes.")
    page.click("form.reply button[type=submit]")
    page.wait_for_url("**/admin/inbox/c1?done=sent")
    assert "I'll call you in five minutes" in page.locator("ol.thread").inner_text()
    shot(page, "05-conversation")

    def delivered() -> bool:
        with Session(svc.db) as s:
            m = s.exec(select(Message).where(Message.reason == "staff:Dr Rivera")).first()
            return m is not None and m.status in ("sent", "delivered")

    wait_for(delivered, "the staff reply to leave through the outbox")

    # edit a script, with the live segment count, and see the simulator use it
    page.goto(f"{server.base}/admin/scripts/en/help.fallback")
    area = page.locator("textarea[name=text]")
    area.fill("Desculpe, não entendi. Fale com {practice}.")
    expect(page.locator("#segments")).to_contain_text("UCS-2 · 1 SMS segment")
    shot(page, "06-script-editor")
    area.fill("Sorry, I did not get that. Ask for a person at {practice}.")
    expect(page.locator("#segments")).to_contain_text("GSM-7 · 1 SMS segment")
    page.click("text=Save override")
    page.wait_for_url("**/admin/scripts/en/help.fallback?done=saved")

    page.goto(f"{server.base}/")
    page.fill("#name", "Bea")
    page.select_option("#lang", "en")
    page.click("#go")
    page.wait_for_selector("#say", state="visible")
    page.fill("#text", "purple giraffes")
    page.press("#text", "Enter")
    page.wait_for_selector("text=Sorry, I did not get that. Ask for a person at Clinica Test.")
    shot(page, "07-simulator")

    # the retention dashboard
    page.goto(f"{server.base}/admin/dashboard")
    expect(page.locator("svg.chart")).to_have_count(2)  # returns, rates; no ratings yet: a sentence instead
    expect(page.locator("svg.chart").first).to_contain_text("reference 65%")
    assert "No ratings in this period yet." in page.inner_text("main")
    shot(page, "08-dashboard")


def test_users_page_and_a_clinician_seeing_only_their_clients(server: Server, page: Any) -> None:
    svc = server.svc
    now = datetime.now(UTC)
    auth.create_user(svc.db, "boss", PASSWORD, "admin", now, name="Practice Manager")
    add_client(svc, "c1")
    add_client(svc, "c2", phone="+15551230002")
    soon = (now + timedelta(days=3)).isoformat()
    svc.upsert_appointment({"id": "a1", "client": "c1", "clinician": "rivera", "start": soon}, now)
    svc.upsert_appointment({"id": "a2", "client": "c2", "start": soon}, now)

    # the admin creates a clinician user mapped to Dr. Rivera
    page.goto(f"{server.base}/admin/login")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/appointments")
    page.click("nav >> text=Users")
    page.fill("form.user-form input[name=username]", "rivera")
    page.fill("form.user-form input[name=name]", "Dr Rivera")
    page.select_option("form.user-form select[name=role]", "clinician")
    page.select_option("form.user-form select[name=clinician]", "rivera")
    page.fill("form.user-form input[name=password]", PASSWORD)
    shot(page, "09-users")
    page.click("form.user-form >> text=Create user")
    page.wait_for_url("**/admin/users/*?done=user_created")
    assert "User created" in page.inner_text("main")
    shot(page, "10-user-page")
    page.click("header >> text=Sign out")
    page.wait_for_url("**/admin/login")

    # the clinician sees their client, not the colleague's, and a guessed URL is a 404
    page.fill("input[name=username]", "rivera")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/appointments")
    assert page.locator("nav >> text=Users").count() == 0
    page.click("nav >> text=Clients")
    assert page.locator('tr[data-client="c1"]').count() == 1
    assert page.locator('tr[data-client="c2"]').count() == 0
    shot(page, "11-clinician-clients")
    resp = page.goto(f"{server.base}/admin/inbox/c2")
    assert resp is not None and resp.status == 404
    assert "No such client" in page.inner_text("main")
    shot(page, "12-clinician-guessed-url")
