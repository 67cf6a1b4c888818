"""`safety-gateway demo`: an embedded broker, the embedded stores, the sample community and a
simulated fleet, all in one process tree on a fresh machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path

import yaml

from core.clock import AnchoredClock
from gateway.app import Gateway
from gateway.broker import EmbeddedBroker, free_port
from gateway.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).parent / "sample"


def demo_settings(
    data_dir: Path, api_port: int, broker_url: str, protocol: str, rate: float = 1.0
) -> Settings:
    data_dir = data_dir.resolve()
    return Settings(
        mode="demo",
        site="demo",
        data_dir=data_dir,
        community_file=SAMPLE_DIR / "demo-community.yaml",
        mqtt={"url": broker_url, "protocol": protocol, "client_id": "safety-gateway-demo"},
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"},
        timeseries={"backend": "embedded", "embedded_path": data_dir / "timeseries.sqlite3"},
        api={"host": "127.0.0.1", "port": api_port, "secret_key": demo_secret(data_dir)},
        # A short grace so the demo's absence rules show up quickly: a minute, or ten real
        # seconds of a compressed demo (the fleet announces its devices within them).
        # Timers tick every real second, or every 50 ms (3 simulated minutes at 3600x).
        alerting={
            "startup_grace_s": max(60.0, 10.0 * rate),
            "tick_interval_ms": max(50, min(1000, round(60_000 / rate))),
        },
    )


SECRET_FILE = "api-secret"  # noqa: S105 - the file name, not a secret


def demo_secret(data_dir: Path) -> str:
    """The demo's token-signing secret, kept in its data directory (owner-only) so that open
    pages stay logged in across a restart; made on the first start."""
    path = data_dir / SECRET_FILE
    if path.is_file():
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= 32:
            return secret
    secret = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    return secret


CLOCK_FILE = "clock.json"


def demo_clock(data_dir: Path, rate: float) -> AnchoredClock:
    """The demo's clock: real time at ``--rate 1``, else compressed ``rate`` times. Its anchor
    is kept in the data directory, so a restart goes on from where the last run's time is
    (never back), and the fleet and scenarios compute the same "now" from it."""
    path = data_dir / CLOCK_FILE
    clock: AnchoredClock | None = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(path.read_text(encoding="utf-8"))
        clock = AnchoredClock(float(saved["speed"]), int(saved["wall_ms"]), int(saved["sim_ms"]))
    if clock is None:
        clock = AnchoredClock(rate)
    elif clock.speed != rate:
        clock = clock.rebased(rate)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"speed": clock.speed, "wall_ms": clock.wall_ms, "sim_ms": clock.sim_ms}),
        encoding="utf-8",
    )
    return clock


def _logins() -> tuple[str, list[dict[str, str]]]:
    data = yaml.safe_load((SAMPLE_DIR / "demo-logins.yaml").read_text(encoding="utf-8"))
    return str(data["password"]), list(data["accounts"])


def sim_command() -> str:
    """How to call `safety-sim` from where the demo was started: the script beside this
    Python (``.venv/bin/safety-sim`` from the repository root), else ``python -m simulators``."""
    script = Path(sys.executable).with_name("safety-sim")
    if not script.is_file():
        return f"{sys.executable} -m simulators"
    try:
        rel = script.relative_to(Path.cwd())
    except ValueError:
        return str(script)
    return str(rel) if rel.parent != Path(".") else f"./{rel}"


def shown_id(shown: dict[str, dict[str, str]]) -> str:
    account = shown.get("duty_staff") or next(iter(shown.values()), {"id": "duty-sun"})
    return account["id"]


def banner(broker: EmbeddedBroker, gateway: Gateway) -> str:
    password, accounts = _logins()
    api = f"http://127.0.0.1:{gateway.api_port}"
    wanted = {"grid_worker", "duty_staff", "secretary", "admin"}
    shown: dict[str, dict[str, str]] = {}
    for a in accounts:
        if a["role"] in wanted and a["role"] not in shown:
            shown[a["role"]] = a
    lines = [
        "",
        "社区安全网关 demo — community safety gateway is running",
        f"  MQTT broker ({broker.kind}):  mqtt://127.0.0.1:{broker.port}",
        f"  Duty board (值班看板):        {api}/board/",
        f"  Grid-worker view (网格员):    {api}/board/worker.html",
        f"  Monthly ledger (台账):        {api}/board/reports.html",
        f"  API (OpenAPI):               {api}/api/v1/openapi.json",
        f"  Health:                      {api}/health",
        f"  Sample logins (password {password!r}):",
        *(f"    {role:<12} {a['id']}  ({a['name']})" for role, a in shown.items()),
        f"  Try a scenario:  {sim_command()} scenario kitchen-fire --site demo "
        f"--broker mqtt://127.0.0.1:{broker.port} --api {api} --user {shown_id(shown)} "
        f"--password {password}",
        "  Ctrl-C stops everything (buffered readings are flushed first).",
        "",
    ]
    return "\n".join(lines)


async def run_demo(
    *,
    data_dir: Path,
    api_port: int,
    broker_port: int,
    rate: float,
    fleet: bool,
    embedded_broker: str = "auto",
) -> None:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    broker = EmbeddedBroker(data_dir / "broker", free_port(broker_port), embedded_broker)
    await broker.start()
    # amqtt speaks MQTT 3.1.1 only; Mosquitto gets MQTT 5.
    protocol = "5" if broker.kind == "mosquitto" else "3.1.1"
    clock = await asyncio.to_thread(demo_clock, data_dir, rate)
    gateway = Gateway(
        demo_settings(data_dir, free_port(api_port), broker.url, protocol, rate), clock
    )
    simulator: asyncio.subprocess.Process | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(gateway.run(), name="gateway")
            await gateway.ready.wait()
            print(banner(broker, gateway), flush=True)
            if fleet:
                simulator = await _start_fleet(broker.url, clock, data_dir)
    finally:
        if simulator is not None and simulator.returncode is None:
            simulator.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(simulator.wait(), 10)
            print("  simulated fleet stopped", flush=True)
        await broker.stop()
        print(f"  MQTT broker ({broker.kind}) stopped", flush=True)


async def _start_fleet(
    broker_url: str, clock: AnchoredClock, data_dir: Path
) -> asyncio.subprocess.Process:
    """The simulated fleet of the sample community, as its own process (`safety-sim fleet`)."""
    log = await asyncio.to_thread((data_dir / "fleet.log").open, "ab")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "fleet", "--broker", broker_url, "--site", "demo",
        "--from", str(SAMPLE_DIR / "demo-community.yaml"), "--rate", str(clock.speed),
        "--anchor", f"{clock.wall_ms}:{clock.sim_ms}",
        "--duration", str(365 * 24 * 3600), "--qos", "1", "--report-every", "60",
        stdout=log, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C stops the demo, which then stops the fleet
    )
