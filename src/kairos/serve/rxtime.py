"""Kernel receive timestamps of socket reads (Linux ``SO_TIMESTAMPNS``).

The kernel stamps every received segment with the time it arrived; ``recvmsg`` hands
that time over with the data. A reader busy with other work (a load generator sharing
a machine with the server, a worker still serving its previous query) can then tell
when data *arrived*, not only when it got round to reading it. Used by the load
generator's HTTP client and by the workers. Elsewhere, or where the kernel refuses the
option, :func:`enable` returns False and callers fall back to plain reads.
"""

from __future__ import annotations

import socket
import struct
import sys

# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) on Linux: a struct timespec of CLOCK_REALTIME per read
SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("@qq")


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp ``sock``'s received data; True if it agreed."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv(sock: socket.socket, bufsize: int) -> tuple[bytes, float | None]:
    """``(data, arrival)`` of one read of a socket with :func:`enable` on: ``arrival`` is the
    kernel's receive time (CLOCK_REALTIME seconds, as ``time.time()``) of the read's last
    segment, or None when the read carried no stamp."""
    data, anc, _, _ = sock.recvmsg(bufsize, 64)
    t = None
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(raw)
            t = sec + nsec * 1e-9
    return data, t
