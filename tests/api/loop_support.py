"""The closed loop behind the test API: departments whose channels are a recording server."""

from __future__ import annotations

from pathlib import Path

import httpx

from alerting.loop.config import load_loop_config
from alerting.loop.desk import LoopDesk
from alerting.loop.messages import LoopMessenger
from alerting.loop.services import LoopServices
from alerting.notify.sms import SmsNotifier
from alerting.notify.webhook import WebhookNotifier
from alerting.routing.directory import ChannelKind
from alerting.routing.ladder import default_ladders
from alerting.routing.router import RoutingPolicy

# A PNG of one pixel: what a phone's camera would send, only smaller.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def loop_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "loop.yaml"
    path.write_text(
        f"""
departments:
  - id: fire_119
    name: 消防救援站 (119)
    reply_within_h: 1
    channels:
      - {{kind: sms, address: "119"}}
      - {{kind: webhook, address: "{url}/fire-brigade"}}
  - id: property_management
    name: 物业服务中心
    reply_within_h: 24
    channels:
      - {{kind: sms, address: "13800009000"}}
tiers:
  rules: {{smoke.alarm: community}}
  categories: {{fire: community, gas: community}}
hazard_remind_before_h: 24
""",
        encoding="utf-8",
    )
    return path


def policy() -> RoutingPolicy:
    return RoutingPolicy(ladders=default_ladders())


def loop_services(tmp_path: Path, url: str, http: httpx.AsyncClient) -> LoopServices:
    config = load_loop_config(loop_file(tmp_path, url))
    notifiers = {
        ChannelKind.SMS: SmsNotifier(http, f"{url}/sms"),
        ChannelKind.WEBHOOK: WebhookNotifier(http),
    }
    return LoopServices(
        LoopDesk(config, policy()), LoopMessenger(notifiers), tmp_path / "photos", "http://gw.test"
    )
