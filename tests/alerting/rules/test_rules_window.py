"""Rate-of-rise window: the fast ``window_minima`` against a plain definition, and the edge
where a steady value must keep its *latest* timestamp (so a later rise still fires)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError
from rules_support import make_engine, play, summary

from alerting.rules.evaluators import window_minima
from alerting.rules.schedule import Schedule


def _reference(
    samples: tuple[tuple[int, float], ...], cutoff: int, now: int, value: float
) -> tuple[tuple[int, float], ...]:
    """The original definition: drop expired entries, then the ones the new value replaces."""
    kept = [s for s in samples if s[0] >= cutoff]
    while kept and kept[-1][1] >= value:
        kept.pop()
    return (*kept[-256:], (now, value))


@pytest.mark.parametrize("seed", range(5))
def test_window_minima_matches_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    window: tuple[tuple[int, float], ...] = ()
    now = 0
    for _ in range(5000):
        now += rng.choice((1, 5, 20, 70))
        value = float(rng.choice((rng.randrange(20, 26), rng.randrange(0, 1000) / 10)))
        expected = _reference(window, now - 60, now, value)
        window = window_minima(window, now - 60, now, value)
        assert window == expected
        assert window[0][1] == min(v for _, v in window)


def test_window_minima_bounded() -> None:
    window: tuple[tuple[int, float], ...] = ()
    for i in range(1000):
        window = window_minima(window, -1, i, float(i))
    assert len(window) == 257 and window[0] == (743, 743.0)


ROR = {
    "id": "r",
    "kind": "rate_of_rise",
    "device_type": "smoke",
    "field": "temp_c",
    "rise": 4,
    "within": "1m",
    "title": "t",
    "severity": "major",
}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # Steady 40 °C for two minutes, then +4 within the minute: fires at that reading.
        (
            [("T", t, "SD-1", {"temp_c": 40}) for t in range(0, 130, 10)]
            + [("T", 135, "SD-1", {"temp_c": 42}), ("T", 140, "SD-1", {"temp_c": 44})],
            [(140, "SD-1", "firing")],
        ),
        # A repeated value refreshes the sample's time: 40 at 0 and 30, 44 at 75 is a rise of
        # 4 within the minute (against the 40 seen at 30), so it fires.
        (
            [
                ("T", 0, "SD-1", {"temp_c": 40}),
                ("T", 30, "SD-1", {"temp_c": 40}),
                ("T", 75, "SD-1", {"temp_c": 44}),
            ],
            [(75, "SD-1", "firing")],
        ),
        # The same rise after a minute of silence is not within the window.
        (
            [("T", 0, "SD-1", {"temp_c": 40}), ("T", 61, "SD-1", {"temp_c": 44})],
            [],
        ),
    ],
)
def test_rate_of_rise_after_steady_readings(steps: list[Any], expected: list[Any]) -> None:
    engine = make_engine([ROR])
    assert summary(play(engine, steps), rule="r") == expected


@pytest.mark.parametrize("name", ["America", "Asia", "Nowhere/City", ""])
def test_a_rule_schedule_in_an_unknown_zone_is_a_load_error(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Schedule.model_validate({"timezone": name, "active": [{"start": "22:00", "end": "06:00"}]})
