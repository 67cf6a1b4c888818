"""The sample community 阳光社区 (site ``demo``) that ships with the project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_dir() -> Path:
    return Path(str(resources.files("gateway.sample")))


def demo_community_path() -> Path:
    """The demo community file (it lists device-ledger.csv, which sits next to it)."""
    return sample_dir() / "demo-community.yaml"


def device_ledger_path() -> Path:
    return sample_dir() / "device-ledger.csv"


def demo_logins_path() -> Path:
    """DEMO ONLY: the plain-text demo password and the accounts it opens."""
    return sample_dir() / "demo-logins.yaml"
