"""Delivery receipts: providers' status reports (SMS delivered, call answered) and the app's
own "shown" / "opened" receipts move a delivery to ``delivered`` / ``read``.

A report that says *not* delivered leaves its reason and makes the delivery due for the
escalation's receipt check at once (the scheduler owns what happens next: the person's next
channel, then the next person). Parsers take the providers' documented callback bodies:

* Alibaba SMS status report (SmsReport, HTTP push): a JSON array of
  ``{"phone_number", "success", "err_code", "err_msg", "biz_id", "out_id", "report_time", …}``
* Alibaba voice call record (VoiceReport, after the call): ``{"call_id", "start_time",
  "duration", "status_code", "status_msg", "out_id", …}``; ``start_time`` is when the callee
  picked up, empty when nobody did — answered means delivered
* Tencent SMS status callback: ``{"sid", "report_status": "SUCCESS"|"FAIL", "errmsg",
  "description", "mobile", "user_receive_time", …}``
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.notify.tables import REACHED, DeliveryRow, DeliveryStatus

#: Prefix of ``last_error`` when a status report said "not delivered" (the scheduler reads it).
RECEIPT_FAILED = "receipt: "


@dataclass(frozen=True, slots=True)
class Receipt:
    ref: str  # the provider's message id (BizId, SerialNo, CallId)
    delivered: bool
    reason: str = ""


def _items(body: Any) -> list[dict[str, Any]]:
    items = body if isinstance(body, list) else [body]
    return [i for i in items if isinstance(i, dict)]


def aliyun_sms(body: Any) -> list[Receipt]:
    return [
        Receipt(
            str(i.get("biz_id", "")),
            i.get("success") is True,
            f"{i.get('err_code', '')} {i.get('err_msg', '')}".strip(),
        )
        for i in _items(body)
    ]


def aliyun_voice(body: Any) -> list[Receipt]:
    return [
        Receipt(
            str(i.get("call_id", "")),
            bool(i.get("start_time")),
            f"{i.get('status_code', '')} {i.get('status_msg', '')}".strip() or "not answered",
        )
        for i in _items(body)
    ]


def tencent_sms(body: Any) -> list[Receipt]:
    return [
        Receipt(
            str(i.get("sid", "")),
            i.get("report_status") == "SUCCESS",
            f"{i.get('errmsg', '')} {i.get('description', '')}".strip(),
        )
        for i in _items(body)
    ]


@dataclass(frozen=True, slots=True)
class ProviderReceipts:
    parse: Callable[[Any], list[Receipt]]
    answer: dict[str, Any]  # what the provider expects back to stop resending the report


PROVIDERS: dict[str, ProviderReceipts] = {
    "aliyun-sms": ProviderReceipts(aliyun_sms, {"code": 0, "msg": "成功"}),
    "aliyun-voice": ProviderReceipts(aliyun_voice, {"code": 0, "msg": "成功"}),
    "tencent-sms": ProviderReceipts(tencent_sms, {"result": 0, "errmsg": "OK"}),
}


def _delivered(row: DeliveryRow, now_ms: int) -> None:
    if row.status not in REACHED:
        row.status = DeliveryStatus.DELIVERED
    row.delivered_at_ms = row.delivered_at_ms or now_ms
    row.receipt_due_ms = None
    row.updated_at_ms = now_ms


async def apply_reports(
    sm: async_sessionmaker[AsyncSession], receipts: Iterable[Receipt], now_ms: int
) -> int:
    """Apply status reports; returns how many named a delivery we know."""
    matched = 0
    async with sm.begin() as s:
        for r in receipts:
            if not r.ref:
                continue
            rows = (await s.execute(select(DeliveryRow).where(DeliveryRow.provider_ref == r.ref))).scalars()
            for row in rows:
                matched += 1
                if r.delivered:
                    _delivered(row, now_ms)
                elif row.status == DeliveryStatus.SENT:
                    # Not delivered: the escalation's receipt check acts on it at its next tick.
                    row.last_error = f"{RECEIPT_FAILED}{r.reason or 'not delivered'}"[:2000]
                    row.receipt_due_ms = now_ms
                    row.updated_at_ms = now_ms
    return matched


async def app_receipt(
    sm: async_sessionmaker[AsyncSession], delivery_id: int, token: str, read: bool, now_ms: int
) -> DeliveryRow | None:
    """The app showed (``read=False``) or the person opened (``read=True``) a page; ``None``
    when no delivery has this id and token."""
    async with sm.begin() as s:
        row = await s.get(DeliveryRow, delivery_id, with_for_update=True)
        if row is None or not row.receipt_token:
            return None
        if not hmac.compare_digest(row.receipt_token.encode(), token.encode()):
            return None
        _delivered(row, now_ms)
        if read:
            row.status = DeliveryStatus.READ
            row.read_at_ms = row.read_at_ms or now_ms
        return row
