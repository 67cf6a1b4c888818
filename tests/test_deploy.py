"""The compose stack is consistent (no Docker engine here): it parses, its wiring names real
settings, and the Mosquitto ACL lets each device publish only on its own topics."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from paho.mqtt.client import topic_matches_sub

from gateway.registry.loader import load_community_yaml
from gateway.sample import demo_community_path
from gateway.settings import Settings, load_settings
from gateway.tools import acl_lines

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


def test_gateway_environment_and_config_file_are_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = COMPOSE["services"]["gateway"]["environment"]
    for name, value in env.items():
        assert name.startswith("SAFETY_")
        # ${VAR:?…} placeholders get stand-in values, long enough for secrets.
        monkeypatch.setenv(name, re.sub(r"\$\{[^}]+\}", "x" * 40, str(value)))
    settings = load_settings(ROOT / "deploy" / "gateway.yaml")
    assert settings.mqtt.host == "mosquitto"
    assert settings.timeseries.backend == "influxdb2"
    assert settings.database.url.startswith("postgresql+asyncpg://")


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
    spec = load_community_yaml(demo_community_path())
    devices = [(spec.site.code, d.type, d.id, d.profile, d.vendor_identity) for d in spec.devices]
    generated = "\n".join(acl_lines(devices)) + "\n"
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
    assert not may_write(first.id, "safety/demo/workers/zhang-min/incidents")
    assert may_write("gateway", "safety/demo/workers/zhang-min/incidents")
    assert may_write("gateway", f"safety/demo/charger/{first.id}/cmd")


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
