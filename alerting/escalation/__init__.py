"""Escalation: durable, restart-safe timers that climb the ladder until someone acknowledges.

- :mod:`alerting.escalation.timers` — the timer table (one row per active incident) and the
  helpers incident changes use to start, re-aim and stop it in their own transaction
- :mod:`alerting.escalation.scheduler` — runs due timers: resolves who is paged, plans the
  deliveries with notify, sends them and moves the ladder on when a page finally fails
"""
