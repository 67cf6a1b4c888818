"""Draw the worker app's icons (api/board/icons/*.png): a red alarm bell mark on dark blue.

Pure Python (zlib + struct): no image library needed to rebuild them. Run from the repository:
``python scripts/make_icons.py``.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "api" / "board" / "icons"
BG = (15, 23, 42)  # the board's background
RED = (220, 38, 38)
WHITE = (248, 250, 252)


def _pixel(x: float, y: float, maskable: bool) -> tuple[int, int, int]:
    """Colour at (x, y) in [0, 1]²: a red disc with a white exclamation mark."""
    r = 0.36 if maskable else 0.44  # maskable icons keep their mark inside the safe zone
    d = math.hypot(x - 0.5, y - 0.5)
    if d > r:
        return BG
    bar = abs(x - 0.5) < 0.045 * (r / 0.44) and 0.5 - r * 0.62 < y < 0.5 + r * 0.18
    dot = math.hypot(x - 0.5, y - (0.5 + r * 0.45)) < 0.055 * (r / 0.44)
    return WHITE if bar or dot else RED


def png(size: int, maskable: bool = False) -> bytes:
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # filter: none
        for i in range(size):
            rows.extend(_pixel((i + 0.5) / size, (j + 0.5) / size, maskable))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(png(size))
    (OUT / "icon-maskable-512.png").write_bytes(png(512, maskable=True))


if __name__ == "__main__":
    main()
