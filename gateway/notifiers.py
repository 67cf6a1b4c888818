"""The Chinese providers' notifiers built from ``notify`` settings: Alibaba / Tencent SMS,
Alibaba voice calls, WeCom application messages, DingTalk 加签 robots."""

from __future__ import annotations

import httpx

from alerting.notify.base import Notifier
from alerting.notify.dingtalk import DingTalkNotifier
from alerting.notify.templates import Templates
from alerting.notify.wecom_app import WecomApp, WecomAppNotifier
from alerting.routing.directory import ChannelKind
from core.clock import Clock
from gateway.registry.service import Registry
from gateway.settings import (
    AliyunSmsSettings,
    AliyunVoiceSettings,
    NotifySettings,
    TencentSmsSettings,
)


def china_notifiers(
    n: NotifySettings, http: httpx.AsyncClient, registry: Registry, clock: Clock
) -> dict[ChannelKind, Notifier]:
    """DingTalk always (signed where a secret is configured); the rest when configured."""

    def phone_of(person_id: str) -> str | None:
        p = registry.person(person_id)
        if p is None:
            return None
        sms = (p.channels or {}).get("sms")
        return sms if isinstance(sms, str) and sms else (p.phone or None)

    secrets = {token: secret.get_secret_value() for token, secret in n.dingtalk_secrets.items()}
    found: dict[ChannelKind, Notifier] = {
        ChannelKind.DINGTALK: DingTalkNotifier(http, secrets, phone_of, clock.now_ms)
    }
    if n.aliyun_sms is not None:
        found[ChannelKind.SMS] = _aliyun_sms(n.aliyun_sms)
    if n.tencent_sms is not None:
        found[ChannelKind.SMS] = _tencent_sms(n.tencent_sms)
    if n.aliyun_voice is not None:
        found[ChannelKind.VOICE] = _aliyun_voice(n.aliyun_voice)
    if (w := n.wecom_app) is not None:
        app = WecomApp(w.corp_id, w.corp_secret.get_secret_value(), w.agent_id, w.base_url)
        found[ChannelKind.WECOM_APP] = WecomAppNotifier(http, app)
    return found


# The SDKs are imported only when configured (the Alibaba one takes ~0.4 s to import).


def _aliyun_sms(a: AliyunSmsSettings) -> Notifier:
    from alerting.notify.aliyun import AliyunAccount, AliyunSmsNotifier

    secret = a.access_key_secret.get_secret_value()
    account = AliyunAccount(a.access_key_id, secret, a.endpoint, a.protocol)
    return AliyunSmsNotifier(account, a.sign_name, Templates(a.templates, a.by_kind()))


def _aliyun_voice(v: AliyunVoiceSettings) -> Notifier:
    from alerting.notify.aliyun import AliyunAccount, AliyunVoiceNotifier

    secret = v.access_key_secret.get_secret_value()
    account = AliyunAccount(v.access_key_id, secret, v.endpoint, v.protocol)
    templates = Templates(v.templates, v.by_kind())
    return AliyunVoiceNotifier(account, v.called_show_number, templates, play_times=v.play_times)


def _tencent_sms(t: TencentSmsSettings) -> Notifier:
    from alerting.notify.tencent import TencentSmsAccount, TencentSmsNotifier

    account = TencentSmsAccount(
        t.secret_id,
        t.secret_key.get_secret_value(),
        t.sdk_app_id,
        region=t.region,
        endpoint=t.endpoint,
        scheme=t.scheme,
    )
    return TencentSmsNotifier(account, t.sign_name, Templates(t.templates, t.by_kind()))


def confirming_channels(n: NotifySettings) -> frozenset[ChannelKind]:
    """Channels whose provider reports delivery (status report / call result callbacks): a
    critical page on them must be confirmed in time. None without ``receipt_secret``: with the
    callbacks refused no report could ever come, and every critical page would look lost."""
    found: set[ChannelKind] = set()
    if n.receipt_secret is None:
        return frozenset()
    if n.aliyun_sms is not None or n.tencent_sms is not None:
        found.add(ChannelKind.SMS)
    if n.aliyun_voice is not None:
        found.add(ChannelKind.VOICE)
    return frozenset(found)
