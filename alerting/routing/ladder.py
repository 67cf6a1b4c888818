"""Escalation ladders as data: per severity, who is paged at each step and how long each waits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from alerting.routing.directory import Role

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class Step:
    """Page ``targets`` ``wait_ms`` after the previous step (step 0: when the incident opens)."""

    wait_ms: int
    targets: tuple[Role, ...]

    def __post_init__(self) -> None:
        if self.wait_ms < 0:
            raise ValueError("a step cannot wait a negative time")


@dataclass(frozen=True, slots=True)
class Ladder:
    """Steps in order. After the last step the last one repeats every ``repeat_ms`` (if set)
    until someone acknowledges; an acknowledged incident is reminded every ``remind_ms``."""

    name: str
    steps: tuple[Step, ...]
    repeat_ms: int | None = None
    remind_ms: int | None = None

    def step(self, index: int) -> Step | None:
        """Step ``index``, counting repeats of the last step; ``None`` once the ladder ends."""
        if index < len(self.steps):
            return self.steps[index]
        if self.steps and self.repeat_ms:
            return Step(self.repeat_ms, self.steps[-1].targets)
        return None

    def with_step0_extra(self, extra: tuple[Role, ...]) -> Ladder:
        """This ladder with ``extra`` roles added to its first step (e.g. family for an SOS)."""
        if not extra or not self.steps:
            return self
        first = self.steps[0]
        targets = first.targets + tuple(r for r in extra if r not in first.targets)
        return Ladder(
            self.name,
            (Step(first.wait_ms, targets), *self.steps[1:]),
            self.repeat_ms,
            self.remind_ms,
        )

    def schedule(self, opened_ms: int, horizon_ms: int) -> Iterator[tuple[int, int, Step]]:
        """(at_ms, index, step) of every step before ``opened_ms + horizon_ms`` if nobody acks."""
        at, index = opened_ms, 0
        while (step := self.step(index)) is not None:
            at += step.wait_ms
            if at > opened_ms + horizon_ms:
                return
            yield at, index, step
            index += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "steps": [
                {"wait_ms": s.wait_ms, "targets": [r.value for r in s.targets]} for s in self.steps
            ],
            "repeat_ms": self.repeat_ms,
            "remind_ms": self.remind_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ladder:
        steps = tuple(
            Step(int(s["wait_ms"]), tuple(Role(r) for r in s["targets"])) for s in data["steps"]
        )
        return cls(str(data["name"]), steps, data.get("repeat_ms"), data.get("remind_ms"))


_R = Role


def default_ladders(
    critical_ms: int = 2 * MINUTE_MS,
    major_ms: int = 10 * MINUTE_MS,
    minor_ms: int = 24 * HOUR_MS,
) -> dict[str, Ladder]:
    """The ladders of the issue text; each argument is that severity's acknowledgement deadline.

    Critical (fire, SOS, fall) pages the grid worker, building leader and duty staff at once,
    then the backup worker and the secretary, then repeats. Major and minor start at the grid
    worker: backup worker / building leader → duty staff → secretary. Reminders of
    acknowledged-unresolved incidents come after 15 ×, 12 × and 3 × the deadline.
    """

    def climb(name: str, deadline: int, remind: int) -> Ladder:
        return Ladder(
            name,
            (
                Step(0, (_R.GRID_WORKER,)),
                Step(deadline, (_R.BACKUP_WORKER, _R.BUILDING_LEADER)),
                Step(deadline, (_R.DUTY_STAFF,)),
                Step(deadline, (_R.SECRETARY,)),
            ),
            repeat_ms=deadline,
            remind_ms=remind,
        )

    return {
        "critical": Ladder(
            "critical",
            (
                Step(0, (_R.GRID_WORKER, _R.BUILDING_LEADER, _R.DUTY_STAFF)),
                Step(critical_ms, (_R.BACKUP_WORKER, _R.SECRETARY)),
            ),
            repeat_ms=critical_ms,
            remind_ms=15 * critical_ms,
        ),
        "major": climb("major", major_ms, 12 * major_ms),
        "minor": climb("minor", minor_ms, 3 * minor_ms),
        "none": Ladder("none", ()),
    }
