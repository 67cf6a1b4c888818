"""The worker app on a phone (390×844): the incident card says who lives there and whom to
call, a critical incident sounds until acknowledged, and the installed app opens offline."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiomqtt
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from tests.api.support import DEMO_PASSWORD

pytestmark = pytest.mark.browser
SOS = "sos-b02-2-202"  # 2号楼2单元202室: an elder living alone; family 何红 (儿子) 13800005001


async def _phone(browser: Browser, url: str, user: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "CSP" in m.text else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    await page.fill("#username", user)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()
    await expect(page.locator("#live-state")).not_to_have_class("live-state off")
    return context, page


async def _sos(gateway, mosquitto) -> int:  # type: ignore[no-untyped-def]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        payload = {"ts": int(time.time() * 1000), "seq": 3, "event": "button_pressed"}
        await client.publish(f"safety/demo/sos/{SOS}/event", json.dumps(payload), qos=1)
    for _ in range(200):
        async with gateway.sessions() as s:
            found = await s.scalar(select(IncidentRow.id).where(IncidentRow.device_id == SOS))
        if found is not None:
            return int(found)
        await asyncio.sleep(0.05)
    raise AssertionError("no incident for the SOS call")


async def test_the_card_tells_the_worker_who_lives_there_and_whom_to_call(
    browser, gateway, server_url, mosquitto, artifacts
):
    _context, page = await _phone(browser, f"{server_url}/board/worker.html", "zhang-min")
    await expect(page.locator("body")).to_have_attribute("data-alarm", "off")
    incident_id = await _sos(gateway, mosquitto)

    card = page.locator(f'li.incident[data-id="{incident_id}"]')
    await expect(card).to_be_visible()
    await expect(card.locator(".card-where")).to_contain_text("2号楼 2单元 202室")
    await expect(card.locator(".card-where a.map-link")).to_have_attribute(
        "href", re.compile(r"^https://uri\.amap\.com/marker\?position=")
    )
    household = card.locator(".card-household")
    await expect(household.locator(".flag")).to_have_text(["独居老人", "有基础病"])
    await expect(household).to_contain_text("备注")
    call = household.locator('a.tel[href="tel:13800005001"]')
    await expect(call).to_contain_text("何红（儿子）")
    await expect(card.locator(".card-guidance")).to_contain_text("立即回拨老人电话")
    await expect(card.locator(".pressure")).to_contain_text("已持续")
    # A critical incident sounds and vibrates until someone acknowledges it.
    await expect(page.locator("body")).to_have_attribute("data-alarm", "on")
    await expect(page.locator("#alarm-bar")).to_be_visible()
    await page.screenshot(path=str(artifacts / "worker-card-household-390.png"), full_page=True)

    await card.locator("button.acknowledge").click()
    await expect(card).to_have_attribute("data-status", "acknowledged")
    await expect(page.locator("body")).to_have_attribute("data-alarm", "off")
    await expect(page.locator("#alarm-bar")).to_be_hidden()
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_installed_app_opens_with_no_network(
    browser, gateway, server_url, mosquitto, artifacts
):
    manifest = await (await browser.new_context()).request.get(
        f"{server_url}/board/manifest.webmanifest"
    )
    data = await manifest.json()
    assert data["display"] == "standalone" and data["start_url"] == "/board/worker.html"
    assert {i["sizes"] for i in data["icons"]} >= {"192x192", "512x512"}

    context, page = await _phone(browser, f"{server_url}/board/worker.html", "zhang-min")
    incident_id = await _sos(gateway, mosquitto)
    await expect(page.locator(f'li.incident[data-id="{incident_id}"]')).to_be_visible()
    scope = await page.evaluate("navigator.serviceWorker.ready.then((r) => r.active && r.scope)")
    assert scope == f"{server_url}/board/"
    await page.reload()  # now under the service worker: the shell and the list get cached
    await expect(page.locator(f'li.incident[data-id="{incident_id}"]')).to_be_visible()
    await expect(page.locator("#offline-banner")).to_be_hidden()

    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#main")).to_be_visible()
    await expect(page.locator("#offline-banner")).to_be_visible()
    await expect(page.locator("#offline-banner")).to_have_text("离线 — 正在重连")
    # The last list is there too, with the family's phone one tap away.
    card = page.locator(f'li.incident[data-id="{incident_id}"]')
    await expect(card.locator('a.tel[href="tel:13800005001"]')).to_be_visible()
    await page.screenshot(path=str(artifacts / "worker-offline-390.png"), full_page=True)

    await context.set_offline(False)
    await expect(page.locator("#offline-banner")).to_be_hidden(timeout=15000)
