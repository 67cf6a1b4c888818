"""Health and metrics: what the running stages say about themselves, read at request time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerting.pipeline import AlertPipeline
from gateway.cluster.node import ClusterNode
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
    cluster: ClusterNode | None = None

    def _sessions(self) -> list[MqttSession]:
        """This instance's connections, with those of the partitions it owns now."""
        return [*self.sessions, *(self.cluster.sessions if self.cluster is not None else ())]

    def components(self) -> dict[str, dict[str, Any]]:
        spool = self.spool.stats() if self.spool is not None else None
        ts_status = "ok"
        if spool is not None and spool.readings:
            ts_status = "degraded"  # the store is away; readings wait on local disk
        sessions = self._sessions()
        found = {
            "mqtt": {
                "status": "ok" if all(m.connected.is_set() for m in sessions) else "down",
                "connections": {m.client_id: m.stats for m in sessions},
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
        if self.cluster is not None:
            found["cluster"] = self._cluster(self.cluster)
        return found

    @staticmethod
    def _cluster(node: ClusterNode) -> dict[str, Any]:
        report = node.lease.report()
        # Leases not renewed for half their length: the database is slow or away, and past
        # most of a lease this instance stops its partitions' work (gateway/cluster/lease.py).
        late = report["last_renewed_s_ago"] > node.lease.lease_s / 2
        status = "degraded" if late or not node.feed.connected else "ok"
        return {"status": status, **report, "live_feed_connected": node.feed.connected}

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
        sessions = r._sessions()
        yield GaugeMetricFamily(
            "safety_mqtt_connected",
            "1 when connected to the broker",
            value=1 if sessions and all(m.connected.is_set() for m in sessions) else 0,
        )
        if r.cluster is not None:
            yield from _cluster_metrics(r.cluster)
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


def _cluster_metrics(node: ClusterNode) -> Iterator[Metric]:
    lease = node.lease
    report = lease.report()
    info = GaugeMetricFamily(
        "safety_cluster_instance", "this gateway instance (always 1)", labels=["instance_id"]
    )
    info.add_metric([lease.instance_id], 1)
    yield info
    yield GaugeMetricFamily(
        "safety_cluster_partitions_owned", "partitions this instance owns", value=len(lease.held)
    )
    yield GaugeMetricFamily(
        "safety_cluster_live_instances", "instances with a fresh heartbeat", value=len(lease.live)
    )
    yield GaugeMetricFamily(
        "safety_cluster_fair_share", "partitions this instance should own", value=lease.share
    )
    age = GaugeMetricFamily(
        "safety_cluster_lease_age_seconds",
        "how long this instance has owned the partition",
        labels=["partition"],
    )
    epoch = GaugeMetricFamily(
        "safety_cluster_lease_epoch", "the partition lease's epoch (fencing token)", labels=["partition"]
    )
    for partition, held in report["partitions"].items():
        age.add_metric([partition], held["owned_for_s"])
        epoch.add_metric([partition], held["epoch"])
    yield age
    yield epoch
    yield GaugeMetricFamily(
        "safety_cluster_lease_renewed_seconds_ago",
        "time since the leases were last renewed",
        value=report["last_renewed_s_ago"],
    )
    for name, value, doc in (
        ("acquired", lease.stats.acquired, "partitions taken (free or expired)"),
        ("takeovers", lease.stats.takeovers, "partitions taken from an instance whose lease expired"),
        ("releases", lease.stats.released, "partitions handed over cleanly"),
        ("lost", lease.stats.lost, "partitions found owned by another at renewal"),
        ("renew_failures", lease.stats.renew_failures, "lease cycles that failed"),
    ):
        yield CounterMetricFamily(f"safety_cluster_{name}", doc, value=value)
