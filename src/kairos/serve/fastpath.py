"""``POST /v1/infer`` without an ASGI task: uvicorn's httptools protocol, hot path taken out.

Every query crosses the gateway's HTTP layer twice, and on a small machine its CPU time
is part of every query's latency (the event loop is one thread). Under uvicorn each
request builds an ASGI scope, a request cycle with its own ``asyncio.Event``, a task,
and ``receive``/``send`` message dictionaries. :class:`FastInferProtocol` is uvicorn's
``HttpToolsProtocol`` (same parser, keep-alive, flow control, shutdown) with one change:
a ``POST /v1/infer`` is read straight from the parser callbacks, queued with
:func:`kairos.serve.infer.start_infer` (the validation and answers of the documented
route, not a copy), and answered with one write in the call that completes the query
(:class:`_Answer` stands in for a future).
Every other request -- and a ``/v1/infer`` that sends ``Expect: 100-continue`` or
arrives behind an unfinished ASGI request -- goes through uvicorn and FastAPI as
before.

Answers leave a connection in request order (HTTP/1.1 pipelining): fast answers wait
in ``slots`` for the ones before them, and while any is owed a :class:`_Owed` stands in
uvicorn's ``cycle``, so that uvicorn queues a request for the ASGI app behind them
(its own pipelining) instead of answering it first. Graceful shutdown waits for them:
uvicorn waits for open connections, and a connection closes after its last owed answer.
"""

from __future__ import annotations

from collections import deque
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kairos.serve.app import FastInfer
from kairos.serve.infer import MAX_BODY, error_body, finish_infer, start_infer

_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
    return line


def response_bytes(status: int, body: bytes, headers: list, keep_alive: bool) -> bytes:
    """One HTTP/1.1 JSON response, ready to write."""
    extra = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return b"".join(
        (
            _status_line(status),
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n",
            extra,
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            body,
        )
    )


class _NoEvent:
    def set(self) -> None:
        pass


class _Owed:
    """Takes the place of uvicorn's request cycle while fast answers are owed."""

    response_complete = False
    disconnected = False

    def __init__(self):
        self.keep_alive = True  # uvicorn's shutdown() sets False: close after the last answer
        self.message_event = _NoEvent()


class _Answer:
    """What the gateway completes for a fast query, in place of a future: the answer is
    written in the same call, not one event-loop turn later through a done callback.
    Enough of a future's interface for :meth:`Gateway.submit_nowait`,
    :func:`kairos.serve.infer.finish_infer` and uvicorn's shutdown (``cancel``)."""

    __slots__ = ("proto", "slot", "_result", "_exc", "_state")

    def __init__(self, proto: FastInferProtocol, slot: list):
        self.proto = proto
        self.slot = slot
        self._result = self._exc = None
        self._state = 0  # 0 pending, 1 done, 2 cancelled

    def done(self) -> bool:
        return self._state != 0

    def cancelled(self) -> bool:
        return self._state == 2

    def exception(self):
        return self._exc

    def result(self):
        return self._result

    def set_result(self, result) -> None:
        self._result = result
        self._finish(1)

    def set_exception(self, exc) -> None:
        self._exc = exc
        self._finish(1)

    def cancel(self, msg=None) -> bool:
        if self._state:
            return False
        self._finish(2)  # uvicorn's graceful-shutdown timeout: answered 503, the query runs on unheard
        return True

    def _finish(self, state: int) -> None:
        self._state = state
        p = self.proto
        p.tasks.discard(self)
        p._answer(self.slot, finish_infer(self))


class FastInferProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol serving ``POST /v1/infer`` directly (module docstring)."""

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        app = config.loaded_app
        while not isinstance(app, FastInfer) and hasattr(app, "app"):  # uvicorn's middleware, if any
            app = app.app
        self.gw = app.gw if isinstance(app, FastInfer) else None  # None: everything through ASGI
        self.fast_body: bytearray | None = None  # the body of the fast request being read
        self.fast_too_large = False
        self.fast_keep_alive = True
        self.slots: deque = deque()  # [answer bytes or None, keep-alive] per fast request, in order
        self.owed: _Owed | None = None

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        if (
            self.gw is not None
            and self.url == b"/v1/infer"
            and self.parser.get_method() == b"POST"
            and not self.expect_100_continue
            and (cycle is None or cycle.response_complete or cycle is self.owed)
        ):
            self.fast_body = bytearray()
            self.fast_too_large = False
            self.fast_keep_alive = self.parser.should_keep_alive()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        fb = self.fast_body
        if fb is None:
            super().on_body(body)
        elif not self.fast_too_large:
            if len(fb) + len(body) > MAX_BODY:
                self.fast_too_large = True
                self.fast_body = bytearray()
            else:
                fb += body

    def on_message_complete(self) -> None:
        if self.fast_body is None:
            super().on_message_complete()
            return
        body, self.fast_body = bytes(self.fast_body), None
        if self.owed is None:
            self.owed = _Owed()
        self.cycle = self.owed  # type: ignore[assignment]  # an _Owed stands in for uvicorn's cycle (module docstring)
        slot = [None, self.fast_keep_alive]
        self.slots.append(slot)
        gw = self.gw
        if self.fast_too_large:
            gw.metrics.rejected.labels("bad_request").inc()
            self._answer(slot, (413, error_body(413, f"body larger than {MAX_BODY} bytes"), []))
            return
        waiter = _Answer(self, slot)
        answer, fut = start_infer(body, gw, waiter)
        if fut is None:
            self._answer(slot, answer)
            return
        # uvicorn's graceful shutdown waits for these (and cancels them on timeout); an _Answer
        # has the part of a task's interface that it uses
        self.tasks.add(waiter)  # type: ignore[arg-type]

    def _answer(self, slot: list, answer: tuple) -> None:
        status, body, headers = answer
        self.gw.metrics.code(status)
        slot[0] = response_bytes(status, body, headers, slot[1])
        slots = self.slots
        t = self.transport
        while slots and slots[0][0] is not None:
            data, keep = slots.popleft()
            if not t.is_closing():
                t.write(data)
                if not keep:
                    t.close()
        if slots:
            return
        owed, self.owed = self.owed, None
        if self.cycle is owed:
            self.cycle = None  # type: ignore[assignment]  # uvicorn's own "no cycle" (its annotation omits None)
        if owed is not None and not owed.keep_alive and not t.is_closing():
            t.close()  # shutting down: this connection's last answer is out
        # what uvicorn does after an answer: resume reading, start a queued ASGI request
        # or arm the keep-alive timeout
        self.on_response_complete()
