"""App notifier: one JSON incident per QoS 1 message on the worker's topic."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

import aiomqtt

from alerting.notify.base import Delivery, DeliveryError
from core import topics

# (topic, payload, qos) -> returns once the broker accepted it (PUBACK for QoS 1).
Publisher = Callable[[str, bytes, int], Awaitable[None]]
_TOPIC_PART = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def worker_topic(site: str, worker_id: str) -> str:
    if not _TOPIC_PART.match(worker_id) or not _TOPIC_PART.match(site):
        raise DeliveryError(
            f"not a valid worker topic part: {site!r}/{worker_id!r}", permanent=True
        )
    return topics.worker_pages(site, worker_id)


class MqttNotifier:
    """Publishes through an injected publisher, so it can share the gateway's MQTT session."""

    def __init__(self, publish: Publisher) -> None:
        self._publish = publish

    async def send(self, delivery: Delivery) -> None:
        topic = worker_topic(str(delivery.incident.get("site", "")), delivery.address)
        payload = json.dumps(delivery.message(), ensure_ascii=False).encode()
        try:
            await self._publish(topic, payload, 1)
        except aiomqtt.MqttError as exc:
            raise DeliveryError(f"MQTT publish failed: {exc}") from exc
