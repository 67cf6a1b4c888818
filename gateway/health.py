"""Health and metrics: what the running stages say about themselves, read at request time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerting.pipeline import AlertPipeline
from gateway.ingest import Ingest
from gateway.mqtt import MqttSession
from gateway.quarantine import Quarantine
from gateway.storage.spool import SpoolingWriter


@dataclass(frozen=True)
class HealthReport:
    """Per-component status — ``ok`` | ``degraded`` (working, but look) | ``down`` — and the
    same figures as Prometheus metrics."""

    sessions: Sequence[MqttSession]
    ingest: Ingest
    quarantine: Quarantine
    alerts: AlertPipeline
    spool: SpoolingWriter | None
    backend: str

    def components(self) -> dict[str, dict[str, Any]]:
        spool = self.spool.stats() if self.spool is not None else None
        ts_status = "ok"
        if spool is not None and spool.readings:
            ts_status = "degraded"  # the store is away; readings wait on local disk
        return {
            "mqtt": {
                "status": "ok" if all(m.connected.is_set() for m in self.sessions) else "down",
                "connections": {m.client_id: m.stats for m in self.sessions},
            },
            "ingest": {
                "status": "degraded" if self.ingest.stats.store_failures else "ok",
                **vars(self.ingest.stats),
                "quarantine_counts": dict(self.quarantine.counts),
            },
            "timeseries": {
                "status": ts_status,
                "backend": self.backend,
                "spool": spool._asdict() if spool is not None else None,
            },
            "alerting": {
                "status": "degraded" if self.alerts.failures else "ok",
                "backlog": self.alerts.backlog,
                "failures": self.alerts.failures,
            },
        }

    async def components_async(self) -> dict[str, dict[str, Any]]:
        return self.components()

    def metrics(self) -> CollectorRegistry:
        """A registry whose figures are read from the running stages at scrape time."""
        registry = CollectorRegistry()
        registry.register(_Collector(self))
        return registry


class _Collector:
    def __init__(self, report: HealthReport) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        r = self._report
        s = r.ingest.stats
        for name, value, doc in (
            ("received", s.received, "MQTT messages received"),
            ("stored", s.stored, "readings stored in the time-series store"),
            ("quarantined", s.quarantined, "messages quarantined"),
            ("duplicates", s.duplicates, "duplicate readings dropped (same device and seq)"),
        ):
            yield CounterMetricFamily(f"safety_ingest_{name}", doc, value=value)
        q = CounterMetricFamily(
            "safety_quarantine", "quarantined messages by reason", labels=["reason"]
        )
        for reason, count in r.quarantine.counts.items():
            q.add_metric([reason], count)
        yield q
        yield GaugeMetricFamily(
            "safety_mqtt_connected",
            "1 when connected to the broker",
            value=1 if r.sessions and r.sessions[0].connected.is_set() else 0,
        )
        yield GaugeMetricFamily(
            "safety_alert_backlog", "alert transitions waiting", value=r.alerts.backlog
        )
        if r.spool is not None:
            st = r.spool.stats()
            yield GaugeMetricFamily(
                "safety_spool_readings", "readings buffered on disk", value=st.readings
            )
            yield GaugeMetricFamily(
                "safety_spool_oldest_age_seconds",
                "age of the oldest buffered reading",
                value=st.oldest_age_s or 0,
            )
