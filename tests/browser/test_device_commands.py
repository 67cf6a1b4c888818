"""A charger overheats: the gateway cuts the port's power and the pile confirms it; the grid
worker, on the phone, acknowledges and restores the power after a confirmation step, and the
pile confirms that too. Real broker, real gateway, simulated pile, real Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, expect
from sqlalchemy import select

from alerting.commands import DeviceCommandRow
from alerting.incidents.tables import IncidentEventRow, IncidentRow
from api.audit import AuditRow
from gateway.sample import demo_community_path
from simulators import run_scenario
from simulators.inventory import community_devices
from simulators.scenario import Scenario
from tests.api.support import DEMO_PASSWORD

pytestmark = pytest.mark.browser

#: The pile trips over-temperature on port 3 and stays connected, answering commands.
OVERHEAT = Scenario.model_validate(
    {
        "name": "overheat-and-restore",
        "title": "Port 3 overheats; power cut, then restored",
        "roles": {"pile": {"type": "charger", "building": "shed"}},
        "steps": [
            {"at": 0, "role": "pile", "kind": "event", "payload": {"event": "session_start", "port": 3}},
            {"at": 1, "role": "pile", "kind": "event",
             "payload": {"event": "over_temp", "port": 3, "temp_c": 71.5}},
        ],
        "linger": 120,
        "expect": [{"rule": "charger.over_temp", "severity": "major", "incident": True, "role": "pile"}],
    }
)


async def commands(gateway: Any, command: str) -> list[DeviceCommandRow]:
    async with gateway.sessions() as s:
        q = select(DeviceCommandRow).where(DeviceCommandRow.command == command)
        return list((await s.scalars(q)).all())


async def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_power_cut_is_confirmed_and_a_worker_restores_it_from_the_phone(
    browser: Browser, gateway: Any, server_url: str, mosquitto: Any, artifacts: Any
) -> None:
    devices = community_devices(demo_community_path(), "demo")
    pile = asyncio.create_task(run_scenario(OVERHEAT, mosquitto.url, "demo", devices, 1.0))
    try:
        # The rule's cut_power: sent, answered by the pile, and its telemetry shows the port off.
        cut = await until(lambda: _confirmed(gateway, "cut_power"))
        assert (cut.device_id, cut.port, cut.ack_state) == ("chg-s1-01", 3, "off")
        kinds = await _timeline(gateway, cut.incident_id)
        assert [
            k for k in kinds if k.startswith("command_")
        ] == ["command_sent", "command_acked", "command_confirmed"]

        context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{server_url}/board/worker.html")
        await page.fill("#username", "zhang-min")
        await page.fill("#password", DEMO_PASSWORD)
        await page.click("#login-form button[type=submit]")
        card = page.locator(f"li.incident[data-id='{cut.incident_id}']")
        await expect(card).to_be_visible()
        await expect(card.locator(".cmd-state")).to_contain_text("设备已确认")
        restore = card.locator("button.cmd-restore_power")
        await expect(restore).to_contain_text("恢复供电（3号口）")

        # Nobody has taken charge yet: the gateway refuses to re-energise the port.
        answers: list[str] = []
        plan = ["accept", "accept", "dismiss"]  # then accept

        async def answer(dialog: Dialog) -> None:
            answers.append(dialog.message)
            if (plan.pop(0) if plan else "accept") == "dismiss":
                await dialog.dismiss()  # second thoughts: nothing is sent
            else:
                await dialog.accept()

        page.on("dialog", lambda d: asyncio.ensure_future(answer(d)))
        await restore.click()
        await until(lambda: _true(len(answers) == 2))  # the confirm, then the refusal's alert
        assert "恢复供电" in answers[0] and "请先点“确认”" in answers[1]
        assert not await commands(gateway, "restore_power")

        await card.locator("button.acknowledge").click()
        await expect(card).to_have_attribute("data-status", "acknowledged")
        card = page.locator(f"li.incident[data-id='{cut.incident_id}']")
        await card.locator("button.cmd-restore_power").click()  # dismissed (third dialog)
        await until(lambda: _true(len(answers) == 3))
        await asyncio.sleep(0.5)
        assert not await commands(gateway, "restore_power"), "a dismissed confirm sends nothing"
        await card.locator("button.cmd-restore_power").click()
        restored = await until(lambda: _confirmed(gateway, "restore_power"))
        await expect(card.locator(".cmd-state")).to_contain_text("恢复供电（3号口） · 设备已确认")
        await page.screenshot(path=str(artifacts / "worker-restore-power-390.png"), full_page=True)

        assert (restored.requested_by, restored.port, restored.ack_state) == ("zhang-min", 3, "on")
        async with gateway.sessions() as s:
            audit = (await s.scalars(select(AuditRow).where(AuditRow.action == "device.command"))).all()
            events = (await s.scalars(select(IncidentEventRow).where(
                IncidentEventRow.incident_id == cut.incident_id,
                IncidentEventRow.actor == "zhang-min"))).all()
            incident = await s.get(IncidentRow, cut.incident_id)
        assert [(a.actor, a.target) for a in audit] == [("zhang-min", "chg-s1-01")]
        assert "command_sent" in {e.kind for e in events}
        assert incident is not None and incident.status == "acknowledged"
        assert errors == []
    finally:
        pile.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pile


async def _true(value: bool) -> bool:
    return value


async def _confirmed(gateway: Any, command: str) -> DeviceCommandRow | None:
    return next((c for c in await commands(gateway, command) if c.status == "confirmed"), None)


async def _timeline(gateway: Any, incident_id: int | None) -> list[str]:
    async with gateway.sessions() as s:
        q = select(IncidentEventRow.kind).where(IncidentEventRow.incident_id == incident_id)
        return list((await s.scalars(q.order_by(IncidentEventRow.id))).all())
