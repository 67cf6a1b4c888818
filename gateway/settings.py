"""The one settings object: a YAML file plus ``SAFETY_*`` environment variables.

Built once in ``gateway.__main__`` and passed down; nothing else reads the environment.
Environment variables win over the file; nested keys use ``__`` (``SAFETY_MQTT__URL``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.storage.config import TimeSeriesSettings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname verification; for test benches only


class MqttSettings(Section):
    url: str = "mqtt://127.0.0.1:1883"  # mqtt:// or mqtts://; empty in the demo = embedded broker
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "safety-gateway"
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(30, ge=5, le=3600)
    # How long the broker keeps our session (and queues QoS 1 messages) while we are down.
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    # MQTT 5 Receive Maximum: unacknowledged QoS 1 messages the broker may have in flight to us.
    # We acknowledge only after storing, so this bounds memory under backlog.
    receive_maximum: int = Field(20_000, ge=1, le=65_535)
    # Events (alarms) and vendor formats on a second connection of their own, so an alarm never
    # waits behind a telemetry backlog.
    priority_connection: bool = True
    shared_group: str | None = None  # "$share/<group>/" subscriptions for several gateways
    tls: TlsSettings = TlsSettings()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme in ("mqtts", "ssl") else 1883)

    @property
    def use_tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl") or self.tls.ca_file is not None

    @property
    def alarm_client_id(self) -> str:
        """The client id of the priority (alarm) connection."""
        return f"{self.client_id}-alarms"

    @property
    def client_ids(self) -> tuple[str, ...]:
        """Every client id the gateway connects with: each is a persistent session of its own,
        which no other broker account may take (see deploy/mosquitto)."""
        if self.priority_connection:
            return (self.client_id, self.alarm_client_id)
        return (self.client_id,)


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///var/gateway.db"


class IngestSettings(Section):
    max_payload_bytes: int = Field(4096, ge=256)
    future_tolerance_s: int = Field(300, ge=0)
    batch_size: int = Field(5000, ge=1)
    flush_interval_ms: int = Field(200, ge=5)
    quarantine_keep: int = Field(10_000, ge=100)  # rows kept; counts are never capped


class EscalationDefaults(Section):
    """Acknowledgement deadline per severity: the ladders escalate after it, the statistics
    measure "handled in time" against it; reminders come at multiples of it."""

    critical_ack_s: int = 120
    major_ack_s: int = 600
    minor_ack_s: int = 24 * 3600


class CommandSettings(Section):
    """Device commands (cut power, close a valve …): an attempt waits ``ack_timeout_s`` for the
    device's cmd_ack and the telemetry that shows the new state; a refused attempt is sent
    again after ``retry_s``; each later wait is ``backoff`` times longer; after ``attempts``
    sends the command fails and its incident escalates at once."""

    ack_timeout_s: float = Field(30.0, gt=0, le=3600)
    retry_s: float = Field(5.0, gt=0, le=3600)
    attempts: int = Field(3, ge=1, le=10)
    backoff: float = Field(2.0, ge=1, le=10)


class AlertingSettings(Section):
    rules_dir: Path | None = None  # None = the built-in rule set
    startup_grace_s: int = Field(300, ge=0)
    tick_interval_ms: int = Field(1000, ge=50)
    escalation: EscalationDefaults = EscalationDefaults()
    commands: CommandSettings = CommandSettings()


class NotifySettings(Section):
    sms_gateway_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "safety-gateway@localhost"
    max_attempts: int = Field(4, ge=1)


DEFAULT_SECRET_KEY = "change-me"  # noqa: S105 - the placeholder production refuses
MIN_SECRET_BYTES = 32


class LoginSettings(Section):
    """Login limits and password workers (api/login_guard.py says how and why)."""

    address_burst: int = Field(20, ge=1)
    address_every_s: float = Field(6.0, gt=0)
    account_burst: int = Field(5, ge=1)
    account_every_s: float = Field(60.0, gt=0)
    argon2_workers: int = Field(1, ge=1, le=16)
    max_waiting: int = Field(16, ge=0)
    refusal_delay_s: float = Field(2.0, ge=0, le=30)
    max_held: int = Field(256, ge=0)


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    token_ttl_s: int = 12 * 3600
    service_tokens: dict[str, SecretStr] = {}
    metrics_token: SecretStr | None = None  # may read /metrics and /health's detail only
    login: LoginSettings = LoginSettings()


class Settings(BaseSettings):
    """Everything the gateway is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SAFETY_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        # An error about the whole configuration would otherwise print all of it, passwords
        # and tokens included; the message names the key instead.
        hide_input_in_errors=True,
    )

    mode: Literal["production", "development", "demo"] = "production"
    site: str = "demo"
    data_dir: Path = Path("var")
    profiles_dir: Path | None = None  # None = the shipped device profiles
    community_file: Path | None = None  # YAML loaded into the registry at start
    log_level: str = "INFO"
    # SIGTERM to exit, at most: what could not be stored by then stays with the broker
    # (unacknowledged), so a stuck store never keeps the process from stopping.
    shutdown_timeout_s: float = Field(15.0, gt=0)
    mqtt: MqttSettings = MqttSettings()
    timeseries: TimeSeriesSettings = TimeSeriesSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    alerting: AlertingSettings = AlertingSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        api = self.api
        if api.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
            if self.mode == "production":
                raise ValueError(
                    f"api.secret_key is the default {DEFAULT_SECRET_KEY!r}: set "
                    "SAFETY_API__SECRET_KEY (or api.secret_key in the config file, "
                    f"{MIN_SECRET_BYTES} bytes or more) before running in production"
                )
            # Development and demo: a random key per process (logins do not survive a restart).
            api.secret_key = SecretStr(secrets.token_urlsafe(MIN_SECRET_BYTES))
        if self.mode == "demo":
            return self  # the sample community on one machine: nothing to protect
        # Login tokens are signed with the secret key and integrations present their token as
        # is: a short one can be guessed offline or online.
        secrets_by_key = {
            "api.secret_key": api.secret_key,
            **{f"api.service_tokens.{name}": t for name, t in api.service_tokens.items()},
        }
        weak = [
            f"{key} ({size} byte{'' if size == 1 else 's'})"
            for key, value in secrets_by_key.items()
            if (size := len(value.get_secret_value().encode())) < MIN_SECRET_BYTES
        ]
        if weak:
            raise ValueError(
                f"too short: {', '.join(weak)}; secrets must be {MIN_SECRET_BYTES} bytes or "
                f"more in {self.mode} mode (for example the output of "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: an operator's override beats the file (passed as init values).
        return (env_settings, init_settings, file_secret_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), then let ``SAFETY_*`` variables override it."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{config_file}: cannot read configuration: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: the top level must be a mapping")
        values.update(loaded or {})
    values.update(overrides)
    return Settings(**values)
