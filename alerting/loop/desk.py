"""Closed-loop actions on incidents: intake, triage, arrival, hazard steps, referral and the
department's reply, verification and rating. Each works inside the caller's transaction (the
API adds its audit row to the same commit) and appends its event to the incident's timeline."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from alerting.escalation.timers import EscalationTimerRow, TimerKind, set_timer
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow, ReferralRow
from alerting.loop.config import DepartmentSpec, LoopConfig, Tier
from alerting.loop.hazard import HazardState, next_hazard_state
from alerting.loop.intake import NewCase
from alerting.loop.tables import CaseRow, DeptReferralRow
from alerting.models import Category
from alerting.routing.ladder import Ladder
from alerting.routing.router import RoutingPolicy
from alerting.routing.tree import route_labels

HOUR_MS = 3_600_000
RATINGS = ("satisfied", "basically_satisfied", "dissatisfied")  # 满意 / 基本满意 / 不满意


class LoopDesk:
    """The loop's changes; ``now_ms`` is always passed in."""

    def __init__(self, config: LoopConfig, policy: RoutingPolicy | None = None) -> None:
        self.config = config
        self._policy = policy or RoutingPolicy()

    def ladder(self, row: IncidentRow) -> Ladder:
        return self._policy.ladder_for({k: str(v) for k, v in (row.labels or {}).items()})

    async def case(self, s: AsyncSession, incident_id: int) -> CaseRow:
        case = await s.get(CaseRow, incident_id)
        if case is None:  # an incident from before the loop existed
            case = CaseRow(incident_id=incident_id, source="device", hazard=False)
            s.add(case)
        return case

    def effective_tier(self, row: IncidentRow, case: CaseRow | None) -> str | None:
        if case is not None and case.tier:
            return case.tier
        source = case.source if case is not None else "device"
        category = case.case_category if case is not None else None
        tier = self.config.default_tier(source, category, row.rule_id)
        return tier.value if tier else None

    # ---------------------------------------------------------------- intake (立案)

    async def intake(
        self,
        s: AsyncSession,
        new: NewCase,
        *,
        site: str,
        household_id: str | None,
        actor: str,
        now_ms: int,
        place: str = "",
    ) -> IncidentRow:
        """Open a reported incident; hotline and resident reports start paging the grid."""
        key = f"{new.source.value}:{uuid.uuid4().hex}"
        labels = route_labels(
            severity=new.severity,
            category=Category.SAFETY,
            rule_id=f"report.{new.category.value}",
            device_type="report",
            site=site,
            grid_id=new.grid_id,
            building_id=new.building_id,
        )
        row = IncidentRow(
            site=site,
            dedupe_key=key,
            active_key=key,
            kind="hazard" if new.hazard else "report",
            rule_id=f"report.{new.category.value}",
            subject=new.building_id or new.grid_id,
            device_id=None,
            device_type="report",
            grid_id=new.grid_id,
            building_id=new.building_id,
            household_id=household_id,
            location=" ".join(filter(None, (place, new.location)))[:200],
            severity=new.severity.value,
            category=Category.SAFETY.value,
            title=new.title(place),
            status=IncidentStatus.OPEN.value,
            alert_firing=False,
            auto_resolve=False,
            opened_at_ms=now_ms,
            updated_at_ms=now_ms,
            last_seen_ms=now_ms,
            repeat_count=0,
            round=0,
            labels=labels,
            assignee=actor if new.source.value in ("patrol", "inspection") else None,
        )
        s.add(row)
        await s.flush()
        case = await self.case(s, row.id)
        tier = self.config.default_tier(new.source.value, new.category.value, row.rule_id)
        case.source, case.case_category = new.source.value, new.category.value
        case.tier = tier.value if tier else None
        case.unit_room, case.description = new.unit_room, new.description
        case.caller_name, case.caller_phone = new.caller_name, new.caller_phone or ""
        if new.hazard:
            case.hazard, case.hazard_state = True, HazardState.REPORTED.value
            case.deadline_ms = new.deadline_ms
            case.responsible_kind = new.responsible_kind.value if new.responsible_kind else None
            case.responsible_name = new.responsible_name
        add_event(
            s,
            row.id,
            now_ms,
            "opened",
            actor=actor,
            note=new.description,
            data={
                "source": new.source.value,
                "category": new.category.value,
                "hazard": new.hazard,
                "tier": case.tier,
            },
        )
        ladder = self.ladder(row)
        if new.source.value in ("hotline", "resident") and ladder.steps:
            await set_timer(s, row.id, kind=TimerKind.STEP, due_at_ms=now_ms, ladder=ladder)
        return row

    # ---------------------------------------------------------------- triage (研判)

    async def triage(
        self, s: AsyncSession, row: IncidentRow, tier: Tier, actor: str, note: str, now_ms: int
    ) -> None:
        case = await self.case(s, row.id)
        case.tier, case.triaged_at_ms, case.triaged_by = tier.value, now_ms, actor
        row.updated_at_ms = now_ms
        add_event(s, row.id, now_ms, "triaged", actor=actor, note=note, data={"tier": tier.value})

    async def arrive(self, s: AsyncSession, incident_id: int, actor: str, now_ms: int) -> None:
        """On site (到场): the first arrival's time is what the ledger measures."""
        case = await self.case(s, incident_id)
        if case.arrived_at_ms is None:
            case.arrived_at_ms, case.arrived_by = now_ms, actor

    # ---------------------------------------------------------------- hazards (隐患整改)

    async def hazard_step(
        self,
        s: AsyncSession,
        row: IncidentRow,
        step: str,
        actor: str,
        note: str,
        photo_ids: list[int],
        now_ms: int,
    ) -> CaseRow:
        case = await self.case(s, row.id)
        if not case.hazard or case.hazard_state is None:
            raise ValueError("this incident is not a hazard")
        state = next_hazard_state(HazardState(case.hazard_state), step)
        if step == "reinspect" and not photo_ids:
            raise ValueError("a re-inspection (复查) needs a photo")
        case.hazard_state = state.value
        if state is HazardState.RECTIFIED:
            case.rectified_at_ms = now_ms
        row.updated_at_ms = now_ms
        add_event(
            s,
            row.id,
            now_ms,
            f"hazard_{state.value}",
            actor=actor,
            note=note,
            data={"photos": photo_ids},
        )
        return case

    # ---------------------------------------------------------------- referral (部门联动)

    async def refer(
        self,
        s: AsyncSession,
        row: IncidentRow,
        dept: DepartmentSpec,
        actor: str,
        note: str,
        now_ms: int,
        due_h: float | None = None,
    ) -> DeptReferralRow:
        due = now_ms + int((due_h or dept.reply_within_h) * HOUR_MS)
        ref = DeptReferralRow(
            incident_id=row.id,
            department=dept.id,
            actor=actor,
            at_ms=now_ms,
            note=note,
            status="sent",
            due_at_ms=due,
            reply="",
            sent_ok=0,
            send_errors="",
        )
        s.add(ref)
        s.add(
            ReferralRow(
                incident_id=row.id, department=dept.id, actor=actor, at_ms=now_ms, note=note
            )
        )
        await s.flush()
        row.updated_at_ms = now_ms
        add_event(
            s,
            row.id,
            now_ms,
            "referred",
            actor=actor,
            note=note,
            data={"department": dept.id, "referral": ref.id, "due_at_ms": due},
        )
        return ref

    async def department_reply(
        self, s: AsyncSession, ref: DeptReferralRow, status: str, note: str, now_ms: int
    ) -> None:
        """The department accepts (受理), replies with its result (回复) or declines."""
        if status == "accepted" and ref.accepted_at_ms is None:
            ref.accepted_at_ms = now_ms
        if status in ("replied", "declined"):
            ref.replied_at_ms, ref.reply = now_ms, note
            ref.accepted_at_ms = ref.accepted_at_ms or now_ms
        ref.status = status
        dept = self.config.department(ref.department)
        add_event(
            s,
            ref.incident_id,
            now_ms,
            f"department_{status}",
            actor=f"dept:{ref.department}",
            note=note,
            data={"referral": ref.id, "department": dept.name if dept else ref.department},
        )

    # ---------------------------------------------------------------- verification (核查)

    async def verified(self, s: AsyncSession, incident_id: int, actor: str, now_ms: int) -> None:
        case = await self.case(s, incident_id)
        case.verified_at_ms, case.verified_by = now_ms, actor

    async def rate(self, s: AsyncSession, incident_id: int, rating: str, now_ms: int) -> None:
        if rating not in RATINGS:
            raise ValueError(f"rating is one of {', '.join(RATINGS)}")
        case = await self.case(s, incident_id)
        case.rating, case.rated_at_ms = rating, now_ms
        add_event(s, incident_id, now_ms, "rated", actor="resident", data={"rating": rating})

    # ---------------------------------------------------------------- escalation of deadlines

    async def escalate_overdue(self, s: AsyncSession, row: IncidentRow, now_ms: int) -> None:
        """Page the community now: the ladder's step after the grid worker, due at once."""
        ladder = self.ladder(row)
        if not ladder.steps or row.status not in ("open", "acknowledged"):
            return
        timer = await s.get(EscalationTimerRow, row.id)
        step = min(1, len(ladder.steps) - 1)
        if timer is not None and timer.kind == TimerKind.STEP:
            step = max(step, timer.next_step)
        await set_timer(
            s,
            row.id,
            kind=TimerKind.STEP,
            due_at_ms=now_ms,
            ladder=ladder,
            next_step=min(step, len(ladder.steps) - 1),
            note="逾期 (overdue)",
        )

    async def remind(self, s: AsyncSession, row: IncidentRow, now_ms: int) -> None:
        """Remind whoever holds the hazard that its deadline is near."""
        ladder = self.ladder(row)
        timer = await s.get(EscalationTimerRow, row.id)
        if timer is not None and timer.kind == TimerKind.STEP:
            return  # the ladder is still paging: it reaches them anyway
        await set_timer(
            s,
            row.id,
            kind=TimerKind.REMINDER,
            due_at_ms=now_ms,
            ladder=ladder if timer is None else None,
        )
