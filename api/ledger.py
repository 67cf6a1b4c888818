"""The device ledger as CSV: export, and validated all-or-nothing import."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from api.errors import FieldError, describe
from api.schemas import DeviceCreate

COLUMNS = list(DeviceCreate.model_fields)
MAX_BYTES = 5 * 1024 * 1024


def export(rows: Iterable[Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = {c: getattr(row, c) for c in COLUMNS}
        values["installed_at"] = row.installed_at.isoformat() if row.installed_at else ""
        values["enabled"] = "true" if row.enabled else "false"
        writer.writerow({k: "" if v is None else v for k, v in values.items()})
    return out.getvalue()


def parse(data: bytes) -> list[DeviceCreate]:
    """Every row validated; the first problem names ``rows.<line>.<column>``."""
    if len(data) > MAX_BYTES:
        raise FieldError("file", f"larger than {MAX_BYTES} bytes", 413)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FieldError("file", "not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise FieldError("file.header", f"unknown columns {unknown}; expected {COLUMNS}")
    for needed in ("site", "device_id", "device_type", "grid_id"):
        if needed not in header:
            raise FieldError("file.header", f"missing column '{needed}'")
    out: list[DeviceCreate] = []
    for line, raw in enumerate(reader, start=2):
        values = {k: v for k, v in raw.items() if k is not None and v not in ("", None)}
        try:
            out.append(DeviceCreate.model_validate(values))
        except ValidationError as exc:
            first = describe(list(exc.errors()))[0]
            raise FieldError(f"rows.{line}.{first['field']}", first["message"]) from exc
    if not out:
        raise FieldError("file", "no device rows")
    return out
