"""Rules (list, validate, toggle, route tester), silences, and the quarantine."""

from __future__ import annotations

import pytest

from core.readings import Rejection, RejectReason
from tests.api.support import G1_DEVICE

V1 = "/api/v1"


async def test_rules_list_get_toggle(client, login, env):
    h = await login("duty")
    rules = (await client.get(f"{V1}/rules", headers=await login("worker_g1"))).json()
    assert rules
    assert {"id", "kind", "enabled", "severity"} <= set(rules[0])
    rule_id = rules[0]["id"]
    assert (await client.get(f"{V1}/rules/{rule_id}", headers=h)).json()["id"] == rule_id
    assert (await client.get(f"{V1}/rules/nope", headers=h)).status_code == 404
    assert (
        await client.put(f"{V1}/rules/{rule_id}/enabled", json={"enabled": False}, headers=h)
    ).status_code == 403
    admin = await login("admin")
    r = await client.put(f"{V1}/rules/{rule_id}/enabled", json={"enabled": False}, headers=admin)
    assert r.status_code == 200
    assert r.json()["enabled"] is False
    assert env.services.rules.rules.by_id[rule_id].enabled is False
    r = await client.put(f"{V1}/rules/{rule_id}/enabled", json={"enabled": "maybe"}, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "enabled"
    r = await client.put(f"{V1}/rules/nope/enabled", json={"enabled": True}, headers=admin)
    assert r.status_code == 404


async def test_rule_validation(client, login):
    h = await login("duty")
    good = (await client.get(f"{V1}/rules", headers=h)).json()[0]
    r = await client.post(f"{V1}/rules/validate", json={"rules": [good]}, headers=h)
    assert r.json() == {"valid": True, "problems": []}
    bad = good | {"severity": "apocalyptic"}
    r = await client.post(f"{V1}/rules/validate", json={"rules": [bad, good]}, headers=h)
    body = r.json()
    assert body["valid"] is False
    assert any("severity" in p for p in body["problems"])
    assert any(
        "duplicate" in p
        for p in (
            await client.post(f"{V1}/rules/validate", json={"rules": [good, good]}, headers=h)
        ).json()["problems"]
    )
    r = await client.post(f"{V1}/rules/validate", json={"rules": []}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "rules"
    r = await client.post(
        f"{V1}/rules/validate", json={"rules": [good]}, headers=await login("worker_g1")
    )
    assert r.status_code == 403


async def test_route_tester(client, login):
    h = await login("duty")
    r = await client.post(
        f"{V1}/rules/route-test",
        json={"site": "demo", "device_id": G1_DEVICE, "severity": "critical"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["steps"]
    assert "recipients" in r.json()["steps"][0]
    r = await client.post(
        f"{V1}/rules/route-test",
        json={"site": "demo", "device_id": "ghost", "severity": "critical"},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "device_id"
    r = await client.post(
        f"{V1}/rules/route-test",
        json={"site": "demo", "device_id": G1_DEVICE, "severity": "x"},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "severity"


async def test_silences(client, login, env, clock):
    h = await login("duty")
    body = {
        "site": "demo",
        "matcher": "device",
        "value": G1_DEVICE,
        "duration_s": 3600,
        "reason": "更换电池",
    }
    r = await client.post(f"{V1}/silences", json=body, headers=h)
    assert r.status_code == 201, r.text
    silence = r.json()
    assert silence["ends_at_ms"] == clock.now_ms() + 3_600_000
    assert silence["created_by"] == "duty-sun"
    listed = (await client.get(f"{V1}/silences", headers=h)).json()
    assert [s["id"] for s in listed] == [silence["id"]]
    assert (await client.delete(f"{V1}/silences/{silence['id']}", headers=h)).status_code == 204
    clock.advance(1)
    assert (await client.get(f"{V1}/silences", headers=h)).json() == []
    assert (
        len((await client.get(f"{V1}/silences", params={"active": False}, headers=h)).json()) == 1
    )
    assert (await client.delete(f"{V1}/silences/9999", headers=h)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"matcher": "planet"}, "matcher"),
        ({"value": "ghost"}, "value"),
        ({"ends_at_ms": 5}, ""),
        ({"duration_s": 1}, "duration_s"),
    ],
)
async def test_bad_silences(client, login, change, field):
    body = {"site": "demo", "matcher": "device", "value": G1_DEVICE, "duration_s": 3600} | change
    r = await client.post(f"{V1}/silences", json=body, headers=await login("duty"))
    assert r.status_code == 422, r.text
    if field:
        assert r.json()["errors"][0]["field"] == field


async def test_workers_cannot_silence(client, login):
    body = {"site": "demo", "matcher": "grid", "value": "demo.g1", "duration_s": 3600}
    r = await client.post(f"{V1}/silences", json=body, headers=await login("worker_g1"))
    assert r.status_code == 403


async def test_quarantine(client, login, env, clock):
    q = env.services.quarantine
    q.add(
        clock.now_ms(),
        "safety/demo/smoke/x/telemetry",
        b"{oops",
        Rejection(RejectReason.NOT_JSON, "not JSON", device_id="x"),
    )
    q.add(
        clock.now_ms(),
        "safety/demo/smoke/y/event",
        b'{"event":"dance"}',
        Rejection(RejectReason.UNKNOWN_EVENT, "no such event", device_id="y"),
    )
    await q.flush()
    h = await login("duty")
    rows = (await client.get(f"{V1}/quarantine", headers=h)).json()
    assert [r["reason"] for r in rows] == ["unknown_event", "not_json"]
    assert rows[1]["payload_text"] == "{oops"
    only = (await client.get(f"{V1}/quarantine", params={"reason": "not_json"}, headers=h)).json()
    assert len(only) == 1
    r = await client.get(f"{V1}/quarantine", params={"reason": "boredom"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "reason"
    assert "not_json" in (await client.get(f"{V1}/quarantine/reasons", headers=h)).json()
    counts = (await client.get(f"{V1}/quarantine/counts", headers=h)).json()
    assert counts["since_start"] == {"not_json": 1, "unknown_event": 1} == counts["stored"]
    w = await login("worker_g1")
    for path in ("", "/reasons", "/counts"):
        assert (await client.get(f"{V1}/quarantine{path}", headers=w)).status_code == 403
