"""Email through SMTP (stdlib smtplib, run in a thread so the event loop never blocks)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from alerting.notify.base import Delivery, DeliveryError, render_text, title


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "safety-gateway@localhost"
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    timeout_s: float = 15.0


class EmailNotifier:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def build(self, delivery: Delivery) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._config.sender
        msg["To"] = delivery.address
        msg["Subject"] = title(delivery)
        msg["Message-ID"] = f"<{delivery.idempotency_key.replace(':', '.')}@safety-gateway>"
        msg.set_content(render_text(delivery))
        return msg

    def _send_sync(self, msg: EmailMessage) -> None:
        c = self._config
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.login(c.username, c.password or "")
            smtp.send_message(msg)

    async def send(self, delivery: Delivery) -> None:
        msg = self.build(delivery)
        try:
            await asyncio.to_thread(self._send_sync, msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
