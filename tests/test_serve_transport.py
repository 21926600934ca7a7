"""The gateway-worker link: real worker processes over a Unix domain socket (the default)
and over TCP; a worker on a Unix socket reports how long a query sent ahead waited."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time

import pytest
from serve_helpers import SleepBackend, worker_peer

from kairos.profiles import builtin_catalogue
from kairos.serve import transport as tp
from kairos.serve.gateway import Gateway, GatewayConfig
from kairos.serve.logs import EventLog
from kairos.serve.workers import LocalSupervisor

pytestmark = pytest.mark.serve


@pytest.mark.parametrize("link", ["unix", "tcp"])
def test_gateway_serves_through_worker_processes_on_either_link(link):
    async def go():
        profile = builtin_catalogue().profile("dien")
        cfg = GatewayConfig(model="dien", config={"g4dn.xlarge": 1, "r5n.large": 1}, qos_ms=35.0)
        sup = LocalSupervisor.for_gateway(cfg, transport=link)
        gw = Gateway(profile, cfg, sup, EventLog(io.StringIO()))
        await gw.start()
        try:
            address = sup.connect_address
            unix_dir = sup.unix_dir
            answers = await asyncio.wait_for(
                asyncio.gather(*(gw.submit_nowait(s, gw.bucket_of(s)) for s in (10, 100, 200))), 30
            )
        finally:
            await gw.stop()
        return address, unix_dir, answers

    address, unix_dir, answers = asyncio.run(go())
    if link == "unix":
        assert address.startswith("unix:") and unix_dir is not None
        assert not os.path.exists(unix_dir)  # removed with the gateway
    else:
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0 and unix_dir is None
    assert sorted(a["size"] for a in answers) == [10, 100, 200]
    assert all(a["service_ms"] > 0 and a["instance_type"] in ("g4dn.xlarge", "r5n.large") for a in answers)


def test_worker_on_a_unix_socket_reports_how_long_a_query_sent_ahead_waited(tmp_path):
    """No kernel stamps on a Unix socket: the worker measures from the send time in the
    frame (same machine, same clock). A second query sent 10 ms into a 40 ms first one
    reports about 30 ms held; the first, taken up at once, about 0."""

    path = str(tmp_path / "w.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        with worker_peer(srv, f"unix:{path}", SleepBackend(0.04)) as peer:
            peer.conn.sendall(tp.encode_query(1, 10, 0, sent=time.monotonic()))
            time.sleep(0.01)
            peer.conn.sendall(tp.encode_query(2, 10, 0, sent=time.monotonic()))
            peer.results_until(2)
            peer.conn.sendall(tp.encode_query(3, 10, 0))  # no send time given: 0, not a guess
            results = peer.results_until(3)
            peer.conn.sendall(tp.encode_shutdown())
    finally:
        srv.close()
    (q1, svc1, ok1, held1), (q2, svc2, ok2, held2), (q3, _, _, held3) = results
    assert (q1, q2, q3, ok1, ok2) == (1, 2, 3, 1, 1)
    assert svc1 >= 39.0 and svc2 >= 39.0
    assert held1 < 5.0 and held3 == 0.0
    assert svc1 - 10.0 - 8.0 <= held2 <= svc1 - 10.0 + 8.0  # came in ~10 ms after the first started


def test_unknown_worker_transport_is_refused():
    with pytest.raises(ValueError, match="unix' or 'tcp"):
        LocalSupervisor([], "emulated", "udp")


def test_gateway_falls_back_to_tcp_where_no_unix_socket_can_be_made(tmp_path, monkeypatch):
    """A temporary directory too deep for a socket's path (over ~108 bytes): the gateway
    says so in its log and serves over TCP instead of failing to start."""
    import tempfile

    from kairos.serve import workers

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(workers.tempfile, "mkdtemp", lambda prefix="": real_mkdtemp(prefix=prefix, dir=deep))
    log = io.StringIO()

    async def go():
        profile = builtin_catalogue().profile("dien")
        cfg = GatewayConfig(model="dien", config={"r5n.large": 1}, qos_ms=35.0)
        sup = LocalSupervisor.for_gateway(cfg)
        gw = Gateway(profile, cfg, sup, EventLog(log))
        await gw.start()
        try:
            address = sup.connect_address
            answer = await asyncio.wait_for(gw.submit_nowait(10, gw.bucket_of(10)), 30)
        finally:
            await gw.stop()
        return address, answer

    address, answer = asyncio.run(go())
    assert not address.startswith("unix:") and answer["size"] == 10
    assert '"event": "worker_transport_fallback"' in log.getvalue()
    assert list(deep.iterdir()) == []  # the directory made for the socket was removed
