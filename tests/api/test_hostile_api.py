"""The operator API fuzzed from its own OpenAPI schema, once per caller (a standing hostile suite).

For each caller — every sample-community role, a service token and nobody at all —
schemathesis generates valid and invalid requests for every operation in
``/api/v1/openapi.json`` and sends them to the ASGI application over a real SQLite database
holding the sample community, incidents in grids g1 and g2 and a second site. What a caller
would notice is checked:

- no answer is a server error (5xx), whatever was sent;
- an answer whose status the schema declares has the body the schema declares;
- nobody is shown an incident, device, household, building, grid or silence outside their scope:
  a grid worker only their grids, every person only their own site (every string in every
  body is compared with the identifiers of what lies outside).

Each caller gets a fresh copy of the seeded database: an admin's run deletes and changes rows
(a fuzzed DELETE may well hit ``/grids/demo.g1``), which must not decide what the next caller
can see or leak. Within one caller's run the reading operations come first and the DELETEs
last, so what is seeded is still there while the reads are fuzzed.

Bounded for CI: ``MAX_EXAMPLES`` per operation and generation mode, no deadline, a fixed seed
(``SAFETY_FUZZ_SEED`` explores other cases; ``SAFETY_FUZZ_EXAMPLES`` more of them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

import alerting.incidents.tables
from alerting.incidents.silences import Matcher
from alerting.models import AlertState, AlertTransition, Category, Severity
from api.app import create_app
from core.clock import ManualClock
from gateway.registry import apply, hash_password
from gateway.registry.loader import parse_community
from gateway.registry.tables import Building, Device, Grid, Household, Person
from tests.api.support import DEMO_PASSWORD, SERVICE_TOKEN, USERS, Env, build_env, prepare_db

pytestmark = pytest.mark.slow

NOW_MS = 1_764_000_000_000
MAX_EXAMPLES = int(os.environ.get("SAFETY_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("SAFETY_FUZZ_SEED", "20251124"))
CHECKS = [not_a_server_error, response_schema_conformance]
OTHER_SITE = "xishan"

#: Who calls: a login name of the sample community, the service token, or nobody.
CALLERS: dict[str, str | None] = {
    "admin": USERS["admin"],
    "secretary": USERS["secretary"],
    "duty": USERS["duty"],
    "worker_g1": USERS["worker_g1"],
    "worker_g2": USERS["worker_g2"],
    "leader_b01": USERS["leader_b01"],
    "service": None,
    "anonymous": None,
}

#: What each caller may see, stated here rather than computed by the code under test:
#: (site, grids); None = every site / every grid of the site.
SCOPES: dict[str, tuple[str | None, set[str] | None]] = {
    "admin": (None, None),
    "service": (None, None),
    "secretary": ("demo", None),
    "duty": ("demo", None),
    "worker_g1": ("demo", {"demo.g1"}),
    "worker_g2": ("demo", {"demo.g2"}),
    "leader_b01": ("demo", {"demo.g1"}),  # a building leader answers for the grid of b01
    "anonymous": ("-", set()),  # sees nothing at all
}

# A second site whose grid has the same code as one of the sample community's (g1), so a scope
# that compared grid codes instead of ids would leak it.
OTHER_COMMUNITY: dict[str, Any] = {
    "site": {"code": OTHER_SITE, "name": "西山社区", "timezone": "Asia/Shanghai"},
    "grids": [{"code": "g1", "name": "西山第一网格"}],
    "buildings": [{"code": "x01", "name": "西山1号楼", "grid": "g1"}],
    "households": [
        {"building": "x01", "unit": "1", "room": "101", "flags": ["elderly_alone"],
         "contacts": [{"name": "西山联系人", "relation": "女儿", "phone": "13900009999"}]},
    ],
    "devices": [
        {"id": "xs-smoke-0001", "type": "smoke", "building": "x01", "unit": "1", "room": "101",
         "location": "西山1号楼1单元101室"},
    ],
    "people": [
        {"id": "xs-duty", "name": "西山值班员", "role": "duty_staff", "channels": {"mqtt": True}},
    ],
}


@dataclass(frozen=True)
class Entity:
    """One seeded thing a scope may or may not cover, and the strings that identify it."""

    site: str
    grid: str | None
    marks: frozenset[str]
    incident_id: int | None = None


@dataclass
class Seeded:
    """The template database (copied for each caller) and everything in it a caller may see."""

    db_file: Path
    entities: list[Entity]
    incidents: dict[str, int]  # "g1", "g2", "other" -> incident id

    def outside(self, caller: str) -> list[Entity]:
        site, grids = SCOPES[caller]
        return [
            e for e in self.entities
            if (site is not None and e.site != site)
            or (grids is not None and e.grid not in grids)
        ]


async def _open_incident(env: Env, site: str, device_id: str, title: str) -> int:
    ctx = env.registry.context(site, device_id)
    assert ctx is not None, (site, device_id)
    now = env.clock.now_ms()
    change = await env.incident_service.apply(
        AlertTransition(
            rule_id="smoke.alarm", subject=device_id, site=site, device_id=device_id,
            state=AlertState.FIRING, severity=Severity.CRITICAL, category=Category.SAFETY,
            title=title, at_ms=now, dedupe_key=f"smoke.alarm:{site}:{device_id}",
            reading_ts_ms=now, reading_seq=1,
        ),
        ctx,
    )
    assert change is not None
    return change.incident_id


async def _seed(db_file: Path, work: Path) -> Seeded:
    url = f"sqlite+aiosqlite:///{db_file}"
    await prepare_db(url)
    env = await build_env(url, work, ManualClock(NOW_MS))
    try:
        async with env.services.sessions() as session:
            await apply(session, parse_community(OTHER_COMMUNITY))
            leader = await session.get(Person, USERS["leader_b01"])  # has no password yet
            assert leader is not None
            leader.password_hash = hash_password(DEMO_PASSWORD)
            await session.commit()
        await env.registry.refresh()
        incidents = {
            "g1": await _open_incident(env, "demo", "smk-b01-u1-f1", "hostile-mark 一网格烟感"),
            "g2": await _open_incident(env, "demo", "smk-b04-u1-f1", "hostile-mark 二网格烟感"),
            "g4": await _open_incident(env, "demo", "smk-b10-u1-f1", "hostile-mark 四网格烟感"),
            "other": await _open_incident(env, OTHER_SITE, "xs-smoke-0001", "hostile-mark 西山"),
        }
        for site, value in (("demo", "demo.g1"), ("demo", "demo.g2"), (OTHER_SITE, f"{OTHER_SITE}.g1")):
            await env.services.silences.create(
                site=site, matcher=Matcher.GRID, value=value, ends_at_ms=NOW_MS + 86_400_000,
                actor="admin", reason=f"hostile-mark silence {value}",
            )
        entities = await _entities(env)
    finally:
        await env.close()
    return Seeded(db_file, entities, incidents)


async def _entities(env: Env) -> list[Entity]:
    """Every row with a scope, as the strings a response would carry to show it."""
    rows = alerting.incidents.tables
    out: list[Entity] = []
    async with env.services.sessions() as s:
        grid_of_building = {b.id: b.grid_id for b in await s.scalars(select(Building))}
        for g in await s.scalars(select(Grid)):
            out.append(Entity(g.site, g.id, frozenset({g.id, g.name})))
        for b in await s.scalars(select(Building)):
            out.append(Entity(b.site, b.grid_id, frozenset({b.id, b.name})))
        for h in await s.scalars(select(Household)):
            out.append(Entity(h.site, grid_of_building[h.building_id], frozenset({h.id})))
        for d in await s.scalars(select(Device)):
            marks = {d.device_id} | ({d.vendor_identity} if d.vendor_identity else set())
            out.append(Entity(d.site, d.grid_id, frozenset(marks)))
        for i in await s.scalars(select(rows.IncidentRow)):
            out.append(Entity(i.site, i.grid_id, frozenset({i.title, i.dedupe_key}), i.id))
        for sl in await s.scalars(select(rows.SilenceRow)):
            out.append(Entity(sl.site, sl.value, frozenset({sl.reason})))
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    work = tmp_path_factory.mktemp("hostile-template")
    return asyncio.run(_seed(work / "gateway.db", work))


class SeededApi:
    """The API as an ASGI application that builds its services when the server starts it
    (ASGI lifespan) and closes them when it stops: all of it in the server's event loop, as
    under uvicorn. The server here is schemathesis' in-process ASGI transport."""

    def __init__(self, db_file: Path, work: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{db_file}"
        self.work = work
        self.env: Env | None = None
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.env = await build_env(self.url, self.work, ManualClock(NOW_MS))
                self.app = create_app(self.env.services)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.env is not None:
                    await self.env.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class Exchange:
    """One request schemathesis sent and what came back."""

    label: str
    mode: str
    request: str
    status: int
    body: bytes


@dataclass
class Run:
    exchanges: list[Exchange] = field(default_factory=list)
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)


@pytest.fixture
def api(seeded: Seeded, tmp_path: Path) -> Iterator[SeededApi]:
    """A fresh copy of the seeded database behind a new application."""
    db_file = tmp_path / "gateway.db"
    shutil.copy(seeded.db_file, db_file)
    app = SeededApi(db_file, tmp_path)
    yield app
    shutdown_lifespans()


def _order(label: str) -> tuple[int, str]:
    """Reads first, writes next, deletions last (see the module's docstring)."""
    method = label.split(" ", 1)[0]
    return ({"GET": 0, "DELETE": 2}.get(method, 1), label)


def _request_text(case: Any) -> str:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    body = kwargs.get("json", kwargs.get("data", kwargs.get("files")))
    text = f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')}"
    return text + (f" body={body!r}"[:600] if body is not None else "")


def _token(schema: Any, caller: str) -> dict[str, str]:
    login = CALLERS[caller]
    if caller == "service":
        return {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    if login is None:
        return {}
    case = schema["/api/v1/auth/login"]["POST"].Case(
        body={"username": login, "password": DEMO_PASSWORD},
        media_type="application/x-www-form-urlencoded",
    )
    response = case.call()
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _fuzz(schema: Any, headers: dict[str, str]) -> Run:
    run = Run()
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: _order(op.label),
    )
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _explore(run, operation, mode, headers)
    return run


def _explore(run: Run, operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    """``MAX_EXAMPLES`` generated requests to one operation; every failure kept, none shrunk."""

    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        request = _request_text(case)
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the application raised past its error handler: a 500
            key = (operation.label, type(exc).__name__, 500)
            run.failures.setdefault(key, f"{request}\n  -> raised {exc!r}")
            return
        run.exchanges.append(
            Exchange(operation.label, mode.value, request, response.status_code, response.content)
        )
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            key = (operation.label, type(exc).__name__, response.status_code)
            run.failures.setdefault(
                key, f"{request}\n  -> {response.status_code} {response.content[:400]!r}\n  {exc}"
            )

    try:
        send()
    except Unsatisfiable:  # a negative run of an operation with nothing to make invalid
        assert mode is GenerationMode.NEGATIVE, operation.label


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _incident_ids(value: Any) -> Iterator[int]:
    """The ids of incident-shaped objects (they carry a ``dedupe_key``) in a body."""
    if isinstance(value, dict):
        if "dedupe_key" in value and isinstance(value.get("id"), int):
            yield value["id"]
        for v in value.values():
            yield from _incident_ids(v)
    elif isinstance(value, list):
        for v in value:
            yield from _incident_ids(v)


def _shown(exchange: Exchange) -> tuple[set[str], set[int]]:
    """The strings and incident ids a response shows its caller."""
    if exchange.status >= 400 or not exchange.body:
        return set(), set()
    try:
        body = orjson.loads(exchange.body)
    except orjson.JSONDecodeError:  # CSV, metrics, event stream: every cell and token
        text = exchange.body.decode("utf-8", "replace")
        cells = {c.strip().strip('"') for line in text.splitlines() for c in line.split(",")}
        return cells | set(text.split()), set()
    return set(_strings(body)), set(_incident_ids(body))


def _leaks(run: Run, seeded: Seeded, caller: str) -> list[str]:
    outside = seeded.outside(caller)
    marks = {m: e for e in outside for m in e.marks}
    ids = {e.incident_id: e for e in outside if e.incident_id is not None}
    found = []
    for ex in run.exchanges:
        strings, incident_ids = _shown(ex)
        for s in sorted(strings & marks.keys()):
            found.append(f"{ex.request} -> {ex.status} shows {s!r} ({marks[s].site}/{marks[s].grid})")
        for i in sorted(incident_ids & ids.keys()):
            found.append(f"{ex.request} -> {ex.status} shows incident {i} of {ids[i].grid}")
    return found


def _probe_foreign(schema: Any, headers: dict[str, str], seeded: Seeded, caller: str,
                   run: Run) -> None:
    """Ask outright for what lies outside the caller's scope: the answers join the run."""
    other = seeded.incidents["other"]
    probes: list[tuple[str, str, dict[str, Any]]] = [
        ("/api/v1/incidents/{incident_id}", "GET", {"incident_id": seeded.incidents["g2"]}),
        ("/api/v1/incidents/{incident_id}", "GET", {"incident_id": other}),
        ("/api/v1/devices/{site}/{device_id}", "GET",
         {"site": "demo", "device_id": "smk-b04-u1-f1"}),
        ("/api/v1/devices/{site}/{device_id}/status", "GET",
         {"site": OTHER_SITE, "device_id": "xs-smoke-0001"}),
        ("/api/v1/households/{key}", "GET", {"key": f"{OTHER_SITE}.x01.1-101"}),
        ("/api/v1/grids/{key}", "GET", {"key": f"{OTHER_SITE}.g1"}),
    ]
    for path, method, params in probes:
        case = schema[path][method].Case(path_parameters=params)
        response = case.call(headers=headers)
        run.exchanges.append(Exchange(case.operation.label, "probe", _request_text(case),
                                      response.status_code, response.content))
    for path in ("/api/v1/incidents", "/api/v1/devices", "/api/v1/households",
                 "/api/v1/silences", "/api/v1/stats/overview", "/api/v1/grids"):
        case = schema[path]["GET"].Case()
        response = case.call(headers=headers)
        run.exchanges.append(Exchange(case.operation.label, "probe", _request_text(case),
                                      response.status_code, response.content))


@pytest.mark.parametrize("caller", list(CALLERS))
def test_fuzzed_api_never_fails_and_never_leaks(caller: str, api: SeededApi, seeded: Seeded) -> None:
    config = schemathesis.Config.from_dict({"max-stream-events": 1, "request-timeout": 20})
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api, config=config)
    headers = _token(schema, caller)
    started = time.perf_counter()
    run = _fuzz(schema, headers)
    _probe_foreign(schema, headers, seeded, caller, run)
    elapsed = time.perf_counter() - started
    print(f"{caller}: {len(run.exchanges)} requests in {elapsed:.1f} s")
    for (label, kind, status), text in run.failures.items():
        print(f"FAILURE {caller} {label} [{kind}, {status}]\n{text}\n")
    for leak in _leaks(run, seeded, caller):
        print(f"LEAK {caller} {leak}")

    assert len(run.exchanges) > 2 * len(list(schema.get_all_operations()))
    assert not run.failures, "\n\n".join(
        f"{label} [{kind}, {status}]\n{text}" for (label, kind, status), text in run.failures.items()
    )
    assert not _leaks(run, seeded, caller)
