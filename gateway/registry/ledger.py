"""CSV device ledgers (设备台账) as communities keep them: read with per-row errors, write back.

Headers may be Chinese or English (see :data:`COLUMNS`); row numbers are spreadsheet rows
(the header is row 1). Files may be UTF-8 (with or without BOM) or GB18030/GBK.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from core.readings import DEVICE_TYPE_PATTERN
from gateway.registry.spec import DeviceSpec

#: canonical column -> accepted headers (first one is what export writes)
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("设备编号", "device_id", "设备ID", "id"),
    "type": ("设备类型", "device_type", "type"),
    "name": ("设备名称", "name"),
    "grid": ("所属网格", "grid", "网格"),
    "building": ("楼栋", "building", "楼号"),
    "unit": ("单元", "unit"),
    "room": ("房号", "room", "房间号"),
    "location": ("安装位置", "location"),
    "installed_at": ("安装日期", "installed_at", "安装时间"),
    "model": ("厂商/型号", "model", "厂商型号", "型号"),
    "profile": ("接入配置", "profile"),
    "vendor_identity": ("平台设备标识", "vendor_identity"),
    "ports": ("端口数", "ports"),
    "enabled": ("启用", "enabled"),
}
REQUIRED = ("id", "type")
UNRESOLVED = "_unresolved"
# Spreadsheet programs run a cell starting with one of these as a formula (=HYPERLINK(…) that
# leaks data, DDE that starts programs). Written with a leading apostrophe, which they show as
# text; the importer takes that apostrophe off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

TYPE_NAMES: dict[str, str] = {
    "smoke": "smoke", "烟感": "smoke", "烟感探测器": "smoke", "烟雾报警器": "smoke",
    "独立式烟感": "smoke", "sos": "sos", "一键呼叫": "sos", "一键呼叫器": "sos",
    "紧急呼叫": "sos", "紧急呼叫器": "sos", "gate": "gate", "门禁": "gate", "智能门禁": "gate",
    "charger": "charger", "充电桩": "charger", "电动自行车充电桩": "charger",
}  # fmt: skip
TYPE_LABELS = {"smoke": "烟感", "sos": "一键呼叫", "gate": "门禁", "charger": "充电桩"}
_TRUE = {"1", "true", "yes", "y", "是", "启用", "在用"}
_FALSE = {"0", "false", "no", "n", "否", "停用", "禁用"}
_TYPE_CODE = re.compile(DEVICE_TYPE_PATTERN)
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


@dataclass(frozen=True, slots=True)
class RowError:
    """A problem with one ledger row (``row`` 1 = header) and one column (as headed in the file)."""

    source: str
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: row {self.row}"
        return (
            f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


@dataclass(frozen=True, slots=True)
class LedgerRow:
    row: int
    #: validated, with grid/building still as placeholders until :meth:`Names.resolve`
    device: DeviceSpec
    #: grid and building as written in the ledger (code, id or name)
    grid_ref: str | None
    building_ref: str | None
    #: the file's header for each canonical column, to name columns in later errors
    headers: Mapping[str, str]


@dataclass
class Ledger:
    """The rows that parsed and the errors of those that did not."""

    source: str
    rows: list[LedgerRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


class LedgerError(ValueError):
    """The ledger as a whole is unusable (no header, unknown or missing columns)."""


def read_ledger(source: str | bytes | Path, *, name: str | None = None) -> Ledger:
    """Parse a ledger from a path, CSV bytes or CSV text (``name`` labels it in errors)."""
    label, text = _text_of(source, name)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise LedgerError(f"{label}: empty file, expected a header row")
    columns = _map_header(label, header)
    ledger = Ledger(label)
    headers = {canon: header[i].strip() for i, canon in columns.items()}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        _parse_row(ledger, number, cells, columns, headers, len(header))
    return ledger


def write_ledger(devices: Iterable[Mapping[str, object]]) -> str:
    """CSV text (Chinese headers) for devices given as mappings of canonical column -> value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([names[0] for names in COLUMNS.values()])
    for device in devices:
        writer.writerow([spreadsheet_safe(_cell(col, device.get(col))) for col in COLUMNS])
    return out.getvalue()


def spreadsheet_safe(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text, never runs it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def _unescaped(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if column == "type":
        return TYPE_LABELS.get(str(value), str(value))
    if column == "enabled":
        return "是" if value else "否"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _text_of(source: str | bytes | Path, name: str | None) -> tuple[str, str]:
    if isinstance(source, Path):
        return name or str(source), _decode(source.read_bytes())
    if isinstance(source, bytes):
        return name or "<ledger>", _decode(source)
    return name or "<ledger>", source.removeprefix("\ufeff")


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK, what Excel saves)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _map_header(label: str, header: list[str]) -> dict[int, str]:
    lookup = {alias.lower(): canon for canon, names in COLUMNS.items() for alias in names}
    columns: dict[int, str] = {}
    for i, raw in enumerate(header):
        title = raw.strip()
        canon = lookup.get(title.lower())
        if canon is None:
            if title:
                raise LedgerError(f"{label}: row 1, column {i + 1}: unknown column {title!r}")
            continue
        if canon in columns.values():
            raise LedgerError(f"{label}: row 1, column {i + 1}: {title!r} repeats a column")
        columns[i] = canon
    missing = [COLUMNS[c][0] for c in REQUIRED if c not in columns.values()]
    if missing:
        raise LedgerError(f"{label}: row 1: missing column(s) {', '.join(missing)}")
    return columns


def _parse_row(
    ledger: Ledger,
    number: int,
    cells: list[str],
    columns: dict[int, str],
    headers: Mapping[str, str],
    width: int,
) -> None:
    values: dict[str, object] = {}
    errors: list[RowError] = []
    for i, canon in columns.items():
        cell = _unescaped(cells[i].strip()) if i < len(cells) else ""
        if not cell:
            continue
        try:
            values[canon] = _convert(canon, cell)
        except ValueError as exc:
            errors.append(RowError(ledger.source, number, headers[canon], str(exc)))
    if any(c.strip() for c in cells[width:]):
        errors.append(RowError(ledger.source, number, "", "more cells than columns"))
    if not errors:
        refs = {k: values[k] for k in ("grid", "building") if k in values}
        placeholders = dict.fromkeys(refs, UNRESOLVED)
        device = _validate(ledger.source, number, values | placeholders, headers, errors)
        if device is not None:
            grid, building = (refs.get(k) for k in ("grid", "building"))
            ledger.rows.append(LedgerRow(number, device, _str(grid), _str(building), headers))
    ledger.errors.extend(errors)


def _validate(
    source: str,
    number: int,
    values: dict[str, object],
    headers: Mapping[str, str],
    errors: list[RowError],
) -> DeviceSpec | None:
    try:
        return DeviceSpec.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            canon = str(err["loc"][0]) if err["loc"] else ""
            errors.append(RowError(source, number, headers.get(canon, canon), err["msg"]))
        return None


def _convert(column: str, cell: str) -> object:
    if column == "type":
        kind = TYPE_NAMES.get(cell.lower())
        if kind is None and _TYPE_CODE.match(cell):
            # A device type added as a profile (e.g. gas) goes by its code until it has a
            # Chinese name here, so an exported ledger goes back in as it came out.
            return cell
        if kind is None:
            raise ValueError(f"unknown device type {cell!r} (烟感/一键呼叫/门禁/充电桩)")
        return kind
    if column == "installed_at":
        return _date(cell)
    if column == "enabled":
        return _bool(cell)
    if column == "unit":
        return cell.removesuffix("单元")
    if column == "room":
        return cell.removesuffix("室").removesuffix("号")
    if column == "ports":
        if not cell.isdigit():
            raise ValueError(f"not a whole number: {cell!r}")
        return int(cell)
    return cell


def _date(cell: str) -> date:
    m = _DATE.match(cell)
    if m is None:
        raise ValueError(f"not a date: {cell!r} (e.g. 2024-03-15)")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise ValueError(f"not a date: {cell!r} ({exc})") from None


def _bool(cell: str) -> bool:
    if cell.lower() in _TRUE:
        return True
    if cell.lower() in _FALSE:
        return False
    raise ValueError(f"expected 是/否: {cell!r}")
