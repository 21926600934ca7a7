"""The elastic controller live (kairos serve --autoscale, kairos loadgen --rates).

In-process, with fake worker connections and a fake supervisor (no processes): the
controller's actions become pool changes as the simulator's ElasticTimers makes them (an
added instance serves from its HELLO; a drain takes the least loaded ready instances, sends
their waiting queries elsewhere, lets the running one finish there and stops the worker
after it), billing from launch to stop with the 60 s minimum, /metrics. Then a live gateway
with emulated workers, a compressed rate file stepping up then down: nothing lost, no error,
instances added and drained, every drained worker process gone, cost > 0."""

from __future__ import annotations

import asyncio
import io
import json
import math
import time

import numpy as np
import pytest
from serve_helpers import FakeSupervisor, Server, metric, pid_alive

from kairos.elastic.billing import BillingRule, instance_cost
from kairos.elastic.controller import Action, Controller, ControllerSettings, PoolPlanner
from kairos.profiles import builtin_catalogue
from kairos.serve import transport as tp
from kairos.serve.autoscale import AutoscaleSpec, InlineDecider
from kairos.serve.gateway import Gateway, GatewayConfig
from kairos.serve.logs import EventLog

pytestmark = pytest.mark.serve

PRICES = {"g4dn.xlarge": 0.526, "r5n.large": 0.149}


class _TablePlanner(PoolPlanner):
    """Every instance serves 10 q/s; the cheapest pool for a rate is one g4dn.xlarge plus
    as many r5n.large as the rest needs."""

    def prices(self):
        return PRICES

    def cheapest_for(self, rate_qps):
        extra = max(0, math.ceil((rate_qps - 10.0) / 10.0 - 1e-9))
        return {"g4dn.xlarge": 1, **({"r5n.large": extra} if extra else {})}

    def capacity(self, config):
        return 10.0 * sum(config.values())


class _FakeTransport:
    def __init__(self):
        self.frames = []
        self.shutdown = False

    def write(self, data: bytes) -> None:
        for kind, body in tp.FrameDecoder().feed(data):
            if kind == tp.QUERY:
                self.frames.append(tp.QUERY_BODY.unpack_from(body)[0])
            elif kind == tp.SHUTDOWN:
                self.shutdown = True

    def close(self) -> None:
        pass


class _FakeConn:
    def __init__(self):
        self.transport = _FakeTransport()
        self.handle = None


class _Clock:
    """The gateway's clock (ms), moved by the test."""

    def __init__(self):
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


async def _elastic_gateway(config, policy="fcfs", startup_s=0.0, **settings):
    """A gateway on the dien profile with an autoscaler over the table planner, deciding
    in-process, on a clock the test moves; its initial workers have said HELLO on fake
    connections. Returns (gateway, supervisor, connections by instance, clock)."""
    profile = builtin_catalogue().profile("dien")
    clock = _Clock()
    ctl = Controller(
        _TablePlanner(),
        dict.fromkeys(PRICES, startup_s),
        ControllerSettings(
            **{"interval_s": 1.0, "window_s": 1.0, "headroom": 0.0, "scale_down_after_s": 2.0, **settings}
        ),
    )
    spec = AutoscaleSpec(ctl, dict.fromkeys(PRICES, startup_s), PRICES)
    sup = FakeSupervisor()
    cfg = GatewayConfig(model="dien", config=config, qos_ms=35.0, policy=policy, check_decisions=True, autoscale=spec)
    gw = Gateway(profile, cfg, sup, EventLog(io.StringIO()))
    gw.now = clock  # type: ignore[method-assign]
    gw.loop = asyncio.get_running_loop()
    assert gw.scaler is not None
    gw.scaler.decider = InlineDecider(gw.loop)
    await gw.scaler.start()
    conns = {}
    for j in range(gw.n):  # as Gateway.start: down until HELLO
        gw.dispatcher.instance_down(j)
        gw.launched_ms[j] = 0.0
        gw.workers[j].generation = 1
        conns[j] = _FakeConn()
        gw.on_hello(conns[j], j, 1000 + j, {"generation": 1})
    return gw, sup, conns, clock


def _hello(gw, conns, j):
    conns[j] = _FakeConn()
    gw.on_hello(conns[j], j, 1000 + j, {"generation": gw.workers[j].generation})


async def _turn():
    for _ in range(3):
        await asyncio.sleep(0)


def test_add_starts_a_worker_that_serves_from_its_hello_no_earlier_than_its_startup():
    async def go():
        gw, sup, conns, _ = await _elastic_gateway({"g4dn.xlarge": 1}, startup_s=30.0)
        s = gw.scaler
        t = time.monotonic()
        touched = s.apply(Action("add", "r5n.large", 2), 0.0)
        await _turn()
        assert touched == [1, 2] and gw.n == 3 and sup.spawned == [1, 2]
        assert [gw.instance_names[j] for j in touched] == ["r5n.large#0", "r5n.large#1"]
        assert all(30.0 <= gw.workers[j].ready_at - t < 31.0 for j in touched)  # the worker's HELLO waits
        assert not gw.pool.up[1] and not gw.pool.up[2]
        assert s.counts() == ({"g4dn.xlarge": 1}, {"r5n.large": 2})
        assert s.pool() == {
            "g4dn.xlarge": {"ready": 1, "starting": 0, "draining": 0},
            "r5n.large": {"ready": 0, "starting": 2, "draining": 0},
        }
        gw.submit_nowait(10, gw.bucket_of(10))  # the g4dn serves it
        gw.submit_nowait(10, gw.bucket_of(10))  # waits: nothing else is up
        assert conns[0].transport.frames == [0] and gw.queue == [1]
        _hello(gw, conns, 2)  # r5n.large#1 up: it takes the waiting query at once
        assert gw.pool.up[2] and conns[2].transport.frames == [1] and gw.queue == []
        assert s.counts() == ({"g4dn.xlarge": 1, "r5n.large": 1}, {"r5n.large": 1})
        await s.close()

    asyncio.run(go())


def test_drain_takes_the_least_loaded_and_stops_each_worker_after_its_last_answer():
    async def go():
        # least-loaded binds each query to an instance at once (waiting in its own queue,
        # the next one sent ahead to its worker)
        gw, sup, conns, clock = await _elastic_gateway({"r5n.large": 3}, policy="least-loaded")
        s = gw.scaler
        futs = [gw.submit_nowait(10, gw.bucket_of(10)) for _ in range(5)]
        held = list(gw.pool.held)
        assert sorted(held) == [1, 2, 2]  # q0..q4 over three instances
        idle_first = held.index(1)
        busy = [j for j in range(3) if j != idle_first]
        s.apply(Action("add", "g4dn.xlarge", 1), 0.0)
        await _turn()
        _hello(gw, conns, 3)  # a new instance, idle: nothing waits centrally
        assert gw.pool.held[3] == 0
        # drain one r5n: the least loaded (one query held) goes first
        assert s.apply(Action("drain", "r5n.large", 1), 1.0) == [idle_first]
        assert gw.workers[idle_first].state == "draining" and sup.retired == []
        # drain the other two: their waiting queries (sent ahead to their workers) go back
        # to the central queue and on to the idle g4dn; the running ones stay
        waiting = {j: list(gw.pool.local[j]) for j in busy}
        running = {j: gw.pool.running[j] for j in busy}
        assert all(len(w) == 1 for w in waiting.values())
        assert all(gw.records[w[0]].sent_ahead is not None for w in waiting.values())
        assert sorted(s.apply(Action("drain", "r5n.large", 2), 1.0)) == busy
        moved = sorted(w[0] for w in waiting.values())
        assert gw.pool.running[3] == moved[0] and list(gw.pool.local[3]) == [moved[1]]
        assert conns[3].transport.frames == moved  # the first started, the second sent ahead again
        assert s.counts() == ({"g4dn.xlarge": 1}, {})
        assert s.pool()["r5n.large"] == {"ready": 0, "starting": 0, "draining": 3}
        # the running queries finish where they run; each worker is stopped after its answer
        clock.ms = 40.0
        for j in [idle_first, *busy]:
            q = gw.pool.running[j]
            assert q == (running[j] if j in running else q) and q >= 0
            gw.on_result(j, q, 5.0, True, b"")
            assert gw.workers[j].state == "stopped" and gw.stopped_ms[j] == 40.0
        await _turn()
        assert sorted(sup.retired) == [0, 1, 2]
        assert all(conns[j].transport.shutdown for j in range(3))
        for j in busy:  # a drained worker's answer to its copy of a moved query changes nothing
            gw.on_result(j, waiting[j][0], 5.0, True, b"")
        for q in moved:
            gw.on_result(3, q, 5.0, True, b"")
        outs = [await asyncio.wait_for(f, 5) for f in futs]
        assert [o["id"] for o in outs] == [0, 1, 2, 3, 4]
        assert sorted(o["instance_index"] for o in outs if o["id"] in moved) == [3, 3]
        assert all(o["attempts"] == 1 for o in outs)
        assert gw.counts["completed"] == 5 and gw.counts["failed"] == 0 and not gw.records
        h = gw.health()
        assert [w["instance"] for w in h["workers"]] == ["g4dn.xlarge#0"]  # stopped ones are gone
        assert h["pool"] == {"g4dn.xlarge": {"ready": 1, "starting": 0, "draining": 0}}
        await s.close()

    asyncio.run(go())


def test_a_draining_worker_that_dies_hands_back_its_query_and_is_not_restarted():
    async def go():
        gw, sup, conns, _ = await _elastic_gateway({"r5n.large": 2})
        fut = gw.submit_nowait(10, gw.bucket_of(10))
        (j,) = [k for k in range(2) if gw.pool.running[k] == 0]
        assert gw.drain_instance(j) and gw.workers[j].state == "draining"
        gw.on_worker_lost(j, "test: crashed while draining")
        other = 1 - j
        assert conns[other].transport.frames == [0]  # served elsewhere
        await asyncio.sleep(0.01)
        assert gw.workers[j].state == "stopped" and sup.spawned == [] and sup.killed == [j]
        gw.on_result(other, 0, 4.0, True, b"")
        out = await asyncio.wait_for(fut, 5)
        assert out["instance_index"] == other and out["attempts"] == 2
        assert not gw.drain_instance(j)  # a stopped instance is not drained again
        await gw.scaler.close()

    asyncio.run(go())


def test_ticks_observe_arrivals_scale_up_then_drain_and_bill_from_launch_to_stop():
    async def go():
        gw, sup, conns, clock = await _elastic_gateway({"g4dn.xlarge": 1})
        s = gw.scaler
        futs = [gw.submit_nowait(10, gw.bucket_of(10)) for _ in range(40)]  # at t = 0: the controller's time 0
        assert s.t0_ms == 0.0
        s._timer.cancel()  # the test ticks by hand, on its clock
        clock.ms = 1000.0
        s.tick()  # 40 arrivals in 1 s: one g4dn (10 q/s) is short, three r5n more
        await _turn()
        assert s.decisions == 1 and s.forecast_qps == pytest.approx(40.0)
        assert [(e["action"], e["type"], e["count"]) for e in s.scale_events] == [("add", "r5n.large", 3)]
        assert gw.n == 4 and sup.spawned == [1, 2, 3]
        for j in (1, 2, 3):
            _hello(gw, conns, j)  # each takes a waiting query
        assert all(gw.pool.running[j] >= 0 for j in (1, 2, 3))
        for t in (2, 3, 4):  # no arrivals: a cheaper target holds from t = 3 s, not long enough yet
            clock.ms = t * 1000.0
            s._timer.cancel()
            s.tick()
            await _turn()
            assert len(s.scale_events) == 1
        clock.ms = 5000.0
        s._timer.cancel()
        s.tick()  # held 2 s: the three r5n are drained, each finishing the query it runs
        await _turn()
        assert [(e["action"], e["type"], e["count"]) for e in s.scale_events][1:] == [("drain", "r5n.large", 3)]
        assert [gw.workers[j].state for j in (1, 2, 3)] == ["draining"] * 3 and sup.retired == []
        full = {"g4dn.xlarge": 1, "r5n.large": 3}
        assert [t["ready"] for t in s.timeline] == [{"g4dn.xlarge": 1}, full, full, full, {"g4dn.xlarge": 1}]
        assert s.timeline[0]["starting"] == {"r5n.large": 3} and s.timeline[0]["arrivals"] == 40
        clock.ms = 6000.0
        for j in (1, 2, 3):
            gw.on_result(j, gw.pool.running[j], 5.0, True, b"")
        await _turn()
        assert sorted(sup.retired) == [1, 2, 3] and [gw.stopped_ms[j] for j in (1, 2, 3)] == [6000.0] * 3
        # billing: each r5n from its launch (t = 1 s) to its stop (6 s), the g4dn to now (8 s); 60 s minimum
        clock.ms = 8000.0
        rule = BillingRule()
        want = 3 * instance_cost(1.0, 6.0, PRICES["r5n.large"], rule) + instance_cost(0.0, 8.0, PRICES["g4dn.xlarge"])
        assert s.cost_usd() == pytest.approx(want) == pytest.approx((3 * 0.149 + 0.526) / 60.0)
        assert s.instance_seconds() == pytest.approx(3 * 5.0 + 8.0)
        info = s.describe()
        assert info["instances_launched"] == 4 and info["instances_stopped"] == 3
        assert (info["scale_ups"], info["scale_downs"]) == (1, 1)
        assert [(i["instance"], i["launched_s"], i["stopped_s"]) for i in info["instances"]] == [
            ("g4dn.xlarge#0", 0.0, None),
            ("r5n.large#0", 1.0, 6.0),
            ("r5n.large#1", 1.0, 6.0),
            ("r5n.large#2", 1.0, 6.0),
        ]
        # /metrics: the pool per type and state, launched/stopped, cost so far, scale events
        from prometheus_client import generate_latest

        from kairos.serve.metrics import GatewayMetrics

        text = generate_latest(GatewayMetrics(gw).registry).decode()
        assert metric(text, "kairos_pool_instances", 'instance_type="g4dn.xlarge",state="ready"') == 1
        assert metric(text, "kairos_pool_instances", 'instance_type="g4dn.xlarge",state="draining"') == 0
        assert metric(text, "kairos_instances_launched_total", 'instance_type="r5n.large"') == 3
        assert metric(text, "kairos_instances_stopped_total", 'instance_type="r5n.large"') == 3
        assert metric(text, "kairos_cost_dollars_total") == pytest.approx(want)
        assert metric(text, "kairos_scale_events_total", 'action="add"') == 1
        assert metric(text, "kairos_scale_instances_total", 'action="drain"') == 3
        assert metric(text, "kairos_autoscale_decisions_total", 'outcome="made"') == 5
        assert metric(text, "kairos_instance_up", 'instance="r5n.large#2"') == 0
        for f in futs:
            f.cancel()
        await s.close()

    asyncio.run(go())


def test_a_tick_while_a_decision_is_pending_is_skipped_and_its_arrivals_go_to_the_next():
    async def go():
        gw, sup, conns, clock = await _elastic_gateway({"g4dn.xlarge": 1})
        s = gw.scaler
        seen = []

        class _Slow(InlineDecider):
            def decide(self, now_s, arrivals, ready, starting, done, failed):
                seen.append((now_s, arrivals))
                if len(seen) == 1:
                    self.loop.call_soon(failed, "LookupError: helper restarted")
                elif len(seen) == 2:
                    self.held = (now_s, arrivals, ready, starting, done, failed)  # answered later
                else:
                    super().decide(now_s, arrivals, ready, starting, done, failed)

        s.decider = _Slow(gw.loop)
        s.decider.install(s.spec.controller, 0.0)
        gw.submit_nowait(10, gw.bucket_of(10))
        s._timer.cancel()
        clock.ms = 1000.0
        s.tick()
        await _turn()  # failed: counted, the controller installed again
        assert s.failures == 1 and not s.pending
        for _ in range(3):
            gw.submit_nowait(10, gw.bucket_of(10))
        clock.ms = 2000.0
        s._timer.cancel()
        s.tick()  # pending...
        assert s.pending
        gw.submit_nowait(10, gw.bucket_of(10))
        clock.ms = 3000.0
        s._timer.cancel()
        s.tick()  # skipped
        assert s.skipped == 1 and len(seen) == 2
        now_s, arrivals, ready, starting, done, failed = s.decider.held
        InlineDecider.decide(s.decider, now_s, arrivals, ready, starting, done, failed)
        await _turn()
        assert not s.pending and s.decisions == 1
        clock.ms = 4000.0
        s._timer.cancel()
        s.tick()
        await _turn()
        assert seen == [(1.0, 1), (2.0, 3), (4.0, 1)]
        await s.close()

    asyncio.run(go())


# ---------------------------------------------------------------------- live
RATES = [3, 3, 15, 35, 35, 35, 35, 6, 3, 3, 3, 3]  # q/s per step of STEP_S seconds


def test_live_autoscale_follows_a_compressed_rate_file(tmp_path):
    """rm2 (planner's model alone), 12 steps of 1.5 s stepping up to 35 q/s and down, start-up 1 s."""
    from kairos.cli.loadgen import loadgen  # noqa: F401  (the CLI module imports)
    from kairos.elastic.rates import load_rates
    from kairos.serve.loadgen import run_rates, step_summary
    from kairos.workload.sizes import parse_size_mix

    step_s = 1.5
    rates = tmp_path / "rates.csv"
    rates.write_text("second,requests\n" + "".join(f"{k},{r}\n" for k, r in enumerate(RATES)))
    srv = Server(
        "--model",
        "rm2",
        "--autoscale",
        "--initial-qps",
        "3",
        "--startup-s",
        "1",
        "--interval-s",
        "0.5",
        "--window-s",
        "1",
        "--scale-down-after-s",
        "2",
        "--plan-queries",
        "0",
        quiet=True,
    )
    try:
        info0 = json.loads(__import__("urllib.request").request.urlopen(srv.url + "/v1/info").read())
        assert info0["autoscale"]["started"] is False
        first = set(info0["autoscale"]["pool"])
        trace = load_rates(rates).compressed(step_s)
        res, steps = asyncio.run(run_rates(srv.url, trace, parse_size_mix("deeprecsys"), seed=1))
        assert res.sent == sum(s["sent"] for s in steps) > 150
        assert res.lost == 0, res.summary()
        assert res.errors == sum(v for k, v in res.error_kinds.items() if k == "503"), res.error_kinds
        assert res.errors == 0
        assert len(steps) == 12 and step_summary(steps)["steps"] == 12
        time.sleep(3.0)  # the last drains finish (scale-down after 2 s of low load)
        text = srv.metrics()
        info = json.loads(__import__("urllib.request").request.urlopen(srv.url + "/v1/info").read())["autoscale"]
    finally:
        srv.stop()
    ups = [e for e in info["scale_events"] if e["action"] == "add"]
    downs = [e for e in info["scale_events"] if e["action"] == "drain"]
    assert ups and downs, info["scale_events"]
    assert metric(text, "kairos_cost_dollars_total") > 0
    assert metric(text, "kairos_scale_events_total", 'action="add"') == len(ups)
    launched = metric(text, "kairos_instances_launched_total", 'instance_type="r5n.large"')
    assert launched >= 1 and info["instances_launched"] > sum(info0["autoscale"]["pool"][t]["ready"] for t in first)
    # an added instance served from its HELLO, at least its start-up after its launch
    added = [i for i in info["instances"] if i["launched_s"] > 0 and i["ready_s"] is not None]
    assert added and all(i["ready_s"] - i["launched_s"] >= 0.95 for i in added), added
    # every drained instance stopped, and its worker process is gone
    stopped = {i["instance"]: i["pid"] for i in info["instances"] if i["state"] == "stopped"}
    drained = {n for e in downs for n in e["instances"]}
    assert drained and drained <= set(stopped), (drained, info["instances"])
    assert all(not pid_alive(stopped[n]) for n in drained)
    assert np.isfinite(res.qos_met_fraction)


# ---------------------------------------------------------------------- command-line input
@pytest.fixture
def no_server(monkeypatch):
    """run_server replaced by a recorder: a value that got through would start nothing here."""
    import kairos.serve.server

    started = []
    monkeypatch.setattr(kairos.serve.server, "run_server", lambda *a, **k: started.append((a, k)))
    return started


AUTO = ("serve", "--model", "rm2", "--autoscale", "--plan-queries", "0")


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--config", "r5n.large=1"), "--config does not apply with --autoscale"),
        (("--backend", "ray"), "--autoscale runs on --backend local"),
        (("--workload", "unknown"), "--autoscale plans for a query-size mix"),
        (("--initial-qps", "0"), "--initial-qps must be a finite number > 0"),
        (("--max-cost-per-hour", "-1"), "--max-cost-per-hour must be a finite number > 0"),
        (("--startup-s", "nan"), "--startup-s must be a finite number >= 0"),
        (("--interval-s", "0"), "--interval-s must be a finite number > 0"),
        (("--headroom", "-0.5"), "--headroom must be a finite number >= 0"),
        (("--types", "r5n.large,nope"), "nope"),
    ],
)
def test_serve_autoscale_bad_input_is_one_line(capsys, no_server, args, needle):
    from cli_helpers import assert_one_line_error, run_cli

    code, _, err = run_cli(capsys, *AUTO, *args)
    assert_one_line_error(code, err, needle)
    assert not no_server


def test_serve_autoscale_options_need_autoscale(capsys, no_server):
    from cli_helpers import assert_one_line_error, run_cli

    code, _, err = run_cli(capsys, "serve", "--config", "r5n.large=1", "--startup-s", "5")
    assert_one_line_error(code, err, "--startup-s applies only with --autoscale")
    assert not no_server


def test_serve_autoscale_starts_with_the_controllers_initial_pool(capsys, no_server):
    from cli_helpers import run_cli

    code, _, err = run_cli(
        capsys, *AUTO, "--initial-qps", "20", "--startup-s", "3", "--interval-s", "2", "--max-cost-per-hour", "5"
    )
    assert code == 0, err
    (((_, cfg), _),) = no_server
    g = cfg.gateway
    spec = g.autoscale
    assert g.config == spec.controller.initial_pool(20.0) == {"g4dn.xlarge": 1, "r5n.large": 3}  # 23 q/s
    assert spec.startup_s == dict.fromkeys(spec.settings["types"], 3.0)
    assert spec.controller.interval_s == 2.0 and spec.controller.planner.problem.budget == 5.0
    assert spec.prices["r5n.large"] == pytest.approx(0.149)


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--qps", "10"), "--qps does not apply with --rates"),
        (("--max-qps",), "--max-qps does not apply with --rates"),
        (("--step-s", "0"), "--step-s must be a finite number > 0"),
        (("--peak-qps", "-3"), "--peak-qps must be a finite number > 0"),
        (("--start-minute", "5"), "--start-minute 5: the rate file"),
    ],
)
def test_loadgen_rates_bad_input_is_one_line(capsys, tmp_path, args, needle):
    from cli_helpers import assert_one_line_error, run_cli

    rates = tmp_path / "r.csv"
    rates.write_text("minute,requests\n0,10\n1,20\n")
    code, _, err = run_cli(capsys, "loadgen", "--url", "http://127.0.0.1:9", "--rates", str(rates), *args)
    assert_one_line_error(code, err, needle)


def test_loadgen_rate_options_need_rates(capsys):
    from cli_helpers import assert_one_line_error, run_cli

    code, _, err = run_cli(capsys, "loadgen", "--qps", "10", "--step-s", "5")
    assert_one_line_error(code, err, "--step-s applies only with --rates")


def test_compressed_trace_plays_the_same_rates_in_shorter_steps_and_per_step_counts():
    from kairos.elastic.rates import RateTrace
    from kairos.serve.loadgen import LoadResult, per_step, step_summary

    minute = RateTrace(60.0, np.array([600.0, 1200.0, 0.0]))
    live = minute.compressed(5.0)
    assert live.step_s == 5.0 and live.rates.tolist() == [10.0, 20.0, 0.0] and live.counts.tolist() == [50, 100, 0]
    # four queries in step 0 (one too slow, one 503), one in step 1, none in step 2
    res = LoadResult("u", 1.0, 15.0, qos_ms=100.0)
    res.records = {
        "send_s": np.array([0.1, 1.0, 2.0, 4.9, 6.0]),
        "status": np.array([200, 200, 503, 200, 200]),
        "latency_ms": np.array([50.0, 150.0, np.nan, 99.0, 20.0]),
    }
    rows = per_step(res, 5.0, 3, live.rates)
    assert [(r["sent"], r["completed"], r["qos_met_fraction"], r["offered_qps"]) for r in rows] == [
        (4, 3, 0.5, 10.0),
        (1, 1, 1.0, 20.0),
        (0, 0, None, 0.0),
    ]
    assert step_summary(rows) == {"steps": 3, "steps_meeting_qos_fraction": 0.5, "worst_step_qos_met": 0.5}
