"""Tencent Cloud SMS (SendSms, API 2021-01-11) through the official SDK's async client.

The SDK signs with TC3-HMAC-SHA256 and takes its endpoint and scheme from ``HttpProfile``, so
tests point it at a local server that recomputes the signature as Tencent does. Tencent
answers HTTP 200 either way: a request it refuses carries ``Response.Error`` (the SDK raises),
a number it refuses has a ``SendStatusSet`` entry whose ``Code`` is not ``Ok`` — both are a
failed delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from alerting.notify.base import Delivery, DeliveryError
from alerting.notify.templates import Templates, ordered_params

# Passing conditions worth a retry with backoff; everything else will not get better.
RETRYABLE_PREFIXES = ("InternalError", "RequestLimitExceeded", "LimitExceeded.AppCountryOrRegionDailyLimit")


@dataclass(frozen=True, slots=True)
class TencentSmsAccount:
    secret_id: str
    secret_key: str
    sdk_app_id: str  # SmsSdkAppId
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"  # or a test server's host:port
    scheme: str = "https"
    timeout_s: int = 10


def e164(phone: str) -> str:
    """Tencent wants +86… numbers; registry phones are usually written without the prefix."""
    return phone if phone.startswith("+") else f"+86{phone}"


def _retryable(code: str) -> bool:
    return code.startswith(RETRYABLE_PREFIXES)


class TencentSmsNotifier:
    def __init__(self, account: TencentSmsAccount, sign_name: str, templates: Templates) -> None:
        profile = ClientProfile(
            httpProfile=HttpProfile(
                protocol=account.scheme, endpoint=account.endpoint, reqTimeout=account.timeout_s
            )
        )
        self._client = SmsClient(
            Credential(account.secret_id, account.secret_key), account.region, profile
        )
        self._account = account
        self._sign_name = sign_name
        self._templates = templates

    def request(self, d: Delivery) -> models.SendSmsRequest:
        req = models.SendSmsRequest()
        req.PhoneNumberSet = [e164(d.address)]
        req.SmsSdkAppId = self._account.sdk_app_id
        req.SignName = self._sign_name
        req.TemplateId = self._templates.for_delivery(d)
        req.TemplateParamSet = ordered_params(d)
        req.SessionContext = str(d.id)
        return req

    async def send(self, delivery: Delivery) -> str | None:
        try:
            resp = await self._client.SendSms(self.request(delivery))
        except TencentCloudSDKException as exc:
            code = str(exc.code or "")
            raise DeliveryError(
                f"Tencent SMS refused: {code} {exc.message or ''}".strip(),
                permanent=not (_retryable(code) or code == "ClientNetworkError"),
            ) from exc
        except Exception as exc:
            raise DeliveryError(f"Tencent SMS: {type(exc).__name__}: {exc}") from exc
        statuses = list(resp.SendStatusSet or [])
        if not statuses:
            raise DeliveryError("Tencent SMS answered without a send status")
        status = statuses[0]
        if status.Code != "Ok":
            code = str(status.Code)
            raise DeliveryError(
                f"Tencent SMS refused {status.PhoneNumber}: {code} {status.Message or ''}".strip(),
                permanent=not _retryable(code),
            )
        return str(status.SerialNo) if status.SerialNo else None

    async def close(self) -> None:
        await self._client.close()
