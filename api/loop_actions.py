"""The closed loop's incident actions (run inside the action's transaction) and what they send
after it committed: a referral to the department, the result to the residents."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.silences import Matcher
from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow, SilenceRow
from alerting.incidents.views import ARRIVED_MARK, IncidentView, incident_message
from alerting.loop import tokens
from alerting.loop.services import LoopServices
from alerting.loop.tables import CaseRow, DeptReferralRow, PhotoRow
from api.errors import FieldError
from api.loop_schemas import (
    HazardStep,
    IncidentArrive,
    IncidentSilence,
    IncidentTriage,
    IncidentVerify,
    LoopRefer,
)
from api.services import ApiServices
from gateway.registry.tables import Household

ARRIVED = ARRIVED_MARK  # the read model finds the arrival by this mark


def loop_of(sv: ApiServices) -> LoopServices:
    if sv.loop is None:
        raise ValueError("the closed loop is not configured on this gateway")
    return sv.loop


async def _row(s: AsyncSession, incident_id: int) -> IncidentRow:
    row = await s.get(IncidentRow, incident_id, with_for_update=True)
    if row is None:
        raise LookupError(incident_id)
    return row


async def _photos_of(s: AsyncSession, incident_id: int, ids: list[int]) -> None:
    if not ids:
        return
    found = set(
        await s.scalars(
            select(PhotoRow.id).where(PhotoRow.incident_id == incident_id, PhotoRow.id.in_(ids))
        )
    )
    if missing := sorted(set(ids) - found):
        raise FieldError("photo_ids", f"no photos {missing} on incident {incident_id}")


async def triage(sv: ApiServices, i: int, who: str, b: IncidentTriage, s: AsyncSession) -> None:
    row = await _row(s, i)
    await loop_of(sv).desk.triage(s, row, b.tier, who, b.note, sv.clock.now_ms())


async def arrive(sv: ApiServices, i: int, who: str, b: IncidentArrive, s: AsyncSession) -> None:
    await sv.incidents.comment(i, who, f"{ARRIVED} {b.note}".strip(), session=s)
    if sv.loop is not None:
        await sv.loop.desk.arrive(s, i, who, sv.clock.now_ms())


async def hazard(sv: ApiServices, i: int, who: str, b: HazardStep, s: AsyncSession) -> None:
    row = await _row(s, i)
    await _photos_of(s, i, b.photo_ids)
    await loop_of(sv).desk.hazard_step(s, row, b.step, who, b.note, b.photo_ids, sv.clock.now_ms())


async def refer(sv: ApiServices, i: int, who: str, b: LoopRefer, s: AsyncSession) -> None:
    loop = loop_of(sv)
    dept = loop.desk.config.department(b.department)
    if dept is None:
        known = ", ".join(d.id for d in loop.desk.config.departments)
        raise FieldError("department", f"unknown department '{b.department}'; one of {known}")
    row = await _row(s, i)
    await loop.desk.refer(s, row, dept, who, b.note, sv.clock.now_ms(), b.due_h)


async def verify(sv: ApiServices, i: int, who: str, b: IncidentVerify, s: AsyncSession) -> None:
    """核查: passed closes the incident; not passed sends it back (reopen)."""
    await _photos_of(s, i, b.photo_ids)
    now = sv.clock.now_ms()
    if not b.passed:
        await sv.incidents.reopen(i, who, f"核查未通过 (verification failed): {b.note}", session=s)
        return
    row = await _row(s, i)
    category = None if row.resolution else "handled"
    await sv.incidents.close(i, who, b.note, category, session=s)  # type: ignore[arg-type]
    if sv.loop is not None:
        await sv.loop.desk.verified(s, i, who, now)
        if b.photo_ids:
            add_event(s, i, now, "verify_photos", actor=who, data={"photos": b.photo_ids})


async def silence(sv: ApiServices, i: int, who: str, b: IncidentSilence, s: AsyncSession) -> None:
    """A maintenance window on the incident's device (life-safety alarms still page)."""
    row = await _row(s, i)
    if row.device_id is None:
        raise FieldError("incident", "only a device's incident can be silenced")
    now = sv.clock.now_ms()
    end = now + int(b.hours * 3_600_000)
    s.add(
        SilenceRow(
            site=row.site,
            matcher=Matcher.DEVICE.value,
            value=row.device_id,
            starts_at_ms=now,
            ends_at_ms=end,
            created_by=who,
            created_at_ms=now,
            reason=b.reason,
        )
    )
    add_event(
        s,
        i,
        now,
        "silence_set",
        actor=who,
        note=b.reason,
        data={"device": row.device_id, "until": end},
    )


# -- after the commit --------------------------------------------------------------------------


def link(sv: ApiServices, base_url: str, path: str) -> str:
    base = (sv.loop.public_url if sv.loop and sv.loop.public_url else base_url).rstrip("/")
    return f"{base}{path}"


async def after_refer(sv: ApiServices, incident_id: int, base_url: str) -> None:
    """Send the newest referral of the incident to its department; record the outcome."""
    loop = loop_of(sv)
    async with sv.sessions() as s:
        ref = await s.scalar(
            select(DeptReferralRow)
            .where(DeptReferralRow.incident_id == incident_id)
            .order_by(DeptReferralRow.id.desc())
            .limit(1)
        )
        row = await s.get(IncidentRow, incident_id)
    if ref is None or row is None:
        return
    dept = loop.desk.config.department(ref.department)
    if dept is None:
        return
    token = tokens.sign(sv.config.secret_key, "ref", ref.id)
    url = link(sv, base_url, f"/board/reply.html?t={token}")
    message = incident_message(IncidentView.of(row))
    ok, errors = await loop.messenger.refer(dept, ref.id, message, ref.note, url)
    async with sv.sessions.begin() as s:
        ref2 = await s.get(DeptReferralRow, ref.id)
        assert ref2 is not None
        ref2.sent_ok, ref2.send_errors = ok, "; ".join(errors)
        kind = "referral_sent" if ok else "referral_send_failed"
        add_event(
            s,
            incident_id,
            sv.clock.now_ms(),
            kind,
            note="; ".join(errors),
            data={"referral": ref.id, "department": dept.id, "channels_ok": ok},
        )


async def after_verify(sv: ApiServices, incident_id: int, base_url: str) -> None:
    """Closed after verification: tell the caller and the household (结果反馈)."""
    if sv.loop is None:
        return
    async with sv.sessions() as s:
        row = await s.get(IncidentRow, incident_id)
        case = await s.get(CaseRow, incident_id)
        if row is None or case is None or row.status != "closed" or case.feedback_sent_at_ms:
            return
        phones = [case.caller_phone] if case.caller_phone else []
        if row.household_id:
            household = await s.get(Household, row.household_id)
            phones += [c.get("phone", "") for c in (household.contacts if household else [])]
    phones = list(dict.fromkeys(p for p in phones if p))
    if not phones:
        return
    token = tokens.sign(sv.config.secret_key, "rate", incident_id)
    url = link(sv, base_url, f"/board/rate.html?t={token}")
    message = incident_message(IncidentView.of(row))
    sent, errors = await sv.loop.messenger.feedback(message, phones, case.case_category, url)
    async with sv.sessions.begin() as s:
        c = await s.get(CaseRow, incident_id)
        assert c is not None
        now = sv.clock.now_ms()
        if sent:
            c.feedback_sent_at_ms = now
        add_event(
            s,
            incident_id,
            now,
            "feedback_sent" if sent else "feedback_failed",
            note="; ".join(errors),
            data={"to": len(sent)},
        )
