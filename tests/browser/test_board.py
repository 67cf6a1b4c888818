"""Duty staff watch an alarm appear live, acknowledge it; a worker of another grid never sees it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.api.support import DEMO_PASSWORD, G1_DEVICE

pytestmark = pytest.mark.browser


async def _login(browser: Browser, url: str, user: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    await page.fill("#username", user)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()
    await expect(page.locator("#live-state")).not_to_have_class("live-state off")
    return page


async def test_duty_board_live_acknowledge_and_grid_boundary(
    browser, server_url, incident_source, artifacts
):
    board = await _login(browser, f"{server_url}/board/", "duty-sun")
    await expect(board.locator("#grids .grid-card")).to_have_count(5)
    await expect(board.locator("#incident-list .empty")).to_be_visible()
    await board.evaluate("window.__sameDocument = true")

    incident_id = await incident_source(G1_DEVICE)

    item = board.locator(f'li.incident[data-id="{incident_id}"]')
    await expect(item).to_be_visible(timeout=10_000)
    assert await board.evaluate("window.__sameDocument === true"), "the board reloaded"
    await expect(item).to_have_class("incident sev-critical status-open")
    await expect(board.locator("#open-count")).to_have_text("1")
    await expect(board.locator("#unacked-count")).to_have_text("1")
    await item.click()
    await expect(board.locator("#timeline li")).not_to_have_count(0)
    await board.screenshot(path=str(artifacts / "board-critical.png"), full_page=True)

    await board.click("#mute")
    await expect(board.locator("#mute")).to_have_attribute("aria-pressed", "true")

    await item.locator("button.ack").click()
    await expect(item).to_have_attribute("data-status", "acknowledged")
    await expect(board.locator("#unacked-count")).to_have_text("0")
    await board.screenshot(path=str(artifacts / "board-acknowledged.png"), full_page=True)

    await board.click(".lang-toggle >> visible=true")
    await expect(board.locator("#counter-open span")).to_have_text("Open incidents")

    other = await _login(browser, f"{server_url}/board/worker.html", "wang-fang")
    await expect(other.locator("#my-incidents .empty")).to_be_visible()
    await expect(other.locator(f'li.incident[data-id="{incident_id}"]')).to_have_count(0)
    await other.set_viewport_size({"width": 390, "height": 844})
    await other.screenshot(path=str(artifacts / "worker-other-grid.png"), full_page=True)

    own = await _login(browser, f"{server_url}/board/worker.html", "zhang-min")
    await own.set_viewport_size({"width": 390, "height": 844})
    card = own.locator(f'li.incident[data-id="{incident_id}"]')
    await expect(card).to_be_visible()
    await own.screenshot(path=str(artifacts / "worker-view.png"), full_page=True)
    await card.locator("button.arrive").click()
    await card.locator("button.resolve").click()
    await own.select_option("#category", "false_alarm")
    await own.fill("#resolve-note", "厨房油烟")
    await own.click("#resolve-submit")
    await expect(own.locator(f'#history li[data-id="{incident_id}"]')).to_be_visible()
    await expect(board.locator(f'li.incident[data-id="{incident_id}"]')).to_have_count(0)

    for page in (board, other, own):
        assert page.errors == []  # type: ignore[attr-defined]
