"""What the fuzzed API suite (test_hostile_api.py) found, each pinned as the request that did it.

Before the fixes each of these answered 500 (or a 422 of another shape than the schema
declares); now each is refused with a 4xx naming the field, or answered.
"""

from __future__ import annotations

import pytest

V1 = "/api/v1"
PAST_64_BITS = 2**64
ONE_PAST_BIGINT = 2**63


async def test_the_schema_declares_the_422_body_the_api_sends(client, login):
    schema = (await client.get(f"{V1}/openapi.json")).json()
    declared = schema["components"]["schemas"]["HTTPValidationError"]
    assert declared["properties"]["detail"]["type"] == "string"
    assert set(declared["required"]) == {"detail", "errors"}
    r = await client.get(f"{V1}/devices", params={"offset": "x"}, headers=await login("duty"))
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str)
    assert [e["field"] for e in body["errors"]] == ["offset"]


@pytest.mark.parametrize("path", ["/reports/ledger", "/reports/ledger.csv", "/reports/trend"])
async def test_a_report_without_a_site_for_an_admin_names_the_field(client, login, path):
    r = await client.get(f"{V1}{path}", headers=await login("admin"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["site"]


async def test_the_device_ledger_of_a_site_that_does_not_exist_is_not_found(client, login):
    h = await login("admin")
    # Was a 500: the site went into the Content-Disposition header, which must be Latin-1.
    r = await client.get(f"{V1}/devices/ledger.csv", params={"site": "\U000128b8西山"}, headers=h)
    assert r.status_code == 404
    assert (await client.get(f"{V1}/devices/ledger.csv", params={"site": "nosuch"}, headers=h)).status_code == 404
    r = await client.get(f"{V1}/devices/ledger.csv", params={"site": "demo"}, headers=h)
    assert r.status_code == 200
    assert "smk-b01-u1-f1" in r.text


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/stats", {"start_ms": 0, "end_ms": PAST_64_BITS}, "end_ms"),
        ("/stats", {"start_ms": ONE_PAST_BIGINT, "end_ms": PAST_64_BITS}, "start_ms"),
        ("/incidents", {"since_ms": ONE_PAST_BIGINT}, "since_ms"),
        ("/incidents", {"until_ms": PAST_64_BITS}, "until_ms"),
        ("/devices/demo/smk-b01-u1-f1/telemetry",
         {"field": "temp_c", "start_ms": 0, "end_ms": PAST_64_BITS}, "end_ms"),
        ("/devices/demo/smk-b01-u1-f1/telemetry",
         {"field": "temp_c", "start_ms": 0, "end_ms": 3_600_000, "every_ms": PAST_64_BITS},
         "every_ms"),
    ],
)
async def test_a_time_past_what_the_database_holds_is_refused(client, login, path, params, field):
    r = await client.get(f"{V1}{path}", params=params, headers=await login("duty"))
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/silences", {"site": "demo", "matcher": "grid", "value": "demo.g1",
                       "ends_at_ms": ONE_PAST_BIGINT}, "ends_at_ms"),
        ("/silences", {"site": "demo", "matcher": "grid", "value": "demo.g1",
                       "starts_at_ms": ONE_PAST_BIGINT, "duration_s": 600}, "starts_at_ms"),
        ("/rules/route-test", {"site": "demo", "device_id": "smk-b01-u1-f1",
                               "severity": "critical", "at_ms": PAST_64_BITS}, "at_ms"),
    ],
)
async def test_a_time_past_what_the_database_holds_in_a_body_is_refused(client, login, path, body,
                                                                       field):
    r = await client.post(f"{V1}{path}", json=body, headers=await login("duty"))
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/incidents/{PAST_64_BITS}"),
        ("POST", f"/incidents/{ONE_PAST_BIGINT}/acknowledge"),
        ("GET", f"/rosters/{PAST_64_BITS}"),
        ("PATCH", f"/rosters/{PAST_64_BITS}"),
        ("DELETE", f"/rosters/{ONE_PAST_BIGINT}"),
        ("DELETE", f"/silences/{PAST_64_BITS}"),
    ],
)
async def test_an_id_past_what_the_database_holds_is_refused(client, login, method, path):
    body = {"role": "duty_staff"} if method == "PATCH" else None
    r = await client.request(method, f"{V1}{path}", json=body, headers=await login("admin"))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "path", ["/devices", "/incidents", "/grids", "/buildings", "/households", "/sites", "/rosters"]
)
async def test_an_offset_past_what_the_database_holds_is_refused(client, login, path):
    r = await client.get(f"{V1}{path}", params={"offset": ONE_PAST_BIGINT},
                         headers=await login("admin"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["offset"]


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/people/wang-fang", {"phone": None}, "phone"),
        ("/people/wang-fang", {"name": None}, "name"),
        ("/devices/demo/smk-b01-u1-f1", {"grid_id": None}, "grid_id"),
        ("/devices/demo/smk-b01-u1-f1", {"enabled": None}, "enabled"),
        ("/sites/demo", {"name": None}, "name"),
        ("/grids/demo.g1", {"name": None}, "name"),
        ("/buildings/demo.b01", {"grid_id": None}, "grid_id"),
    ],
)
async def test_null_for_a_field_that_must_have_a_value_is_refused(client, login, path, change,
                                                                  field):
    # Was a 500: NOT NULL constraint failed.
    r = await client.patch(f"{V1}{path}", json=change, headers=await login("admin"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_null_still_clears_a_field_that_may_be_empty(client, login):
    h = await login("admin")
    r = await client.patch(f"{V1}/devices/demo/smk-b01-u1-f1", json={"household_id": None},
                           headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["household_id"] is None
    r = await client.patch(f"{V1}/people/wang-fang", json={"grids": None, "phone": "123"},
                           headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["grids"] == ["demo.g2"]  # null grids: left as they are


@pytest.mark.parametrize("zone", ["xs-duty", "America", "", "../etc/passwd", "Asia/Shanghai "])
async def test_a_site_with_an_unknown_time_zone_is_refused_and_the_registry_goes_on(
    client, login, env, zone
):
    h = await login("admin")
    r = await client.post(f"{V1}/sites", json={"code": "xishan", "name": "西山", "timezone": zone},
                          headers=h)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["timezone"]
    r = await client.patch(f"{V1}/sites/demo", json={"timezone": zone}, headers=h)
    assert r.status_code == 422, r.text
    # Was: the site was stored, and from then on every registry change answered 500 (the
    # registry could not be read back) — the pipeline's registry too.
    r = await client.post(f"{V1}/grids", json={"site": "demo", "code": "g9", "name": "九"},
                          headers=h)
    assert r.status_code == 201, r.text
    await env.registry.refresh()
    r = await client.post(f"{V1}/sites", json={"code": "xishan", "name": "西山",
                                               "timezone": "Asia/Urumqi"}, headers=h)
    assert r.status_code == 201, r.text


@pytest.mark.allow_logged_exceptions
@pytest.mark.xfail(
    strict=True,
    reason="GET /api/v1/quarantine?offset=9223372036854775808 answers 500 (OverflowError: Python "
    "int too large to convert to SQLite INTEGER); api/routes/quarantine.py is being changed on "
    "another branch, so its offset gets no upper bound (le=DB_INT_MAX) here",
)
async def test_a_quarantine_offset_past_what_the_database_holds_is_refused(client, login):
    r = await client.get(f"{V1}/quarantine", params={"offset": ONE_PAST_BIGINT},
                         headers=await login("admin"))
    assert r.status_code == 422, r.text
