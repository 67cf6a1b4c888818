"""Shared fixtures that start real services: Mosquitto, influxd, PostgreSQL, a recording HTTP server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.services import Influxd, Mosquitto, pg_admin_url

T = TypeVar("T")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own: restart it, stop it, its sessions persist across restarts."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd (1.x) for the session; tests use a database of their own."""
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: Influxd) -> str:
    """A fresh InfluxDB database name for one test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    influxd.create_database(name)
    return name


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"


def _on_own_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own in a helper thread.

    Database fixtures may be set up from inside a running test loop (``start_gateway``
    asks for the test's database first), where ``asyncio.run`` refuses to nest.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


@pytest.fixture(scope="session")
def _pg_available() -> bool:
    import asyncpg  # type: ignore[import-untyped]

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(pg_admin_url(), timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return _on_own_loop(probe())


@pytest.fixture
def postgres_url(_pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    if not _pg_available:
        pytest.fail(f"PostgreSQL is not reachable at {pg_admin_url()} (set SAFETY_TEST_PG_URL)")
    name = f"sg_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _on_own_loop(admin(f'CREATE DATABASE "{name}"'))
    base = pg_admin_url().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    _on_own_loop(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test against both relational stores."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    return str(request.getfixturevalue("postgres_url"))


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class RecordingServer:
    """A real HTTP server that records every request and answers with scripted statuses."""

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    # Statuses to answer with, in order; when exhausted, 200.
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered_ok(self) -> list[RecordedRequest]:
        return [r for r in self.requests if getattr(r, "status", 200) < 300]


@pytest.fixture
def recording_http_server() -> Iterator[RecordingServer]:
    rec = RecordingServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with rec.lock:
                status = rec.script.pop(0) if rec.script else 200
                req = RecordedRequest(self.command, self.path, dict(self.headers), body)
                req.status = status  # type: ignore[attr-defined]
                rec.requests.append(req)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted failure"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_PUT = do_POST
        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not getattr(record, "expected", False):
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_logged_exception(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test in which pipeline code logged an unexpected exception.

    "Never stops the pipeline" must not become "hides the bug". Tests that provoke an
    exception on purpose mark themselves with ``@pytest.mark.allow_logged_exceptions``.
    """
    collector = _ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    yield
    root.removeHandler(collector)
    if collector.records and not request.node.get_closest_marker("allow_logged_exceptions"):
        first = collector.records[0]
        pytest.fail(f"unexpected exception logged by {first.name}: {first.getMessage()}")




# -- the gateway itself ----------------------------------------------------------------------

E2E_COMMUNITY = Path(__file__).parent / "e2e" / "community.yaml"
# The gateway bounds its own shutdown (store, then each close); past this a teardown fails
# with the reason instead of hanging the suite.
GATEWAY_STOP_S = 60


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel a running gateway as SIGTERM would and wait, bounded, for its shutdown."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=GATEWAY_STOP_S)
    if not done:
        pytest.fail(f"the gateway did not stop within {GATEWAY_STOP_S} s of being cancelled")
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


@pytest.fixture
async def start_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto
) -> AsyncIterator[object]:
    """Start a Gateway in this test's event loop against the test broker; stopped at teardown.

    ``await start_gateway(**settings_overrides)`` returns the running ``Gateway``.
    """
    from gateway.app import Gateway
    from gateway.settings import Settings

    # A test's database must outlive its gateways: set it up first so it is dropped last,
    # whatever order the test names its fixtures in (a dropped database under a running
    # gateway fails its escalation tick).
    for database in ("db_url", "postgres_url"):
        if database in request.fixturenames:
            request.getfixturevalue(database)

    running: list[tuple[Gateway, asyncio.Task[None]]] = []

    async def start(clock: object | None = None, **overrides: object) -> Gateway:
        values: dict[str, object] = {
            "mode": "development",
            "data_dir": tmp_path / "gateway",
            "community_file": E2E_COMMUNITY,
            "mqtt": {"url": mosquitto.url, "client_id": f"gw-{uuid.uuid4().hex[:6]}"},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
            "timeseries": {"backend": "embedded"},
            "ingest": {"flush_interval_ms": 50},
            "api": {"port": 0},
            "alerting": {"startup_grace_s": 0, "tick_interval_ms": 100},
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        gateway = Gateway(settings) if clock is None else Gateway(settings, clock)  # type: ignore[arg-type]
        task = asyncio.create_task(gateway.run())
        running.append((gateway, task))
        ready = asyncio.create_task(gateway.ready.wait())
        done, _ = await asyncio.wait({ready, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            await task  # raises what broke the start
        assert ready in done, "the gateway did not start within 60 s"
        await asyncio.wait_for(gateway.mqtt.connected.wait(), 20)
        return gateway

    async def stop(gateway: Gateway) -> None:
        """Stop one gateway as SIGTERM would (its persistent MQTT session stays)."""
        for entry in running:
            if entry[0] is gateway:
                running.remove(entry)
                await _stopped(entry[1])
                return

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for _gateway, task in reversed(running):
        await _stopped(task)
