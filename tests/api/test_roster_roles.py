"""A roster entry keeps its role (issue 11 item 9): a grid worker's shift does not make them
site duty staff in `route-test`, and `GET /rosters` lists the community file's weekly roster."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from gateway.__main__ import main as gateway_cli

V1 = "/api/v1"
G1_SOS = "sos-b02-2-202"  # grid g1
G4_SMOKE = "smk-b10-u1-f1"  # grid g4


async def add_rostered_worker(client: Any, h: dict[str, str]) -> None:
    r = await client.post(f"{V1}/people", headers=h, json={
        "id": "zhou-yu", "site": "demo", "name": "周雨", "role": "grid_worker",
        "grids": ["demo.g4"], "channels": {"mqtt": True}})
    assert r.status_code == 201, r.text
    now = datetime.now(UTC)
    r = await client.post(f"{V1}/rosters", headers=h, json={
        "site": "demo", "person_id": "zhou-yu", "role": "grid_worker",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=4)).isoformat()})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "grid_worker"


async def route_test(tmp_path: Path, sqlite_url: str, device: str, rule: str,
                     capsys: Any) -> str:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"mode": "development", "database": {"url": sqlite_url}}))
    capsys.readouterr()
    code = await asyncio.to_thread(gateway_cli, ["route-test", "--config", str(config), device, rule])
    out = capsys.readouterr()
    assert code == 0, out.err
    return str(out.out)


async def test_a_grid_worker_shift_keeps_its_role_in_route_test(
    client: Any, login: Any, tmp_path: Path, sqlite_url: str, capsys: Any
) -> None:
    await add_rostered_worker(client, await login("admin"))

    sos_g1 = await route_test(tmp_path, sqlite_url, G1_SOS, "sos.button", capsys)
    assert "周雨" not in sos_g1, sos_g1  # a grid-4 worker is not paged for grid 1
    assert "[duty_staff]" in sos_g1, sos_g1  # the site's duty staff still are

    smoke_g4 = await route_test(tmp_path, sqlite_url, G4_SMOKE, "smoke.alarm", capsys)
    assert "周雨 [grid_worker]" in smoke_g4, smoke_g4
    assert "周雨 [duty_staff]" not in smoke_g4, smoke_g4


async def test_rosters_lists_the_weekly_roster_and_the_shifts_with_their_roles(
    client: Any, login: Any
) -> None:
    h = await login("admin")
    await add_rostered_worker(client, h)
    r = await client.get(f"{V1}/rosters", headers=await login("duty"))
    assert r.status_code == 200, r.text
    entries = r.json()
    weekly = {(e["person_id"], e["start"], e["end"], e["role"], tuple(e["days"]))
              for e in entries if e["kind"] == "weekly"}
    daily = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert weekly == {
        ("duty-sun", "08:00", "16:00", "duty_staff", daily),
        ("duty-ma", "16:00", "00:00", "duty_staff", daily),
        ("duty-zhu", "00:00", "08:00", "duty_staff", daily),
    }
    shifts = {(e["person_id"], e["role"]) for e in entries if e["kind"] == "shift"}
    assert shifts == {("secretary-guo", "secretary"), ("zhou-yu", "grid_worker")}
    # a grid worker reads no site roster
    r = await client.get(f"{V1}/rosters", headers=await login("worker_g1"))
    assert r.status_code == 403


async def test_a_grid_workers_shift_is_read_at_the_gateways_time(
    client: Any, login: Any, env: Any, clock: Any
) -> None:
    """A backup worker on a roster shift answers for the grid first. Who is on shift is read
    at the gateway's time (a compressed demo, a manual clock), not the wall clock's."""
    from alerting.routing.directory import ChannelKind
    from gateway.directory import RegistryDirectory

    h = await login("admin")
    r = await client.post(f"{V1}/people", headers=h, json={
        "id": "zhou-yu", "site": "demo", "name": "周雨", "role": "grid_worker",
        "backup_grids": ["demo.g4"], "channels": {"mqtt": True}})
    assert r.status_code == 201, r.text
    start = datetime.fromtimestamp(clock.now_ms() / 1000, UTC) + timedelta(hours=1)
    r = await client.post(f"{V1}/rosters", headers=h, json={
        "site": "demo", "person_id": "zhou-yu", "role": "grid_worker",
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=8)).isoformat()})
    assert r.status_code == 201, r.text
    directory = RegistryDirectory(env.registry, [ChannelKind.APP], clock)

    async def g4_workers() -> list[str]:
        staff = await directory.grid_workers("demo", "demo.g4")
        return [p.name for p in staff.primary]

    assert "周雨" not in await g4_workers()  # before the shift
    clock.advance(2 * 3_600_000)
    assert "周雨" in await g4_workers()  # on shift
    clock.advance(8 * 3_600_000)
    assert "周雨" not in await g4_workers()  # after it
