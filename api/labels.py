"""What people read instead of internal codes, in Chinese and English: the ledger CSV's headers
and values. The screens' own dictionary is ``I18N`` in api/board/common.js (the same words)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]

#: The monthly ledger CSV's columns, in order: (field of LedgerRow or a derived one, zh, en).
LEDGER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "事件编号", "Incident no."),
    ("opened_at", "发生时间", "Opened"),
    ("grid", "网格", "Grid"),
    ("building", "楼栋", "Building"),
    ("location", "地点", "Where"),
    ("device_id", "设备编号", "Device"),
    ("device_type", "设备类型", "Device type"),
    ("title", "事件", "What"),
    ("severity", "级别", "Severity"),
    ("status", "状态", "Status"),
    ("handled_by", "处置人", "Handled by"),
    ("ack_min", "确认用时（分钟）", "To acknowledge (min)"),
    ("resolve_min", "办结用时（分钟）", "To resolve (min)"),
    ("resolution", "处置结果", "Resolution"),
    ("within_deadline", "按时处置", "Handled in time"),
)

VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "severity": {
        "critical": ("紧急", "Critical"),
        "major": ("重要", "Major"),
        "minor": ("一般", "Minor"),
        "info": ("提示", "Info"),
    },
    "status": {
        "open": ("待确认", "Open"),
        "acknowledged": ("处置中", "Acknowledged"),
        "resolved": ("已办结", "Resolved"),
        "closed": ("已关闭", "Closed"),
    },
    "resolution": {
        "real_emergency": ("真实警情", "Real emergency"),
        "false_alarm": ("误报", "False alarm"),
        "device_test": ("设备测试", "Device test"),
        "device_fault": ("设备故障", "Device fault"),
    },
    "device_type": {
        "smoke": ("烟感", "Smoke detector"),
        "sos": ("一键呼叫", "SOS button"),
        "gate": ("门禁", "Door access"),
        "charger": ("充电桩", "E-bike charger"),
    },
    "within_deadline": {"True": ("是", "Yes"), "False": ("否", "No")},
}

#: The closed-loop ledger's columns (LoopLedgerRow fields), for its CSV and Excel sheets.
LOOP_LEDGER_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("事件编号", "Incident no."),
    "opened_at": ("发生时间", "Opened"),
    "grid_id": ("网格", "Grid"),
    "building_id": ("楼栋", "Building"),
    "location": ("地点", "Where"),
    "source": ("来源", "Source"),
    "category": ("类别", "Category"),
    "tier": ("层级", "Tier"),
    "title": ("事件", "What"),
    "severity": ("级别", "Severity"),
    "status": ("状态", "Status"),
    "worker": ("处置人", "Handled by"),
    "hazard": ("隐患", "Hazard"),
    "hazard_state": ("整改状态", "Rectification"),
    "deadline": ("整改期限", "Deadline"),
    "ack_s": ("确认用时（秒）", "To acknowledge (s)"),
    "arrive_s": ("到场用时（秒）", "To arrive (s)"),
    "resolve_s": ("办结用时（秒）", "To resolve (s)"),
    "ack_on_time": ("按时确认", "Acknowledged in time"),
    "arrive_on_time": ("按时到场", "Arrived in time"),
    "resolve_on_time": ("按时办结", "Resolved in time"),
    "overdue": ("已逾期", "Overdue"),
    "resolution": ("处置结果", "Resolution"),
    "verified_by": ("核查人", "Verified by"),
    "rating": ("居民评价", "Resident's rating"),
}
#: The ledger's figures (LoopFigures fields), for the summary sheet of its Excel workbook.
LOOP_FIGURE_COLUMNS: dict[str, str] = {
    "incidents": "事件数",
    "closed": "已办结",
    "closed_within_grid_share": "网格内办结率",
    "ack_median_s": "确认用时中位数（秒）",
    "ack_p90_s": "确认用时P90（秒）",
    "arrive_median_s": "到场用时中位数（秒）",
    "arrive_p90_s": "到场用时P90（秒）",
    "resolve_median_s": "办结用时中位数（秒）",
    "resolve_p90_s": "办结用时P90（秒）",
    "ack_on_time_rate": "按时确认率",
    "arrive_on_time_rate": "按时到场率",
    "resolve_on_time_rate": "按时办结率",
    "hazards": "隐患数",
    "hazards_rectified": "已整改",
    "rectification_rate": "整改完成率",
    "overdue_hazards": "逾期隐患",
    "false_alarm_rate": "误报率",
    "ratings": "评价数",
    "satisfaction": "满意率",
    "by_source": "按来源",
    "by_category": "按类别",
}


_YES_NO = {"True": ("是", "Yes"), "False": ("否", "No")}
VALUES.update(
    {
        "source": {
            "device": ("设备告警", "Device alarm"),
            "patrol": ("网格员巡查", "Patrol"),
            "hotline": ("24小时热线", "Hotline"),
            "resident": ("居民上报", "Resident report"),
            "inspection": ("安全排查", "Safety inspection"),
        },
        "category": {
            "gas": ("燃气", "Gas"),
            "fire": ("消防", "Fire"),
            "electric": ("用电", "Electrical"),
            "corridor": ("楼道堆物", "Corridor clutter"),
            "other": ("其他", "Other"),
        },
        "tier": {"grid": ("网格处置", "Grid"), "community": ("社区处置", "Community")},
        "rating": {
            "satisfied": ("满意", "Satisfied"),
            "basically_satisfied": ("基本满意", "Basically satisfied"),
            "dissatisfied": ("不满意", "Dissatisfied"),
        },
        **{
            k: _YES_NO
            for k in ("hazard", "ack_on_time", "arrive_on_time", "resolve_on_time", "overdue")
        },
    }
)
VALUES["resolution"].setdefault("handled", ("已处置", "Handled"))

#: Where the site's time zone is said next to a time (北京时间 for the zone China uses).
ZONE_NAMES: dict[str, tuple[str, str]] = {"Asia/Shanghai": ("北京时间", "Beijing time")}


def header(lang: Lang) -> list[str]:
    return [zh if lang == "zh" else en for _, zh, en in LEDGER_COLUMNS]


def value(column: str, code: object, lang: Lang) -> str:
    """The readable form of ``code`` in ``column``; a code without a label is shown as it is
    (never dropped), an absent value as an empty cell."""
    if code is None:
        return ""
    pair = VALUES.get(column, {}).get(str(code))
    if pair is None:
        return str(code)
    return pair[0] if lang == "zh" else pair[1]


def zone_name(tz: str, offset: str, lang: Lang) -> str:
    """``北京时间`` / ``Beijing time`` for Asia/Shanghai, else ``UTC+8 (Asia/Chongqing)``."""
    pair = ZONE_NAMES.get(tz)
    if pair is not None:
        return pair[0] if lang == "zh" else pair[1]
    return f"UTC{offset} ({tz})"
