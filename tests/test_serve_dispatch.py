"""The gateway's dispatch loop in-process, with fake worker connections (no processes):
the policy's pairs reach the right worker, a lost worker's query is re-dispatched,
stale HELLOs are refused, and a query failing on every attempt is answered 502."""

from __future__ import annotations

import asyncio

import pytest
from serve_helpers import FakeSupervisor

from kairos.profiles import builtin_catalogue
from kairos.serve import transport as tp
from kairos.serve.gateway import Gateway, GatewayConfig, QueryFailed
from kairos.serve.logs import EventLog

pytestmark = pytest.mark.serve


class _FakeTransport:
    def __init__(self):
        self.frames = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.frames += [body for kind, body in tp.FrameDecoder().feed(data) if kind == tp.QUERY]

    def close(self) -> None:
        self.closed = True


class _FakeConn:
    def __init__(self):
        self.transport = _FakeTransport()
        self.handle = None

    def queries(self):
        return [tp.QUERY_BODY.unpack_from(b)[:3] for b in self.transport.frames]  # id, size, bucket


def _gateway(config, **kw):
    """A gateway on the dien profile whose workers are played by the test: every instance
    has said HELLO on a fake connection. Returns (gateway, connections, the instances the
    supervisor was asked to restart). Every decision of the policy is checked."""
    import io

    profile = builtin_catalogue().profile("dien")
    sup = FakeSupervisor()
    cfg = GatewayConfig(model="dien", config=config, qos_ms=35.0, check_decisions=True, **kw)
    gw = Gateway(profile, cfg, sup, EventLog(io.StringIO()))
    gw.loop = asyncio.get_running_loop()
    for j in range(gw.n):  # as Gateway.start: down until HELLO
        gw.dispatcher.instance_down(j)
    conns = []
    for j in range(gw.n):
        gw.workers[j].generation = 1
        c = _FakeConn()
        gw.on_hello(c, j, 1000 + j, {"generation": 1, "mode": "emulated"})
        conns.append(c)
    return gw, conns, sup.spawned


def test_stale_hello_refused_and_current_one_accepted():
    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1})
        assert gw.workers[0].state == "up" and gw.workers[0].pid == 1000 and gw.pool.up[0]
        late = _FakeConn()
        gw.on_hello(late, 0, 999, {"generation": 0})  # an older process of the same instance
        assert late.transport.closed and gw.workers[0].pid == 1000

    asyncio.run(go())


@pytest.mark.parametrize("policy", ["kairos", "kairos-online"])
def test_lost_worker_query_is_redispatched_and_answered_once(policy):
    async def go():
        gw, conns, spawned = _gateway({"g4dn.xlarge": 1, "r5n.large": 1}, policy=policy)
        task = gw.submit_nowait(10, gw.bucket_of(10))
        await asyncio.sleep(0)
        first = [j for j, c in enumerate(conns) if c.queries()]
        assert len(first) == 1
        j = first[0]
        ((qid, size, bucket),) = conns[j].queries()
        assert (qid, size) == (0, 10)
        gw.on_worker_lost(j, "test: connection closed")
        other = 1 - j
        assert conns[other].queries() == [(0, 10, bucket)]
        assert not gw.pool.up[j] and gw.workers[j].state == "down"
        gw.on_result(j, 0, 5.0, True, b"")  # a late answer from the dead worker: ignored
        assert not task.done()
        gw.on_result(other, 0, 4.0, True, b"")
        out = await asyncio.wait_for(task, 5)
        assert out["instance_index"] == other and out["attempts"] == 2 and out["service_ms"] == 4.0
        assert gw.counts["redispatched"] == 1 and gw.counts["completed"] == 1
        await asyncio.sleep(0.01)
        assert spawned == [j]  # restarted

    asyncio.run(go())


def test_query_failing_on_every_attempt_gets_502():
    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1}, max_attempts=2)
        task = gw.submit_nowait(10, gw.bucket_of(10))
        await asyncio.sleep(0)
        gw.on_worker_lost(0, "crash 1")
        await asyncio.sleep(0.01)  # the restart is spawned
        assert gw.workers[0].state == "starting" and gw.workers[0].generation == 2
        # the instance comes back, takes the query again, dies again
        back = _FakeConn()
        gw.on_hello(back, 0, 2000, {"generation": 2})
        assert back.queries() == [(0, 10, gw.bucket_of(10))]
        gw.on_worker_lost(0, "crash 2")
        with pytest.raises(QueryFailed) as ei:
            await asyncio.wait_for(task, 5)
        assert ei.value.status == 502 and gw.counts["failed"] == 1

    asyncio.run(go())


def test_binding_policy_local_queue_starts_on_finish():
    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1}, policy="least-loaded")
        tasks = [gw.submit_nowait(s, gw.bucket_of(s)) for s in (10, 20, 30)]
        await asyncio.sleep(0)
        # the running query and the next in line (sent ahead) are at the worker; the third waits
        assert [q for q, _, _ in conns[0].queries()] == [0, 1]
        assert gw.pool.held[0] == 3 and gw.waiting() == 2 and gw.pool.running[0] == 0 and gw.sent_ahead[0] == 1
        assert gw.records[1].start is None  # sent ahead is not started: its wait goes on
        await asyncio.sleep(0.005)  # query 0 takes 5 ms
        gw.on_result(0, 0, 3.0, True, b"")
        # query 1 starts now without being sent again; query 2 is sent ahead in its place
        assert [q for q, _, _ in conns[0].queries()] == [0, 1, 2]
        assert gw.pool.running[0] == 1 and gw.sent_ahead[0] == 2 and gw.records[1].start is not None
        sent1, arr1 = gw.records[1].sent_ahead, gw.queries.arrival[1]
        sent2, arr2 = gw.records[2].sent_ahead, gw.queries.arrival[2]
        # the worker held query 1 for 0.5 ms before starting it: its wait ends there
        gw.on_result(0, 1, 3.0, True, b"", 0.5)
        gw.on_result(0, 2, 3.0, True, b"")  # no stamp (0): the wait ends at the send
        a, b, c = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert (a["id"], b["id"], c["id"]) == (0, 1, 2)
        assert b["wait_ms"] == pytest.approx(sent1 + 0.5 - arr1, abs=1e-3)
        assert c["wait_ms"] == pytest.approx(sent2 - arr2, abs=1e-3) and not gw.records and not gw.queries.bucket
        assert [q for q, _, _ in conns[0].queries()] == [0, 1, 2]  # each sent exactly once
        assert gw.pool.held[0] == 0 and gw.pool.n_idle == 1 and gw.sent_ahead[0] == -1

    asyncio.run(go())


def test_query_sent_ahead_to_a_worker_that_dies_is_redispatched_once():
    async def go():
        # kairos with ahead_ms: the second query is queued on the busy (only) instance and sent ahead
        gw, conns, spawned = _gateway({"g4dn.xlarge": 1}, policy="kairos", policy_options={"ahead_ms": 1000.0})
        t0 = gw.submit_nowait(10, gw.bucket_of(10))
        await asyncio.sleep(0)
        t1 = gw.submit_nowait(10, gw.bucket_of(10))
        await asyncio.sleep(0)
        assert [q for q, _, _ in conns[0].queries()] == [0, 1] and gw.sent_ahead[0] == 1
        gw.on_worker_lost(0, "test: connection closed")  # dies holding both
        assert gw.sent_ahead[0] == -1 and gw.queue == [0, 1]
        await asyncio.sleep(0.01)
        assert spawned == [0]
        back = _FakeConn()
        gw.on_hello(back, 0, 2000, {"generation": 2})
        assert [q for q, _, _ in back.queries()] == [0]  # the oldest first (one matching pair per instance)
        gw.on_result(0, 0, 3.0, True, b"")
        assert [q for q, _, _ in back.queries()] == [0, 1]
        gw.on_result(0, 1, 3.0, True, b"")
        a, b = await asyncio.wait_for(asyncio.gather(t0, t1), 5)
        assert (a["attempts"], b["attempts"]) == (2, 2)
        assert gw.counts["completed"] == 2 and gw.counts["redispatched"] == 2 and not gw.records

    asyncio.run(go())


def test_online_policy_learns_from_the_gateways_observed_service_times():
    """kairos-online in the gateway: every answered query is an observation (the time the
    instance was taken, transport included); after REFRESH of them the pool's estimates
    follow what was observed (here: answers arrive at once, far below the profile)."""
    from kairos.dispatch.online import REFRESH

    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1}, policy="kairos-online")
        b = gw.bucket_of(500)
        t = gw.type_of[0]
        before = gw.pool.est[t][b]
        for _ in range(REFRESH + 1):
            task = gw.submit_nowait(500, b)
            await asyncio.sleep(0)
            qid = conns[0].queries()[-1][0]
            gw.on_result(0, qid, 0.01, True, b"")
            await asyncio.wait_for(task, 5)
        assert gw.policy.online.total == REFRESH + 1
        assert gw.pool.est[t][b] < 0.5 * before  # learned: answers took well under the profile's time
        assert gw.counts["completed"] == REFRESH + 1

    asyncio.run(go())


def test_qos_margin_tightens_what_the_policy_sees_not_the_answers():
    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1}, qos_margin_ms=5.0)
        assert gw.policy.qos == 30.0 and gw.qos == 35.0
        t = gw.submit_nowait(10, gw.bucket_of(10))
        await asyncio.sleep(0)
        gw.on_result(0, conns[0].queries()[-1][0], 3.0, True, b"")
        a = await asyncio.wait_for(t, 5)
        assert a["qos_ms"] == 35.0

    asyncio.run(go())


@pytest.mark.parametrize("coalesce", [True, False])
def test_events_of_one_loop_turn_share_one_dispatch_when_coalescing(coalesce):
    """A worker's result and an arrival handled in the same event-loop turn, with two
    queries already waiting: coalescing makes one dispatch call after both, over all three
    waiting queries; per event, the result's call sees only the two before the arrival."""

    async def go():
        gw, conns, _ = _gateway({"g4dn.xlarge": 1}, coalesce_dispatch=coalesce)
        seen = []  # queue length at every policy call
        inner = gw.policy.dispatch

        def spy(now, queue, pool):
            seen.append(len(queue))
            return inner(now, queue, pool)

        gw.policy.dispatch = spy
        b = gw.bucket_of(100)
        f0 = gw.submit_nowait(100, b)
        assert [q for q, _, _ in conns[0].queries()] == [0]  # a lone query starts at once
        gw.submit_nowait(100, b)
        gw.submit_nowait(100, b)  # two waiting: the instance is busy
        seen.clear()
        gw.on_result(0, 0, 9.0, True, b"")  # the instance is free ...
        assert f0.done() and f0.result()["instance_index"] == 0
        gw.submit_nowait(100, b)  # ... and a query arrives in the same turn
        if coalesce:
            assert seen == [] and [q for q, _, _ in conns[0].queries()] == [0]  # nothing decided yet
        else:
            assert seen == [2]  # decided at the result, before the arrival
        await asyncio.sleep(0)
        assert seen == ([3] if coalesce else [2])
        assert [q for q, _, _ in conns[0].queries()] == [0, 1]  # the oldest waiting query next
        assert gw.queue == [2, 3]

    asyncio.run(go())


@pytest.mark.parametrize("policy", ["kairos", "kairos+ahead", "fcfs", "p2c"])
@pytest.mark.parametrize("coalesce", [True, False])
def test_property_every_query_answered_once_whatever_the_turns(policy, coalesce):
    """Random turns of arrivals and worker results (several per turn, then the loop runs
    its scheduled callbacks): a worker holds at most the query it runs and one sent ahead
    (and none ahead with a policy that only uses idle instances), answers them in order,
    every admitted query is sent and answered exactly once, and nothing is left queued."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    turn = st.tuples(st.integers(0, 4), st.integers(0, 3), st.sampled_from([10, 200, 600, 1000]))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(turn, min_size=1, max_size=25))
    def check(turns):
        async def go():
            name, opts = ("kairos", {"ahead_ms": 50.0}) if policy == "kairos+ahead" else (policy, {})
            gw, conns, _ = _gateway(
                {"g4dn.xlarge": 1, "r5n.large": 2}, policy=name, coalesce_dispatch=coalesce, policy_options=opts
            )
            ahead = 0 if policy in ("kairos", "fcfs") else 1  # queries a worker may hold beyond the running one
            futs, seen = {}, [0] * gw.n  # queries answered so far, per worker

            def worker_results(k):  # up to k running workers answer, oldest instance first
                done = 0
                for j, c in enumerate(conns):
                    q = c.queries()
                    assert len(q) - seen[j] <= 1 + ahead  # the running query (+ one sent ahead)
                    if done < k and len(q) > seen[j]:
                        gw.on_result(j, q[seen[j]][0], 1.0, True, b"")  # the oldest it holds
                        seen[j] += 1
                        done += 1

            for arrivals, results, size in turns:
                for _ in range(arrivals):
                    f = gw.submit_nowait(size, gw.bucket_of(size))
                    futs[len(futs)] = f
                worker_results(results)
                await asyncio.sleep(0)  # end of the turn: a coalesced dispatch runs
            for _ in range(4 * len(futs) + 4):  # drain: answer everything
                worker_results(gw.n)
                await asyncio.sleep(0)
            sent = [q for c in conns for q, _, _ in c.queries()]
            assert sorted(sent) == list(range(len(futs)))  # each query sent exactly once
            assert all(f.done() and f.result()["id"] == i for i, f in futs.items())
            assert gw.queue == [] and gw.counts["completed"] == len(futs)

        asyncio.run(go())

    check()
