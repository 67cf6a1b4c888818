"""What the loop sends outside: an incident to a department, the result to a resident. Both
go through the gateway's own notifiers (SMS gateway, webhook, email); each send's outcome is
recorded on the incident's timeline by the caller, so nothing fails unseen. A send that fails
for a passing reason (a timeout, a 5xx) is tried again a few times before it counts as failed:
a referral to the fire brigade must not be lost to one dropped connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from alerting.loop.config import DepartmentSpec
from alerting.loop.intake import CATEGORY_ZH
from alerting.notify.base import Delivery, DeliveryError, Notifier
from alerting.notify.stages import RetryPolicy
from alerting.notify.tables import DeliveryKind
from alerting.routing.directory import ChannelKind

log = logging.getLogger(__name__)


# A person waits on the screen for the outcome: a few quick tries, seconds in all.
QUICK_RETRY = RetryPolicy(attempts=3, base_s=0.5, factor=3.0, max_s=5.0)


class LoopMessenger:
    def __init__(
        self,
        notifiers: Mapping[ChannelKind, Notifier],
        retry: RetryPolicy = QUICK_RETRY,
    ) -> None:
        self._notifiers = notifiers
        self._retry = retry

    async def _send(
        self,
        key: str,
        incident: dict[str, Any],
        kind: DeliveryKind,
        who: str,
        channel: str,
        address: str,
        text: str,
    ) -> str | None:
        """Send one; the error text, or None when the far end accepted it."""
        notifier = self._notifiers.get(ChannelKind(channel))
        if notifier is None:
            return f"no {channel} channel configured"
        d = Delivery(
            id=0,
            idempotency_key=key,
            incident_id=int(incident["id"]),
            kind=kind,
            step=key.split(":")[1],
            person_id=who,
            role="department" if kind == "page" else "resident",
            channel=ChannelKind(channel),
            address=address,
            text=text,
            incident=incident,
        )
        error = ""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                await notifier.send(d)
            except DeliveryError as exc:
                if exc.permanent:
                    return str(exc)  # a wrong number stays wrong: no point trying again
                error = str(exc)
            except Exception as exc:  # an unreachable provider must not lose the referral
                error = f"{type(exc).__name__}: {exc}"
            else:
                return None
            log.warning("loop message %s attempt %d failed: %s", key, attempt, error)
            if attempt < self._retry.attempts:
                await asyncio.sleep(self._retry.backoff_s(attempt))
        return f"{error} (after {self._retry.attempts} attempts)"

    async def refer(
        self,
        dept: DepartmentSpec,
        referral_id: int,
        incident: dict[str, Any],
        note: str,
        reply_url: str,
    ) -> tuple[int, list[str]]:
        """Send the incident to every channel of the department: (accepted count, errors)."""
        text = f"{note}\n请受理并回复: {reply_url}".strip()
        ok, errors = 0, []
        for ch in dept.channels:
            err = await self._send(
                f"referral{referral_id}:ref{referral_id}:{ch.address}",
                incident,
                DeliveryKind.PAGE,
                dept.id,
                ch.kind,
                ch.address,
                text,
            )
            if err is None:
                ok += 1
            else:
                errors.append(f"{ch.kind} {ch.address}: {err}")
        return ok, errors

    async def feedback(
        self, incident: dict[str, Any], phones: list[str], category: str | None, rate_url: str
    ) -> tuple[list[str], list[str]]:
        """The result told to residents (结果反馈): a template, never a worker's note."""
        what = CATEGORY_ZH.get(category or "", "")
        text = (
            f"您好，您反映或涉及的{what}问题已处理完毕，并经社区核查办结。"
            f"请对处理结果评价（满意/基本满意/不满意）：{rate_url}"
        )
        sent, errors = [], []
        for phone in phones:
            err = await self._send(
                f"feedback{incident['id']}:feedback:{phone}",
                incident,
                DeliveryKind.OUTCOME,
                phone,
                "sms",
                phone,
                text,
            )
            if err is None:
                sent.append(phone)
            else:
                errors.append(f"{phone}: {err}")
        return sent, errors
