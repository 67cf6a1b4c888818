"""Pure evaluators, one per rule kind: (spec, state, reading | None, ctx, now) → (state, found).

``reading is None`` means a timer came due (``RuleState.due_ms``): the engine calls the evaluator
from ``tick``. Evaluators never read the clock and return the *same* state object when nothing
changed, which is how the engine knows what is dirty without comparing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alerting.models import AlertState, AlertTransition
from alerting.rules.alert_state import EMPTY, RuleState, alive_until, ok_with_samples
from alerting.rules.schema import (
    AbsenceRule,
    CorrelationRule,
    CountInWindowRule,
    DurationRule,
    EventRule,
    RateOfRiseRule,
    RuleSpec,
    ThresholdRule,
)
from core.readings import DeviceContext, FieldValue, Reading

Result = tuple[RuleState, list[AlertTransition]]
_MAX_SAMPLES = 256


# --------------------------------------------------------------------------- transitions


def device_labels(ctx: DeviceContext) -> dict[str, str]:
    """Labels routing and the duty board use (grid first: routing starts from it)."""
    labels = {"grid": ctx.grid_id, "device_type": ctx.device_type}
    for key, value in (
        ("building", ctx.building_id),
        ("household", ctx.household_id),
        ("location", ctx.location),
        ("name", ctx.name),
    ):
        if value:
            labels[key] = value
    if ctx.household_flags:
        labels["household_flags"] = ",".join(sorted(ctx.household_flags))
    return labels


def location_key(ctx: DeviceContext, by: str = "building") -> str | None:
    """``building:B-01`` style key of where a device is; ``None`` if the registry does not say."""
    value = {"building": ctx.building_id, "household": ctx.household_id}.get(by, ctx.location)
    if by == "location" and not value:
        value = ctx.location or None
    return f"{by}:{value}" if value else None


def transition(
    spec: RuleSpec,
    ctx: DeviceContext,
    subject: str,
    state: AlertState,
    now_ms: int,
    *,
    reading: Reading | None = None,
    value: float | None = None,
    ts_seq: tuple[int | None, int | None] = (None, None),
) -> AlertTransition:
    """Build the transition of a per-device rule (subject = device id, ``#port`` when split)."""
    labels = device_labels(ctx)
    if "#" in subject:
        labels[spec.partition_by or "part"] = subject.split("#", 1)[1]  # type: ignore[union-attr]
    dedupe_subject = subject
    if spec.dedupe == "location":
        dedupe_subject = location_key(ctx) or location_key(ctx, "household") or subject
    # One incident per hazard of a device: every rule of the hazard shares its key.
    group = f"hazard.{spec.hazard}" if spec.hazard and spec.dedupe == "device" else spec.id
    readings: dict[str, FieldValue] = {}
    if reading is not None:
        ts_seq = (reading.ts_ms, reading.seq)
        readings = dict(reading.fields)
    return AlertTransition(
        rule_id=spec.id,
        subject=subject,
        site=ctx.site,
        device_id=ctx.device_id,
        state=state,
        severity=spec.severity,
        category=spec.category,
        title=spec.title,
        at_ms=now_ms,
        dedupe_key=f"{group}:{dedupe_subject}",
        auto_resolve=spec.auto_resolve,
        reading_ts_ms=ts_seq[0],
        reading_seq=ts_seq[1],
        value=value,
        labels=labels,
        actions=spec.actions if state is AlertState.FIRING else (),
        guidance=spec.guidance,
        readings=readings,
        page_household=spec.page_household,
    )


# --------------------------------------------------------------------------- helpers


def number(raw: FieldValue | None) -> float | None:
    """A numeric view of a field (booleans count as 0/1, strings are not numbers)."""
    if raw is None or isinstance(raw, str):
        return None
    return float(raw)


def compare(op: str, value: float, level: float) -> bool:
    if op == ">":
        return value > level
    if op == ">=":
        return value >= level
    if op == "<":
        return value < level
    return value <= level


def cleared(op: str, value: float, raise_at: float, clear_at: float | None) -> bool:
    """Past the clear level (hysteresis), or simply no longer over the raise level."""
    if clear_at is None:
        return not compare(op, value, raise_at)
    return value < clear_at if op in (">", ">=") else value > clear_at


def held_until(spec: RuleSpec, now_ms: int) -> int | None:
    """``None`` if the rule may raise now, else when its schedule next opens."""
    if spec.schedule is None or spec.schedule.is_active(now_ms):
        return None
    return spec.schedule.next_active_ms(now_ms)


def window_minima(
    samples: tuple[tuple[int, float], ...], cutoff_ms: int, now_ms: int, value: float
) -> tuple[tuple[int, float], ...]:
    """Add a sample to a window that keeps only possible minima (values strictly rising).

    The first entry is the window's minimum, so "rise within N" is ``value - samples[0]``;
    a steady signal keeps one entry instead of one per reading.
    """
    # Values are strictly rising, so the entries the new value replaces are a suffix and the
    # expired ones a prefix; an emptied window is the same whichever is trimmed first.
    end = len(samples)
    while end and samples[end - 1][1] >= value:
        end -= 1
    start = 0
    while start < end and samples[start][0] < cutoff_ms:
        start += 1
    if end - start > _MAX_SAMPLES:
        start = end - _MAX_SAMPLES
    if start >= end:
        return ((now_ms, value),)
    return (*samples[start:end], (now_ms, value))


def _evidence(reading: Reading, value: float | None) -> dict[str, Any]:
    return {"value": value, "reading_ts_ms": reading.ts_ms, "reading_seq": reading.seq}


# --------------------------------------------------------------------------- evaluators


def eval_threshold(
    spec: ThresholdRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
) -> Result:
    if reading is None:
        return st, []
    value = number(reading.fields.get(spec.field))
    if value is None:
        return st, []
    if st.status == "firing":
        if cleared(spec.op, value, spec.raise_at, spec.clear_at):
            return EMPTY, [
                transition(
                    spec, ctx, subject, AlertState.RESOLVED, now_ms, reading=reading, value=value
                )
            ]
        return st, []
    if compare(spec.op, value, spec.raise_at) and held_until(spec, now_ms) is None:
        new = RuleState(status="firing", since_ms=now_ms, **_evidence(reading, value))
        return new, [
            transition(spec, ctx, subject, AlertState.FIRING, now_ms, reading=reading, value=value)
        ]
    return st, []


def _duration_holds(spec: DurationRule, raw: FieldValue) -> bool:
    if spec.op == "in":
        return raw in spec.value  # type: ignore[operator]
    if spec.op in ("==", "!="):
        return (raw == spec.value) == (spec.op == "==")
    value = number(raw)
    return value is not None and compare(spec.op, value, float(spec.value))  # type: ignore[arg-type]


def _duration_cleared(spec: DurationRule, raw: FieldValue) -> bool:
    value = number(raw)
    if spec.clear_at is not None and value is not None:
        return cleared(spec.op, value, float(spec.value), spec.clear_at)  # type: ignore[arg-type]
    return not _duration_holds(spec, raw)


def _fire_pending(
    spec: DurationRule, st: RuleState, ctx: DeviceContext, now_ms: int, subject: str
) -> Result:
    wait = held_until(spec, now_ms)
    if wait is not None:
        return st._replace(due_ms=wait), []
    new = st._replace(status="firing", since_ms=now_ms, due_ms=None)
    return new, [
        transition(
            spec,
            ctx,
            subject,
            AlertState.FIRING,
            now_ms,
            value=st.value,
            ts_seq=(st.reading_ts_ms, st.reading_seq),
        )
    ]


def eval_duration(
    spec: DurationRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
) -> Result:
    if reading is None:
        if st.status == "pending" and st.due_ms is not None and now_ms >= st.due_ms:
            return _fire_pending(spec, st, ctx, now_ms, subject)
        return st, []
    raw = reading.fields.get(spec.field)
    if raw is None:
        return st, []
    if st.status == "ok":
        if not _duration_holds(spec, raw):
            return st, []
        new = RuleState(
            status="pending",
            since_ms=now_ms,
            due_ms=now_ms + spec.for_,
            **_evidence(reading, number(raw)),
        )
        return new, [
            transition(
                spec, ctx, subject, AlertState.PENDING, now_ms, reading=reading, value=number(raw)
            )
        ]
    if _duration_cleared(spec, raw):
        end = AlertState.OK if st.status == "pending" else AlertState.RESOLVED
        return EMPTY, [
            transition(spec, ctx, subject, end, now_ms, reading=reading, value=number(raw))
        ]
    if st.status == "pending" and st.due_ms is not None and now_ms >= st.due_ms:
        return _fire_pending(
            spec, st._replace(**_evidence(reading, number(raw))), ctx, now_ms, subject
        )
    return st, []


def eval_rate_of_rise(
    spec: RateOfRiseRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
) -> Result:
    if reading is None:
        return st, []
    value = number(reading.fields.get(spec.field))
    if value is None:
        return st, []
    samples = window_minima(st.samples, now_ms - spec.within, now_ms, value)
    rise = value - samples[0][1]
    hot = spec.min_value is None or value >= spec.min_value
    if st.status == "firing":
        clear_rise = spec.rise / 2 if spec.clear_rise is None else spec.clear_rise
        if rise < clear_rise and (spec.min_value is None or value < spec.min_value):
            return ok_with_samples(samples), [
                transition(
                    spec, ctx, subject, AlertState.RESOLVED, now_ms, reading=reading, value=rise
                )
            ]
        return st._replace(samples=samples), []
    if rise >= spec.rise and hot and held_until(spec, now_ms) is None:
        new = RuleState(
            status="firing", since_ms=now_ms, samples=samples, **_evidence(reading, rise)
        )
        return new, [
            transition(spec, ctx, subject, AlertState.FIRING, now_ms, reading=reading, value=rise)
        ]
    return ok_with_samples(samples), []  # ok keeps nothing else


def eval_event(
    spec: EventRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
) -> Result:
    if reading is None:
        if st.status == "firing" and st.due_ms is not None and now_ms >= st.due_ms:
            return EMPTY, [transition(spec, ctx, subject, AlertState.RESOLVED, now_ms)]
        return st, []
    event = reading.event
    if st.status == "firing" and event in spec.clear_on:
        return EMPTY, [transition(spec, ctx, subject, AlertState.RESOLVED, now_ms, reading=reading)]
    if event not in spec.events:
        return st, []
    if st.status == "firing":  # a repeat belongs to the same alert: extend, do not re-fire
        return st._replace(last_ms=now_ms, due_ms=now_ms + spec.hold), []
    if held_until(spec, now_ms) is not None:
        return st, []
    new = RuleState(
        status="firing",
        since_ms=now_ms,
        last_ms=now_ms,
        due_ms=now_ms + spec.hold,
        **_evidence(reading, None),
    )
    return new, [transition(spec, ctx, subject, AlertState.FIRING, now_ms, reading=reading)]


def eval_count_in_window(
    spec: CountInWindowRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
) -> Result:
    if reading is None:
        if st.due_ms is None or now_ms < st.due_ms:
            return st, []
        if st.status == "firing":
            return EMPTY, [transition(spec, ctx, subject, AlertState.RESOLVED, now_ms)]
        return EMPTY, []
    if reading.event not in spec.events:
        return st, []
    cutoff = now_ms - spec.within
    kept = [s for s in st.samples if s[0] > cutoff][-spec.count :]
    kept.append((now_ms, 1.0))
    samples, due = tuple(kept), now_ms + spec.within
    if st.status == "firing":
        return st._replace(samples=samples, due_ms=due, last_ms=now_ms), []
    if len(samples) >= spec.count and held_until(spec, now_ms) is None:
        new = RuleState(
            status="firing",
            since_ms=now_ms,
            due_ms=due,
            last_ms=now_ms,
            samples=samples,
            **_evidence(reading, float(len(samples))),
        )
        return new, [
            transition(
                spec,
                ctx,
                subject,
                AlertState.FIRING,
                now_ms,
                reading=reading,
                value=float(len(samples)),
            )
        ]
    return st._replace(samples=samples, due_ms=due, last_ms=now_ms), []


def absence_expects(spec: AbsenceRule, reading: Reading) -> bool:
    """Whether this reading is a sign of the life the rule waits for."""
    if reading.kind == "status":
        return spec.expect != "events" and reading.fields.get("online") is True
    if spec.expect == "any":
        return True
    if spec.expect == "heartbeat":
        return reading.kind == "telemetry"
    return reading.kind == "event" and reading.event in spec.events


def eval_absence(
    spec: AbsenceRule,
    st: RuleState,
    reading: Reading | None,
    ctx: DeviceContext,
    now_ms: int,
    subject: str,
    *,
    not_before: int = 0,
    peers_alive: bool = True,
    recheck_ms: int = 300_000,
) -> Result:
    """``not_before`` is the end of the start-up grace; ``peers_alive`` answers require_alive."""
    if reading is not None:
        if not absence_expects(spec, reading):
            return st, []
        new = alive_until(now_ms, now_ms + spec.window_ms(ctx))
        if st.status == "firing":
            return new, [
                transition(spec, ctx, subject, AlertState.RESOLVED, now_ms, reading=reading)
            ]
        return new, []
    if st.status == "firing" or st.last_ms is None:
        return st, []
    due = st.last_ms + spec.window_ms(ctx)
    if now_ms < due:
        return (st if st.due_ms == due else st._replace(due_ms=due)), []
    wait = max(not_before, held_until(spec, now_ms) or 0)
    if now_ms < wait:
        return st._replace(due_ms=wait), []
    if not peers_alive:
        return st._replace(due_ms=now_ms + recheck_ms), []
    silent_s = (now_ms - st.last_ms) / 1000
    new = st._replace(status="firing", since_ms=now_ms, due_ms=None, value=silent_s)
    return new, [transition(spec, ctx, subject, AlertState.FIRING, now_ms, value=silent_s)]


def _correlation_transition(
    spec: CorrelationRule, st: RuleState, subject: str, state: AlertState, now_ms: int
) -> AlertTransition:
    return AlertTransition(
        rule_id=spec.id,
        subject=subject,
        site=st.site,
        device_id=st.device_id,
        state=state,
        severity=spec.severity,
        category=spec.category,
        title=spec.title,
        at_ms=now_ms,
        dedupe_key=f"{spec.id}:{subject}",
        auto_resolve=spec.auto_resolve,
        reading_ts_ms=st.reading_ts_ms,
        reading_seq=st.reading_seq,
        value=float(len({h[1] for h in st.hits})),
        labels=dict(st.labels),
        actions=spec.actions if state is AlertState.FIRING else (),
        guidance=spec.guidance,
        page_household=spec.page_household,
    )


def eval_correlation(
    spec: CorrelationRule,
    st: RuleState,
    hit: AlertTransition | None,
    ctx: DeviceContext | None,
    now_ms: int,
    subject: str,
) -> Result:
    """``hit`` is a component rule's FIRING transition; ``None`` means the window timer ran out."""
    if hit is None or ctx is None:
        if st.due_ms is None or now_ms < st.due_ms:
            return st, []
        if st.status == "firing":
            return EMPTY, [_correlation_transition(spec, st, subject, AlertState.RESOLVED, now_ms)]
        return EMPTY, []
    groups = [i for i, group in enumerate(spec.groups) if hit.rule_id in group]
    cutoff = now_ms - spec.within
    device = hit.device_id or hit.subject
    hits = tuple(h for h in st.hits if h[0] > cutoff and not (h[1] == device and h[2] in groups))
    hits += tuple((now_ms, device, g) for g in groups)
    due = now_ms + spec.within
    if st.status == "firing":
        return st._replace(hits=hits, due_ms=due), []
    labels = device_labels(ctx)
    labels["device_type"] = spec.device_type
    for private in ("name", "location") if spec.by != "location" else ("name",):
        labels.pop(private, None)
    new = st._replace(hits=hits, due_ms=due, site=ctx.site, labels=tuple(sorted(labels.items())))
    covered = {h[2] for h in hits} >= set(range(len(spec.groups)))
    if (
        covered
        and len({h[1] for h in hits}) >= spec.min_devices
        and held_until(spec, now_ms) is None
    ):
        new = new._replace(
            status="firing",
            since_ms=now_ms,
            device_id=device,
            reading_ts_ms=hit.reading_ts_ms,
            reading_seq=hit.reading_seq,
        )
        return new, [_correlation_transition(spec, new, subject, AlertState.FIRING, now_ms)]
    return new, []


DEVICE_EVALUATORS: dict[str, Callable[..., Result]] = {
    "threshold": eval_threshold,
    "duration": eval_duration,
    "rate_of_rise": eval_rate_of_rise,
    "event": eval_event,
    "count_in_window": eval_count_in_window,
    "absence": eval_absence,
}
