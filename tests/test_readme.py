"""The README is the front door (issue 11 item 12): it documents the community file and the
device ledger the code reads, with the sample files, the ledger import endpoint, the broker's
password file and how the operator tools find their database."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from gateway.registry.ledger import COLUMNS
from gateway.registry.spec import CommunitySpec, RosterSpec, WeeklySlot
from tests.api.support import build_env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.MULTILINE | re.DOTALL)
    assert found, f"README has no section {title!r}"
    return found.group(1)


def test_the_community_file_and_its_sample_are_documented() -> None:
    text = section("Onboarding a community")
    for sample in re.findall(r"`(gateway/sample/[^`]+)`", text):
        assert (ROOT / sample).is_file(), sample
    assert "gateway/sample/demo-community.yaml" in text
    assert "gateway/sample/device-ledger.csv" in text
    for key in CommunitySpec.model_fields:
        if key != "device_ledgers":
            assert f"`{key}`" in text, f"community file section {key!r} undocumented"
    assert "`device_ledgers:`" in text
    for key in [*RosterSpec.model_fields, "days", "start", "end", "role"]:
        assert key in WeeklySlot.model_fields or key in RosterSpec.model_fields
        assert f"`{key}`" in text, key
    assert "GET /api/v1/rosters" in text


def test_every_ledger_column_is_documented_with_both_headers() -> None:
    text = section("Onboarding a community")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.+?) \|", text,
                                                          re.MULTILINE)}
    for column, headers in COLUMNS.items():
        chinese, english = headers[0], headers[1]
        row = next((k for k in rows if chinese in k.split(", ")), None)
        assert row is not None, f"ledger column {chinese} ({column}) undocumented"
        assert f"`{english}`" in rows[row], (column, rows[row])


async def test_the_ledger_import_endpoint_named_is_the_api_s(sqlite_url: str, tmp_path: Path) -> None:
    from core.clock import ManualClock
    from tests.api.support import prepare_db

    await prepare_db(sqlite_url)
    env = await build_env(sqlite_url, tmp_path, ManualClock())
    try:
        paths = create_app(env.services).openapi()["paths"]
    finally:
        await env.close()
    text = section("Onboarding a community")
    for method, path in re.findall(r"`(GET|POST) (/api/v1/[^`?]+)", text):
        assert method.lower() in paths.get(path, {}), f"{method} {path} is not in the API"
    assert "POST /api/v1/devices/ledger.csv" in text


def test_the_broker_password_file_and_the_tools_configuration_are_documented() -> None:
    text = section("Onboarding a community")
    assert "mosquitto_passwd -c passwd" in text and "mosquitto_passwd -U passwd" in text
    assert "deploy/mosquitto/README.md" in text
    assert "--data-dir" in text and "never create" in text
    assert "safety-sim scenario" in README and "--api" in README
    assert ".venv/bin/safety-sim" in README


async def test_the_several_communities_section_matches_the_api_and_the_roles(
    sqlite_url: str, tmp_path: Path
) -> None:
    from api.deps import DISPATCHERS, REGISTRY_WRITERS
    from api.routes.sites import FILE_WRITERS
    from core.clock import ManualClock
    from gateway.registry.tables import ROLES
    from tests.api.support import prepare_db

    await prepare_db(sqlite_url)
    env = await build_env(sqlite_url, tmp_path, ManualClock())
    try:
        paths = create_app(env.services).openapi()["paths"]
    finally:
        await env.close()
    text = section("Several communities (street offices)")
    named = re.findall(r"`(GET|POST|PUT) (/api/v1/[^`?]+)", text)
    assert {p for _, p in named} >= {"/api/v1/sites", "/api/v1/sites/{code}"}
    for method, path in named:
        assert method.lower() in paths.get(path, {}), f"{method} {path} is not in the API"
    rows = {m.group(1): m.group(2).split(" | ") for m in re.finditer(
        r"^\| `([a-z_]+)`[^|]* \| (.+?) \|$", text, re.MULTILINE)}
    assert set(rows) == {*ROLES, "service"}, rows
    for role, (_sees, dispatch, registry, file) in rows.items():
        assert (dispatch == "yes") == (role in DISPATCHERS), role
        assert (registry == "yes") == (role in REGISTRY_WRITERS), role
        assert (file != "no") == (role in FILE_WRITERS), role
