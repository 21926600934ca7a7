"""The gateway's /v1/infer fast path (kairos.serve.fastpath) on raw sockets: answers in
request order with pipelining (mixed with requests for the ASGI app), Connection: close,
HTTP/1.0, Expect: 100-continue, an oversized body; the server keeps serving."""

from __future__ import annotations

import json
import socket

import pytest
from serve_helpers import Server

from kairos.serve.infer import MAX_BODY

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", "dien", "--config", "g4dn.xlarge=1,r5n.large=2", "--qos-ms", "35")
    yield s
    s.stop()


def _connect(srv) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def _post(size: int, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    body = b'{"size":%d}' % size
    return (
        b"POST /v1/infer HTTP/" + version + b"\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n" % len(body) + extra + b"\r\n" + body
    )


class _Reader:
    """Reads HTTP/1.1 responses (Content-Length bodies) off a socket, one at a time."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 16)
        self.buf += data
        return bool(data)

    def response(self) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), "connection closed before a response"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines[1:])}
        n = int(headers.get(b"content-length", b"0"))
        while len(self.buf) < n:
            assert self._fill(), "connection closed inside a body"
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self) -> bool:
        """True once the server has closed the connection (nothing more to read)."""
        return not self.buf and not self._fill()


def test_pipelined_answers_leave_in_request_order_with_asgi_requests_between(srv):
    c = _connect(srv)
    r = _Reader(c)
    # a large query first (it takes longest), small ones behind it, and requests for the
    # ASGI app (FastAPI) in between: every answer must come back in request order
    c.sendall(
        _post(1000)
        + _post(10)
        + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        + _post(20)
        + b"GET /v1/info HTTP/1.1\r\nhost: x\r\n\r\n"
        + _post(30)
    )
    sizes = []
    for expect in ("infer", "infer", "health", "infer", "info", "infer"):
        st, _, body = r.response()
        assert st == 200
        d = json.loads(body)
        if expect == "infer":
            sizes.append(d["size"])
        elif expect == "health":
            assert d["status"] == "ok"
        else:
            assert d["model"] == "dien"
    assert sizes == [1000, 10, 20, 30]
    # the connection stays usable
    c.sendall(_post(40))
    st, _, body = r.response()
    assert st == 200 and json.loads(body)["size"] == 40
    c.close()


def test_connection_close_and_http10_close_after_the_answer(srv):
    for req in (_post(50, b"connection: close\r\n"), _post(60, version=b"1.0")):
        c = _connect(srv)
        r = _Reader(c)
        c.sendall(req)
        st, headers, body = r.response()
        assert st == 200 and json.loads(body)["size"] in (50, 60)
        assert headers.get(b"connection") == b"close"
        assert r.closed()
        c.close()


def test_expect_100_continue_goes_through_the_asgi_app(srv):
    c = _connect(srv)
    r = _Reader(c)
    body = b'{"size":70}'
    c.sendall(b"POST /v1/infer HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nexpect: 100-continue\r\n\r\n" % len(body))
    st, _, _ = r.response()
    assert st == 100
    c.sendall(body)
    st, _, data = r.response()
    assert st == 200 and json.loads(data)["size"] == 70
    c.close()


def test_bad_and_oversized_bodies_answer_4xx_on_the_same_connection(srv):
    c = _connect(srv)
    r = _Reader(c)
    big = b"x" * (MAX_BODY + 1)
    c.sendall(
        b"POST /v1/infer HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(big)
        + big
        + b"POST /v1/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nnull!"
        + _post(80)
    )
    st, _, data = r.response()
    assert st == 413 and json.loads(data)["status"] == 413
    st, _, data = r.response()
    assert st == 400 and "malformed JSON" in json.loads(data)["error"]
    st, _, data = r.response()
    assert st == 200 and json.loads(data)["size"] == 80
    c.close()
    assert srv.health()["status"] == "ok"


# -- in process: the protocol with a stub gateway, answers completing out of order -----------


class _StubMetrics:
    def __init__(self):
        self.codes = []

    def code(self, status):
        self.codes.append(status)


class _StubGateway:
    """submit_nowait hands out futures the test completes in any order."""

    max_size = 1000

    class cfg:
        model = "stub"
        mode = "emulated"

    def __init__(self, loop):
        self.loop = loop
        self.futures = []
        self.metrics = _StubMetrics()

    def bucket_of(self, size):
        return 0

    def submit_nowait(self, size, bucket, payload=b"", waiter=None):
        f = self.loop.create_future() if waiter is None else waiter
        self.futures.append((size, f))
        return f


class _Transport:
    def __init__(self):
        self.out = b""
        self.closing = False
        self.paused = False

    def write(self, data):
        self.out += data

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


def _protocol(gw, asgi=None, cls=None):
    """The fast-path protocol (or ``cls``, a subclass) on a stub transport, configured as
    kairos serve configures uvicorn: (protocol, transport, uvicorn's server state)."""
    import uvicorn
    from uvicorn.server import ServerState

    from kairos.serve.app import FastInfer
    from kairos.serve.fastpath import FastInferProtocol

    cfg = uvicorn.Config(FastInfer(asgi, gw), lifespan="off", log_level="warning", proxy_headers=False)
    cfg.load()
    state = ServerState()
    p = (cls or FastInferProtocol)(cfg, state, {}, gw.loop)
    t = _Transport()
    p.connection_made(t)
    return p, t, state


def test_fast_answers_completed_out_of_order_are_written_in_request_order():
    import asyncio

    async def go():
        gw = _StubGateway(asyncio.get_running_loop())
        asgi_calls = []

        async def asgi(scope, receive, send):  # what the FastAPI app would be
            asgi_calls.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})

        p, t, _ = _protocol(gw, asgi)
        p.data_received(_post(1) + _post(2) + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" + _post(3))
        assert [s for s, _ in gw.futures] == [1, 2]  # the third waits behind the ASGI request
        assert t.out == b"" and asgi_calls == []  # nothing answered ahead of query 1
        done = {"result": b"", "instance": "i#0", "size": 0}
        gw.futures[1][1].set_result({**done, "size": 2})
        await asyncio.sleep(0)
        assert t.out == b""  # query 2 is done but query 1 is not: nothing written yet
        gw.futures[0][1].set_result({**done, "size": 1})
        for _ in range(20):
            await asyncio.sleep(0)
        assert asgi_calls == ["/healthz"]  # started once the fast answers before it were out
        # and the query behind it went the ASGI way (it arrived behind an unfinished ASGI request)
        assert [s for s, _ in gw.futures] == [1, 2, 3]
        gw.futures[2][1].set_result({**done, "size": 3})
        for _ in range(20):
            await asyncio.sleep(0)
        answers = t.out.split(b"HTTP/1.1 ")[1:]
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"200 OK"] * 4
        sizes = [json.loads(a.rsplit(b"\r\n\r\n", 1)[1]).get("size") for a in answers]
        assert sizes == [1, 2, None, 3]
        assert gw.metrics.codes == [200, 200, 200]  # every /v1/infer answer counted once
        assert not t.closing

    asyncio.run(go())


def test_a_fast_query_cancelled_at_shutdown_is_answered_503_once():
    import asyncio

    async def go():
        gw = _StubGateway(asyncio.get_running_loop())
        p, t, state = _protocol(gw)
        p.data_received(_post(5))
        ((_, waiter),) = gw.futures
        assert state.tasks == {waiter}  # uvicorn's graceful shutdown waits for it
        p.shutdown()  # what uvicorn does on SIGTERM: close after the owed answer
        assert not t.closing
        assert waiter.cancel()  # the graceful-shutdown timeout
        assert b"HTTP/1.1 503 " in t.out and t.closing and not state.tasks
        # done: the gateway, which completes only waiters not done, will leave it alone
        assert waiter.done() and not waiter.cancel()
        assert t.out.count(b"HTTP/1.1 ") == 1

    asyncio.run(go())


def test_uvicorn_still_has_the_private_parts_the_fast_path_uses():
    """FastInferProtocol subclasses uvicorn's HttpToolsProtocol and relies on parts of it
    that are not uvicorn's public API (pyproject pins uvicorn and httptools to the versions
    this was checked with): its constructor's arguments, its parser callbacks, the
    per-request state it keeps (url, parser, expect_100_continue, cycle), the server's set
    of tasks, and what uvicorn does with the request cycle that _Owed stands in for
    (shutdown: keep_alive; connection_lost: response_complete, disconnected, message_event)."""
    import asyncio
    import inspect

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from kairos.serve.fastpath import FastInferProtocol, _Owed

    assert list(inspect.signature(HttpToolsProtocol.__init__).parameters) == [
        "self",
        "config",
        "server_state",
        "app_state",
        "_loop",
    ]
    for name in (
        "on_headers_complete",
        "on_body",
        "on_message_complete",
        "on_response_complete",
        "shutdown",
        "connection_lost",
    ):
        assert callable(getattr(HttpToolsProtocol, name, None)), name

    seen = []

    class Recording(FastInferProtocol):
        def on_headers_complete(self):
            seen.append((self.url, self.parser.get_method(), self.parser.should_keep_alive(), self.expect_100_continue))
            super().on_headers_complete()

    async def go():
        gw = _StubGateway(asyncio.get_running_loop())
        p, t, state = _protocol(gw, cls=Recording)
        assert p.gw is gw and p.transport is t and p.tasks is state.tasks and p.cycle is None
        p.data_received(_post(5))
        assert seen == [(b"/v1/infer", b"POST", True, False)]
        ((_, waiter),) = gw.futures
        assert isinstance(p.cycle, _Owed) and state.tasks == {waiter}
        p.shutdown()  # uvicorn: the cycle is not complete, so it asks for a close after the answer
        assert p.cycle.keep_alive is False and not t.closing
        p.connection_lost(None)  # uvicorn marks the cycle disconnected and wakes it
        assert p.cycle.disconnected is True

    asyncio.run(go())
