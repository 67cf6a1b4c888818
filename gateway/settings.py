"""The one settings object: a YAML file plus ``SAFETY_*`` environment variables.

Built once in ``gateway.__main__`` and passed down; nothing else reads the environment.
Environment variables win over the file; nested keys use ``__`` (``SAFETY_MQTT__URL``).
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerting.incidents.tiers import DEFAULT_TIERS, RiskTier, TierPolicy
from alerting.notify.template_check import PAGED_SEVERITIES, missing_templates
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


class ClusterSettings(Section):
    """Several gateway instances on one PostgreSQL and one broker (gateway/cluster): the work is
    split into partitions (a site each, or ``partitions`` hash buckets of site codes), each
    owned by one live instance through a lease row renewed every ``renew_s``; a dead
    instance's partitions are taken over within ``lease_s + renew_s``. Off: this instance owns
    everything, as a single gateway always did (SQLite works)."""

    enabled: bool = False
    instance_id: str = ""  # "" = hostname-pid
    partitions: Literal["site"] | Annotated[int, Field(ge=1, le=4096)] = "site"
    lease_s: float = Field(20.0, ge=1.0, le=600.0)
    renew_s: float = Field(5.0, ge=0.1, le=120.0)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> ClusterSettings:
        if self.renew_s * 2 > self.lease_s:
            raise ValueError(
                f"cluster.renew_s ({self.renew_s:g}) must be at most half of cluster.lease_s "
                f"({self.lease_s:g}): a lease must survive one late renewal"
            )
        return self

    def instance(self) -> str:
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"


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


class StormRuleSettings(Section):
    threshold: int = Field(10, ge=1)
    window_s: int = Field(60, ge=1)


class StormSettings(Section):
    """Alert storms (alerting/incidents/storm.py): more than ``threshold`` devices of a site
    raising one rule within ``window_s`` make one grouped incident; ``rules`` overrides the
    two per rule id. Device commands are tracked one by one (alerting/commands)."""

    enabled: bool = True
    threshold: int = Field(10, ge=1)
    window_s: int = Field(60, ge=1)
    # A non-critical alert of a rule that another device of the site raised within the
    # window waits this long for a storm to form before it pages.
    group_wait_s: int = Field(10, ge=0)
    rules: dict[str, StormRuleSettings] = {}
    # Life-safety (critical) rules page every device unless this is set.
    group_critical: bool = False


class RiskTierSettings(Section):
    """One colour of the household risk files (五彩档案): names and meaning people read, how
    many severity levels it raises an incident, the factor on acknowledgement deadlines,
    how often the household is visited."""

    name: str = Field(min_length=1, max_length=32)
    name_en: str = ""
    meaning: str = ""
    raise_levels: int = Field(0, ge=0, le=2)
    ack_factor: float = Field(1.0, ge=0.1, le=1.0)
    visit_every_days: int | None = Field(None, ge=1, le=366)


def _default_tiers() -> dict[str, RiskTierSettings]:
    return {
        t.key: RiskTierSettings(
            name=t.name,
            name_en=t.name_en,
            meaning=t.meaning,
            raise_levels=t.raise_levels,
            ack_factor=t.ack_factor,
            visit_every_days=t.visit_every_days,
        )
        for t in DEFAULT_TIERS
    }


class CommandSettings(Section):
    """Device commands (cut power, close a valve …): an attempt waits ``ack_timeout_s`` for the
    device's cmd_ack and the telemetry that shows the new state; a refused attempt is sent
    again after ``retry_s``; each later wait is ``backoff`` times longer; after ``attempts``
    sends the command fails and its incident escalates at once. A site's devices get at most
    ``max_per_s`` commands a second after a ``burst`` (0 = no limit): the rest (a storm's power
    cuts) are held and sent in order; a life-safety rule's or a person's never wait."""

    ack_timeout_s: float = Field(30.0, gt=0, le=3600)
    retry_s: float = Field(5.0, gt=0, le=3600)
    attempts: int = Field(3, ge=1, le=10)
    backoff: float = Field(2.0, ge=1, le=10)
    max_per_s: float = Field(20.0, ge=0, le=10_000)
    burst: int = Field(20, ge=1, le=10_000)


class AlertingSettings(Section):
    rules_dir: Path | None = None  # None = the built-in rule set
    startup_grace_s: int = Field(300, ge=0)
    tick_interval_ms: int = Field(1000, ge=50)
    # Last-seen times (offline timers) are written this often, not per message; a crash in
    # between restarts the offline timers (see RuleEngine.start).
    state_checkpoint_s: int = Field(60, ge=1)
    storm: StormSettings = StormSettings()
    escalation: EscalationDefaults = EscalationDefaults()
    commands: CommandSettings = CommandSettings()
    # Household risk tiers, highest risk first (keys are what households store).
    risk_tiers: dict[str, RiskTierSettings] = Field(default_factory=_default_tiers)

    def tier_policy(self) -> TierPolicy:
        return TierPolicy(
            {key: RiskTier(key, **t.model_dump()) for key, t in self.risk_tiers.items()}
        )


class ProviderTemplates(Section):
    """Templates approved by the provider, by the severity of the incident (every paged
    severity needs one: checked at start-up); ``reminder`` / ``outcome`` are optional."""

    templates: dict[str, str] = {}
    reminder_template: str | None = None
    outcome_template: str | None = None

    @model_validator(mode="after")
    def _every_severity(self) -> ProviderTemplates:
        if missing := missing_templates(self.templates):
            raise ValueError(
                f"templates: no template for severity {', '.join(missing)} (each of "
                f"{', '.join(PAGED_SEVERITIES)} needs the id of a template the provider approved)"
            )
        return self

    def by_kind(self) -> dict[str, str]:
        """The optional templates of reminders and outcomes, by delivery kind."""
        return {
            k: v
            for k, v in (("reminder", self.reminder_template), ("outcome", self.outcome_template))
            if v
        }


class AliyunSmsSettings(ProviderTemplates):
    """Alibaba Cloud SMS (SendSms); ``templates`` are SMS_… template codes."""

    access_key_id: str
    access_key_secret: SecretStr
    sign_name: str
    endpoint: str = "dysmsapi.aliyuncs.com"
    protocol: Literal["https", "http"] = "https"  # http only for a test server


class AliyunVoiceSettings(ProviderTemplates):
    """Alibaba Cloud voice notification (SingleCallByTts); ``templates`` are TTS_… codes."""

    access_key_id: str
    access_key_secret: SecretStr
    called_show_number: str  # the number the phone shows, bought with the voice service
    endpoint: str = "dyvmsapi.aliyuncs.com"
    protocol: Literal["https", "http"] = "https"
    play_times: int = Field(3, ge=1, le=3)


class TencentSmsSettings(ProviderTemplates):
    """Tencent Cloud SMS (SendSms 2021-01-11); ``templates`` are numeric template ids."""

    secret_id: str
    secret_key: SecretStr
    sdk_app_id: str
    sign_name: str
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"
    scheme: Literal["https", "http"] = "https"


class WecomAppSettings(Section):
    corp_id: str
    corp_secret: SecretStr
    agent_id: int
    base_url: str = "https://qyapi.weixin.qq.com"


class NotifySettings(Section):
    sms_gateway_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "safety-gateway@localhost"
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    max_attempts: int = Field(4, ge=1)
    # Web Push to the worker app (alerting/notify/webpush.py). The VAPID key is made on first
    # start (relative paths are under data_dir); the subject is whom push services may contact.
    webpush: bool = False
    vapid_key_file: Path = Path("vapid_private.pem")
    vapid_subject: str = Field("mailto:duty@localhost", pattern=r"^(mailto:|https://)")
    webpush_ttl_s: int = Field(3600, ge=0, le=28 * 86400)
    webpush_allow_http: bool = False  # plain-http push endpoints: only for a local test service
    # SMS goes through one of these when set (instead of sms_gateway_url).
    aliyun_sms: AliyunSmsSettings | None = None
    tencent_sms: TencentSmsSettings | None = None
    aliyun_voice: AliyunVoiceSettings | None = None
    wecom_app: WecomAppSettings | None = None
    # DingTalk robots with 加签 security: the robot's access_token -> its secret.
    dingtalk_secrets: dict[str, SecretStr] = {}
    # A critical page on SMS or voice not confirmed delivered by a receipt within this time
    # counts as not delivered: the person's next channel, then the next person, at once.
    # Only with receipt_secret set (the providers' reports come in through it).
    receipt_timeout_s: int = Field(60, ge=5)
    # The secret in the providers' status-report callback URLs
    # (/api/v1/receipts/{provider}/{receipt_secret}); none = status reports are refused.
    receipt_secret: SecretStr | None = None
    # Critical incidents of these device types ring a phone (voice) after the first step.
    voice_device_types: list[str] = ["smoke", "sos"]

    @model_validator(mode="after")
    def _one_sms_provider(self) -> NotifySettings:
        chosen = [n for n in ("aliyun_sms", "tencent_sms", "sms_gateway_url") if getattr(self, n)]
        if len(chosen) > 1:
            raise ValueError(f"SMS can go through one provider only; set one of {', '.join(chosen)}")
        return self


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
    refresh_ttl_s: int = Field(16 * 3600, ge=60)  # how long a login lasts: a shift
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
    community_files: list[Path] = []  # several sites' community files (with community_file)
    # The closed loop's departments and default tiers (None = alerting/loop/loop.yaml), and the
    # address departments and residents open their reply/rating links at ("" = as called).
    loop_file: Path | None = None
    public_url: str = ""
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
    cluster: ClusterSettings = ClusterSettings()

    @model_validator(mode="after")
    def _cluster_needs_postgresql(self) -> Settings:
        if self.cluster.enabled and not self.database.url.startswith("postgresql"):
            raise ValueError(
                "cluster.enabled needs PostgreSQL (database.url postgresql+asyncpg://…): the "
                "partition leases and the instances' live stream live there; SQLite is one "
                "process's file"
            )
        return self

    def all_community_files(self) -> list[Path]:
        """``community_file`` and ``community_files``, each once, in that order."""
        files = [self.community_file] if self.community_file is not None else []
        return list(dict.fromkeys([*files, *self.community_files]))

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
            # Anyone holding it can mark pages delivered, which stops a critical page moving on.
            **({"notify.receipt_secret": r} if (r := self.notify.receipt_secret) else {}),
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
