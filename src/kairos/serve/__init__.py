"""Live serving: an HTTP gateway that dispatches queries with the simulator's policies
to worker processes (emulated cloud instance types or a real model), a load
generator, metrics and fault handling.

Nothing here is imported by ``import kairos``: the gateway needs the ``serve`` extra
(FastAPI, uvicorn, prometheus-client, orjson, uvloop, httptools), installed with
``pip install -e '.[serve]'``.

Modules: :mod:`~kairos.serve.transport` (gateway-worker framing),
:mod:`~kairos.serve.worker` (the worker process), :mod:`~kairos.serve.workers` (worker
handles and supervision, gateway side), :mod:`~kairos.serve.ray_backend` (workers as Ray
actors), :mod:`~kairos.serve.gateway` (the event loop around the shared decision step),
:mod:`~kairos.serve.infer` (one /v1/infer request: validation and answers),
:mod:`~kairos.serve.app` (the ASGI app), :mod:`~kairos.serve.fastpath` (/v1/infer from
the HTTP parser), :mod:`~kairos.serve.server` (``kairos serve``'s configuration and
uvicorn), :mod:`~kairos.serve.metrics`, :mod:`~kairos.serve.logs`,
:mod:`~kairos.serve.loadgen`.
"""

# An idle HTTP keep-alive connection is closed after this many seconds (uvicorn's default
# is 5). Longer than the idle timeout of the usual cloud load balancers (60 s), as nginx's
# default (75 s): a balancer must never reuse a connection the gateway is closing, or its
# request fails unanswered (the keep-alive race); and clients reconnect less often.
KEEP_ALIVE_S = 75.0
