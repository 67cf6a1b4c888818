"""An alert storm through a real broker: 500 charger ports over the power limit at once make
one grouped incident, a few pages per person, rate-limited and recorded power cuts; a fire
alarm of another device during the storm is still paged, and every telemetry point is stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
import yaml
from sqlalchemy import func, select

from alerting.commands.tables import DeviceCommandRow
from alerting.incidents.tables import IncidentDeviceRow, IncidentEventRow, IncidentRow
from tests.services import Mosquitto

PORTS = 500


def storm_community(path: Path) -> Path:
    spec = {
        "site": {"code": "demo", "name": "测试社区", "timezone": "Asia/Shanghai"},
        "grids": [{"code": "g1", "name": "第一网格"}, {"code": "g2", "name": "第二网格"}],
        "buildings": [
            {"code": "b01", "name": "1号楼", "grid": "g2"},
            {"code": "shed1", "name": "1号充电棚", "grid": "g1"},
        ],
        "devices": [
            {"id": "SD-0001", "type": "smoke", "building": "b01", "location": "1号楼 厨房"},
            *(
                {"id": f"CP-{i:04d}", "type": "charger", "building": "shed1", "location": "充电棚"}
                for i in range(1, PORTS + 1)
            ),
        ],
        "people": [
            {"id": "worker-a", "name": "网格员甲", "role": "grid_worker",
             "channels": {"mqtt": True}, "grids": ["g1"]},
            {"id": "worker-b", "name": "网格员乙", "role": "grid_worker",
             "channels": {"mqtt": True}, "grids": ["g2"]},
            {"id": "duty-1", "name": "值班员", "role": "duty_staff", "channels": {"mqtt": True}},
        ],
        "roster": {"weekly": [{"person": "duty-1", "days": "daily", "start": "00:00",
                               "end": "00:00"}]},
    }
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


async def wait_until(cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_storm_of_500_ports_is_one_incident_and_a_fire_alarm_still_pages(
    start_gateway, mosquitto: Mosquitto, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway(
        community_file=storm_community(tmp_path / "community.yaml"),
        alerting={
            "startup_grace_s": 0,
            "tick_interval_ms": 100,
        },
    )
    pages: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    commands: list[str] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="storm-app") as c:
            await c.subscribe("safety/demo/workers/+/incidents", qos=1)
            await c.subscribe("safety/demo/charger/+/cmd", qos=1)
            ready.set()
            async for msg in c.messages:
                topic = str(msg.topic)
                if topic.endswith("/cmd"):
                    commands.append(topic.split("/")[3])
                else:
                    pages.append((topic.split("/")[3], json.loads(bytes(msg.payload))))  # type: ignore[arg-type]

    listener = asyncio.create_task(listen())
    await ready.wait()
    seq = int(time.time() * 10)
    published = 0
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="storm-fleet") as fleet:

        async def round_of(power_w: float) -> None:
            nonlocal seq, published
            seq += 1
            for i in range(1, PORTS + 1):
                payload = {"ts": int(time.time() * 1000), "seq": seq, "port": 1,
                           "state": "charging", "voltage_v": 220.0, "power_w": power_w,
                           "temp_c": 35.0, "leak_ma": 0.3}
                await fleet.publish(f"safety/demo/charger/CP-{i:04d}/telemetry",
                                    json.dumps(payload), qos=1)
                published += 1

        await round_of(400.0)  # a quiet round
        await round_of(1500.0)  # a wrong power limit pushed to every pile: the storm
        # A real fire elsewhere while the storm is being handled.
        fire_sent = time.monotonic()
        await fleet.publish(
            "safety/demo/smoke/SD-0001/event",
            json.dumps({"ts": int(time.time() * 1000), "seq": 77, "event": "alarm"}),
            qos=1,
        )
        await round_of(1500.0)  # telemetry keeps coming during the storm

    def fire_paged() -> bool:
        return any("SD-0001" in json.dumps(m, ensure_ascii=False) for _, m in pages)

    await wait_until(fire_paged, 30)
    fire_latency = time.monotonic() - fire_sent
    stats = gateway.ingest.stats
    await wait_until(lambda: stats.stored + stats.duplicates >= published + 1, 60)

    async def members() -> int:
        async with gateway.sessions() as s:
            storm = (
                await s.scalars(select(IncidentRow).where(IncidentRow.kind == "storm"))
            ).one()
            return int(
                await s.scalar(
                    select(func.count()).where(IncidentDeviceRow.incident_id == storm.id)
                )
                or 0
            )

    deadline = time.monotonic() + 90
    while await members() < PORTS and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)  # let any page still on its way arrive
    listener.cancel()

    async with gateway.sessions() as s:
        storms = (await s.scalars(select(IncidentRow).where(IncidentRow.kind == "storm"))).all()
        assert [(i.rule_id, i.status) for i in storms] == [("charger.over_power", "open")]
        attached = (
            await s.scalars(
                select(IncidentDeviceRow.device_id).where(
                    IncidentDeviceRow.incident_id == storms[0].id
                )
            )
        ).all()
        open_power = await s.scalar(
            select(func.count()).where(
                IncidentRow.rule_id == "charger.over_power",
                IncidentRow.kind == "alert",
                IncidentRow.active_key.is_not(None),
            )
        )
        actions = (
            await s.scalars(
                select(IncidentEventRow.kind).where(
                    IncidentEventRow.kind.in_(("command_sent", "action_failed"))
                )
            )
        ).all()
        cuts = await s.scalar(
            select(func.count()).where(DeviceCommandRow.command == "cut_power")
        )
    assert sorted(attached) == [f"CP-{i:04d}" for i in range(1, PORTS + 1)]
    assert open_power == 0, "every port's alert is in the storm, none stands alone"
    # Every power cut is a tracked command (sent, then confirmed or retried and escalated) on
    # its incident's timeline.
    assert len(actions) == PORTS and "action_failed" not in actions
    assert cuts == PORTS

    per_person: dict[str, int] = {}
    for person, message in pages:
        if "SD-0001" not in json.dumps(message, ensure_ascii=False):
            per_person[person] = per_person.get(person, 0) + 1
    assert per_person and max(per_person.values()) <= 3, per_person
    assert stats.quarantined == 0
    assert stats.stored + stats.duplicates == published + 1  # every point, the alarm too
    print(f"fire alarm paged {fire_latency * 1000:.0f} ms after it was sent, during the storm")
