"""The baseline: what a community integrator would write in an afternoon instead of the gateway.

    .venv/bin/python benchmarks/baseline.py --port 1883 --influx http://127.0.0.1:8086 \\
        --db baseline --status /tmp/baseline.json

A plain paho subscriber on ``safety/+/+/+/+`` (QoS 1) that turns every native message into an
InfluxDB line and writes them in batches (5,000 lines or 200 ms, whichever first) from a
writer thread, and pages on one threshold: a smoke ``alarm`` or SOS ``button_pressed`` event,
or a charger port above 1,200 W, publishes one message to the site's duty topic
``safety/{site}/workers/baseline/incidents`` (once per device). No registry, no validation
beyond JSON, no incidents, no escalation, no acknowledgement after storing (paho acknowledges
on receipt). benchmarks/fleet_bench.py runs it on the same broker and influxd right before the
gateway, so the two are compared on the same machine on the same day.

Every 0.25 s it rewrites ``--status`` with its counters (received, stored, paged, errors).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

PAGE_EVENTS = {"alarm", "button_pressed"}
POWER_LIMIT_W = 1200.0


def _tag(value: str) -> str:
    return value.replace(",", r"\,").replace(" ", r"\ ").replace("=", r"\=")


def line_of(topic: str, payload: bytes) -> tuple[str | None, str | None]:
    """(line protocol, device to page or None) for one message; (None, None) if unusable."""
    parts = topic.split("/")
    if len(parts) != 5:
        return None, None
    _root, site, device_type, device, kind = parts
    try:
        body = json.loads(payload)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    fields = []
    for key, value in body.items():
        if key == "ts":
            continue
        if isinstance(value, bool):
            fields.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, int | float):
            fields.append(f"{key}={float(value)}")
        elif isinstance(value, str):
            fields.append(f'{key}="{value}"')
    if not fields:
        return None, None
    ts = body.get("ts")
    ts_ms = int(ts) if isinstance(ts, int | float) else int(time.time() * 1000)
    measurement = device_type if kind == "telemetry" else f"{device_type}_{kind}"
    line = f"{measurement},site={_tag(site)},device={_tag(device)} {','.join(fields)} {ts_ms}"
    page = None
    if kind == "event" and body.get("event") in PAGE_EVENTS:
        page = f"{site}/{device}"
    power = body.get("power_w")
    if isinstance(power, int | float) and power > POWER_LIMIT_W:
        page = f"{site}/{device}"
    return line, page


class Baseline:
    def __init__(self, port: int, influx: str, db: str, status: Path) -> None:
        self.influx, self.db, self.status = influx, db, status
        self.received = self.stored = self.paged = self.errors = 0
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._paged: set[str] = set()
        self._stop = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="baseline-bench")
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = lambda c, *_: c.subscribe("safety/+/+/+/+", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        if "/workers/" in msg.topic or msg.topic.endswith("/cmd"):
            return
        self.received += 1
        line, page = line_of(msg.topic, msg.payload)
        if line is not None:
            with self._lock:
                self._lines.append(line)
        if page is not None and page not in self._paged:
            self._paged.add(page)
            site, device = page.split("/", 1)
            body = json.dumps({"device_id": device, "text": f"报警 {device}"}, ensure_ascii=False)
            self.client.publish(f"safety/{site}/workers/baseline/incidents", body, qos=1)
            self.paged += 1

    def _writer(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline and len(self._lines) < 5000:
                time.sleep(0.01)
            with self._lock:
                batch, self._lines = self._lines, []
            if not batch:
                continue
            request = urllib.request.Request(
                f"{self.influx}/write?db={self.db}&precision=ms", data="\n".join(batch).encode()
            )
            try:
                urllib.request.urlopen(request, timeout=30).close()
                self.stored += len(batch)
            except OSError:
                self.errors += 1
                with self._lock:  # keep them and retry
                    self._lines = batch + self._lines
                time.sleep(0.5)

    def _report(self) -> None:
        while not self._stop.is_set():
            data = {"received": self.received, "stored": self.stored, "paged": self.paged,
                    "errors": self.errors, "pid": os.getpid()}
            tmp = self.status.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.status)
            time.sleep(0.25)

    def run(self) -> None:
        threading.Thread(target=self._writer, daemon=True).start()
        threading.Thread(target=self._report, daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        self.client.loop_start()
        while not self._stop.is_set():
            time.sleep(0.1)
        self.client.loop_stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--influx", required=True)
    ap.add_argument("--db", default="baseline")
    ap.add_argument("--status", type=Path, required=True)
    args = ap.parse_args()
    Baseline(args.port, args.influx, args.db, args.status).run()


if __name__ == "__main__":
    main()
