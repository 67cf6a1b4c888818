"""Running the community from the admin screens, in real Chromium over the whole gateway:
a roster swap the route tester follows, a red-tier elderly household whose SOS opens a critical
incident with the shortened deadline and both family contacts on the page, a ledger preview
that refuses a bad row by its column, a silence created and ended, and a grid worker kept out."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from gateway.app import Gateway
from simulators.device import SimulatedDevice
from simulators.inventory import DeviceSpec
from tests.api.support import DEMO_PASSWORD, G1_DEVICE
from tests.browser.test_csp import WATCH
from tests.services import Mosquitto

pytestmark = pytest.mark.browser

HOUSEHOLD = "demo.b02.3-301"
SOS = "sos-b02-3-301"
LEDGER = (
    "设备编号,设备类型,设备名称,所属网格,楼栋,单元,房号,安装位置,安装日期,厂商/型号,接入配置,平台设备标识,端口数,启用\n"
    "smk-b02-u3-f1,烟感,新烟感,第一网格,2号楼,,,2号楼3单元1层 楼道,2026-11-01,海曼 HM-608PH,,,,是\n"
    "smk-b02-u3-f2,烟感,新烟感,第九网格,2号楼,,,2号楼3单元2层 楼道,2026-11-01,海曼 HM-608PH,,,,是\n"
)


async def _login(
    browser: Browser, url: str, user: str, width: int = 1440, height: int = 900
) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    await context.add_init_script(WATCH)  # the pages run under the strict policy, unbroken
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Refused to" in m.text else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    await page.fill("#username", user)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()
    return page


async def _token(url: str, user: str) -> str:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/api/v1/auth/login", data={"username": user, "password": DEMO_PASSWORD})
        r.raise_for_status()
        return str(r.json()["access_token"])


async def test_running_the_community_from_the_admin_screens(
    browser: Browser,
    server_url: str,
    gateway: Gateway,
    mosquitto: Mosquitto,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    page = await _login(browser, f"{server_url}/board/", "secretary-guo")
    await expect(page.locator("#admin-link")).to_be_visible()
    await page.click("#admin-link")
    await expect(page.locator("#tab-people")).to_be_visible()
    await expect(page.locator('#people tr[data-id="zhang-min"]')).to_be_visible()
    await page.locator('#people tr[data-id="li-qiang"] button.edit-person').click()
    await page.fill("#person-form [name=phone]", "13911112222")
    await page.click("#person-submit")
    await expect(page.locator('#people tr[data-id="li-qiang"]')).to_contain_text("13911112222")
    assert gateway.registry.person("li-qiang").channels["sms"] == "13911112222"  # type: ignore[union-attr]

    # --- roster: swap the shift on duty now; the route tester names the stand-in ---------------
    now = datetime.now(UTC)
    on_duty = [p.id for p in gateway.registry.on_duty("demo", now)]
    assert len(on_duty) == 1, on_duty
    stand_in = next(p for p in ("duty-zhu", "duty-ma", "duty-sun") if p not in on_duty)
    today = now.astimezone(gateway.registry.site("demo").timezone).date().isoformat()  # type: ignore[union-attr]
    await page.click('[data-tab="roster"]')
    slot = page.locator(f'.day[data-date="{today}"] .slot[data-person="{on_duty[0]}"]')
    await expect(slot).to_have_count(1)
    await slot.locator("select.swap-to").select_option(stand_in)
    await slot.locator("button.do-swap").click()
    await expect(slot).to_have_class("slot swapped")
    await page.screenshot(
        path=str(artifacts / "admin-roster-swap.png"), full_page=True, animations="disabled"
    )

    await page.click('[data-tab="rules"]')
    await page.fill("#route-form [name=device_id]", G1_DEVICE)
    await page.select_option("#route-form [name=severity]", "critical")
    await page.click("#route-form button[type=submit]")
    first = page.locator("#route-result li").first
    await expect(first.locator(f'[data-person="{stand_in}"]')).to_be_visible()
    await expect(first.locator(f'[data-person="{on_duty[0]}"]')).to_have_count(0)
    await page.screenshot(
        path=str(artifacts / "admin-route-tester.png"), full_page=True, animations="disabled"
    )

    # a threshold outside the rule file's safe bounds is refused, one inside is applied
    rule = page.locator('#rules tr[data-id="smoke.obscuration"]')
    await rule.locator("input[name=raise_at]").fill("0.5")
    await rule.locator("button.apply-param").first.click()
    await expect(page.locator("#notice")).to_contain_text("[0.1, 0.3]")
    await rule.locator("input[name=raise_at]").fill("0.25")
    await rule.locator("button.apply-param").first.click()
    await expect(page.locator("#notice")).to_have_text("已保存")
    assert gateway.engine.rules.by_id["smoke.obscuration"].raise_at == 0.25  # type: ignore[union-attr]

    # --- a red-tier elderly household with two contacts and its call button -----------------
    await page.click('[data-tab="households"]')
    form = page.locator("#household-new")
    await form.locator("[name=building_id]").select_option("demo.b02")
    await form.locator("[name=unit]").fill("3")
    await form.locator("[name=room]").fill("301")
    await form.locator("button[type=submit]").click()
    editor = page.locator("#household-form")
    await expect(page.locator("#household-title")).to_have_attribute("data-id", HOUSEHOLD)
    await expect(page.locator("#household-title")).to_have_text("2号楼 3单元301")
    await editor.locator("[name=risk_tier]").select_option("red")
    await editor.locator('[name=flag][value="elderly_alone"]').check()
    await editor.locator("[name=no_activity_hours]").fill("12")
    await editor.locator("[name=fact_mobility]").fill("卧床，需两人搬运")
    await editor.locator("[name=fact_key_holder]").fill("楼栋长林艳芳")
    for name, relation, phone in (("陈红", "女儿", "13900001111"), ("陈刚", "儿子", "13900002222")):
        await page.click("#add-contact")
        row = page.locator("#contacts .contact").last
        await row.locator("[name=c_name]").fill(name)
        await row.locator("[name=c_relation]").fill(relation)
        await row.locator("[name=c_phone]").fill(phone)
    await editor.locator("button[type=submit]").click()
    await expect(page.locator(f'#households li[data-id="{HOUSEHOLD}"] .tier-badge')).to_have_text(
        "红色"
    )
    change = page.locator("#household-history li").first
    await expect(change).to_contain_text("修改住户档案")
    await expect(change).to_contain_text("风险等级：— → 红色")
    await page.screenshot(
        path=str(artifacts / "admin-household-red.png"), full_page=True, animations="disabled"
    )

    await page.click('[data-tab="devices"]')
    device_form = page.locator("#device-new")
    await device_form.locator("[name=device_id]").fill(SOS)
    await device_form.locator("[name=device_type]").select_option("sos")
    await device_form.locator("[name=building_id]").select_option("demo.b02")
    await device_form.locator("[name=household_id]").select_option(HOUSEHOLD)
    await device_form.locator("[name=location]").fill("2号楼3单元301室 卧室床头")
    await device_form.locator("button[type=submit]").click()
    await page.fill("#device-filter", SOS)
    await expect(page.locator(f'#devices tr[data-id="{SOS}"]')).to_be_visible()

    pages: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("safety/demo/workers/+/incidents", qos=1)
        device = SimulatedDevice(DeviceSpec("demo", "sos", SOS, "b02"))
        for topic, payload, retain in device.messages(
            "event", {"event": "button_pressed"}, int(time.time() * 1000)
        ):
            await client.publish(topic, payload, qos=1, retain=retain)
        async with asyncio.timeout(15):
            async for message in client.messages:
                body = json.loads(message.payload)  # type: ignore[arg-type]
                if body.get("device") == SOS:
                    pages.append(body)
                    break
    page_json = pages[0]
    household = page_json["household"]
    assert isinstance(household, dict), page_json
    assert [c["phone"] for c in household["contacts"]] == ["13900001111", "13900002222"]
    assert household["facts"]["mobility"] == "卧床，需两人搬运"
    assert page_json["severity"] == "critical" and page_json["risk_tier"] == "red"

    secretary = await _token(server_url, "secretary-guo")
    async with httpx.AsyncClient(
        base_url=server_url, headers={"Authorization": f"Bearer {secretary}"}
    ) as api:
        found = (await api.get("/api/v1/incidents", params={"device_id": SOS})).json()
        rows = found["data"] if isinstance(found, dict) else found
        incident = next(i for i in rows if i["device_id"] == SOS)
        assert incident["severity"] == "critical"
        deadline = gateway.settings.alerting.escalation.critical_ack_s * 1000
        assert incident["ack_due_ms"] - incident["opened_at_ms"] == deadline // 2  # red: × 0.5
        assert page_json["ack_due"] == incident["ack_due_ms"]
    board = await page.context.new_page()
    await board.goto(f"{server_url}/board/")
    # the red household has not been visited: overdue in its grid's card on the board
    await expect(board.locator('.grid-card[data-grid="demo.g1"] .visits-overdue')).to_contain_text(
        "走访逾期"
    )
    await board.locator(f'li.incident[data-id="{incident["id"]}"]').click()
    await expect(board.locator("#detail-household a.call")).to_have_count(2)
    await board.screenshot(
        path=str(artifacts / "board-sos-household.png"), full_page=True, animations="disabled"
    )
    await board.close()

    # --- a ledger with one bad row: the preview refuses it by its column ----------------------
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(LEDGER, encoding="utf-8")
    await page.set_input_files("#ledger-form [name=file]", str(ledger))
    await page.click("#ledger-form button[type=submit]")
    bad = page.locator('#ledger-preview tr[data-row="3"]')
    await expect(bad).to_have_class("preview-refused")
    await expect(bad.locator(".problem-column")).to_have_text("所属网格")
    await expect(page.locator('#ledger-preview tr[data-row="2"]')).to_have_class("preview-create")
    await expect(page.locator("#ledger-import")).to_be_disabled()
    assert gateway.registry.context("demo", "smk-b02-u3-f1") is None  # nothing written
    await page.screenshot(
        path=str(artifacts / "admin-ledger-preview.png"), full_page=True, animations="disabled"
    )

    # --- a silence created and ended ------------------------------------------------------------
    await page.click('[data-tab="silences"]')
    await page.select_option("#silence-form [name=matcher]", "building")
    await page.fill("#silence-form [name=value]", "b03")
    await page.fill("#silence-form [name=reason]", "3号楼烟感年检")
    await page.click("#silence-form button[type=submit]")
    silence = page.locator("#silences li.silence")
    await expect(silence).to_have_count(1)
    await expect(silence).to_contain_text("3号楼烟感年检")
    await page.screenshot(
        path=str(artifacts / "admin-silence.png"), full_page=True, animations="disabled"
    )
    await silence.locator("button.end-silence").click()
    await expect(silence).to_have_count(0)

    await page.click(".lang-toggle >> visible=true")
    await expect(page.locator('[data-tab="silences"]')).to_have_text("Silences")
    await page.click(".lang-toggle >> visible=true")
    assert page.errors == []  # type: ignore[attr-defined]
    assert await page.evaluate("window.__violations") == []

    # --- on a phone ------------------------------------------------------------------------------
    phone = await _login(browser, f"{server_url}/board/admin.html", "secretary-guo", 390, 844)
    await phone.click('[data-tab="households"]')
    await phone.locator(f'#households li[data-id="{HOUSEHOLD}"]').click()
    await expect(phone.locator("#household-form")).to_be_visible()
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    await phone.screenshot(
        path=str(artifacts / "admin-household-phone.png"), full_page=True, animations="disabled"
    )

    # --- a grid worker: no menu, no screen, 403 from every admin call ----------------------------
    worker = await _login(browser, f"{server_url}/board/", "zhang-min")
    await expect(worker.locator("#admin-link")).to_be_hidden()
    await worker.goto(f"{server_url}/board/admin.html")
    await expect(worker.locator("#denied")).to_be_visible()
    await expect(worker.locator("#tabs")).to_be_hidden()
    token = await _token(server_url, "zhang-min")
    async with httpx.AsyncClient(
        base_url=server_url, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        for method, path in (
            ("GET", "/api/v1/roster/week"),
            ("POST", "/api/v1/roster/swaps"),
            ("POST", "/api/v1/people"),
            ("PATCH", f"/api/v1/households/{HOUSEHOLD}"),
            ("POST", "/api/v1/devices"),
            ("POST", "/api/v1/silences"),
            ("PUT", "/api/v1/rules/smoke.obscuration/params"),
            ("GET", f"/api/v1/history/household/{HOUSEHOLD}"),
        ):
            r = await api.request(method, path, json={})
            assert r.status_code in (403, 422), (method, path, r.status_code)
            if r.status_code == 422:  # the body is checked first: a valid one must still be 403
                raise AssertionError(f"{method} {path}: 422 before the role check")
    await worker.screenshot(
        path=str(artifacts / "admin-worker-denied.png"), full_page=True, animations="disabled"
    )

    # --- the worker app: the grid's elderly living alone, and a visit recorded on the stairs ------
    app = await _login(browser, f"{server_url}/board/worker.html", "zhang-min", 390, 844)
    sos_item = app.locator(f'li.incident[data-id="{incident["id"]}"]')
    sos_card = sos_item.locator(".household-card")
    # both family phones to tap, once (the card's family list; the risk file adds no copy)
    await expect(sos_item.locator('a[href^="tel:"]')).to_have_count(2)
    await expect(sos_card.locator(".ack-due")).to_be_visible()
    await app.screenshot(
        path=str(artifacts / "worker-sos-household-phone.png"),
        full_page=True,
        animations="disabled",
    )
    await app.click("#elderly-link")
    card = app.locator(f'li.card[data-id="{HOUSEHOLD}"]')
    await expect(card).to_be_visible()
    await expect(card.locator("a.call")).to_have_count(2)
    await expect(card.locator(".tier-badge")).to_have_text("红色")
    await card.locator("[name=notes]").fill("老人情况稳定，药已备足")
    await card.locator("button.visit").click()
    await expect(app.locator("#notice")).to_have_text("已保存")
    await app.screenshot(
        path=str(artifacts / "worker-elderly-phone.png"), full_page=True, animations="disabled"
    )
    async with httpx.AsyncClient(
        base_url=server_url, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        visits = (await api.get(f"/api/v1/households/{HOUSEHOLD}/visits")).json()
        assert visits[0]["visitor"] == "zhang-min" and visits[0]["next_due"]  # red: a week on
    for p in (phone, app):
        assert p.errors == [] and await p.evaluate("window.__violations") == []  # type: ignore[attr-defined]
