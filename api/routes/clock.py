"""The gateway's clock: what "now" is for its rules and timers, and how fast it runs."""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentPerson, ServicesDep

router = APIRouter(tags=["health"])


class ClockPublic(BaseModel):
    """``now_ms``: the gateway's time (epoch ms). ``speed``: simulated seconds per real
    second (1 in production; more in a compressed demo). ``wall_ms``/``sim_ms``: an anchor
    from which a simulator computes the same "now" (``sim_ms + (wall now - wall_ms) ×
    speed``)."""

    now_ms: int
    speed: float
    wall_ms: int
    sim_ms: int


@router.get("/clock", response_model=ClockPublic, summary="The gateway's clock")
async def clock(_who: CurrentPerson, services: ServicesDep) -> ClockPublic:
    c = services.clock
    now = c.now_ms()
    speed = float(getattr(c, "speed", 1.0))
    wall = time.time_ns() // 1_000_000
    return ClockPublic(now_ms=now, speed=speed, wall_ms=wall, sim_ms=now)
