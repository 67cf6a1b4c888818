"""What the periodic rule-state checkpoint costs a big fleet, each minute, on each database.

    .venv/bin/python benchmarks/checkpoint_cost.py --devices 100000 --minutes 20

Every charger port is heard once a minute (its offline timer's last-seen time refreshed) and
the once-a-minute checkpoint runs, first as it ran before 2026-12-04 (every refreshed time
rewritten: ``RuleEngine.checkpoint``) and then as ``persist`` runs it now (a time rewritten
once its stored copy is ``REFRESH_REWRITE_MS`` old), on the embedded SQLite and on the local
PostgreSQL (``SAFETY_TEST_PG_URL``). Printed per database: rows a minute, the gateway's CPU
(this process) and the database server's CPU (every ``postgres`` process) a minute, averaged
over the minutes after the first ``REFRESH_REWRITE_MS`` (the steady state), and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "alerting" / "rules"))

from fleet_bench import cpu_s, drop_db, make_db_url  # noqa: E402
from rules_support import FLEET, T0, ctx, reading  # noqa: E402

from alerting.rules import RuleEngine, load_rules  # noqa: E402
from alerting.rules.engine import REFRESH_REWRITE_MS  # noqa: E402
from alerting.state import SqlAlertStateStore  # noqa: E402
from core.db import Base, make_engine, make_sessionmaker  # noqa: E402

MIN = 60_000


def db_server_cpu_s() -> float:
    """CPU seconds of every PostgreSQL server process on this machine."""
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                total += cpu_s(int(comm.parent.name))
        except OSError:
            continue  # the process ended meanwhile
    return total


async def run(url: str, devices: int, minutes: int, *, coarse: bool) -> tuple[float, float, float]:
    """(rows, gateway CPU s, database server CPU s) a minute in the steady state."""
    db = make_engine(url)
    async with db.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    store = SqlAlertStateStore(make_sessionmaker(db))
    engine = RuleEngine(load_rules(), grace_ms=0, store=store, checkpoint_ms=MIN)
    await engine.load()
    fleet = [ctx(f"CP-{i:06d}", "charger") for i in range(devices)]
    for device in fleet:
        FLEET[device.device_id] = device
        engine.register_device(device, T0)
    engine.start(T0)
    await engine.persist(T0)  # the first checkpoint: every new timer
    steady = REFRESH_REWRITE_MS // MIN + 1
    rows = gateway = server = 0.0
    for minute in range(1, minutes + 1):
        now = T0 + minute * MIN
        for device in fleet:
            r = reading(device.device_id, "telemetry", now - 1000, port=1, temp_c=30,
                        leak_ma=0, power_w=200)
            engine.on_reading(r, device, now - 1000)
        before_rows, cpu0, srv0 = store.rows, time.process_time(), db_server_cpu_s()
        if coarse:
            await engine.persist(now)
        else:
            await engine.checkpoint(now)
        if minute > steady:
            rows += store.rows - before_rows - 1  # less the marker
            gateway += time.process_time() - cpu0
            server += db_server_cpu_s() - srv0
    await db.dispose()
    n = max(1, minutes - steady)
    return rows / n, gateway / n, server / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    if args.minutes <= REFRESH_REWRITE_MS // MIN + 1:
        ap.error(f"--minutes must exceed {REFRESH_REWRITE_MS // MIN + 1} to reach the steady state")
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    print(f"{args.devices:,} charger ports, each heard once a minute; a checkpoint a minute; "
          f"averages over minutes {REFRESH_REWRITE_MS // MIN + 2}–{args.minutes}")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as work:
            url, name = make_db_url(kind, Path(work))
            try:
                every = asyncio.run(run(url, args.devices, args.minutes, coarse=False))
                coarse = asyncio.run(run(url, args.devices, args.minutes, coarse=True))
            finally:
                drop_db(name)
        for label, (rows, gw, srv) in (("every time rewritten", every), ("coarse (now)", coarse)):
            print(f"  {kind:8} {label:21} {rows:9,.0f} rows/min  gateway CPU {gw:5.2f} s/min  "
                  f"database server CPU {srv:5.2f} s/min")
        print(f"  {kind:8} ratio, gateway + server CPU: "
              f"{(every[1] + every[2]) / max(1e-9, coarse[1] + coarse[2]):.1f}x less")


if __name__ == "__main__":
    main()
