"""Every MQTT topic of the native wire contract (README "Native wire contract"), in one place.

Uplink, device → gateway: ``safety/{site}/{type}/{device_id}/{kind}``, kind ``telemetry`` |
``event`` | ``status`` | ``cmd_ack`` (the answer to a command: ``{"cmd_id", "ok", "state"}``). Downlink, gateway → people and devices: a worker's app
``safety/{site}/workers/{worker_id}/incidents``, a device's commands
``safety/{site}/{type}/{device_id}/cmd`` (``{"cmd_id", "command", "port"?, "ts"}``), and the gateway's own ``safety/{site}/gateway/status``.
Vendor envelopes (Alink, IoTDA) are topic patterns of their device profiles, not listed here.
"""

from __future__ import annotations

ROOT = "safety"
UPLINK_KINDS = ("telemetry", "event", "status", "cmd_ack")

#: Everything under the native root (the gateway's bulk subscription).
ALL = f"{ROOT}/#"
#: Every device's events: alarms come in on a connection of their own.
ALL_EVENTS = f"{ROOT}/+/+/+/event"
#: Every worker's app topic (benchmarks and the duty tools listen here).
ALL_WORKER_PAGES = f"{ROOT}/+/workers/+/incidents"


def uplink(site: str, device_type: str, device_id: str, kind: str) -> str:
    """Where a device publishes a reading of ``kind``."""
    return f"{ROOT}/{site}/{device_type}/{device_id}/{kind}"


def command(site: str, device_type: str, device_id: str) -> str:
    """Where the gateway sends a device its commands (e.g. cut a charger port's power)."""
    return f"{ROOT}/{site}/{device_type}/{device_id}/cmd"


def cmd_ack(site: str, device_type: str, device_id: str) -> str:
    """Where a device answers a command: ``{"cmd_id", "ok", "state"}`` (one per attempt)."""
    return f"{ROOT}/{site}/{device_type}/{device_id}/cmd_ack"


def worker_pages(site: str, worker_id: str) -> str:
    """A worker's app: one JSON incident per QoS 1 message."""
    return f"{ROOT}/{site}/workers/{worker_id}/incidents"


def gateway_status(site: str) -> str:
    """The gateway's own retained online/offline status (and its Last Will)."""
    return f"{ROOT}/{site}/gateway/status"


def site_of(topic: str) -> str | None:
    """The ``{site}`` of a native topic ``safety/{site}/…``; None for any other topic."""
    parts = topic.split("/", 2)
    if len(parts) == 3 and parts[0] == ROOT and _is_site(parts[1]):
        return parts[1]
    return None


def _is_site(text: str) -> bool:
    # the contract's site code: [a-z0-9-]{1,32}
    return 0 < len(text) <= 32 and not text.strip("abcdefghijklmnopqrstuvwxyz0123456789-")


def is_native_event(topic: str) -> bool:
    """``safety/{site}/{type}/{id}/event`` (what the alarm connection subscribes to)."""
    return topic.endswith("/event") and topic.startswith(ROOT + "/") and topic.count("/") == 4


def is_downlink(topic: str) -> bool:
    """A worker page, a device command or the gateway's status: what the gateway publishes,
    seen again by a connection that subscribes to all of ``safety/#``, not device uplink."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == ROOT:
        return (parts[2] == "workers" and parts[4] == "incidents") or parts[4] == "cmd"
    return len(parts) == 4 and parts[0] == ROOT and parts[2:] == ["gateway", "status"]
