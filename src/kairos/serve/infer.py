"""One ``POST /v1/infer`` request, whatever HTTP layer carried it: the body validated
(:func:`parse_query`), the query admitted to the gateway (:func:`start_infer`) and its
answer as JSON bytes (:func:`finish_infer`, :func:`error_body`).

Both front ends import it: the ASGI app (:mod:`kairos.serve.app`) and the HTTP fast path
(:mod:`kairos.serve.fastpath`), so that they validate and answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kairos.serve.gateway import Gateway, Overloaded, QueryFailed

loads: Callable[[bytes], Any]
JSONError: type[ValueError]
try:
    import orjson

    def dumps(o) -> bytes:
        return orjson.dumps(o)

    loads = orjson.loads
    JSONError = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is in the serve extra

    def dumps(o) -> bytes:
        return json.dumps(o, separators=(",", ":")).encode()

    loads = json.loads
    JSONError = json.JSONDecodeError

#: the largest /v1/infer body accepted (413 beyond)
MAX_BODY = 32 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_body(status: int, message: str) -> bytes:
    """The documented error answer: ``{"error": message, "status": status}``."""
    return dumps({"error": message, "status": status})


def parse_query(body: bytes, gw: Gateway) -> tuple[int, int, bytes]:
    """Validate a /v1/infer body -> (size, bucket, payload for the worker). Raises BadRequest."""
    if not body:
        raise BadRequest(400, 'empty body; send JSON like {"size": 120} or {"samples": [[...], ...]}')
    try:
        doc = loads(body)
    except (JSONError, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(422, f'the body must be a JSON object like {{"size": 120}}, got {_json_type(doc)}')
    extra = set(doc) - {"size", "samples"}
    if extra:
        raise BadRequest(422, f"unknown field(s) {', '.join(sorted(map(str, extra)))}; expected size and/or samples")
    size = doc.get("size")
    samples = doc.get("samples")
    if samples is not None:
        if not isinstance(samples, list):
            raise BadRequest(422, f"samples must be a list of samples, got {_json_type(samples)}")
        if not samples:
            raise BadRequest(422, "empty batch: samples has no sample")
        if size is not None and size != len(samples):
            raise BadRequest(422, f"size {size!r} does not match the {len(samples)} samples given")
        size = len(samples)
    if size is None and "size" not in doc:
        raise BadRequest(422, 'give the query\'s "samples" or its "size"')
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequest(422, f"size must be a whole number from 1 to {gw.max_size}, got {_json_value(size)}")
    if size < 1:
        raise BadRequest(422, f"empty batch: size must be >= 1, got {size}")
    if size > gw.max_size:
        raise BadRequest(
            422,
            f"size {size} is beyond the largest profiled size {gw.max_size} of model {gw.cfg.model!r}; split the query",
        )
    bucket = gw.bucket_of(size)
    payload = b""
    if samples is not None and gw.cfg.mode == "torch":
        payload = dumps(samples)
    return size, bucket, payload


def _json_type(x) -> str:
    """A decoded JSON value's type as JSON calls it (for error messages)."""
    if x is None:
        return "null"
    for t, name in (
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(x, t):
            return name
    return type(x).__name__


def _json_value(x) -> str:
    """A decoded JSON value as the client would have written it (shortened), with its type."""
    try:
        text = dumps(x).decode()
    except Exception:  # noqa: BLE001 -- only for a message
        text = repr(x)
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if x is None else f"{text} ({_json_type(x)})"


def start_infer(body: bytes, gw: Gateway, waiter=None):
    """Validate and queue one /v1/infer body: ``(None, future)`` when admitted (the answer
    is :func:`finish_infer` of the future; ``waiter``: see ``Gateway.submit_nowait``),
    else ``((status, JSON body, headers), None)``."""
    m = gw.metrics
    assert m is not None  # set by create_app
    try:
        size, bucket, payload = parse_query(body, gw)
    except BadRequest as exc:
        m.rejected.labels("bad_request").inc()
        return (exc.status, error_body(exc.status, str(exc)), []), None
    try:
        return None, gw.submit_nowait(size, bucket, payload, waiter)
    except Overloaded as exc:
        m.rejected.labels("overload").inc()
        return (503, error_body(503, str(exc)), [(b"retry-after", b"1")]), None
    except QueryFailed as exc:
        return (exc.status, error_body(exc.status, str(exc)), []), None


def finish_infer(fut) -> tuple[int, bytes, list]:
    """(status, JSON body, extra headers) of an admitted query whose future is done."""
    if fut.cancelled():
        return 503, error_body(503, "the query was cancelled (the gateway is shutting down)"), []
    exc = fut.exception()
    if exc is not None:
        if isinstance(exc, QueryFailed):
            return exc.status, error_body(exc.status, str(exc)), []
        # not raised: the fast path answers inside the gateway's completion call
        return 500, error_body(500, f"internal error: {type(exc).__name__}: {exc}"), []
    out = fut.result()
    result = out.pop("result") or b"null"
    return 200, b'{"result":' + result + b"," + dumps(out)[1:], []
