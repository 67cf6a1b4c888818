"""Registry tables: the community as the gateway knows it.

Ids are strings. Grids, buildings and households get ``{site}.{code}``-style ids from the
loader, so re-applying a file finds the same rows; people have ids of their own (they double as
login names and as the ``worker_id`` in MQTT downlink topics); a device is keyed by
``(site, device_id)``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

ROLES = ("grid_worker", "building_leader", "duty_staff", "secretary", "admin", "street_office")
RESPONSIBILITIES = ("primary", "backup")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; comes back aware (UTC) from SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: registry times must be timezone-aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Street(Base):
    """A street office (街道): the communities it runs are the sites whose ``street`` is it."""

    __tablename__ = "streets"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class Site(Base):
    """A community (社区); ``code`` is the ``{site}`` segment of device topics."""

    __tablename__ = "sites"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    address: Mapped[str] = mapped_column(String(300), default="")
    # sha256 of the community file last applied to this site (None: built from the API only)
    community_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    # The street office this community belongs to (None: a community on its own).
    street: Mapped[str | None] = mapped_column(
        ForeignKey("streets.code", ondelete="SET NULL"), index=True, default=None
    )


class Grid(Base):
    """A grid (网格); ``parent_id`` nests micro-grids inside a grid."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("site", "code", name="uq_grids_site_code"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id", ondelete="SET NULL"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))


class Building(Base):
    """A building (楼栋) in one grid."""

    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("site", "code", name="uq_buildings_site_code"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grids.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    latitude: Mapped[float | None] = mapped_column(Float)  # WGS-84, for a map link in pages
    longitude: Mapped[float | None] = mapped_column(Float)


class Household(Base):
    """A household (户): building, unit, room; flags such as ``elderly_alone``; family contacts.

    ``contacts`` is a list of ``{"name", "relation", "phone"}``.
    """

    __tablename__ = "households"
    __table_args__ = (
        UniqueConstraint("building_id", "unit", "room", name="uq_households_building_unit_room"),
    )

    id: Mapped[str] = mapped_column(String(150), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id"), index=True)
    unit: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(16))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    contacts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    # 五彩档案: the risk tier (a key of the configured tiers, e.g. red), emergency facts
    # (mobility, chronic_illness, key_holder, language), members, and the elderly
    # no-activity window for this household (hours; None = the rule's own).
    risk_tier: Mapped[str | None] = mapped_column(String(16))
    facts: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    members: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=list)
    no_activity_hours: Mapped[int | None] = mapped_column(Integer)
    resident: Mapped[str] = mapped_column(String(100), default="", server_default="")


class Device(Base):
    """A device, keyed by ``(site, device_id)`` exactly as in its native topic.

    ``profile`` is the device profile id (``native`` or a vendor profile such as
    ``aliyun.smoke.js_sd01``); ``vendor_identity`` is how the vendor cloud names it
    (Alink ``productKey/deviceName``, IoTDA ``device_id``), unique when set.
    """

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_grid_id", "grid_id"),
        Index("ix_devices_building_id", "building_id"),
    )

    site: Mapped[str] = mapped_column(
        ForeignKey("sites.code", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_type: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(100), default="native")
    vendor_identity: Mapped[str | None] = mapped_column(String(200), unique=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grids.id"))
    building_id: Mapped[str | None] = mapped_column(ForeignKey("buildings.id"))
    household_id: Mapped[str | None] = mapped_column(ForeignKey("households.id"))
    location: Mapped[str] = mapped_column(String(300), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    ports: Mapped[int | None] = mapped_column(Integer)
    installed_at: Mapped[date | None] = mapped_column(Date)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when the device was replaced (the successor's id) or taken out of service.
    replaced_by: Mapped[str | None] = mapped_column(String(64))
    decommissioned_on: Mapped[date | None] = mapped_column(Date)


class Person(Base):
    """Someone who answers for devices: grid worker, building leader, duty staff, secretary, admin.

    ``id`` is the login name and the ``worker_id`` of downlink topics. ``channels`` says how to
    reach them, e.g. ``{"mqtt": true, "sms": "13800000000", "webhook": "https://…"}``.
    """

    __tablename__ = "people"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    channels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PersonGrid(Base):
    """A person answers for a grid, as its primary worker or as a backup."""

    __tablename__ = "person_grids"
    __table_args__ = (
        CheckConstraint(_one_of("responsibility", RESPONSIBILITIES), name="responsibility"),
    )

    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    grid_id: Mapped[str] = mapped_column(
        ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    responsibility: Mapped[str] = mapped_column(String(16), default="primary")


class BuildingLeader(Base):
    """A building leader (楼栋长) answers for a building."""

    __tablename__ = "building_leaders"

    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    building_id: Mapped[str] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RosterShift(Base):
    """One explicit duty shift: ``[starts_at, ends_at)``, timezone-aware."""

    __tablename__ = "roster_shifts"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_roster_shifts_site_starts_at", "site", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    role: Mapped[str] = mapped_column(String(32), default="duty_staff")


class RosterWeekly(Base):
    """A weekly duty slot in the site's local time: ``weekday`` 0 = Monday.

    ``end_time <= start_time`` means the slot runs past midnight into the next day.
    """

    __tablename__ = "roster_weekly"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
        UniqueConstraint(
            "person_id", "weekday", "start_time", name="uq_roster_weekly_person_weekday_start"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    role: Mapped[str] = mapped_column(String(32), default="duty_staff")


class RosterSwap(Base):
    """A one-off shift swap (代班): ``to_person`` covers ``from_person`` over ``[starts_at, ends_at)``."""

    __tablename__ = "roster_swaps"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    from_person: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    to_person: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")


class HouseholdVisit(Base):
    """A visit (走访) to a household: when, by whom, what was found, when the next one is due."""

    __tablename__ = "household_visits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code", ondelete="CASCADE"), index=True)
    household_id: Mapped[str] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), index=True
    )
    visited_on: Mapped[date] = mapped_column(Date)
    visitor: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str] = mapped_column(Text, default="")
    next_due: Mapped[date | None] = mapped_column(Date)
    risk_tier: Mapped[str | None] = mapped_column(String(16))  # tier set at this visit


__all__ = [
    "RESPONSIBILITIES",
    "ROLES",
    "Building",
    "BuildingLeader",
    "Device",
    "Grid",
    "Household",
    "HouseholdVisit",
    "Person",
    "PersonGrid",
    "RosterShift",
    "RosterSwap",
    "RosterWeekly",
    "Site",
    "Street",
    "UTCDateTime",
]
