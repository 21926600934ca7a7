"""A minimal asyncio HTTP/1.1 client for the load generator: keep-alive connections,
one request in flight per connection, ``Content-Length`` bodies only (what the gateway
sends). A general client (aiohttp) costs several times more CPU per request, which
on a small machine would make the load generator, not the gateway, the bottleneck
(docs/serving.md, "The load generator").

A keep-alive connection that sat idle for a while is checked before it is used again
(one non-blocking peek): a server closes idle connections after its keep-alive timeout
(uvicorn's default is 5 s), and while this process's event loop is busy it may not
have read that close yet -- a request written on such a connection fails unanswered
(the classic keep-alive race), and the load generator would count an error that the
server never saw. Recently used connections are taken as they are.

Each connection is a non-blocking socket read with ``recvmsg`` from the event loop's
reader callback. On Linux the kernel stamps every received TCP segment
(``SO_TIMESTAMPNS``), and an answer carries the time its last segment reached this
machine: the latency a client measures then ends when the answer arrived, not when the
load generator's event loop, sharing a small machine with the server, got round to
reading it (see docs/serving.md, "The load generator"). Elsewhere (or when the kernel
refuses the option) the time the answer was read is used.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from kairos.serve import rxtime

# a request's callbacks: on_answer(status, body, t_rx) and on_error(exc)
OnAnswer = Callable[[int, bytes, float], None]
OnError = Callable[[BaseException], None]


class _Conn:
    __slots__ = ("client", "sock", "fd", "loop", "buf", "cb", "stamps", "t_rx", "out", "idle_since")

    def __init__(self, client: HttpClient, sock: socket.socket, loop):
        self.client = client
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.buf = bytearray()
        self.cb: tuple[OnAnswer, OnError] | None = None  # (on_answer, on_error) of the request in flight
        self.out = b""  # what the kernel did not take yet (normally nothing: requests are small)
        self.t_rx: float | None = None
        self.idle_since = time.monotonic()
        self.stamps = rxtime.enable(sock)
        loop.add_reader(self.fd, self._readable)

    @property
    def closed(self) -> bool:
        return self.fd < 0  # close() sets it

    # -- writing -------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        if not self.out:
            try:
                n = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self._lost(exc)
                return
            if n == len(data):
                return
            data = data[n:]
            self.loop.add_writer(self.fd, self._writable)
        self.out += data

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        self.out = self.out[n:]
        if not self.out:
            self.loop.remove_writer(self.fd)

    # -- reading -------------------------------------------------------------------
    def _readable(self) -> None:
        try:
            if self.stamps:
                data, t = rxtime.recv(self.sock, 262144)
                if t is not None:
                    # CLOCK_REALTIME -> perf_counter, offset read now (no drift to care about)
                    self.t_rx = t - (time.time() - time.perf_counter())
                    self.client.stamped += 1
            else:
                data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return
        head = bytes(buf[:i]).lower()
        j = head.find(b"content-length:")
        n = int(head[j + 15 : head.find(b"\r\n", j) if head.find(b"\r\n", j) > 0 else len(head)]) if j >= 0 else 0
        end = i + 4 + n
        if len(buf) < end:
            return
        status = int(head[9:12])
        body = bytes(buf[i + 4 : end])
        del buf[:end]
        now = time.perf_counter()
        t_rx = self.t_rx if self.t_rx is not None and self.t_rx <= now else now
        self.t_rx = None
        cb, self.cb = self.cb, None
        if b"connection: close" in head or self.closed:
            self.close()
        else:
            self.idle_since = time.monotonic()
            self.client.idle.append(self)  # free for the next request
        if cb is not None:
            cb[0](status, body, t_rx)

    def usable(self) -> bool:
        """Fit for a request, as far as this end can tell without waiting: nothing to read
        on this idle connection, not even the end of the stream. Closed otherwise (the
        server closed it, reset it, or sent something unasked that would be taken for
        the next answer)."""
        if self.closed:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True  # nothing pending: open
        except OSError:
            pass
        self.close()
        return False

    # -- closing -------------------------------------------------------------------
    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            if self.out:
                self.loop.remove_writer(self.fd)
            self.fd = -1
            self.sock.close()
        self.client.conns.discard(self)

    def _lost(self, exc) -> None:
        self.close()
        cb, self.cb = self.cb, None
        if cb is not None:
            cb[1](ConnectionError(f"connection closed before the answer ({exc or 'end of stream'})"))


class HttpClient:
    """``await client.request("POST", "/v1/infer", body)`` -> (status, body bytes); or
    ``client.send(...)`` with callbacks, called as the answer is read (the load generator's
    path: no task and no future per request)."""

    # an idle connection older than this is checked before it is used (module docstring);
    # well below any server's keep-alive timeout, and above the gaps between requests
    # under load, so that a busy load generator makes no extra system call
    check_idle_s = 1.0

    def __init__(self, base_url: str):
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"unsupported URL {base_url!r}: use http://HOST:PORT")
        self.host = u.hostname
        self.port = u.port or 80
        self.hosthdr = f"{self.host}:{self.port}".encode()
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()  # every open connection, idle or not (closed by close())
        self.opened = 0
        self.stamped = 0  # reads that carried the kernel's receive time
        self._connecting: set[asyncio.Task] = set()

    def _write(self, c: _Conn, method: str, path: str, body: bytes, on_answer, on_error) -> None:
        c.cb = (on_answer, on_error)
        c.write(
            b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), self.hosthdr, len(body), body)
        )

    def send(self, method: str, path: str, body: bytes, on_answer, on_error) -> None:
        """Send one request on an idle keep-alive connection (a new one when none is idle,
        opened in the background); ``on_answer(status, body, t_rx)`` or ``on_error(exc)``
        is called once, from the event loop. ``t_rx``: when the answer reached this
        machine (``time.perf_counter()`` clock; see the module docstring)."""
        idle = self.idle
        while idle:
            c = idle.pop()
            if c.closed or (time.monotonic() - c.idle_since > self.check_idle_s and not c.usable()):
                continue
            self._write(c, method, path, body, on_answer, on_error)
            return
        t = asyncio.get_running_loop().create_task(self._open_and_send(method, path, body, on_answer, on_error))
        self._connecting.add(t)
        t.add_done_callback(self._connecting.discard)

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        err: OSError | None = None
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                err = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.opened += 1
            c = _Conn(self, sock, loop)
            self.conns.add(c)
            return c
        raise err or OSError(f"cannot connect to {self.host}:{self.port}")

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

        def answer(status, data, _t_rx):
            if not fut.done():
                fut.set_result((status, data))

        def error(exc):
            if not fut.done():
                fut.set_exception(exc)

        self.send(method, path, body, answer, error)
        return await fut

    def close(self) -> None:
        """Close every connection; a request still in flight gets its ``on_error``."""
        for c in list(self.conns):
            c._lost("the client was closed")
        self.idle.clear()
