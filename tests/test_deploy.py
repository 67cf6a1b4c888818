"""The compose stack is consistent (no Docker engine here): it parses, its wiring names real
settings, and the Mosquitto ACL lets each device publish only on its own topics."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt.client import topic_matches_sub

from gateway.registry.loader import load_community_yaml
from gateway.sample import demo_community_path
from gateway.settings import Settings, load_settings
from gateway.tools import AclDevice, AclWorker, acl_lines, community_accounts

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_the_stack_and_its_dependencies() -> None:
    services = COMPOSE["services"]
    assert set(services) >= {"mosquitto", "influxdb", "postgres", "gateway", "simulator"}
    assert set(services["gateway"]["depends_on"]) == {"mosquitto", "influxdb", "postgres"}
    assert (ROOT / "Dockerfile").exists(), "gateway and simulator are built from ./Dockerfile"
    for volume in services["mosquitto"]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./") and not source.endswith("passwd"):  # passwd holds secrets
            assert (ROOT / source).exists(), f"{source} is mounted but missing"


def _settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a gateway service of the compose file starts with."""
    with monkeypatch.context() as m:
        for name, value in service["environment"].items():
            assert name.startswith("SAFETY_")
            # ${VAR:?…} placeholders get stand-in values, long enough for secrets.
            m.setenv(name, re.sub(r"\$\{[^}]+\}", "x" * 40, str(value)))
        return load_settings(ROOT / "deploy" / "gateway.yaml")


def _gateway_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in COMPOSE["services"].items()
        if service.get("command", [])[:2] == ["safety-gateway", "run"]
    }


def test_gateway_environment_and_config_file_are_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings_of(COMPOSE["services"]["gateway"], monkeypatch)
    assert settings.mqtt.host == "mosquitto"
    assert settings.timeseries.backend == "influxdb2"
    assert settings.database.url.startswith("postgresql+asyncpg://")


def test_two_gateway_replicas_share_postgresql_and_the_broker_each_with_its_own_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateways = _gateway_services()
    assert len(gateways) >= 2, "the stack runs two gateway replicas"
    settings = {name: _settings_of(service, monkeypatch) for name, service in gateways.items()}
    for name, s in settings.items():
        assert s.cluster.enabled, f"{name}: cluster.enabled (partitions through leases)"
        assert set(gateways[name]["depends_on"]) == {"mosquitto", "influxdb", "postgres"}
    # One database holds the leases, one broker the partitions' sessions, one store the readings.
    assert len({s.database.url for s in settings.values()}) == 1
    assert len({s.mqtt.url for s in settings.values()}) == 1
    assert len({s.timeseries.url for s in settings.values()}) == 1
    # Two instances with one id would renew each other's leases; one data directory, share a
    # spool. The client id is the partitions' session prefix: one for all, so whichever
    # instance takes a partition over resumes the broker's queue for it.
    assert len({s.cluster.instance_id for s in settings.values()}) == len(gateways)
    assert all(s.cluster.instance_id for s in settings.values())
    assert len({s.mqtt.client_id for s in settings.values()}) == 1
    data = [
        next(v.split(":")[0] for v in service["volumes"] if v.endswith(":/var/lib/safety-gateway"))
        for service in gateways.values()
    ]
    assert len(set(data)) == len(gateways) and set(data) <= set(COMPOSE["volumes"])
    ports = [p.split(":")[0] for service in gateways.values() for p in service.get("ports", [])]
    assert len(ports) == len(set(ports)), "each replica's API on a host port of its own"


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        Settings(mode="production")


def _acl(text: str) -> dict[str, list[tuple[str, str]]]:
    rules: dict[str, list[tuple[str, str]]] = defaultdict(list)
    user = ""
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.split()[1]
        elif line.startswith("topic "):
            _, access, pattern = line.split(maxsplit=2)
            rules[user].append((access, pattern))
    return rules


def test_committed_acl_is_generated_from_the_sample_community() -> None:
    devices, workers = community_accounts(load_community_yaml(demo_community_path()))
    generated = "\n".join(acl_lines(devices, workers)) + "\n"
    assert (ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8") == generated


def test_each_device_may_publish_only_on_its_own_topics() -> None:
    spec = load_community_yaml(demo_community_path())
    rules = _acl((ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8"))
    native = [d for d in spec.devices if d.profile == "native"]
    assert native, "the sample community has native devices"

    def may_write(user: str, topic: str) -> bool:
        return any(a == "write" and topic_matches_sub(p, topic) for a, p in rules[user])

    first, second = native[0], native[1]
    for kind in ("telemetry", "event", "status"):
        own = f"safety/demo/{first.type}/{first.id}/{kind}"
        assert may_write(first.id, own)
        assert not may_write(second.id, own), "a device cannot publish as another"
    assert not may_write(first.id, f"safety/demo/{first.type}/{first.id}/cmd")
    # a device answers its commands on its own cmd_ack topic, and only there
    assert may_write(first.id, f"safety/demo/{first.type}/{first.id}/cmd_ack")
    assert not may_write(second.id, f"safety/demo/{first.type}/{first.id}/cmd_ack")
    assert may_write("gateway", f"safety/demo/gas/{first.id}/cmd")
    assert not may_write(first.id, "safety/demo/workers/zhang-min/incidents")
    assert may_write("gateway", "safety/demo/workers/zhang-min/incidents")
    assert may_write("gateway", f"safety/demo/charger/{first.id}/cmd")


def test_each_person_paged_in_the_app_reads_only_their_own_pages() -> None:
    spec = load_community_yaml(demo_community_path())
    rules = _acl((ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8"))
    paged = [p for p in spec.people if p.active and p.channels.mqtt]
    assert len(paged) > 1
    for person in paged:
        assert rules[person.id] == [("read", f"safety/demo/workers/{person.id}/incidents")]
    assert all(p.id not in rules for p in spec.people if not p.channels.mqtt)


NATIVE = ("demo", "smoke", "smk-1", "native", None)
GATEWAY_CLIENT_IDS = ("safety-gateway-1", "safety-gateway-1-alarms")


@pytest.mark.parametrize(
    ("devices", "workers", "named"),
    [
        (
            [NATIVE, ("demo", "sos", "zhang-min", "native", None)],
            [("demo", "zhang-min")],
            "would share the broker username 'zhang-min'",
        ),  # a device and a person
        (
            [NATIVE, ("north", "smoke", "smk-1", "native", None)],
            [],
            "would share the broker username 'smk-1'",
        ),  # one device id on two sites
        ([NATIVE], [("demo", "gateway")], "would share the broker username 'gateway'"),
        (
            [("demo", "smoke", "safety-gateway-1-alarms", "native", None)],
            [],
            "is a client id of the gateway",
        ),
        ([NATIVE], [("demo", "+")], "cannot be a broker username"),
    ],
)
def test_the_acl_refuses_an_account_that_could_pass_for_another(
    devices: list[AclDevice], workers: list[AclWorker], named: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        acl_lines(devices, workers, gateway_client_ids=GATEWAY_CLIENT_IDS)


async def test_the_acl_command_guards_the_gateways_client_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.tools import write_acl

    settings = Settings(mode="development", mqtt={"client_id": "safety-gateway-1"})
    assert settings.mqtt.client_ids == GATEWAY_CLIENT_IDS
    # A gateway configured with a device's name as its client id: that device would hold it.
    clash = Settings(mode="development", mqtt={"client_id": "smk-s1"})
    assert await write_acl(clash, demo_community_path(), tmp_path / "acl") == 2
    assert "'smk-s1' is a client id of the gateway" in capsys.readouterr().err
    assert not (tmp_path / "acl").exists()


async def test_the_acl_from_the_registry_is_the_acl_from_the_community_file(
    tmp_path: Path,
) -> None:
    from core.db import make_engine, make_sessionmaker
    from gateway.migrations import runner as migrate
    from gateway.registry.loader import apply
    from gateway.tools import write_acl

    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await migrate.upgrade(url)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        await apply(session, load_community_yaml(demo_community_path()))
        await session.commit()
    await engine.dispose()
    settings = Settings(mode="development", database={"url": url})
    assert await write_acl(settings, None, tmp_path / "from-registry") == 0
    assert await write_acl(settings, demo_community_path(), tmp_path / "from-file") == 0
    from_registry = (tmp_path / "from-registry").read_text(encoding="utf-8")
    assert from_registry == (tmp_path / "from-file").read_text(encoding="utf-8")
    assert "user zhang-min\ntopic read safety/demo/workers/zhang-min/incidents\n" in from_registry


def test_configured_deadlines_drive_the_escalation_ladder() -> None:
    from alerting.models import Category, Severity
    from alerting.routing.tree import route_labels
    from gateway.app import routing_policy

    settings = Settings(mode="development", alerting={"escalation": {"critical_ack_s": 45}})
    labels = route_labels(
        severity=Severity.CRITICAL,
        category=Category.SAFETY,
        rule_id="smoke.alarm",
        device_type="smoke",
        site="demo",
        grid_id="demo.g1",
        building_id=None,
        household_flags=frozenset(),
    )
    steps = [at for at, _i, _s in routing_policy(settings).ladder_for(labels).schedule(0, 100_000)]
    assert steps[:2] == [0, 45_000], "the second step comes one configured deadline after the first"
