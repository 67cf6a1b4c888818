"""Notify: the delivery log and the stages that put a page in front of a person.

- :mod:`alerting.notify.tables` — ``DeliveryRow`` with ``DeliveryStatus`` / ``DeliveryKind``
- :mod:`alerting.notify.stages` — plan (dedup by idempotency key) → claim → send with retry →
  record; returns what finally failed to its caller, the escalation scheduler
- :mod:`alerting.notify.base` and one module per channel: MQTT app, webhook/WeCom/DingTalk
  robots (:mod:`~alerting.notify.dingtalk` signs and @mentions), WeCom application messages
  (:mod:`~alerting.notify.wecom_app`), Alibaba Cloud SMS and voice (:mod:`~alerting.notify.aliyun`),
  Tencent Cloud SMS (:mod:`~alerting.notify.tencent`), a generic SMS gateway, email (the
  ``Notifier`` protocol); provider templates in :mod:`~alerting.notify.templates`
- :mod:`alerting.notify.receipts` — status reports and the app's receipts: sent → delivered → read
"""
