"""`safety-sim scenario … --api URL`: check a scenario's expectations against the gateway.

The gateway is asked through its API (a login or a service token): its clock (what "now"
is for its rules and how fast it runs), the site's time zone, and the incidents opened
while the scenario played. Each expectation prints PASS or FAIL; a miss fails the command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from simulators.inventory import DeviceSpec
from simulators.scenario import BoundExpectation, Expectation, ScenarioRun

OUTAGE_RULE = "building_outage"


class ApiError(Exception):
    """The gateway's API refused or could not be reached: nothing can be checked."""


@dataclass
class GatewayApi:
    """The few API calls a check needs (sync httpx)."""

    base_url: str
    token: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=15,
                                   headers={"Authorization": f"Bearer {self.token}"})

    @classmethod
    def connect(cls, base_url: str, token: str | None, user: str | None,
                password: str | None) -> GatewayApi:
        if token is None:
            if not user or password is None:
                raise ApiError("--api needs --token, or --user and --password")
            try:
                r = httpx.post(f"{base_url.rstrip('/')}/api/v1/auth/login",
                               data={"username": user, "password": password}, timeout=30)
            except httpx.HTTPError as exc:
                raise ApiError(f"cannot reach the gateway at {base_url}: {exc}") from exc
            if r.status_code != 200:
                raise ApiError(f"login as {user!r} refused ({r.status_code}): {r.text[:200]}")
            token = str(r.json()["access_token"])
        return cls(base_url, token)

    def get(self, path: str, **params: Any) -> Any:
        try:
            r = self.client.get(f"/api/v1{path}", params=params)
        except httpx.HTTPError as exc:
            raise ApiError(f"GET {path}: {exc}") from exc
        if r.status_code != 200:
            raise ApiError(f"GET {path}: {r.status_code} {r.text[:200]}")
        return r.json()

    def clock(self) -> dict[str, Any]:
        return dict(self.get("/clock"))

    def time_zone(self, site: str) -> ZoneInfo:
        return ZoneInfo(str(self.get(f"/sites/{site}").get("timezone") or "Asia/Shanghai"))

    def _all(self, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.get("/incidents", limit=1000, offset=len(out), **params)
            out += page["data"]
            if len(page["data"]) < 1000:
                return out

    def incidents(self, site: str, since_ms: int) -> list[dict[str, Any]]:
        """Incidents opened since ``since_ms``."""
        return sorted(self._all(site=site, since_ms=since_ms), key=lambda r: int(r["id"]))

    def active(self, site: str) -> list[dict[str, Any]]:
        """Open and acknowledged incidents."""
        return self._all(site=site, status=["open", "acknowledged"])

    def busy(self, site: str) -> tuple[set[str], set[str]]:
        """Devices and building codes with an open incident. A scenario plays elsewhere: the
        gateway keeps one incident per alert (a repeat opens nothing new) and correlates
        alarms of one building, so a busy building would not show the scenario's outcome."""
        rows = self.active(site)
        devices = {str(r["device_id"]) for r in rows if r["device_id"]}
        buildings = {c for r in rows if (c := _building_code(r.get("building_id")))}
        return devices, buildings

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    line: str


def _in_window(window: str, local: datetime) -> bool:
    start, end = window.split("-")
    now = local.strftime("%H:%M")
    return start <= now < end if start < end else (now >= start or now < end)


def _building_code(building_id: str | None) -> str | None:
    return None if building_id is None else building_id.rsplit(".", 1)[-1]


def _rules_of(row: dict[str, Any]) -> set[str]:
    """The rules an incident stands for: its own, and every rule of its hazard that fired on
    the device and folded into it (one incident per hazard of a device)."""
    return {row["rule_id"], *(r.get("rule") for r in row.get("reasons") or ())}


def _matches(exp: BoundExpectation, row: dict[str, Any]) -> bool:
    if exp.rule not in (_rules_of(row) if exp.hazard else {row["rule_id"]}):
        return False
    if exp.device_id is not None:
        return bool(row["device_id"] == exp.device_id)
    if exp.building is not None:
        return _building_code(row.get("building_id")) == exp.building
    return True


def judge(run: ScenarioRun, rows: list[dict[str, Any]], gw_start_ms: int, gw_end_ms: int,
          tz: ZoneInfo, earlier: list[dict[str, Any]] | None = None,
          played_until_ms: int | None = None) -> list[Verdict]:
    """PASS/FAIL per expectation (and for undeclared incidents of the scenario's devices).

    ``played_until_ms`` (the gateway's clock when the scenario's last step and linger were
    over; ``gw_end_ms`` if not given): the scenario's devices fall silent then, so their going
    offline afterwards is the simulator stopping, not the scenario's outcome."""
    silent_from = gw_end_ms if played_until_ms is None else played_until_ms
    out: list[Verdict] = []
    declared: list[tuple[Expectation, BoundExpectation]] = list(
        zip(run.scenario.expect, run.expected, strict=True))
    for spec, exp in declared:
        where = exp.device_id or (f"building {exp.building}" if exp.building else "any device")
        found = [r for r in rows if _matches(exp, r)]
        want = exp.incident
        why = ""
        if spec.when is not None and want:
            first = datetime.fromtimestamp(gw_start_ms / 1000, tz)
            last = datetime.fromtimestamp(gw_end_ms / 1000, tz)
            inside = [_in_window(spec.when, first), _in_window(spec.when, last)]
            clock = f"the gateway's clock said {first:%H:%M}-{last:%H:%M} {tz.key}"
            if not any(inside):
                want, why = False, f" (only {spec.when}; {clock}, so none is due)"
            elif not all(inside):
                ok = len(found) <= 1
                out.append(Verdict(ok, f"{'PASS' if ok else 'FAIL'}  {exp.rule} on {where}: "
                                       f"{len(found)} opened ({clock}, across {spec.when})"))
                continue
        if want:
            sev = [r["severity"] for r in found]
            ok = len(found) == 1 and (exp.severity is None or sev[0] == exp.severity)
            got = (f"opened #{found[0]['id']} [{found[0]['severity']}]" if len(found) == 1
                   else f"{len(found)} opened {sev}" if found else "not opened")
            if not found and (old := [r for r in earlier or () if _matches(exp, r)]):
                got += (f" (#{old[0]['id']} was already open: the gateway keeps one incident "
                        "per alert, so resolve it before playing this scenario again)")
            text = f"incident {exp.rule}" + (f" [{exp.severity}]" if exp.severity else "")
            out.append(Verdict(ok, f"{'PASS' if ok else 'FAIL'}  {text} on {where}: {got}"))
        else:
            ok = not found
            got = "none opened" if ok else f"opened {[r['id'] for r in found]}"
            out.append(Verdict(ok, f"{'PASS' if ok else 'FAIL'}  no {exp.rule} on {where}: "
                                   f"{got}{why}"))
    if run.scenario.no_other_incidents:
        mine = {d.device_id for d in run.roles.values()}
        outage = {e.building for e in run.expected if e.rule == OUTAGE_RULE and e.incident}
        for row in rows:
            if row["device_id"] not in mine or any(_matches(e, row) for _, e in declared):
                continue
            if row["rule_id"].endswith(".offline") and (
                    _building_code(row.get("building_id")) in outage
                    or row["opened_at_ms"] > silent_from):
                continue  # folded into the building's outage, or the scenario had ended
            out.append(Verdict(False, f"FAIL  unexpected incident #{row['id']} {row['rule_id']} "
                                      f"[{row['severity']}] on {row['device_id']}"))
    return out


def offline_verdicts(run: ScenarioRun, pool: list[DeviceSpec],
                     seen: dict[int, set[str]]) -> list[Verdict]:
    """The scenario's ``expect_offline``: were its devices of that building shown offline?"""
    out = []
    for i, check in enumerate(run.scenario.expect_offline):
        building = run.buildings[check.building]
        played = {d.device_id for d in pool if d.building == building and d.native}
        shown = seen.get(i, set()) & played
        ok = bool(played) and shown == played
        missing = sorted(played - shown)
        out.append(Verdict(ok, f"{'PASS' if ok else 'FAIL'}  building {building} offline on the "
                               f"board at +{check.at / 60:g} min: {len(shown)} of {len(played)} "
                               f"devices" + (f" (still online: {', '.join(missing[:5])}"
                                             f"{' …' if len(missing) > 5 else ''})"
                                             if missing else "")))
    return out


def offline_probe(api: GatewayApi, seen: dict[int, set[str]],
                  index: int) -> Callable[[ScenarioRun], Awaitable[None]]:
    """A probe for ``run_scenario``: the devices the duty board shows offline (离线设备)."""

    async def probe(_run: ScenarioRun) -> None:
        overview = await asyncio.to_thread(api.get, "/stats/overview")
        seen[index] = {d for g in overview.get("grids", []) for d in g.get("offline_devices", [])}

    return probe


def check_run(api: GatewayApi, run: ScenarioRun, gw_start_ms: int, gw_end_ms: int,
              gateway_speed: float, wait_s: float, say: Callable[[str], None] = print,
              extra: list[Verdict] | None = None, played_until_ms: int | None = None) -> bool:
    """Wait (at most ``wait_s`` real seconds) for the expected incidents, then judge."""
    tz = api.time_zone(run.site)
    earlier = [r for r in api.active(run.site) if r["opened_at_ms"] < gw_start_ms - 1_000]
    deadline = time.monotonic() + wait_s
    since = gw_start_ms - 1_000
    # The outcome is what the run's readings caused, or its timers while it played (plus a
    # simulated minute): on a compressed clock the devices fall silent after the last step
    # and go offline again within real milliseconds.
    until = gw_end_ms + 60_000 + int(run.scenario.settle_s * 1000)

    def opened() -> list[dict[str, Any]]:
        # An incident's reading is the moment that counts: on a compressed clock the gateway
        # may open it a simulated hour later (telemetry waits while alarms are paged).
        return [r for r in api.incidents(run.site, since)
                if (r.get("reading_ts_ms") or r["opened_at_ms"]) <= until]
    while True:
        rows = opened()
        verdicts = judge(run, rows, gw_start_ms, gw_end_ms, tz, earlier, played_until_ms)
        if all(v.ok for v in verdicts) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    time.sleep(min(2.0, wait_s))  # room for an incident that must not open to show up
    rows = opened()
    verdicts = (judge(run, rows, gw_start_ms, gw_end_ms, tz, earlier, played_until_ms)
                + (extra or []))
    say(f"check against the gateway (clock x{gateway_speed:g}, {tz.key}):")
    for v in verdicts:
        say(f"  {v.line}")
    failed = sum(not v.ok for v in verdicts)
    say(f"{run.scenario.name}: " + ("PASS" if not failed else f"FAIL ({failed} of "
                                                             f"{len(verdicts)} checks)"))
    return not failed
