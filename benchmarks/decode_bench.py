"""Decode throughput: 200k realistic native messages through ProfileRegistry.decode.

Run: .venv/bin/python benchmarks/decode_bench.py [count]
"""

from __future__ import annotations

import random
import sys
import time

import orjson

from device_profiles import load_profiles

BASE_TS = 1_732_250_000_000


def _messages(count: int, devices_per_type: int = 500) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    out: list[tuple[str, bytes]] = []
    seqs: dict[str, int] = {}
    for index in range(count):
        device_type = rng.choices(["smoke", "sos", "gate", "charger"], [3, 1, 2, 4])[0]
        device = f"{device_type[:2].upper()}-{rng.randrange(devices_per_type):05d}"
        site = f"site-{rng.randrange(8)}"
        seq = seqs[device] = seqs.get(device, 0) + 1
        ts = BASE_TS + index
        kind = "event" if rng.random() < 0.05 else "telemetry"
        payload: dict[str, object] = {"ts": ts, "seq": seq}
        if kind == "event":
            payload["event"] = {
                "smoke": "alarm",
                "sos": "button_pressed",
                "gate": "access_granted",
                "charger": "session_start",
            }[device_type]
            if device_type == "gate":
                payload["credential"] = "card"
        elif device_type == "smoke":
            payload.update(
                smoke_dbm=round(rng.uniform(0, 0.1), 3),
                temp_c=round(rng.uniform(15, 35), 1),
                battery_pct=rng.randrange(20, 101),
                rssi_dbm=-rng.randrange(70, 120),
            )
        elif device_type == "sos":
            payload.update(battery_pct=rng.randrange(20, 101), rssi_dbm=-rng.randrange(70, 120))
        elif device_type == "gate":
            payload.update(door_open=rng.random() < 0.1, battery_pct=100)
        else:
            payload.update(
                port=rng.randrange(1, 13),
                state="charging",
                voltage_v=round(rng.uniform(215, 235), 1),
                current_a=round(rng.uniform(0.5, 3), 2),
                power_w=round(rng.uniform(100, 700), 1),
                energy_wh=round(rng.uniform(0, 900), 1),
                temp_c=round(rng.uniform(20, 45), 1),
                leak_ma=round(rng.uniform(0, 3), 2),
            )
        out.append((f"safety/{site}/{device_type}/{device}/{kind}", orjson.dumps(payload)))
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    registry = load_profiles()
    messages = _messages(count)
    now = BASE_TS + count + 1000
    decode = registry.decode
    for topic, payload in messages[:2000]:  # warm up
        decode(topic, payload, now)
    start = time.perf_counter()
    rejected = 0
    for topic, payload in messages:
        if not isinstance(decode(topic, payload, now), list):
            rejected += 1
    elapsed = time.perf_counter() - start
    print(f"decoded {count} native messages in {elapsed:.3f} s ({rejected} rejected)")
    print(f"{count / elapsed:,.0f} messages/s, {elapsed / count * 1e6:.2f} µs/message")


if __name__ == "__main__":
    main()
