"""A community's real fleet, measured against a baseline in the same run (issue 18).

    .venv/bin/python benchmarks/fleet_bench.py --db sqlite --devices 10000 \\
        --steps 2000,4000,6000,8000 --step-seconds 30 [--storm] [--no-baseline]
    .venv/bin/python benchmarks/fleet_bench.py --db postgres --devices 100000 ...
    .venv/bin/python benchmarks/fleet_bench.py --smoke        # a few seconds: does it still run

One Mosquitto on this machine and, for each system in turn, a fresh influxd of the same build
and settings (the README's for a large fleet; ``--influxd-defaults``: as installed), so no
system pays for the previous one's deferred compactions. The fleet is a community's mix (35 %
smoke detectors, 10 % SOS buttons, 15 % gates, 40 % charger ports, all registered), published by
the C load generator (benchmarks/loadgen.c -x) at QoS 1 in steps of rising rate, each type's
share of the messages following its profile's reporting interval and every payload inside the
normal ranges. On top, 2 alarms a second (smoke ``alarm`` and SOS ``button_pressed``
alternately), each on a device that has not alarmed before; each must reach a worker's topic.

First benchmarks/baseline.py (a plain paho subscriber writing the same points to InfluxDB in
batches and paging on one threshold) runs through the steps, then the gateway (a separate
process, its relational database the embedded SQLite or PostgreSQL per ``--db``). A step
passes when every message is stored within its drain time (no loss, no growing backlog) and
at ≥ 90 % of the offered rate overall, every alarm was paged and the alarm p99 is under 1 s;
a system's capacity is its highest passing step, and the steps stop at the first failure.
Per step: CPU µs per message of each process (the system under test, mosquitto, influxd),
alarm p50/p99, peak RSS.

Before its ladder, each system gets an unmeasured warm-up (2 messages per registered device at
the first step's rate), so the devices that report have done so once, as on a gateway that has
been running; ``--no-warmup`` measures the cold start instead.

``--storm``: after the steps, the gateway gets one more step at the baseline's capacity (or
``--storm-rate``) during which 5,000 further charger ports cross one rule (power above
1,200 W) within a minute: ingest rate against the storm-free step, fire-alarm latency, pages
per person for the storm, loss.

Absolute figures vary by up to 3x between machines and with whatever else runs: read the
ratios between systems measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _stack import MONITOR_TOKEN, build_loadgen, have_py_spy  # noqa: E402

from tests.services import (  # noqa: E402
    LARGE_FLEET,
    Influxd,
    Mosquitto,
    free_port,
    pg_admin_url,
)

MIX = (("smoke", 35, "SD-LG"), ("sos", 10, "SOS-LG"), ("gate", 15, "GT-LG"),
       ("charger", 40, "CP-LG"))
GRIDS = 4
BUILDINGS = 50
STORM_RULE = "charger.over_power"
_DEVICE = re.compile(r"\b(?:SD|SOS)-LG-\d{6}\b")


def type_of(d: int) -> tuple[str, str]:
    """Device number d (0-based) → (type, id prefix); the same mix as loadgen.c -x."""
    slot, acc = d % 100, 0
    for name, share, prefix in MIX:
        acc += share
        if slot < acc:
            return name, prefix
    return MIX[-1][0], MIX[-1][2]


def device_id(d: int) -> str:
    return f"{type_of(d)[1]}-{d + 1:06d}"


def storm_id(i: int) -> str:
    return f"CP-ST-{i + 1:06d}"


def write_community(path: Path, devices: int, storm_devices: int) -> None:
    buildings = [{"code": f"b{i:02d}", "name": f"{i}号楼", "grid": f"g{i % GRIDS + 1}"}
                 for i in range(1, BUILDINGS + 1)]
    entries = []
    for d in range(devices):
        b = d % BUILDINGS + 1
        entries.append({"id": device_id(d), "type": type_of(d)[0], "building": f"b{b:02d}",
                        "location": f"{b}号楼"})
    for i in range(storm_devices):
        entries.append({"id": storm_id(i), "type": "charger", "building": "b01",
                        "location": "1号楼 充电棚"})
    spec = {
        "site": {"code": "demo", "name": "压测社区", "timezone": "Asia/Shanghai"},
        "grids": [{"code": f"g{i}", "name": f"网格{i}"} for i in range(1, GRIDS + 1)],
        "buildings": buildings,
        "devices": entries,
        "people": [
            {"id": f"worker-{i}", "name": f"网格员{i}", "role": "grid_worker",
             "channels": {"mqtt": True}, "grids": [f"g{i}"]}
            for i in range(1, GRIDS + 1)
        ] + [{"id": "duty-1", "name": "值班员", "role": "duty_staff", "channels": {"mqtt": True}}],
        "roster": {"weekly": [{"person": "duty-1", "days": "daily", "start": "00:00",
                               "end": "00:00"}]},
    }
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(values["VmRSS"].split()[0]) / 1024, int(values["VmHWM"].split()[0]) / 1024


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the slowest but one)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- alarms and what reaches the workers ----------------------------------------------------------


class Listener:
    """Every message on the workers' topics: when each device was first paged, pages per person."""

    def __init__(self, port: int) -> None:
        self.first: dict[str, float] = {}
        self.per_person: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-sub-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *_: c.subscribe("safety/demo/workers/+/incidents", 1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("the workers' topic listener got no SUBACK")

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        at = time.monotonic()
        person = msg.topic.split("/")[3]
        text = msg.payload.decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = {}
        device = body.get("device_id") if isinstance(body, dict) else None
        if not isinstance(device, str):
            found = _DEVICE.search(text)  # the gateway's page names it in the incident
            device = found.group() if found else None
        with self._lock:
            self.per_person.setdefault(person, []).append(text)
            if isinstance(device, str) and device not in self.first:
                self.first[device] = at

    def pages_about(self, needle: str) -> dict[str, int]:
        with self._lock:
            return {p: sum(needle in t for t in texts) for p, texts in self.per_person.items()
                    if any(needle in t for t in texts)}

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Alarms:
    """Publishes alarms at a fixed rate on fresh devices until stopped; latency = publish →
    first message on a worker topic naming the device."""

    def __init__(self, port: int, fresh: Iterator[tuple[str, str]], per_s: float) -> None:
        self.sent: dict[str, float] = {}
        self._fresh, self._per_s = fresh, per_s
        self._stop = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-alarm-{uuid.uuid4().hex[:6]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Alarms:
        self._thread.start()
        return self

    def _run(self) -> None:
        seq = 10**12 + time.time_ns() // 1_000_000
        t0 = time.monotonic()
        for i in itertools.count():
            due = t0 + i / self._per_s
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            try:
                device_type, device = next(self._fresh)
            except StopIteration:
                return
            event = "alarm" if device_type == "smoke" else "button_pressed"
            body = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": seq + i, "event": event})
            self.sent[device] = time.monotonic()
            self.client.publish(f"safety/demo/{device_type}/{device}/event", body, qos=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.loop_stop()
        self.client.disconnect()

    def latencies(self, listener: Listener, wait_s: float) -> tuple[list[float], int]:
        """Latencies in ms of the alarms paged (waiting up to ``wait_s``), and how many were not."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(d in listener.first for d in self.sent):
            time.sleep(0.05)
        got = [(listener.first[d] - t) * 1000 for d, t in self.sent.items() if d in listener.first]
        self.missing = [d for d in self.sent if d not in listener.first]
        return got, len(self.sent) - len(got)


def fresh_alarm_devices(devices: int) -> Iterator[tuple[str, str]]:
    """Smoke detectors and SOS buttons, alternately, each once."""
    smoke = (device_id(d) for d in range(devices) if type_of(d)[0] == "smoke")
    sos = (device_id(d) for d in range(devices) if type_of(d)[0] == "sos")
    for a, b in itertools.zip_longest(smoke, sos):
        if a:
            yield "smoke", a
        if b:
            yield "sos", b


# -- the systems under test -----------------------------------------------------------------------


class System:
    name = ""
    pid = 0

    def counted(self) -> int:
        """Messages stored so far."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class BaselineProc(System):
    name = "baseline"

    def __init__(self, work: Path, mosquitto: Mosquitto, influxd: Influxd) -> None:
        self.status = work / "baseline.json"
        influxd.create_database("baseline")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "baseline.py"), "--port", str(mosquitto.port),
             "--influx", influxd.url, "--db", "baseline", "--status", str(self.status)],
            stdout=(work / "baseline.log").open("ab"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while not self.status.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the baseline did not start; see baseline.log")
            time.sleep(0.1)
        time.sleep(0.5)  # its subscription is in place

    def counted(self) -> int:
        try:
            return int(json.loads(self.status.read_text())["stored"])
        except (OSError, ValueError, KeyError):
            return 0

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()


NODE_RED = HERE / "node_red"


class NodeRedProc(System):
    """The same job as a Node-RED flow (benchmarks/node_red/flow.json): MQTT in → a function
    making one point per message and a page per alarmed device → a join of 5,000 points or
    200 ms → node-red-contrib-influxdb's batch writer. Node-RED and the node are installed
    with npm into benchmarks/node_red/node_modules on first use."""

    name = "node-red"

    def __init__(self, work: Path, mosquitto: Mosquitto, influxd: Influxd) -> None:
        red = NODE_RED / "node_modules" / "node-red" / "red.js"
        if not red.exists():
            print("  installing Node-RED (npm ci in benchmarks/node_red)", flush=True)
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_RED, check=True,
                           stdout=subprocess.DEVNULL)
        influxd.create_database("nodered")
        home = work / "node-red"
        home.mkdir(exist_ok=True)
        for name in ("flow.json", "settings.js"):
            (home / name).write_bytes((NODE_RED / name).read_bytes())
        self.port = free_port()
        env = dict(os.environ, MQTT_PORT=str(mosquitto.port), NODE_RED_PORT=str(self.port),
                   INFLUX_PORT=str(influxd.port))
        self.proc = subprocess.Popen(
            ["node", str(red), "--userDir", str(home), "--settings", str(home / "settings.js")],
            env=env, cwd=home, stdout=(work / "node-red.log").open("ab"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while self._status() is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Node-RED did not start; see node-red.log")
            time.sleep(0.2)
        time.sleep(1.0)  # its MQTT subscription is in place

    def _status(self) -> dict[str, int] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=5) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError):
            return None

    def counted(self) -> int:
        status = self._status()
        return int(status["stored"]) if status else 0

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()


class GatewayProc(System):
    name = "gateway"

    def __init__(self, work: Path, mosquitto: Mosquitto, influxd: Influxd, db_url: str,
                 community: Path | None, client_id: str = "") -> None:
        influxd.create_database("bench")
        self.api_port = free_port()
        self.client_id = client_id or f"gateway-{uuid.uuid4().hex[:6]}"
        config = {
            "mode": "development",
            "data_dir": str(work / "gateway"),
            # None: a restart, the registry already in the database
            "community_file": str(community) if community else None,
            "mqtt": {"url": mosquitto.url, "client_id": self.client_id},
            "database": {"url": db_url},
            "timeseries": {"backend": "influxdb1", "url": influxd.url, "database": "bench"},
            "api": {"port": self.api_port, "metrics_token": MONITOR_TOKEN},
            "log_level": "WARNING",
        }
        path = work / "gateway.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(path)],
                                     stdout=(work / "gateway.log").open("ab"),
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 600
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start; see gateway.log")
            with contextlib.suppress(OSError, KeyError, ValueError):
                if self.health()["components"]["mqtt"]["status"] == "ok":
                    break
            time.sleep(0.2)
        self.startup_s = time.monotonic() - t0

    def health(self) -> dict:  # type: ignore[type-arg]
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/health",
                                         headers={"Authorization": f"Bearer {MONITOR_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def counted(self) -> int:
        try:
            ingest = self.health()["components"]["ingest"]
        except (OSError, KeyError, ValueError):
            return -1
        return int(ingest["stored"]) + int(ingest["duplicates"]) + int(ingest["quarantined"])

    def quarantined(self) -> int:
        return int(self.health()["components"]["ingest"]["quarantined"])

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        if self.proc.poll() is None:
            self.proc.kill()


# -- a step ---------------------------------------------------------------------------------------


@dataclass
class Step:
    system: str
    rate: int
    messages: int
    stored: int = 0
    alarms: int = 0
    unpaged: int = 0
    p50: float = math.nan
    p99: float = math.nan
    seconds: float = 0.0
    cpu_us: dict[str, float] = field(default_factory=dict)
    rss_peak: float = 0.0
    missing: list[str] = field(default_factory=list)

    @property
    def loss(self) -> int:
        return self.messages - self.stored

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[str]:
        """Why the step failed; empty when it passed. Keeping up is part of passing: on this
        shared box the load generator itself slows when the system under test takes the CPU,
        and a rate nobody could offer or store in time was not sustained."""
        why = []
        if self.loss > 0:
            why.append(f"{self.loss:,} not stored in time")
        if self.unpaged or not self.alarms:
            why.append(f"{self.unpaged} alarms not paged" if self.alarms else "no alarm sent")
        if not self.p99 < 1000:
            why.append("alarm p99 ≥ 1 s")
        if self.ingest_rate < 0.9 * self.rate:
            why.append(f"stored at {100 * self.ingest_rate / self.rate:.0f}% of the offered rate")
        return why

    @property
    def ingest_rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        cpu = "  ".join(f"{k} {v:.0f}" for k, v in self.cpu_us.items())
        verdict = "PASS" if self.passed else f"fail ({'; '.join(self.failures)})"
        return (f"  {self.system:8s} {self.rate:>7,} msg/s  {verdict}  stored {self.stored:,}/"
                f"{self.messages:,} ({self.ingest_rate:,.0f} msg/s)  alarms {self.alarms - self.unpaged}/"
                f"{self.alarms} paged, p50 {self.p50:.0f} ms p99 {self.p99:.0f} ms  "
                f"CPU µs/msg: {cpu}  RSS peak {self.rss_peak:.0f} MiB"
                + (f"\n      not paged: {', '.join(self.missing[:8])}" if self.missing else ""))


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.mosquitto = Mosquitto(work / "mosquitto")
        self.influxd: Influxd | None = None  # the current system's: see fresh_influxd
        self.loadgen = build_loadgen(work)
        self.fresh = fresh_alarm_devices(args.devices)
        self.listener: Listener | None = None

    def fresh_influxd(self, system: str) -> Influxd:
        """A new influxd (same build, same settings) for the next system under test.

        One influxd shared by all would bill one system's deferred work to the next: the
        baseline's cache snapshot and compactions (due once its shard has been idle for a
        while) ran inside the gateway's measured steps (influxd 55-67 µs a message there
        against 37-41 with no baseline before it, 100,000 devices)."""
        if self.influxd is not None:
            self.influxd.stop()
        data = None if self.args.influxd_defaults else LARGE_FLEET
        self.influxd = Influxd(self.work / f"influxd-{system}", data=data)
        self.influxd.start()
        return self.influxd

    def step(self, system: System, rate: int, seconds: float, storm: int = 0) -> Step:
        args = self.args
        n = int(rate * seconds)
        assert self.influxd is not None
        procs = {system.name: system.pid, "mosquitto": self.mosquitto.proc.pid,  # type: ignore[union-attr]
                 "influxd": self.influxd.proc.pid}  # type: ignore[union-attr]
        cpu0 = {k: cpu_s(p) for k, p in procs.items()}
        counted0 = system.counted()
        assert self.listener is not None
        t0 = time.monotonic()
        gen = subprocess.Popen(
            [str(self.loadgen), "-p", str(self.mosquitto.port), "-n", str(n), "-m",
             str(args.devices), "-q", "1", "-s", "demo", "-r", str(rate), "-x",
             "-i", f"loadgen-{uuid.uuid4().hex[:6]}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        alarms = Alarms(self.mosquitto.port, self.fresh, args.alarms_per_s).start()
        storm_thread = None
        storm_sent = [0]
        if storm:
            storm_thread = threading.Thread(target=self._storm, args=(storm, args.storm_seconds,
                                                                       storm_sent), daemon=True)
            storm_thread.start()
        rss_peak = 0.0
        while gen.poll() is None:
            rss_peak = max(rss_peak, rss_mib(system.pid)[0])
            time.sleep(0.2)
        if storm_thread is not None:
            storm_thread.join()
        alarms.stop()
        out = (gen.stdout.read() if gen.stdout else "").strip().splitlines()  # type: ignore[union-attr]
        if gen.returncode:
            print(f"  load generator failed: {out[-1] if out else gen.returncode}")
        expected = n + len(alarms.sent) + storm_sent[0]
        drain_deadline = time.monotonic() + max(args.drain_min_s, 0.25 * seconds)
        stored = system.counted() - counted0
        while stored < expected and time.monotonic() < drain_deadline:
            time.sleep(0.1)
            stored = max(stored, system.counted() - counted0)
            rss_peak = max(rss_peak, rss_mib(system.pid)[0])
        t_end = time.monotonic()
        latencies, unpaged = alarms.latencies(self.listener, 5.0)
        cpu1 = {k: cpu_s(p) for k, p in procs.items()}
        result = Step(system.name, rate, expected, stored=min(stored, expected),
                      alarms=len(alarms.sent), unpaged=unpaged, p50=pct(latencies, 0.5),
                      p99=pct(latencies, 0.99), seconds=t_end - t0,
                      cpu_us={k: (cpu1[k] - cpu0[k]) / max(expected, 1) * 1e6 for k in procs},
                      rss_peak=max(rss_peak, rss_mib(system.pid)[1]), missing=alarms.missing)
        if stored < expected:
            # Give a failed step time to drain, so the next system starts from a quiet broker.
            settle = time.monotonic() + 60
            while system.counted() - counted0 < expected and time.monotonic() < settle:
                time.sleep(0.5)
        return result

    def _storm(self, devices: int, within_s: float, sent: list[int]) -> None:
        """``devices`` charger ports cross the power limit, spread evenly over ``within_s``."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-storm-{uuid.uuid4().hex[:6]}")
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", self.mosquitto.port)
        client.loop_start()
        t0 = time.monotonic()
        seq = 10**12 + time.time_ns() // 1_000_000
        infos = []
        for i in range(devices):
            ahead = t0 + i * within_s / devices - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            body = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": seq + i, "port": 1,
                               "state": "charging", "voltage_v": 221.0, "current_a": 7.2,
                               "power_w": 1590.0, "temp_c": 41.0, "leak_ma": 0.5})
            infos.append(client.publish(f"safety/demo/charger/{storm_id(i)}/telemetry", body, qos=1))
            sent[0] += 1
        for info in infos:
            info.wait_for_publish(30)
        client.loop_stop()
        client.disconnect()

    def warm_up(self, system: System) -> None:
        """Unmeasured: twice as many messages as devices at the first step's rate, so every
        charger port and nearly every gate (the types that report within a step) has reported
        once before the ladder: its InfluxDB series, rule state and sequence window exist, as
        on a gateway that has been running. Without it, a 100,000-device step mostly measures
        influxd creating 55,000 new series in its first seconds."""
        n = 2 * self.args.devices
        counted0 = system.counted()
        t0 = time.monotonic()
        subprocess.run(
            [str(self.loadgen), "-p", str(self.mosquitto.port), "-n", str(n), "-m",
             str(self.args.devices), "-q", "1", "-s", "demo", "-r", str(self.args.steps[0]),
             "-x", "-i", f"loadgen-{uuid.uuid4().hex[:6]}"],
            capture_output=True, check=False)
        deadline = time.monotonic() + 120
        while system.counted() - counted0 < n and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"  {system.name} warm-up (not measured): {system.counted() - counted0:,}/{n:,} "
              f"messages stored in {time.monotonic() - t0:.1f} s", flush=True)

    def ladder(self, system: System) -> list[Step]:
        if self.args.warmup:
            self.warm_up(system)
        results = []
        for rate in self.args.steps:
            spy = self._profile(system) if self.args.profile and system.name == "gateway" else None
            result = self.step(system, rate, self.args.step_seconds)
            print(result.line(), flush=True)
            if spy is not None:
                spy.join()
                print(rule_state_share(self.work / "profile.txt"), flush=True)
            results.append(result)
            if not result.passed:
                break
        return results


    def _profile(self, system: System) -> threading.Thread:
        """py-spy samples of the gateway during the step (its middle part)."""
        raw = self.work / "profile.txt"
        raw.unlink(missing_ok=True)
        seconds = max(1, int(self.args.step_seconds * 0.6))

        def record() -> None:
            time.sleep(self.args.step_seconds * 0.2)
            subprocess.run([have_py_spy() or "py-spy", "record", "--pid", str(system.pid),
                            "--duration", str(seconds), "--format", "raw", "--output", str(raw),
                            "--nonblocking"], capture_output=True, check=False)

        thread = threading.Thread(target=record, daemon=True)
        thread.start()
        return thread


def rule_state_share(raw: Path) -> str:
    """Of the gateway's sampled busy time, the share spent saving rule state."""
    if not raw.exists():
        return "    (no profile: py-spy did not record)"
    total = saving = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        if "alerting/state.py" in stack or any(
            f"{fn} (alerting/rules/engine.py" in stack for fn in ("persist", "checkpoint")
        ):
            saving += int(count)
    return (f"    profile: rule-state saving {100 * saving / max(total, 1):.1f}% of "
            f"{total} samples of the gateway's busy time")


def capacity(steps: list[Step]) -> int:
    passed = [s.rate for s in steps if s.passed]
    return max(passed) if passed else 0


def make_db_url(kind: str, work: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{work / 'gateway.db'}", None
    import asyncpg

    name = f"fleet_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = pg_admin_url().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


def drop_db(name: str | None) -> None:
    if name is None:
        return
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(pg_admin_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--steps", default="2000,4000,6000,8000,10000",
                    help="offered telemetry rates (msg/s), comma-separated, rising")
    ap.add_argument("--step-seconds", type=float, default=30.0)
    ap.add_argument("--drain-min-s", type=float, default=5.0,
                    help="after a step's last message, how long everything may take to be stored")
    ap.add_argument("--alarms-per-s", type=float, default=2.0)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--node-red", action="store_true",
                    help="also a Node-RED flow doing the same job (benchmarks/node_red; needs "
                         "node and npm), after the baseline and before the gateway")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="start the ladder cold: no device has reported before its first step")
    ap.add_argument("--influxd-defaults", action="store_true",
                    help="influxd as installed, not with the README's settings for a large fleet")
    ap.add_argument("--storm", action="store_true", help="a storm step after the ladder")
    ap.add_argument("--storm-devices", type=int, default=5000)
    ap.add_argument("--storm-seconds", type=float, default=60.0)
    ap.add_argument("--storm-rate", type=int, default=0,
                    help="telemetry rate of the storm step (default: the baseline's capacity)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the gateway in each step: share of time spent saving rule state")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite)")
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds on a tiny fleet, to check that the script still runs")
    args = ap.parse_args()
    if args.smoke:
        args.devices, args.steps, args.step_seconds = 300, "200", 3.0
        args.drain_min_s, args.storm, args.storm_devices, args.storm_seconds = 10.0, True, 30, 2.0
    args.steps = [int(s) for s in str(args.steps).split(",")]

    keep = tempfile.mkdtemp(prefix="fleet-bench-") if args.keep else None
    with contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        storm_devices = args.storm_devices if args.storm else 0
        community = work / "community.yaml"
        write_community(community, args.devices, storm_devices)
        db_url, pg_name = make_db_url(args.db, work)
        bench = Bench(args, work)
        try:
            bench.mosquitto.start()
            bench.listener = Listener(bench.mosquitto.port)
        except BaseException:
            bench.mosquitto.stop()
            drop_db(pg_name)
            raise
        print(f"fleet: {args.devices:,} devices (35% smoke, 10% SOS, 15% gates, 40% charger "
              f"ports){f' + {storm_devices:,} storm ports' if storm_devices else ''}; "
              f"{args.alarms_per_s:g} alarms/s; QoS 1; steps {args.steps} msg/s of "
              f"{args.step_seconds:g} s; gateway database {args.db}", flush=True)
        summary: dict[str, list[Step]] = {}
        try:
            if not args.no_baseline:
                baseline = BaselineProc(work, bench.mosquitto, bench.fresh_influxd("baseline"))
                try:
                    summary["baseline"] = bench.ladder(baseline)
                finally:
                    baseline.stop()
            if args.node_red:
                node_red = NodeRedProc(work, bench.mosquitto, bench.fresh_influxd("node-red"))
                try:
                    summary["node-red"] = bench.ladder(node_red)
                finally:
                    node_red.stop()
            influxd = bench.fresh_influxd("gateway")
            gateway = GatewayProc(work, bench.mosquitto, influxd, db_url, community)
            print(f"  gateway start-up with {args.devices + storm_devices:,} registered devices: "
                  f"{gateway.startup_s:.1f} s (process start → MQTT connected)", flush=True)
            try:
                summary["gateway"] = bench.ladder(gateway)
                if args.storm:
                    rate = args.storm_rate or capacity(summary.get("baseline", [])) or args.steps[0]
                    calm = bench.step(gateway, rate, args.storm_seconds + 5)
                    print("  storm-free step at the same rate:\n" + calm.line(), flush=True)
                    stormy = bench.step(gateway, rate, args.storm_seconds + 5,
                                        storm=args.storm_devices)
                    time.sleep(3)
                    pages = bench.listener.pages_about(STORM_RULE)
                    print(f"  storm ({args.storm_devices:,} charger ports over {STORM_RULE} within "
                          f"{args.storm_seconds:g} s):\n" + stormy.line(), flush=True)
                    health = gateway.health()["components"]
                    print(f"    ingest during the storm {stormy.ingest_rate:,.0f} msg/s = "
                          f"{100 * stormy.ingest_rate / max(calm.ingest_rate, 1):.0f}% of the "
                          f"storm-free step; telemetry loss {max(0, stormy.loss)}; pages per "
                          f"person for the storm: {pages or 'none'}; alert backlog now "
                          f"{health.get('alerting', {}).get('backlog', '?')}", flush=True)
            finally:
                gateway.stop()
            again = GatewayProc(work, bench.mosquitto, influxd, db_url, None,
                                client_id=gateway.client_id)
            print(f"  gateway restart (registry and rule state in the database, no community "
                  f"file): {again.startup_s:.1f} s to MQTT connected", flush=True)
            again.stop()
        finally:
            bench.listener.stop()  # type: ignore[union-attr]
            if bench.influxd is not None:
                bench.influxd.stop()
            bench.mosquitto.stop()
            drop_db(pg_name)
        print("summary:")
        for name, steps in summary.items():
            print(f"  {name}: sustained capacity {capacity(steps):,} msg/s "
                  f"(highest passing step of {[s.rate for s in steps]})")
        for peer in ("baseline", "node-red"):
            if peer in summary and "gateway" in summary:
                b, g = capacity(summary[peer]), capacity(summary["gateway"])
                print(f"  gateway / {peer} capacity: {g / b:.2f}x" if b else
                      f"  gateway / {peer} capacity: {peer} passed no step")


if __name__ == "__main__":
    main()
