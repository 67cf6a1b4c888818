"""The screens as a duty officer, a grid worker and the secretary read them (issue 11 items 1,
3, 4, 5, 10, 11): the site's time zone whatever the browser's, names instead of codes, time
pressure, one count on header and grid card, who was paged and whether it got there, and the
ledger saying what happened. The browsers run in New York time; the site is in Shanghai."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from gateway.app import Gateway
from simulators.device import SimulatedDevice
from simulators.inventory import DeviceSpec
from tests.api.support import DEMO_PASSWORD, G1_DEVICE
from tests.services import Mosquitto

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
BROWSER_ZONE = "America/New_York"
SITE_ZONE = ZoneInfo("Asia/Shanghai")
SOS_DEVICE = "sos-b02-2-202"  # grid g1, household 2号楼2单元202室 (family: 何红, 儿子)
MINOR_DEVICE = "smk-b01-u1-f2"  # grid g1


async def _raise(gateway: Gateway, mosquitto: Mosquitto, device_id: str, event: dict) -> int:
    """The device sends ``event`` through the broker; returns the incident the gateway opened."""
    ctx = gateway.registry.context("demo", device_id)
    assert ctx is not None
    device = SimulatedDevice(DeviceSpec("demo", ctx.device_type, device_id, ctx.building_id or ""))
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for topic, payload, retain in device.messages("event", event, int(time.time() * 1000)):
            await client.publish(topic, payload, qos=1, retain=retain)
    for _ in range(200):
        async with gateway.sessions() as session:
            found = await session.scalar(
                select(IncidentRow.id).where(IncidentRow.device_id == device_id)
            )
        if found is not None:
            return int(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no incident opened for {device_id}")


async def _opened_at(gateway: Gateway, incident_id: int) -> str:
    async with gateway.sessions() as session:
        row = await session.get(IncidentRow, incident_id)
    assert row is not None
    return datetime.fromtimestamp(row.opened_at_ms / 1000, SITE_ZONE).strftime("%m-%d %H:%M:%S")


async def _login(browser: Browser, url: str, user: str, viewport: dict) -> Page:
    context = await browser.new_context(viewport=viewport, locale="zh-CN", timezone_id=BROWSER_ZONE)
    await context.clock.install()  # runs at real speed until a test jumps ahead
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


async def _shots(page: Page, artifacts: Path, name: str) -> None:
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)


async def test_board_and_worker_view_read_as_people_need(
    browser, server_url, gateway, mosquitto, artifacts
):
    smoke = await _raise(gateway, mosquitto, G1_DEVICE, {"event": "alarm", "smoke_dbm": 0.42})
    await asyncio.sleep(1.1)  # distinct ages
    minor = await _raise(gateway, mosquitto, MINOR_DEVICE, {"event": "low_battery"})
    await asyncio.sleep(1.1)
    sos = await _raise(gateway, mosquitto, SOS_DEVICE, {"event": "button_pressed"})

    # 10. the read model: every person the first step paged (the family too), and how it went
    async with httpx.AsyncClient(base_url=server_url) as api:
        token = (
            await api.post(
                "/api/v1/auth/login", data={"username": "duty-sun", "password": DEMO_PASSWORD}
            )
        ).json()["access_token"]
        for _ in range(100):
            detail = (
                await api.get(
                    f"/api/v1/incidents/{sos}", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()["incident"]
            paged = {p["name"]: p["delivery"] for p in detail["paged"]}
            if "sending" not in paged.values():
                break
            await asyncio.sleep(0.1)
    assert paged["何红(儿子)"] == "no_channel"  # the demo has no SMS gateway
    assert paged["张敏"] == "delivered"  # the worker's app, through the broker

    board = await _login(browser, f"{server_url}/board/", "duty-sun", DESKTOP)
    card = board.locator(f'li.incident[data-id="{sos}"]')
    await expect(card).to_be_visible(timeout=10_000)

    # 1. the site's time (Shanghai), said as 北京时间, though the browser is in New York
    await expect(card).to_contain_text(await _opened_at(gateway, sos))
    await expect(board.locator("#site-clock")).to_contain_text("北京时间")

    # 3. names, not codes; 4. how long open, the countdown to the acknowledgement deadline
    await expect(card).to_contain_text("第一网格")
    await expect(card).not_to_contain_text("demo.g1")
    await expect(card.locator(".since")).to_contain_text("已持续")
    await expect(card.locator(".deadline")).to_contain_text("确认倒计时")

    # 10. the family is in the live ladder, and without an SMS gateway loudly NOT delivered
    family = card.locator("ul.paged li", has_text="何红")
    await expect(family).to_have_class("undelivered", timeout=10_000)
    await expect(family).to_contain_text("未送达")
    await expect(card.locator("ul.paged li", has_text="张敏")).not_to_have_class("undelivered")
    await card.click()
    timeline = board.locator("#timeline")
    await expect(timeline).to_contain_text("报警触发")
    await expect(timeline).to_contain_text("何红")
    for raw in ("rule:", "opened", "notified", "sos.button"):
        await expect(timeline).not_to_contain_text(raw)
    await expect(board.locator("#detail-paged li.undelivered", has_text="何红")).to_be_visible()

    # 5. header and grid card count 待确认 alike; the building counts say what they are
    grid = board.locator('.grid-card[data-grid="demo.g1"]')
    await expect(board.locator("#unacked-count")).to_have_text("3")
    await expect(grid.locator(".unacked-n")).to_have_text("待确认 3")
    await board.locator(f'li.incident[data-id="{smoke}"] button.ack').click()
    await expect(board.locator("#unacked-count")).to_have_text("2")
    await expect(grid.locator(".unacked-n")).to_have_text("待确认 2")
    await expect(grid.locator(".open-n")).to_have_text("未结 3")
    await expect(grid.locator(".building").first).to_contain_text("在线")
    await expect(grid.locator(".building").first).to_contain_text("离线")

    # 4. escalated by hand: the next ladder step is paged, and the card says so
    await board.locator("#detail-actions button", has_text="上报").click()
    await expect(card.locator(".escalated")).to_have_text("已升级 1 级", timeout=10_000)
    await expect(timeline).to_contain_text("升级通知")

    # 3. the assignee by name
    await card.locator("button.assign").click()
    await board.select_option("#assignee", "zhang-min")
    await board.click("#assign-form button[value=ok]")
    await expect(card.locator(".assignee")).to_contain_text("张敏")
    await expect(card).not_to_contain_text("zhang-min")
    await _shots(board, artifacts, "screens-board")

    # 3. the English toggle translates titles and buttons too
    await board.set_viewport_size(DESKTOP)
    await board.click(".lang-toggle >> visible=true")
    await expect(card.locator(".title")).to_contain_text("SOS call button pressed")
    await expect(card.locator("button.ack")).to_have_text("Acknowledge")
    await expect(board.locator(".site-clock")).to_contain_text("Beijing time")
    assert await board.title() == "Community safety duty board"
    await expect(timeline).to_contain_text("Alarm raised")
    await board.click(".lang-toggle >> visible=true")

    # 4. the worker's list: most severe first, then the longest waiting; 指派给我
    worker = await _login(browser, f"{server_url}/board/worker.html", "zhang-min", PHONE)
    cards = worker.locator("#my-incidents li.incident")
    await expect(cards).to_have_count(3)
    assert [int(i) for i in await cards.evaluate_all("l => l.map(e => e.dataset.id)")] == [
        smoke,
        sos,
        minor,
    ]
    mine = worker.locator(f'#my-incidents li.incident[data-id="{sos}"]')
    await expect(mine.locator(".badge.mine")).to_have_text("指派给我")
    await expect(mine).to_contain_text(await _opened_at(gateway, sos))  # 1. Shanghai time

    # 4. 办结 only after acknowledging; 到场 shows its effect and cannot be pressed twice
    await expect(mine.locator("button.resolve")).to_have_count(0)
    await mine.locator("button.arrive").click()
    await expect(mine.locator("button.arrive")).to_be_disabled()
    await expect(mine.locator("button.arrive")).to_contain_text("已到场")
    await mine.locator("button.acknowledge").click()
    await expect(mine.locator("button.resolve")).to_be_visible()
    await expect(board.locator(f'li.incident[data-id="{sos}"]')).to_contain_text("已到场")
    await _shots(worker, artifacts, "screens-worker")

    # 4. past its deadline an unacknowledged incident says by how much, in red
    late = board.locator(f'li.incident[data-id="{minor}"] .deadline')
    await expect(late).to_contain_text("确认倒计时")
    await board.clock.fast_forward(25 * 3600 * 1000)  # the minor deadline is 24 h
    await expect(late).to_have_class("deadline overdue")
    await expect(late).to_contain_text("已超时 1小时")
    await board.set_viewport_size(DESKTOP)
    await board.screenshot(path=str(artifacts / "screens-board-overdue.png"), full_page=True)

    for page in (board, worker):
        assert page.errors == []  # type: ignore[attr-defined]


async def test_ledger_page_says_what_happened(browser, server_url, artifacts):
    # 11. a grid worker may not read the ledger: the page says so
    worker = await _login(browser, f"{server_url}/board/reports.html", "zhang-min", DESKTOP)
    await expect(worker.locator("#report-error")).to_contain_text("无权查看")
    await expect(worker.locator("table")).to_be_hidden()
    await _shots(worker, artifacts, "screens-ledger-denied")

    # 11. an empty month says so; 1. the time column names the site's zone
    clerk = await _login(browser, f"{server_url}/board/reports.html", "secretary-guo", DESKTOP)
    await clerk.fill("#month", "2020-01")
    await clerk.locator("#month").dispatch_event("change")
    await expect(clerk.locator("#ledger")).to_contain_text("本月没有记录")
    await expect(clerk.locator("thead")).to_contain_text("北京时间")
    await expect(clerk.locator("#report-error")).to_be_hidden()
    await _shots(clerk, artifacts, "screens-ledger-empty")
    for page in (worker, clerk):
        assert page.errors == []  # type: ignore[attr-defined]
