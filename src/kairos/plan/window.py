"""The window bound: how many queries of one workload *any* dispatcher can finish within QoS.

The fluid bound (:mod:`kairos.plan.fluid`) only asks that every type be at most 100%
busy on average; it ignores that each query must be served inside its own window
[arrival, arrival + QoS]. The window bound solves, for the very queries a simulation
replays (their arrival times at a rate, and each one's actual service time on each
type), a time-indexed linear programme that keeps the windows:

    x[q, k, s] >= 0   time query q is served on type k during slot s
    z[q, k] in [0, 1] fraction of q completed within QoS on type k
    sum_s x[q, k, s] = service[q, k] * z[q, k]       (pairs with service <= QoS only)
    x[q, k, s] <= overlap of slot s with q's window  (on one instance at a time per type)
    sum_q x[q, k, s] <= count[k] * slot              (type k's capacity in slot s)
    sum_k z[q, k] <= 1;   maximise sum z.

It relaxes the real problem -- the dispatcher knows the future, may pre-empt a query and
move it between a type's instances, and counts fractions of queries -- so its optimum is
an upper bound on the queries any dispatcher finishes within QoS on that workload. For
speed the run is cut into blocks of arrivals; each block also gets the capacity of the
QoS window after it (counted twice, which only loosens the bound).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

SLOTS_PER_QOS = 35  # time slots of the LP per QoS window
BLOCK_QUERIES = 3500  # about this many queries' arrivals per LP block


def block_window_bound(arrive_ms, service_ms, counts, qos_ms: float, start_ms: float, slot_ms: float) -> float:
    """Upper bound on how many of these queries (arrival times [n], actual service times
    [n, types] on types with ``counts`` instances) can finish within QoS, the capacity
    counted from ``start_ms`` (<= the first arrival) to the last window's end."""
    arrive = np.asarray(arrive_ms, dtype=float)
    service = np.asarray(service_ms, dtype=float)
    n, K = service.shape
    if n == 0:
        return 0.0
    n_slots = int(np.ceil((arrive.max() + qos_ms - start_ms) / slot_ms)) + 1
    q_idx, k_idx = np.nonzero(service <= qos_ms)  # (query, type) pairs that can be in time
    if len(q_idx) == 0:
        return 0.0
    first = np.floor((arrive - start_ms) / slot_ms).astype(np.int64)
    last = np.floor((arrive + qos_ms - start_ms) / slot_ms).astype(np.int64)
    span = last[q_idx] - first[q_idx] + 1
    pair = np.repeat(np.arange(len(q_idx)), span)  # the pair of each x variable
    slot = first[q_idx][pair] + (np.arange(len(pair)) - np.repeat(np.cumsum(span) - span, span))
    # each x at most the part of its slot inside its query's window
    x_arrive = arrive[q_idx][pair]
    lo = np.maximum(start_ms + slot * slot_ms, x_arrive)
    hi = np.minimum(start_ms + (slot + 1) * slot_ms, x_arrive + qos_ms)
    x_max = np.maximum(hi - lo, 0.0)
    nx, nz = len(pair), len(q_idx)
    # capacity rows (type, slot), then one row per query: sum_k z[q, k] <= 1
    rows = np.concatenate([k_idx[pair] * n_slots + slot, K * n_slots + q_idx])
    cols = np.concatenate([np.arange(nx), nx + np.arange(nz)])
    A_ub = coo_matrix((np.ones(nx + nz), (rows, cols)), shape=(K * n_slots + n, nx + nz)).tocsr()
    b_ub = np.concatenate([np.repeat(np.asarray(counts, dtype=float) * slot_ms, n_slots), np.ones(n)])
    # work: sum_s x[q, k, s] - service[q, k] * z[q, k] = 0
    A_eq = coo_matrix(
        (np.concatenate([np.ones(nx), -service[q_idx, k_idx]]), (np.concatenate([pair, np.arange(nz)]), cols)),
        shape=(nz, nx + nz),
    ).tocsr()
    c = np.concatenate([np.zeros(nx), -np.ones(nz)])
    bounds = np.column_stack([np.zeros(nx + nz), np.concatenate([x_max, np.ones(nz)])])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=np.zeros(nz), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"window-bound LP failed: {res.message}")
    return float(-res.fun)


def window_bound(
    arrive_ms,
    service_ms,
    counts,
    qos_ms: float,
    block_ms: float | None = None,
    slot_ms: float | None = None,
    block_queries: int = BLOCK_QUERIES,
) -> float:
    """Upper bound on how many queries finish within QoS under any dispatcher.

    arrive_ms: [n] arrival times; service_ms: [n, K] each query's actual service time on
    each of the K types; counts: [K] instances of each type. The LP's time slots are
    ``slot_ms`` long (default: QoS / ``SLOTS_PER_QOS``); blocks of ``block_ms`` of arrivals (default: the
    span of about ``block_queries`` queries at their mean spacing) are solved separately, each with the capacity up to its
    last window's end.
    """
    arrive = np.asarray(arrive_ms, dtype=float)
    service = np.asarray(service_ms, dtype=float)
    if len(arrive) == 0:
        return 0.0
    if slot_ms is None:
        slot_ms = qos_ms / SLOTS_PER_QOS
    if block_ms is None:
        block_ms = block_queries * max(float(arrive.max() - arrive.min()), 1e-9) / max(len(arrive) - 1, 1)
    block = np.floor(arrive / block_ms).astype(np.int64)
    total = 0.0
    for b in np.unique(block):
        sel = block == b
        total += block_window_bound(arrive[sel], service[sel], counts, qos_ms, b * block_ms, slot_ms)
    return total
