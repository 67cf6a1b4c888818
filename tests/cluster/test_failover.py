"""Issue 16's done-when: three gateway processes share ten sites through partition leases on
one PostgreSQL and one Mosquitto; one is SIGKILLed mid-traffic while an escalation is due,
a fourth joins, one stops cleanly — and nothing is lost or paged twice.

The processes start once for the module: one scenario runs the whole story and records what
happened, each test asserts one promise about it. Timeline (lease 10 s, renew 2 s,
critical acknowledgement deadline 6 s, so the ladder's second step falls in the outage):

1. three instances start; every partition (ten sites and the vendor one) gets an owner and
   they split evenly; telemetry of all 100 devices flows (QoS 1, a sequence number each);
2. wave 1: one smoke alarm per site; once its first pages are out, the instance owning the
   most sites is SIGKILLed (nobody acknowledges: step 1 comes due during the outage);
3. wave 2, during the outage: an SOS press on each of the dead instance's sites;
4. once the partitions are owned again, a fourth instance joins; wave 3 during its rebalance;
5. one instance stops with SIGTERM: its partitions are handed over at once;
6. traffic stops; everything the broker acknowledged must be in InfluxDB.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import (
    Cluster,
    ClusterSettings,
    Device,
    Traffic,
    person_ids,
    step0_people,
    steps_per_incident,
    stored_readings,
)
from tests.services import Influxd

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_S, RENEW_S = 10.0, 2.0
#: Step 1 comes due ACK_S after an alarm: sooner than a dead instance's lease can expire
#: (LEASE_S - RENEW_S after its last renewal), so it falls into the outage.
ACK_S = 6
#: Start-up of a Python process, a database round or two, a scheduler tick.
SLACK_S = 3.0
RATE = 60.0  # telemetry msg/s over all sites


@dataclass
class Story:
    cluster: Cluster
    traffic: Traffic
    victim: str = ""
    victim_partitions: set[str] = field(default_factory=set)
    first_owners: dict[str, str] = field(default_factory=dict)
    killed_at: float = 0.0
    killed_at_ms: int = 0  # wall clock, to compare with the incidents' times
    takeover_s: float = float("nan")
    joined_owns: set[str] = field(default_factory=set)
    join_s: float = float("nan")
    stopped: str = ""
    stopped_partitions: set[str] = field(default_factory=set)
    handover_s: float = float("nan")
    waves: dict[str, list[Device]] = field(default_factory=dict)
    acked: set[tuple[str, str, int]] = field(default_factory=set)
    stored: set[tuple[str, str, int]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    # What each live instance's /health (cluster component) and /metrics said after the takeover.
    health_after_takeover: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_after_takeover: dict[str, str] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        """Progress, shown with ``pytest -s`` (and in the failure's captured output)."""
        print(f"[{time.monotonic() - self.t0:6.1f} s] {what}", flush=True)

    def device(self, site: str, device_id: str) -> Device:
        return next(d for d in self.cluster.devices if d.site == site and d.id == device_id)


def _wave(story: Story, name: str, devices: list[Device]) -> None:
    story.waves[name] = devices
    for device in devices:
        story.traffic.alarm(device)


def _first_pages_sent(cluster: Cluster, devices: list[Device]) -> bool:
    """Every step-0 delivery of these alarms is recorded as sent (so a kill now cannot fall
    between a page going out and its record)."""
    rows = cluster.sql(
        "SELECT i.device_id, d.status FROM delivery d JOIN incident i ON i.id = d.incident_id "
        "WHERE d.step = '0'"
    )
    ids = {d.id for d in devices}
    mine = [r for r in rows if r["device_id"] in ids]
    return len({r["device_id"] for r in mine}) == len(ids) and all(
        r["status"] == "sent" for r in mine
    )


def _run(story: Story) -> None:
    c = story.cluster
    all_partitions = len(c.sites) + 1  # the ten sites and the vendor formats' partition
    story.note("instances ready")
    c.wait_until(lambda: len(c.owners()) == all_partitions, 60, "every partition owned")
    c.wait_until(
        lambda: sorted(Counter(c.owners().values()).values()) == [3, 4, 4], 30,
        "11 partitions split 4/4/3 over three instances",
    )
    story.first_owners = c.owners()
    story.note(f"three instances own {story.first_owners}")
    story.traffic.start()
    time.sleep(3)

    # Wave 1 and the kill.
    counts = Counter(story.first_owners.values())
    story.victim = max(sorted(counts), key=lambda i: counts[i])
    story.victim_partitions = c.owned_by(story.victim)
    wave1 = [story.device(s, f"SD-{s}-001") for s in c.sites]
    _wave(story, "wave1", wave1)
    c.wait_until(lambda: _first_pages_sent(c, wave1), 20, "wave 1 first pages sent")
    victim = c.instances[story.victim]
    victim.kill()
    story.killed_at = time.monotonic()
    story.killed_at_ms = int(time.time() * 1000)
    story.note(f"wave 1 paged; SIGKILL {story.victim} ({sorted(story.victim_partitions)})")

    # Wave 2 during the outage, on the dead instance's sites.
    time.sleep(1)
    _wave(story, "wave2", [story.device(s, f"SOS-{s}-001") for s in c.sites
                           if s in story.victim_partitions])
    live = {i.instance_id for i in c.live()}

    def taken_over() -> bool:
        owners = c.owners()
        return all(owners.get(p) in live for p in story.victim_partitions)

    try:
        c.wait_until(taken_over, LEASE_S + RENEW_S + 30, "takeover", step=0.1)
        story.takeover_s = time.monotonic() - story.killed_at
        story.note(f"taken over after {story.takeover_s:.1f} s: {c.owners()}")
        for instance in c.live():
            story.health_after_takeover[instance.instance_id] = instance.health()["components"][
                "cluster"]
            story.metrics_after_takeover[instance.instance_id] = instance.metrics()
    except AssertionError as exc:
        story.errors.append(str(exc))
    time.sleep(2)

    # A fourth instance joins; wave 3 during the rebalance.
    joined = c.add("d")
    joined.wait_ready()
    _wave(story, "wave3", [story.device(s, f"SD-{s}-002") for s in c.sites])
    try:
        story.join_s = c.wait_until(lambda: bool(c.owned_by("d")), 6 * RENEW_S + 20,
                                    "the joining instance owns a partition")
        c.wait_until(lambda: len(c.owners()) == all_partitions, 30, "all owned after the join")
    except AssertionError as exc:
        story.errors.append(str(exc))
    story.joined_owns = c.owned_by("d")
    story.note(f"d joined, owns {sorted(story.joined_owns)} after {story.join_s:.1f} s")
    time.sleep(2)

    # A clean stop: SIGTERM to an instance that owns something (not the newcomer).
    owners = c.owners()
    story.stopped = next(i for i in sorted(c.instances) if i not in (story.victim, "d")
                         and i in owners.values())
    story.stopped_partitions = c.owned_by(story.stopped)
    t_stop = time.monotonic()
    c.instances[story.stopped].terminate()
    still = {i.instance_id for i in c.live()}
    try:
        c.wait_until(lambda: all(c.owners().get(p) in still for p in story.stopped_partitions),
                     LEASE_S + RENEW_S + 30, "handover after SIGTERM", step=0.1)
        story.handover_s = time.monotonic() - t_stop
        story.note(f"SIGTERM {story.stopped}: handed over in {story.handover_s:.1f} s")
    except AssertionError as exc:
        story.errors.append(str(exc))
    time.sleep(3)

    # The end: traffic stops, everything acknowledged by the broker must be stored.
    story.traffic.stop()
    story.acked = set(story.traffic.acked)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        story.stored = stored_readings(c.influxd, c.influx_db)
        if story.acked <= story.stored:
            break
        time.sleep(1)
    story.note(f"{len(story.acked)} readings acknowledged, {len(story.acked - story.stored)} not stored")
    # Let the ladders' pages in flight arrive before the pages are counted.
    time.sleep(2)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, influxd: Influxd) -> Iterator[Story]:
    work: Path = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(work, influxd=influxd,
                      settings=ClusterSettings(lease_s=LEASE_S, renew_s=RENEW_S,
                                               critical_ack_s=ACK_S))
    cluster.start()
    try:
        for name in ("a", "b", "c"):
            cluster.add(name)
        for instance in cluster.instances.values():
            instance.wait_ready()
        traffic = Traffic(cluster.mosquitto.port, cluster.devices, RATE)
        story = Story(cluster, traffic)
        _run(story)
        yield story
    finally:
        for instance in cluster.instances.values():
            if instance.alive:
                print(f"--- {instance.instance_id} log tail ---\n{instance.tail(15)}")
        cluster.stop()


def test_every_partition_had_one_owner_and_three_instances_split_them(story: Story) -> None:
    owners = story.first_owners
    assert set(owners) == {*story.cluster.sites, "_vendor"}
    assert sorted(Counter(owners.values()).values()) == [3, 4, 4]


def test_every_reading_the_broker_took_is_stored(story: Story) -> None:
    assert len(story.acked) > RATE * 20, "traffic flowed through the whole story"
    missing = story.acked - story.stored
    assert not missing, f"{len(missing)} of {len(story.acked)} readings lost, e.g. {sorted(missing)[:5]}"


def test_the_dead_instances_partitions_are_owned_again_within_lease_and_renewal(
    story: Story,
) -> None:
    assert story.victim_partitions, "the killed instance owned partitions"
    assert story.takeover_s <= LEASE_S + RENEW_S + SLACK_S, (
        f"takeover took {story.takeover_s:.1f} s; errors: {story.errors}"
    )


def test_health_and_metrics_show_who_took_the_partitions_over(story: Story) -> None:
    since_kill = story.takeover_s + 1
    shown = {p: (i, held) for i, report in story.health_after_takeover.items()
             for p, held in report["partitions"].items()}
    for partition in story.victim_partitions:
        instance, held = shown[partition]
        assert held["owned_for_s"] <= since_kill, (partition, instance, held)
    takeovers = sum(r["takeovers"] for r in story.health_after_takeover.values())
    assert takeovers >= len(story.victim_partitions)
    for instance, text in story.metrics_after_takeover.items():
        owned = re.search(r"^safety_cluster_partitions_owned (\S+)$", text, re.MULTILINE)
        assert owned and float(owned.group(1)) == len(
            story.health_after_takeover[instance]["partitions"])
        taken = re.search(r"^safety_cluster_takeovers_total (\S+)$", text, re.MULTILINE)
        assert taken and float(taken.group(1)) == story.health_after_takeover[instance]["takeovers"]
    assert any(
        re.search(rf'^safety_cluster_lease_age_seconds{{partition="{p}"}} ', text, re.MULTILINE)
        for p in story.victim_partitions for text in story.metrics_after_takeover.values()
    )


def test_every_alarm_paged_each_person_once_also_during_the_outage_and_the_rebalance(
    story: Story,
) -> None:
    c = story.cluster
    incidents = c.incidents()
    pages = c.pages.pages()  # type: ignore[union-attr]
    for wave, devices in story.waves.items():
        for device in devices:
            opened = [i for i in incidents if i["device_id"] == device.id and i["site"] == device.site]
            assert len(opened) == 1, f"{wave} {device.id}: {len(opened)} incidents"
            incident = opened[0]["id"]
            for channel in ("app", "sms"):
                got = Counter(p.person for p in pages
                              if p.channel == channel and p.incident == incident and p.step == "0")
                assert got == dict.fromkeys(step0_people(device), 1), (
                    f"{wave} {device.id} step 0 on {channel}: {dict(got)}"
                )


def test_nobody_received_any_page_twice(story: Story) -> None:
    counts = story.cluster.pages.key_counts()  # type: ignore[union-attr]
    twice = {k: n for k, n in counts.items() if n > 1}
    assert counts and not twice, f"paged more than once: {twice}"
    # And every page the database says went out was received.
    sent = {(r["channel"], r["idempotency_key"]) for r in story.cluster.deliveries()
            if r["status"] in ("sent", "delivered", "read")}
    assert sent <= set(counts), f"recorded as sent, never received: {sorted(sent - set(counts))[:5]}"


def test_every_escalation_step_ran_once_and_the_one_due_in_the_outage_ran(story: Story) -> None:
    c = story.cluster
    steps = steps_per_incident(c.ladder_events())
    for incident, ran in steps.items():
        assert ran == list(range(len(ran))), f"incident {incident} ran steps {ran}"
    victim_sites = story.victim_partitions
    wave1 = {d.id for d in story.waves["wave1"] if d.site in victim_sites}
    incidents = c.incidents()
    by_device = {(i["site"], i["device_id"]): i["id"] for i in incidents}
    opened = {(i["site"], i["device_id"]): i["opened_at_ms"] for i in incidents}
    back_ms = story.killed_at_ms + story.takeover_s * 1000
    pages = [p for p in c.pages.pages() if p.channel == "app" and p.step == "1"]  # type: ignore[union-attr]
    for device in story.waves["wave1"]:
        if device.id not in wave1:
            continue
        incident = by_device[(device.site, device.id)]
        due_ms = opened[(device.site, device.id)] + ACK_S * 1000
        assert story.killed_at_ms < due_ms < back_ms, (
            f"{device.id}: step 1 was due at {due_ms}, not during the outage "
            f"({story.killed_at_ms}..{back_ms:.0f}): the scenario missed its point"
        )
        assert len(steps.get(incident, [])) >= 2, f"{device.id}: step 1 never ran"
        secretary = person_ids(device.site)["secretary"]
        step1 = [p for p in pages if p.incident == incident and p.person == secretary]
        assert len(step1) == 1 and step1[0].at >= story.killed_at, (
            f"{device.id}: step 1, due during the outage, pages the secretary once, after the "
            f"kill: {step1}"
        )


def test_a_joining_instance_takes_a_share(story: Story) -> None:
    assert story.joined_owns, f"the fourth instance owns nothing; errors: {story.errors}"


def test_a_clean_stop_hands_its_partitions_over_at_once(story: Story) -> None:
    assert story.stopped_partitions, "the stopped instance owned partitions"
    assert story.handover_s < LEASE_S / 2, (
        f"handover after SIGTERM took {story.handover_s:.1f} s (lease {LEASE_S:g} s)"
    )
