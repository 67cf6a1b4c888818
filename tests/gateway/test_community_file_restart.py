"""Staff run the community from the screens; the community file given at start must not undo
their edits at every restart, yet a file the integrator changed is applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.registry.tables import Household
from tests.conftest import E2E_COMMUNITY


async def _family_phone(gateway: Any) -> str:
    async with gateway.sessions() as session:
        household = await session.scalar(select(Household).where(Household.room == "101"))
        assert household is not None
        return str(household.contacts[0]["phone"])


async def _set_family_phone(gateway: Any, phone: str) -> None:
    # what the household screen's save does (PATCH /households/{id}) with the family's new number
    async with gateway.sessions.begin() as session:
        household = await session.scalar(select(Household).where(Household.room == "101"))
        assert household is not None
        household.contacts = [{**household.contacts[0], "phone": phone}]


async def test_edits_on_the_screens_survive_a_restart_until_the_file_changes(
    start_gateway: Any, tmp_path: Path
) -> None:
    community = tmp_path / "community.yaml"
    community.write_text(E2E_COMMUNITY.read_text(encoding="utf-8"), encoding="utf-8")
    gateway = await start_gateway(community_file=community)
    assert await _family_phone(gateway) == "13900000001"
    await _set_family_phone(gateway, "13700000009")
    await start_gateway.stop(gateway)

    gateway = await start_gateway(community_file=community)
    assert await _family_phone(gateway) == "13700000009"  # the son's new phone is kept
    await start_gateway.stop(gateway)

    # the integrator edits the file: it is applied and wins for what it names
    community.write_text(
        community.read_text(encoding="utf-8").replace("13900000001", "13600000006"),
        encoding="utf-8",
    )
    gateway = await start_gateway(community_file=community)
    assert await _family_phone(gateway) == "13600000006"
