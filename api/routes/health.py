"""GET /health (no auth, per-component status) and Prometheus GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])
_RANK = {"ok": 0, "degraded": 1, "down": 2}


@router.get("/health", response_model=HealthPublic)
async def health(services: ServicesDep) -> JSONResponse:
    """Each component's status; 200 unless one is down (503), so load balancers can use it."""
    try:
        components = {name: dict(value) for name, value in (await services.health()).items()}
    except Exception as exc:  # the probe must answer even when a check itself breaks
        components = {"health": {"status": "down", "detail": type(exc).__name__}}
    worst = max((_RANK.get(str(c.get("status")), 2) for c in components.values()), default=0)
    overall = {v: k for k, v in _RANK.items()}[worst]
    body = HealthPublic(status=overall, components=components)
    return JSONResponse(body.model_dump(), status_code=503 if overall == "down" else 200)


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)
