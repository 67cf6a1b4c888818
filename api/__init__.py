"""The operator API and the duty board (FastAPI), given its services by the wiring.

- :mod:`api.app` — ``create_app(services)``; :mod:`api.server` — serving it in the gateway
- :mod:`api.services` — what the wiring hands over; :mod:`api.deps` — who is asking, their scope
- :mod:`api.routes` — one module per resource; incident actions are one table
  (:data:`api.routes.incidents.ACTIONS`) of action, lifecycle transition, roles and body
- :mod:`api.schemas` — request and response models (incidents use the one read model of
  :mod:`alerting.incidents.views`); :mod:`api.audit` — every change with its actor
- ``api/board/`` — the duty board, worker view and ledger pages (static)
"""
