"""How fast a site's devices are sent commands: one token bucket per site.

A storm (thousands of charger ports over one threshold) must not send thousands of power
cuts at once: the site's broker, its devices and the people watching the board would all be
flooded. Commands over the rate wait in order (``held`` rows, alerting/commands/desk.py);
urgent ones (a life-safety rule, a person pressing a button) never take a token and never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CommandRate:
    """``max_per_s`` commands a second per site, after a ``burst``; 0 = no limit."""

    max_per_s: float = 20.0
    burst: int = 20


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class SiteBuckets:
    rate: CommandRate = field(default_factory=CommandRate)
    monotonic: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        return self.rate.max_per_s > 0

    def _fill(self, site: str) -> _Bucket:
        now = self.monotonic()
        b = self._buckets.get(site)
        if b is None:
            b = self._buckets[site] = _Bucket(float(self.rate.burst), now)
        else:
            b.tokens = min(float(self.rate.burst), b.tokens + (now - b.at) * self.rate.max_per_s)
            b.at = now
        return b

    def take(self, site: str, n: int = 1) -> int:
        """Take up to ``n`` tokens of the site's bucket; how many were taken."""
        if not self.limited:
            return n
        b = self._fill(site)
        got = min(n, int(b.tokens))
        b.tokens -= got
        return got

    def available(self, site: str) -> int:
        """Tokens the site's bucket holds now (without taking them)."""
        if not self.limited:
            return 1 << 30
        return int(self._fill(site).tokens)

    def wait_s(self, site: str) -> float:
        """Seconds until the site's next token."""
        if not self.limited:
            return 0.0
        b = self._fill(site)
        return max(0.0, (1.0 - b.tokens) / self.rate.max_per_s)
