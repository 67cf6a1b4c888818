"""Gateway start-up with a large registered fleet (issue 18: < 30 s with 100,000 devices).

    .venv/bin/python benchmarks/startup.py --devices 100000 [--db postgres]
    .venv/bin/python benchmarks/startup.py --devices 100000 --profile   # where the time goes

The fleet is the fleet benchmark's (benchmarks/fleet_bench.py: 35 % smoke, 10 % SOS, 15 %
gates, 40 % charger ports, 50 buildings, 4 grids), registered the production way: the devices
in the community's CSV device ledger (台账), which the community file lists under
``device_ledgers:``; the gateway is configured with the file and imports it at its first start
(``--inline-yaml``: every device written in the YAML file itself instead). Three starts of a
separate ``python -m gateway run`` process are timed from process start to MQTT connected
(its /health): the first (empty database: the file is imported), a restart with the same file
configured (unchanged: the registry is read from the database), and a restart with no file.
With ``--profile`` the same three starts run in this process under pyinstrument instead
(``Gateway.start()`` only), and the slowest calls are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _stack import MONITOR_TOKEN  # noqa: E402
from fleet_bench import (  # noqa: E402
    BUILDINGS,
    GRIDS,
    device_id,
    drop_db,
    make_db_url,
    type_of,
    write_community,
)

from tests.services import Mosquitto, free_port  # noqa: E402


def write_ledger_community(path: Path, devices: int) -> None:
    """The community file with no devices, and its device ledger CSV beside it."""
    write_community(path, 0, 0)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["device_ledgers"] = ["device-ledger.csv"]
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with (path.parent / "device-ledger.csv").open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["device_id", "device_type", "grid", "building", "location"])
        for d in range(devices):
            b = d % BUILDINGS + 1
            out.writerow([device_id(d), type_of(d)[0], f"g{b % GRIDS + 1}", f"b{b:02d}", f"{b}号楼"])


def config(work: Path, db_url: str, community: Path | None, mqtt_url: str, port: int) -> dict:  # type: ignore[type-arg]
    return {
        "mode": "development",
        "data_dir": str(work / "gateway"),
        "community_file": str(community) if community else None,
        "mqtt": {"url": mqtt_url, "client_id": "gateway-startup"},
        "database": {"url": db_url},
        "timeseries": {"backend": "embedded"},
        "api": {"port": port, "metrics_token": MONITOR_TOKEN},
        "log_level": "WARNING",
    }


def start_process(work: Path, values: dict) -> float:  # type: ignore[type-arg]
    """Seconds from process start to MQTT connected; the process is stopped afterwards."""
    path = work / "gateway.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(path)],
                            stdout=(work / "gateway.log").open("ab"), stderr=subprocess.STDOUT,
                            cwd=ROOT)
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - t0 > 900:
                raise RuntimeError("the gateway did not start; see gateway.log")
            request = urllib.request.Request(
                f"http://127.0.0.1:{values['api']['port']}/health",
                headers={"Authorization": f"Bearer {MONITOR_TOKEN}"},
            )
            with contextlib.suppress(OSError, ValueError):
                try:
                    with urllib.request.urlopen(request, timeout=5) as r:
                        body = json.loads(r.read())
                except urllib.error.HTTPError as exc:
                    body = json.loads(exc.read())
                if body["components"]["mqtt"]["status"] == "ok":
                    return time.monotonic() - t0
            time.sleep(0.1)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()


def start_profiled(values: dict, label: str) -> float:  # type: ignore[type-arg]
    from pyinstrument import Profiler

    from gateway.app import Gateway
    from gateway.settings import Settings

    async def run() -> float:
        gateway = Gateway(Settings(**values))
        t0 = time.monotonic()
        await gateway.start()
        took = time.monotonic() - t0
        await gateway.db.dispose()
        return took

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    took = asyncio.run(run())
    profiler.stop()
    print(f"--- {label}: Gateway.start() {took:.1f} s")
    print(profiler.output_text(unicode=True, color=False, show_all=False, time="seconds"))
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--profile", action="store_true", help="in-process starts under pyinstrument")
    ap.add_argument("--inline-yaml", action="store_true",
                    help="every device in the community YAML instead of its CSV ledger")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        community = work / "community.yaml"
        if args.inline_yaml:
            write_community(community, args.devices, 0)
        else:
            write_ledger_community(community, args.devices)
        db_url, pg_name = make_db_url(args.db, work)
        mosquitto = Mosquitto(work / "mosquitto", free_port())
        mosquitto.start()
        try:
            starts = (("first start (imports the community file)", community),
                      ("restart, same community file configured", community),
                      ("restart, no community file", None))
            print(f"{args.devices:,} registered devices "
                  f"({'in the YAML' if args.inline_yaml else 'in the CSV ledger'}), database {args.db}, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            for label, file in starts:
                values = config(work, db_url, file, mosquitto.url, free_port())
                took = start_profiled(values, label) if args.profile else start_process(work, values)
                print(f"  {label}: {took:.1f} s", flush=True)
        finally:
            mosquitto.stop()
            drop_db(pg_name)


if __name__ == "__main__":
    main()
