"""Migrations, the sample community and the Registry's queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import Base, make_engine, make_sessionmaker
from gateway.migrations.runner import current_revision, downgrade, head_revision, upgrade
from gateway.registry import (
    Registry,
    apply,
    export_device_ledger_csv,
    import_device_ledger_csv,
    load_community_yaml,
    verify_password,
)
from gateway.registry.tables import Device, Household, Person, PersonGrid, RosterWeekly
from gateway.sample import demo_community_path, demo_logins_path

SHANGHAI_NOON = datetime(2026, 3, 4, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Shanghai


@pytest.fixture
async def sessionmaker(db_url: str):  # type: ignore[no-untyped-def]
    await upgrade(db_url)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def demo(sessionmaker: async_sessionmaker[AsyncSession]) -> Registry:
    community = load_community_yaml(demo_community_path())
    async with sessionmaker() as session:
        await apply(session, community)
        await session.commit()
    registry = Registry(sessionmaker)
    await registry.load()
    return registry


_REGISTRY = {
    "sites", "grids", "buildings", "households", "devices", "people", "person_grids",
    "building_leaders", "roster_shifts", "roster_weekly",
}  # fmt: skip


def _only_registry(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
    # The whole schema's drift is tests/gateway/test_migrations.py's job; here, the registry's.
    table = getattr(obj, "table", obj) if type_ != "table" else obj
    return getattr(table, "name", name) in _REGISTRY


async def test_migrations_reach_head_match_the_tables_and_go_back(db_url: str) -> None:
    await upgrade(db_url)
    assert await current_revision(db_url) == head_revision()
    engine = make_engine(db_url)

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        opts = {"include_object": _only_registry, "compare_type": True}
        return compare_metadata(MigrationContext.configure(sync_conn, opts=opts), Base.metadata)

    async with engine.connect() as conn:
        drift = await conn.run_sync(diff)
    await engine.dispose()
    assert drift == []
    await upgrade(db_url)  # nothing left to do
    await downgrade(db_url, "base")
    assert await current_revision(db_url) is None
    await upgrade(db_url, "0001_registry")
    assert await current_revision(db_url) == "0001_registry"


async def test_sample_community_loads(demo: Registry, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    devices = demo.devices("demo")
    counts = Counter(d.device_type for d in devices)
    assert 280 <= len(devices) <= 340
    assert set(counts) == {"smoke", "sos", "gate", "charger", "gas"}
    async with sessionmaker() as session:
        elderly = [
            h for h in await session.scalars(select(Household)) if "elderly_alone" in h.flags
        ]
    assert len(elderly) == 20
    assert all(h.contacts and h.contacts[0]["phone"] for h in elderly)
    assert len(demo.grids("demo")) == 5


async def test_context_and_vendor_identity(demo: Registry) -> None:
    ctx = demo.context("demo", "sos-b02-1-102")
    assert ctx is not None
    assert ctx.device_type == "sos"
    assert ctx.grid_id == "demo.g1"
    assert ctx.building_id == "demo.b02"
    assert ctx.household_id == "demo.b02.1-102"
    assert "elderly_alone" in ctx.household_flags
    assert ctx.location == "2号楼1单元102室 卧室床头"
    assert demo.context("demo", "nope") is None
    assert demo.context("other", "sos-b02-1-102") is None
    charger = demo.resolve_vendor("66a0c1d2e3f4a5b6c7d8e9f0_CP120001")
    assert charger is not None
    assert (charger.device_id, charger.grid_id) == ("chg-s3-01", "demo.g4")
    assert demo.profile("demo", "chg-s3-01") == "huawei.charger.cp12"
    gate = demo.context("demo", "gate-b09-1")
    assert gate is not None
    assert gate.grid_id == "demo.g3a"


async def test_people_for_grid_with_nesting_and_building_leaders(demo: Registry) -> None:
    g1 = demo.people_for_grid("demo.g1", SHANGHAI_NOON, building_id="demo.b02")
    assert [p.id for p in g1.primary] == ["zhang-min"]
    assert [p.id for p in g1.backup] == ["li-qiang"]
    assert [p.id for p in g1.building_leaders] == ["leader-b02"]
    assert [p.id for p in g1.on_duty] == ["duty-sun"]
    assert [p.id for p in g1.secretaries] == ["secretary-guo"]
    assert g1.primary[0].channels["mqtt"] is True

    micro = demo.people_for_grid("demo.g3a", SHANGHAI_NOON)
    assert [p.id for p in micro.primary] == ["zhou-hua"]
    assert [p.id for p in micro.backup] == ["liu-yang", "chen-jing"]
    assert demo.grid_ancestors("demo.g3a") == ("demo.g3",)
    assert demo.grid_ancestors("demo.g3") == ()
    assert demo.grids_of("liu-yang") == {"demo.g3", "demo.g3a"}
    assert demo.people_for_grid("demo.unknown", SHANGHAI_NOON).primary == ()


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 3, 4, 0, 0, tzinfo=UTC), ["duty-sun"]),  # 08:00 local
        (datetime(2026, 3, 4, 7, 59, tzinfo=UTC), ["duty-sun"]),  # 15:59
        (datetime(2026, 3, 4, 8, 0, tzinfo=UTC), ["duty-ma"]),  # 16:00
        (datetime(2026, 3, 4, 15, 59, tzinfo=UTC), ["duty-ma"]),  # 23:59
        (datetime(2026, 3, 4, 16, 0, tzinfo=UTC), ["duty-zhu"]),  # 00:00 next day
        (datetime(2026, 3, 4, 23, 59, tzinfo=UTC), ["duty-zhu"]),  # 07:59
        (datetime(2026, 10, 1, 2, 0, tzinfo=UTC), ["secretary-guo", "duty-sun"]),  # holiday
    ],
)
async def test_on_duty_covers_every_hour(
    demo: Registry, utc: datetime, expected: list[str]
) -> None:
    assert [p.id for p in demo.on_duty("demo", utc)] == expected


async def test_roster_is_24_7(demo: Registry) -> None:
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    for minutes in range(0, 7 * 24 * 60, 30):
        at = start + timedelta(minutes=minutes)
        assert len(demo.on_duty("demo", at)) >= 1, at


async def test_reapply_is_idempotent_and_refresh_sees_edits(demo: Registry, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    community = load_community_yaml(demo_community_path())

    async def counts() -> tuple[int, ...]:
        async with sessionmaker() as s:
            return tuple(
                [await s.scalar(select(func.count()).select_from(t)) or 0
                 for t in (Device, Household, Person, PersonGrid, RosterWeekly)]
            )  # fmt: skip

    before = await counts()
    async with sessionmaker() as session:
        await apply(session, community)
        await session.commit()
    assert await counts() == before
    async with sessionmaker() as session:
        device = await session.get(Device, ("demo", "smk-b01-u1-f1"))
        assert device is not None
        device.enabled = False
        await session.commit()
    assert demo.context("demo", "smk-b01-u1-f1") is not None
    await demo.refresh()
    assert demo.context("demo", "smk-b01-u1-f1") is None


@pytest.fixture
def logins() -> dict[str, object]:
    return dict(yaml.safe_load(Path(demo_logins_path()).read_text(encoding="utf-8")))


async def test_demo_logins_are_argon2_hashes(demo: Registry, sessionmaker, logins) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        people = {p.id: p for p in await session.scalars(select(Person))}
    for account in logins["accounts"]:
        stored = people[account["id"]].password_hash
        assert stored is not None
        assert stored.startswith("$argon2id$")
        assert logins["password"] not in stored
    admin = people["admin"].password_hash
    assert verify_password(logins["password"], admin)
    assert not verify_password("wrong", admin)


async def test_ledger_round_trip(demo: Registry, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        text = await export_device_ledger_csv(session, "demo")
    ledger = import_device_ledger_csv(text, name="export.csv")
    assert ledger.errors == []
    assert len(ledger.rows) == len(demo.devices("demo"))
    row = next(r for r in ledger.rows if r.device.id == "sos-b02-1-102")
    assert (row.grid_ref, row.building_ref, row.device.unit, row.device.room) == (
        "g1",
        "b02",
        "1",
        "102",
    )
