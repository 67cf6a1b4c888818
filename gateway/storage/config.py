"""Settings section for the time-series store: which backend, where, and how writes are batched."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class TimeSeriesSettings(BaseModel):
    """Where readings are stored and how the write path batches and buffers them.

    ``backend``:
      * ``embedded`` — SQLite file at ``embedded_path`` (the one-command demo, small sites);
      * ``influxdb1`` — InfluxDB 1.x: ``database``, ``retention_policy``, optional
        ``username``/``password``;
      * ``influxdb2`` — InfluxDB 2.x / 3.x: ``token``, ``org``, ``bucket``.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "influxdb1", "influxdb2"] = "embedded"
    url: str = "http://127.0.0.1:8086"
    token: SecretStr | None = None
    org: str = ""
    bucket: str = ""
    database: str = "safety"
    retention_policy: str = ""
    username: str = ""
    password: SecretStr | None = None
    embedded_path: Path = Path("data/timeseries.sqlite3")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval_ms: int = Field(200, ge=1)
    write_timeout_s: float = Field(5.0, gt=0)
    gzip: bool = False
    spool_dir: Path = Path("data/spool")
    spool_max_bytes: int = Field(1 << 30, ge=1)
    spool_max_age_s: float = Field(24 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _backend_needs(self) -> TimeSeriesSettings:
        if self.backend == "influxdb2":
            missing = [n for n in ("org", "bucket") if not getattr(self, n)]
            if self.token is None or not self.token.get_secret_value():
                missing.insert(0, "token")
            if missing:
                raise ValueError(f"backend influxdb2 needs {', '.join(missing)}")
        if self.backend == "influxdb1" and not self.database:
            raise ValueError("backend influxdb1 needs database")
        return self
