"""A fleet of simulated devices at a rate multiplier, from real-life traffic to a load test."""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from simulators.claims import Claims
from simulators.clock import SimClock, anchored_start_ms, iso_local, wall_ms
from simulators.codecs import Format, covers
from simulators.device import SimulatedDevice
from simulators.devices import Emission
from simulators.inventory import DeviceSpec
from simulators.mqtt import MqttLink

Connections = Literal["shared", "device"]
#: Per-device connections each cost a network thread; beyond this use the shared connection.
MAX_DEVICE_CONNECTIONS = 2_000


@dataclass
class FleetReport:
    """What a fleet run achieved."""

    devices: int
    messages: int
    seconds: float
    rate: float  # messages per second actually achieved
    rate_multiplier: float
    qos: int
    fmt: str
    sim_start_ms: int
    sim_end_ms: int
    by_kind: Counter[str] = field(default_factory=Counter)
    unacknowledged: int = 0
    #: device types that spoke native because no profile of ``fmt`` covers them
    native_types: tuple[str, ...] = ()

    def summary(self) -> str:
        speed = "max" if math.isinf(self.rate_multiplier) else f"x{self.rate_multiplier:g}"
        return (f"{self.messages} messages from {self.devices} devices in {self.seconds:.1f} s: "
                f"{self.rate:,.0f} msg/s achieved (rate {speed}, {self.fmt}, QoS {self.qos}); "
                f"simulated time reached {iso_local(self.sim_end_ms)}; "
                f"by kind {dict(self.by_kind)}; unacknowledged {self.unacknowledged}"
                + (f"; native (no {self.fmt} profile): {', '.join(self.native_types)}"
                   if self.native_types else ""))


class Fleet:
    """Devices of every type, each following its behaviour model, merged in time order.

    ``rate`` multiplies time: 1 is real-life traffic, 3600 an hour per second; ``math.inf``
    publishes as fast as the connection takes it (``ts`` is then the wall clock, so a gateway
    accepts it). With a finite rate the simulated clock is anchored so that it reaches "now" at
    the end of the run and no ``ts`` lies in the future.

    With a vendor ``fmt``, devices of a type no profile of that vendor covers speak native (a
    community mixes makes), so everything sent is something the gateway decodes; the report
    names those types.
    """

    def __init__(
        self,
        devices: list[DeviceSpec],
        broker_url: str,
        *,
        rate: float = 1.0,
        fmt: Format = "native",
        qos: int = 0,
        connections: Connections = "shared",
        max_inflight: int = 65_000,
        anchor: tuple[int, int] | None = None,
        site: str | None = None,
    ) -> None:
        if connections == "device" and len(devices) > MAX_DEVICE_CONNECTIONS:
            raise ValueError(f"per-device connections are limited to {MAX_DEVICE_CONNECTIONS}")
        self.sims = [SimulatedDevice(d, fmt if covers(fmt, d.type) else "native")
                     for d in devices]
        self.native_types = tuple(sorted({d.type for d in devices if not covers(fmt, d.type)}))
        self.broker_url = broker_url
        self.rate = rate
        self.fmt = fmt
        self.qos = qos
        self.connections = connections
        self.max_inflight = max_inflight
        self.links: list[MqttLink] = []
        #: (wall ms, simulated ms) of a gateway clock to follow at ``rate``
        self.anchor = anchor
        #: scenarios take devices over from the fleet while they play (simulators.claims)
        self.claims = Claims(broker_url, site) if site else None

    def _connect(self) -> list[MqttLink]:
        if self.connections == "shared":
            link = MqttLink(self.broker_url, None, track=False, manual=True, count_acks=self.qos > 0,
                            max_inflight=self.max_inflight)
            link.connect_sync()
            return [link] * len(self.sims)
        out = []
        for sim in self.sims:
            will = sim.will() if sim.fmt == "native" else None
            link = MqttLink(self.broker_url, f"sim-{sim.spec.site}-{sim.spec.device_id}"[:64],
                            will, track=False, max_inflight=self.max_inflight)
            link.connect_sync()
            out.append(link)
        return out

    def run(
        self,
        duration_s: float,
        report_every: float = 5.0,
        on_report: Callable[[str], None] | None = None,
    ) -> FleetReport:
        """Publish for ``duration_s`` real seconds and report the achieved rate (blocking)."""
        unbounded = math.isinf(self.rate)
        if self.anchor is not None and not unbounded:
            start_ms = self.anchor[1] + int((wall_ms() - self.anchor[0]) * self.rate)
        else:
            start_ms = (wall_ms() if unbounded
                        else anchored_start_ms(duration_s * self.rate, self.rate))
        clock = SimClock(1.0 if unbounded else self.rate, start_ms)
        links = self._connect()
        if self.claims is not None:
            self.claims.start()
        distinct = {id(link): link for link in links}
        report = FleetReport(len(self.sims), 0, 0.0, 0.0, self.rate, self.qos, self.fmt,
                             start_ms, start_ms, native_types=self.native_types)
        try:
            self._announce(links, start_ms, report)
            self._loop(links, clock, duration_s, unbounded, report, report_every, on_report)
            for link in distinct.values():
                link.drain(10)
        finally:
            report.unacknowledged = sum(max(0, lk.sent - lk.completed) for lk in distinct.values())
            for link in distinct.values():
                link.close()
            if self.claims is not None:
                self.claims.stop()
        return report

    def _announce(self, links: list[MqttLink], ts: int, report: FleetReport) -> None:
        for sim, link in zip(self.sims, links, strict=True):
            for topic, body, retain in sim.messages("status", {"online": True}, ts):
                link.publish_nowait(topic, body, 1, retain)
                report.by_kind["status"] += 1

    def _loop(
        self, links: list[MqttLink], clock: SimClock, duration_s: float, unbounded: bool,
        report: FleetReport, report_every: float, on_report: Callable[[str], None] | None,
    ) -> None:
        streams: list[Iterator[Emission]] = [s.behaviour(clock.start_ms) for s in self.sims]
        heap: list[tuple[float, int, str, dict[str, object]]] = []
        for i, stream in enumerate(streams):
            off, kind, fields = next(stream)
            heap.append((off, i, kind, fields))
        heapq.heapify(heap)
        began = time.monotonic()
        clock.start()
        next_report = began + report_every
        sent = 0
        claims = self.claims
        while True:
            now = time.monotonic()
            if now - began >= duration_s:
                break
            if now >= next_report and on_report is not None:
                on_report(f"[{now - began:5.1f} s] {sent} sent, {sent / (now - began):,.0f} msg/s")
                next_report += report_every
            horizon = math.inf if unbounded else (now - began) * clock.speed
            if heap[0][0] > horizon:
                time.sleep(min(0.05, (heap[0][0] - horizon) / clock.speed))
                continue
            for _ in range(500):  # a batch, then look at the clock again
                if heap[0][0] > horizon:
                    break
                off, i, kind, fields = heap[0]
                sim = self.sims[i]
                ts = wall_ms() if unbounded else clock.at_ms(off)
                if claims is None or not claims.holds(sim.spec.device_id):
                    for topic, body, retain in sim.messages(kind, fields, ts):
                        links[i].publish_nowait(topic, body, self.qos, retain)
                        sent += 1
                    report.by_kind[kind] += 1
                report.sim_end_ms = ts
                n_off, n_kind, n_fields = next(streams[i])
                heapq.heapreplace(heap, (n_off, i, n_kind, n_fields))
        report.seconds = time.monotonic() - began
        report.messages = sent
        report.rate = sent / report.seconds if report.seconds else 0.0
