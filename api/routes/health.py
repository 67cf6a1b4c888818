"""GET /health (up/down for anyone, component detail for staff) and Prometheus GET /metrics.

What an anonymous caller may learn is only what a load balancer needs: up or down, and the
HTTP status (503 when down). Component detail (client ids, counts, backlogs, the store's
state) is for those who run the gateway: staff who see a whole site (admin, secretary, duty
staff), service tokens, and the metrics token. ``/metrics`` holds the same kind of detail and
needs the metrics token or a service token (what Prometheus sends as its bearer token).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import security
from api.deps import SITE_WIDE, ServicesDep, SessionDep, bearer, principal_of
from api.schemas import HealthBrief, HealthPublic
from api.services import ApiServices

router = APIRouter(tags=["health"])
_RANK = {"ok": 0, "degraded": 1, "down": 2}
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _monitor_token(services: ApiServices, token: str) -> bool:
    """The metrics token or a service token (compared in constant time)."""
    known = dict(services.config.service_tokens)
    if services.config.metrics_token is not None:
        known[" metrics"] = services.config.metrics_token  # no service is named with a space
    return security.match_service_token(token, known) is not None


@router.get("/health", response_model=HealthPublic | HealthBrief)
async def health(services: ServicesDep, session: SessionDep, creds: Bearer = None) -> JSONResponse:
    """Up or down (200 or 503, so load balancers can use it); with a staff, service or
    metrics token, each component's status and figures."""
    try:
        components = {name: dict(value) for name, value in (await services.health()).items()}
    except Exception as exc:  # the probe must answer even when a check itself breaks
        components = {"health": {"status": "down", "detail": type(exc).__name__}}
    worst = max((_RANK.get(str(c.get("status")), 2) for c in components.values()), default=0)
    overall = {v: k for k, v in _RANK.items()}[worst]
    code = 503 if overall == "down" else 200
    if creds is not None and await _may_see_detail(services, session, creds.credentials):
        detail = HealthPublic(status=overall, components=components)
        return JSONResponse(detail.model_dump(), status_code=code)
    brief = HealthBrief(status="down" if overall == "down" else "up")
    return JSONResponse(brief.model_dump(), status_code=code)


async def _may_see_detail(services: ApiServices, session: SessionDep, token: str) -> bool:
    if _monitor_token(services, token):
        return True
    try:
        principal = await principal_of(token, services, session)
    except HTTPException:
        return False  # a wrong token is simply no token: the probe still answers
    return principal.role in SITE_WIDE


@router.get(
    "/metrics",
    response_class=Response,
    responses={401: {"description": "needs the metrics token or a service token"}},
)
async def metrics(services: ServicesDep, creds: Bearer = None) -> Response:
    """Prometheus text; send the metrics token (``api.metrics_token``) or a service token as
    ``Authorization: Bearer …`` (Prometheus: ``authorization: {credentials: …}``)."""
    if creds is None or not _monitor_token(services, creds.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "/metrics needs the metrics token or a service token as a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)
