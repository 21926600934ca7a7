"""A minimal asyncio HTTP/1.1 client for the load generator: keep-alive connections,
one request in flight per connection, ``Content-Length`` bodies only (what the gateway
sends). A general client (aiohttp) costs several hundred microseconds of CPU per
request, which on a small machine would make the load generator, not the gateway,
the bottleneck; this one costs a few tens.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "buf", "fut", "closed")

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.fut: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return
        head = bytes(buf[:i]).lower()
        j = head.find(b"content-length:")
        n = int(head[j + 15:head.find(b"\r\n", j) if head.find(b"\r\n", j) > 0 else len(head)]) if j >= 0 else 0
        end = i + 4 + n
        if len(buf) < end:
            return
        status = int(head[9:12])
        body = bytes(buf[i + 4:end])
        del buf[:end]
        keep = b"connection: close" not in head
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_result((status, body, keep))

    def connection_lost(self, exc) -> None:
        self.closed = True
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError(f"connection closed before the answer ({exc})"))


class HttpClient:
    """``await client.request("POST", "/v1/infer", body)`` -> (status, body bytes)."""

    def __init__(self, base_url: str):
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"unsupported URL {base_url!r}: use http://HOST:PORT")
        self.host = u.hostname
        self.port = u.port or 80
        self.hosthdr = f"{self.host}:{self.port}".encode()
        self.idle: list[_Conn] = []
        self.opened = 0

    async def _acquire(self) -> _Conn:
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                return c
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(_Conn, self.host, self.port)
        self.opened += 1
        return c

    async def warm(self, n: int) -> None:
        """Open connections until ``n`` are idle, all at once: a run then starts without
        TCP handshakes (and the server's per-connection set-up) in its first bursts."""
        self.idle = [c for c in self.idle if not c.closed]
        need = n - len(self.idle)
        if need <= 0:
            return
        loop = asyncio.get_running_loop()
        made = await asyncio.gather(*(loop.create_connection(_Conn, self.host, self.port) for _ in range(need)))
        self.idle[:0] = [c for _, c in made]  # under the warm ones: reused last
        self.opened += need

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        c = await self._acquire()
        fut = asyncio.get_running_loop().create_future()
        c.fut = fut
        c.transport.write(b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                          % (method.encode(), path.encode(), self.hosthdr, len(body), body))
        try:
            status, data, keep = await fut
        except BaseException:
            c.transport.close()
            raise
        if keep and not c.closed:
            self.idle.append(c)
        else:
            c.transport.close()
        return status, data

    def close(self) -> None:
        for c in self.idle:
            c.transport.close()
        self.idle.clear()
