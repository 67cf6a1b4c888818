"""Property test: whatever extreme value a device sends in any field of any profile, decode
either refuses it with a reason or hands on a reading that every store can hold — the real
embedded store, a real influxd and a real PostgreSQL (quarantine rows and alert state).

A value that decode lets through and a store then refuses is the poison-message defect: it
used to stop the embedded store's flush for every device (a seq of 2**63).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerting.state import SqlAlertStateStore, StateChange
from core.db import Base, make_engine, make_sessionmaker
from core.readings import Reading, Rejection
from device_profiles import load_profiles
from device_profiles.compiled import DecodeError, FieldCheck
from gateway.quarantine import Quarantine
from gateway.storage import StoredReading, TimeSeriesWriter
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.embedded import EmbeddedStore
from gateway.storage.influx import Influx1Writer
from tests.services import Influxd

REGISTRY = load_profiles()
NOW = 1_764_000_000_000
# Every (profile, field) the gateway can be sent, vendor fields under their vendor key.
FIELDS = sorted(
    (p.id, p.device_type, section, name)
    for p in REGISTRY.profiles()
    for section, specs in (("telemetry", p.telemetry), ("event", p.events.fields))
    for name in specs
)
EDGES = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]
extreme_numbers = (
    st.sampled_from(EDGES)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1e308, 5e-324, -0.0, 1.7976931348623157e308, 1e19, 2.5])
)
raw_values = extreme_numbers | st.booleans() | st.text(max_size=40) | st.none()
stamps = (
    st.none()
    | st.integers(min_value=0, max_value=NOW)
    | extreme_numbers
    | st.sampled_from(
        [
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "2025-11-24T16:00:00Z",
        ]
    )
)
counters = st.none() | st.integers(min_value=0, max_value=2**32) | extreme_numbers
# Most fields accept small numbers (percentages, temperatures, ports), so ts and seq extremes
# reach the stores with an accepted field beside them.
ordinary = st.integers(min_value=0, max_value=100) | st.floats(min_value=0, max_value=100)
BATTERY = ("native.smoke", "smoke", "telemetry", "battery_pct")


@dataclass
class Stores:
    runner: asyncio.Runner
    embedded: EmbeddedStore
    influx: Influx1Writer
    quarantine: Quarantine
    alert_state: SqlAlertStateStore

    def hold(self, readings: list[Reading], rejection: Rejection | None) -> None:
        """Every store takes what decode produced; any exception fails the example."""
        self.runner.run(self._hold(readings, rejection))

    async def _hold(self, readings: list[Reading], rejection: Rejection | None) -> None:
        batch = [StoredReading(r, "g1") for r in readings]
        writers: list[TimeSeriesWriter] = [self.embedded, self.influx]
        for writer in writers:
            if batch:
                await writer.write(batch)
        for r in readings:
            self.quarantine.refuse(NOW, r, "kept as an unstorable reading would be")
            state = {"status": "firing", "reading_ts_ms": r.ts_ms, "reading_seq": r.seq}
            value = next((v for v in r.fields.values() if isinstance(v, int | float)), None)
            if value is not None:
                state["value"] = value
            await self.alert_state.save([StateChange("extreme", r.device_id, state, r.ts_ms)])
        if rejection is not None:
            self.quarantine.add(NOW, rejection.topic, b"{}", rejection)
        await self.quarantine.flush()


@pytest.fixture
def stores(tmp_path: Path, influxd: Influxd, influx_db: str, postgres_url: str) -> Iterator[Stores]:
    runner = asyncio.Runner()
    engine = make_engine(postgres_url)

    async def create() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    runner.run(create())
    sessions = make_sessionmaker(engine)
    influx = Influx1Writer.from_settings(
        TimeSeriesSettings(backend="influxdb1", url=influxd.url, database=influx_db)
    )
    yield Stores(
        runner,
        EmbeddedStore(tmp_path / "ts.sqlite3"),
        influx,
        Quarantine(sessions),
        SqlAlertStateStore(sessions),
    )
    runner.run(influx.close())
    runner.run(engine.dispose())
    runner.close()


def _native_topic(device_type: str, kind: str) -> str:
    return f"safety/demo/{device_type}/X-1/{kind}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(field=st.sampled_from(FIELDS), value=ordinary | raw_values, ts=stamps, seq=counters)
# The values that once got through: a seq past 63 bits, a ts past what InfluxDB can hold.
@example(field=BATTERY, value=50, ts=NOW, seq=2**63)
@example(field=BATTERY, value=50, ts=NOW, seq=2**64 - 1)
@example(field=BATTERY, value=50, ts=2**62, seq=1)
@example(field=BATTERY, value=50, ts="1969-12-31T23:59:59Z", seq=1)
def test_an_extreme_value_is_refused_at_decode_or_held_by_every_store(
    stores: Stores, field: tuple[str, str, str, str], value: Any, ts: Any, seq: Any
) -> None:
    profile_id, device_type, section, name = field
    profile = REGISTRY.get(profile_id)
    spec = (profile.telemetry if section == "telemetry" else profile.events.fields)[name]
    readings: list[Reading] = []
    rejection: Rejection | None = None
    if profile.codec == "native":
        # The real wire path: JSON text (stdlib json writes integers of any size), then decode.
        body: dict[str, Any] = {"ts": ts, "seq": seq, name: value}
        kind = "telemetry"
        if section == "event":
            kind, body["event"] = "event", sorted(profile.events.names)[0]
        payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        result = REGISTRY.decode(_native_topic(device_type, kind), payload, NOW)
        if isinstance(result, Rejection):
            rejection = result
        else:
            readings = result
    else:
        # A vendor field: its own checker (scale, range) as the vendor codecs call it.
        try:
            canonical = FieldCheck(name, spec).check(value)
        except DecodeError:
            return
        readings = [
            Reading("demo", device_type, "X-1", "telemetry", NOW, 1, {name: canonical})
        ]
    stores.hold(readings, rejection)
