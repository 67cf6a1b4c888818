"""A cluster of real gateway processes on one Mosquitto, one PostgreSQL and one influxd, with
the instruments the failover tests and benchmarks read: a traffic publisher whose every
reading carries a per-device sequence number, a recorder of every page (worker topics over
MQTT, SMS through a recording HTTP server), and read-back of what the gateways stored.

Used by tests/cluster/ and by benchmarks/failover_bench.py and benchmarks/cluster_rate.py,
so it starts plain processes and threads and needs no pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import Influxd, Mosquitto, free_port, pg_admin_url

ROOT = Path(__file__).resolve().parents[2]
#: /health shows its component figures to the metrics token only.
MONITOR_TOKEN = "cluster-metrics-token-0123456789abcdef0123"
DEVICE_TYPES = ("smoke", "sos", "gate", "charger")
#: Devices of each type per site (ids carry the site, so no two sites share one).
PER_TYPE = {"smoke": 3, "sos": 2, "gate": 2, "charger": 3}
_PREFIX = {"smoke": "SD", "sos": "SOS", "gate": "GT", "charger": "CP"}


def site_codes(n: int = 10) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


# -- the communities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    site: str
    type: str
    id: str
    grid: str  # the community file's grid code (g1/g2)

    @property
    def topic(self) -> str:
        return f"safety/{self.site}/{self.type}/{self.id}"


def site_devices(site: str, per_type: dict[str, int] | None = None) -> list[Device]:
    """The devices of one site: building b1 (grid g1) and b2 (grid g2) alternately."""
    out = []
    for kind, count in (per_type or PER_TYPE).items():
        for i in range(1, count + 1):
            grid = "g1" if i % 2 else "g2"
            out.append(Device(site, kind, f"{_PREFIX[kind]}-{site}-{i:03d}", grid))
    return out


def person_ids(site: str) -> dict[str, str]:
    """Person ids are global in the registry: each carries its site."""
    return {
        "worker_g1": f"{site}-worker-a",
        "worker_g2": f"{site}-worker-b",
        "leader_b1": f"{site}-leader-b1",
        "duty": f"{site}-duty",
        "secretary": f"{site}-secretary",
    }


def phone_of(site: str, n: int) -> str:
    return f"139{int(site[1:]):04d}{n:04d}"


def community_spec(site: str, per_type: dict[str, int] | None = None) -> dict[str, Any]:
    """One community: two grids, each with a grid worker who has a phone, a building leader of
    b1, duty staff on a 24-hour roster and the secretary; devices of the four types."""
    ids = person_ids(site)
    devices = []
    for d in site_devices(site, per_type):
        building = "b1" if d.grid == "g1" else "b2"
        if d.type == "charger":
            building = "shed1"
        devices.append({"id": d.id, "type": d.type, "building": building,
                        "location": f"{building} {d.id}"})
    number = int(site[1:])

    def person(key: str, n: int, role: str, **extra: Any) -> dict[str, Any]:
        return {"id": ids[key], "name": f"{key}-{number}", "role": role, "phone": phone_of(site, n),
                "channels": {"mqtt": True, "sms": phone_of(site, n)}, **extra}

    return {
        "site": {"code": site, "name": f"第{number}社区", "timezone": "Asia/Shanghai"},
        "grids": [{"code": "g1", "name": "第一网格"}, {"code": "g2", "name": "第二网格"}],
        "buildings": [
            {"code": "b1", "name": "1号楼", "grid": "g1"},
            {"code": "b2", "name": "2号楼", "grid": "g2"},
            {"code": "shed1", "name": "1号充电棚", "grid": "g1"},
        ],
        "devices": devices,
        "people": [
            person("worker_g1", 1, "grid_worker", grids=["g1"]),
            person("worker_g2", 2, "grid_worker", grids=["g2"]),
            person("leader_b1", 3, "building_leader", buildings=["b1"]),
            person("duty", 4, "duty_staff"),
            person("secretary", 5, "secretary"),
        ],
        "roster": {"weekly": [{"person": ids["duty"], "days": "daily", "start": "00:00",
                               "end": "00:00"}]},
    }


def write_communities(directory: Path, sites: Iterable[str],
                      per_type: dict[str, int] | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for site in sites:
        path = directory / f"{site}.yaml"
        path.write_text(yaml.safe_dump(community_spec(site, per_type), allow_unicode=True,
                                       sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths


def step0_people(device: Device) -> set[str]:
    """Who a critical alarm pages at once: the grid's worker, the building's leader (b1 only)
    and the duty staff."""
    ids = person_ids(device.site)
    people = {ids["worker_g1"] if device.grid == "g1" else ids["worker_g2"], ids["duty"]}
    if device.grid == "g1" and device.type != "charger":
        people.add(ids["leader_b1"])
    return people


# -- PostgreSQL ---------------------------------------------------------------------------------


def _pg(sql: str, *args: Any, url: str | None = None) -> list[dict[str, Any]]:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url or pg_admin_url(), timeout=10)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def create_database() -> tuple[str, str]:
    """A fresh database: (SQLAlchemy URL for the gateways, plain URL for read-back)."""
    name = f"sg_cluster_{uuid.uuid4().hex[:10]}"
    _pg(f'CREATE DATABASE "{name}"')
    base = pg_admin_url().rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}", f"{base}/{name}"


def drop_database(plain_url: str) -> None:
    name = plain_url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception):
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- pages as people receive them ---------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    channel: str  # app | sms
    key: str  # the delivery's idempotency key: one per incident, step and person (and channel)
    person: str
    step: str
    incident: int | None
    device: str | None
    at: float


class SmsServer:
    """The SMS provider: a real HTTP server that records every message and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with recorder.lock:
                    recorder.requests.append((time.monotonic(), dict(self.headers), body))
                payload = b'{"ok": true}'
                # A gateway killed mid-request has gone: nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PageRecorder:
    """Every page: the app's MQTT messages on ``safety/+/workers/+/incidents`` (a persistent
    QoS 1 session, so a reconnect loses none) and the SMS the provider received."""

    def __init__(self, broker_port: int, sms: SmsServer) -> None:
        self.sms = sms
        self.app: list[Page] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"pages-{uuid.uuid4().hex[:6]}", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe("safety/+/workers/+/incidents", 1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("the page recorder got no SUBACK")

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        person = msg.topic.split("/")[3]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {}
        note = body.get("notification") or {}
        page = Page("app", str(note.get("key", "")), person, str(note.get("step", "")),
                    body.get("id") if isinstance(body.get("id"), int) else None,
                    body.get("device"), time.monotonic())
        with self._lock:
            self.app.append(page)

    def pages(self) -> list[Page]:
        with self._lock:
            app = list(self.app)
        with self.sms.lock:
            raw = list(self.sms.requests)
        sms = []
        for at, headers, _body in raw:
            # The key names incident, step, person and channel: "12:0:s01-worker-a:sms".
            key = headers.get("Idempotency-Key", "")
            parts = key.split(":")
            incident = int(parts[0]) if parts[0].isdigit() else None
            person = parts[-2] if len(parts) >= 4 else ""
            step = ":".join(parts[1:-2]) if len(parts) >= 4 else ""
            sms.append(Page("sms", key, person, step, incident, None, at))
        return app + sms

    def key_counts(self) -> Counter[tuple[str, str]]:
        """How often each (channel, delivery key) arrived: 1 everywhere = nobody paged twice."""
        return Counter((p.channel, p.key) for p in self.pages())

    def app_pages_about(self, device_id: str) -> list[Page]:
        with self._lock:
            return [p for p in self.app if p.device == device_id]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- traffic ------------------------------------------------------------------------------------


def telemetry(device: Device, seq: int, ts: int) -> dict[str, Any]:
    """A normal reading of the device's type (inside the profile's ranges: opens nothing)."""
    body: dict[str, Any] = {"ts": ts, "seq": seq}
    if device.type == "smoke":
        body.update(smoke_dbm=0.02, temp_c=22.5, battery_pct=90, rssi_dbm=-80)
    elif device.type == "sos":
        body.update(battery_pct=88, rssi_dbm=-82)
    elif device.type == "gate":
        body.update(door_open=False, battery_pct=77)
    else:
        body.update(port=1, state="charging", voltage_v=221.0, current_a=2.5, power_w=550.0,
                    energy_wh=300.0, temp_c=31.0, leak_ma=1.0)
    return body


class Traffic:
    """Publishes telemetry of every device round-robin at ``rate`` msg/s (QoS 1), each reading
    with a per-device sequence number and a timestamp of its own; remembers every reading the
    broker acknowledged, which must all be stored."""

    def __init__(self, broker_port: int, devices: list[Device], rate: float) -> None:
        self.devices, self.rate = devices, rate
        self.sent = 0
        # (message info, (site, device, seq)); a PUBACK marks the info published. No
        # on_publish callback: paho calls it holding its own lock, which publish() takes too.
        self._published: list[tuple[paho.MQTTMessageInfo, tuple[str, str, int]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq: dict[str, int] = defaultdict(lambda: 1_000_000)
        self._last_ts: dict[str, int] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"traffic-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def start(self) -> Traffic:
        self._thread.start()
        return self

    @property
    def acked(self) -> set[tuple[str, str, int]]:
        """(site, device, seq) of every reading the broker acknowledged."""
        with self._lock:
            published = list(self._published)
        return {reading for info, reading in published if info.is_published()}

    def next_ts(self, device_id: str) -> int:
        """Now, but never a timestamp the device used already (same series and time = one
        point in InfluxDB)."""
        with self._lock:
            ts = max(time.time_ns() // 1_000_000, self._last_ts.get(device_id, 0) + 1)
            self._last_ts[device_id] = ts
            return ts

    def next_seq(self, device_id: str) -> int:
        with self._lock:
            self._seq[device_id] += 1
            return self._seq[device_id]

    def publish(self, device: Device, kind: str, body: dict[str, Any]) -> None:
        info = self.client.publish(f"{device.topic}/{kind}", json.dumps(body), qos=1)
        with self._lock:
            self._published.append((info, (device.site, device.id, int(body["seq"]))))
            self.sent += 1

    def _run(self) -> None:
        t0 = time.monotonic()
        i = 0
        while not self._stop.is_set():
            due = t0 + i / self.rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            device = self.devices[i % len(self.devices)]
            self.publish(device, "telemetry",
                         telemetry(device, self.next_seq(device.id), self.next_ts(device.id)))
            i += 1

    def alarm(self, device: Device) -> int:
        """A smoke alarm or an SOS button press on ``device``, on the same sequence; returns
        its seq."""
        seq = self.next_seq(device.id)
        event = "alarm" if device.type == "smoke" else "button_pressed"
        body: dict[str, Any] = {"ts": self.next_ts(device.id), "seq": seq, "event": event}
        if device.type == "smoke":
            body["smoke_dbm"] = 0.41
        self.publish(device, "event", body)
        return seq

    def unacked(self) -> int:
        with self._lock:
            published = list(self._published)
        return sum(1 for info, _ in published if not info.is_published())

    def stop(self, timeout: float = 30) -> None:
        """Stop publishing and wait for the broker's last acknowledgements."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        deadline = time.monotonic() + timeout
        while self.unacked() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()


def stored_readings(influxd: Influxd, database: str) -> set[tuple[str, str, int]]:
    """(site, device, seq) of every point in the database."""
    found: set[tuple[str, str, int]] = set()
    for measurement in DEVICE_TYPES:
        body = influxd.query(f'SELECT "seq", "device", "site" FROM "{measurement}"', db=database)
        for result in body.get("results", []):
            for series in result.get("series", []) or []:
                cols = series["columns"]
                s_i, d_i, q_i = cols.index("site"), cols.index("device"), cols.index("seq")
                for row in series["values"]:
                    if row[q_i] is not None:
                        found.add((row[s_i], row[d_i], int(row[q_i])))
    return found


# -- the gateway processes ----------------------------------------------------------------------


@dataclass
class Instance:
    """One gateway process of the cluster."""

    instance_id: str
    config: Path
    log: Path
    api_port: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/health",
            headers={"Authorization": f"Bearer {MONITOR_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:  # 503 still carries the body
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def metrics(self) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/metrics",
            headers={"Authorization": f"Bearer {MONITOR_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.read().decode()  # type: ignore[no-any-return]

    def _new_port(self) -> None:
        """Another process took the free port picked for the API between the pick and the
        bind (other test runs share the machine): pick again."""
        self.api_port = free_port()
        config = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        config["api"]["port"] = self.api_port
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        retries = 3
        while True:
            if not self.alive:
                if retries and "address already in use" in self.tail(60):
                    retries -= 1
                    with contextlib.suppress(OSError):
                        self.log.write_text("", encoding="utf-8")
                    self._new_port()
                    self.start()
                    continue
                raise RuntimeError(f"{self.instance_id} exited: {self.tail()}")
            with contextlib.suppress(OSError, KeyError, ValueError):
                if self.health()["components"]["mqtt"]["status"] == "ok":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.instance_id} not ready in {timeout} s: {self.tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no lease is given back."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> None:
        """SIGTERM: the clean stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def cpu_s(self) -> float:
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ClusterSettings:
    lease_s: float = 10
    renew_s: float = 2
    partitions: str | int = "site"
    critical_ack_s: int = 20
    cluster: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Cluster:
    """Mosquitto (its own), influxd (given or its own), a fresh PostgreSQL database, the SMS
    server, the page recorder and the gateway instances."""

    def __init__(self, workdir: Path, *, sites: list[str] | None = None,
                 influxd: Influxd | None = None, settings: ClusterSettings | None = None,
                 per_type: dict[str, int] | None = None) -> None:
        self.workdir = workdir
        self.sites = sites or site_codes()
        self.settings = settings or ClusterSettings()
        self.per_type = per_type
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        self._own_influxd = influxd is None
        self.influxd = influxd or Influxd(workdir / "influxd")
        self.influx_db = f"cluster_{uuid.uuid4().hex[:8]}"
        self.db_url = self.pg_url = ""
        self.community_files = write_communities(workdir / "communities", self.sites, per_type)
        self.devices = [d for s in self.sites for d in site_devices(s, per_type)]
        self.instances: dict[str, Instance] = {}
        self.sms: SmsServer | None = None
        self.pages: PageRecorder | None = None

    def start(self) -> None:
        self.mosquitto.start()
        if self._own_influxd:
            self.influxd.start()
        self.influxd.create_database(self.influx_db)
        self.db_url, self.pg_url = create_database()
        self.sms = SmsServer()
        self.pages = PageRecorder(self.mosquitto.port, self.sms)

    def config(self, instance_id: str, api_port: int) -> dict[str, Any]:
        st = self.settings
        config: dict[str, Any] = {
            "mode": "development",
            "data_dir": str(self.workdir / instance_id),
            # With the cluster on, the partitions' sessions are "<client_id>-p-<partition>": one
            # prefix for every instance, so whoever takes a partition over resumes its session.
            "mqtt": {"url": self.mosquitto.url,
                     "client_id": "gw" if st.cluster else f"gw-{instance_id}"},
            "database": {"url": self.db_url},
            "timeseries": {"backend": "influxdb1", "url": self.influxd.url,
                           "database": self.influx_db, "flush_interval_ms": 100},
            "ingest": {"flush_interval_ms": 50},
            "api": {"port": api_port, "metrics_token": MONITOR_TOKEN},
            "alerting": {"tick_interval_ms": 200,
                         "escalation": {"critical_ack_s": st.critical_ack_s}},
            "notify": {"sms_gateway_url": self.sms.url if self.sms else None,
                       "voice_device_types": []},
            "log_level": "INFO",
        }
        if st.cluster:
            config["community_files"] = [str(p) for p in self.community_files]
            config["cluster"] = {"enabled": True, "instance_id": instance_id,
                                 "partitions": st.partitions, "lease_s": st.lease_s,
                                 "renew_s": st.renew_s}
        else:  # one site per process, as before the cluster existed
            config["community_file"] = str(self.community_files[0])
        for key, value in st.extra.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def add(self, instance_id: str, *, start: bool = True) -> Instance:
        port = free_port()
        path = self.workdir / f"{instance_id}.yaml"
        path.write_text(yaml.safe_dump(self.config(instance_id, port)), encoding="utf-8")
        instance = Instance(instance_id, path, self.workdir / f"{instance_id}.log", port)
        self.instances[instance_id] = instance
        if start:
            instance.start()
        return instance

    def restart(self, instance_id: str) -> Instance:
        instance = self.instances[instance_id]
        instance.start()
        return instance

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.alive]

    # -- who owns what -------------------------------------------------------------------------

    def owners(self) -> dict[str, str]:
        """Partition → the instance holding an unexpired lease on it (the lease table)."""
        rows = _pg(
            "SELECT partition, owner FROM partition_lease "
            "WHERE owner IS NOT NULL AND expires_at > now()",
            url=self.pg_url,
        )
        return {str(r["partition"]): str(r["owner"]) for r in rows}

    def owned_by(self, instance_id: str) -> set[str]:
        return {p for p, o in self.owners().items() if o == instance_id}

    def wait_until(self, cond: Callable[[], bool], timeout: float, what: str,
                   step: float = 0.2) -> float:
        """Seconds until ``cond()`` held; AssertionError naming ``what`` after ``timeout``."""
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                if cond():
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"not within {timeout:.0f} s: {what}")
            time.sleep(step)

    # -- what the database says ----------------------------------------------------------------

    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        return _pg(query, *args, url=self.pg_url)

    def incidents(self) -> list[dict[str, Any]]:
        return self.sql("SELECT id, site, device_id, rule_id, status, opened_at_ms, round "
                        "FROM incident ORDER BY id")

    def ladder_events(self) -> list[dict[str, Any]]:
        """Each step of each incident's ladder as it ran (``notified`` = step 0)."""
        rows = self.sql("SELECT incident_id, kind, at_ms, data FROM incident_event "
                        "WHERE kind IN ('notified', 'escalated') ORDER BY id")
        for row in rows:
            data = row["data"]
            row["step"] = int((json.loads(data) if isinstance(data, str) else data)["step"])
        return rows

    def deliveries(self) -> list[dict[str, Any]]:
        return self.sql("SELECT id, idempotency_key, incident_id, step, person_id, channel, "
                        "status, claimed_by FROM delivery ORDER BY id")

    def stop(self) -> None:
        for instance in self.instances.values():
            with contextlib.suppress(Exception):
                instance.terminate(20)
        if self.pages is not None:
            self.pages.stop()
        if self.sms is not None:
            self.sms.stop()
        self.mosquitto.stop()
        if self._own_influxd:
            self.influxd.stop()
        if self.pg_url:
            drop_database(self.pg_url)


def steps_per_incident(events: list[dict[str, Any]]) -> dict[int, list[int]]:
    by: dict[int, list[int]] = defaultdict(list)
    for e in events:
        by[int(e["incident_id"])].append(e["step"])
    return dict(by)


def chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
