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
    __slots__ = ("client", "transport", "buf", "cb", "closed")

    def __init__(self, client: "HttpClient"):
        self.client = client
        self.transport = None
        self.buf = bytearray()
        self.cb = None  # (on_answer, on_error) of the request in flight
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
        cb, self.cb = self.cb, None
        if b"connection: close" in head or self.closed:
            self.transport.close()
        else:
            self.client.idle.append(self)  # free for the next request
        if cb is not None:
            cb[0](status, body)

    def connection_lost(self, exc) -> None:
        self.closed = True
        cb, self.cb = self.cb, None
        if cb is not None:
            cb[1](ConnectionError(f"connection closed before the answer ({exc})"))


class HttpClient:
    """``await client.request("POST", "/v1/infer", body)`` -> (status, body bytes); or
    ``client.send(...)`` with callbacks, called as the answer is read (the load generator's
    path: no task and no future per request)."""

    def __init__(self, base_url: str):
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"unsupported URL {base_url!r}: use http://HOST:PORT")
        self.host = u.hostname
        self.port = u.port or 80
        self.hosthdr = f"{self.host}:{self.port}".encode()
        self.idle: list[_Conn] = []
        self.opened = 0
        self._connecting: set[asyncio.Task] = set()

    def _write(self, c: _Conn, method: str, path: str, body: bytes, on_answer, on_error) -> None:
        c.cb = (on_answer, on_error)
        c.transport.write(b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                          % (method.encode(), path.encode(), self.hosthdr, len(body), body))

    def send(self, method: str, path: str, body: bytes, on_answer, on_error) -> None:
        """Send one request on an idle keep-alive connection (a new one when none is idle,
        opened in the background); ``on_answer(status, body)`` or ``on_error(exc)`` is
        called once, from the event loop."""
        idle = self.idle
        while idle:
            c = idle.pop()
            if not c.closed:
                self._write(c, method, path, body, on_answer, on_error)
                return
        t = asyncio.get_running_loop().create_task(self._open_and_send(method, path, body, on_answer, on_error))
        self._connecting.add(t)
        t.add_done_callback(self._connecting.discard)

    async def _connect(self) -> _Conn:
        _, c = await asyncio.get_running_loop().create_connection(lambda: _Conn(self), self.host, self.port)
        self.opened += 1
        return c

    async def _open_and_send(self, method, path, body, on_answer, on_error) -> None:
        try:
            c = await self._connect()
        except Exception as exc:  # refused, reset: the caller counts an error
            on_error(exc)
            return
        self._write(c, method, path, body, on_answer, on_error)

    async def warm(self, n: int) -> None:
        """Open connections until ``n`` are idle, all at once: a run then starts without
        TCP handshakes (and the server's per-connection set-up) in its first bursts."""
        self.idle = [c for c in self.idle if not c.closed]
        need = n - len(self.idle)
        if need <= 0:
            return
        made = await asyncio.gather(*(self._connect() for _ in range(need)))
        self.idle[:0] = made  # under the warm ones: reused last

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        fut = asyncio.get_running_loop().create_future()

        def answer(status, data):
            if not fut.done():
                fut.set_result((status, data))

        def error(exc):
            if not fut.done():
                fut.set_exception(exc)

        self.send(method, path, body, answer, error)
        return await fut

    def close(self) -> None:
        for c in self.idle:
            c.transport.close()
        self.idle.clear()
