"""The registry seen through routing's ``Directory`` protocol: who answers for a grid, how to reach them."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from alerting.routing.directory import Channel, ChannelKind, GridStaff, Recipient
from core.clock import Clock, SystemClock
from gateway.registry.service import PersonInfo, Registry


class RegistryDirectory:
    """Adapts :class:`Registry` to routing. Only channels with a configured notifier are offered,
    so a person is never "paged" on a channel nobody can deliver."""

    def __init__(
        self,
        registry: Registry,
        channels: Collection[ChannelKind],
        clock: Clock | None = None,
    ) -> None:
        self._registry = registry
        self._channels = frozenset(channels)
        # The gateway's clock, not the wall's: who is on a roster shift is read at the time
        # the gateway lives in (a compressed demo, a test's manual clock).
        self._clock: Clock = clock or SystemClock()

    def recipient(self, p: PersonInfo) -> Recipient:
        wanted = p.channels or {}
        found: list[Channel] = []
        if ChannelKind.APP in self._channels and wanted.get("mqtt", True):
            found.append(Channel(ChannelKind.APP, p.id))
        if ChannelKind.WEBPUSH in self._channels and wanted.get("webpush", True):
            found.append(Channel(ChannelKind.WEBPUSH, p.id))
        sms = wanted.get("sms") or (p.phone if wanted.get("sms") is True else None)
        if ChannelKind.SMS in self._channels and isinstance(sms, str) and sms:
            found.append(Channel(ChannelKind.SMS, sms))
        email = wanted.get("email") or None
        if ChannelKind.EMAIL in self._channels and isinstance(email, str):
            found.append(Channel(ChannelKind.EMAIL, email))
        for kind in (
            ChannelKind.WEBHOOK,
            ChannelKind.WECOM,
            ChannelKind.DINGTALK,
            ChannelKind.WECOM_APP,
        ):
            url = wanted.get(kind.value)
            if kind in self._channels and isinstance(url, str) and url:
                found.append(Channel(kind, url))
        # Voice last: only rung when a critical page needs it (see ChannelKind.VOICE).
        phone = sms if isinstance(sms, str) and sms else p.phone
        if ChannelKind.VOICE in self._channels and wanted.get("voice", True) and phone:
            found.append(Channel(ChannelKind.VOICE, phone))
        return Recipient(p.id, p.name, tuple(found))

    def _many(self, people: Iterable[PersonInfo]) -> tuple[Recipient, ...]:
        return tuple(self.recipient(p) for p in people)

    async def grid_workers(self, site: str, grid_id: str) -> GridStaff:
        now = datetime.fromtimestamp(self._clock.now_ms() / 1000, UTC)
        r = self._registry.people_for_grid(grid_id, now)
        return GridStaff(self._many(r.primary), self._many(r.backup))

    async def building_leaders(self, site: str, building_id: str) -> tuple[Recipient, ...]:
        return self._many(self._registry.building_leaders(building_id))

    async def on_duty(self, site: str, at_ms: int) -> tuple[Recipient, ...]:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        return self._many(self._registry.on_duty(site, at))

    async def secretaries(self, site: str) -> tuple[Recipient, ...]:
        return self._many(p for p in self._registry.people(site) if p.role == "secretary")

    async def household_contacts(self, household_id: str) -> tuple[Recipient, ...]:
        # Every family contact is paged, as the route tester lists them; without an SMS
        # gateway they have no channel, and the board shows their page as not delivered
        # instead of leaving them out of the ladder unseen.
        found: list[Recipient] = []
        for i, c in enumerate(self._registry.household_contacts(household_id)):
            phone = str(c.get("phone", ""))
            if phone:
                name = f"{c.get('name', '')}({c.get('relation', '')})"
                channels: list[Channel] = []
                if ChannelKind.SMS in self._channels:
                    channels.append(Channel(ChannelKind.SMS, phone))
                if ChannelKind.VOICE in self._channels:
                    channels.append(Channel(ChannelKind.VOICE, phone))
                found.append(Recipient(f"{household_id}#family{i}", name, tuple(channels)))
        return tuple(found)

    async def person(self, person_id: str) -> Recipient | None:
        p = self._registry.person(person_id)
        return self.recipient(p) if p is not None else None
