"""The operator API fuzzed from its own OpenAPI schema, once per caller (a standing hostile suite).

For each caller — every sample-community role, a service token and nobody at all —
schemathesis generates valid and invalid requests for every operation in
``/api/v1/openapi.json`` and sends them to the ASGI application over a real database holding
the sample community, incidents in grids g1, g2 and g4, grid silences, and a second site with
its own grid "g1", household, device, incident and silence. What a caller would notice is
checked:

- no answer is a server error (5xx), whatever was sent;
- an answer whose status the schema declares has the body the schema declares;
- nobody is shown an incident, device, household, building, grid or silence outside their
  scope — a grid worker or building leader only their grids, every person only their own
  site: every string and incident id in every body of the run is compared with those of what
  lies outside. The seeded things are also asked for outright, before and after the fuzzing
  (what is in scope must be there, what is not must be 401/403/404).

Each caller gets a database of its own, seeded afresh: an admin's run deletes and changes rows
(a fuzzed DELETE may well hit ``/grids/demo.g2``), which must not decide what the next caller
can see or leak. Within one run the reading operations come first and the DELETEs last, so
what is seeded is still there while the reads are fuzzed. Half the callers run on SQLite and
half on PostgreSQL (both stores are supported), which costs no extra time.

Bounded for CI: ``MAX_EXAMPLES`` per operation and generation mode (positive and negative),
no deadline, no shrinking, a fixed seed; ``SAFETY_FUZZ_SEED`` explores other cases and
``SAFETY_FUZZ_EXAMPLES`` more of them.
"""

from __future__ import annotations

import os
import re
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

from alerting.incidents.silences import Matcher
from alerting.incidents.tables import IncidentRow, SilenceRow
from alerting.models import AlertState, AlertTransition, Category, Severity
from api.app import create_app
from core.clock import ManualClock
from gateway.registry import apply, hash_password
from gateway.registry.loader import parse_community
from gateway.registry.tables import Building, Device, Grid, Household, Person
from tests.api.support import DEMO_PASSWORD, SERVICE_TOKEN, USERS, Env, build_env, prepare_db

pytestmark = pytest.mark.slow

NOW_MS = 1_764_000_000_000
MAX_EXAMPLES = int(os.environ.get("SAFETY_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("SAFETY_FUZZ_SEED", "20251124"))
CHECKS = [not_a_server_error, response_schema_conformance]
OTHER_SITE = "xishan"
V1 = "/api/v1"

#: Who calls (a login of the sample community, the service token, or nobody) and on which
#: store their run goes.
CALLERS: dict[str, tuple[str | None, str]] = {
    "admin": (USERS["admin"], "postgres"),
    "secretary": (USERS["secretary"], "sqlite"),
    "duty": (USERS["duty"], "postgres"),
    "worker_g1": (USERS["worker_g1"], "sqlite"),
    "worker_g2": (USERS["worker_g2"], "postgres"),
    "leader_b01": (USERS["leader_b01"], "sqlite"),
    "service": (None, "postgres"),
    "anonymous": (None, "sqlite"),
}

#: What each caller may see, stated here rather than computed by the code under test:
#: (site, grids); None = every site / every grid of the site.
SCOPES: dict[str, tuple[str | None, frozenset[str] | None]] = {
    "admin": (None, None),
    "service": (None, None),
    "secretary": ("demo", None),
    "duty": ("demo", None),
    "worker_g1": ("demo", frozenset({"demo.g1"})),
    "worker_g2": ("demo", frozenset({"demo.g2"})),
    "leader_b01": ("demo", frozenset({"demo.g1"})),  # a building leader: the grid of b01
    "anonymous": ("-", frozenset()),  # nothing at all
}

#: Operations whose listed parameters are held at a harmless value: each is a known finding,
#: pinned as a strict xfail in test_hostile_findings.py (remove the pin when that is fixed).
PINNED: dict[str, dict[str, dict[str, Any]]] = {}

# A second site whose grid has the same code as one of the sample community's (g1): a scope
# that compared grid codes instead of ids would show it.
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
INCIDENTS = {  # name -> (site, device); one incident each
    "g1": ("demo", "smk-b01-u1-f1"),
    "g2": ("demo", "smk-b04-u1-f1"),
    "g4": ("demo", "smk-b10-u1-f1"),
    "other": (OTHER_SITE, "xs-smoke-0001"),
}


@dataclass(frozen=True)
class Entity:
    """One seeded thing a scope covers or not, and the strings that show it in a body."""

    kind: str
    site: str
    grid: str | None
    marks: frozenset[str]
    incident_id: int | None = None


@dataclass
class Seeded:
    entities: list[Entity]
    incidents: dict[str, int]  # INCIDENTS name -> id

    def split(self, caller: str) -> tuple[list[Entity], list[Entity]]:
        """(inside, outside) the caller's scope."""
        site, grids = SCOPES[caller]
        inside, outside = [], []
        for e in self.entities:
            out = (site is not None and e.site != site) or (grids is not None and e.grid not in grids)
            (outside if out else inside).append(e)
        return inside, outside


async def _seed(env: Env) -> Seeded:
    async with env.services.sessions() as session:
        await apply(session, parse_community(OTHER_COMMUNITY))
        leader = await session.get(Person, USERS["leader_b01"])  # has no password of its own
        assert leader is not None
        leader.password_hash = hash_password(DEMO_PASSWORD)
        await session.commit()
    await env.registry.refresh()
    incidents = {}
    for name, (site, device_id) in INCIDENTS.items():
        ctx = env.registry.context(site, device_id)
        assert ctx is not None, (site, device_id)
        change = await env.incident_service.apply(
            AlertTransition(
                rule_id="smoke.alarm", subject=device_id, site=site, device_id=device_id,
                state=AlertState.FIRING, severity=Severity.CRITICAL, category=Category.SAFETY,
                title=f"hostile-mark incident {name}", at_ms=NOW_MS,
                dedupe_key=f"smoke.alarm:{site}:{device_id}", reading_ts_ms=NOW_MS,
                reading_seq=1,
            ),
            ctx,
        )
        assert change is not None
        incidents[name] = change.incident_id
    for site, grid in (("demo", "demo.g1"), ("demo", "demo.g2"), (OTHER_SITE, f"{OTHER_SITE}.g1")):
        await env.services.silences.create(
            site=site, matcher=Matcher.GRID, value=grid, ends_at_ms=NOW_MS + 86_400_000,
            actor="admin", reason=f"hostile-mark silence {grid}",
        )
    return Seeded(await _entities(env), incidents)


async def _entities(env: Env) -> list[Entity]:
    """Every seeded row that has a scope, with the strings a response would show it by."""
    out: list[Entity] = []
    async with env.services.sessions() as s:
        grid_of = {b.id: b.grid_id for b in await s.scalars(select(Building))}
        for g in await s.scalars(select(Grid)):
            out.append(Entity("grid", g.site, g.id, frozenset({g.id, g.name})))
        for b in await s.scalars(select(Building)):
            out.append(Entity("building", b.site, b.grid_id, frozenset({b.id, b.name})))
        for h in await s.scalars(select(Household)):
            out.append(Entity("household", h.site, grid_of[h.building_id], frozenset({h.id})))
        for d in await s.scalars(select(Device)):
            marks = {d.device_id} | ({d.vendor_identity} if d.vendor_identity else set())
            out.append(Entity("device", d.site, d.grid_id, frozenset(marks)))
        for i in await s.scalars(select(IncidentRow)):
            marks = frozenset({i.title, i.dedupe_key})
            out.append(Entity("incident", i.site, i.grid_id, marks, i.id))
        for sl in await s.scalars(select(SilenceRow)):
            out.append(Entity("silence", sl.site, sl.value, frozenset({sl.reason})))
    return out


class SeededApi:
    """The API as an ASGI application that migrates, seeds and builds its services when the
    server starts it (ASGI lifespan) and closes them when it stops — all of it in the server's
    event loop, as under uvicorn. The server is schemathesis' in-process ASGI transport."""

    def __init__(self, db_url: str, work: Path) -> None:
        self.db_url = db_url
        self.work = work
        self.env: Env | None = None
        self.app: Any = None
        self.seeded: Seeded | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await prepare_db(self.db_url)
                self.env = await build_env(self.db_url, self.work, ManualClock(NOW_MS))
                self.seeded = await _seed(self.env)
                self.app = create_app(self.env.services)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.env is not None:
                    await self.env.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture
def api(caller: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SeededApi]:
    store = CALLERS[caller][1]
    url = str(request.getfixturevalue("postgres_url" if store == "postgres" else "sqlite_url"))
    app = SeededApi(url, tmp_path)
    yield app
    shutdown_lifespans()  # the lifespan above: closes the services before the database goes


@dataclass
class Exchange:
    """One request sent and what came back."""

    request: str
    status: int
    body: bytes


@dataclass
class Run:
    exchanges: list[Exchange] = field(default_factory=list)
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def record(self, case: Any, response: Any) -> Exchange:
        exchange = Exchange(_request_text(case), response.status_code, response.content)
        self.exchanges.append(exchange)
        return exchange


def _request_text(case: Any) -> str:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    body = kwargs.get("json", kwargs.get("data", kwargs.get("files")))
    text = f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')}"
    return (text + (f" body={body!r}" if body is not None else ""))[:800]


def _login(schema: Any, caller: str) -> dict[str, str]:
    if caller == "service":
        return {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    name = CALLERS[caller][0]
    if name is None:
        return {}
    case = schema[f"{V1}/auth/login"]["POST"].Case(
        body={"username": name, "password": DEMO_PASSWORD},
        media_type="application/x-www-form-urlencoded",
    )
    response = case.call()
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _order(operation: Any) -> tuple[int, str]:
    """Reads first, writes next, deletions last (see the module's docstring); logging out on
    every device ends the caller's own login, so it comes after everything else."""
    if operation.path.endswith("/auth/logout-everywhere"):
        return 3, operation.label
    return {"GET": 0, "DELETE": 2}.get(operation.method.upper(), 1), operation.label


def _fuzz(schema: Any, headers: dict[str, str], run: Run, examples: int) -> None:
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=_order)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _explore(run, operation, mode, headers, examples)


def _explore(run: Run, operation: Any, mode: GenerationMode, headers: dict[str, str],
             examples: int) -> None:
    """``examples`` generated requests to one operation; every failure kept, none shrunk."""

    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **PINNED.get(operation.label, {})))
    def send(case: Any) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # raised past the application's error handler: a 500
            key = (operation.label, type(exc).__name__, 500)
            run.failures.setdefault(key, f"{_request_text(case)}\n  -> raised {exc!r}")
            return
        exchange = run.record(case, response)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            key = (operation.label, type(exc).__name__, response.status_code)
            run.failures.setdefault(
                key, f"{exchange.request}\n  -> {exchange.status} {exchange.body[:300]!r}\n  {exc}"
            )

    try:
        send()
    except Unsatisfiable:  # a negative run of an operation with nothing to make invalid
        assert mode is GenerationMode.NEGATIVE, operation.label


def _in_scope(caller: str, site: str, grid: str) -> bool:
    scope_site, grids = SCOPES[caller]
    return (scope_site is None or scope_site == site) and (grids is None or grid in grids)


def _probe(schema: Any, headers: dict[str, str], seeded: Seeded, caller: str, run: Run, *,
           fuzzed: bool = False) -> None:
    """Ask outright for the seeded things: the lists, then some by name — those in the
    caller's scope must be shown (so the leak check has something to find; not checked once
    a fuzzed DELETE may have removed them), the others refused. Every answer joins the run."""
    for path in ("incidents", "devices", "households", "buildings", "grids", "silences",
                 "stats/overview", "sites"):
        case = schema[f"{V1}/{path}"]["GET"].Case()
        run.record(case, case.call(headers=headers))
    named: list[tuple[str, dict[str, Any], str, str]] = [
        *(("/incidents/{incident_id}", {"incident_id": seeded.incidents[name]}, site,
           f"{site}.g{name[1]}" if name != "other" else f"{OTHER_SITE}.g1")
          for name, (site, _device) in INCIDENTS.items()),
        ("/devices/{site}/{device_id}", {"site": "demo", "device_id": "smk-b04-u1-f1"},
         "demo", "demo.g2"),
        ("/devices/{site}/{device_id}/status",
         {"site": OTHER_SITE, "device_id": "xs-smoke-0001"}, OTHER_SITE, f"{OTHER_SITE}.g1"),
        ("/households/{key}", {"key": f"{OTHER_SITE}.x01.1-101"}, OTHER_SITE, f"{OTHER_SITE}.g1"),
        ("/grids/{key}", {"key": f"{OTHER_SITE}.g1"}, OTHER_SITE, f"{OTHER_SITE}.g1"),
        ("/grids/{key}", {"key": "demo.g2"}, "demo", "demo.g2"),
        ("/grids/{key}", {"key": "demo.g1"}, "demo", "demo.g1"),
    ]
    for path, params, site, grid in named:
        case = schema[f"{V1}{path}"]["GET"].Case(path_parameters=params)
        exchange = run.record(case, case.call(headers=headers))
        if caller == "anonymous" or (fuzzed and _locked_out(run, caller)):
            expected = {401}
        elif _in_scope(caller, site, grid):
            expected = {200, 404} if fuzzed else {200}
        else:
            expected = {403, 404}
        assert exchange.status in expected, (exchange.request, exchange.status, exchange.body)


def _locked_out(run: Run, caller: str) -> bool:
    """Whether the fuzzing deactivated or deleted the caller's own account (an admin or
    secretary may; the token is refused from then on)."""
    me = CALLERS[caller][0]
    own = re.compile(rf"^(PATCH|DELETE) \S+/api/v1/people/{re.escape(str(me))}(\?| |$)")
    return me is not None and any(ex.status < 300 and own.match(ex.request) for ex in run.exchanges)


def _values(value: Any) -> Iterator[str | int]:
    """Every string in a body, and the id of every incident-shaped object (it has a
    ``dedupe_key``) as an int."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if "dedupe_key" in value and isinstance(value.get("id"), int):
            yield value["id"]
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)


def _shown(exchange: Exchange) -> set[str | int]:
    """What a successful response shows its caller (an error shows nothing: it never names
    more than what was asked)."""
    if exchange.status >= 400 or not exchange.body:
        return set()
    try:
        return set(_values(orjson.loads(exchange.body)))
    except orjson.JSONDecodeError:  # CSV, metrics, an event stream: every cell and word
        text = exchange.body.decode("utf-8", "replace")
        cells = {c.strip().strip('"') for line in text.splitlines() for c in line.split(",")}
        return cells | set(text.split())


def _leaks(exchanges: list[Exchange], entities: list[Entity]) -> list[str]:
    """Each response that shows one of ``entities``."""
    marks: dict[str | int, Entity] = {m: e for e in entities for m in e.marks}
    marks |= {e.incident_id: e for e in entities if e.incident_id is not None}
    found = []
    for ex in exchanges:
        for mark in sorted(_shown(ex) & marks.keys(), key=str):
            e = marks[mark]
            found.append(f"{ex.request} -> {ex.status} shows {e.kind} {mark!r} ({e.site}, {e.grid})")
    return found


@pytest.mark.parametrize("caller", list(CALLERS))
def test_fuzzed_api_never_fails_and_shows_nothing_outside_the_callers_scope(
    caller: str, api: SeededApi
) -> None:
    config = schemathesis.Config.from_dict({"max-stream-events": 1, "request-timeout": 20})
    schema = schemathesis.openapi.from_asgi(f"{V1}/openapi.json", api, config=config)
    assert api.seeded is not None
    inside, outside = api.seeded.split(caller)
    headers = _login(schema, caller)
    run = Run()

    _probe(schema, headers, api.seeded, caller, run)
    # What the caller may see was there to be seen, so the leak check below has teeth.
    shown = set().union(*(_shown(ex) for ex in run.exchanges))
    own = {e.incident_id for e in inside if e.kind == "incident"}
    assert own <= shown, (own, shown)
    assert len(own) == {"admin": 4, "service": 4, "secretary": 3, "duty": 3, "worker_g1": 1,
                        "worker_g2": 1, "leader_b01": 1, "anonymous": 0}[caller]

    started = time.perf_counter()
    # Nobody is turned away at the door by every operation but the login: fewer suffice.
    _fuzz(schema, headers, run, MAX_EXAMPLES if caller != "anonymous" else 3)
    headers = _login(schema, caller)  # the fuzz ended by logging out on every device
    _probe(schema, headers, api.seeded, caller, run, fuzzed=True)  # after the fuzzed writes
    elapsed = time.perf_counter() - started
    print(f"{caller} ({CALLERS[caller][1]}): {len(run.exchanges)} requests in {elapsed:.1f} s")

    assert len(run.exchanges) > 2 * len(list(schema.get_all_operations())) * 3
    assert not run.failures, "\n\n".join(
        f"{label} [{kind}, {status}]\n{text}" for (label, kind, status), text in run.failures.items()
    )
    leaks = _leaks(run.exchanges, outside)
    assert not leaks, "\n".join(leaks[:20])
    if caller == "admin":
        # The check would see a leak: what the admin saw includes grid g2 and the other site.
        assert _leaks(run.exchanges, api.seeded.split("worker_g1")[1])
