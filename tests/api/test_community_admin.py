"""Running the community from the API: roster swaps, household risk files and visits, device
upkeep with a ledger preview, rule tuning within bounds; audited with before/after; roles.
On SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alerting.models import Severity
from core.clock import ManualClock
from gateway.registry.tables import Device
from tests.api.support import Env, build_env, prepare_db

V1 = "/api/v1"
HOUSEHOLD = "demo.b02.2-202"
SOS = "sos-b02-2-202"
LEDGER_HEADER = "设备编号,设备类型,设备名称,所属网格,楼栋,单元,房号,安装位置,安装日期,厂商/型号,接入配置,平台设备标识,端口数,启用\n"


@pytest.fixture
async def env(db_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Env]:
    await prepare_db(db_url)
    built = await build_env(db_url, tmp_path, clock)
    yield built
    await built.close()


ADMIN_CALLS = [
    ("post", "/roster/swaps", {"site": "demo", "to_person": "duty-ma", "weekly_id": 1, "date": "2025-11-24"}),
    ("post", "/roster/weekly", {"site": "demo", "person_id": "duty-ma", "weekday": 0, "start": "08:00", "end": "09:00"}),
    ("get", "/roster/week", None),
    ("delete", "/roster/swaps/1", None),
    ("post", f"/devices/demo/{SOS}/replace", {"new_device_id": "sos-new"}),
    ("post", f"/devices/demo/{SOS}/decommission", {}),
    ("put", "/rules/smoke.obscuration/params", {"params": {"raise_at": 0.25}}),
    ("get", "/history/household/demo.b02.2-202", None),
    ("post", "/people", {"id": "x1", "site": "demo", "name": "某", "role": "grid_worker"}),
    ("patch", f"/households/{HOUSEHOLD}", {"risk_tier": "red"}),
    ("post", "/silences", {"site": "demo", "matcher": "grid", "value": "demo.g1", "duration_s": 3600}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_a_grid_worker_is_refused_every_admin_route(client, login, method, path, body):
    headers = await login("worker_g1")
    kwargs = {"json": body} if body is not None else {}
    r = await client.request(method.upper(), V1 + path, headers=headers, **kwargs)
    assert r.status_code == 403, (path, r.status_code, r.text)


async def test_a_swap_puts_the_stand_in_on_duty_and_shows_in_the_week(client, login, env):
    admin = await login("secretary")
    # 2025-11-24 is a Monday; the clock stands at 2025-11-24T16:00Z (Tuesday 00:00 local).
    week = (await client.get(f"{V1}/roster/week?start=2025-11-24", headers=admin)).json()
    monday = week["days"][0]
    slot = next(s for s in monday["slots"] if s["person_id"] == "duty-sun")
    assert slot["start"] == "08:00" and slot["covered_by"] is None
    r = await client.post(
        f"{V1}/roster/swaps",
        headers=admin,
        json={"site": "demo", "weekly_id": slot["weekly_id"], "date": "2025-11-24",
              "to_person": "duty-ma", "note": "孙请假"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    week = (await client.get(f"{V1}/roster/week?start=2025-11-24", headers=admin)).json()
    slot = next(s for s in week["days"][0]["slots"] if s["person_id"] == "duty-sun")
    assert slot["covered_by"]["person_id"] == "duty-ma"
    at = datetime(2025, 11, 24, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    assert [p.id for p in env.registry.on_duty("demo", at)] == ["duty-ma"]
    next_day = datetime(2025, 11, 25, 3, 0, tzinfo=UTC)
    assert [p.id for p in env.registry.on_duty("demo", next_day)] == ["duty-sun"]
    # a swap of someone into their own shift, or on a day the slot does not run, is refused
    bad = await client.post(
        f"{V1}/roster/swaps",
        headers=admin,
        json={"site": "demo", "weekly_id": slot["weekly_id"], "date": "2025-11-24", "to_person": "duty-sun"},
    )  # fmt: skip
    assert bad.status_code == 422 and "to_person" in bad.text
    history = (await client.get(f"{V1}/history/roster_swap/{r.json()['id']}", headers=admin)).json()
    assert history[0]["detail"]["before"] == {"on_duty": "duty-sun"}
    assert history[0]["actor"] == "secretary-guo"


async def test_weekly_slots_are_added_and_removed(client, login, env):
    admin = await login("secretary")
    r = await client.post(
        f"{V1}/roster/weekly",
        headers=admin,
        json={"site": "demo", "person_id": "secretary-guo", "weekday": 5, "start": "09:00", "end": "12:00"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    saturday = datetime(2025, 11, 29, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert "secretary-guo" in [p.id for p in env.registry.on_duty("demo", saturday)]
    gone = await client.delete(f"{V1}/roster/weekly/{r.json()['id']}", headers=admin)
    assert gone.status_code == 204
    assert "secretary-guo" not in [p.id for p in env.registry.on_duty("demo", saturday)]
    empty = await client.post(
        f"{V1}/roster/weekly",
        headers=admin,
        json={"site": "demo", "person_id": "duty-ma", "weekday": 5, "start": "09:00", "end": "09:00"},
    )  # fmt: skip
    assert empty.status_code == 422 and "end" in empty.text


async def test_risk_file_changes_the_incident_and_is_audited(client, login, env):
    admin = await login("secretary")
    body = {
        "risk_tier": "red",
        "facts": {"mobility": "坐轮椅", "chronic_illness": "糖尿病", "key_holder": "楼栋长梁国超",
                  "language": "温州话"},
        "contacts": [{"name": "何红", "relation": "儿子", "phone": "13800005001"},
                     {"name": "何丽", "relation": "女儿", "phone": "13800005999"}],
        "no_activity_hours": 12,
    }  # fmt: skip
    r = await client.patch(f"{V1}/households/{HOUSEHOLD}", headers=admin, json=body)
    assert r.status_code == 200, r.text
    bad = await client.patch(
        f"{V1}/households/{HOUSEHOLD}", headers=admin, json={"risk_tier": "purple"}
    )
    assert bad.status_code == 422 and "risk_tier" in bad.text
    history = (await client.get(f"{V1}/history/household/{HOUSEHOLD}", headers=admin)).json()
    assert history[0]["detail"]["before"]["risk_tier"] is None
    assert history[0]["detail"]["after"]["risk_tier"] == "red"

    ctx = env.registry.context("demo", SOS)
    assert ctx is not None and ctx.risk_tier == "red" and ctx.no_activity_ms == 12 * 3_600_000
    # a major alert at a red household opens as critical, acknowledged within half the time
    incident_id = await env.open_incident(SOS, rule_id="sos.low_battery", severity=Severity.MAJOR)
    found = (await client.get(f"{V1}/incidents/{incident_id}", headers=admin)).json()
    incident = found.get("incident", found)
    assert incident["severity"] == "critical"
    assert incident["ack_due_ms"] - incident["opened_at_ms"] == 60_000  # critical: 120 s × 0.5
    card = incident["household_card"]
    assert [c["name"] for c in card["contacts"]] == ["何红", "何丽"]
    assert card["facts"]["mobility"] == "坐轮椅"


async def test_visits_set_the_tier_and_overdue_ones_show_per_grid(client, login, env):
    worker = await login("worker_g1")
    r = await client.post(
        f"{V1}/households/{HOUSEHOLD}/visits",
        headers=worker,
        json={"visited_on": "2025-11-01", "notes": "血压偏高", "risk_tier": "orange"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["next_due"] == "2025-11-15"  # orange: every 14 days
    assert r.json()["visitor"] == "zhang-min"
    overdue = (await client.get(f"{V1}/visits/overdue", headers=worker)).json()
    g1 = next(g for g in overdue["grids"] if g["grid_id"] == "demo.g1")
    assert HOUSEHOLD in [h["household_id"] for h in g1["households"]]
    other = await login("worker_g2")
    refused = await client.post(
        f"{V1}/households/{HOUSEHOLD}/visits", headers=other, json={"visited_on": "2025-11-01"}
    )
    assert refused.status_code == 404
    secretary = await login("secretary")
    figures = (await client.get(f"{V1}/visits/figures?month=2025-11", headers=secretary)).json()
    zhang = next(w for w in figures["workers"] if w["person_id"] == "zhang-min")
    assert zhang["visits"] == 1
    assert {"week": "2025-W44", "visits": 1, "met": False} in zhang["weeks"]
    assert (
        await client.get(f"{V1}/visits/figures?month=2025-11", headers=worker)
    ).status_code == 403
    elderly = (await client.get(f"{V1}/households/elderly", headers=worker)).json()
    assert HOUSEHOLD in [h["household_id"] for h in elderly]
    assert all(h["grid_id"] == "demo.g1" for h in elderly)


async def test_ledger_preview_names_the_bad_column_and_writes_nothing(client, login, env):
    admin = await login("secretary")
    csv = (
        LEDGER_HEADER
        + "smk-new-1,烟感,新烟感,第一网格,1号楼,,,1号楼 门厅,2025-10-01,海曼 HM-608PH,,,,是\n"
        + "smk-new-2,烟感,坏行,第九网格,1号楼,,,1号楼 二层,2025-10-01,海曼 HM-608PH,,,,是\n"
    )
    files = {"file": ("ledger.csv", csv.encode(), "text/csv")}
    r = await client.post(f"{V1}/devices/ledger.csv/preview?site=demo", headers=admin, files=files)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert not preview["ok"] and preview["create"] == 1 and preview["refused"] == 1
    bad = next(row for row in preview["rows"] if row["action"] == "refused")
    assert bad["row"] == 3 and bad["problems"][0]["column"] == "所属网格"
    async with env.services.sessions() as s:
        assert await s.scalar(select(func.count()).where(Device.device_id.like("smk-new-%"))) == 0


async def test_replace_keeps_the_place_and_the_history(client, login):
    admin = await login("secretary")
    moved = await client.patch(
        f"{V1}/devices/demo/{SOS}", headers=admin, json={"location": "2号楼2单元202室 客厅"}
    )
    assert moved.status_code == 200
    r = await client.post(
        f"{V1}/devices/demo/{SOS}/replace", headers=admin, json={"new_device_id": "sos-b02-2-202b"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["location"] == "2号楼2单元202室 客厅"
    old = (await client.get(f"{V1}/devices/demo/{SOS}", headers=admin)).json()
    assert old["enabled"] is False and old["replaced_by"] == "sos-b02-2-202b"
    history = (
        await client.get(f"{V1}/history/device/sos-b02-2-202b?site=demo", headers=admin)
    ).json()
    actions = [h["action"] for h in history]
    assert "device.replacement" in actions and "device.update" in actions
    move = next(h for h in history if h["action"] == "device.update")
    assert move["detail"]["before"]["location"] == "2号楼2单元202室 卧室床头"
    gone = await client.post(
        f"{V1}/devices/demo/sos-b02-2-202b/decommission", headers=admin, json={}
    )
    assert gone.status_code == 200 and gone.json()["decommissioned_on"]


async def test_rules_tune_only_within_the_files_bounds(client, login):
    admin = await login("secretary")
    r = await client.put(
        f"{V1}/rules/smoke.obscuration/params", headers=admin, json={"params": {"raise_at": 0.25}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["raise_at"] == 0.25
    out = await client.put(
        f"{V1}/rules/smoke.obscuration/params", headers=admin, json={"params": {"raise_at": 0.9}}
    )
    assert out.status_code == 422
    assert "params.raise_at" in out.text and "[0.1, 0.3]" in out.text
    untunable = await client.put(
        f"{V1}/rules/smoke.obscuration/params", headers=admin, json={"params": {"op": 1}}
    )
    assert untunable.status_code == 422 and "not tunable" in untunable.text
    window = await client.put(
        f"{V1}/rules/household.elderly_no_activity/params",
        headers=admin,
        json={"params": {"for": "36h"}},
    )
    assert window.status_code == 200 and window.json()["for"] == "1d12h"
    history = (await client.get(f"{V1}/history/rule/smoke.obscuration", headers=admin)).json()
    assert history[0]["detail"] == {"before": {"raise_at": 0.2}, "after": {"raise_at": 0.25}}


async def test_people_answer_for_grids_as_primary_or_backup(client, login):
    admin = await login("secretary")
    r = await client.post(
        f"{V1}/people",
        headers=admin,
        json={"id": "qian-li", "site": "demo", "name": "钱丽", "role": "grid_worker",
              "grids": ["demo.g2"], "backup_grids": ["demo.g1"], "password": "qian-li-pass-1",
              "channels": {"mqtt": True, "sms": "13800009999"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["backup_grids"] == ["demo.g1"] and r.json()["grids"] == ["demo.g2"]
    off = await client.patch(f"{V1}/people/qian-li", headers=admin, json={"active": False})
    assert off.json()["active"] is False
    history = (await client.get(f"{V1}/history/person/qian-li", headers=admin)).json()
    assert history[0]["detail"] == {"before": {"active": True}, "after": {"active": False}}
