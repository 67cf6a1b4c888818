"""The board, the worker view, the ledger page and the API docs run under their Content
Security Policy in a real Chromium: nothing is blocked, and the board still shows an alarm."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.api.support import DEMO_PASSWORD, G1_DEVICE

pytestmark = pytest.mark.browser

# Registered before any page script runs: every violation of the policy is kept.
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


async def _page(context: BrowserContext) -> tuple[Page, list[str]]:
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda exc: console.append(f"page error: {exc}"))
    return page, console


async def _violations(page: Page, console: list[str]) -> list[str]:
    found = list(await page.evaluate("window.__violations"))
    found += [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    return found


async def test_board_runs_under_a_strict_policy(browser, server_url, incident_source):
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    await context.add_init_script(WATCH)
    board, console = await _page(context)
    response = await board.goto(f"{server_url}/board/")
    assert response is not None
    policy = dict(
        d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == policy["style-src"] == "'self'"
    assert response.headers["x-frame-options"] == "DENY"

    await board.fill("#username", "duty-sun")
    await board.fill("#password", DEMO_PASSWORD)
    await board.click("#login-form button[type=submit]")
    await expect(board.locator("#main")).to_be_visible()
    await expect(board.locator("#live-state")).not_to_have_class("live-state off")
    await expect(board.locator("#grids .grid-card")).to_have_count(5)
    incident_id = await incident_source(G1_DEVICE)
    item = board.locator(f'li.incident[data-id="{incident_id}"]')
    await expect(item).to_be_visible(timeout=10_000)
    await item.click()
    await expect(board.locator("#timeline li")).not_to_have_count(0)
    await board.click("#mute")
    await board.click(".lang-toggle >> visible=true")
    await expect(board.locator("#counter-open span")).to_have_text("Open incidents")
    assert await _violations(board, console) == []

    # The ledger page: table and SVG charts (styled by the stylesheet, not style attributes).
    reports, console = await _page(context)
    await reports.goto(f"{server_url}/board/reports.html")
    await expect(reports.locator("#charts figure.chart")).to_have_count(4)
    await expect(reports.locator("#ledger tr")).to_have_count(1)
    assert (
        await reports.locator("figure.chart").first.evaluate("el => getComputedStyle(el).marginTop")
        == "0px"
    )
    assert await _violations(reports, console) == []

    worker, console = await _page(context)
    await worker.goto(f"{server_url}/board/worker.html")
    await expect(worker.locator("#main")).to_be_visible()
    assert await _violations(worker, console) == []


async def test_api_docs_run_under_their_own_policy(browser, server_url):
    context = await browser.new_context()
    await context.add_init_script(WATCH)
    docs, console = await _page(context)
    response = await docs.goto(f"{server_url}/api/v1/docs")
    assert response is not None
    assert "'sha256-" in response.headers["content-security-policy"]
    operation = docs.locator(".opblock-summary-path", has_text="/api/v1/auth/login")
    await expect(operation.first).to_be_visible(timeout=15_000)
    await operation.first.click()  # opens the operation: more of Swagger UI renders
    await expect(docs.locator(".opblock-body").first).to_be_visible()
    assert await _violations(docs, console) == []
