"""Named scenarios: timed scripts (data in scenarios/*.yaml) published through the broker.

Each scenario declares the incidents the gateway is expected to open (or not open);
``run_scenario`` returns what it published and those expectations bound to real device ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.claims import claim_payload, claim_topic, new_run_id
from simulators.clock import SimClock, anchored_start_ms, wall_ms
from simulators.commands import CommandResponder, Obedience, command_effects, command_topic
from simulators.device import OFFLINE, SimulatedDevice
from simulators.hostile import ATTACKS
from simulators.inventory import DeviceSpec, DeviceType, default_devices
from simulators.mqtt import MqttLink, raw_publish

SCENARIO_DIR = Path(__file__).with_name("scenarios")
Severity = Literal["critical", "major", "minor", "info"]
StepKind = Literal["telemetry", "event", "status", "power_loss", "power_restore", "hostile"]
Connections = Literal["device", "shared"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Strict):
    """Which device plays a role: type, a symbolic building ("A", "shed"), the n-th match."""

    type: DeviceType
    building: str = "A"
    index: int = Field(default=0, ge=0)
    flags: tuple[str, ...] = ()
    household: bool | None = None  # True: a household's own device; False: a shared one
    same_household_as: str | None = None
    # How the device answers the gateway's commands (own connections only): obey (ack and
    # report the new state), refuse (ack ok: false, state unchanged) or silent (no answer).
    commands: Obedience = "obey"


class Ramp(_Strict):
    """Repeat a step ``count`` times, ``every`` seconds, ramping fields linearly."""

    every: float = Field(gt=0)
    count: int = Field(ge=1, le=10_000)
    ramp: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Step(_Strict):
    """One timed action: a device message, a building's power loss/restore, or an attack."""

    at: float = Field(ge=0)
    role: str | None = None
    building: str | None = None
    kind: StepKind
    payload: dict[str, Any] = Field(default_factory=dict)
    series: Ramp | None = None
    attack: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Step:
        if self.kind in ("power_loss", "power_restore"):
            if self.building is None:
                raise ValueError(f"{self.kind} needs `building`")
        elif self.role is None:
            raise ValueError(f"a {self.kind} step needs `role`")
        if self.kind == "hostile" and self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {sorted(ATTACKS)}, got {self.attack!r}")
        if self.kind == "event" and not isinstance(self.payload.get("event"), str):
            raise ValueError("an event step needs payload.event")
        if self.kind == "status" and set(self.payload) != {"online"}:
            raise ValueError("a status step's payload is exactly {online: true|false}")
        return self

    def end(self) -> float:
        return self.at + (self.series.every * (self.series.count - 1) if self.series else 0.0)


class Expectation(_Strict):
    """An incident the gateway must (``incident: true``) or must not open for this scenario.

    ``role``: the incident is about that role's device. ``building``: it is about a building
    as a whole (a symbolic building of the roles: building outage, several detectors).
    Without either, the expectation holds for any device (``incident: false`` only).
    """

    rule: str = Field(pattern=r"^[a-z_]+(\.[a-z0-9_]+)?$")
    severity: Severity | None = None
    incident: bool
    role: str | None = None
    building: str | None = None
    # The rule's hazard: its incident is the device's one incident of that hazard, listing
    # the rule among its reasons (several rules of one hazard fold into one incident).
    hazard: str | None = Field(default=None, pattern=r"^[a-z]{1,32}$")
    note: str = ""
    #: "22:00-06:00": the rule only acts in this window of the gateway's local time; outside
    #: it the check expects no incident (and says why).
    when: str | None = Field(default=None, pattern=r"^\d\d:\d\d-\d\d:\d\d$")


class OfflineCheck(_Strict):
    """At ``at`` (simulated seconds) every device the scenario plays in ``building`` is shown
    offline (the duty board's 离线设备)."""

    building: str
    at: float = Field(ge=0)


class Scenario(_Strict):
    """A named, timed script over roles, with the gateway's expected outcome."""

    name: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str
    description: str = ""
    start_at: str | None = Field(default=None, pattern=r"^\d\d:\d\d$")
    suggested_speed: float = Field(default=1.0, gt=0)
    roles: dict[str, RoleSpec]
    steps: tuple[Step, ...] = Field(min_length=1)
    expect: tuple[Expectation, ...] = Field(min_length=1)
    expect_offline: tuple[OfflineCheck, ...] = ()
    no_other_incidents: bool = False
    #: The outcome comes from the gateway's timers (absence, hours): the gateway's clock must
    #: run at ``suggested_speed`` (``safety-gateway demo --rate N``), not just the devices'.
    needs_gateway_time: bool = False
    #: Simulated seconds the gateway's timers may need after the last step (a duration rule).
    settle_s: float = Field(default=0.0, ge=0)
    # Simulated seconds the devices stay connected after the last step, answering commands.
    linger: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        labels = {r.building for r in self.roles.values()}
        for step in self.steps:
            if step.role is not None and step.role not in self.roles:
                raise ValueError(f"step at {step.at}s names unknown role {step.role!r}")
            if step.building is not None and step.building not in labels:
                raise ValueError(f"step at {step.at}s names unknown building {step.building!r}")
        for name, role in self.roles.items():
            if role.same_household_as not in (None, *self.roles):
                raise ValueError(f"role {name}: unknown same_household_as")
        for exp in self.expect:
            if exp.role is not None and exp.role not in self.roles:
                raise ValueError(f"expectation {exp.rule} names unknown role {exp.role!r}")
            if exp.building is not None and exp.building not in labels:
                raise ValueError(f"expectation {exp.rule} names unknown building {exp.building!r}")
            if exp.incident and exp.role is None and exp.building is None:
                raise ValueError(f"expected incident {exp.rule} needs `role` or `building`")
        for check in self.expect_offline:
            if check.building not in labels:
                raise ValueError(f"expect_offline names unknown building {check.building!r}")
        return self

    @property
    def duration_s(self) -> float:
        return max(step.end() for step in self.steps)


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """What the run sent (or made the broker send, for a Will), in order."""

    at_s: float
    ts_ms: int
    topic: str | bytes
    payload: bytes
    retain: bool
    role: str | None
    device_id: str | None
    kind: str
    via: Literal["device", "shared", "will", "raw"]
    attack: str | None = None
    delivered: bool = True
    #: hostile messages: the quarantine reason a gateway records (None: it never sees it)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BoundExpectation:
    """An expectation with its role resolved to a device (and that device's building).

    For a building-wide expectation ``device_id`` is None and ``building`` is the real one.
    """

    rule: str
    severity: str | None
    incident: bool
    device_id: str | None
    building: str | None
    hazard: str | None = None


@dataclass
class ScenarioRun:
    """The outcome of a run: what was published and what the gateway should now show."""

    scenario: Scenario
    site: str
    roles: dict[str, DeviceSpec]
    buildings: dict[str, str]
    published: list[PublishedMessage] = field(default_factory=list)
    speed: float = 1.0
    sim_start_ms: int = 0
    sim_end_ms: int = 0
    real_seconds: float = 0.0
    claim: str | None = None  # the run's claim on its devices (simulators.claims)

    @property
    def devices(self) -> set[str]:
        """Every device the run played (roles and whole buildings)."""
        return {d.device_id for d in self.roles.values()} | {
            m.device_id for m in self.published if m.device_id}
    #: device id -> the commands it received (role devices on their own connections)
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def expected(self) -> list[BoundExpectation]:
        out = []
        for exp in self.scenario.expect:
            dev = self.roles.get(exp.role) if exp.role else None
            building = self.buildings[exp.building] if exp.building else None
            out.append(BoundExpectation(exp.rule, exp.severity, exp.incident,
                                        dev.device_id if dev else None,
                                        dev.building if dev else building, exp.hazard))
        return out

    @property
    def expected_incidents(self) -> list[BoundExpectation]:
        return [e for e in self.expected if e.incident]


def scenario_names() -> list[str]:
    """Every shipped scenario name."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file by path; errors name the file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no scenario {name_or_path!r}; known: {', '.join(scenario_names())}")
    try:
        return Scenario.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


# -- binding roles to devices ------------------------------------------------------------------


def bind_roles(scenario: Scenario, devices: list[DeviceSpec]) -> tuple[dict[str, DeviceSpec],
                                                                        dict[str, str]]:
    """Give every role a device and every symbolic building a real one (first that fits).

    Scenarios speak the native wire contract: devices registered with a vendor profile are
    never bound to a role.
    """
    devices = [d for d in devices if d.native]
    buildings = sorted({d.building for d in devices})
    labels = list(dict.fromkeys(r.building for r in scenario.roles.values()))
    bound: dict[str, DeviceSpec] = {}
    chosen: dict[str, str] = {}
    for label in labels:
        names = [n for n, r in scenario.roles.items() if r.building == label]
        for building in buildings:
            if building in chosen.values():
                continue
            attempt = _bind_in(scenario, names, [d for d in devices if d.building == building], bound)
            if attempt is not None:
                bound.update(attempt)
                chosen[label] = building
                break
        else:
            wanted = {n: scenario.roles[n].type for n in names}
            raise LookupError(f"{scenario.name}: no building has devices for roles {wanted}")
    return bound, chosen


def _bind_in(scenario: Scenario, names: list[str], pool: list[DeviceSpec],
             already: dict[str, DeviceSpec]) -> dict[str, DeviceSpec] | None:
    out: dict[str, DeviceSpec] = {}
    for name in names:
        role = scenario.roles[name]
        matches = sorted((d for d in pool if _fits(role, d, {**already, **out})),
                         key=lambda d: d.device_id)
        if len(matches) <= role.index:
            return None
        out[name] = matches[role.index]
    return out


class NowMs(Protocol):
    """A clock to follow (the gateway's ``CompressedClock``): simulated epoch ms now."""

    def now_ms(self) -> int: ...


def _fits(role: RoleSpec, d: DeviceSpec, bound: dict[str, DeviceSpec]) -> bool:
    if d.type != role.type or not set(role.flags) <= set(d.flags):
        return False
    if role.household is not None and (d.household is not None) != role.household:
        return False
    if role.same_household_as is not None:
        other = bound.get(role.same_household_as)
        return other is not None and other.household is not None and other.household == d.household
    return True


# -- running ------------------------------------------------------------------------------------


def _timeline(scenario: Scenario) -> list[tuple[float, int, Step, dict[str, Any]]]:
    items: list[tuple[float, int, Step, dict[str, Any]]] = []
    for order, step in enumerate(scenario.steps):
        if step.series is None:
            items.append((step.at, order, step, dict(step.payload)))
            continue
        n = step.series.count
        for i in range(n):
            frac = i / (n - 1) if n > 1 else 0.0
            payload = dict(step.payload)
            for key, (lo, hi) in step.series.ramp.items():
                value = lo + (hi - lo) * frac
                payload[key] = round(value) if isinstance(step.payload.get(key), int) else round(value, 3)
            items.append((step.at + i * step.series.every, order, step, payload))
    items.sort(key=lambda item: (item[0], item[1]))
    return items


class _Runner:
    def __init__(self, run: ScenarioRun, broker_url: str, devices: list[DeviceSpec],
                 connections: Connections, clock: SimClock) -> None:
        self.run = run
        self.broker_url = broker_url
        self.connections = connections
        self.clock = clock
        labels = run.buildings
        involved = {d.device_id: d for d in run.roles.values()}
        for step in run.scenario.steps:
            if step.building is not None:
                involved |= {d.device_id: d for d in devices
                             if d.building == labels[step.building] and d.native}
        self.sims = {i: SimulatedDevice(d) for i, d in involved.items()}
        self.role_of = {d.device_id: r for r, d in run.roles.items()}
        self.shared: MqttLink | None = None
        self.dropped: set[str] = set()
        self.responders: dict[str, CommandResponder] = {}

    def record(self, at: float, sim: SimulatedDevice | None, kind: str, topic: str | bytes,
               body: bytes, retain: bool, via: Any, attack: str | None = None,
               delivered: bool = True, reason: str | None = None) -> None:
        dev = sim.spec.device_id if sim else None
        self.run.published.append(PublishedMessage(
            at, self.clock.at_ms(at), topic, body, retain, self.role_of.get(dev or ""), dev, kind,
            via, attack, delivered, reason))

    async def open(self) -> None:
        self.shared = MqttLink(self.broker_url, None)
        await self.shared.connect()
        if self.connections == "device":
            await asyncio.gather(*(s.connect(self.broker_url) for s in self.sims.values()))
            for device_id, role in self.role_of.items():
                await self.obey(self.sims[device_id], self.run.scenario.roles[role].commands)
        # One burst on the shared connection (its order is the recorded one): every device's
        # last sign of life before the steps is the same moment, as for a building whose
        # devices then lose power together, even on a gateway clock running 3600x.
        shared = self.shared
        assert shared is not None
        sends = []
        for sim in self.sims.values():
            for topic, body, retain in sim.messages("status", {"online": True},
                                                    self.clock.at_ms(0.0)):
                self.record(0.0, sim, "status", topic, body, retain, "shared")
                sends.append(shared.publish(topic, body, 1, retain))
        await asyncio.gather(*sends)

    async def obey(self, sim: SimulatedDevice, obedience: Obedience) -> None:
        """Answer the gateway's commands to ``sim`` (if its type takes any)."""
        spec = sim.spec
        if sim.link is None or not command_effects(spec.type):
            return

        async def send(kind: str, fields: dict[str, Any]) -> None:
            await self.send(self.clock.elapsed_s(), sim, kind, fields)

        responder = CommandResponder(spec.type, send, obedience)
        self.responders[spec.device_id] = responder
        self.run.commands[spec.device_id] = responder.received
        await sim.link.subscribe(command_topic(spec.site, spec.type, spec.device_id), responder.on_message)

    async def settle(self) -> None:
        for responder in self.responders.values():
            await responder.settle()

    async def close(self) -> None:
        for sim in self.sims.values():
            if sim.link is not None and sim.spec.device_id not in self.dropped:
                sim.link.close()
        if self.shared is not None:
            self.shared.close()

    async def send(self, at: float, sim: SimulatedDevice, kind: str, fields: dict[str, Any]) -> None:
        link = sim.link if sim.link is not None else self.shared
        sent = await sim.publish(kind, fields, self.clock.at_ms(at), link)
        responder = self.responders.get(sim.spec.device_id)
        if responder is not None and kind == "telemetry":
            responder.observe(fields)
        via = "device" if link is sim.link else "shared"
        for topic, body, retain in sent:
            self.record(at, sim, kind, topic, body, retain, via)

    async def step(self, at: float, step: Step, payload: dict[str, Any]) -> None:
        if step.kind in ("telemetry", "event", "status"):
            await self.send(at, self.sims[self.run.roles[step.role or ""].device_id], step.kind,
                            payload)
        elif step.kind == "hostile":
            await self.attack(at, step)
        else:
            building = self.run.buildings[step.building or ""]
            members = [s for s in self.sims.values() if s.spec.building == building]
            if step.kind == "power_loss":
                await asyncio.gather(*(self.power_loss(at, sim) for sim in members))
            else:
                await self.power_restore(at, members)

    async def power_loss(self, at: float, sim: SimulatedDevice) -> None:
        if sim.link is not None:
            await asyncio.to_thread(sim.link.drop)  # the broker now publishes the Last Will
            self.dropped.add(sim.spec.device_id)
            self.record(at, sim, "status", sim.status_topic, OFFLINE, True, "will")
        else:
            await self.send(at, sim, "status", {"online": False})

    async def power_restore(self, at: float, members: list[SimulatedDevice]) -> None:
        back = [s for s in members if s.spec.device_id in self.dropped]
        await asyncio.gather(*(s.connect(self.broker_url) for s in back))
        self.dropped.difference_update(s.spec.device_id for s in back)
        for sim in members:  # one after the other, so the order on the wire is the recorded one
            await self.send(at, sim, "status", {"online": True})

    async def attack(self, at: float, step: Step) -> None:
        victim = self.run.roles[step.role or ""]
        assert self.shared is not None
        for msg in ATTACKS[step.attack or ""](victim, self.clock.at_ms(at)):
            if msg.raw:
                topic = msg.topic if isinstance(msg.topic, bytes) else msg.topic.encode()
                await asyncio.to_thread(raw_publish, self.broker_url, topic, msg.payload)
                via: Literal["raw", "shared"] = "raw"
            else:
                await self.shared.publish(str(msg.topic), msg.payload, 1, False)
                via = "shared"
            self.record(at, None, "hostile", msg.topic, msg.payload, False, via, msg.attack,
                        msg.delivered, msg.reason)


async def run_scenario(
    scenario: str | Scenario,
    broker_url: str,
    site: str = "demo",
    devices: list[DeviceSpec] | None = None,
    speed: float = 1.0,
    *,
    connections: Connections = "device",
    start_ms: int | None = None,
    clock: NowMs | None = None,
    on_connected: Callable[[], Awaitable[None]] | None = None,
    claim: bool = False,
    probes: list[tuple[float, Callable[[ScenarioRun], Awaitable[None]]]] | None = None,
) -> ScenarioRun:
    """Play a scenario through the broker and return what was published and what to expect.

    ``devices`` defaults to :func:`~simulators.inventory.default_devices` of ``site`` (the
    sample community's devices for ``demo``). ``speed`` compresses the clock (``ts`` follows
    simulated time; by default the run is anchored so that no ``ts`` lies in the real future).
    ``clock``: follow another clock running at ``speed`` instead (a gateway's compressed
    clock): the scenario starts at that clock's "now" once the devices are connected, so the
    ``ts`` values agree with it. ``connections="device"`` gives each device its own connection
    with a Last Will; ``"shared"`` uses one connection and publishes offline status explicitly.
    ``on_connected`` is awaited once the devices are connected and have said they are online,
    just before the first step (a test speeds up the gateway's clock there). ``claim``
    takes the devices over from a running fleet (simulators.claims) until the caller
    releases them with :func:`release_claim`. ``probes``: (simulated second, coroutine)
    awaited when the run reaches that second (a check looks at the gateway mid-run).
    """
    spec = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    pool = [d for d in (devices if devices is not None else default_devices(site)) if d.site == site]
    roles, buildings = bind_roles(spec, pool)
    if clock is not None:
        start_ms = clock.now_ms()
    elif start_ms is None:
        start_ms = anchored_start_ms(spec.duration_s + spec.linger, speed, time_of_day=spec.start_at)
    sim_clock = SimClock(speed, start_ms)
    run = ScenarioRun(spec, site, roles, buildings, speed=speed, sim_start_ms=start_ms)
    runner = _Runner(run, broker_url, pool, connections, sim_clock)
    began = time.monotonic()
    await runner.open()
    if claim:
        assert runner.shared is not None
        run.claim = new_run_id()
        hold_s = spec.duration_s / speed + 3600  # the caller releases it sooner
        await runner.shared.publish(
            claim_topic(site, run.claim),
            claim_payload(runner.sims, wall_ms() + int(hold_s * 1000)), 1, True)
    if on_connected is not None:
        await on_connected()
    if clock is not None:  # the connections took real time: start at the followed clock's now
        sim_clock.start_ms = run.sim_start_ms = clock.now_ms()
    sim_clock.start()
    pending = sorted(probes or (), key=lambda p: p[0])
    try:
        for at, step, payload in ((a, s, p) for a, _, s, p in _timeline(spec)):
            while pending and pending[0][0] < at:
                await sim_clock.sleep_until(pending[0][0])
                await pending.pop(0)[1](run)
            await sim_clock.sleep_until(at)
            await runner.step(at, step, payload)
        for probe_at, probe in pending:
            await sim_clock.sleep_until(probe_at)
            await probe(run)
        await sim_clock.sleep_until(spec.duration_s + spec.linger)
        await runner.settle()
    finally:
        await runner.close()
    run.sim_end_ms = sim_clock.at_ms(spec.duration_s + spec.linger)
    run.real_seconds = time.monotonic() - began
    return run


async def release_claim(broker_url: str, site: str, claim: str) -> None:
    """Give a run's devices back to the fleet (clears the retained claim)."""
    link = MqttLink(broker_url, None)
    await link.connect()
    try:
        await link.publish(claim_topic(site, claim), b"", 1, True)
    finally:
        link.close()
