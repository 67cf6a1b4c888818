"""Device availability for the board: online, last seen, battery — from status messages and heartbeats.

A device is offline when it said so (its retained status / Last Will) or when nothing came
from it for its profile's ``offline_after``. The rule engine's absence rules raise the
incidents; this board only answers "what is the state of each device now" cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.readings import DeviceContext, Reading
from device_profiles import ProfileRegistry
from gateway.live import LiveHub


@dataclass(slots=True)
class DeviceStatus:
    last_seen_ms: int = 0
    said_online: bool | None = None
    battery_pct: float | None = None


class DeviceStatusBoard:
    def __init__(self, profiles: ProfileRegistry, live: LiveHub) -> None:
        self._live = live
        self._offline_after_ms = {
            t: int(profiles.profile_for(t).heartbeat.offline_after.total_seconds() * 1000)
            for t in profiles.device_types()
        }
        self._devices: dict[tuple[str, str], DeviceStatus] = {}
        self._types: dict[tuple[str, str], str] = {}

    def update(self, reading: Reading, ctx: DeviceContext) -> None:
        # Runs for every message: exact-class checks and identity compares (bools and None
        # are singletons) keep it to a few dict and attribute operations.
        key = (ctx.site, ctx.device_id)
        status = self._devices.get(key)
        if status is None:
            status = self._devices[key] = DeviceStatus()
            self._types[key] = ctx.device_type
        was = status.said_online
        if reading.ts_ms > status.last_seen_ms:
            status.last_seen_ms = reading.ts_ms
        fields = reading.fields
        if reading.kind == "status":
            status.said_online = bool(fields.get("online"))
        elif was is False:
            status.said_online = True  # it speaks, so it is back
        battery = fields.get("battery_pct")
        if battery is not None:
            cls = battery.__class__
            if cls is int or cls is float or (
                isinstance(battery, int | float) and not isinstance(battery, bool)
            ):
                status.battery_pct = float(battery)
        now = status.said_online
        if now is not was and now is not None:
            self._live.publish(
                "device_status",
                ctx.site,
                ctx.grid_id,
                {
                    "device_id": ctx.device_id,
                    "online": now,
                    "building_id": ctx.building_id,
                    "at_ms": reading.ts_ms,
                },
            )

    def get(self, site: str, device_id: str, now_ms: int) -> dict[str, object]:
        status = self._devices.get((site, device_id))
        if status is None:
            return {"online": None, "last_seen_ms": None, "battery_pct": None}
        return {
            "online": self._online(site, device_id, status, now_ms),
            "last_seen_ms": status.last_seen_ms,
            "battery_pct": status.battery_pct,
        }

    def _online(self, site: str, device_id: str, status: DeviceStatus, now_ms: int) -> bool:
        if status.said_online is False:
            return False
        limit = self._offline_after_ms.get(self._types[(site, device_id)], 3_600_000)
        return now_ms - status.last_seen_ms <= limit
