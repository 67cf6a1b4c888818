"""Aggregate sustained rate of two gateway instances against one, on one broker, PostgreSQL and
influxd (issue 16).

    .venv/bin/python benchmarks/cluster_rate.py --sites 4 --devices-per-site 2500 \\
        --steps 1000,2000,3000,4000 --step-seconds 20
    .venv/bin/python benchmarks/cluster_rate.py --smoke     # a few seconds: does it still run

``--sites`` communities, each a mixed fleet like benchmarks/fleet_bench.py's (35 % smoke
detectors, 10 % SOS buttons, 15 % gates, 40 % charger ports; its ids and mix), published by
the C load generator (benchmarks/loadgen.c -x, one process per site, the step's rate split
evenly, ``-o`` numbering each site's devices apart: device ids are unique across sites) at QoS 1 in steps of rising rate; on top, alarms (smoke ``alarm`` / SOS
``button_pressed``) on fresh devices at ``--alarms-per-s``, each of which must reach a
worker's topic. The gateways run with ``cluster.enabled`` (partition = site): first one
instance owning every partition, then two sharing them. A step passes when every message is
stored within the drain time and every alarm was paged; a configuration's sustained rate is
its highest passing step. Per step: each instance's messages and CPU µs per message.

On a 2-core machine that also runs the broker, influxd, PostgreSQL and the load generator,
expect little gain from the second instance: the point is the measured cost per instance.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _stack import build_loadgen  # noqa: E402
from fleet_bench import BUILDINGS, GRIDS, device_id, type_of  # noqa: E402

from tests.cluster.harness import (  # noqa: E402
    Cluster,
    ClusterSettings,
    Instance,
    site_codes,
)


def write_site(path: Path, site: str, devices: int, offset: int) -> None:
    """fleet_bench's community as site ``site``, its devices numbered from ``offset`` (loadgen
    -o): device and people's ids unique across the sites, as the registry expects."""
    spec = {
        "site": {"code": site, "name": f"压测社区{site}", "timezone": "Asia/Shanghai"},
        "grids": [{"code": f"g{i}", "name": f"网格{i}"} for i in range(1, GRIDS + 1)],
        "buildings": [{"code": f"b{i:02d}", "name": f"{i}号楼", "grid": f"g{i % GRIDS + 1}"}
                      for i in range(1, BUILDINGS + 1)],
        "devices": [{"id": device_id(d), "type": type_of(d)[0],
                     "building": f"b{d % BUILDINGS + 1:02d}", "location": f"{d % BUILDINGS + 1}号楼"}
                    for d in range(offset, offset + devices)],
        "people": [
            {"id": f"{site}-worker-{i}", "name": f"网格员{i}", "role": "grid_worker",
             "channels": {"mqtt": True}, "grids": [f"g{i}"]}
            for i in range(1, GRIDS + 1)
        ] + [{"id": f"{site}-duty", "name": "值班员", "role": "duty_staff", "channels": {"mqtt": True}}],
        "roster": {"weekly": [{"person": f"{site}-duty", "days": "daily", "start": "00:00",
                               "end": "00:00"}]},
    }
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")


class Pages:
    """First page per (site, device) on any worker topic."""

    def __init__(self, port: int) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rate-pages-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *_: c.subscribe("safety/+/workers/+/incidents", 1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("no SUBACK for the workers' topics")

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(msg.payload)
            key = (str(body["site"]), str(body["device"]))
            with self._lock:
                self.first.setdefault(key, time.monotonic())

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Alarms(threading.Thread):
    """Alarms on fresh devices, the sites in turn, at ``per_s``."""

    def __init__(self, port: int, fresh: itertools.cycle[tuple[str, str, str]], per_s: float) -> None:  # type: ignore[type-arg]
        super().__init__(daemon=True)
        self.sent: dict[tuple[str, str], float] = {}
        self._fresh, self._per_s = fresh, per_s
        self._halt = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rate-alarm-{uuid.uuid4().hex[:6]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        seq = 10**12 + time.time_ns() // 1_000_000
        t0 = time.monotonic()
        for i in itertools.count():
            if self._halt.wait(max(0.0, t0 + i / self._per_s - time.monotonic())):
                return
            site, kind, device = next(self._fresh)
            event = "alarm" if kind == "smoke" else "button_pressed"
            body = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": seq + i, "event": event})
            self.sent[(site, device)] = time.monotonic()
            self.client.publish(f"safety/{site}/{kind}/{device}/event", body, qos=1)

    def finish(self) -> None:
        self._halt.set()
        self.join()
        self.client.loop_stop()
        self.client.disconnect()


def fresh_alarms(sites: list[str], devices: int) -> itertools.chain[tuple[str, str, str]]:
    """Smoke detectors and SOS buttons that have not alarmed yet, the sites in turn."""
    def of_site(k: int) -> list[tuple[str, str]]:
        return [(type_of(d)[0], device_id(d)) for d in range(k * devices, (k + 1) * devices)
                if type_of(d)[0] in ("smoke", "sos")]

    per_site = [of_site(k) for k in range(len(sites))]
    return itertools.chain.from_iterable(
        ((site, *per_site[k][i]) for k, site in enumerate(sites))
        for i in range(min(len(p) for p in per_site))
    )


def counted(instances: list[Instance]) -> dict[str, int]:
    """Messages each instance has finished with (stored, duplicate or quarantined)."""
    out = {}
    for inst in instances:
        try:
            ingest = inst.health()["components"]["ingest"]
            out[inst.instance_id] = int(ingest["stored"]) + int(ingest["duplicates"]) + int(
                ingest["quarantined"])
        except (OSError, KeyError, ValueError):
            out[inst.instance_id] = -1
    return out


@dataclass
class Step:
    instances: int
    rate: int
    messages: int
    stored: int = 0
    alarms: int = 0
    unpaged: int = 0
    seconds: float = 0.0
    published_s: float = 0.0  # how long the load generators took to publish the step
    step_s: float = 1.0
    per_instance: dict[str, tuple[int, float]] = field(default_factory=dict)  # msgs, CPU µs/msg

    @property
    def passed(self) -> bool:
        # The offered rate must also have been offered: generators slowed down by a saturated
        # machine are no load step at that rate.
        kept_rate = self.published_s <= 1.2 * self.step_s
        return self.stored >= self.messages and self.unpaged == 0 and self.alarms > 0 and kept_rate

    def line(self) -> str:
        each = "  ".join(f"{i}: {n:,} msgs {us:.0f} µs/msg" for i, (n, us) in self.per_instance.items())
        return (f"  {self.instances} instance(s) {self.rate:>6,} msg/s  "
                f"{'PASS' if self.passed else 'fail'}  published in {self.published_s:.1f} s, "
                f"stored {self.stored:,}/{self.messages:,} "
                f"({self.stored / max(self.seconds, 1e-9):,.0f} msg/s)  alarms "
                f"{self.alarms - self.unpaged}/{self.alarms} paged  CPU {each}")


def run_step(args: argparse.Namespace, cluster: Cluster, instances: list[Instance], loadgen: Path,
             fresh: itertools.chain[tuple[str, str, str]], pages: Pages, rate: int) -> Step:
    n_site = int(rate * args.step_seconds / len(cluster.sites))
    expected = n_site * len(cluster.sites)
    before = counted(instances)
    cpu0 = {i.instance_id: i.cpu_s() for i in instances}
    t0 = time.monotonic()
    gens = [subprocess.Popen(
        [str(loadgen), "-p", str(cluster.mosquitto.port), "-n", str(n_site), "-m",
         str(args.devices_per_site), "-q", "1", "-s", site, "-r", f"{rate / len(cluster.sites):.1f}",
         "-x", "-o", str(k * args.devices_per_site), "-i", f"loadgen-{site}-{uuid.uuid4().hex[:4]}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for k, site in enumerate(cluster.sites)]
    alarms = Alarms(cluster.mosquitto.port, fresh, args.alarms_per_s)  # type: ignore[arg-type]
    alarms.start()
    for gen in gens:
        gen.wait()
        if gen.returncode:
            print(f"  load generator failed: {(gen.stdout.read() if gen.stdout else '').strip()}")
    published_s = time.monotonic() - t0
    alarms.finish()
    expected += len(alarms.sent)
    deadline = time.monotonic() + max(args.drain_min_s, 0.25 * args.step_seconds)
    stored = 0
    while time.monotonic() < deadline:
        now = counted(instances)
        stored = sum(now[k] - before[k] for k in now)
        if stored >= expected:
            break
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    page_deadline = time.monotonic() + 5
    while time.monotonic() < page_deadline and not all(k in pages.first for k in alarms.sent):
        time.sleep(0.05)
    unpaged = sum(1 for k in alarms.sent if k not in pages.first)
    after = counted(instances)
    per = {}
    for inst in instances:
        msgs = after[inst.instance_id] - before[inst.instance_id]
        cpu = inst.cpu_s() - cpu0[inst.instance_id]
        per[inst.instance_id] = (msgs, cpu / max(msgs, 1) * 1e6)
    if stored < expected:  # let a failed step drain so the next configuration starts quiet
        settle = time.monotonic() + 60
        while time.monotonic() < settle and sum(
                counted(instances)[k] - before[k] for k in before) < expected:
            time.sleep(0.5)
    return Step(len(instances), rate, expected, min(stored, expected), len(alarms.sent), unpaged,
                seconds, published_s, args.step_seconds, per)


def ladder(args: argparse.Namespace, cluster: Cluster, instances: list[Instance], loadgen: Path,
           fresh: itertools.chain[tuple[str, str, str]], pages: Pages) -> list[Step]:
    results = []
    for rate in args.steps:
        step = run_step(args, cluster, instances, loadgen, fresh, pages, rate)
        print(step.line(), flush=True)
        results.append(step)
        if not step.passed:
            break
    return results


def sustained(steps: list[Step]) -> int:
    return max((s.rate for s in steps if s.passed), default=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--devices-per-site", type=int, default=2500)
    ap.add_argument("--steps", default="1000,2000,3000,4000,5000")
    ap.add_argument("--step-seconds", type=float, default=20.0)
    ap.add_argument("--drain-min-s", type=float, default=5.0)
    ap.add_argument("--alarms-per-s", type=float, default=1.0)
    ap.add_argument("--smoke", action="store_true", help="a tiny run: does the script still work")
    args = ap.parse_args()
    if args.smoke:
        args.sites, args.devices_per_site, args.steps, args.step_seconds = 2, 200, "200", 5.0
    args.steps = [int(s) for s in str(args.steps).split(",")]
    sites = site_codes(args.sites)

    with tempfile.TemporaryDirectory(prefix="cluster-rate-") as tmp:
        work = Path(tmp)
        # The gateway's defaults for batching and ticks (the harness shortens them for tests).
        cluster = Cluster(work, sites=sites, settings=ClusterSettings(
            lease_s=20, renew_s=5, critical_ack_s=120, extra={
                "log_level": "WARNING", "ingest": {"flush_interval_ms": 200},
                "timeseries": {"flush_interval_ms": 200},
                "alerting": {"tick_interval_ms": 1000}}))
        for k, (path, site) in enumerate(zip(cluster.community_files, sites, strict=True)):
            write_site(path, site, args.devices_per_site, k * args.devices_per_site)
        loadgen = build_loadgen(work)
        cluster.start()
        pages = Pages(cluster.mosquitto.port)
        fresh = fresh_alarms(sites, args.devices_per_site)
        print(f"cluster rate: {args.sites} sites x {args.devices_per_site:,} devices (fleet_bench's "
              f"mix), {args.alarms_per_s:g} alarms/s, QoS 1, steps {args.steps} msg/s of "
              f"{args.step_seconds:g} s; one Mosquitto, PostgreSQL, influxd on this machine",
              flush=True)
        results: dict[int, list[Step]] = {}
        try:
            one = cluster.add("i1")
            one.wait_ready(600)
            cluster.wait_until(lambda: len(cluster.owned_by("i1")) == len(sites) + 1, 60,
                               "one instance owns every partition")
            # Warm-up, not measured: the first step once, so influxd creates the series of the
            # devices it publishes for before the first configuration (the second would find
            # them made).
            warm = run_step(args, cluster, [one], loadgen, fresh, pages, args.steps[0])
            print(f"  warm-up: {warm.stored:,}/{warm.messages:,} stored", flush=True)
            results[1] = ladder(args, cluster, [one], loadgen, fresh, pages)
            two = cluster.add("i2")
            two.wait_ready(600)
            def spread() -> bool:
                owners = cluster.owners()
                held = [sum(1 for o in owners.values() if o == i) for i in ("i1", "i2")]
                return len(owners) == len(sites) + 1 and min(held) >= 1 and max(held) - min(held) <= 1

            cluster.wait_until(spread, 120, "the partitions spread over both instances")
            owners = cluster.owners()
            print(f"  partitions: {sorted(owners.items())}", flush=True)
            results[2] = ladder(args, cluster, [one, two], loadgen, fresh, pages)
        finally:
            pages.stop()
            cluster.stop()
        print("summary:")
        for n, steps in results.items():
            print(f"  {n} instance(s): sustained {sustained(steps):,} msg/s "
                  f"(highest passing step of {[s.rate for s in steps]})")
        if len(results) == 2 and sustained(results[1]):
            print(f"  two / one: {sustained(results[2]) / sustained(results[1]):.2f}x")


if __name__ == "__main__":
    main()
