"""What the API needs of the loop, built once by the wiring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alerting.loop.desk import LoopDesk
from alerting.loop.messages import LoopMessenger


@dataclass
class LoopServices:
    desk: LoopDesk
    messenger: LoopMessenger
    photos_dir: Path  # under the data directory
    public_url: str = ""  # how departments and residents reach the gateway; "" = as called
