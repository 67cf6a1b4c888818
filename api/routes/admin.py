"""Running the community from the screens: roster, household risk files, device upkeep."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import community, device_admin, roster

router = APIRouter()
for _module in (roster, community, device_admin):
    router.include_router(_module.router)
