"""The worker process: serves one query at a time for one instance of the pool.

Run by the gateway as ``python -m kairos.serve.worker --connect unix:PATH|HOST:PORT --index J
--type TYPE --model M --mode emulated|torch [--ready-at T]``. It connects to the gateway (a
Unix domain socket on the same machine, TCP across machines), says HELLO, then answers
QUERY frames one by one until SHUTDOWN or the connection closes. With ``--ready-at`` (an
instance an elastic pool launched) it loads, then waits until ``time.monotonic()`` reaches
T before it connects: an emulated instance start-up.

Each result says how long its query was at the worker before it started (a query sent
ahead waits there behind the one before it): on a Unix socket from the send time the
gateway puts in the frame (same machine, same clock); over TCP from the kernel's
receive stamp of the frame (0 where the kernel gives none).

- ``emulated``: an *emulation* of an instance of type TYPE: it draws the service time
  of the query's size from the model's latency profile for that type
  (:meth:`Profile.sample_service_ms`) and waits that long with ``time.sleep`` (no
  busy loop, so a laptop can emulate a pool of many instances). No model runs; the
  result is empty.
- ``torch``: runs the real model (``kairos.models.load_model``) on this machine's
  CPU or GPU; the service time is the measured inference time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

from kairos.serve import rxtime
from kairos.serve import transport as tp


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the gateway dies (a safety net: EOF also stops us)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the closed connection is enough
        pass


class Backend:
    """What serves a worker's queries: ``serve`` one query, ``label`` (the mode, said in HELLO)."""

    label: str

    def serve(self, size: int, bucket: int, payload: bytes) -> tuple[bool, bytes]:
        """Serve one query of ``size`` samples (size bucket ``bucket``; ``payload``: the
        client's samples, or empty) -> (ok, result bytes or an error message)."""
        raise NotImplementedError


class EmulatedBackend(Backend):
    """Service time sampled from the profile, spent in a timed sleep."""

    label = "emulated"
    DRAWS = 256  # service times drawn per size bucket at a time (one numpy call, not one per query)

    def __init__(self, model: str, type_name: str, seed: int, profile_path=None, prices_path=None):
        import numpy as np

        from kairos.profiles import load_catalogue

        self.np = np
        self.profile = load_catalogue(profile_path, prices_path).profile(model)
        self.type_id = self.profile.type_index(type_name)
        self.rng = np.random.default_rng(seed)
        # every size's first DRAWS service times now, in one call: a first draw while
        # serving would spend this worker's (shared) CPU in the middle of a query, once per size
        nb = len(self.profile.batches)
        first = self.profile.sample_service_ms(np.repeat(np.arange(nb), self.DRAWS), [self.type_id], self.rng)
        self.pending: dict[int, list[float]] = {b: row.tolist() for b, row in enumerate(first[:, 0].reshape(nb, -1))}

    def draw_ms(self, bucket: int) -> float:
        """Next service time (ms) of this type at this size bucket, sampled from the profile."""
        left = self.pending.get(bucket)
        if not left:
            b = self.np.full(self.DRAWS, bucket, dtype=self.np.int64)
            left = self.pending[bucket] = self.profile.sample_service_ms(b, [self.type_id], self.rng)[:, 0].tolist()
        return left.pop()

    def serve(self, size: int, bucket: int, payload: bytes) -> tuple[bool, bytes]:
        time.sleep(self.draw_ms(bucket) / 1000.0)
        return True, b""


class TorchBackend(Backend):
    """The real model (kairos.models), on this machine's CPU or GPU.

    The instance type picks the device when it follows the local naming convention of
    ``kairos.models.local_type_settings`` (``cpu-2t``: CPU with 2 threads, ``cuda``/``gpu``:
    the GPU); a cloud type name (``g4dn.xlarge``) runs on the CPU with torch's defaults.
    """

    label = "torch"

    def __init__(self, model: str, type_name: str, seed: int):
        import numpy as np
        import torch

        from kairos.models import load_model  # lazy: torch only in torch workers
        from kairos.models.registry import local_type_settings

        settings = local_type_settings(type_name)
        if settings.get("threads"):
            torch.set_num_threads(settings["threads"])
        self.torch = torch
        self.model = load_model(model, seed=0, device=settings.get("device", "cpu"))
        self.rng = np.random.default_rng(seed)

    def batch_from_samples(self, samples: list) -> dict:
        """[{"dense": [...], "sparse": [[...], ...]}, ...] -> the model's batch of tensors."""
        if not all(isinstance(x, dict) for x in samples):
            raise ValueError('each sample must be an object of input fields, e.g. {"dense": [...], "sparse": [[...]]}')
        keys = samples[0].keys()
        out = {}
        for k in keys:
            col = [x[k] for x in samples]
            dtype = self.torch.float32 if k == "dense" else self.torch.int64
            out[k] = self.torch.tensor(col, dtype=dtype)
        return out

    def serve(self, size: int, bucket: int, payload: bytes) -> tuple[bool, bytes]:
        try:
            if payload:
                batch = self.batch_from_samples(json.loads(payload))
            else:
                batch = self.model.make_batch(size, self.rng)
            out = self.model.infer(self.model.to_device(batch))
            self.model.synchronize()
            if hasattr(out, "detach"):
                out = out.detach().cpu()
            if hasattr(out, "tolist"):
                out = out.tolist()
            return True, json.dumps(out).encode()
        except Exception as exc:  # a bad batch: report it, keep serving
            return False, f"{type(exc).__name__}: {exc}".encode()


def open_link(address: str) -> socket.socket:
    """Connect to the gateway at ``unix:PATH`` or ``HOST:PORT``."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address[5:])
        return sock
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run(address: str, index: int, backend: Backend, generation: int = 0) -> int:
    sock = open_link(address)
    info = json.dumps({"mode": backend.label, "generation": generation}).encode()
    sock.sendall(tp.encode_hello(index, os.getpid(), info))
    perf = time.perf_counter
    dec = tp.FrameDecoder()
    qbody = tp.QUERY_BODY
    # how long each query waited here: from its send time on this machine (Unix socket),
    # else from the kernel's receive stamps (TCP)
    local = sock.family == getattr(socket, "AF_UNIX", None)
    stamps = not local and rxtime.enable(sock)
    monotonic = time.monotonic
    arrived = None
    while True:
        if stamps:
            data, arrived = rxtime.recv(sock, 1 << 16)
        else:
            data = sock.recv(1 << 16)
        if not data:
            return 0  # gateway gone
        for kind, body in dec.feed(data):
            if kind == tp.SHUTDOWN:
                return 0
            if kind != tp.QUERY:
                continue
            qid, size, bucket, sent = qbody.unpack_from(body)
            # at the worker before it started: behind the previous query when sent ahead
            if local and sent > 0.0:
                queued = max(0.0, (monotonic() - sent) * 1000.0)
            else:
                queued = max(0.0, (time.time() - arrived) * 1000.0) if arrived is not None else 0.0
            t0 = perf()
            ok, out = backend.serve(size, bucket, body[qbody.size :])
            sock.sendall(tp.encode_result(qid, (perf() - t0) * 1000.0, ok, out, queued))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kairos-worker")
    ap.add_argument("--connect", required=True)
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=("emulated", "torch"), default="emulated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generation", type=int, default=0, help="spawn number of this instance (echoed in HELLO)")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--prices", default=None)
    ap.add_argument(
        "--ready-at",
        type=float,
        default=None,
        help="time.monotonic() before which not to say HELLO (an emulated instance start-up)",
    )
    a = ap.parse_args(argv)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop
    backend: Backend
    if a.mode == "emulated":
        backend = EmulatedBackend(a.model, a.type, a.seed * 100_003 + a.index, a.profile, a.prices)
    else:
        backend = TorchBackend(a.model, a.type, a.seed * 100_003 + a.index)
    if a.ready_at is not None:  # booting: loaded, not yet serving
        time.sleep(max(0.0, a.ready_at - time.monotonic()))
    try:
        return run(a.connect, a.index, backend, a.generation)
    except (ConnectionError, OSError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
