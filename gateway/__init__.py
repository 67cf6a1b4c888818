"""The gateway process: its edges (MQTT, stores, registry) and the wiring that runs it all.

A message's way through it: :mod:`gateway.mqtt` (persistent sessions, acknowledgement after
storing) → :mod:`gateway.ingest` (decode with :mod:`device_profiles`, dedupe, batch) →
:mod:`gateway.storage` (InfluxDB or the embedded store, disk spool while away) and, at once,
:mod:`alerting.pipeline` (rules → incidents → escalation → notify). Rejected messages go to
:mod:`gateway.quarantine`.

- :mod:`gateway.app` — the wiring: builds every stage from ``Settings``, runs them in one
  TaskGroup, stops them in order; the only module that reaches up to :mod:`api`
- :mod:`gateway.settings` — the one ``Settings`` object; :mod:`gateway.health` — health, metrics
- :mod:`gateway.registry` — the community (sites, grids, buildings, households, devices,
  people, roster); :mod:`gateway.directory` — routing's view of it
- :mod:`gateway.status` — device availability; :mod:`gateway.live` — the board's live feed
- :mod:`gateway.migrations` — the relational schema and its runner
- :mod:`gateway.demo`, :mod:`gateway.broker`, :mod:`gateway.tools` — the demo, its embedded
  broker, and the command-line tools (route test, broker ACL)
"""
