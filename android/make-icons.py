#!/usr/bin/env python3
"""Draws the launcher icons in res/mipmap-*/ic_launcher.png: an avatar's
head (the apps' default orange) over a floor ring on the room's dark blue.
Standard library only; run it again after changing the drawing."""

import os
import struct
import zlib

SIZES = {"mdpi": 48, "hdpi": 72, "xhdpi": 96, "xxhdpi": 144, "xxxhdpi": 192}
BACKGROUND = (0x1B, 0x26, 0x3B)
HEAD = (0xE0, 0xA0, 0x30)
RING = (0xF0, 0xF0, 0xF0)


def pixel(x, y, size):
    """The colour at the pixel centre (x, y), with a little supersampling."""
    samples = []
    for sx in (0.25, 0.75):
        for sy in (0.25, 0.75):
            u, v = (x + sx) / size, (y + sy) / size
            colour = BACKGROUND
            # The floor ring: an ellipse seen from above at an angle.
            e = ((u - 0.5) / 0.36) ** 2 + ((v - 0.70) / 0.12) ** 2
            if 0.70 < e < 1.0:
                colour = RING
            # The head, standing over the middle of the ring.
            if (u - 0.5) ** 2 + (v - 0.40) ** 2 < 0.17**2:
                colour = HEAD
            samples.append(colour)
    return tuple(sum(c[i] for c in samples) // len(samples) for i in range(3))


def png(size):
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y, size)) for x in range(size))
        for y in range(size)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for density, size in SIZES.items():
        folder = os.path.join(here, "res", f"mipmap-{density}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "ic_launcher.png"), "wb") as out:
            out.write(png(size))
