"""Gas leaks end to end through a real broker: the detector alarms, the gateway opens a
critical incident, sends close_valve with a cmd_id, the simulated detector acknowledges and
reports the valve closed, and the grid worker and the household's family are paged. A valve
that refuses to close fails its command after the retries and the incident escalates at once.
A pending command survives a gateway restart."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select

from alerting.commands import UNCONFIRMED, DeviceCommandRow
from alerting.escalation.timers import EscalationTimerRow
from alerting.incidents.tables import IncidentEventRow, IncidentRow
from alerting.notify.tables import DeliveryRow
from gateway.sample import demo_community_path
from simulators import run_scenario
from simulators.inventory import community_devices

pytestmark = pytest.mark.slow

DEVICE = "gas-b02-2-202"  # the first household gas detector of the sample community
FAST_COMMANDS = {"ack_timeout_s": 1.0, "retry_s": 0.3, "attempts": 3, "backoff": 1.5}


async def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def rows(gateway: Any, model: Any, *where: Any) -> list[Any]:
    async with gateway.sessions() as s:
        return list((await s.scalars(select(model).where(*where))).all())


async def start(start_gateway: Any, recording_http_server: Any, **alerting: Any) -> Any:
    return await start_gateway(
        community_file=demo_community_path(),
        notify={"sms_gateway_url": recording_http_server.url + "/sms"},
        alerting={"startup_grace_s": 0, "tick_interval_ms": 100, **alerting},
    )


async def test_kitchen_gas_leak_closes_the_valve_and_pages_worker_and_family(
    start_gateway: Any, mosquitto: Any, recording_http_server: Any
) -> None:
    gateway = await start(start_gateway, recording_http_server)
    pages: list[tuple[str, dict[str, Any]]] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(mosquitto.port, "safety/demo/workers/+/incidents", pages, ready))
    await ready.wait()
    devices = community_devices(demo_community_path(), "demo")
    run = await run_scenario("gas-kitchen-leak", mosquitto.url, "demo", devices, speed=40)
    listener.cancel()
    assert run.roles["kitchen"].device_id == DEVICE

    # alarm -> incident
    incident = (await rows(gateway, IncidentRow, IncidentRow.device_id == DEVICE))[0]
    assert (incident.rule_id, incident.severity) == ("gas.alarm", "critical")
    # -> close_valve with a cmd_id, the one the detector received
    [cmd] = await until(lambda: _confirmed(gateway, "close_valve"))
    assert [c["cmd_id"] for c in run.commands[DEVICE]] == [cmd.id]
    assert run.commands[DEVICE][0]["command"] == "close_valve"
    # -> cmd_ack and telemetry showing the valve closed
    acks = [json.loads(m.payload) for m in run.published if m.kind == "cmd_ack"]
    assert [(a["cmd_id"], a["ok"], a["state"]) for a in acks] == [(cmd.id, True, "closed")]
    latest = await gateway.store.last("demo", DEVICE)
    assert latest["valve"][1] == "closed"
    kinds = [e.kind for e in await rows(gateway, IncidentEventRow,
                                          IncidentEventRow.incident_id == incident.id)]
    assert [k for k in kinds if k.startswith("command_")] == [
        "command_sent", "command_acked", "command_confirmed"]
    # -> pages: the grid worker in the app, the household's family by SMS, at once
    deliveries = await rows(gateway, DeliveryRow, DeliveryRow.incident_id == incident.id)
    first_step = deliveries[0].step
    assert {"grid_worker", "family"} <= {d.role for d in deliveries if d.step == first_step}
    family = [d for d in deliveries if d.role == "family"]
    assert family and all(d.channel == "sms" for d in family)
    sms = [json.loads(r.body) for r in recording_http_server.requests if r.path == "/sms"]
    assert "13800005001" in {m["phone"] for m in sms}  # 何红, the son of 2-202
    workers = {d.person_id for d in deliveries if d.role == "grid_worker"}
    assert workers & {t.split("/")[3] for t, m in pages if m.get("id") == incident.id}
    assert incident.status == "open" and not [k for k in kinds if k == "escalating"]


async def test_a_valve_that_refuses_to_close_escalates_with_the_unconfirmed_command(
    start_gateway: Any, mosquitto: Any, recording_http_server: Any
) -> None:
    gateway = await start(start_gateway, recording_http_server, commands=FAST_COMMANDS)
    devices = community_devices(demo_community_path(), "demo")
    run = await run_scenario("gas-valve-stuck", mosquitto.url, "demo", devices, speed=40)
    incident = (await rows(gateway, IncidentRow, IncidentRow.device_id == DEVICE))[0]

    [cmd] = await until(lambda: _with_status(gateway, "close_valve", "failed"))
    assert cmd.attempts == 3 and cmd.ack_state == "open"
    assert len(run.commands[DEVICE]) == 3, "sent three times, each refused"
    events = await rows(gateway, IncidentEventRow, IncidentEventRow.incident_id == incident.id)
    kinds = [e.kind for e in events]
    assert kinds.count("command_refused") == 3 and kinds.count("command_retry") == 2
    failed = next(e for e in events if e.kind == "command_failed")
    assert failed.note == UNCONFIRMED == "断电/关阀未确认 — 请现场处置"
    assert failed.data["cmd_id"] == cmd.id and failed.data["command"] == "close_valve"
    escalating = next(e for e in events if e.kind == "escalating")
    assert UNCONFIRMED in escalating.note and escalating.at_ms == failed.at_ms
    # The ladder moved on now (critical: its next step is 2 min away otherwise).
    later = await until(lambda: _later_steps(gateway, incident.id))
    assert later and min(d.created_at_ms for d in later) - failed.at_ms < 5_000


async def test_a_pending_command_is_resent_after_a_restart(
    start_gateway: Any, mosquitto: Any, recording_http_server: Any
) -> None:
    slow = {**FAST_COMMANDS, "ack_timeout_s": 3.0}
    gateway = await start(start_gateway, recording_http_server, commands=slow)
    got: list[tuple[str, dict[str, Any]]] = []
    ready = asyncio.Event()
    topic = f"safety/demo/gas/{DEVICE}/cmd"
    listener = asyncio.create_task(_collect(mosquitto.port, topic, got, ready))
    await ready.wait()
    ctx = gateway.registry.context("demo", DEVICE)
    row = await gateway.commands.issue(ctx, "self_test", actor="duty-sun")
    await until(lambda: _true(len(got) >= 1))
    await start_gateway.stop(gateway)
    sent_before = len(got)
    # A second gateway on the same database (a restart): the silent device's command is resent.
    again = await start(start_gateway, recording_http_server, commands=slow)
    await until(lambda: _true(len(got) > sent_before), timeout=15)
    listener.cancel()
    assert {m["cmd_id"] for _, m in got} == {row.id}
    [cmd] = await rows(again, DeviceCommandRow, DeviceCommandRow.id == row.id)
    assert cmd.attempts >= 2 and cmd.status in ("sent", "failed")


async def _collect(port: int, topic: str, into: list[tuple[str, dict[str, Any]]],
                   ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"t-{time.monotonic_ns()}") as c:
        await c.subscribe(topic, qos=1)
        ready.set()
        async for msg in c.messages:
            into.append((str(msg.topic), json.loads(bytes(msg.payload))))  # type: ignore[arg-type]


async def _true(value: bool) -> bool:
    return value


async def _with_status(gateway: Any, command: str, status: str) -> list[DeviceCommandRow]:
    found = await rows(gateway, DeviceCommandRow, DeviceCommandRow.command == command)
    return [c for c in found if c.status == status]


async def _confirmed(gateway: Any, command: str) -> list[DeviceCommandRow]:
    return await _with_status(gateway, command, "confirmed")


async def _later_steps(gateway: Any, incident_id: int) -> list[DeliveryRow]:
    found = await rows(gateway, DeliveryRow, DeliveryRow.incident_id == incident_id)
    timer = await rows(gateway, EscalationTimerRow, EscalationTimerRow.incident_id == incident_id)
    return [d for d in found if d.step != found[0].step] if timer or found else []


async def test_commands_from_people_are_checked_by_role_and_grid(
    start_gateway: Any, mosquitto: Any, recording_http_server: Any
) -> None:
    import httpx

    from api.audit import AuditRow
    from tests.api.support import DEMO_PASSWORD

    gateway = await start(start_gateway, recording_http_server)
    devices = community_devices(demo_community_path(), "demo")
    await run_scenario("gas-kitchen-leak", mosquitto.url, "demo", devices, speed=40)
    incident = (await rows(gateway, IncidentRow, IncidentRow.device_id == DEVICE))[0]
    url = f"http://127.0.0.1:{gateway.api_port}/api/v1"
    async with httpx.AsyncClient(base_url=url) as client:

        async def as_(user: str) -> dict[str, str]:
            r = await client.post("/auth/login", data={"username": user, "password": DEMO_PASSWORD})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        path = f"/incidents/{incident.id}/commands"
        duty, other = await as_("duty-sun"), await as_("wang-fang")
        listed = (await client.get(path, headers=duty)).json()
        assert {c["command"] for c in listed["available"]} == {
            "close_valve", "open_valve", "self_test", "silence_local_alarm"}
        assert [c["status"] for c in listed["sent"]] == ["confirmed"]
        # a worker of another grid does not even see the incident
        r = await client.post(path, json={"command": "self_test"}, headers=other)
        assert r.status_code == 404
        r = await client.post(path, json={"command": "cut_power"}, headers=duty)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "command"
        r = await client.post(path, json={"command": "open_valve"}, headers=duty)
        assert r.status_code == 422, "nobody has taken charge of the leak yet"
        r = await client.post(path, json={"command": "self_test"}, headers=duty)
        assert r.status_code == 202 and r.json()["status"] == "sent"
    audit = await rows(gateway, AuditRow, AuditRow.action == "device.command")
    assert [(a.actor, a.target, a.detail["command"]) for a in audit] == [
        ("duty-sun", DEVICE, "self_test")]
