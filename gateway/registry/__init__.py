"""Registry: the community (sites, grids, buildings, households, devices, people, roster).
(The schema itself is migrated by :mod:`gateway.migrations.runner`.)

- :mod:`gateway.registry.tables` — ORM tables (on :class:`core.db.Base`)
- :mod:`gateway.registry.loader` — community YAML, CSV device ledgers, upsert into the store
- :mod:`gateway.registry.service` — :class:`Registry`, the cached queries the pipeline makes
"""

from gateway.registry.ledger import Ledger, LedgerError, RowError
from gateway.registry.loader import (
    CommunityError,
    apply,
    apply_ledger,
    export_device_ledger_csv,
    import_device_ledger_csv,
    load_community_text,
    load_community_yaml,
)
from gateway.registry.passwords import hash_password, verify_password
from gateway.registry.service import GridInfo, PersonInfo, Registry, Responders, SiteInfo
from gateway.registry.spec import CommunitySpec

__all__ = [
    "CommunityError",
    "CommunitySpec",
    "GridInfo",
    "Ledger",
    "LedgerError",
    "PersonInfo",
    "Registry",
    "Responders",
    "RowError",
    "SiteInfo",
    "apply",
    "apply_ledger",
    "export_device_ledger_csv",
    "hash_password",
    "import_device_ledger_csv",
    "load_community_text",
    "load_community_yaml",
    "verify_password",
]
