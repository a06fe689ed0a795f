"""Length-prefixed frames between a parent and a child process it keeps under limits.

The tenant-form compilers (docgen) and the PDF converters (printing) run in children
with CPU, memory and time limits; the parent reads their answers with a deadline, so a
child that hangs or dies is noticed instead of waited on. A frame is a 4-byte
big-endian length and that many bytes.
"""

from __future__ import annotations

import os
import select
import struct
import time
from typing import IO

HEADER = struct.Struct(">I")


def read_exactly(stream: IO[bytes], n: int, deadline: float) -> bytes:
    """`n` bytes from `stream` by `deadline` (time.monotonic()): TimeoutError when they
    do not come in time, EOFError when the child closed its end first."""
    data = bytearray()
    fd = stream.fileno()
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)
