"""The Chinese providers' notifiers built from ``notify`` settings: Alibaba / Tencent SMS,
Alibaba voice calls, WeCom application messages, DingTalk 加签 robots."""

from __future__ import annotations

import httpx

from alerting.notify.aliyun import AliyunAccount, AliyunSmsNotifier, AliyunVoiceNotifier
from alerting.notify.base import Notifier
from alerting.notify.dingtalk import DingTalkNotifier
from alerting.notify.templates import Templates
from alerting.notify.tencent import TencentSmsAccount, TencentSmsNotifier
from alerting.notify.wecom_app import WecomApp, WecomAppNotifier
from alerting.routing.directory import ChannelKind
from core.clock import Clock
from gateway.registry.service import Registry
from gateway.settings import NotifySettings


def china_notifiers(
    n: NotifySettings, http: httpx.AsyncClient, registry: Registry, clock: Clock
) -> dict[ChannelKind, Notifier]:
    found: dict[ChannelKind, Notifier] = {}

    def phone_of(person_id: str) -> str | None:
        p = registry.person(person_id)
        if p is None:
            return None
        sms = (p.channels or {}).get("sms")
        return sms if isinstance(sms, str) and sms else (p.phone or None)

    found[ChannelKind.DINGTALK] = DingTalkNotifier(
        http,
        {token: secret.get_secret_value() for token, secret in n.dingtalk_secrets.items()},
        phone_of,
        clock.now_ms,
    )
    if (a := n.aliyun_sms) is not None:
        account = AliyunAccount(
            a.access_key_id, a.access_key_secret.get_secret_value(), a.endpoint, a.protocol
        )
        found[ChannelKind.SMS] = AliyunSmsNotifier(account, a.sign_name, Templates(a.templates, a.by_kind()))
    if (t := n.tencent_sms) is not None:
        found[ChannelKind.SMS] = TencentSmsNotifier(
            TencentSmsAccount(
                t.secret_id,
                t.secret_key.get_secret_value(),
                t.sdk_app_id,
                region=t.region,
                endpoint=t.endpoint,
                scheme=t.scheme,
            ),
            t.sign_name,
            Templates(t.templates, t.by_kind()),
        )
    if (v := n.aliyun_voice) is not None:
        account = AliyunAccount(
            v.access_key_id, v.access_key_secret.get_secret_value(), v.endpoint, v.protocol
        )
        found[ChannelKind.VOICE] = AliyunVoiceNotifier(
            account, v.called_show_number, Templates(v.templates, v.by_kind()), play_times=v.play_times
        )
    if (w := n.wecom_app) is not None:
        found[ChannelKind.WECOM_APP] = WecomAppNotifier(
            http, WecomApp(w.corp_id, w.corp_secret.get_secret_value(), w.agent_id, w.base_url)
        )
    return found


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
