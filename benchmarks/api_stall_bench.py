"""How long the operator API's heaviest reads hold the gateway's event loop (SQLite, or
PostgreSQL with ``--postgres``).

With SQLite the gateway runs its database work inline on the event loop (core/db.py), so a
report query is time the alarm path cannot run. This fills a database with a month of
incidents (opened, acknowledged, resolved, as the pipeline and the workers do), then calls
the board's and reports' endpoints in-process and records, for each, its time and the longest
stretch the loop did not get a turn (a 1 ms heartbeat task measures it).

    .venv/bin/python benchmarks/api_stall_bench.py [--incidents 3000] [--repeat 7] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.incidents.lifecycle import Resolution
from api.app import create_app
from core.clock import ManualClock
from gateway.runtime import tune_gc
from tests.api.support import DEMO_PASSWORD, SITE, build_env, prepare_db
from tests.conftest import pg_admin_url

CST = timezone(timedelta(hours=8))
MONTH_START = datetime(2025, 11, 1, tzinfo=CST)


class Heartbeat:
    """The longest gap between turns of a task that asks for one every millisecond."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.001)
            last = now

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.worst


async def fill(env, count: int) -> None:  # type: ignore[no-untyped-def]
    devices = [ctx.device_id for ctx in env.registry.devices(SITE)]
    step = int(timedelta(days=29).total_seconds() * 1000) // count
    categories = list(Resolution)
    for i in range(count):
        env.clock.advance(step)
        incident_id = await env.open_incident(devices[i % len(devices)])
        await env.services.incidents.acknowledge(incident_id, "zhang-min", "在路上")
        await env.services.incidents.resolve(incident_id, "zhang-min", categories[i % 4], "已处理")


async def fresh_postgres() -> str:
    import asyncpg

    name = f"sg_stall_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = pg_admin_url().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_postgres(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--incidents", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--postgres", action="store_true",
                    help="a fresh database on the PostgreSQL at SAFETY_TEST_PG_URL instead of SQLite")
    ap.add_argument("--profile", metavar="PATH", help="cProfile this endpoint (e.g. /api/v1/reports/ledger?month=2025-11)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-stall-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/gateway.db"
        if args.postgres:
            url = await fresh_postgres()
        print(f"database: {url.split(':', 1)[0]}")
        await prepare_db(url)
        clock = ManualClock(int(MONTH_START.timestamp() * 1000))
        env = await build_env(url, Path(tmp), clock)
        t = time.perf_counter()
        await fill(env, args.incidents)
        print(f"{args.incidents} incidents opened, acknowledged and resolved over a month "
              f"in {time.perf_counter() - t:.1f} s")
        clock.set(int((MONTH_START + timedelta(days=30)).timestamp() * 1000))
        # As in the gateway, device status comes from the pipeline's in-memory board.
        services = dataclasses.replace(
            env.services,
            device_status=lambda _site, _device, now: {
                "online": True, "last_seen_ms": now, "battery_pct": 90.0},
        )
        app = create_app(services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            r = await client.post("/api/v1/auth/login",
                                  data={"username": "duty-sun", "password": DEMO_PASSWORD})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            start = int(MONTH_START.timestamp() * 1000)
            end = start + 30 * 86_400_000
            calls = {
                "incidents (board list, 200 newest)": "/api/v1/incidents",
                "incidents open (board)": "/api/v1/incidents?status=open&status=acknowledged",
                "stats for the month": f"/api/v1/stats?start_ms={start}&end_ms={end}",
                "overview": "/api/v1/stats/overview",
                "monthly ledger": "/api/v1/reports/ledger?month=2025-11",
                "monthly ledger CSV": "/api/v1/reports/ledger.csv?month=2025-11",
                "trend, 6 months": "/api/v1/reports/trend?month=2025-11",
                "device ledger CSV": "/api/v1/devices/ledger.csv",
            }
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                await client.get(args.profile, headers=headers)
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
                return
            tune_gc()  # as the gateway does once started
            beat = Heartbeat()
            print(f"{'endpoint':38} {'time ms (median)':>17} {'loop held ms (median / max)':>28}")
            for name, path in calls.items():
                times, stalls = [], []
                for _ in range(args.repeat):
                    beat.start()
                    await asyncio.sleep(0.005)
                    t = time.perf_counter()
                    r = await client.get(path, headers=headers)
                    times.append(time.perf_counter() - t)
                    stalls.append(await beat.stop())
                    if r.status_code != 200:
                        raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
                print(f"{name:38} {statistics.median(times) * 1000:17.1f} "
                      f"{statistics.median(stalls) * 1000:19.1f} / {max(stalls) * 1000:6.1f}")
        await env.close()
        if args.postgres:
            await drop_postgres(url.rsplit("/", 1)[1])


if __name__ == "__main__":
    asyncio.run(main())
