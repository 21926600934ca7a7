"""The example policy of CONTRIBUTING.md (examples/example_policy.py: shortest expected job first,
on the fastest idle instance), registered by this test only: its decisions by hand, a simulated
run that checks every decision, and a live gateway with emulated worker processes."""

from __future__ import annotations

import asyncio
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import Toy, make_profile

from kairos.dispatch.registry import POLICIES, PolicySpec, make_policy, policies_in, register_policy
from kairos.profiles import builtin_catalogue
from kairos.sim.engine import simulate
from kairos.sim.experiment import Experiment

_spec = importlib.util.spec_from_file_location(
    "example_policy", Path(__file__).resolve().parents[1] / "examples" / "example_policy.py"
)
example_policy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example_policy)
ShortestJobFirst = example_policy.ShortestJobFirst


@pytest.fixture
def sjf():
    """``--policy sjf`` for the length of one test (the product's registry does not hold it)."""
    assert "sjf" not in POLICIES
    spec = register_policy(PolicySpec("sjf", ShortestJobFirst, comparisons=()))
    yield spec
    del POLICIES["sjf"]


class Recording(ShortestJobFirst):
    """The example policy, keeping every pair it returns."""

    def __init__(self):
        super().__init__()
        self.pairs: list[tuple[int, int]] = []

    def dispatch(self, now, queue, pool):
        out = super().dispatch(now, queue, pool)
        self.pairs += out
        return out


def test_shortest_queries_go_to_the_fastest_idle_instances():
    prof = make_profile([[1.0, 10.0, 100.0], [4.0, 40.0, 400.0]], types=("gpu", "cpu"))
    # instances: cpu, gpu, cpu; queries of sizes 1000, 10, 100, 10 (ids 0..3), all waiting
    toy = Toy(ShortestJobFirst(), prof, [1, 0, 1], 500.0, [1000, 10, 100, 10])
    assert toy.policy.by_speed == [1, 0, 2]
    assert toy.dispatch(0.0, [0, 1, 2, 3]) == [(1, 1), (2, 2), (3, 0)]  # the first 10 on the gpu
    toy.occupy(1, 1)
    assert toy.dispatch(0.0, [0, 2, 3]) == [(2, 2), (3, 0)]  # the gpu is busy: the cpus
    assert toy.dispatch(0.0, []) == []


def test_in_the_simulator_every_query_is_served_where_the_policy_sent_it(sjf):
    exp = Experiment.paper("dien", queries=3000, seed=0)
    rate = 0.5 * exp.fluid_bound()
    policy = Recording()
    res = simulate(
        exp.profile,
        exp.config,
        policy,
        exp.workload,
        exp.qos_ms,
        rate=rate,
        seed=exp.seed,
        size_probs=exp.probs,
        check=True,
    )  # check: every pair names a waiting query and an idle instance
    assert res.completed == res.n == 3000 and not res.aborted
    q, j = (np.array(x) for x in zip(*policy.pairs))
    assert np.array_equal(np.sort(q), np.arange(3000))  # each query dispatched once
    assert np.array_equal(res.served_by[q], j)  # and served by the instance the policy chose
    # the registered name runs the same policy: the same run; and the max-QPS search takes it
    again = exp.run("sjf", rate)
    assert np.array_equal(again.latency_ms, res.latency_ms) and np.array_equal(again.served_by, res.served_by)
    assert isinstance(make_policy("sjf"), ShortestJobFirst) and "sjf" not in policies_in("dispatch")
    best = exp.max_qps("sjf")
    assert 0 < best.max_qps <= 1.03 * exp.fluid_bound() and best.result.qos_met_fraction >= 0.99


@pytest.mark.serve
def test_in_a_live_gateway_with_emulated_workers(sjf):
    from kairos.serve.gateway import Gateway, GatewayConfig
    from kairos.serve.logs import EventLog
    from kairos.serve.workers import LocalSupervisor

    sizes = [900, 20, 300, 5, 60, 700, 150, 10]

    async def go():
        profile = builtin_catalogue().profile("dien")
        cfg = GatewayConfig(
            model="dien", config={"g4dn.xlarge": 1, "r5n.large": 2}, qos_ms=35.0, policy="sjf", check_decisions=True
        )
        gw = Gateway(profile, cfg, LocalSupervisor.for_gateway(cfg), EventLog(io.StringIO()))
        calls = []
        decide = gw.policy.dispatch

        def recording(now, queue, pool):  # what the policy saw and decided, call by call
            idle = [j for j in range(pool.n) if not pool.busy[j]]
            out = decide(now, queue, pool)
            calls.append((list(queue), idle, out))
            return out

        gw.policy.dispatch = recording
        await gw.start()
        try:
            answers = await asyncio.wait_for(asyncio.gather(*(gw.submit_nowait(s, gw.bucket_of(s)) for s in sizes)), 30)
        finally:
            await gw.stop()
        return gw, calls, answers

    gw, calls, answers = asyncio.run(go())
    assert isinstance(gw.policy, ShortestJobFirst)
    assert [a["size"] for a in answers] == sizes and [a["id"] for a in answers] == list(range(len(sizes)))
    assert gw.counts["completed"] == len(sizes) and gw.counts["failed"] == 0
    # each decision: the smallest waiting queries to the idle instances, the smallest on the fastest
    assert gw.policy.by_speed == [0, 1, 2] and gw.instance_types[0] == "g4dn.xlarge"
    for queue, idle, pairs in calls:
        smallest = sorted(queue, key=lambda q: (sizes[q], q))[: len(idle)]
        assert pairs == list(zip(smallest, sorted(idle))), (queue, idle, pairs)
    assert any(len(queue) > len(pairs) > 0 for queue, _, pairs in calls)  # some had a choice to make
    sent = {q: j for _, _, pairs in calls for q, j in pairs}
    assert sorted(sent) == list(range(len(sizes)))  # every query dispatched once
    assert all(a["instance_index"] == sent[a["id"]] for a in answers)  # and served where the policy sent it
