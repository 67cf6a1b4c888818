"""Every scenario loads, binds to the demo community and is delivered through a real broker."""

from __future__ import annotations

import pytest

from simulators import default_devices, demo_devices, load_scenario, run_scenario, scenario_names
from simulators.clock import wall_ms
from simulators.hostile import ATTACKS
from simulators.scenario import Scenario, bind_roles
from tests.services import Mosquitto
from tests.simulators.support import Recorder, check_native


def _rule_ids() -> set[str]:
    """The real rule ids: the built-in rules and flood control's building outage."""
    from alerting.incidents.flood import OUTAGE_RULE
    from alerting.rules.loader import load_rules

    return set(load_rules().by_id) | {OUTAGE_RULE}


RULE_IDS = _rule_ids()
REQUIRED = {
    "kitchen-fire", "cooking-false-alarm", "fire-spreads", "sos-button", "fall-detected",
    "elderly-silent-day", "gate-forced-night", "door-held-open", "charger-thermal-runaway",
    "charger-over-current", "building-power-loss", "batteries-low", "hostile-flood",
}


def test_every_required_scenario_ships() -> None:
    assert set(scenario_names()) >= REQUIRED


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_validates_and_binds(name: str) -> None:
    sc = load_scenario(name)
    assert {e.rule for e in sc.expect} <= RULE_IDS
    roles, buildings = bind_roles(sc, demo_devices("demo"))
    assert set(roles) == set(sc.roles)
    for role, dev in roles.items():
        assert dev.type == sc.roles[role].type
        assert dev.building == buildings[sc.roles[role].building]


def test_bad_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        Scenario.model_validate({
            "name": "x", "title": "x", "roles": {"a": {"type": "smoke"}},
            "steps": [{"at": 0, "role": "b", "kind": "event", "payload": {"event": "alarm"}}],
            "expect": [{"rule": "smoke.alarm", "incident": True}],
        })


def test_elderly_roles_share_a_household() -> None:
    roles, _ = bind_roles(load_scenario("elderly-silent-day"), demo_devices("demo"))
    assert roles["door"].household == roles["elder_sos"].household
    assert "elderly_alone" in roles["elder_sos"].flags


def _decoder():  # the gateway's own decoder, when the profile package is there
    profiles = pytest.importorskip("device_profiles")
    return profiles.load_profiles()


@pytest.mark.parametrize("name", scenario_names())
async def test_scenario_delivered_in_order(name: str, mosquitto: Mosquitto) -> None:
    sc = load_scenario(name)
    recorder = Recorder(mosquitto.port)
    try:
        run = await run_scenario(name, mosquitto.url, "demo", demo_devices("demo"),
                                 speed=max(1.0, sc.duration_s / 1.5))
        sent = [m for m in run.published if m.via in ("device", "shared") and m.delivered]
        wills = [m for m in run.published if m.via == "will"]
        got = recorder.wait_for(len(sent) + len(wills))
    finally:
        recorder.close()
    assert run.sim_end_ms - run.sim_start_ms == int((sc.duration_s + sc.linger) * 1000)
    assert run.sim_end_ms <= wall_ms() + 1000, "no ts in the future"
    will_topics = [str(m.topic) for m in wills]
    for topic in will_topics:  # wills come from the broker, in its own time
        got.remove((topic, b'{"online":false}'))
    assert got == [(str(m.topic), m.payload) for m in sent]
    device_msgs = [m for m in sent if m.kind != "hostile"]
    for m in device_msgs:
        obj = check_native(str(m.topic), m.payload)
        if m.kind != "status":
            assert obj["ts"] == m.ts_ms
    # per device, seq strictly increases and ts never goes back
    by_device: dict[str, list[dict[str, object]]] = {}
    for m in device_msgs:
        by_device.setdefault(m.device_id or "", []).append(check_native(str(m.topic), m.payload))
    for objs in by_device.values():
        seqs = [o["seq"] for o in objs if "seq" in o]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    registry = _decoder()
    for m in device_msgs:
        out = registry.decode(str(m.topic), m.payload, run.sim_end_ms + 1000)
        assert isinstance(out, list), (m.topic, m.payload, out)
    assert run.expected, "a scenario declares its outcome"


async def test_kitchen_fire_declares_and_delivers_the_fire(mosquitto: Mosquitto) -> None:
    run = await run_scenario("kitchen-fire", mosquitto.url, "demo", speed=200)
    assert {e.rule for e in run.expected_incidents} == {
        "smoke.alarm", "smoke.obscuration", "smoke.heat_static", "smoke.heat_ror"}
    # by default, a device of the sample community (the registry of `safety-gateway demo`)
    assert all(e.device_id == "smk-b01-1-101" for e in run.expected_incidents)
    temps = [float(__import__("orjson").loads(m.payload).get("temp_c", 0)) for m in run.published
             if m.kind == "telemetry"]
    assert max(temps) >= 56 and temps == sorted(temps)
    events = [__import__("orjson").loads(m.payload)["event"] for m in run.published if m.kind == "event"]
    assert events == ["alarm"]


async def test_power_loss_fires_last_wills(mosquitto: Mosquitto) -> None:
    recorder = Recorder(mosquitto.port, ("safety/+/+/+/status",))
    try:
        run = await run_scenario("building-power-loss", mosquitto.url, "demo", demo_devices("demo"),
                                 speed=400_000)
        got = recorder.wait_for(3 * len(run.published))
    finally:
        recorder.close()
    building = run.buildings["A"]
    members = {d.device_id for d in demo_devices("demo") if d.building == building}
    offline = {t.split("/")[3] for t, p in got if p == b'{"online":false}'}
    assert offline == members
    # power comes back: each device says online again after its will
    last = {t.split("/")[3]: p for t, p in got}
    assert all(b'"online":true' in last[d] for d in members)


async def test_shared_connection_publishes_offline_itself(mosquitto: Mosquitto) -> None:
    run = await run_scenario("building-power-loss", mosquitto.url, "demo", demo_devices("demo"),
                             speed=400_000, connections="shared")
    offline = [m for m in run.published if m.kind == "status" and b'"online":false' in m.payload]
    assert offline and all(m.via == "shared" for m in offline)


async def test_hostile_flood_covers_every_attack(mosquitto: Mosquitto) -> None:
    run = await run_scenario("hostile-flood", mosquitto.url, "demo", speed=100)
    hostile = [m for m in run.published if m.kind == "hostile"]
    assert {m.attack for m in hostile} == set(ATTACKS)
    assert run.scenario.no_other_incidents
    assert not run.expected_incidents
    sizes = [len(m.payload) for m in hostile if m.attack == "huge_payload"]
    assert max(sizes) > 65_536 and min(sizes) > 4096
    assert any(isinstance(m.topic, bytes) and b"+" in m.topic for m in hostile)
    registry = _decoder()
    now = wall_ms()
    for m in hostile:
        if m.delivered and m.attack != "unknown_device":
            out = registry.decode(str(m.topic), m.payload, now)
            assert not isinstance(out, list), (m.attack, m.topic, m.payload)
    # the broker survived the protocol violations and still takes a normal publish
    again = await run_scenario("sos-button", mosquitto.url, "demo", speed=100)
    assert again.published


async def test_compressed_day_reports_simulated_time(mosquitto: Mosquitto) -> None:
    run = await run_scenario("elderly-silent-day", mosquitto.url, "demo", demo_devices("demo"),
                             speed=100_000)
    assert run.real_seconds < 10
    assert run.sim_end_ms - run.sim_start_ms >= 24 * 3600 * 1000
    door = run.roles["door"].device_id
    door_events = [m for m in run.published if m.device_id == door and m.kind == "event"]
    assert [m.at_s for m in door_events] == [0, 9]


# -- the sample community (what `safety-gateway demo` registers) ---------------------------

def test_sample_community_is_read_with_its_ledger_households_and_profiles() -> None:
    devices = {d.device_id: d for d in default_devices("demo")}
    assert devices["smk-b01-1-101"].household == "demo.b01.1-101"
    assert devices["gate-b01-1"].building == "b01"  # from device-ledger.csv
    assert devices["chg-s1-01"].type == "charger" and devices["chg-s1-01"].ports == 10
    sos = devices["sos-b02-2-202"]
    assert sos.native and "elderly_alone" in sos.flags
    assert devices["sos-b02-1-102"].profile == "aliyun.sos.bt10"
    assert devices["chg-s3-01"].profile == "huawei.charger.cp12"
    assert default_devices("elsewhere")[0].device_id.startswith("SD-B01-")  # generated


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_binds_native_devices_of_the_sample(name: str) -> None:
    roles, _ = bind_roles(load_scenario(name), default_devices("demo"))
    assert roles and all(d.native for d in roles.values())


def test_sample_elder_has_a_door_sensor_in_the_household() -> None:
    roles, buildings = bind_roles(load_scenario("elderly-silent-day"), default_devices("demo"))
    sos, door = roles["elder_sos"], roles["door"]
    assert (sos.device_id, door.device_id) == ("sos-b02-2-202", "door-b02-2-202")
    assert door.type == "gate" and door.household == sos.household == "demo.b02.2-202"
    assert "elderly_alone" in door.flags and buildings == {"A": "b02"}


def test_sample_shed_is_a_building_with_piles_and_a_smoke_detector() -> None:
    roles, buildings = bind_roles(load_scenario("charger-thermal-runaway"),
                                  default_devices("demo"))
    assert buildings == {"shed": "s1"}
    assert roles["pile"].device_id == "chg-s1-01" and roles["pile"].building == "s1"
    assert roles["shed_smoke"].device_id == "smk-s1" and roles["shed_smoke"].building == "s1"


@pytest.mark.parametrize(("name", "missing"), [
    ("elderly-silent-day", "door-"),  # no elder's door sensor
    ("charger-thermal-runaway", "smk-s"),  # no smoke detector in any shed
])
def test_scenario_without_its_devices_says_so(name: str, missing: str) -> None:
    devices = [d for d in default_devices("demo") if not d.device_id.startswith(missing)]
    with pytest.raises(LookupError, match="no building has devices"):
        bind_roles(load_scenario(name), devices)


async def test_check_tells_a_device_silent_after_the_scenario_from_one_silent_while_it_played(
    mosquitto: Mosquitto,
) -> None:
    """On a compressed clock the scenario's pile goes offline (5 min) a few real milliseconds
    after its last step: that is the simulator stopping. Going offline while the scenario
    still played it is an outcome nobody declared, and fails the check."""
    from zoneinfo import ZoneInfo

    from simulators.check import judge

    run = await run_scenario("charger-thermal-runaway", mosquitto.url, "demo", speed=100_000)
    pile = run.roles["pile"].device_id

    def offline(opened_at_ms: int) -> dict[str, object]:
        return {"id": 91, "rule_id": "charger.offline", "severity": "minor", "device_id": pile,
                "building_id": "demo.s1", "opened_at_ms": opened_at_ms, "reasons": []}

    def unexpected(row: dict[str, object]) -> list[str]:
        verdicts = judge(run, [row], run.sim_start_ms, run.sim_end_ms + 30_000,
                         ZoneInfo("Asia/Shanghai"), played_until_ms=run.sim_end_ms)
        return [v.line for v in verdicts if "unexpected" in v.line]

    assert unexpected(offline(run.sim_end_ms + 300_000)) == []
    assert unexpected(offline(run.sim_end_ms - 60_000)) == [
        f"FAIL  unexpected incident #91 charger.offline [minor] on {pile}"]
