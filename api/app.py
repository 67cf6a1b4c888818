"""The operator API and duty board: ``create_app(services)`` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import Counter, Histogram

from alerting.incidents.service import IncidentChange
from api import errors
from api.headers import SecurityHeaders
from api.incident_view import publish_incident
from api.login_guard import LoginFloodGate, LoginGuard
from api.routes import (
    admin,
    auth,
    clock,
    commands,
    deliveries,
    devices,
    health,
    incidents,
    live,
    loop,
    loop_reports,
    push,
    quarantine,
    registry,
    reports,
    rules,
    screen,
    silences,
    sites,
    stats,
)
from api.services import ApiServices

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
BOARD_DIR = Path(__file__).with_name("board")


def create_app(services: ApiServices) -> FastAPI:
    """One application over ``services``; several may coexist (tests), none is global."""
    refused = Counter(
        "api_login_refused",
        "logins refused by the login limits (429)",
        registry=services.metrics,
    )
    guard = LoginGuard(services.config.login, on_refused=refused.inc)
    board = _BoardFollower(services)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await guard.workers.start()  # the first login then finds its worker waiting
        yield
        # Before the gateway closes its database pools: a read-back still under way would
        # meet a pool being closed.
        await board.close()
        await guard.aclose()

    # The docs page loads Swagger UI from the gateway itself, not a CDN: a community's box
    # often has no Internet, and the page would stay blank.
    app = FastAPIOffline(
        title="Community safety gateway",
        version="1",
        description="Operator API: registry, rules, incidents, devices, reports, live events.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        static_url=f"{PREFIX}/docs-assets",
        lifespan=lifespan,
    )
    app.state.services = services
    if services.listen_incidents is not None:
        services.listen_incidents(board.changed)
    app.state.login_guard = guard
    errors.install(app)
    _instrument(app, services)
    # Added last, so outside the request metrics: refused logins cost as little as possible.
    app.add_middleware(
        LoginFloodGate, guard=guard, path=f"{PREFIX}/auth/login", now_ms=services.clock.now_ms
    )
    docs = (f"{PREFIX}/docs", app.swagger_ui_oauth2_redirect_url or "")
    app.add_middleware(SecurityHeaders, docs_paths=docs)  # outermost: on every answer
    for module in (
        auth,
        admin,  # before registry and devices: /households/tiers is not /households/{id}
        clock,
        sites,  # before registry: GET/POST /sites are its own (figures, community files)
        registry,
        loop,
        incidents,
        silences,
        devices,
        commands,
        rules,
        quarantine,
        stats,
        reports,
        loop_reports,
        live,
        screen,
        deliveries,
        push,
    ):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(health.router)
    app.mount("/board", StaticFiles(directory=BOARD_DIR, html=True), name="board")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/board/")

    return app


# After publishing an incident, further changes to it within this time are published once,
# together: a storm attaches thousands of devices to one incident within a minute, and reading
# back a 5,000-device incident for each of them held the database and the loop for minutes.
BOARD_COALESCE_S = 0.5


class _BoardFollower:
    """The live board gets each incident the alert path changes, as the API shows it (read
    back after the change committed): at once for a change to a quiet incident, at most every
    ``BOARD_COALESCE_S`` for one that keeps changing; its last state is always published."""

    def __init__(self, services: ApiServices) -> None:
        self._services = services
        # Held here until done, or the loop may drop them.
        self._running: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()
        self._closed = False

    def changed(self, change: IncidentChange) -> None:
        if self._closed:
            return  # the API has stopped: nobody is watching the board
        if change.incident_id in self._running:
            self._again.add(change.incident_id)  # the task under way publishes once more
            return
        self._running[change.incident_id] = asyncio.create_task(
            self._publish_latest(change.incident_id)
        )

    async def close(self) -> None:
        """No more read-backs; those under way are cancelled and awaited."""
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish_latest(self, incident_id: int) -> None:
        try:
            while True:
                self._again.discard(incident_id)
                try:
                    await publish_incident(self._services, incident_id)
                except Exception:
                    # The database is away: the board reads every incident afresh when it
                    # reconnects; the alert path must not notice.
                    log.exception("publishing incident %s to the live board failed", incident_id)
                # Changes from now on wait for the end of this window and go out together.
                await asyncio.sleep(BOARD_COALESCE_S)
                if incident_id not in self._again:
                    return
        finally:
            # No await between the check above and this: a change that comes after it
            # starts a new task.
            self._running.pop(incident_id, None)


def _instrument(app: FastAPI, services: ApiServices) -> None:
    requests = Counter(
        "api_requests",
        "API requests by method, route and status class",
        ["method", "route", "status"],
        registry=services.metrics,
    )
    latency = Histogram(
        "api_request_seconds", "API request latency", ["route"], registry=services.metrics
    )

    @app.middleware("http")
    async def _count(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(request.method, path, f"{response.status_code // 100}xx").inc()
        latency.labels(path).observe(time.perf_counter() - started)
        return response
