"""The ASGI app of the gateway.

Routes: ``POST /v1/infer`` (one query), ``GET /healthz``, ``GET /metrics``
(Prometheus), ``GET /v1/info`` (model, configuration, QoS, fluid bound: what the load
generator needs; with ``--autoscale`` also the elastic pool, its cost and scale events),
and FastAPI's ``/docs`` and ``/openapi.json``.

``POST /v1/infer`` is the hot path: it is served by a thin ASGI function in front of
FastAPI (same validation and answers as the documented FastAPI route, without its
per-request dependency and model machinery), because the gateway's added latency is
part of every query's QoS budget. Every other route goes through FastAPI. The request's
validation and answers are :mod:`kairos.serve.infer`'s, as in the HTTP fast path.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kairos.serve.gateway import Gateway
from kairos.serve.infer import MAX_BODY, error_body, finish_infer, start_infer
from kairos.serve.metrics import GatewayMetrics


class InferRequest(BaseModel):
    """One query. Give its ``samples`` (torch workers run them) or, in emulated mode or to
    let a torch worker make synthetic inputs, just its ``size`` (number of samples)."""

    size: int | None = Field(
        None, ge=1, description="number of samples (query size); at most the profile's largest size"
    )
    samples: list | None = Field(None, min_length=1, description="the samples of the query (model input rows)")


class InferResponse(BaseModel):
    id: int
    result: object | None = Field(None, description="model output; null for emulated workers")
    instance: str = Field(description="instance that served the query, e.g. g4dn.xlarge#0")
    instance_index: int
    instance_type: str
    size: int
    wait_ms: float = Field(description="time queued in the gateway before dispatch")
    service_ms: float = Field(description="service time measured by the worker")
    gateway_latency_ms: float = Field(description="arrival at the gateway to completion")
    qos_ms: float
    qos_met: bool
    attempts: int = Field(description="1, or more if a worker failed while serving it")
    mode: str = Field(description="emulated (timed sleep from the profile) or torch (real model)")


class ErrorResponse(BaseModel):
    error: str
    status: int


async def handle_infer(body: bytes, gw: Gateway) -> tuple[int, bytes, list]:
    """(status, JSON body, extra headers) for one /v1/infer request."""
    answer, fut = start_infer(body, gw)
    if fut is None:
        return answer
    await asyncio.wait((fut,))
    return finish_infer(fut)


class FastInfer:
    """ASGI wrapper: POST /v1/infer directly, everything else to FastAPI."""

    def __init__(self, app: FastAPI, gw: Gateway):
        self.app = app
        self.gw = gw

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/v1/infer" and scope["method"] == "POST":
            chunks = []
            total = 0
            more = True
            while more:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                b = msg.get("body", b"")
                total += len(b)
                if total > MAX_BODY:
                    self.gw.metrics.rejected.labels("bad_request").inc()
                    await _send(send, 413, error_body(413, f"body larger than {MAX_BODY} bytes"), [])
                    self.gw.metrics.code(413)
                    return
                chunks.append(b)
                more = msg.get("more_body", False)
            status, out, headers = await handle_infer(b"".join(chunks), self.gw)
            self.gw.metrics.code(status)
            await _send(send, status, out, headers)
            return
        await self.app(scope, receive, send)


async def _send(send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(gw: Gateway, info: dict | None = None):
    """The gateway's ASGI application (FastAPI app wrapped by the /v1/infer fast path)."""
    gw_metrics = gw.metrics = GatewayMetrics(gw)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(
        title="Kairos inference gateway",
        version="1",
        lifespan=lifespan,
        description="Dispatches queries to a heterogeneous pool of instances with a Kairos policy.",
    )

    @app.post(
        "/v1/infer",
        response_model=InferResponse,
        responses={
            400: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse, "description": "queue full (overload); retry later"},
            502: {"model": ErrorResponse},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": InferRequest.model_json_schema()}},
            }
        },
    )
    async def infer(request: Request):
        """Serve one query (the same handler as the fast path in front of this app)."""
        status, out, headers = await handle_infer(await request.body(), gw)
        gw_metrics.code(status)
        return Response(
            out, status_code=status, media_type="application/json", headers={k.decode(): v.decode() for k, v in headers}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """Unknown routes and wrong methods: the documented error body, counted like every answer."""
        gw_metrics.code(exc.status_code)
        msg = f"{exc.detail}: {request.method} {request.url.path}"
        if exc.status_code == 404:
            msg += "; the routes are POST /v1/infer, GET /healthz, /metrics, /v1/info, /docs"
        return Response(
            error_body(exc.status_code, msg),
            status_code=exc.status_code,
            media_type="application/json",
            headers=getattr(exc, "headers", None),
        )

    @app.get("/healthz")
    async def healthz():
        h = gw.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(gw_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/info")
    async def v1_info():
        out = {
            **(info or {}),
            "queue_length": len(gw.queue),
            "in_flight": gw.in_flight(),
            "workers_up": sum(1 for h in gw.workers if h.state == "up"),
        }
        if gw.scaler is not None:  # the elastic pool: settings, pool, cost so far, scale events
            out["autoscale"] = gw.scaler.describe()
        return out

    return FastInfer(app, gw)
