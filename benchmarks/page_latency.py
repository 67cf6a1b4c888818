"""Alarm-to-SMS latency: a smoke alarm published → the SendSms request at the SMS provider.

    .venv/bin/python benchmarks/page_latency.py [--alarms 100] [--interval 0.1]

Starts Mosquitto, influxd and the gateway (a separate process) over the load-test community,
whose grid workers and duty officer have SMS numbers, with Alibaba Cloud SMS configured
against the signature-checking stand-in of tests/alerting/notify/providers.py (a real HTTP
server in this process; the gateway's official SDK signs every request and the server checks
it). Each alarm is an ``alarm`` event of a different detector, so each opens a new critical
incident and texts that grid's worker and the duty officer. Latency = publish → the first
accepted SendSms request naming that incident (incidents are mapped to detectors through the
gateway's API afterwards). Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from _stack import MONITOR_TOKEN, Stack, bench_community
from alarm_latency import Listener
from paho.mqtt.enums import CallbackAPIVersion

from tests.alerting.notify.providers import Aliyun, serve

TEMPLATES = {"critical": "SMS_1", "major": "SMS_2", "minor": "SMS_3"}
TOKEN = "bench-board-token-0123456789abcdef0123456789"


def sms_community(path: Path, devices: int) -> None:
    bench_community(path, devices)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    for i, person in enumerate(spec["people"]):
        person["channels"]["sms"] = f"1380000{i:04d}"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")


def start(stack: Stack, work: Path, devices: int, notify: dict[str, object]) -> None:
    """Broker and gateway only: the embedded time-series store (pages never wait on storage,
    and this way the benchmark needs no influxd)."""
    stack.mosquitto.start()
    community = work / "community.yaml"
    sms_community(community, devices)
    config = {
        "mode": "development",
        "data_dir": str(work / "gateway"),
        "community_file": str(community),
        "mqtt": {"url": stack.mosquitto.url, "client_id": "gateway-bench"},
        "database": {"url": f"sqlite+aiosqlite:///{work / 'gateway.db'}"},
        "timeseries": {"backend": "embedded"},
        "api": {"port": stack.api_port, "metrics_token": MONITOR_TOKEN, "service_tokens": {"bench": TOKEN}},
        "notify": notify,
        "log_level": "WARNING",
    }
    stack.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    stack.start_gateway()


def incidents_by_device(stack: Stack) -> dict[int, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.api_port}/api/v1/incidents?limit=1000",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return {i["id"]: i["device_id"] for i in json.loads(r.read())["data"]}


def report(name: str, lat: list[float], alarms: int) -> None:
    n = len(lat)
    if not n:
        print(f"{name}: nothing measured")
        return
    pct = lambda q: lat[max(0, math.ceil(q * n) - 1)]  # noqa: E731  (nearest rank)
    print(f"{name}: n={n} of {alarms}  p50 {pct(0.5):.1f} ms  p90 {pct(0.9):.1f} ms  "
          f"p99 {pct(0.99):.1f} ms  max {lat[-1]:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alarms", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between alarms")
    args = ap.parse_args()
    provider = Aliyun(templates={c: {"severity", "title", "location", "time", "incident"} for c in TEMPLATES.values()})
    with tempfile.TemporaryDirectory(prefix="page-latency-") as tmp, serve(provider.handle) as server:
        work = Path(tmp)
        stack = Stack(work, args.alarms)
        start(stack, work, args.alarms, {
            "aliyun_sms": {
                "access_key_id": provider.access_key_id,
                "access_key_secret": provider.access_key_secret,
                "sign_name": "阳光社区",
                "endpoint": server.host,
                "protocol": "http",
                "templates": TEMPLATES,
            }
        })
        listener = Listener(stack.mosquitto.port)  # the same alarms' app pages, for comparison
        try:
            time.sleep(2)
            pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"page-pub-{time.time_ns()}")
            pub.connect("127.0.0.1", stack.mosquitto.port)
            pub.loop_start()
            sent: dict[str, float] = {}
            seq0 = 10**12 + time.time_ns() // 1_000_000
            for i in range(args.alarms):
                device = f"SD-LG-{i + 1:06d}"
                payload = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": seq0 + i, "event": "alarm"})
                sent[device] = time.monotonic()
                pub.publish(f"safety/demo/smoke/{device}/event", payload, qos=1)
                time.sleep(args.interval)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(server.accepted()) < 2 * args.alarms:
                time.sleep(0.1)
            pub.loop_stop()
            pub.disconnect()
            devices = incidents_by_device(stack)
            first: dict[str, float] = {}
            for s in server.accepted():
                device = devices.get(int(json.loads(s.query["TemplateParam"])["incident"]))
                if device is not None and device not in first:
                    first[device] = s.at
            sms = sorted((first[d] - sent[d]) * 1000 for d in sent if d in first)
            app = sorted((listener.first[d] - sent[d]) * 1000 for d in sent if d in listener.first)
            refused = len(server.seen) - len(server.accepted())
            report("alarm → SendSms at the provider", sms, args.alarms)
            report("alarm → worker's app page (MQTT)", app, args.alarms)
            print(f"  SMS requests accepted {len(server.accepted())}, refused {refused}")
        finally:
            listener.stop()
            stack.stop_gateway()
            stack.mosquitto.stop()


if __name__ == "__main__":
    main()
