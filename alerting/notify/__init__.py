"""Notify: the delivery log and the stages that put a page in front of a person.

- :mod:`alerting.notify.tables` — ``DeliveryRow`` with ``DeliveryStatus`` / ``DeliveryKind``
- :mod:`alerting.notify.stages` — plan (dedup by idempotency key) → claim → send with retry →
  record; returns what finally failed to its caller, the escalation scheduler
- :mod:`alerting.notify.base` and one module per channel: MQTT app, webhook/WeCom/DingTalk,
  SMS gateway, email (the ``Notifier`` protocol)
"""
