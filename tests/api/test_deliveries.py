"""Per-incident deliveries for the board, and the app's own receipts (per-delivery token)."""

from __future__ import annotations

import httpx

from alerting.escalation.scheduler import EscalationScheduler
from alerting.notify.stages import DeliveryPipeline
from alerting.routing.directory import ChannelKind
from gateway.directory import RegistryDirectory
from tests.alerting.incidents.incident_support import RecordingNotifier
from tests.api.conftest import Login
from tests.api.support import Env


async def page(env: Env) -> tuple[int, RecordingNotifier]:
    notifier = RecordingNotifier()
    pipeline = DeliveryPipeline(env.services.sessions, env.clock, {ChannelKind.APP: notifier})
    scheduler = EscalationScheduler(
        env.services.sessions, env.clock, RegistryDirectory(env.registry, [ChannelKind.APP]), pipeline
    )
    incident_id = await env.open_incident()
    await scheduler.due(env.clock.now_ms())
    assert notifier.sent
    return incident_id, notifier


async def test_board_sees_who_was_paged_and_the_app_marks_delivered_then_read(
    env: Env, client: httpx.AsyncClient, login: Login
) -> None:
    incident_id, notifier = await page(env)
    r = await client.get(f"/api/v1/incidents/{incident_id}/deliveries", headers=await login("duty"))
    assert r.status_code == 200, r.text
    listed = r.json()["data"]
    assert {d["person_id"] for d in listed} == {d.person_id for d in notifier.sent}
    assert {(d["channel"], d["status"]) for d in listed} == {("app", "sent")}
    worker = next(d for d in listed if d["person_id"] == "zhang-min")
    assert worker["person_name"]  # a name, not only an id
    # Another grid's worker cannot see them (404, as for the incident itself).
    other = await client.get(f"/api/v1/incidents/{incident_id}/deliveries", headers=await login("worker_g2"))
    assert other.status_code == 404

    page_to_worker = next(d for d in notifier.sent if d.person_id == "zhang-min")
    assert page_to_worker.message()["notification"]["receipt_token"] == page_to_worker.receipt_token
    url = f"/api/v1/deliveries/{page_to_worker.id}/receipt"
    wrong = await client.post(url, json={"token": "not-the-token", "state": "delivered"})
    assert wrong.status_code == 404
    shown = await client.post(url, json={"token": page_to_worker.receipt_token})
    assert (shown.status_code, shown.json()["status"]) == (200, "delivered")
    opened = await client.post(url, json={"token": page_to_worker.receipt_token, "state": "read"})
    assert opened.json()["status"] == "read"
    assert opened.json()["delivered_at_ms"] is not None
    r = await client.get(f"/api/v1/incidents/{incident_id}/deliveries", headers=await login("worker_g1"))
    states = {d["person_id"]: d["status"] for d in r.json()["data"]}
    assert states["zhang-min"] == "read"
    # The incident's read model (what the board's cards show) says so too.
    detail = await client.get(f"/api/v1/incidents/{incident_id}", headers=await login("duty"))
    paged = {p["person_id"]: p for p in detail.json()["incident"]["paged"]}
    assert (paged["zhang-min"]["delivery"], paged["zhang-min"]["receipt"]) == ("delivered", "read")


async def test_provider_callbacks_are_refused_without_a_configured_secret(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/api/v1/receipts/aliyun-sms/anything", json=[{"biz_id": "1", "success": True}])
    assert r.status_code == 404
