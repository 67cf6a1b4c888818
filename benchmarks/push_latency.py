"""Time from an alarm published to the broker to the Web Push request reaching the push service.

A real broker (mosquitto), the gateway as its own process (Web Push on, embedded store), and a
push service run here that checks each push's VAPID JWT and decrypts it (tests/push_service.py):
every grid worker and the duty officer subscribe a phone through the API, then ``--alarms``
smoke detectors alarm one after another; for each alarm the first push about its device counts.

    .venv/bin/python benchmarks/push_latency.py --alarms 100
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho
from _stack import MONITOR_TOKEN, Stack, bench_community
from paho.mqtt.enums import CallbackAPIVersion

from gateway.registry.passwords import hash_password
from tests.push_service import PushService, start_push_service

PASSWORD = "bench-password-0123"
PEOPLE = ["worker-1", "worker-2", "worker-3", "worker-4", "duty-1"]


class PushStack(Stack):
    """The benchmark stack without influxd: the embedded store, Web Push on."""

    def start(self, **overrides: object) -> None:
        self.mosquitto.start()
        community = self.workdir / "community.yaml"
        bench_community(community, self.devices, self.password_hash)
        config = {
            "mode": "development",
            "data_dir": str(self.workdir / "gateway"),
            "community_file": str(community),
            "mqtt": {"url": self.mosquitto.url, "client_id": "gateway-push-bench"},
            "database": {"url": f"sqlite+aiosqlite:///{self.workdir / 'gateway.db'}"},
            "timeseries": {"backend": "embedded"},
            "api": {"port": self.api_port, "metrics_token": MONITOR_TOKEN},
            "notify": {"webpush": True, "webpush_allow_http": True},
            "log_level": "WARNING",
        }
        import yaml

        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.start_gateway()

    def stop(self) -> None:
        self.stop_gateway()
        self.mosquitto.stop()


def _call(port: int, path: str, body: bytes, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", body, headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def subscribe_everyone(port: int, push: PushService) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/push/vapid-public-key") as r:
        push.vapid_public_key = json.loads(r.read())["public_key"]
    for person in PEOPLE:
        form = f"username={person}&password={PASSWORD}".encode()
        token = _call(
            port, "/auth/login", form, {"Content-Type": "application/x-www-form-urlencoded"}
        )["access_token"]
        _call(
            port,
            "/push/subscriptions",
            json.dumps(push.subscribe()).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )


def measure(stack: Stack, push: PushService, alarms: int, interval_s: float) -> list[float]:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"push-bench-{time.time_ns()}")
    pub.connect("127.0.0.1", stack.mosquitto.port)
    pub.loop_start()
    sent: dict[str, float] = {}
    for d in range(1, alarms + 1):
        device = f"SD-LG-{d:06d}"
        payload = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": d, "event": "alarm"})
        sent[device] = time.monotonic()
        pub.publish(f"safety/demo/smoke/{device}/event", payload, qos=1)
        time.sleep(interval_s)
    first: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(first) < alarms:
        for p in push.accepted:
            device = (p.payload or {}).get("incident", {}).get("device")
            if device in sent and p.at < first.get(device, math.inf):
                first[device] = p.at
        time.sleep(0.1)
    pub.loop_stop()
    pub.disconnect()
    if push.refused:
        print(f"  {len(push.refused)} pushes refused by the push service: {push.refused[0].error}")
    if len(first) < alarms:
        print(f"  {alarms - len(first)} alarms reached no phone within 30 s")
    return sorted((first[d] - sent[d]) * 1000 for d in first)


def report(latencies: list[float], alarms: int) -> None:
    n = len(latencies)
    if not n:
        print("no pushes arrived")
        return
    pct = lambda q: latencies[max(0, math.ceil(q * n) - 1)]  # noqa: E731  (nearest rank)
    print(
        f"alarm → Web Push request at the push service: n={n}/{alarms}  p50 {pct(0.5):.1f} ms  "
        f"p90 {pct(0.9):.1f} ms  p99 {pct(0.99):.1f} ms  max {latencies[-1]:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alarms", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between alarms")
    args = ap.parse_args()
    push, server = start_push_service()
    with tempfile.TemporaryDirectory(prefix="push-latency-") as tmp:
        stack = PushStack(Path(tmp), args.alarms, hash_password(PASSWORD))
        stack.start()
        try:
            subscribe_everyone(stack.api_port, push)
            time.sleep(1)
            report(measure(stack, push, args.alarms, args.interval), args.alarms)
            devices = Counter(
                (p.payload or {}).get("incident", {}).get("device") for p in push.accepted
            )
            spread = dict(sorted(Counter(devices.values()).items()))
            print(
                f"  pushes accepted: {len(push.accepted)} ({{pushes per alarm: alarms}} {spread})"
            )
            log = (Path(tmp) / "gateway.log").read_text(errors="replace").splitlines()
            warnings = [line for line in log if "WARNING" in line or "ERROR" in line]
            print(f"  gateway warnings/errors: {len(warnings)}")
            for line in warnings[:3]:
                print("   ", line[:200])
        finally:
            stack.stop()
            server.shutdown()


if __name__ == "__main__":
    main()
