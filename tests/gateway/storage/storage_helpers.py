"""Reading factories shared by the storage tests."""

from __future__ import annotations

from gateway.envelope import FieldValue, Reading
from gateway.storage import StoredReading

T0 = 1_764_000_000_000


def smoke(
    device: str = "SD-1",
    ts: int = T0,
    seq: int | None = 1,
    site: str = "demo",
    grid: str = "g1",
    **fields: FieldValue,
) -> StoredReading:
    values: dict[str, FieldValue] = {"temp_c": 21.5, "battery_pct": 90}
    values.update(fields)
    return StoredReading(Reading(site, "smoke", device, "telemetry", ts, seq, values), grid)


def alarm(device: str = "SD-1", ts: int = T0, seq: int = 1) -> StoredReading:
    return StoredReading(Reading("demo", "smoke", device, "event", ts, seq, {}, "alarm"), "g1")
