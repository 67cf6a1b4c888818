"""The incident service: alert transitions in, incidents with an audit trail and timers out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.escalation.timers import EscalationTimerRow, TimerKind, new_timer, stop_timer
from alerting.incidents import flood as fl
from alerting.incidents import storm as st
from alerting.incidents.actions import ActionOutcome, ActionRequest, ActionRunner
from alerting.incidents.card import build_card
from alerting.incidents.lifecycle import IncidentStatus, Resolution, auto_resolution
from alerting.incidents.silences import (
    active_silence,
    covering_silence_id,
    life_safety,
    remember_silence,
)
from alerting.incidents.store import (
    SYSTEM,
    active_by_key,
    active_by_key_and,
    add_event,
    prefetch_active,
    remember_active,
    set_status,
)
from alerting.incidents.tables import IncidentRow
from alerting.incidents.tiers import TierPolicy, ack_due_ms
from alerting.incidents.workflow import IncidentDesk
from alerting.models import AlertState, AlertTransition, Category, Severity
from alerting.notify.base import Delivery
from alerting.routing.ladder import Ladder
from alerting.routing.router import RoutingPolicy
from alerting.routing.tree import route_labels
from core.clock import Clock
from core.db import note_ids, reserved_ids
from core.readings import DeviceContext


class ChangeKind(StrEnum):
    OPENED = "opened"
    REPEATED = "repeated"
    CLEARED = "cleared"  # the alert cleared; the incident stays for a human
    AUTO_RESOLVED = "auto_resolved"
    RECORDED = "recorded"  # info severity: on the record, pages nobody
    ATTACHED = "attached"  # folded into a building outage or an alert storm
    OUTAGE_OPENED = "outage_opened"


@dataclass(frozen=True, slots=True)
class IncidentChange:
    kind: ChangeKind
    incident_id: int
    severity: Severity
    silenced: bool = False
    actions: tuple[ActionOutcome, ...] = ()
    # The first step's deliveries, planned and claimed in the opening transaction: send now.
    claimed: tuple[Delivery, ...] = ()
    # Opened with its first page due now: the incident and its timer, for the escalation to
    # run step 0 inside the same transaction (see AlertPipeline.apply).
    first_page: tuple[IncidentRow, EscalationTimerRow] | None = field(default=None, compare=False)

    @property
    def pages(self) -> bool:
        """Whether the escalation loop should run now (a new ladder starts)."""
        return self.kind in (ChangeKind.OPENED, ChangeKind.OUTAGE_OPENED) and not self.silenced


@dataclass(frozen=True, slots=True)
class Opening:
    """What a new incident is about (from a transition, or a building outage)."""

    dedupe_key: str
    rule_id: str
    subject: str
    device_id: str | None
    device_type: str
    location: str
    severity: Severity
    category: Category
    title: str
    auto_resolve: bool

    @classmethod
    def of(cls, t: AlertTransition, ctx: DeviceContext) -> Opening:
        return cls(
            t.dedupe_key,
            t.rule_id,
            t.subject,
            t.device_id,
            ctx.device_type,
            ctx.location,
            t.severity,
            t.category,
            t.title,
            t.auto_resolve,
        )


class IncidentService(IncidentDesk):
    """Opens, dedupes, transitions and lists incidents; owns their timers' start and stop.

    Every method runs in one transaction; timers are written in the same transaction as the
    incident so a crash can never leave an open incident without its escalation.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        policy: RoutingPolicy | None = None,
        flood: fl.FloodControl | None = None,
        actions: ActionRunner | None = None,
        storm: st.StormControl | None = None,
        tiers: TierPolicy | None = None,
    ) -> None:
        super().__init__(sessionmaker, clock, policy=policy)
        self._flood = flood if flood is not None else fl.FloodControl()
        self._storm = storm
        self._actions = actions or ActionRunner()
        self._tiers = tiers if tiers is not None else TierPolicy()

    def _ladder(self, row: IncidentRow) -> Ladder:
        # a reopened or escalated incident keeps its household's shorter deadlines
        return self._tiers.ladder(row.risk_tier, super()._ladder(row))

    # ------------------------------------------------------------------ alert transitions

    async def apply(self, t: AlertTransition, ctx: DeviceContext) -> IncidentChange | None:
        """Fold one alert transition into the incidents in a transaction of its own; the
        first page then goes out on the escalation loop's next run. (The alarm path pages in
        the opening transaction instead: :meth:`AlertPipeline.apply`.)"""
        try:
            change = await self._tx(lambda s: self.fold(s, t, ctx))
        except IntegrityError:
            # Another gateway instance opened the same key at the same moment: now a repeat.
            change = await self._tx(lambda s: self.fold(s, t, ctx))
        return await self.run_actions(change, t, ctx)

    async def prefetch(self, s: AsyncSession, transitions: list[AlertTransition]) -> None:
        """Before folding a batch in one transaction (a storm): look up at once the active
        incidents and storm links its alerts will ask for, instead of queries per alert."""
        keys = {t.dedupe_key for t in transitions}
        storms = (
            {self._storm.key(t.site, t.rule_id) for t in transitions}
            if self._storm is not None
            else set()
        )
        await prefetch_active(s, keys | storms)
        found = [await active_by_key(s, key) for key in storms]
        await st.prefetch_links(s, [row.id for row in found if row is not None], keys)

    async def look_ahead(self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext) -> None:
        """Before folding an alarm: its active incident and the silence of its place in one
        query (each round trip counts on the alarm path); :meth:`fold` then asks again only
        for what it did not expect (a silence, a repeat)."""
        if t.state is not AlertState.FIRING or t.severity is Severity.INFO:
            return
        place = (t.site, t.device_id, ctx.building_id, ctx.grid_id, t.at_ms)
        silence = covering_silence_id(*place)
        if silence is not None:
            _, found = await active_by_key_and(s, t.dedupe_key, silence)
            remember_silence(s, place, found is not None)

    async def fold(
        self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext
    ) -> IncidentChange | None:
        """Fold one alert transition into the incidents inside the caller's transaction;
        ``None`` if it changes nothing."""
        if t.state is AlertState.FIRING:
            return await self._firing(s, t, ctx)
        if t.state is AlertState.RESOLVED:
            return await self._cleared(s, t, ctx)
        return None

    async def _firing(
        self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext
    ) -> IncidentChange | None:
        if t.severity is Severity.INFO:
            return await self._record_info(s, t, ctx)
        row = await active_by_key(s, t.dedupe_key)
        if row is None and self._flood.is_offline(t):
            found = await fl.attached_open(s, t.dedupe_key)
            row = found[0] if found else None
        if row is not None:
            if _add_reason(row, t):
                add_event(
                    s, row.id, t.at_ms, "reason_added", actor=f"rule:{t.rule_id}", note=t.title,
                    data={"device": t.device_id, "value": t.value, "seq": t.reading_seq},
                )  # fmt: skip
            row.repeat_count += 1
            row.last_seen_ms = row.updated_at_ms = t.at_ms
            row.alert_firing = True
            add_event(
                s,
                row.id,
                t.at_ms,
                "repeated",
                actor=f"rule:{t.rule_id}",
                data={"device": t.device_id, "value": t.value, "seq": t.reading_seq},
            )
            return IncidentChange(ChangeKind.REPEATED, row.id, Severity(row.severity))
        if self._flood.is_offline(t) and ctx.building_id:
            change = await self._flood_offline(s, t, ctx)
            if change is not None:
                return change
        kind = "offline" if self._flood.is_offline(t) else "alert"
        hold = self._flood.window_ms if kind == "offline" else 0
        if kind == "alert" and self._storm is not None and self._storm.applies(t.severity):
            grouped = await self._storm_alert(s, t, ctx, self._storm)
            if isinstance(grouped, IncidentChange):
                return grouped
            hold = grouped
        return await self._open(s, t, ctx, kind=kind, first_page_ms=t.at_ms + hold)

    async def _storm_alert(
        self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext, sc: st.StormControl
    ) -> IncidentChange | int:
        """Join or open this rule's storm (alerting/incidents/storm.py); otherwise how long
        the new incident's first page waits for a storm to form (0: page now)."""
        key = sc.key(t.site, t.rule_id)
        storm = await active_by_key(s, key)
        if storm is not None:
            await st.join(s, storm, t, t.at_ms)
            return IncidentChange(ChangeKind.ATTACHED, storm.id, Severity(storm.severity))
        limits = sc.limits(t.rule_id)
        since = t.at_ms - limits.window_ms
        recent = await st.count_recent(s, t.site, t.rule_id, since)
        if recent + 1 <= limits.threshold:
            return sc.group_wait_ms if recent and sc.holds_first_page(t.severity) else 0
        what = Opening(
            dedupe_key=key,
            rule_id=t.rule_id,
            subject=f"{st.STORM_KIND}:{t.rule_id}",
            device_id=None,
            device_type=ctx.device_type,
            location=t.site,
            severity=t.severity,
            category=t.category,
            auto_resolve=t.auto_resolve,
            title=f"{t.title}：多台设备同时报警 (alert storm)",
        )
        change = await self._open(s, t, ctx, kind=st.STORM_KIND, first_page_ms=t.at_ms, what=what)
        row = await s.get(IncidentRow, change.incident_id)
        assert row is not None
        for device in await st.recent_alerts(s, t.site, t.rule_id, since):
            await st.fold(s, row, device, t.at_ms)
        await st.join(s, row, t, t.at_ms)
        return change

    async def _open(
        self,
        s: AsyncSession,
        t: AlertTransition,
        ctx: DeviceContext,
        *,
        kind: str,
        first_page_ms: int,
        what: Opening | None = None,
        page_now: bool = True,
    ) -> IncidentChange:
        o = what or Opening.of(t, ctx)
        # 五彩档案: a high-risk household raises the severity and shortens the deadlines.
        tier = ctx.risk_tier if what is None else None
        o = replace(o, severity=self._tiers.severity(tier, o.severity))
        labels = route_labels(
            severity=o.severity,
            category=o.category,
            rule_id=o.rule_id,
            device_type=o.device_type,
            site=t.site,
            grid_id=ctx.grid_id,
            building_id=ctx.building_id,
            household_flags=ctx.household_flags,
            page_household=t.page_household,
        )
        ladder = self._tiers.ladder(tier, self._policy.ladder_for(labels))
        # Before the row is added, so this query flushes nothing: each round trip counts on
        # the alarm path.
        silence = await active_silence(
            s,
            site=t.site,
            device_id=o.device_id,
            building_id=ctx.building_id,
            grid_id=ctx.grid_id,
            now_ms=t.at_ms,
        )
        row = IncidentRow(
            site=t.site,
            dedupe_key=o.dedupe_key,
            active_key=o.dedupe_key,
            kind=kind,
            rule_id=o.rule_id,
            subject=o.subject,
            device_id=o.device_id,
            device_type=o.device_type,
            grid_id=ctx.grid_id,
            building_id=ctx.building_id,
            household_id=ctx.household_id,
            location=o.location,
            severity=o.severity.value,
            category=o.category.value,
            title=o.title,
            status=IncidentStatus.OPEN.value,
            alert_firing=True,
            auto_resolve=o.auto_resolve,
            opened_at_ms=t.at_ms,
            updated_at_ms=t.at_ms,
            last_seen_ms=t.at_ms,
            repeat_count=0,
            reading_ts_ms=t.reading_ts_ms,
            reading_seq=t.reading_seq,
            round=0,
            ack_due_ms=ack_due_ms(ladder, t.at_ms) if ladder.steps else None,
            labels=labels,
            risk_tier=tier,
            household_card=ctx.household_card.to_json()
            if ctx.household_card is not None and what is None
            else None,
            card=build_card(t, ctx) if what is None else None,
            reasons=[_reason(t)] if what is None else None,
        )
        drawn = reserved_ids(s, IncidentRow.__tablename__)
        if drawn:
            # An id drawn ahead (core.db.IdReserve): nothing is written yet, so the first
            # pages can go out before the rows do (alerting/pipeline.py).
            row.id = drawn[0]
            s.add(row)
        else:
            s.add(row)
            await s.flush()
            # Its pages name this id before the commit; a retry of a cut transaction reuses it.
            note_ids(s, IncidentRow.__tablename__, [row.id])
        remember_active(s, row)
        add_event(
            s,
            row.id,
            t.at_ms,
            "opened",
            actor=f"rule:{t.rule_id}",
            data={
                "device": t.device_id,
                "value": t.value,
                "ts": t.reading_ts_ms,
                "seq": t.reading_seq,
            },
        )
        timer = None
        if ladder.steps:
            timer = new_timer(
                s, row.id, kind=TimerKind.STEP, due_at_ms=first_page_ms, ladder=ladder
            )
        if silence is not None and life_safety(labels, row.rule_id):
            add_event(
                s,
                row.id,
                t.at_ms,
                "under_maintenance",
                note="设备维护中 (device under maintenance): a life-safety alarm pages anyway",
                data={"silence": silence.id, "until": silence.ends_at_ms},
            )
            if timer is not None:
                timer.note = "maintenance"
            silence = None
        if silence is not None:
            add_event(
                s,
                row.id,
                t.at_ms,
                "silenced",
                note=silence.reason,
                data={"silence": silence.id, "until": silence.ends_at_ms},
            )
        first_page = None
        if page_now and timer is not None and silence is None:
            first_page = (row, timer) if first_page_ms <= self._clock.now_ms() else None
        kind_out = ChangeKind.OUTAGE_OPENED if kind == "building_outage" else ChangeKind.OPENED
        return IncidentChange(
            kind_out, row.id, o.severity, silenced=silence is not None, first_page=first_page
        )

    async def _record_info(
        self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext
    ) -> IncidentChange:
        """Info (a self-test): an incident resolved on the spot as a device test, no ladder."""
        change = await self._open(s, t, ctx, kind="alert", first_page_ms=t.at_ms, page_now=False)
        row = await s.get(IncidentRow, change.incident_id)
        assert row is not None
        await stop_timer(s, row.id)
        set_status(row, IncidentStatus.RESOLVED, t.at_ms)
        row.resolution = Resolution.DEVICE_TEST.value
        row.resolved_by, row.resolved_at_ms = SYSTEM, t.at_ms
        add_event(s, row.id, t.at_ms, "recorded", note="info severity: recorded, nobody paged")
        return IncidentChange(ChangeKind.RECORDED, row.id, Severity.INFO)

    async def _flood_offline(
        self, s: AsyncSession, t: AlertTransition, ctx: DeviceContext
    ) -> IncidentChange | None:
        assert ctx.building_id is not None
        key = self._flood.outage_key(t.site, ctx.building_id)
        outage = await active_by_key(s, key)
        if outage is not None:
            fl.attach(s, outage, t, t.at_ms)
            return IncidentChange(ChangeKind.ATTACHED, outage.id, Severity(outage.severity))
        recent = await fl.recent_offline(s, self._flood, t.site, ctx.building_id, t.at_ms)
        if len(recent) + 1 < self._flood.threshold:
            return None
        what = Opening(
            dedupe_key=key,
            rule_id=fl.OUTAGE_RULE,
            subject=f"building:{ctx.building_id}",
            device_id=None,
            device_type="building",
            location=ctx.building_id,
            severity=self._flood.severity,
            category=Category.MAINTENANCE,
            auto_resolve=True,
            title=f"楼栋设备大面积离线 {ctx.building_id} (building outage)",
        )
        change = await self._open(
            s, t, ctx, kind="building_outage", first_page_ms=t.at_ms, what=what
        )
        outage = await s.get(IncidentRow, change.incident_id)
        assert outage is not None
        for device in recent:
            await fl.fold(s, outage, device, t.at_ms)
        fl.attach(s, outage, t, t.at_ms)
        return change

    async def _cleared(
        self, s: AsyncSession, t: AlertTransition, _ctx: DeviceContext
    ) -> IncidentChange | None:
        row = await active_by_key(s, t.dedupe_key)
        if row is None:
            found = await fl.detach(s, t.dedupe_key, t.at_ms)
            if found is None:
                return None
            outage, all_back = found
            if all_back and outage.auto_resolve:
                await self._auto_resolve(s, outage, t.at_ms)
                return IncidentChange(
                    ChangeKind.AUTO_RESOLVED, outage.id, Severity(outage.severity)
                )
            return IncidentChange(ChangeKind.CLEARED, outage.id, Severity(outage.severity))
        row.updated_at_ms = t.at_ms
        if _clear_reason(row, t):
            add_event(s, row.id, t.at_ms, "reason_cleared", actor=f"rule:{t.rule_id}")
            return IncidentChange(ChangeKind.CLEARED, row.id, Severity(row.severity))
        row.alert_firing = False
        if t.auto_resolve and row.auto_resolve:
            await self._auto_resolve(s, row, t.at_ms)
            return IncidentChange(ChangeKind.AUTO_RESOLVED, row.id, Severity(row.severity))
        add_event(
            s,
            row.id,
            t.at_ms,
            "alert_cleared",
            actor=f"rule:{t.rule_id}",
            note="the alert cleared; a person resolves this incident",
        )
        return IncidentChange(ChangeKind.CLEARED, row.id, Severity(row.severity))

    async def _auto_resolve(self, s: AsyncSession, row: IncidentRow, now_ms: int) -> None:
        set_status(row, IncidentStatus.RESOLVED, now_ms)
        res = auto_resolution(Category(row.category), Severity(row.severity))
        row.resolution = res.value if res else None
        row.resolved_by, row.resolved_at_ms = SYSTEM, now_ms
        await stop_timer(s, row.id)
        add_event(
            s, row.id, now_ms, "auto_resolved", note="the alert cleared and its rule allows it"
        )

    async def run_actions(
        self, change: IncidentChange | None, t: AlertTransition, ctx: DeviceContext
    ) -> IncidentChange | None:
        """Run a firing rule's device actions (e.g. cut a charger's power) and record them."""
        outcomes = await self.device_actions(change, t, ctx)
        if change is None or not outcomes:
            return change

        async def record(s: AsyncSession) -> None:
            self.record_actions(s, change, t, outcomes)

        await self._tx(record)
        return replace(change, actions=outcomes)

    async def device_actions(
        self, change: IncidentChange | None, t: AlertTransition, ctx: DeviceContext
    ) -> tuple[ActionOutcome, ...]:
        """Publish (or queue, over the command rate) a firing rule's device actions."""
        if change is None or not t.actions or t.state is not AlertState.FIRING:
            return ()
        return tuple(
            [await self._actions.run_action(a, t, ctx, change.incident_id) for a in t.actions]
        )

    async def device_actions_many(
        self, items: list[tuple[IncidentChange | None, AlertTransition, DeviceContext]]
    ) -> list[tuple[ActionOutcome, ...]]:
        """:meth:`device_actions` of a batch, handed to the runner at once (the command desk
        records a storm batch's commands in one transaction, not one each)."""
        work: list[ActionRequest] = []
        owner: list[int] = []
        for i, (change, t, ctx) in enumerate(items):
            if change is None or not t.actions or t.state is not AlertState.FIRING:
                continue
            for a in t.actions:
                work.append((a, t, ctx, change.incident_id))
                owner.append(i)
        outcomes = await self._actions.run_actions(work) if work else []
        grouped: list[list[ActionOutcome]] = [[] for _ in items]
        for i, outcome in zip(owner, outcomes, strict=True):
            grouped[i].append(outcome)
        return [tuple(g) for g in grouped]

    @staticmethod
    def record_actions(
        s: AsyncSession,
        change: IncidentChange,
        t: AlertTransition,
        outcomes: tuple[ActionOutcome, ...],
    ) -> None:
        """The actions' outcomes on the incident's record, in the caller's transaction."""
        for o in outcomes:
            if o.recorded:  # a tracked command is on the timeline already (alerting/commands)
                continue
            add_event(
                s,
                change.incident_id,
                t.at_ms,
                "action_queued" if o.queued else "action" if o.ok else "action_failed",
                note=o.error,
                data={"action": o.action, "topic": o.topic, "payload": o.payload},
            )


def _reason(t: AlertTransition) -> dict[str, object]:
    return {"rule": t.rule_id, "title": t.title, "at_ms": t.at_ms, "value": t.value, "firing": True}


def _add_reason(row: IncidentRow, t: AlertTransition) -> bool:
    """Record ``t``'s rule among the incident's reasons; True if it is a new reason (another
    rule of the same hazard fired on the device)."""
    reasons = list(row.reasons or [])
    for i, r in enumerate(reasons):
        if r.get("rule") == t.rule_id:
            reasons[i] = {**r, "firing": True}
            row.reasons = reasons  # a new list: the JSON column sees the change
            return False
    row.reasons = [*reasons, _reason(t)]
    return True


def _clear_reason(row: IncidentRow, t: AlertTransition) -> bool:
    """Mark ``t``'s rule cleared; True while another reason of the incident still fires (the
    incident's alert is then not over)."""
    reasons = [
        {**r, "firing": False} if r.get("rule") == t.rule_id else r for r in row.reasons or []
    ]
    row.reasons = reasons
    return any(r.get("firing") for r in reasons)
