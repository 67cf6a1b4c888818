"""SimulatedDevice: one device's identity, seq counter, battery and link; publishes per the contract."""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from simulators.codecs import Encoded, Format, encode, native_topic
from simulators.devices import Emission, behaviour_for
from simulators.inventory import DeviceSpec
from simulators.mqtt import MqttLink, Will

OFFLINE = orjson.dumps({"online": False})


def initial_seq() -> int:
    """A seq start that grows with wall time (10 per second), below Alink's 2^32 id limit.

    The gateway drops duplicates by (device_id, seq); starting every run at 1 would make a
    second run of the same scenario look like a redelivery of the first.
    """
    return int((time.time() - 1_700_000_000) * 10) % 4_000_000_000


class SimulatedDevice:
    """A device on the wire: native ``safety/{site}/{type}/{id}/{kind}`` or a vendor envelope.

    Every payload carries ``ts`` (epoch ms, simulated clock) and ``seq`` (per-device counter);
    ``status`` is retained. With a per-device link the Last Will is ``{"online": false}``,
    retained on the status topic.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        fmt: Format = "native",
        *,
        seed: int | None = None,
        seq_start: int | None = None,
        battery_pct: float | None = None,
    ) -> None:
        self.spec = spec
        self.fmt = fmt
        self.rng = random.Random(zlib.crc32(spec.device_id.encode()) if seed is None else seed)
        self.seq = initial_seq() if seq_start is None else seq_start
        mains = spec.type in ("gate", "charger")
        self.battery_pct = battery_pct if battery_pct is not None else (
            100.0 if mains else self.rng.uniform(35, 100))
        self.temp_bias = self.rng.gauss(0, 1.2)
        self.rssi_centre = self.rng.uniform(-110, -75)
        self.link: MqttLink | None = None

    @property
    def status_topic(self) -> str:
        return native_topic(self.spec, "status")

    def will(self) -> Will:
        """The Last Will a per-device connection registers."""
        return Will(self.status_topic, OFFLINE, qos=1, retain=True)

    def drain(self, pct: float) -> None:
        """Battery use; never below zero."""
        self.battery_pct = max(0.0, self.battery_pct - pct)

    def payload(self, kind: str, fields: dict[str, Any], ts_ms: int) -> dict[str, Any]:
        """The canonical payload: ``ts``, next ``seq``, then the fields (status: ``online``)."""
        self.seq += 1
        return {"ts": ts_ms, "seq": self.seq, **fields}

    def messages(self, kind: str, fields: dict[str, Any], ts_ms: int) -> list[Encoded]:
        """Encoded (topic, payload, retain) for one canonical message in this device's format."""
        return encode(self.fmt, self.spec, kind, self.payload(kind, fields, ts_ms))

    def behaviour(self, start_ms: int) -> Iterator[Emission]:
        """This device's everyday behaviour from ``start_ms`` on (see simulators.devices)."""
        return behaviour_for(self.spec.type)(self, start_ms)

    async def connect(self, broker_url: str) -> MqttLink:
        """Open this device's own connection, with its Last Will, and announce it online."""
        will = self.will() if self.fmt == "native" else None
        self.link = MqttLink(broker_url, f"sim-{self.spec.site}-{self.spec.device_id}"[:64], will)
        await self.link.connect()
        return self.link

    async def publish(
        self, kind: str, fields: dict[str, Any], ts_ms: int, link: MqttLink | None = None,
        qos: int = 1,
    ) -> list[Encoded]:
        """Publish one canonical message (on ``link`` or the device's own) and return what was sent."""
        target = link or self.link
        if target is None:
            raise RuntimeError(f"{self.spec.device_id}: not connected")
        sent = self.messages(kind, fields, ts_ms)
        for topic, body, retain in sent:
            await target.publish(topic, body, qos, retain)
        return sent
