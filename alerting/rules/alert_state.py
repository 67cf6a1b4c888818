"""A rule's remembered state for one subject: small, immutable, JSON round-trippable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Status = Literal["ok", "pending", "firing"]
_STATUSES: frozenset[str] = frozenset(("ok", "pending", "firing"))


class RuleState(NamedTuple):
    """What an evaluator needs to remember between readings.

    ``due_ms`` is when ``tick`` must look again (duration deadline, absence deadline, event
    hold, window expiry). ``samples`` are ``(ms, value)`` pairs for rate-of-rise and count
    windows; ``hits`` are ``(ms, device_id, group)`` for correlations, which also keep the
    ``site``/``labels``/``device_id`` they report with because they belong to no single device.

    A ``NamedTuple`` rather than a frozen dataclass: just as immutable, but built in C. The
    rule engine makes one or two per telemetry reading (rate-of-rise window, absence
    deadline), and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    cost ~2.3 µs each against ~0.6 µs here. Change a copy with ``state._replace(...)``.
    """

    status: Status = "ok"
    since_ms: int | None = None
    due_ms: int | None = None
    last_ms: int | None = None
    value: float | None = None
    reading_ts_ms: int | None = None
    reading_seq: int | None = None
    samples: tuple[tuple[int, float], ...] = ()
    hits: tuple[tuple[int, str, int], ...] = ()
    site: str = ""
    device_id: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def is_blank(self) -> bool:
        """Nothing worth keeping (ok, no timer, no samples): the row can be deleted."""
        return self is EMPTY or (
            self.status == "ok"
            and self.due_ms is None
            and self.last_ms is None
            and not self.samples
            and not self.hits
        )

    def to_json(self) -> dict[str, Any]:
        """Only the non-default fields, so rows stay small."""
        out: dict[str, Any] = {
            k: v for k, v, d in zip(self._fields, self, EMPTY, strict=True) if v != d
        }
        for key in ("samples", "hits", "labels"):
            if key in out:
                out[key] = [list(item) for item in out[key]]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a corrupt row."""
        status = data.get("status", "ok")
        if status not in _STATUSES:
            raise ValueError(f"unknown alert status {status!r}")
        try:
            return cls(
                status=status,
                since_ms=_opt_int(data.get("since_ms")),
                due_ms=_opt_int(data.get("due_ms")),
                last_ms=_opt_int(data.get("last_ms")),
                value=None if data.get("value") is None else float(data["value"]),
                reading_ts_ms=_opt_int(data.get("reading_ts_ms")),
                reading_seq=_opt_int(data.get("reading_seq")),
                samples=tuple((int(t), float(v)) for t, v in data.get("samples", ())),
                hits=tuple((int(t), str(d), int(g)) for t, d, g in data.get("hits", ())),
                site=str(data.get("site", "")),
                device_id=None if data.get("device_id") is None else str(data["device_id"]),
                labels=tuple((str(k), str(v)) for k, v in data.get("labels", ())),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"corrupt alert state: {exc}") from exc


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


EMPTY = RuleState()


_new = tuple.__new__


def ok_with_samples(samples: tuple[tuple[int, float], ...]) -> RuleState:
    """``RuleState(samples=samples)``, built without the keyword-argument machinery."""
    return _new(RuleState, ("ok", None, None, None, None, None, None, samples, (), "", None, ()))


def alive_until(last_ms: int, due_ms: int) -> RuleState:
    """``RuleState(last_ms=last_ms, due_ms=due_ms)`` (an absence rule's "heard from it")."""
    return _new(RuleState, ("ok", None, due_ms, last_ms, None, None, None, (), (), "", None, ()))
