"""Alerting: from a reading to a person's phone. Owns its pipeline end to end.

- :mod:`alerting.pipeline` — ``AlertPipeline``: readings → rule engine → incidents (the first
  page planned in the opening transaction) → escalation → notify; listeners are told of changes
- :mod:`alerting.rules` — rules as data, pure evaluators, the restart-safe engine
- :mod:`alerting.incidents` — dedupe, lifecycle, audit trail, silences, the one read model
- :mod:`alerting.routing` — grid → the people responsible and on duty; ladders by severity
- :mod:`alerting.escalation` — durable timers and the scheduler that climbs the ladder
- :mod:`alerting.notify` — the delivery log and the stages that send a page on each channel

Inside, modules depend downward: models, rules and routing at the bottom; notify's table and
escalation's timers under incidents; the scheduler over incidents and notify; the pipeline on top.
"""
