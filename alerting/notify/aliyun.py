"""Alibaba Cloud SMS (SendSms) and voice notification (SingleCallByTts) through the official SDKs.

The SDKs sign every request (ACS3-HMAC-SHA256) and take the endpoint and protocol from their
``Config``, so tests point them at a local server that checks the signature as Alibaba does.
Alibaba answers a refused message with HTTP 200 and a ``Code`` other than ``OK`` (for example
``isv.BUSINESS_LIMIT_CONTROL``): that is a failed delivery, never "sent".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client as VmsClient
from alibabacloud_tea_openapi import utils_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from darabonba.runtime import RuntimeOptions

from alerting.notify.base import Delivery, DeliveryError
from alerting.notify.templates import Templates, params

# Flow control passes within minutes; a retry (with backoff) may get through.
RETRYABLE_CODES = frozenset({"isp.SYSTEM_ERROR", "Throttling.User", "ServiceUnavailable"})


@dataclass(frozen=True, slots=True)
class AliyunAccount:
    access_key_id: str
    access_key_secret: str
    endpoint: str  # dysmsapi.aliyuncs.com / dyvmsapi.aliyuncs.com, or a test server's host:port
    protocol: str = "https"
    timeout_ms: int = 10_000

    def config(self) -> utils_models.Config:
        return utils_models.Config(
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            endpoint=self.endpoint,
            protocol=self.protocol,
            read_timeout=self.timeout_ms,
            connect_timeout=self.timeout_ms,
        )


def _runtime(timeout_ms: int) -> RuntimeOptions:
    # Our pipeline retries (durably, with backoff); the SDK must not retry on its own.
    return RuntimeOptions(read_timeout=timeout_ms, connect_timeout=timeout_ms, autoretry=False)


def _check(body: Any, what: str) -> None:
    code = getattr(body, "code", None)
    if code == "OK":
        return
    message = getattr(body, "message", "") or ""
    raise DeliveryError(
        f"Alibaba {what} refused: {code} {message}".strip(), permanent=code not in RETRYABLE_CODES
    )


def _sdk_error(exc: Exception, what: str) -> DeliveryError:
    if isinstance(exc, AlibabaCloudException):
        code = getattr(exc, "code", "") or ""
        status = getattr(exc, "status_code", None) or 0
        retry = code in RETRYABLE_CODES or int(status) >= 500
        return DeliveryError(f"Alibaba {what} refused: {code} {exc.message}".strip(), permanent=not retry)
    return DeliveryError(f"Alibaba {what}: {type(exc).__name__}: {exc}")


class AliyunSmsNotifier:
    """SendSms to the channel's phone number with the severity's template."""

    def __init__(self, account: AliyunAccount, sign_name: str, templates: Templates) -> None:
        self._account = account
        self._client = SmsClient(account.config())
        self._sign_name = sign_name
        self._templates = templates

    def request(self, d: Delivery) -> sms_models.SendSmsRequest:
        return sms_models.SendSmsRequest(
            phone_numbers=d.address,
            sign_name=self._sign_name,
            template_code=self._templates.for_delivery(d),
            template_param=json.dumps(params(d), ensure_ascii=False),
            out_id=str(d.id),
        )

    async def send(self, delivery: Delivery) -> str | None:
        req = self.request(delivery)
        try:
            resp = await self._client.send_sms_with_options_async(
                req, _runtime(self._account.timeout_ms)
            )
        except Exception as exc:
            raise _sdk_error(exc, "SMS") from exc
        _check(resp.body, "SMS")
        return str(resp.body.biz_id) if resp.body.biz_id else None


class AliyunVoiceNotifier:
    """SingleCallByTts: the phone rings and a voice reads the template with the page's facts."""

    def __init__(
        self, account: AliyunAccount, called_show_number: str, templates: Templates, *, play_times: int = 3
    ) -> None:
        self._account = account
        self._client = VmsClient(account.config())
        self._show = called_show_number
        self._templates = templates
        self._play_times = play_times

    def request(self, d: Delivery) -> vms_models.SingleCallByTtsRequest:
        return vms_models.SingleCallByTtsRequest(
            called_number=d.address,
            called_show_number=self._show,
            tts_code=self._templates.for_delivery(d),
            tts_param=json.dumps(params(d), ensure_ascii=False),
            play_times=self._play_times,
            out_id=str(d.id),
        )

    async def send(self, delivery: Delivery) -> str | None:
        req = self.request(delivery)
        try:
            resp = await self._client.single_call_by_tts_with_options_async(
                req, _runtime(self._account.timeout_ms)
            )
        except Exception as exc:
            raise _sdk_error(exc, "voice call") from exc
        _check(resp.body, "voice call")
        return str(resp.body.call_id) if resp.body.call_id else None
