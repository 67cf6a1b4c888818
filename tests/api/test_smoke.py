from __future__ import annotations

from tests.api.support import G1_DEVICE


async def test_login_and_list(client, login, env):
    headers = await login("duty")
    incident_id = await env.open_incident(G1_DEVICE)
    r = await client.get("/api/v1/incidents", headers=headers)
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["data"]] == [incident_id]
