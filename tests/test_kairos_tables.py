"""The tables Kairos's matching reads: instances grouped by type, service-time layouts."""

import numpy as np

from kairos.dispatch.kairos_tables import ServiceTables, TypeGroups, gather
from kairos.dispatch.online import OnlineEstimates


def test_type_groups_of_an_interleaved_pool():
    g = TypeGroups([1, 1, 0, 2, 0, 0, 1])
    assert g.types.tolist() == [1, 1, 0, 2, 0, 0, 1]
    assert g.present == [0, 1, 2]
    assert [ix.tolist() for ix in g.members] == [[2, 4, 5], [0, 1, 6], [3]]
    assert g.runs == [(0, 2, 3), (0, 4, 6), (1, 0, 2), (1, 6, 7), (2, 3, 4)]
    assert g.largest == 3


def test_type_groups_of_a_pool_listed_by_type_have_one_run_per_type():
    g = TypeGroups([0, 0, 0, 1, 1])
    assert g.runs == [(0, 0, 3), (1, 3, 5)]
    assert TypeGroups([]).runs == [] and TypeGroups([]).largest == 0


def test_type_groups_leave_retired_instances_out():
    g = TypeGroups([0, 0, 0, 1, 1, 0], retired=frozenset({1, 3, 4}))
    assert g.present == [0]
    assert [ix.tolist() for ix in g.members] == [[0, 2, 5]]
    assert g.runs == [(0, 0, 1), (0, 2, 3), (0, 5, 6)]
    assert g.types.tolist() == [0, 0, 0, 1, 1, 0]  # every index keeps its type (the tables' columns)


def test_service_tables_layouts():
    mean = np.array([[10.0, 20.0, 100.0], [5.0, 40.0, 400.0]])
    tail = mean * 1.5
    C = np.array([1.0, 0.25])
    tb = ServiceTables(mean, tail, C, 50.0, np.array([1, 0, 1]))
    assert tb.cost.tolist() == [[0.2, 0.4, 2.0], [0.025, 0.2, 2.0]]
    assert tb.Cn_j.tolist() == [0.005, 0.02, 0.005]
    assert tb.Cn_t == [0.02, 0.005]
    # [buckets, instances]: instance j is its type's column
    assert tb.mean_bj.tolist() == [[5.0, 10.0, 5.0], [40.0, 20.0, 40.0], [400.0, 100.0, 400.0]]
    assert tb.tail_bj[2].tolist() == [600.0, 150.0, 600.0]
    assert tb.cost_bj[1].tolist() == [0.2, 0.4, 0.2]
    # per bucket, per type
    assert tb.cost_bt[2] == [2.0, 2.0] and tb.tail_bt[0] == [15.0, 7.5] and tb.mean_bt[1] == [20.0, 40.0]
    # [queries, instances] for queries of buckets 2 and 0; then only instances 2 and 1
    assert gather(tb.mean_bj, np.array([2, 0])).tolist() == [[400.0, 100.0, 400.0], [5.0, 10.0, 5.0]]
    assert gather(tb.mean_bj, np.array([2, 0]), np.array([2, 1])).tolist() == [[400.0, 100.0], [5.0, 10.0]]


def test_online_tails_keep_the_profiles_tail_shape():
    est = np.array([[10.0, 0.0]])
    o = OnlineEstimates(est, np.array([[15.0, 3.0]]))
    assert o.tails(np.array([[20.0, 4.0]])).tolist() == [[30.0, 4.0]]  # x1.5; a 0 estimate: shape 1
    assert OnlineEstimates(est).tails(np.array([[20.0, 4.0]])).tolist() == [[20.0, 4.0]]
