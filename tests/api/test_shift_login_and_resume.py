"""A login that lasts a shift (refresh tokens), log out everywhere, Web Push subscriptions, and a
live stream that resumes after a dropped connection without losing an incident."""

from __future__ import annotations

import asyncio
import json

from tests.api.support import DEMO_PASSWORD, G1_DEVICE, G2_DEVICE

V1 = "/api/v1"


async def _login(client, user="zhang-min"):
    r = await client.post(f"{V1}/auth/login", data={"username": user, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def _bearer(body) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_login_is_renewed_through_the_shift_and_ends_after_it(client, env):
    first = await _login(client)
    assert first["refresh_token"]
    env.clock.advance(11 * 3600 * 1000)  # late in the shift
    r = await client.post(f"{V1}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(f"{V1}/auth/me", headers=_bearer(second))).status_code == 200
    # The login lasts a shift (16 h from the password), not forever.
    env.clock.advance(5 * 3600 * 1000 + 1)
    r = await client.post(f"{V1}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401


async def test_a_refresh_token_used_twice_ends_the_login(client):
    body = await _login(client)
    ok = await client.post(f"{V1}/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert ok.status_code == 200
    # Someone replays the used token (a copy): the whole login ends, the new pair too.
    again = await client.post(f"{V1}/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401
    newer = ok.json()
    assert (await client.get(f"{V1}/auth/me", headers=_bearer(newer))).status_code == 401
    r = await client.post(f"{V1}/auth/refresh", json={"refresh_token": newer["refresh_token"]})
    assert r.status_code == 401


async def test_log_out_everywhere_ends_every_phone_at_once(client):
    phone, tablet = await _login(client), await _login(client)
    other = await _login(client, "wang-fang")
    r = await client.post(f"{V1}/auth/logout-everywhere", headers=_bearer(phone))
    assert r.status_code == 200 and r.json() == {"ended_logins": 2}
    for body in (phone, tablet):
        # The access token stops at once, not when it expires, and cannot be renewed.
        assert (await client.get(f"{V1}/auth/me", headers=_bearer(body))).status_code == 401
        r = await client.post(f"{V1}/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert r.status_code == 401
    assert (await client.get(f"{V1}/auth/me", headers=_bearer(other))).status_code == 200


async def _read_events(resp, until) -> list[tuple[str, dict]]:
    events, kind, data, ident = [], None, None, None
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line.startswith("id: "):
            ident = line[4:]
        elif line == "" and kind is not None:
            events.append((kind, data, ident))
            kind, ident = None, None
            if until(events):
                return events
    return events


async def test_the_live_stream_resumes_with_last_event_id_without_losing_an_incident(client, env):
    headers = _bearer(await _login(client))
    # Connected, the app sees an event; then the phone loses its network.
    task = asyncio.create_task(_first_incident(client, headers))
    for _ in range(200):
        if env.services.live.subscribers:
            break
        await asyncio.sleep(0.01)
    env.services.live.publish(
        "device_status", "demo", "demo.g1", {"device_id": G1_DEVICE, "online": True}
    )
    last_id = await asyncio.wait_for(task, 10)
    # While it is away an SOS opens (one in g2 too, which this worker must never see).
    missed = await env.open_incident(G2_DEVICE)
    missed_g1 = await env.open_incident("sos-b02-2-202", rule_id="sos.button", title="一键呼叫求助")
    # Back online: EventSource reconnects by itself with Last-Event-ID.
    resumed = {**headers, "Last-Event-ID": last_id}
    async with client.stream("GET", f"{V1}/live", headers=resumed, params={"limit": 1}) as resp:
        events = await asyncio.wait_for(_read_events(resp, lambda ev: len(ev) >= 2), 10)
    incidents = [d for k, d, _ in events if k == "incident"]
    assert [i["id"] for i in incidents] == [missed_g1], (missed, events)
    assert incidents[0]["card"]["household"]["contacts"], "the resumed event is the whole incident"


async def _first_incident(client, headers) -> str:
    async with client.stream("GET", f"{V1}/live", headers=headers, params={"limit": 1}) as resp:
        events = await _read_events(resp, lambda ev: len(ev) >= 2)
    return next(ident for kind, _, ident in events if ident)


async def test_a_last_event_id_too_old_tells_the_app_to_reload(client, env):
    headers = {**_bearer(await _login(client)), "Last-Event-ID": "5"}
    async with client.stream("GET", f"{V1}/live", headers=headers, params={"limit": 1}) as resp:
        events = await asyncio.wait_for(_read_events(resp, lambda ev: len(ev) >= 2), 10)
    assert [k for k, *_ in events] == ["hello", "reset"]


async def test_a_worker_subscribes_a_phone_for_web_push(client, env):
    headers = _bearer(await _login(client))
    sub = {
        "endpoint": "https://push.example.org/send/abc123",
        "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22},
        "device_label": "张敏的手机",
    }
    # Web Push off on this gateway: said so, nothing stored.
    assert (await client.get(f"{V1}/push/vapid-public-key")).status_code == 404
    env.services.push_public_key = "BPublicKey"
    assert (await client.get(f"{V1}/push/vapid-public-key")).json() == {"public_key": "BPublicKey"}
    r = await client.post(f"{V1}/push/subscriptions", json=sub, headers=headers)
    assert r.status_code == 201, r.text
    again = await client.post(f"{V1}/push/subscriptions", json=sub, headers=headers)
    assert again.json()["id"] == r.json()["id"], "one row per phone"
    plain = {**sub, "endpoint": "http://push.example.org/send/x"}
    bad = await client.post(f"{V1}/push/subscriptions", json=plain, headers=headers)
    assert bad.status_code == 422 and "https" in bad.text
    mine = (await client.get(f"{V1}/push/subscriptions", headers=headers)).json()
    assert [m["device_label"] for m in mine] == ["张敏的手机"]
    r = await client.delete(
        f"{V1}/push/subscriptions", params={"endpoint": sub["endpoint"]}, headers=headers
    )
    assert r.status_code == 204
    assert (await client.get(f"{V1}/push/subscriptions", headers=headers)).json() == []
