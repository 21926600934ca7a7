"""Units of the serving package: transport framing, request validation, CLI input errors."""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from serve_helpers import SleepBackend, worker_peer

from kairos.cli.main import cli
from kairos.profiles import builtin_catalogue
from kairos.serve import transport as tp
from kairos.serve.loadgen import schedule
from kairos.workload.sizes import parse_size_mix

pytestmark = pytest.mark.serve


def test_frames_roundtrip_in_any_chunking():
    frames = [
        tp.encode_hello(3, 1234, b'{"mode":"emulated"}'),
        tp.encode_query(2**40 + 7, 120, 11, b"[[1,2]]"),
        tp.encode_result(99, 12.5, True, b"[0.5]"),
        tp.encode_result(100, 3.25, False, b"bad", 7.75),
        tp.encode_shutdown(),
    ]
    stream = b"".join(frames)
    for chunk in (1, 3, 7, len(stream)):
        dec = tp.FrameDecoder()
        got = []
        for i in range(0, len(stream), chunk):
            got += dec.feed(stream[i : i + chunk])
        assert [k for k, _ in got] == [tp.HELLO, tp.QUERY, tp.RESULT, tp.RESULT, tp.SHUTDOWN]
        assert tp.HELLO_BODY.unpack_from(got[0][1]) == (3, 1234)
        assert got[0][1][tp.HELLO_BODY.size :] == b'{"mode":"emulated"}'
        assert tp.QUERY_BODY.unpack_from(got[1][1]) == (2**40 + 7, 120, 11, 0.0)
        assert got[1][1][tp.QUERY_BODY.size :] == b"[[1,2]]"
        assert tp.RESULT_BODY.unpack_from(got[2][1]) == (99, 12.5, 1, 0.0)
        assert tp.RESULT_BODY.unpack_from(got[3][1]) == (100, 3.25, 0, 7.75)
        assert got[3][1][tp.RESULT_BODY.size :] == b"bad"
        assert got[4][1] == b""
        assert dec.buf == bytearray()


def test_decoder_rejects_garbage_length():
    with pytest.raises(ValueError):
        tp.FrameDecoder().feed(b"\x00\x00\x00\x00\x02")


class _FakeGw:
    class cfg:
        model = "rm2"
        mode = "emulated"

    def __init__(self):
        p = builtin_catalogue().profile("rm2")
        self.profile = p
        self.max_size = p.max_batch

    def bucket_of(self, size):
        return int(self.profile.bucket_of([size])[0])


@pytest.mark.parametrize(
    "body,status,needle",
    [
        (b"", 400, "empty body"),
        (b'{"size": ', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"size": "ten"}', 422, "whole number from 1 to"),
        (b'{"size": 2.5}', 422, "whole number from 1 to"),
        (b'{"size": true}', 422, "got true (a boolean)"),
        (b'{"size": 0}', 422, "empty batch"),
        (b'{"samples": []}', 422, "empty batch"),
        (b'{"samples": "abc"}', 422, "list"),
        (b'{"size": 1001}', 422, "beyond the largest profiled size 1000"),
        (b'{"sizes": 3}', 422, "unknown field"),
        (b'{"size": 2, "samples": [[1]]}', 422, "does not match"),
        (b"{}", 422, "samples"),
    ],
)
def test_parse_query_rejects_with_clear_message(body, status, needle):
    from kairos.serve.infer import BadRequest, parse_query

    with pytest.raises(BadRequest) as ei:
        parse_query(body, _FakeGw())
    assert ei.value.status == status
    assert needle in str(ei.value)


def test_parse_query_accepts_size_and_samples():
    from kairos.serve.infer import parse_query

    gw = _FakeGw()
    assert parse_query(b'{"size": 1000}', gw) == (1000, len(gw.profile.batches) - 1, b"")
    size, bucket, payload = parse_query(b'{"samples": [[1, 2], [3, 4], [5, 6]]}', gw)
    assert (size, bucket, payload) == (3, 0, b"")  # emulated: samples are not shipped to the worker
    for s in (1, 10, 11, 95, 999):
        assert gw.bucket_of(s) == parse_query(b'{"size": %d}' % s, gw)[1]


def test_schedule_is_seeded_poisson_at_the_rate():
    mix = parse_size_mix("deeprecsys")
    t1, s1 = schedule(500.0, 20.0, mix, seed=3)
    t2, s2 = schedule(500.0, 20.0, mix, seed=3)
    assert np.array_equal(t1, t2) and np.array_equal(s1, s2)
    assert abs(len(t1) / 20.0 - 500.0) < 500.0 * 0.05
    assert t1.max() < 20.0 and np.all(np.diff(t1) >= 0)
    gaps = np.diff(t1)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1  # exponential gaps: cv = 1
    t3, _ = schedule(250.0, 20.0, mix, seed=3)  # same pattern, stretched
    assert np.allclose(t3[:100], 2 * t1[:100])


def test_serve_input_errors_exit_2():
    r = CliRunner().invoke(cli, ["serve", "--model", "rm2", "--qos-ms", "350"], standalone_mode=False)
    assert "exactly one of --config" in str(r.exception)
    r = CliRunner().invoke(cli, ["serve", "--model", "rm2", "--config", "nope=2"], standalone_mode=False)
    assert "nope" in str(r.exception)
    r = CliRunner().invoke(
        cli, ["serve", "--model", "dien", "--config", "g4dn.xlarge=1", "--qos-margin-ms", "40"], standalone_mode=False
    )
    assert "--qos-margin-ms must be >= 0 and below the QoS target (35 ms)" in str(r.exception)


def test_torch_workers_without_models_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kairos.models", None)  # import fails as when torch is absent
    r = CliRunner().invoke(
        cli, ["serve", "--model", "rm2", "--config", "g4dn.xlarge=1", "--workers", "torch"], standalone_mode=False
    )
    assert "pip install -e '.[models]'" in str(r.exception)


def test_cli_main_exit_code_2(capsys):
    from kairos.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(["loadgen", "--url", "http://127.0.0.1:9", "--duration", "1"])
    assert ei.value.code == 2
    assert "--qps" in capsys.readouterr().err


def test_core_import_does_not_pull_serving_deps():
    import subprocess

    code = "import sys, kairos, kairos.dispatch, kairos.sim; print(any(m in sys.modules for m in ('fastapi','uvicorn','prometheus_client','aiohttp')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_offloader_runs_calls_in_its_helper_reports_errors_and_survives_its_death():
    import os
    import signal

    from kairos.serve.launcher import pid_alive
    from kairos.serve.offload import Offloader

    class Log:
        def __init__(self):
            self.events = []

        def event(self, name, **kw):
            self.events.append((name, kw))

    async def until(cond, timeout=10.0):
        t_end = asyncio.get_running_loop().time() + timeout
        while not cond() and asyncio.get_running_loop().time() < t_end:
            await asyncio.sleep(0.02)

    async def go():
        log, got = Log(), []
        o = Offloader(asyncio.get_running_loop(), log)
        await o.start()
        first = o.pid
        assert first != os.getpid() and pid_alive(first)
        o(pow, (2, 10), got.append)
        o(divmod, (1, 0), got.append)  # raises in the helper: logged, not delivered
        await until(lambda: len(log.events) >= 2)
        os.kill(first, signal.SIGKILL)
        await until(lambda: o.pid != first and o.restarts == 1 and o.proc.returncode is None)
        await until(lambda: -1 not in o.pending)  # the new helper is warm
        o(pow, (3, 3), got.append)
        await until(lambda: len(got) == 2)
        last = o.pid
        await o.close()
        return got, [e for e, _ in log.events], log.events, pid_alive(first), pid_alive(last)

    got, names, events, first_alive, last_alive = asyncio.run(go())
    assert got == [1024, 27]
    assert names.count("offload_done") == 2 and "offload_helper_restarted" in names
    failed = [kw for e, kw in events if e == "offload_failed"]
    assert failed and failed[0]["task"] == "divmod" and "ZeroDivisionError" in failed[0]["error"]
    assert not first_alive and not last_alive


def test_load_generator_accounts_answers_errors_and_losses_from_its_callbacks():
    """A fake gateway answers one query, closes the connection on one, never answers one,
    refuses one (503) and answers one with a 200 that is not a gateway's answer:
    completed / errors / lost and the error kinds come out exact."""
    import asyncio
    import json as _json

    from kairos.serve.loadgen import run_load
    from kairos.workload.sizes import parse_size_mix

    async def handle(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = (
                int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if b"content-length:" in head.lower()
                else 0
            )
            body = await reader.readexactly(n) if n else b""
            if head.startswith(b"GET /v1/info"):
                out, st = _json.dumps({"qos_ms": 10.0, "max_size": 1000}).encode(), b"200 OK"
            else:
                size = _json.loads(body)["size"]
                if size == 20:
                    writer.close()  # the connection drops before the answer
                    return
                if size == 30:
                    await asyncio.sleep(3600)  # never answered
                if size == 40:
                    out, st = b'{"error":"queue full","status":503}', b"503 Service Unavailable"
                elif size == 50:
                    out, st = b"{}", b"200 OK"
                else:
                    out = _json.dumps(
                        {
                            "wait_ms": 1.0,
                            "service_ms": 2.0,
                            "gateway_latency_ms": 3.5,
                            "instance": "i#0",
                            "instance_index": 0,
                            "attempts": 1,
                        }
                    ).encode()
                    st = b"200 OK"
            writer.write(b"HTTP/1.1 " + st + b"\r\ncontent-length: %d\r\n\r\n" % len(out) + out)

    async def go():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run_load(
                f"http://127.0.0.1:{port}",
                100.0,
                0.05,
                parse_size_mix("deeprecsys"),
                drain_timeout_s=0.5,
                times=[0.0, 0.001, 0.002, 0.003, 0.004],
                sizes=[10, 20, 30, 40, 50],
            )
        finally:
            server.close()

    r = asyncio.run(go())
    assert (r.sent, r.completed, r.errors, r.lost) == (5, 1, 3, 1)
    assert r.error_kinds == {"ConnectionError": 1, "503": 1, "bad answer: KeyError": 1}
    assert r.qos_met_fraction == 0.2 and r.served_by == {"i#0": 1}
    assert list(r.records["status"]) == [200, -1, 0, 503, -1]


def test_http_client_latency_ends_when_the_answer_arrives_not_when_it_is_read():
    """The answer arrives while the client's event loop is blocked for 80 ms: on Linux the
    kernel's receive time (what a latency ends at) is close to the send, the read is not."""
    import socket
    import threading
    import time

    from kairos.serve.httpclient import HttpClient

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve_one():  # a server in another thread: it answers while the client's loop sleeps
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            conn.recv(1)  # until the client closes

    th = threading.Thread(target=serve_one, daemon=True)
    th.start()
    keeper = socket.socket()  # keeps the kernel's receive timestamps on during the test
    stamps = _kernel_stamps_tcp(keeper)

    async def go():
        client = HttpClient(f"http://127.0.0.1:{port}")
        try:
            await client.warm(1)
            got = asyncio.get_running_loop().create_future()
            t_send = time.perf_counter()
            client.send(
                "GET",
                "/",
                b"",
                lambda st, body, t_rx: got.set_result((st, body, t_rx, time.perf_counter())),
                got.set_exception,
            )
            time.sleep(0.08)  # the client's loop is busy while the answer comes in
            return t_send, await asyncio.wait_for(got, 5), client.stamped
        finally:
            client.close()

    try:
        t_send, (st, body, t_rx, t_read), stamped = asyncio.run(go())
    finally:
        srv.close()
        keeper.close()
        th.join(5)
    assert (st, body) == (200, b"{}")
    assert t_read - t_send >= 0.08 and t_send <= t_rx <= t_read
    if stamps:  # stamped by the kernel on arrival, during the 80 ms block
        assert stamped >= 1 and t_rx - t_send < 0.05
    else:  # no kernel timestamps here (not Linux, or a sandboxed kernel): the read time
        assert stamped == 0 and t_read - t_rx < 0.001


def _kernel_stamps_tcp(keeper) -> bool:
    """Whether this kernel delivers SO_TIMESTAMPNS on a TCP socket, probed directly. Linux
    turns receive timestamps on for the whole stack a moment after a first socket asks
    (deferred work): ``keeper`` asks first and stays open, and the probe retries for 1 s."""
    import socket
    import time

    from kairos.serve import rxtime

    if not rxtime.enable(keeper):
        return False
    srv = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    try:
        if not rxtime.enable(b):
            return False
        for _ in range(100):
            a.sendall(b"x")
            if rxtime.recv(b, 16)[1] is not None:
                return True
            time.sleep(0.01)
        return False
    except OSError:
        return False
    finally:
        a.close()
        b.close()
        srv.close()


def test_http_client_connection_writes_everything_when_the_kernel_takes_it_in_parts():
    """A write larger than the socket's buffers goes out in parts, in order, from the
    event loop's writer callback."""
    import socket

    from kairos.serve.httpclient import HttpClient, _Conn

    async def go():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.setblocking(False)
        b.setblocking(False)
        c = _Conn(HttpClient("http://127.0.0.1:1"), a, loop)
        data = bytes(range(256)) * 8192  # 2 MiB
        c.write(data[:1000])
        c.write(data[1000:])
        assert c.out  # the kernel did not take it all at once
        got = bytearray()
        while len(got) < len(data):
            got += await loop.sock_recv(b, 1 << 16)
        c.close()
        b.close()
        return bytes(got) == data, c.closed

    assert asyncio.run(go()) == (True, True)


def test_http_client_does_not_send_on_a_connection_the_server_closed_while_it_was_busy():
    """The server closes an idle keep-alive connection (its keep-alive timeout) while the
    client's event loop is busy and has not read that close: the next request goes out on
    a new connection and is answered. Without the check before reuse it fails unanswered
    (the control), an error the server never saw."""
    import socket
    import threading
    import time

    from kairos.serve.httpclient import HttpClient

    def run(check_idle_s):
        srv = socket.create_server(("127.0.0.1", 0))
        may_close, closed = threading.Event(), threading.Event()

        def serve():  # answers one request per connection, then closes it as a keep-alive timeout would
            for _ in range(2):
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    may_close.wait(5)
                closed.set()

        th = threading.Thread(target=serve, daemon=True)
        th.start()

        async def go():
            client = HttpClient(f"http://127.0.0.1:{srv.getsockname()[1]}")
            client.check_idle_s = check_idle_s
            try:
                first = await client.request("POST", "/v1/infer", b"{}")
                # from here until the next request the loop is blocked (busy): the server
                # closes the connection and the close arrives, but nothing reads it
                may_close.set()
                assert closed.wait(5)
                time.sleep(0.1)
                got = asyncio.get_running_loop().create_future()
                client.send(
                    "POST",
                    "/v1/infer",
                    b"{}",
                    lambda st, body, _t: got.set_result((st, body)),
                    lambda exc: got.set_result("error"),
                )  # sent now, before the loop runs again
                second = await asyncio.wait_for(got, 5)
                return first, second, client.opened
            finally:
                client.close()

        try:
            return asyncio.run(go())
        finally:
            srv.close()
            th.join(5)

    assert run(0.05) == ((200, b"{}"), (200, b"{}"), 2)
    assert run(float("inf")) == ((200, b"{}"), "error", 1)  # control: the old behaviour


def test_http_client_close_fails_a_request_in_flight():
    """Closing the client does not leave a request's callback (or request()'s future) hanging."""
    from kairos.serve.httpclient import HttpClient

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(3600)  # never answers

    async def go():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = HttpClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        try:
            pending = asyncio.ensure_future(client.request("POST", "/v1/infer", b"{}"))
            await asyncio.sleep(0.05)
            assert not pending.done()
            client.close()
            with pytest.raises(ConnectionError, match="the client was closed"):
                await asyncio.wait_for(pending, 1)
            return client.conns
        finally:
            server.close()

    assert asyncio.run(go()) == set()


def test_worker_reports_how_long_a_query_sent_ahead_waited_behind_the_one_before():
    """Two queries reach a worker at once: it serves them in turn, and the second's result
    says it was held about as long as the first took (from the kernel's receive stamp),
    which the gateway counts as wait; the first was taken up at once."""
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    keeper = socket.socket()
    stamps = _kernel_stamps_tcp(keeper)
    try:
        with worker_peer(srv, f"127.0.0.1:{srv.getsockname()[1]}", SleepBackend(0.03)) as peer:
            peer.conn.sendall(tp.encode_query(1, 10, 0) + tp.encode_query(2, 10, 0))
            results = peer.results_until(2)
            peer.conn.sendall(tp.encode_shutdown())
    finally:
        srv.close()
        keeper.close()
    (q1, svc1, ok1, held1), (q2, svc2, ok2, held2) = results
    assert (q1, q2, ok1, ok2) == (1, 2, 1, 1) and svc1 >= 29.0 and svc2 >= 29.0
    if stamps:
        assert held1 < 10.0 and svc1 - 5.0 <= held2 <= svc1 + 15.0
    else:  # no kernel stamps: unknown, reported as 0 (the gateway then ends the wait at the send)
        assert held1 == held2 == 0.0
