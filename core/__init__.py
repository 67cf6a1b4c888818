"""The floor every package stands on: value types of the pipeline, the clock, the relational
base and session helpers, and every MQTT topic of the wire contract. Imports nothing of ours.

- :mod:`core.readings` — ``Reading``, ``Rejection``/``RejectReason``, ``DeviceContext``
- :mod:`core.clock` — ``Clock`` (``now`` is always passed in, never read deep inside)
- :mod:`core.db` — declarative ``Base``, engine and session factories (SQLite inline, PostgreSQL)
- :mod:`core.topics` — the native uplink/downlink topics, built and recognised in one place
"""
