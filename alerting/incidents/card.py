"""What a responder needs on a page, built once when the incident opens: what happened in plain
Chinese, where (with a map link), the household and whom to call, the readings, what to do first.

The card is kept with the incident (``IncidentRow.card``) so every page of every step, the
worker's app and the short SMS text say the same thing; the registry facts come with the
device's :class:`~core.readings.DeviceContext`, so alerting never reads the registry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from alerting.models import AlertTransition
from core.readings import DeviceContext

#: Household flags as the people reading a page say them.
FLAG_ZH = {
    "elderly_alone": "独居老人",
    "mobility_impaired": "行动不便",
    "chronic_illness": "有基础病",
    "disabled_resident": "残障人士",
    "hearing_impaired": "听力障碍",
}
DEVICE_ZH = {"smoke": "烟感", "sos": "一键呼叫器", "gate": "门禁", "charger": "充电桩"}
#: Reading fields a responder reads: label and unit. Others (rssi, seq …) stay off the page.
FIELD_ZH = {
    "smoke_dbm": ("烟雾浓度", "dB/m"),
    "temp_c": ("温度", "°C"),
    "battery_pct": ("电量", "%"),
    "current_a": ("电流", "A"),
    "voltage_v": ("电压", "V"),
    "power_w": ("功率", "W"),
    "leak_ma": ("漏电流", "mA"),
    "door_open": ("门状态", ""),
    "port": ("端口", ""),
}


def build_card(t: AlertTransition, ctx: DeviceContext) -> dict[str, Any]:
    """The card of an incident opened by ``t`` on the device ``ctx`` describes."""
    device = DEVICE_ZH.get(ctx.device_type, ctx.device_type)
    named = f"「{ctx.name}」" if ctx.name else ""
    return {
        "what": f"{device}{named}：{t.title}",
        "guidance": t.guidance,
        "where": _where(ctx),
        "household": _household(ctx),
        "readings": readings_zh(t.readings),
    }


def _where(ctx: DeviceContext) -> dict[str, Any]:
    place, home = ctx.place, ctx.household
    building = place.building_name if place else ""
    unit = home.unit if home else ""
    room = home.room if home else ""
    text = " ".join(
        p for p in (building, f"{unit}单元" if unit else "", f"{room}室" if room else "") if p
    )
    out: dict[str, Any] = {
        "building": building,
        "unit": unit,
        "room": room,
        "address": place.address if place else "",
        "text": text or ctx.location,
        "location": ctx.location,
        "map_url": None,
    }
    if place is not None and place.latitude is not None and place.longitude is not None:
        name = quote(text or ctx.location or building)
        # Amap (高德) opens in any Chinese phone's browser or map app.
        out["map_url"] = (
            f"https://uri.amap.com/marker?position={place.longitude},{place.latitude}&name={name}"
        )
    return out


def _household(ctx: DeviceContext) -> dict[str, Any] | None:
    home = ctx.household
    if home is None:
        return None
    return {
        "resident": home.resident,
        "flags": [FLAG_ZH.get(f, f) for f in sorted(ctx.household_flags, key=_flag_order)],
        "note": home.note,
        "contacts": [
            {"name": c.name, "relation": c.relation, "phone": c.phone, "tel": tel_link(c.phone)}
            for c in home.contacts
        ],
    }


def _flag_order(flag: str) -> tuple[int, str]:
    """Known flags in the order a responder weighs them, then the others."""
    known = list(FLAG_ZH)
    return (known.index(flag) if flag in known else len(known), flag)


def tel_link(phone: str) -> str:
    return "tel:" + "".join(ch for ch in phone if ch.isdigit() or ch == "+")


def readings_zh(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The reading's fields a responder reads, labelled in Chinese."""
    out = []
    for key, (label, unit) in FIELD_ZH.items():
        if key in fields:
            value = fields[key]
            if isinstance(value, bool):
                value = "开" if value else "关"
            out.append({"field": key, "label": label, "value": value, "unit": unit})
    return out


def open_for(opened_at_ms: int, now_ms: int) -> str:
    """How long an incident has been open, as a page says it."""
    minutes = max(0, (now_ms - opened_at_ms) // 60_000)
    if minutes < 1:
        return "刚刚"
    if minutes < 60:
        return f"已{minutes}分钟"
    return f"已{minutes // 60}小时{minutes % 60}分钟"


def short_text(message: dict[str, Any], now_ms: int) -> str:
    """The same facts in a few lines, for SMS and voice templates (one message, ~120 chars)."""
    card = message.get("card") or {}
    where = (card.get("where") or {}).get("text") or message.get("location") or ""
    parts = [f"【{message.get('title', '')}】{where}"]
    home = card.get("household")
    if home:
        who = "、".join(x for x in (home.get("resident"), *home.get("flags", ())) if x)
        if who:
            parts.append(f"住户:{who}")
        family = home.get("contacts") or []
        if family:
            c = family[0]
            parts.append(f"家属:{c.get('name', '')}{c.get('relation', '')} {c.get('phone', '')}")
    if card.get("guidance"):
        parts.append(f"先做:{card['guidance']}")
    parts.append(
        f"{open_for(int(message.get('opened_at') or now_ms), now_ms)} #{message.get('id')}"
    )
    return "；".join(parts)
