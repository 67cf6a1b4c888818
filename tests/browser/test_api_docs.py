"""The API docs page works on a box without Internet: Swagger UI comes from the gateway."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import Route, expect

pytestmark = pytest.mark.browser


async def test_api_docs_render_with_no_internet(browser, server_url):
    page = await browser.new_page()
    local = urlsplit(server_url).netloc
    elsewhere: list[str] = []

    async def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", offline)
    await page.goto(f"{server_url}/api/v1/docs")
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/incidents/{incident_id}/acknowledge")
    await expect(operation.first).to_be_visible(timeout=15_000)
    assert elsewhere == [], f"the docs page reached out to {elsewhere}"
