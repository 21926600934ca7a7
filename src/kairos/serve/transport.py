"""Gateway <-> worker transport: one stream connection per worker, length-prefixed binary frames.

Why a stream socket with a compact framing: a frame costs one ``send`` and is parsed
with one ``struct.unpack`` (no HTTP, no pickling), the gateway reads every worker from
its single asyncio event loop, and a closed connection is how a dead worker is noticed
at once. Workers connect *to* the gateway and introduce themselves (HELLO), so a worker
only needs the gateway's address. Local worker processes use a Unix domain socket (in a
private temporary directory, reachable only by the gateway's user): the same frames
without the loopback TCP/IP stack, less CPU per frame (benchmarks/results/serving.md)
and a lower tail (docs/serving.md). Workers on other machines (Ray actors),
or ``kairos serve --worker-transport tcp``, use TCP with the same frames.

Every frame is ``<u32 length><u8 kind>`` followed by ``length - 1`` bytes:

- HELLO  (worker -> gateway): ``<u32 instance index><u32 pid>`` + JSON info
- QUERY  (gateway -> worker): ``<u64 query id><u32 size><u32 bucket><f64 sent>`` + payload
  (JSON-encoded samples, or empty: the worker makes a synthetic batch of ``size``).
  ``sent``: the gateway's monotonic clock (seconds, ``time.monotonic``) when it sent
  the frame; a worker on the same machine (a Unix socket) measures from it how long
  the query was at the worker before it started; 0 = not given.
- RESULT (worker -> gateway): ``<u64 query id><f64 service ms><u8 ok><f64 queued ms>`` +
  payload (JSON result or error message; empty for an emulated worker). ``queued ms``:
  how long the query was at the worker before it started (Unix socket: from the
  query's ``sent`` time, the same clock on the same machine; TCP: from the kernel's
  receive time of its frame, 0 where the kernel gives none): a query sent ahead waits
  there for the one before it to finish, and the gateway counts that as its wait, not
  as overhead.
- SHUTDOWN (gateway -> worker): no body; the worker finishes its query and exits.

All integers little-endian.
"""

from __future__ import annotations

import struct

HELLO, QUERY, RESULT, SHUTDOWN = 1, 2, 3, 4

PREFIX = struct.Struct("<IB")  # length (of everything after these 4 bytes), kind
HELLO_BODY = struct.Struct("<II")
QUERY_BODY = struct.Struct("<QIId")
RESULT_BODY = struct.Struct("<QdBd")
QUERY_HEAD = struct.Struct("<IBQIId")
RESULT_HEAD = struct.Struct("<IBQdBd")
HELLO_HEAD = struct.Struct("<IBII")

MAX_FRAME = 256 * 1024 * 1024


def encode_hello(index: int, pid: int, info: bytes = b"") -> bytes:
    return HELLO_HEAD.pack(1 + HELLO_BODY.size + len(info), HELLO, index, pid) + info


def encode_query(qid: int, size: int, bucket: int, payload: bytes = b"", sent: float = 0.0) -> bytes:
    return QUERY_HEAD.pack(1 + QUERY_BODY.size + len(payload), QUERY, qid, size, bucket, sent) + payload


def encode_result(qid: int, service_ms: float, ok: bool, payload: bytes = b"", queued_ms: float = 0.0) -> bytes:
    return (
        RESULT_HEAD.pack(1 + RESULT_BODY.size + len(payload), RESULT, qid, service_ms, 1 if ok else 0, queued_ms)
        + payload
    )


def encode_shutdown() -> bytes:
    return PREFIX.pack(1, SHUTDOWN)


class FrameDecoder:
    """Incremental decoder: feed bytes, get back complete ``(kind, body)`` frames."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 5:
            length, kind = PREFIX.unpack_from(buf, pos)
            if length < 1 or length > MAX_FRAME:
                raise ValueError(f"bad frame length {length}")
            end = pos + 4 + length
            if end > n:
                break
            out.append((kind, bytes(buf[pos + 5 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return out
