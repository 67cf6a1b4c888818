"""influxd's CPU per point against the number of series, as installed and with the README's
settings for a large fleet (why the fleet benchmark with 100,000 devices is slower).

    .venv/bin/python benchmarks/influxd_series.py --rate 8000 --seconds 240 \\
        --series 20000,200000 [--settings defaults,large-fleet]

For each setting and series count: a fresh influxd, every series written once, then points
in 5,000-line batches (as the gateway writes them: two series per device, telemetry and
heartbeat, on the smoke detector's fields) at ``--rate`` points a second for ``--seconds``.
Prints influxd's CPU µs per point, the slowest write and its RSS. Run long enough for at
least one cache snapshot (128 MiB at 8,000 points/s takes about two minutes), or the larger
setting only defers its work.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fleet_bench import cpu_s, rss_mib

from tests.services import LARGE_FLEET, TAG_VALUES_UNCAPPED, Influxd

BATCH = 5000


def lines(series: int, first: int, count: int, ts_ms: int) -> bytes:
    out = []
    for i in range(first, first + count):
        s = i % series
        kind = "telemetry" if s % 2 else "heartbeat"
        out.append(
            f"smoke,device=sd{s // 2:06d},grid=g{s % 40},kind={kind},site=demo "
            f"smoke_obscuration={random.random():.3f},temperature_c=21.5,battery_pct=88i,"
            f"seq={i}i {ts_ms + i // series}"
        )
    return "\n".join(out).encode()


def post(url: str, body: bytes) -> float:
    start = time.monotonic()
    request = urllib.request.Request(f"{url}/write?db=bench&precision=ms", data=body)
    try:
        urllib.request.urlopen(request, timeout=60).close()
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"influxd refused a batch: {exc.read()[:300]!r}") from exc
    return time.monotonic() - start


def measure(work: Path, series: int, rate: int, seconds: float, large_fleet: bool) -> str:
    # Defaults but for the tag-value cap, so 100,000+ devices of one type can be written.
    influxd = Influxd(work, data=LARGE_FLEET if large_fleet else TAG_VALUES_UNCAPPED)
    influxd.start()
    try:
        influxd.create_database("bench")
        pid = influxd.proc.pid  # type: ignore[union-attr]
        base_ms = int(time.time() * 1000) - 3_600_000
        written = 0
        while written < series:  # every series exists before the measurement
            post(influxd.url, lines(series, written, BATCH, base_ms))
            written += BATCH
        time.sleep(2)
        cpu0 = cpu_s(pid)
        start = next_at = time.monotonic()
        points, slowest = 0, 0.0
        while time.monotonic() - start < seconds:
            slowest = max(slowest, post(influxd.url, lines(series, written, BATCH, base_ms)))
            written += BATCH
            points += BATCH
            next_at += BATCH / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        elapsed = time.monotonic() - start
        cpu = cpu_s(pid) - cpu0
        rss = rss_mib(pid)[0]
    finally:
        influxd.stop()
    setting = "large-fleet" if large_fleet else "defaults"
    return (f"{setting:11s} {series:>8,} series  {points / elapsed:>7,.0f} points/s  "
            f"influxd {1e6 * cpu / points:5.1f} µs/point  slowest write {1000 * slowest:4.0f} ms  "
            f"RSS {rss:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=8000)
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--series", default="20000,200000")
    ap.add_argument("--settings", default="defaults,large-fleet")
    args = ap.parse_args()
    with TemporaryDirectory(prefix="influxd-series-") as tmp:
        for setting in args.settings.split(","):
            for series in (int(x) for x in args.series.split(",")):
                work = Path(tmp) / f"{setting}-{series}"
                print(measure(work, series, args.rate, args.seconds, setting == "large-fleet"),
                      flush=True)


if __name__ == "__main__":
    main()
