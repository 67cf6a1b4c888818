"""What a notifier gets (one delivery: one person, one channel) and the Notifier protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from alerting.notify.tables import DeliveryKind
from alerting.routing.directory import ChannelKind

CST = timezone(timedelta(hours=8), "CST")
SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "一般", "info": "提示"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification. ``incident`` is the JSON incident of the downlink contract."""

    id: int
    idempotency_key: str
    incident_id: int
    kind: DeliveryKind
    step: str
    person_id: str
    role: str
    channel: ChannelKind
    address: str
    text: str = ""
    incident: dict[str, Any] = field(default_factory=dict)
    # Shown with the page so the app can say "delivered" / "read" (POST
    # /api/v1/deliveries/{id}/receipt with this token); empty for rows planned before receipts.
    receipt_token: str = ""

    def message(self) -> dict[str, Any]:
        """The JSON body an app or webhook receives: the incident plus why this person gets it."""
        return {
            **self.incident,
            "notification": {
                "kind": self.kind,
                "step": self.step,
                "role": self.role,
                "person": self.person_id,
                "key": self.idempotency_key,
                "text": self.text,
                "delivery": self.id,
                "receipt_token": self.receipt_token,
            },
        }


class Notifier(Protocol):
    """Sends one delivery; returns when the far end accepted it, raises otherwise.

    Returns the provider's id for the message when it has one (an SMS BizId, a call id): the
    status report that later says "delivered" names it.
    """

    async def send(self, delivery: Delivery) -> str | None: ...


class DeliveryError(Exception):
    """A failed send. ``permanent`` failures (bad address, 4xx) are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def local_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def title(d: Delivery) -> str:
    sev = SEVERITY_ZH.get(str(d.incident.get("severity")), "")
    prefix = {DeliveryKind.REMINDER: "【提醒】", DeliveryKind.OUTCOME: "【处理结果】"}.get(
        d.kind, ""
    )
    return f"{prefix}【{sev}】{d.incident.get('title', '')}"


def card_lines(card: dict[str, Any] | None) -> list[str]:
    """The responder's facts of an incident card (alerting/incidents/card.py) as text lines."""
    if not card:
        return []
    lines = []
    home = card.get("household") or {}
    who = "、".join(x for x in (home.get("resident"), *home.get("flags", ())) if x)
    if who:
        lines.append(f"住户: {who}")
    if home.get("note"):
        lines.append(f"备注: {home['note']}")
    family = [
        f"{c.get('name', '')}({c.get('relation', '')}) {c.get('phone', '')}"
        for c in home.get("contacts") or ()
    ]
    if family:
        lines.append("家属: " + "，".join(family))
    if card.get("guidance"):
        lines.append(f"先做: {card['guidance']}")
    if (card.get("where") or {}).get("map_url"):
        lines.append(f"地图: {card['where']['map_url']}")
    return lines


def render_text(d: Delivery) -> str:
    """Plain text for SMS, email and robots; Chinese first, as the people reading it are."""
    i = d.incident
    lines = [title(d)]
    if d.kind == DeliveryKind.OUTCOME:
        lines.append(d.text or "事件已处理完毕。")
    else:
        lines.append(f"位置: {i.get('location') or i.get('building') or '-'}")
        if i.get("device"):  # a hotline call or a patrol finding has no device
            lines.append(f"设备: {i.get('device')} ({i.get('device_type', '')})")
        lines.append(f"时间: {local_time(i.get('opened_at'))}")
        lines += card_lines(i.get("card"))
        if d.kind == DeliveryKind.REMINDER:
            lines.append("事件已确认但尚未处理完毕，请尽快处置。")
        if d.text:
            lines.append(d.text)
    lines.append(f"事件编号 #{d.incident_id}")
    return "\n".join(lines)
