"""Each dispatch policy on hand-made cases whose optimal assignment is known."""

import numpy as np
import pytest
from conftest import Toy, make_profile

from kairos.dispatch import make_policy
from kairos.dispatch.kairos import heterogeneity_coefficients
from kairos.errors import KairosInputError

GPU, CPU = 0, 1


def test_heterogeneity_coefficient(toy_profile):
    C = heterogeneity_coefficients(toy_profile.mean_ms, [GPU, CPU])
    assert C.tolist() == pytest.approx([1.0, 100.0 / 400.0])


@pytest.mark.parametrize("name", ["kairos", "kairos-paper"])
def test_kairos_small_to_cpu_large_to_gpu(name, toy_profile):
    # queries: 0 = size 10, 1 = size 1000; QoS 150 ms: the cpu cannot serve size 1000
    t = Toy(make_policy(name), toy_profile, [GPU, CPU], 150.0, [10, 1000])
    assert t.dispatch(0.0, [0, 1]) == [(0, 1), (1, 0)]
    # the large query alone: only the gpu meets QoS
    t = Toy(make_policy(name), toy_profile, [GPU, CPU], 150.0, [1000])
    assert t.dispatch(0.0, [0]) == [(0, 0)]
    # a small query alone goes to the cpu (C-weighted cost 0.25*5 < 1*10): the gpu keeps slack
    t = Toy(make_policy(name), toy_profile, [GPU, CPU], 150.0, [10])
    assert t.dispatch(0.0, [0]) == [(0, 1)]


@pytest.mark.parametrize("name", ["kairos", "kairos-paper"])
def test_kairos_waits_for_busy_gpu_rather_than_violate(name, toy_profile):
    # gpu busy with query 0 (size 100: 20 ms); query 1 (size 1000) cannot meet QoS on the idle cpu
    t = Toy(make_policy(name), toy_profile, [GPU, CPU], 150.0, [100, 1000])
    t.occupy(GPU, 0, now=0.0)
    assert t.dispatch(5.0, [1]) == []  # waits 15 ms for the gpu: 15 + 100 < 150
    # a medium query 2 (size 100, 40 ms on cpu) arriving meanwhile takes the idle cpu
    t = Toy(make_policy(name), toy_profile, [GPU, CPU], 150.0, [100, 1000, 100])
    t.occupy(GPU, 0, now=0.0)
    assert t.dispatch(5.0, [1, 2]) == [(2, 1)]


def test_kairos_two_gpus_prefers_the_idle_one(toy_profile):
    t = Toy(make_policy("kairos"), toy_profile, [GPU, GPU], 150.0, [100, 1000])
    t.occupy(0, 0)
    assert t.dispatch(1.0, [1]) == [(1, 1)]


def test_kairos_hopeless_query_served_by_spare_instance(toy_profile):
    # query 0 waited 140 ms already: no instance can finish it within 150 ms; it is not dropped
    t = Toy(make_policy("kairos"), toy_profile, [GPU, CPU], 150.0, [1000], arrivals=[0.0])
    assert t.dispatch(140.0, [0]) == [(0, 0)]  # least C-weighted work: gpu 100 vs cpu 0.25*400
    # with a feasible query present, the feasible one is matched first, the hopeless one takes the rest
    t = Toy(make_policy("kairos"), toy_profile, [GPU, CPU], 150.0, [1000, 10], arrivals=[0.0, 140.0])
    assert t.dispatch(140.0, [0, 1]) == [(0, 0), (1, 1)]


def test_kairos_age_term_matches_older_query_first():
    # one cpu, two equal queries; the older one must be the one served
    prof = make_profile([[10.0, 20.0, 100.0]], types=("cpu",))
    t = Toy(make_policy("kairos"), prof, [0], 150.0, [100, 100], arrivals=[0.0, 30.0])
    assert t.dispatch(30.0, [0, 1]) == [(0, 0)]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_kairos_urgency_gives_the_idle_instance_to_the_older_query(order):
    # two cpus, one busy for 10 ms more, one idle; two equal queries, both in time on
    # either. Without urgency the two assignments cost the same (the age term is in both),
    # so which query starts now is the matching's tie-break (here, with the younger query
    # first in the queue, the younger one); with urgency, always the older one.
    prof = make_profile([[10.0, 20.0, 100.0]], types=("cpu",))
    for busy, idle in ((0, 1), (1, 0)):
        t = Toy(make_policy("kairos", urgency=0.5), prof, [0, 0], 150.0, [100, 100, 100], arrivals=[0.0, 29.0, 20.0])
        t.occupy(busy, 2, now=20.0)  # free at 40
        assert t.dispatch(30.0, order) == [(0, idle)]
    with pytest.raises(ValueError, match="urgency"):
        make_policy("kairos", urgency=-1.0)


def test_kairos_tail_quantile_guards_noisy_types():
    # size 100: gpu 20 ms (cost 20), cpu 25 ms on average (cost 25*100/140 < 20) but +-50%:
    # its p99 (about 37 ms) misses a 30 ms QoS, so a tail-aware dispatcher keeps it off the cpu
    prof = make_profile([[10.0, 20.0, 100.0], [5.0, 25.0, 140.0]], spread=0.5)
    mean_only = Toy(make_policy("kairos", tail_quantile=0.5), prof, [GPU, CPU], 30.0, [100])
    tail = Toy(make_policy("kairos", tail_quantile=0.99), prof, [GPU, CPU], 30.0, [100])
    assert mean_only.dispatch(0.0, [0]) == [(0, 1)]
    assert tail.dispatch(0.0, [0]) == [(0, 0)]


def test_kairos_paper_caps_queue_at_2n(toy_profile):
    t = Toy(make_policy("kairos-paper"), toy_profile, [CPU], 1000.0, [10] * 5)
    t.occupy(0, 0)
    pol = t.policy
    assert pol.cap == 2
    # only the oldest 2 are looked at; the cpu is busy so nothing starts
    assert t.dispatch(1.0, [1, 2, 3, 4]) == []


def test_kairos_paper_integer_estimates_and_penalties():
    prof = make_profile([[10.7, 20.2, 100.9], [5.5, 40.4, 400.1]])
    pol = make_policy("kairos-paper")
    Toy(pol, prof, [GPU, CPU], 150.0, [10])
    assert pol.est_int[:, 0].tolist() == [10.0, 5.0]
    assert pol.VIOLATION_PENALTY > pol.MARGIN_PENALTY > 0 and pol.MARGIN == 0.02


def test_fcfs_head_to_first_free(toy_profile):
    t = Toy(make_policy("fcfs"), toy_profile, [GPU, CPU, CPU], 150.0, [1000, 10, 10, 10])
    t.occupy(1, 3)
    # instances 0 and 2 idle: the head (size 1000) goes to the first free (0), next to 2
    assert t.dispatch(0.0, [0, 1, 2]) == [(0, 0), (1, 2)]


def test_deeprecsys_threshold(toy_profile):
    t = Toy(make_policy("deeprecsys", threshold=50), toy_profile, [GPU, CPU], 150.0, [100, 10, 10])
    # size 100 > 50 -> gpu; size 10 -> cpu; the second small query waits for a cpu
    assert t.dispatch(0.0, [0, 1, 2]) == [(0, 0), (1, 1)]
    t = Toy(make_policy("deeprecsys", threshold=50), toy_profile, [GPU, CPU], 150.0, [10, 10])
    t.occupy(1, 0)
    assert t.dispatch(0.0, [1]) == []  # small queries never go to the gpu


def test_deeprecsys_default_threshold(toy_profile):
    # cpu serves size 100 in 40 ms <= 150/2, size 1000 in 400 ms > 75: threshold 100
    t = Toy(make_policy("deeprecsys"), toy_profile, [GPU, CPU], 150.0, [10])
    assert t.policy.threshold == 100


def test_clockwork_earliest_finish_and_hopeless(toy_profile):
    # gpu busy until 20 ms; query 1 (size 1000): gpu finishes at 120, cpu at 400 -> waits for gpu
    t = Toy(make_policy("clockwork"), toy_profile, [GPU, CPU], 150.0, [100, 1000, 10])
    t.occupy(GPU, 0)
    assert t.dispatch(0.0, [1, 2]) == [(2, 1)]
    # a hopeless query (waited 500 ms) is served only by an otherwise idle instance
    t = Toy(make_policy("clockwork"), toy_profile, [GPU, CPU], 150.0, [1000, 10], arrivals=[0.0, 500.0])
    assert t.dispatch(500.0, [0, 1]) == [(0, 0), (1, 1)]


def test_least_loaded_weighs_speed(toy_profile):
    # median size 100: gpu 20 ms, cpu 40 ms -> gpu twice as fast; gpu holds 1, cpu 0
    t = Toy(make_policy("least-loaded"), toy_profile, [GPU, CPU], 150.0, [10, 10, 10, 10])
    t.occupy(GPU, 0)
    # loads after assignment: gpu (1+1)*20=40, cpu (0+1)*40=40 -> tie -> faster gpu
    assert t.dispatch(0.0, [1]) == [(1, 0)]
    t.hold(GPU, 2)  # gpu now holds 2 (one queued locally)
    assert t.dispatch(0.0, [3]) == [(3, 1)]


def test_p2c_picks_less_loaded_of_two(toy_profile):
    t = Toy(make_policy("p2c"), toy_profile, [GPU, CPU], 150.0, [10] * 4)
    t.occupy(GPU, 0)
    t.hold(GPU, 1)
    # with two instances both are always sampled: the cpu holds fewer (0 < 2, then 1 < 2)
    assert t.dispatch(0.0, [2, 3]) == [(2, 1), (3, 1)]


def test_unknown_policy():
    with pytest.raises(KairosInputError, match="unknown --policy"):
        make_policy("nope")


def _one_query_reference(pol, now, qid, pool):
    """What the one-query decision is, as a plain scan over every instance: the least cost
    C_j L_ij / T (+ urgency, + risk_penalty for a pair in time only by the mean) among the
    instances that meet the deadline, ties to an idle instance, then to the lowest index;
    it starts if idle (or, with ahead_ms, is queued on a busy instance about to finish and
    holding nothing else). None in time: the idle instance with the least C-weighted work."""
    prof, T = pol.ctx.profile, pol.qos
    b = int(pool.q_bucket[qid])
    W = now - float(pool.q_arrival[qid])
    tail = np.maximum(prof.quantile_ms(pol.tail_quantile), prof.mean_ms)
    best, spare = None, None
    for j, t in enumerate(pol.type_of):
        rem = max(pool.free_at[j] - now, 0.0)
        c = pol.C[t] / T * prof.mean_ms[t, b] + (pol.C[t] / T + pol.urgency * W / T**2) * rem
        if rem + tail[t, b] > T - W:
            if pol.risk_penalty is None or rem + prof.mean_ms[t, b] > T - W:
                if not pool.busy[j] and (spare is None or c < spare[0]):
                    spare = (c, j)
                continue
            c += pol.risk_penalty
        if best is None or (c, pool.busy[j], j) < best:
            best = (c, pool.busy[j], j)
    if best is None:
        return [(qid, spare[1])] if spare is not None else []
    c, busy, j = best
    if not busy or (pol.ahead_ms and pool.held[j] == 1 and pool.free_at[j] - now <= pol.ahead_ms):
        return [(qid, j)]
    return []


@pytest.mark.parametrize(
    "risk_penalty,urgency,ahead_ms", [(None, 0.0, 0.0), (0.5, 0.0, 0.0), (None, 2.0, 0.0), (0.5, 0.5, 20.0)]
)
@pytest.mark.parametrize(
    "type_of",
    [
        [0] * 3 + [1] * 5 + [2] * 2,  # instances of a type listed together
        [1, 0, 1, 1, 2, 0, 1, 2, 0, 1],
    ],
)  # interleaved
def test_kairos_one_query_decision_equals_a_scan_of_every_instance(risk_penalty, urgency, ahead_ms, type_of):
    """The one-query path (one candidate per run of a type's consecutive instances) decides
    what the plain scan over every instance decides, on random pool states with ties and
    estimates already passed, whatever the order of the instances."""
    prof = make_profile(
        [[10.0, 20.0, 100.0], [5.0, 40.0, 400.0], [8.0, 30.0, 200.0]], types=("gpu", "cpu", "mid"), spread=0.2
    )
    rng = np.random.default_rng(3)
    decided = 0
    for _ in range(3000):
        t = Toy(
            make_policy("kairos", risk_penalty=risk_penalty, urgency=urgency, ahead_ms=ahead_ms),
            prof,
            type_of,
            float(rng.choice([60.0, 150.0, 450.0])),
            [int(rng.choice([10, 100, 1000]))],
            arrivals=[0.0],
        )
        pol, pool = t.policy, t.pool
        now = float(rng.choice([0.0, 20.0, 100.0]))
        for j in range(len(type_of)):
            if rng.random() < 0.6:
                pool.busy[j] = True
                pool.held[j] = 1 + int(rng.random() < 0.2)  # sometimes a query queued behind (ahead_ms)
                pool.n_idle -= 1
                # remaining work: often tied, sometimes already past its estimate
                pool.free_at[j] = now + float(rng.choice([-5.0, 0.0, 10.0, 10.0, 50.0, 300.0]))
        got = pol.dispatch(now, [0], pool)
        assert got == _one_query_reference(pol, now, 0, pool)
        decided += bool(got)
    assert 500 < decided < 3000  # both outcomes (start now / wait) were exercised


def test_kairos_matching_keeps_only_useful_instances_in_a_large_pool():
    """A pool of more than 24 instances and a short queue: the matching keeps only the
    least-loaded instances of each type, and still gives the large query the idle gpu and
    the small one the least-loaded cpu, whatever the order of the instances."""
    prof = make_profile([[10.0, 20.0, 100.0], [5.0, 40.0, 400.0]])
    for type_of in ([GPU] * 5 + [CPU] * 25, [CPU, GPU] * 5 + [CPU] * 20):
        t = Toy(make_policy("kairos"), prof, type_of, 150.0, [1000, 10] + [10] * len(type_of))
        gpus = [j for j, ty in enumerate(type_of) if ty == GPU]
        for k, j in enumerate(range(len(type_of))):
            t.occupy(j, 2 + k, now=0.0)
        pool = t.pool
        # every instance busy until 10-40 ms; one gpu and one cpu free now
        for j in range(len(type_of)):
            pool.free_at[j] = 10.0 + j
        idle_gpu, idle_cpu = gpus[-1], type_of.index(CPU)
        for j in (idle_gpu, idle_cpu):
            pool.busy[j], pool.free_at[j], pool.held[j] = False, 0.0, 0
            pool.n_idle += 1
        assert t.policy._columns(np.maximum(np.array(pool.free_at) - 1.0, 0.0), 2) is not None
        assert t.dispatch(1.0, [0, 1]) == [(0, idle_gpu), (1, idle_cpu)]


def test_kairos_risky_pair_starts_only_with_a_risk_penalty():
    # query 1 (size 100) has 50 ms left at t=100. cpu: mean 40 ms (in time), p90 tail 56 ms
    # (late): a risky pair. gpu: busy 5 ms more, then 20 ms (tail 28): safely in time.
    prof = make_profile([[10.0, 20.0, 100.0], [5.0, 40.0, 400.0]], spread=0.5)

    def decide(risk):
        t = Toy(make_policy("kairos", risk_penalty=risk), prof, [GPU, CPU], 150.0, [10, 100], arrivals=[95.0, 0.0])
        t.occupy(GPU, 0, now=95.0)
        return t.dispatch(100.0, [1])

    assert decide(None) == []  # the cpu is not trusted: wait for the gpu
    # cost (units of QoS): gpu 1 * (5 + 20) / 150 = 0.167; cpu 0.25 * 40 / 150 = 0.067 + penalty
    assert decide(0.05) == [(1, 1)]  # a small penalty: start on the cpu now
    assert decide(0.5) == []  # a large one: the safe gpu is still preferred


def test_kairos_ahead_queues_a_query_on_an_instance_about_to_finish(toy_profile):
    # the gpu runs query 0 (size 100: 20 ms from t=0); query 1 (size 1000) can only meet QoS there
    def decide(ahead_ms, now, queue=(1,), sizes=(100, 1000), extra=None):
        t = Toy(make_policy("kairos", ahead_ms=ahead_ms), toy_profile, [GPU, CPU], 150.0, list(sizes))
        t.occupy(GPU, 0, now=0.0)
        if extra is not None:
            t.hold(GPU, extra, now=0.0)  # the gpu already holds a query behind the running one
        return t.dispatch(now, list(queue))

    assert decide(0.0, 5.0) == []  # default: the query waits in the central queue
    assert decide(20.0, 5.0) == [(1, 0)]  # 15 ms left <= 20: queued on the gpu now
    assert decide(10.0, 5.0) == []  # 15 ms left > 10
    assert decide(10.0, 12.0) == [(1, 0)]  # 8 ms left <= 10
    # one query ahead at most: with query 2 (size 10) queued behind the running one, the gpu
    # is free in 18 ms, within 50, and query 1 would still be in time there -- but it waits
    assert decide(50.0, 12.0, sizes=(100, 1000, 10), extra=2) == []
    assert decide(50.0, 12.0, sizes=(100, 1000, 10)) == [(1, 0)]
    # the matrix path: query 2 (size 100) takes the idle cpu, query 1 is queued on the gpu
    assert decide(20.0, 5.0, queue=(1, 2), sizes=(100, 1000, 100)) == [(1, 0), (2, 1)]
    assert decide(0.0, 5.0, queue=(1, 2), sizes=(100, 1000, 100)) == [(2, 1)]


def test_kairos_ahead_is_reported_only_when_set():
    from kairos.dispatch.registry import policy_fingerprint

    assert "ahead_ms" not in make_policy("kairos").describe()  # the defaults' fingerprint is unchanged
    assert make_policy("kairos", ahead_ms=1.5).describe()["ahead_ms"] == 1.5
    assert policy_fingerprint("kairos", {"ahead_ms": 1.0}) != policy_fingerprint("kairos")
    with pytest.raises(ValueError, match="ahead_ms"):
        make_policy("kairos", ahead_ms=-1)
