"""The closed loop in a real browser: a hotline call from intake on the board through triage,
referral to the fire brigade, its reply, the grid worker's resolution with a photo at phone
size, verification, the caller's result SMS and rating; then a patrol hazard goes overdue."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from core.clock import ManualClock
from gateway.sample import demo_community_path
from tests.api.loop_support import PNG, loop_file
from tests.api.support import DEMO_PASSWORD

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1440, "height": 900}
CALLER = "13900001111"
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def _page(browser: Browser, viewport: dict[str, int]) -> Page:
    context = await browser.new_context(
        viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def _login(page: Page, url: str, user: str) -> None:
    await page.goto(url)
    await page.fill("#username", user)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()


async def _sms(rec, phone: str, timeout_s: float = 15) -> str:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_s * 20)):
        texts = [
            r.json()["text"]
            for r in list(rec.requests)
            if r.path == "/sms" and r.json()["phone"] == phone
        ]
        if texts:
            return texts[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no SMS to {phone}")


async def test_hotline_call_round_the_closed_loop_and_an_overdue_hazard(
    browser, start_gateway, recording_http_server, tmp_path: Path, artifacts
):  # type: ignore[no-untyped-def]
    rec = recording_http_server
    # Days in the past, so that moving it on past the hazard's deadline ends near now: a
    # login token issued "in the future" of the real clock is refused by the token library.
    opened_ms = int(time.time() * 1000) - 80 * 3_600_000
    clock = ManualClock(opened_ms)
    gateway = await start_gateway(
        clock=clock,
        community_file=demo_community_path(),
        notify={"sms_gateway_url": f"{rec.url}/sms"},
        loop_file=loop_file(tmp_path, rec.url),
    )
    url = f"http://127.0.0.1:{gateway.api_port}"

    # 立案 on the duty board: a hotline call
    board = await _page(browser, DESK)
    await _login(board, f"{url}/board/loop.html", "duty-sun")
    form = board.locator("#intake")
    await form.locator("select[name=category]").select_option("electric")
    await form.locator("input[name=caller_name]").fill("刘先生")
    await form.locator("input[name=caller_phone]").fill(CALLER)
    await form.locator("select[name=grid_id]").select_option("demo.g1")
    await form.locator("select[name=building_id]").select_option("demo.b02")
    await form.locator("input[name=unit_room]").fill("1-102")
    await form.locator("textarea[name=description]").fill("楼道里电动车充电，插线板发烫冒烟")
    await board.screenshot(path=str(artifacts / "loop-intake.png"), full_page=True)
    await form.locator("button[type=submit]").click()
    await expect(board.locator("#intake-msg")).to_contain_text("#")
    iid = int(re.search(r"#(\d+)", await board.locator("#intake-msg").inner_text()).group(1))  # type: ignore[union-attr]

    # 研判: it waits in the triage queue; the grid handles it
    queued = board.locator(f'#triage li[data-id="{iid}"]')
    await expect(queued).to_be_visible()
    await board.screenshot(path=str(artifacts / "loop-triage.png"), full_page=True)
    await queued.locator("button[data-tier=grid]").click()
    await expect(queued).to_have_count(0)

    # 部门联动: refer to the fire brigade; the recording server is its SMS gateway and webhook
    await board.locator(f'#progress li[data-id="{iid}"]').click()
    await board.locator("#department").select_option("fire_119")
    await board.locator("#refer input[name=note]").fill("请消防站协助检查充电线路")
    await board.locator("#refer button[type=submit]").click()
    text = await _sms(rec, "119")
    assert "请消防站协助检查充电线路" in text
    await expect(board.locator("#case-body")).to_contain_text("消防救援站")
    await board.screenshot(path=str(artifacts / "loop-referral.png"), full_page=True)

    # the fire brigade answers from the link in its message
    reply_url = re.search(r"(http\S+reply\.html\?t=\S+)", text).group(1)  # type: ignore[union-attr]
    dept = await _page(browser, PHONE)
    await dept.goto(reply_url)
    await expect(dept.locator("#ref-info")).to_contain_text("消防救援站")
    await dept.click("button[value=accepted]")
    await expect(dept.locator("#reply-msg")).to_contain_text("已提交")
    await dept.fill("textarea[name=note]", "已到场检查，线路已断电，建议更换插线板")
    await dept.click("button[value=replied]")
    await expect(dept.locator("#ref-info")).to_contain_text("消防救援站")
    await expect(dept.locator("#ref-info")).to_contain_text("已回复")
    await dept.screenshot(path=str(artifacts / "loop-department-reply.png"), full_page=True)

    # the grid worker, on a phone: arrive, photograph, resolve
    worker = await _page(browser, PHONE)
    await _login(worker, f"{url}/board/field.html", "zhang-min")
    item = worker.locator(f'#field-list li[data-id="{iid}"]')
    await expect(item).to_be_visible()
    await item.locator("button[data-action=arrive]").click()
    await expect(item.locator("button[data-action=arrive]")).to_have_count(0)
    await item.locator("button[data-action=resolve]").click()
    dialog = worker.locator("#resolve-dialog")
    await dialog.locator("input[name=photo]").set_input_files(
        {"name": "fixed.png", "mimeType": "image/png", "buffer": PNG}
    )
    await dialog.locator("textarea[name=note]").fill("插线板已拆除，电动车移至充电棚")
    await worker.screenshot(path=str(artifacts / "field-resolve-390.png"), full_page=True)
    await dialog.locator("button[value=ok]").click()
    await expect(item).to_have_count(0)
    width = await worker.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the field page is {width}px wide on a phone"

    # 核查 by the duty officer; the caller hears the result, never the internal note
    await board.reload()
    waiting = board.locator(f'#verify li[data-id="{iid}"]')
    await expect(waiting).to_be_visible()
    await waiting.click()
    await expect(board.locator("#case-body img")).to_have_count(1)
    await board.locator("#verify-form textarea").fill("电话回访住户，现场已整改")
    await board.locator("#verify-form button[value=pass]").click()
    await expect(board.locator("#case-body .badge")).to_have_text("已关闭")
    await board.screenshot(path=str(artifacts / "loop-verified.png"), full_page=True)
    feedback = await _sms(rec, CALLER)
    assert "插线板已拆除" not in feedback and "电话回访" not in feedback

    # the caller rates it from the link
    resident = await _page(browser, PHONE)
    await resident.goto(re.search(r"(http\S+rate\.html\?t=\S+)", feedback).group(1))  # type: ignore[union-attr]
    await resident.click("button[data-rating=satisfied]")
    await expect(resident.locator("#rate-msg")).to_contain_text("感谢")
    await resident.screenshot(path=str(artifacts / "loop-rating-390.png"), full_page=True)

    # a patrol hazard reported from the phone, with a deadline two days on
    form = worker.locator("#report-form")
    await worker.locator("#report summary").click()
    await form.locator("select[name=grid_id]").select_option("demo.g1")
    await form.locator("select[name=building_id]").select_option("demo.b01")
    await form.locator("input[name=unit_room]").fill("1-201")
    await form.locator("textarea[name=description]").fill("楼道堆放纸箱杂物")
    deadline = datetime.fromtimestamp(opened_ms / 1000, SHANGHAI) + timedelta(days=2)
    await form.locator("input[name=deadline]").fill(deadline.strftime("%Y-%m-%d"))
    await form.locator("input[name=photo]").set_input_files(
        {"name": "boxes.png", "mimeType": "image/png", "buffer": PNG}
    )
    await form.locator("button[type=submit]").click()
    await expect(worker.locator("#field-msg")).to_contain_text("#")
    hid = int(re.search(r"#(\d+)", await worker.locator("#field-msg").inner_text()).group(1))  # type: ignore[union-attr]
    await expect(worker.locator(f'#field-list li[data-id="{hid}"] img')).to_have_count(1)
    notice = await _page(browser, DESK)
    await _login(notice, f"{url}/board/loop.html", "duty-sun")
    await notice.goto(f"{url}/board/notice.html?id={hid}")
    await expect(notice.locator("#notice-body")).to_contain_text("楼道堆放纸箱杂物")
    await notice.screenshot(path=str(artifacts / "loop-notice.png"), full_page=True)
    before = len(rec.requests)
    clock.advance(73 * 3_600_000)  # past 18:00 two days on
    assert await gateway.loop.watch.tick(clock.now_ms()) == 1
    gateway.escalation.poke()
    for _ in range(200):
        paged = {q.json()["phone"] for q in list(rec.requests)[before:] if q.path == "/sms"}
        if paged - {"13800000001"}:
            break
        await asyncio.sleep(0.05)
    assert paged - {"13800000001"}, f"overdue hazard paged only {paged}"
    await worker.evaluate("localStorage.clear()")  # two days on: yesterday's login has expired
    await _login(worker, f"{url}/board/field.html", "zhang-min")
    await expect(worker.locator(f'#field-list li[data-id="{hid}"] .overdue')).to_be_visible()
    await worker.screenshot(path=str(artifacts / "field-hazard-overdue-390.png"), full_page=True)

    # the month's problem ledger: the call and the overdue hazard together, print-ready
    month = datetime.fromtimestamp(opened_ms / 1000, SHANGHAI).strftime("%Y-%m")
    await notice.evaluate("localStorage.clear()")
    await _login(notice, f"{url}/board/ledger.html", "secretary-guo")
    await notice.locator("#filters input[name=month]").fill(month)
    await notice.locator("#filters input[name=month]").dispatch_event("change")
    await expect(notice.locator(f'#rows tr[data-id="{iid}"]')).to_be_visible()
    await expect(notice.locator(f'#rows tr[data-id="{hid}"] td.overdue')).to_be_visible()
    await expect(notice.locator('[data-figure="overdue_hazards"] b')).to_have_text("1")
    # who handled what, by name: the secretary does not read login ids
    await expect(notice.locator("#by-worker")).to_contain_text("张敏")
    await expect(notice.locator("#by-worker")).not_to_contain_text("zhang-min")
    await notice.screenshot(path=str(artifacts / "loop-ledger.png"), full_page=True)
    for p in (board, dept, worker, resident, notice):
        assert p.errors == [], p.errors  # type: ignore[attr-defined]
