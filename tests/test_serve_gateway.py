"""The gateway end to end (emulated workers): answers, metrics, bad requests, overload, SIGTERM, loadgen."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp
import numpy as np
import pytest
from serve_helpers import Server, metric, pid_alive

from kairos.serve.loadgen import max_qps_search, run_load
from kairos.workload.sizes import parse_size_mix

pytestmark = pytest.mark.serve

DIEN_SMALL = ("--model", "dien", "--config", "g4dn.xlarge=1,r5n.large=2", "--qos-ms", "35")


@pytest.fixture(scope="module")
def dien():
    s = Server(*DIEN_SMALL)
    yield s
    s.stop()


async def _post_many(url: str, bodies: list[bytes], concurrency: int = 50) -> list[tuple[int, dict]]:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as s:

        async def one(b):
            async with sem:
                async with s.post(url + "/v1/infer", data=b, headers={"content-type": "application/json"}) as r:
                    return r.status, json.loads(await r.read())

        return await asyncio.gather(*(one(b) for b in bodies))


def test_query_answer_carries_instance_wait_and_service(dien):
    ((st, d),) = asyncio.run(_post_many(dien.url, [b'{"size": 120}']))
    assert st == 200
    assert d["instance"] in ("g4dn.xlarge#0", "r5n.large#0", "r5n.large#1")
    assert d["mode"] == "emulated" and d["result"] is None and d["attempts"] == 1
    assert d["service_ms"] > 0 and d["wait_ms"] >= 0
    assert d["gateway_latency_ms"] >= d["service_ms"] + d["wait_ms"] - 0.01
    assert d["qos_met"] == (d["gateway_latency_ms"] <= 35.0)
    # samples instead of a size: size = number of samples
    ((st, d),) = asyncio.run(_post_many(dien.url, [json.dumps({"samples": [[0.1, 2]] * 7}).encode()]))
    assert st == 200 and d["size"] == 7
    h = dien.health()
    assert h["mode"] == "emulated" and "EMULATED" in h["emulation"]
    schema = json.loads(__import__("urllib.request").request.urlopen(dien.url + "/openapi.json").read())
    assert "/v1/infer" in schema["paths"]


def test_malformed_requests_all_4xx_and_server_keeps_serving(dien):
    bad = [
        b"",
        b'{"size": ',
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"size": "ten"}',
        b'{"size": 2.5}',
        b'{"size": true}',
        b'{"size": 0}',
        b'{"size": -5}',
        b'{"samples": []}',
        b'{"samples": "abc"}',
        b'{"size": 100000}',
        b'{"sizes": 3}',
        b'{"size": 2, "samples": [[1]]}',
        b"{}",
        b"null",
    ]
    bodies = [bad[i % len(bad)] for i in range(1000)]
    before = dien.metrics()
    try:
        base = metric(before, "kairos_rejected_total", 'reason="bad_request"')
    except KeyError:
        base = 0.0
    answers = asyncio.run(_post_many(dien.url, bodies))
    statuses = [s for s, _ in answers]
    assert len(statuses) == 1000
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    assert all(d["error"] and d["status"] == s for s, d in answers)
    assert metric(dien.metrics(), "kairos_rejected_total", 'reason="bad_request"') - base == 1000
    ok = asyncio.run(_post_many(dien.url, [b'{"size": 50}'] * 20))
    assert [s for s, _ in ok] == [200] * 20
    assert dien.health()["status"] == "ok"


def test_unknown_routes_and_methods_answer_in_the_error_format_and_are_counted(dien):
    async def go():
        async with aiohttp.ClientSession() as s:
            out = []
            for method, path in (
                ("POST", "/v1/nope"),
                ("GET", "/nope"),
                ("GET", "/v1/infer"),
                ("PUT", "/v1/infer"),
                ("POST", "/healthz"),
            ):
                async with s.request(method, dien.url + path) as r:
                    out.append((r.status, json.loads(await r.read())))
            return out

    def count(m, code):
        try:
            return metric(m, "kairos_requests_total", f'code="{code}"')
        except KeyError:
            return 0.0

    before = dien.metrics()
    answers = asyncio.run(go())
    assert [st for st, _ in answers] == [404, 404, 405, 405, 405]
    assert all(d["status"] == st and d["error"] for st, d in answers)
    assert "GET /nope" in answers[1][1]["error"] and "POST /v1/infer" in answers[1][1]["error"]
    assert "Method Not Allowed: PUT /v1/infer" in answers[3][1]["error"]
    after = dien.metrics()
    assert count(after, 404) - count(before, 404) == 2 and count(after, 405) - count(before, 405) == 3
    # messages name JSON's types and the value sent
    bodies = [b"null", b'{"size": null}', b'{"size": 1180591620717411303424}', b'{"size": 2.5}']
    msgs = [d["error"] for _, d in asyncio.run(_post_many(dien.url, bodies))]
    assert msgs[0].endswith("got null") and "NoneType" not in msgs[0]
    assert msgs[1] == "size must be a whole number from 1 to 1000, got null"
    assert msgs[2].startswith("size must be a whole number from 1 to 1000, got 1.18059") and msgs[2].endswith(
        "(a number)"
    )
    assert msgs[3] == "size must be a whole number from 1 to 1000, got 2.5 (a number)"


def test_loadgen_counts_and_metrics_agree(dien):
    m0 = dien.metrics()
    r = asyncio.run(run_load(dien.url, 60.0, 3.0, parse_size_mix("deeprecsys"), seed=1))
    assert r.sent > 100 and r.lost == 0 and r.errors == 0 and r.completed == r.sent
    assert r.sent == r.completed + r.errors + r.lost
    assert 0.0 <= r.qos_met_fraction <= 1.0 and r.p50_ms <= r.p99_ms
    lat = r.records["latency_ms"]
    assert r.qos_met_fraction == pytest.approx(float((lat <= 35.0).sum()) / r.sent, abs=1e-5)
    assert sum(r.served_by.values()) == r.completed
    m1 = dien.metrics()
    done = sum(
        metric(m1, "kairos_queries_total", f'instance="{i}",qos="{q}"')
        - metric(m0, "kairos_queries_total", f'instance="{i}",qos="{q}"')
        for i in ("g4dn.xlarge#0", "r5n.large#0", "r5n.large#1")
        for q in ("met", "missed")
    )
    assert done == r.completed
    for name in (
        "kairos_queue_length",
        "kairos_latency_seconds_bucket",
        "kairos_instance_utilisation",
        "kairos_instance_queue_length",
        "kairos_instance_busy_seconds_total",
    ):
        assert name in m1
    busy = metric(m1, "kairos_instance_busy_seconds_total", 'instance="g4dn.xlarge#0"')
    assert busy > 0
    assert metric(m1, "kairos_sent_ahead_total") == dien.health()["counts"]["sent_ahead"]


def test_loadgen_is_open_loop_under_a_saturated_server():
    # one GPU instance, queries of the largest size (~260 ms each) at 20/s: the server falls
    # far behind, but every query is still sent on schedule
    s = Server("--model", "rm2", "--config", "g4dn.xlarge=1", "--qos-ms", "350")
    try:
        times = np.arange(40) / 20.0
        sizes = np.full(40, 1000)
        r = asyncio.run(
            run_load(s.url, 20.0, 2.0, parse_size_mix("fixed:1000"), times=times, sizes=sizes, drain_timeout_s=60.0)
        )
        assert r.sent == 40 and r.completed == 40 and r.lost == 0
        assert r.max_send_lag_ms < 200.0
        send = r.records["send_s"]
        lat = r.records["latency_ms"]
        # measured from the scheduled send: the last query waited for the whole backlog
        assert lat[-1] > 5000.0
        assert np.all(np.diff(send) > 0)
    finally:
        s.stop()


def test_overload_answers_503_and_counts_them():
    s = Server("--model", "rm2", "--config", "g4dn.xlarge=1", "--qos-ms", "350", "--max-queue", "5")
    try:
        answers = asyncio.run(_post_many(s.url, [b'{"size": 1000}'] * 60, concurrency=60))
        st = [a for a, _ in answers]
        n503, n200 = st.count(503), st.count(200)
        assert n200 + n503 == 60
        # at most 5 waiting at any time, plus the one running: 6 answered when the first query
        # started before the others came in, 5 when they all came in one event-loop turn
        # (the coalesced dispatch that starts it runs after them, kairos.serve.gateway)
        assert 5 <= n200 <= 12 and n503 >= 48
        assert all("queue full" in d["error"] for a, d in answers if a == 503)
        m = s.metrics()
        assert metric(m, "kairos_rejected_total", 'reason="overload"') == n503
        assert metric(m, "kairos_requests_total", 'code="503"') == n503
    finally:
        s.stop()


def test_sigterm_finishes_in_flight_queries_and_leaves_no_process():
    s = Server("--model", "rm2", "--config", "g4dn.xlarge=1,r5n.large=1", "--qos-ms", "350")
    pids = {w["pid"] for w in s.health()["workers"]}
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)

    async def go():
        task = asyncio.ensure_future(_post_many(s.url, [b'{"size": 1000}'] * 4))
        await asyncio.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        return await task

    answers = asyncio.run(go())
    assert [a for a, _ in answers] == [200] * 4
    # drained, then exits 0: an orderly stop (uvicorn re-raises the signal it caught; the
    # handler it then finds is kairos's no-op, not the default that would end it as killed)
    assert s.proc.wait(30) == 0
    t_end = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < t_end:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in pids)
    ev = [e["event"] for e in s.events()]
    assert "gateway_stopped" in ev
    s.stop()


def test_max_qps_search_brackets_with_passing_probe(dien):
    res = asyncio.run(
        max_qps_search(dien.url, 1.5, parse_size_mix("deeprecsys"), seed=0, start_qps=80.0, max_probes=3, rel_tol=0.1)
    )
    assert 1 <= len(res.probes) <= 3
    passing = [p["offered_qps"] for p in res.probes if p["passed"]]
    assert res.max_qps == (max(passing) if passing else 0.0)
    assert all(p["lost"] == 0 for p in res.probes)


def test_policy_options_reach_the_gateway_policy():
    s = Server(
        "--model",
        "rm2",
        "--config",
        "g4dn.xlarge=1",
        "--qos-ms",
        "350",
        "--policy",
        "kairos-online",
        "--policy-option",
        "risk_penalty=1.5",
    )
    try:
        h = s.health()
        assert h["policy"] == "kairos-online"  # 1.5: not the default (0.5)
        assert h["policy_params"]["risk_penalty"] == 1.5 and h["policy_params"]["learn"] is True
        assert h["policy_params"]["ahead_ms"] == 1.0  # kairos serve's --ahead-ms default
    finally:
        s.stop()


def test_idle_keep_alive_connections_are_closed_after_keep_alive_s(dien):
    """--keep-alive-s reaches the HTTP server: a connection idle past it is closed by the
    gateway; with the default (75 s, above a cloud load balancer's 60 s) it stays open."""
    import socket

    def idle_for(url, seconds):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /v1/info HTTP/1.1\r\nhost: x\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(65536)
            head, _, body = buf.partition(b"\r\n\r\n")
            n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < n:
                body += c.recv(65536)
            time.sleep(seconds)
            try:
                return "closed" if c.recv(1, socket.MSG_DONTWAIT) == b"" else "data"
            except (BlockingIOError, TimeoutError):  # nothing to read, no end of stream
                return "open"

    s = Server("--model", "rm2", "--config", "r5n.large=1", "--qos-ms", "350", "--keep-alive-s", "0.3")
    try:
        assert idle_for(s.url, 1.0) == "closed"
    finally:
        s.stop()
    assert idle_for(dien.url, 1.0) == "open"
    from kairos.serve import KEEP_ALIVE_S

    listen = next(e for e in dien.events() if e["event"] == "gateway_listen")
    assert listen["keep_alive_s"] == KEEP_ALIVE_S > 60


def test_gateway_raises_its_open_files_limit_to_the_hard_limit(dien):
    """Idle client connections stay open up to --keep-alive-s, each a descriptor: the
    gateway lifts its soft limit on open files to the hard one. Checked in a process
    started with a soft limit of 256, and in the running gateway's log."""
    import resource
    import subprocess
    import sys

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"hard limit on open files is {hard}: nothing to raise")
    code = (
        "import resource; from kairos.serve.server import raise_open_files_limit as r; "
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], r(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["256", str(hard), str(hard)]
    listen = next(e for e in dien.events() if e["event"] == "gateway_listen")
    assert listen["open_files_limit"] == hard


def test_bad_policy_option_is_refused_before_starting():
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "kairos.cli.main",
            "serve",
            "--model",
            "rm2",
            "--config",
            "g4dn.xlarge=1",
            "--qos-ms",
            "350",
            "--policy-option",
            "nope=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "is not an option of policy 'kairos'" in p.stderr and "Traceback" not in p.stderr


def test_ahead_ms_resolves_per_policy_and_is_refused_where_it_cannot_apply():
    import subprocess
    import sys

    from kairos.cli.serve import SERVE_AHEAD_MS, serve_policy_options

    assert serve_policy_options("kairos", [], None) == {"ahead_ms": SERVE_AHEAD_MS}
    assert serve_policy_options("kairos-online", [], 0.0) == {"ahead_ms": 0.0}
    assert serve_policy_options("kairos", ["ahead_ms=2.5"], None) == {"ahead_ms": 2.5}
    assert serve_policy_options("fcfs", [], None) == {}  # idle instances only: nothing to add
    base = [
        sys.executable,
        "-m",
        "kairos.cli.main",
        "serve",
        "--model",
        "rm2",
        "--config",
        "g4dn.xlarge=1",
        "--qos-ms",
        "350",
    ]
    for extra, msg in (
        (["--policy", "fcfs", "--ahead-ms", "1"], "--ahead-ms: policy 'fcfs'"),
        (["--ahead-ms", "-1"], "--ahead-ms must be a finite number >= 0"),
        (["--ahead-ms", "1", "--policy-option", "ahead_ms=2"], "not both"),
        (["--keep-alive-s", "0"], "--keep-alive-s must be a number of seconds > 0"),
    ):
        p = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_learning_policy_solves_its_lp_in_a_helper_that_leaves_with_the_gateway():
    s = Server(
        "--model", "dien", "--config", "g4dn.xlarge=1,r5n.large=2", "--qos-ms", "35", "--policy", "kairos-online"
    )
    try:
        helper = next(e for e in s.events() if e["event"] == "gateway_ready")["helper"]
        assert helper and pid_alive(helper)
        r = asyncio.run(run_load(s.url, 150, 2.5, parse_size_mix("fixed:10"), 0))  # > 256 observations
        assert r.lost == 0 and r.completed > 256
        t_end = time.monotonic() + 10
        while not any(e["event"] == "offload_done" for e in s.events()) and time.monotonic() < t_end:
            time.sleep(0.1)
        done = [e for e in s.events() if e["event"] == "offload_done"]
        assert done and done[0]["task"] == "compute_coefficients"
    finally:
        s.stop()
    t_end = time.monotonic() + 10
    while pid_alive(helper) and time.monotonic() < t_end:
        time.sleep(0.1)
    assert not pid_alive(helper)


def test_load_generator_opens_its_connections_before_the_run(dien):
    from kairos.serve.httpclient import HttpClient
    from kairos.serve.loadgen import warm_connections

    async def go():
        c = HttpClient(dien.url)
        try:
            await c.warm(12)
            first = c.opened
            status, _ = await c.request("GET", "/v1/info")  # on a warm connection: none opened
            await c.warm(12)
            return first, status, c.opened, len(c.idle)
        finally:
            c.close()

    assert asyncio.run(go()) == (12, 200, 12, 12)
    assert (warm_connections(10), warm_connections(480), warm_connections(1e5)) == (8, 48, 256)
