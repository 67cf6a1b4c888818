"""Operator tools behind the CLI: the route tester and the Mosquitto ACL writer."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path

from alerting.models import Category
from alerting.notify.mqtt import worker_topic
from alerting.routing.directory import ChannelKind
from alerting.routing.router import route_test as plan_route
from alerting.rules.loader import load_rules
from core import topics
from core.db import make_engine, make_sessionmaker
from gateway.cli_config import require_schema
from gateway.directory import RegistryDirectory
from gateway.registry.service import Registry
from gateway.registry.spec import CommunitySpec
from gateway.settings import Settings


async def route_test(settings: Settings, site: str, device_id: str, rule_id: str) -> int:
    """Print who is notified when, if ``rule_id`` fired for ``device_id`` now and nobody acked."""
    rules = load_rules(settings.alerting.rules_dir)
    rule = rules.by_id.get(rule_id)
    if rule is None:
        print(f"unknown rule {rule_id!r}; known: {', '.join(sorted(rules.by_id))}", file=sys.stderr)
        return 2
    await require_schema(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        sessions = make_sessionmaker(engine)
        registry = Registry(sessions)
        await registry.load()
        ctx = registry.context(site, device_id)
        if ctx is None:
            print(f"device {device_id!r} of site {site!r} is not in the registry", file=sys.stderr)
            return 2
        directory = RegistryDirectory(registry, list(ChannelKind))
        now = int(datetime.now(UTC).timestamp() * 1000)
        from gateway.app import routing_policy

        plan = await plan_route(
            directory,
            ctx,
            severity=rule.severity,
            now_ms=now,
            rule_id=rule_id,
            category=Category(rule.category),
            policy=routing_policy(settings),
        )
        print(f"{rule_id} ({rule.severity}) at {device_id}, grid {ctx.grid_id}:")
        for at_ms, paged in plan:
            offset = (at_ms - now) / 60_000
            who = (
                ", ".join(f"{p.recipient.name or p.recipient.person_id} [{p.role}]" for p in paged)
                or "(nobody found: check the registry)"
            )
            print(f"  +{offset:6.1f} min  {who}")
    finally:
        await engine.dispose()
    return 0


AclDevice = tuple[str, str, str, str, str | None]  # site, type, device id, profile, vendor identity
AclWorker = tuple[str, str]  # site, person id of someone paged in the worker app

# A broker username: it is also a topic level and, on the device listeners, the client id.
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def device_topics(
    site: str, device_type: str, device_id: str, profile: str, vendor_identity: str | None
) -> list[str]:
    """The ACL lines of one device: its own uplink topics (native or its vendor's envelope)."""
    if profile.startswith("aliyun.") and vendor_identity:
        return [f"topic write /sys/{vendor_identity}/thing/event/#"]
    if profile.startswith("huawei.") and vendor_identity:
        return [
            f"topic write $oc/devices/{vendor_identity}/sys/properties/report",
            f"topic write $oc/devices/{vendor_identity}/sys/events/up",
        ]
    return [
        *(f"topic write {topics.uplink(site, device_type, device_id, k)}" for k in topics.UPLINK_KINDS),
        f"topic read {topics.command(site, device_type, device_id)}",
    ]


def worker_topics(site: str, person_id: str) -> list[str]:
    """The ACL lines of one worker app: it reads its own pages and nothing else. Mosquitto 2
    grants every subscription and checks ``read`` as it delivers, so without this line the
    app subscribes fine and never receives a page."""
    return [f"topic read {worker_topic(site, person_id)}"]


def acl_lines(
    devices: Iterable[AclDevice],
    workers: Iterable[AclWorker] = (),
    gateway_user: str = "gateway",
    gateway_client_ids: Collection[str] = (),
) -> list[str]:
    """Mosquitto ACL: each device (username = device id) writes only its own uplink topics and
    reads only its own command topic; each worker app (username = person id) reads only its
    own pages; the gateway reads everything and writes downlinks.

    Every account must have a username of its own, and none may be one of the gateway's
    ``gateway_client_ids``: the device listeners use the username as client id, so such an
    account would take over the gateway's session.
    """
    owners: dict[str, str] = {gateway_user: "the gateway"}

    def claim(username: str, owner: str) -> None:
        if not _USERNAME.fullmatch(username):
            raise ValueError(
                f"{owner}: {username!r} cannot be a broker username "
                "(letters, digits, '_', '.', '-'; 1 to 64)"
            )
        if username in owners:
            raise ValueError(
                f"{owner} and {owners[username]} would share the broker username {username!r}"
            )
        if username in gateway_client_ids:
            raise ValueError(
                f"{owner}: the broker username {username!r} is a client id of the gateway "
                "(mqtt.client_id); it would take over the gateway's session"
            )
        owners[username] = owner

    lines = [
        "# Generated by `safety-gateway acl` from the registry. One block per account: the",
        "# gateway, each device, each person paged in the worker app.",
        f"user {gateway_user}",
        f"topic read {topics.ALL}",
        "topic read /sys/#",
        "topic read $oc/devices/#",
        f"topic write {topics.ALL_WORKER_PAGES}",
        f"topic write {topics.command('+', '+', '+')}",
        f"topic write {topics.gateway_status('+')}",
        "",
    ]
    for site, device_type, device_id, profile, identity in sorted(devices, key=lambda d: d[:3]):
        claim(device_id, f"device {site}/{device_id}")
        lines.append(f"user {device_id}")
        lines += device_topics(site, device_type, device_id, profile, identity)
        lines.append("")
    for site, person_id in sorted(workers):
        claim(person_id, f"person {site}/{person_id}")
        lines.append(f"user {person_id}")
        lines += worker_topics(site, person_id)
        lines.append("")
    return lines


def community_accounts(spec: CommunitySpec) -> tuple[list[AclDevice], list[AclWorker]]:
    """The broker accounts of a community file: its devices and the people paged in the app."""
    site = spec.site.code
    devices: list[AclDevice] = [
        (site, d.type, d.id, d.profile, d.vendor_identity) for d in spec.devices
    ]
    workers: list[AclWorker] = [(site, p.id) for p in spec.people if p.active and p.channels.mqtt]
    return devices, workers


async def write_acl(settings: Settings, community: Path | None, out: Path) -> int:
    if community is not None:
        from gateway.registry.loader import load_community_yaml

        devices, workers = community_accounts(load_community_yaml(community))
    else:
        await require_schema(settings.database.url)
        engine = make_engine(settings.database.url)
        registry = Registry(make_sessionmaker(engine))
        await registry.load()
        devices = [
            (
                c.site,
                c.device_type,
                c.device_id,
                registry.profile(c.site, c.device_id) or "native",
                registry.vendor_identity(c.site, c.device_id),
            )
            for c in registry.devices()
        ]
        # Paged in the app unless they refused it (as gateway.directory decides).
        workers = [
            (p.site, p.id) for p in registry.people() if p.active and p.channels.get("mqtt", True)
        ]
        await engine.dispose()
    try:
        lines = acl_lines(devices, workers, gateway_client_ids=settings.mqtt.client_ids)
    except ValueError as exc:
        print(f"safety-gateway acl: {exc}", file=sys.stderr)
        return 2
    text = "\n".join(lines) + "\n"
    if str(out) == "-":
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(out.write_text, text, encoding="utf-8")
    return 0
