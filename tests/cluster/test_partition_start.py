"""Several instances starting at the same moment on one empty PostgreSQL: one runs the
migrations and applies the community files while the others wait (advisory locks), and every
instance then knows every site."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.app import Gateway
from gateway.migrations import runner as migrate
from gateway.settings import Settings
from tests.cluster.harness import write_communities
from tests.services import Mosquitto

SITES = ["s01", "s02", "s03"]


async def test_three_instances_starting_together_migrate_and_apply_the_communities_once(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> None:
    files = write_communities(tmp_path / "communities", SITES, {"smoke": 2})
    gateways = [
        Gateway(
            Settings(
                mode="development",
                data_dir=tmp_path / name,
                community_files=files,
                mqtt={"url": mosquitto.url, "client_id": "gw"},
                database={"url": postgres_url},
                timeseries={"backend": "embedded"},
                cluster={"enabled": True, "instance_id": name},
            )
        )
        for name in "abc"
    ]
    try:
        await asyncio.gather(*(g.start() for g in gateways))
        assert await migrate.current_revision(postgres_url) == migrate.head_revision()
        for g in gateways:
            assert sorted(s for s in SITES if g.registry.site(s) is not None) == SITES
            assert len(g.registry.devices()) == 6
        async with gateways[0].sessions() as s:
            assert (await s.execute(text("SELECT count(*) FROM sites"))).scalar() == 3
    finally:
        for g in gateways:
            with contextlib.suppress(Exception):
                await g.http.aclose()
            with contextlib.suppress(Exception):
                await g.writer.close()
            with contextlib.suppress(Exception):
                await g.db.dispose()


def test_a_cluster_refuses_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cluster\.enabled needs PostgreSQL"):
        Settings(
            mode="development",
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"},
            cluster={"enabled": True},
        )


def test_renewal_must_fit_twice_in_a_lease() -> None:
    with pytest.raises(ValueError, match=r"at most half of cluster\.lease_s"):
        Settings(mode="development", cluster={"lease_s": 4, "renew_s": 3})
    # The defaults take a dead instance's partitions over within 25 s (≤ 30 s).
    c = Settings(mode="development").cluster
    assert c.lease_s + c.renew_s <= 30 and not c.enabled and c.partitions == "site"
