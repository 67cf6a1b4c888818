"""Devices: ledger CRUD and CSV, status and telemetry from the time-series store, scoping."""

from __future__ import annotations

import pytest

from core.readings import Reading
from gateway.storage import StoredReading
from tests.api.support import G1_DEVICE, G2_DEVICE

V1 = "/api/v1/devices"
NEW = {
    "site": "demo",
    "device_id": "smk-new-1",
    "device_type": "smoke",
    "grid_id": "demo.g1",
    "building_id": "demo.b01",
    "location": "1号楼 楼顶",
}


async def test_device_crud(client, login, env):
    h = await login("secretary")
    r = await client.post(V1, json=NEW, headers=h)
    assert r.status_code == 201, r.text
    assert env.registry.context("demo", "smk-new-1") is not None  # the pipeline sees it at once
    assert (await client.post(V1, json=NEW, headers=h)).status_code == 409
    r = await client.patch(
        f"{V1}/demo/smk-new-1", json={"enabled": False, "name": "顶楼"}, headers=h
    )
    assert r.status_code == 200
    assert r.json()["enabled"] is False
    assert (await client.get(f"{V1}/demo/smk-new-1", headers=h)).json()["name"] == "顶楼"
    assert (await client.delete(f"{V1}/demo/smk-new-1", headers=h)).status_code == 204
    assert (await client.get(f"{V1}/demo/smk-new-1", headers=h)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"device_type": "toaster"}, "device_type"),
        ({"grid_id": "demo.nope"}, "grid_id"),
        ({"device_id": "bad id/1"}, "device_id"),
        ({"ports": 0}, "ports"),
        ({"installed_at": "last tuesday"}, "installed_at"),
        ({"building_id": "demo.b99"}, "building_id"),
    ],
)
async def test_bad_device_names_the_field(client, login, change, field):
    r = await client.post(V1, json=NEW | change, headers=await login("admin"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field


async def test_devices_are_scoped_to_grids(client, login):
    h = await login("worker_g1")
    devices = (await client.get(V1, headers=h)).json()
    assert devices
    assert {d["grid_id"] for d in devices} == {"demo.g1"}
    assert (await client.get(f"{V1}/demo/{G2_DEVICE}", headers=h)).status_code == 404
    assert (await client.get(f"{V1}/demo/{G2_DEVICE}/status", headers=h)).status_code == 404
    assert (await client.post(V1, json=NEW, headers=h)).status_code == 403
    assert (await client.get(f"{V1}/ledger.csv", headers=h)).status_code == 403
    filtered = (
        await client.get(
            V1, params={"device_type": "smoke", "building": "demo.b01"}, headers=await login("duty")
        )
    ).json()
    assert filtered
    assert all(d["building_id"] == "demo.b01" for d in filtered)


async def test_status_and_telemetry(client, login, env, clock):
    now = clock.now_ms()
    await env.store.write(
        [
            StoredReading(
                Reading(
                    "demo",
                    "smoke",
                    G1_DEVICE,
                    "telemetry",
                    now - 10_000 * i,
                    i,
                    {"smoke_dbm": float(i), "battery_pct": 80 - i},
                ),
                "demo.g1",
            )
            for i in range(12)
        ]
        + [
            StoredReading(
                Reading("demo", "smoke", G1_DEVICE, "status", now, 99, {"online": True}), "demo.g1"
            )
        ]
    )
    h = await login("worker_g1")
    r = await client.get(f"{V1}/demo/{G1_DEVICE}/status", headers=h)
    body = r.json()
    assert body["online"] is True
    assert body["last_seen_ms"] == now
    assert body["battery_pct"] == 80
    params = {
        "field": "smoke_dbm",
        "start_ms": now - 120_000,
        "end_ms": now + 1,
        "every_ms": 60_000,
    }
    r = await client.get(f"{V1}/demo/{G1_DEVICE}/telemetry", params=params, headers=h)
    assert r.status_code == 200
    buckets = r.json()["buckets"]
    assert sum(b["samples"] for b in buckets) == 12
    bad = params | {"end_ms": now - 200_000}
    r = await client.get(f"{V1}/demo/{G1_DEVICE}/telemetry", params=bad, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "end_ms"
    r = await client.get(
        f"{V1}/demo/{G1_DEVICE}/telemetry",
        params=params | {"every_ms": 1000, "start_ms": 0},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "every_ms"
    r = await client.get(f"{V1}/demo/{G1_DEVICE}/telemetry", params={"field": "x"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "start_ms"


async def test_status_without_readings_is_unknown(client, login):
    r = await client.get(f"{V1}/demo/{G1_DEVICE}/status", headers=await login("duty"))
    assert r.json()["online"] is None
    assert r.json()["last_seen_ms"] is None


async def test_ledger_csv_round_trip(client, login, env):
    h = await login("secretary")
    r = await client.get(f"{V1}/ledger.csv", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    text = r.text.lstrip("\ufeff")
    lines = text.splitlines()
    assert len(lines) > 10
    assert G1_DEVICE in text
    new_line = lines[1].replace(lines[1].split(",")[0], "imported-1", 1)
    upload = "\n".join([lines[0], lines[1], new_line]) + "\n"
    r = await client.post(
        f"{V1}/ledger.csv", files={"file": ("ledger.csv", upload.encode(), "text/csv")}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 1}
    assert env.registry.context("demo", "imported-1") is not None


async def test_bad_ledger_rows_are_named_and_nothing_is_written(client, login):
    h = await login("secretary")
    text = (await client.get(f"{V1}/ledger.csv", headers=h)).text.lstrip("\ufeff")
    header, first = text.splitlines()[:2]
    cells = first.split(",")
    good = ",".join(["ok-new-2", *cells[1:]])
    bad = ",".join(["bad-1", "toaster", *cells[2:]])
    upload = f"{header}\n{good}\n{bad}\n"
    r = await client.post(
        f"{V1}/ledger.csv", files={"file": ("l.csv", upload.encode(), "text/csv")}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].startswith("rows.3.")
    assert (await client.get(f"{V1}/demo/ok-new-2", headers=h)).status_code == 404
    r = await client.post(
        f"{V1}/ledger.csv", files={"file": ("l.csv", b"\xff\xfe\x00", "text/csv")}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "file"
    r = await client.post(
        f"{V1}/ledger.csv", files={"file": ("l.csv", b"what,ever\n1,2\n", "text/csv")}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "file"
    r = await client.post(f"{V1}/ledger.csv", headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "file"
