"""Every simulator scenario against the real gateway loaded with the sample community.

Each test starts a gateway on a clock compressed by the scenario's test speed (shared with the
simulator, so the ``ts`` it stamps agree with the gateway's "now" and a silent day passes in
seconds), plays the scenario through the real broker and checks the incidents the scenario
declares: every ``incident: true`` opened once with its rule, severity and device (or building),
no ``incident: false`` one opened, and with ``no_other_incidents`` nothing else about the
scenario's devices. The rest of the sample community is silent during a test, so its devices'
own offline alerts (and building outages made only of them) are background, not outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from alerting.commands import DeviceCommandRow
from alerting.incidents.flood import OUTAGE_RULE
from alerting.incidents.tables import IncidentDeviceRow, IncidentRow
from core.clock import CompressedClock
from gateway.quarantine import QuarantinedMessage
from gateway.sample import demo_community_path
from simulators import load_scenario, run_scenario, scenario_names
from simulators.clock import anchored_start_ms
from simulators.inventory import community_devices
from simulators.scenario import BoundExpectation, ScenarioRun

pytestmark = pytest.mark.slow

#: Clock compression per scenario in these tests: long enough for the gateway's 100 ms tick
#: to resolve the rules' windows, short enough for the file to stay under a few minutes.
SPEED = {
    "batteries-low": 20_000,  # three days
    "building-power-loss": 20_000,  # two days and two hours
    # 24.5 h. The door heartbeats every 5 min and is offline after 15: 600 simulated s of slack
    # are 0.3 real s here; at 3600x the gateway opening and paging the elderly incident
    # sometimes held the door's heartbeats up for longer.
    "elderly-silent-day": 2_000,
    "charger-thermal-runaway": 60,
    "fall-detected": 1,
    "sos-button": 1,
    "hostile-flood": 1,
}
DEFAULT_SPEED = 40

#: Simulated seconds the gateway runs compressed before a long scenario: the silent rest of
#: the community goes offline (chargers 5 min, gates 15 min, SOS callers 3 h) and those
#: incidents open and page before the scenario, not in a burst that delays its heartbeats.
PREROLL_S = {"elderly-silent-day": 4 * 3600}

Attached = dict[int, set[tuple[str, int]]]


async def incidents_of(gateway: Any) -> tuple[list[IncidentRow], Attached]:
    """Every incident, and per grouped incident its devices' (dedupe key, attached at)."""
    async with gateway.sessions() as s:
        rows = list((await s.scalars(select(IncidentRow).order_by(IncidentRow.id))).all())
        attached: Attached = {}
        for link in (await s.scalars(select(IncidentDeviceRow))).all():
            attached.setdefault(link.incident_id, set()).add((link.dedupe_key, link.attached_at_ms))
    return rows, attached


def building_code(building_id: str | None) -> str | None:
    return None if building_id is None else building_id.rsplit(".", 1)[-1]


def matches(exp: BoundExpectation, row: IncidentRow) -> bool:
    if exp.hazard is not None:  # the device's one incident of that hazard, for this reason
        reasons = {r.get("rule") for r in row.reasons or []}
        if not row.dedupe_key.startswith(f"hazard.{exp.hazard}:") or exp.rule not in reasons:
            return False
    elif row.rule_id != exp.rule:
        return False
    if exp.device_id is not None:
        return row.device_id == exp.device_id
    if exp.building is not None:
        return building_code(row.building_id) == exp.building
    return True


def outcome(run: ScenarioRun, rows: list[IncidentRow], attached: Attached,
            devices: dict[str, str]) -> list[IncidentRow]:
    """The incidents about the scenario: not background, not folded into an outage."""
    involved = {d.device_id for d in run.roles.values()}
    involved |= {m.device_id for m in run.published if m.device_id}
    folded = set().union(*attached.values()) if attached else set()
    out = []
    for row in rows:
        if row.kind == OUTAGE_RULE or row.rule_id == OUTAGE_RULE:
            members = {key.rsplit(":", 1)[-1] for key, _ in attached.get(row.id, ())}
            if not members & involved:
                continue  # an outage made only of silent bystanders
            assert members <= involved, f"outage {row.id} mixes in {members - involved}"
        elif row.rule_id.endswith(".offline") and row.device_id not in involved:
            continue  # a silent bystander's offline alert
        if (row.dedupe_key, row.opened_at_ms) in folded and row.kind != OUTAGE_RULE:
            continue  # folded into its building outage (attached as of its opening)
        assert row.device_id is None or row.device_id in devices, row.device_id
        out.append(row)
    return out


def key_of(row: IncidentRow, expected: list[BoundExpectation]) -> tuple[str, str, str | None]:
    """How an incident compares with the declarations: by device, or by building if declared so."""
    by_building = row.device_id is None or any(
        e.building is not None and e.device_id is None and matches(e, row) for e in expected)
    where = building_code(row.building_id) if by_building else row.device_id
    if any(e.hazard is not None and matches(e, row) for e in expected):
        return row.dedupe_key.split(":", 1)[0], row.severity, where  # declared by its hazard
    return row.rule_id, row.severity, where


def describe(rows: list[IncidentRow]) -> list[tuple[str, str, str | None, str | None]]:
    return [(r.rule_id, r.severity, r.device_id, building_code(r.building_id)) for r in rows]


async def quiet(gateway: Any, timeout: float = 30.0) -> set[int]:
    """Wait until the gateway has worked off its alerts (no new incident for 1 s); their ids."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        ids = {r.id for r in (await incidents_of(gateway))[0]}
        if ids != seen or gateway.alerts.backlog:
            seen, stable_since = ids, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            break
        await asyncio.sleep(0.1)
    return seen


async def settle(gateway: Any, run: ScenarioRun, timeout: float) -> None:
    """Wait until the expected incidents are there (or the timeout), then a little longer."""
    deadline = time.monotonic() + timeout
    wanted = run.expected_incidents
    while time.monotonic() < deadline:
        rows, _ = await incidents_of(gateway)
        if all(any(matches(e, r) for r in rows) for e in wanted) and not gateway.alerts.backlog:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # room for anything undeclared to show up


@pytest.mark.parametrize("name", scenario_names())
async def test_scenario_against_the_gateway(name: str, start_gateway: Any,
                                            mosquitto: Any) -> None:
    scenario = load_scenario(name)
    speed = SPEED.get(name, DEFAULT_SPEED)
    community = demo_community_path()
    specs = community_devices(community, "demo")
    devices = {d.device_id: d.type for d in specs}
    start = anchored_start_ms(0, 1, time_of_day=scenario.start_at)
    # Real time while the gateway starts and the devices connect, compressed for the scenario
    # only, real time again while the outcome settles: the rest of the community (silent in
    # this test) does not age by hours around the run.
    clock = CompressedClock(1, start_ms=start)
    gateway = await start_gateway(
        clock=clock,
        community_file=community,
        alerting={"startup_grace_s": 0, "tick_interval_ms": 100},
        # One connection: with the alarm connection, telemetry pauses for up to 2 real
        # seconds while an alarm is paged — harmless in real time, but hours of silence on a
        # clock compressed 2,000-20,000x, which would open false offline incidents.
        mqtt={"url": mosquitto.url, "client_id": f"gw-{name}", "priority_connection": False},
    )
    before: set[int] = set()
    if name in PREROLL_S:
        clock.set_speed(speed)
        await asyncio.sleep(PREROLL_S[name] / speed)
        clock.set_speed(1)
        before = await quiet(gateway)
    stored_before = gateway.ingest.stats.stored

    async def speed_up() -> None:
        await asyncio.sleep(0.5)  # the devices' "online" reached the rule engine
        clock.set_speed(speed)

    # The simulator plays in a thread of its own, like the separate process it is in real
    # life: the gateway's work (opening and paging incidents) must not hold up the devices.
    run = await asyncio.to_thread(asyncio.run, run_scenario(
        scenario, mosquitto.url, "demo", specs, speed, clock=clock, on_connected=speed_up))
    now = clock.now_ms()
    clock.set_speed(1)

    # The simulator's timestamps follow the gateway's clock.
    assert run.sim_start_ms <= now
    # Within 5 real seconds: a busy CI machine lets the simulator fall that far behind.
    assert 0 <= now - run.sim_end_ms <= max(5_000, speed * 5_000), (now, run.sim_end_ms)
    sent_ts = [m.ts_ms for m in run.published]
    assert min(sent_ts) >= start and max(sent_ts) <= now

    await settle(gateway, run, timeout=20)
    rows, attached = await incidents_of(gateway)
    rows = [r for r in rows if r.id not in before]  # the silent community's, before the run
    assert all(r.opened_at_ms >= run.sim_start_ms for r in rows), describe(rows)
    # The outcome is what the run's readings caused, or its timers while it played (plus a
    # simulated minute). At 20 000x, the few hundred real ms between the last step and the
    # clock slowing down are simulated hours in which the devices fall silent (gates go
    # offline again 15 min after the power is back).
    rows = [r for r in rows if (r.reading_ts_ms or r.opened_at_ms) <= run.sim_end_ms + 60_000]
    ours = outcome(run, rows, attached, devices)
    shown = describe(ours)

    for exp in run.expected:
        found = [r for r in rows if matches(exp, r)]
        where = exp.device_id or exp.building or "anywhere"
        if exp.incident:
            assert len(found) == 1, f"{exp.rule} on {where}: {describe(found)}; all: {shown}"
            assert found[0].severity == exp.severity, (exp, describe(found))
        else:
            assert not found, f"{exp.rule} must not open on {where}: {describe(found)}"
    if scenario.no_other_incidents:
        # Rules of one hazard on one device declare one incident between them.
        hazards = {(f"hazard.{e.hazard}", e.severity, e.device_id or e.building)
                   for e in run.expected_incidents if e.hazard}
        declared = Counter([(e.rule, e.severity, e.device_id or e.building)
                            for e in run.expected_incidents if not e.hazard] + list(hazards))
        opened = Counter(key_of(r, run.expected_incidents) for r in ours)
        assert opened == declared, f"opened {shown}"

    await check_commands(gateway, run)
    device_messages = [m for m in run.published if m.kind != "hostile"]
    if name == "hostile-flood":
        assert not rows, f"the hostile flood opened {describe(rows)}"
        await check_quarantine(gateway, run)
    else:
        assert not gateway.quarantine.counts, dict(gateway.quarantine.counts)
    # good traffic is stored (status messages included) - never dropped
    deadline = time.monotonic() + 10
    while gateway.ingest.stats.stored - stored_before < len(device_messages):
        assert time.monotonic() < deadline, (gateway.ingest.stats, len(device_messages))
        await asyncio.sleep(0.05)


async def check_commands(gateway: Any, run: ScenarioRun) -> None:
    """Every command the gateway sent a role's device ends as the role says: confirmed by a
    device that obeys (a pile's power cut, a valve closing), failed for one that refuses."""
    want = {"obey": {"confirmed", "superseded"}, "refuse": {"failed"}, "silent": {"failed"}}
    for role, device in run.roles.items():
        obedience = run.scenario.roles[role].commands
        deadline = time.monotonic() + 15
        while True:
            async with gateway.sessions() as s:
                sent = (await s.scalars(select(DeviceCommandRow).where(
                    DeviceCommandRow.device_id == device.device_id))).all()
            if all(c.status in want[obedience] for c in sent) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert len(sent) == len(run.commands.get(device.device_id, [])) or obedience != "obey"
        assert {c.status for c in sent} <= want[obedience], [(c.command, c.status) for c in sent]


async def check_quarantine(gateway: Any, run: ScenarioRun) -> None:
    """Every hostile message the gateway can see is quarantined with its own reason."""
    hostile = [m for m in run.published if m.kind == "hostile"]
    expected = Counter(m.reason for m in hostile if m.reason is not None)
    assert sum(expected.values()) >= 30
    deadline = time.monotonic() + 10
    while Counter(gateway.quarantine.counts) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert dict(gateway.quarantine.counts) == dict(expected)
    async with gateway.sessions() as s:
        kept = Counter((q.topic, q.reason) for q in (await s.scalars(select(QuarantinedMessage))))
    want = Counter((m.topic if isinstance(m.topic, str) else m.topic.decode(), m.reason)
                   for m in hostile if m.reason is not None)
    assert kept == want
    # forged downlink (a worker's incident topic, a device command) is counted, not stored
    assert gateway.ingest.stats.downlink >= 2
