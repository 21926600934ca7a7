"""Elastic pools: instances added and drained while queries flow through the Dispatcher."""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairos.dispatch import DictQueries, DispatchContext, Dispatcher, Pool, make_policy

POLICIES = ["kairos", "kairos-online", "kairos-paper", "fcfs", "clockwork", "deeprecsys", "least-loaded", "p2c"]


def _driver(profile, policy_name, ops, qos_ms=200.0):
    """Run ``ops`` (arrive SIZE / add TYPE / drain K / tick MS) through one Dispatcher with a
    toy clock; service takes the profile's mean. Returns the record of what happened."""
    queries = DictQueries()
    pool = Pool([0], profile.mean_ms.tolist(), queries)  # one instance to begin with
    pol = make_policy(policy_name, **({"ahead_ms": 1.0} if policy_name == "kairos" else {}))
    pol.bind(DispatchContext(profile, [0], qos_ms, 0, None))
    d = Dispatcher(pol, pool, check=True)
    heap: list = []  # (time, kind, instance, query): kind 0 = completion, 1 = instance ready
    now = 0.0
    served: dict[int, int] = {}
    started_on: dict[int, int] = {}
    next_q = 0
    drained_at: dict[int, float] = {}

    def start(qid, j):
        assert pool.up[j] and j not in d.retired, f"query {qid} started on instance {j}, which is not in service"
        assert qid not in started_on, f"query {qid} started twice"
        started_on[qid] = j
        s = profile.mean_ms[pool.type_of[j], queries.bucket[qid]]
        heapq.heappush(heap, (now + s, 0, j, qid))

    def step():
        for qid, j in d.step(now):
            if pool.running[j] == qid:
                start(qid, j)

    def advance(to):
        nonlocal now
        while heap and heap[0][0] <= to:
            now, kind, j, qid = heapq.heappop(heap)
            if kind == 1:
                d.instance_up(j, now)
            else:
                assert started_on.get(qid) == j
                served[qid] = served.get(qid, 0) + 1
                if d.observes:
                    d.observed(j, qid, 1.0)
                nxt = d.complete(j, now)
                if nxt >= 0:
                    start(nxt, j)
            step()
        now = max(now, to)

    for op, arg in ops:
        if op == "arrive":
            queries.add(next_q, int(profile.bucket_of(np.asarray([arg]))[0]), now)
            d.submit(next_q)
            next_q += 1
            step()
        elif op == "add":
            j = d.add_instance(arg % len(profile.types))
            heapq.heappush(heap, (now + 5.0, 1, j, -1))
        elif op == "drain":
            live = [j for j in range(pool.n) if j not in d.retired]
            if len(live) > 1:  # keep one instance, so that every query can still be served
                j = live[arg % len(live)]
                d.drain(j)
                drained_at[j] = now
                step()
        else:
            advance(now + arg)
    advance(float("inf"))
    return {"n": next_q, "served": served, "started_on": started_on, "drained_at": drained_at, "d": d, "pool": pool}


op = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from([10, 100, 300, 1000])),
    st.tuples(st.just("add"), st.integers(0, 7)),
    st.tuples(st.just("drain"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.floats(0.5, 120.0)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=st.sampled_from(POLICIES), ops=st.lists(op, min_size=1, max_size=80))
def test_property_no_query_lost_or_served_by_a_stopped_instance(toy_profile, policy, ops):
    # toy_profile is read only: sharing it between examples is safe
    r = _driver(toy_profile, policy, ops)
    assert sorted(r["served"]) == list(range(r["n"])), "a query was lost"
    assert all(c == 1 for c in r["served"].values()), "a query was served twice"
    d, pool = r["d"], r["pool"]
    for j in d.retired:  # every drained instance finished what it ran and is stopped
        assert d.is_stopped(j)
        assert pool.running[j] == -1 and not pool.local[j]


def test_drain_finishes_the_running_query_and_requeues_the_waiting_ones(toy_profile):
    queries = DictQueries()
    pool = Pool([0], toy_profile.mean_ms.tolist(), queries)
    pol = make_policy("p2c")  # binding: queries wait in the instances' own queues
    pol.bind(DispatchContext(toy_profile, [0], 1000.0, 0, None))
    d = Dispatcher(pol, pool, check=True)
    a = 0
    for q in range(3):
        queries.add(q, 0, 0.0)
        d.submit(q)
    assert d.step(0.0) == [(0, a), (1, a), (2, a)]
    assert pool.running[a] == 0 and list(pool.local[a]) == [1, 2]  # 0 started, 1 and 2 wait on a
    b = d.add_instance(1)
    d.drain(a)
    assert d.queue == [1, 2]  # the two that had not started are back in the central queue
    assert not d.is_stopped(a)  # still running query 0
    assert d.step(1.0) == []  # b is not up yet and a takes nothing new
    d.instance_up(b, 2.0)
    assert d.step(2.0) == [(1, b), (2, b)]
    assert d.complete(a, 3.0) == -1  # a finished its last query ...
    assert d.is_stopped(a)  # ... and can be released
    d.instance_up(a, 4.0)  # a late "ready" for a drained instance is ignored
    assert not pool.up[a]


def test_policy_rebinds_to_the_grown_pool(toy_profile):
    queries = DictQueries()
    pool = Pool([0], toy_profile.mean_ms.tolist(), queries)
    pol = make_policy("kairos")
    pol.bind(DispatchContext(toy_profile, [0], 1000.0, 0, None))
    d = Dispatcher(pol, pool)
    js = [d.add_instance(t) for t in (1, 1)]
    assert pol.ctx.type_of == [0, 1, 1]
    d.drain(js[0])
    assert list(pol.ctx.type_counts()) == [1, 1]


def test_learning_policy_keeps_what_it_learned_when_the_pool_changes(toy_profile):
    queries = DictQueries()
    pool = Pool([0, 1], toy_profile.mean_ms.tolist(), queries)
    pol = make_policy("kairos-online")
    pol.bind(DispatchContext(toy_profile, [0, 1], 1000.0, 0, None))
    d = Dispatcher(pol, pool)
    for _ in range(50):  # the cpu runs size-10 queries at 2x its profile
        pol.observe(0, 1, 10.0)
    learned = pol.online.estimates()[1, 0]
    assert learned > 6.0
    d.add_instance(1)
    assert pol.online.estimates()[1, 0] == learned  # not reset by the new instance
    assert pol.ctx.type_of == [0, 1, 1]


def test_counts_and_least_loaded_see_only_instances_in_service(toy_profile):
    queries = DictQueries()
    pool = Pool([0, 1, 1], toy_profile.mean_ms.tolist(), queries)
    pol = make_policy("p2c")
    pol.bind(DispatchContext(toy_profile, [0, 1, 1], 1000.0, 0, None))
    d = Dispatcher(pol, pool)
    queries.add(0, 0, 0.0)
    pool.assign(0, 1, 0.0)  # instance 1 busy, 2 idle
    starting = d.add_instance(1)
    assert d.counts() == ({0: 1, 1: 2}, {1: 1})
    assert d.least_loaded(1, 1) == [2]  # idle before busy; the starting one is not in service
    assert d.least_loaded(1, 5) == [2, 1]
    d.drain(2)
    d.instance_up(starting, 1.0)
    assert d.counts() == ({0: 1, 1: 2}, {})
    assert d.least_loaded(1, 5) == [starting, 1]
