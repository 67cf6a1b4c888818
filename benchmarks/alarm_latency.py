"""Alarm-to-notification latency: a smoke alarm published → the incident on a worker's topic.

    .venv/bin/python benchmarks/alarm_latency.py [--alarms 300] [--interval 0.1] [--rate 15000]

Starts Mosquitto, influxd and the gateway (a separate process, as in ingest_bench.py) over the
load-test community, whose grid workers have MQTT channels. A subscriber listens on
``safety/demo/workers/+/incidents``; each alarm is an ``alarm`` event of a different smoke
detector (so each opens a new critical incident and pages that grid's worker), ts = now and a
distinct seq. Latency = publish → first message on a worker topic naming that detector.
Measured once idle and once while the C load generator pushes telemetry at ``--rate`` msg/s
(QoS 1, paced) for other detectors. Percentiles are nearest-rank (p99 of 300 alarms is the
third slowest). Also prints the rule-evaluation cost per reading.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from _stack import Stack, build_loadgen
from paho.mqtt.enums import CallbackAPIVersion

TELEMETRY_DEVICES = 1000  # SD-LG-000001…001000 carry the load; alarms use the ones after
_DEVICE = re.compile(rb"SD-LG-\d{6}")


class Listener:
    """Records when the first worker message for each device arrives."""

    def __init__(self, port: int) -> None:
        self.first: dict[str, float] = {}
        self.messages = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lat-sub-{time.time_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe("safety/demo/workers/+/incidents", 1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber did not get its SUBACK")

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        at = time.monotonic()
        device = _device_of(msg.payload)
        with self._lock:
            self.messages += 1
            if device is not None and device not in self.first:
                self.first[device] = at

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _device_of(payload: bytes) -> str | None:
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("device_id", "device"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("id") or value.get("device_id")
            if isinstance(value, str):
                return value
    m = _DEVICE.search(payload)
    return m.group().decode() if m else None


def measure(stack: Stack, listener: Listener, devices: list[str], interval_s: float) -> list[float]:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lat-pub-{time.time_ns()}")
    pub.connect("127.0.0.1", stack.mosquitto.port)
    pub.loop_start()
    sent: dict[str, float] = {}
    seq0 = 10**12 + time.time_ns() // 1_000_000
    for i, device in enumerate(devices):
        payload = json.dumps({"ts": time.time_ns() // 1_000_000, "seq": seq0 + i, "event": "alarm"})
        sent[device] = time.monotonic()
        pub.publish(f"safety/demo/smoke/{device}/event", payload, qos=1)
        time.sleep(interval_s)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(d in listener.first for d in devices):
        time.sleep(0.05)
    pub.loop_stop()
    pub.disconnect()
    missing = [d for d in devices if d not in listener.first]
    if missing:
        print(f"  {len(missing)} alarms got no worker message within 30 s: {missing[:5]} …")
    return sorted((listener.first[d] - sent[d]) * 1000 for d in devices if d in listener.first)


def report(name: str, latencies: list[float]) -> None:
    if not latencies:
        print(f"{name}: no latencies measured")
        return
    n = len(latencies)
    pct = lambda q: latencies[max(0, math.ceil(q * n) - 1)]  # noqa: E731  (nearest rank)
    print(f"{name}: n={n}  p50 {pct(0.50):.1f} ms  p90 {pct(0.90):.1f} ms  p99 {pct(0.99):.1f} ms  "
          f"max {latencies[-1]:.1f} ms  (slowest: {', '.join(f'{x:.0f}' for x in latencies[-4:])})")


def rule_cost() -> None:
    root = Path(__file__).resolve().parent
    out = subprocess.run(
        [str(root.parent / ".venv" / "bin" / "python"), str(root / "rules_bench.py"), "10000", "100000"],
        capture_output=True, text=True, check=False, cwd=root.parent,
    )
    print("rule evaluation cost (benchmarks/rules_bench.py):")
    for line in out.stdout.splitlines():
        print("  " + line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alarms", type=int, default=300, help="alarms per run (one per detector)")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between alarms")
    ap.add_argument("--rate", type=int, default=15000, help="telemetry msg/s during the load run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alarm-latency-") as tmp:
        work = Path(tmp)
        loadgen = build_loadgen(work)
        stack = Stack(work, TELEMETRY_DEVICES + 2 * args.alarms)
        stack.start()
        listener = Listener(stack.mosquitto.port)
        try:
            ids = [f"SD-LG-{d:06d}" for d in range(TELEMETRY_DEVICES + 1,
                                                  TELEMETRY_DEVICES + 2 * args.alarms + 1)]
            time.sleep(2)
            report("idle", measure(stack, listener, ids[: args.alarms], args.interval))
            # Load: paced telemetry for long enough to cover the alarms, warmed up for 3 s.
            seconds = args.alarms * args.interval + 10
            gen = subprocess.Popen(
                [str(loadgen), "-p", str(stack.mosquitto.port), "-n", str(int(args.rate * seconds)),
                 "-m", str(TELEMETRY_DEVICES), "-q", "1", "-s", "demo", "-r", str(args.rate)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            time.sleep(3)
            before = stack.health()["components"]["ingest"]["received"]
            cpu0, t0 = stack.cpu_seconds(), time.monotonic()
            loaded = measure(stack, listener, ids[args.alarms :], args.interval)
            t1, cpu1 = time.monotonic(), stack.cpu_seconds()
            after = stack.health()["components"]["ingest"]["received"]
            report(f"under load ({args.rate:,} msg/s telemetry offered)", loaded)
            got = (after - before) / (t1 - t0)
            print(f"  gateway received {got:,.0f} msg/s during the loaded run, "
                  f"CPU {100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of a core")
            out = gen.communicate(timeout=seconds + 60)[0].strip().splitlines()
            print(f"  load generator: {out[-1].strip() if out else '(no output)'}")
            print(f"  worker messages received: {listener.messages}")
        finally:
            listener.stop()
            stack.stop()
    rule_cost()


if __name__ == "__main__":
    main()
