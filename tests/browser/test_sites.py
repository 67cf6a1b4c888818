"""A street office (街道) on the duty board: its communities as cards with their figures, a
click through to one community's board, acknowledging there; a community's secretary sees
neither the other community nor a site switcher. Desktop 1440×900 and phone 390×844."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from gateway.app import Gateway
from tests.api.support import DEMO_PASSWORD, G1_DEVICE
from tests.api.test_sites import DEMO_IN_STREET, HEXIE
from tests.services import Mosquitto

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
YAML = {"Content-Type": "application/yaml"}


async def _alarm(gateway: Gateway, mosquitto: Mosquitto, site: str, device_id: str) -> int:
    assert gateway.registry.context(site, device_id) is not None
    payload = {"ts": int(time.time() * 1000), "seq": 7, "event": "alarm", "smoke_dbm": 0.4}
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        await c.publish(f"safety/{site}/smoke/{device_id}/event", json.dumps(payload), qos=1)
    for _ in range(300):
        async with gateway.sessions() as s:
            found = await s.scalar(
                select(IncidentRow.id).where(
                    IncidentRow.site == site, IncidentRow.device_id == device_id
                )
            )
        if found is not None:
            return int(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no incident for {site}/{device_id}")


async def _login(browser: Browser, url: str, user: str, viewport: dict) -> Page:
    context = await browser.new_context(viewport=viewport, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    await page.fill("#username", user)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()
    return page


async def test_a_street_office_runs_its_communities_from_one_board(
    browser: Browser, server_url: str, gateway: Gateway, mosquitto: Mosquitto, artifacts: Path
) -> None:
    async with httpx.AsyncClient(base_url=server_url) as api:
        r = await api.post(
            "/api/v1/auth/login", data={"username": "admin", "password": DEMO_PASSWORD}
        )
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await api.put("/api/v1/sites/demo", content=DEMO_IN_STREET, headers=admin | YAML)
        assert r.status_code == 200, r.text
        r = await api.post("/api/v1/sites", content=HEXIE, headers=admin | YAML)
        assert r.status_code == 201, r.text
    hexie = await _alarm(gateway, mosquitto, "hexie", "hx-smoke-1")
    await _alarm(gateway, mosquitto, "demo", G1_DEVICE)

    board = await _login(browser, f"{server_url}/board/", "jiedao-chen", DESKTOP)
    cards = board.locator("#site-cards button.site-card")
    await expect(cards).to_have_count(2)
    await expect(board.locator("#sites-title")).to_contain_text("青山街道")
    card = board.locator('button.site-card[data-site="hexie"]')
    await expect(card.locator(".site-name")).to_have_text("和谐社区")
    await expect(card.locator(".devices")).to_contain_text("设备 2 台")
    await expect(card.locator(".unacked-n")).to_have_text("待确认 1")
    await expect(card.locator(".rate")).to_contain_text("本月")
    # All communities at once: both incidents, each named in its own community's words.
    item = board.locator(f'li.incident[data-id="{hexie}"]')
    await expect(item).to_contain_text("和谐一网格")
    await expect(board.locator("li.incident")).to_have_count(2)

    # Click through to one community: its incidents and grids only, the filter says which.
    await card.click()
    await expect(board.locator("#site-filter")).to_have_value("hexie")
    assert "site=hexie" in board.url
    await expect(board.locator("li.incident")).to_have_count(1)
    await expect(board.locator(".grid-card")).to_have_count(1)
    await expect(board.locator(".grid-card").first).to_contain_text("和谐一网格")
    await expect(board.locator("#unacked-count")).to_have_text("1")
    # The ledger and closed-loop pages follow the chosen community.
    await expect(board.locator('header a[href^="reports.html"]')).to_have_attribute(
        "href", "reports.html?site=hexie"
    )
    # The street's duty officer acknowledges for the community: the card follows.
    await item.locator("button.ack").click()
    await expect(board.locator("#unacked-count")).to_have_text("0")
    await expect(card.locator(".unacked-n")).to_have_text("待确认 0", timeout=10_000)
    await board.screenshot(path=str(artifacts / "sites-board-desktop.png"), full_page=True)

    # A phone: the cards stack, nothing runs off the side.
    await board.set_viewport_size(PHONE)
    await expect(card).to_be_visible()
    assert await board.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await board.screenshot(path=str(artifacts / "sites-board-phone.png"), full_page=True)

    # English on the same screen.
    await board.set_viewport_size(DESKTOP)
    await board.click(".lang-toggle >> visible=true")
    await expect(board.locator("#sites-title")).to_contain_text("Communities")
    await expect(card.locator(".unacked-n")).to_have_text("unacknowledged 0")
    await expect(board.locator("#site-filter option").first).to_have_text("All communities")
    await board.click(".lang-toggle >> visible=true")
    assert board.errors == []  # type: ignore[attr-defined]

    # A community's secretary: its own site only, and no site switcher.
    secretary = await _login(browser, f"{server_url}/board/", "secretary-guo", DESKTOP)
    await expect(secretary.locator("li.incident")).to_have_count(1)
    await expect(secretary.locator("#site-filter-box")).to_be_hidden()
    await expect(secretary.locator("#sites-panel")).to_be_hidden()
    await expect(secretary.locator("#main")).not_to_contain_text("和谐")
    assert secretary.errors == []  # type: ignore[attr-defined]
