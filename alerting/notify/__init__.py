"""Notifiers (MQTT app, webhook/WeCom/DingTalk, SMS gateway, email) and the delivery stages."""

from alerting.notify.base import Delivery, DeliveryError, Notifier, render_text
from alerting.notify.stages import DeliveryPipeline, FailedDelivery, RetryPolicy, idempotency_key

__all__ = [
    "Delivery",
    "DeliveryError",
    "DeliveryPipeline",
    "FailedDelivery",
    "Notifier",
    "RetryPolicy",
    "idempotency_key",
    "render_text",
]
