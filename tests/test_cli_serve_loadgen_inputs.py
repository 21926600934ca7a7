"""`kairos serve` and `kairos loadgen`: bad values are one line on stderr and exit code 2,
checked before a server starts or a query is sent; nothing given is silently capped or ignored."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cli_helpers import assert_one_line_error, run_cli


def run_main(capsys, *args):
    """``kairos ARGS`` in this process: (exit code, stderr)."""
    code, _, err = run_cli(capsys, *args)
    return code, err


# ---- kairos serve ----------------------------------------------------------------------------


@pytest.fixture
def no_server(monkeypatch):
    """run_server replaced by a recorder: a value that got through would start nothing here."""
    import kairos.serve.server

    started = []
    monkeypatch.setattr(kairos.serve.server, "run_server", lambda *a, **k: started.append((a, k)))
    return started


SERVE = ("serve", "--config", "r5n.large=1", "--qos-ms", "350")


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_serve_ahead_ms_error_names_the_option(capsys, no_server, value):
    code, err = run_main(capsys, *SERVE, "--ahead-ms", value)
    assert_one_line_error(code, err, "--ahead-ms must be a finite number >= 0")
    assert "--policy-option" not in err and not no_server


def test_serve_ahead_ms_library_check_names_the_option():
    from kairos.cli.serve import serve_policy_options
    from kairos.errors import KairosInputError

    with pytest.raises(KairosInputError, match="--ahead-ms must be a finite number >= 0, got -1"):
        serve_policy_options("kairos", [], -1.0)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_serve_hang_factor_must_be_positive(capsys, no_server, value):
    code, err = run_main(capsys, *SERVE, "--hang-factor", value)
    assert_one_line_error(code, err, "--hang-factor must be a finite number > 0")
    assert not no_server


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_serve_hang_grace_ms_must_be_non_negative(capsys, no_server, value):
    code, err = run_main(capsys, *SERVE, "--hang-grace-ms", value)
    assert_one_line_error(code, err, "--hang-grace-ms must be a finite number >= 0")
    assert not no_server


def test_serve_plan_conflicts_with_model_and_qos_overrides(capsys, no_server, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model": "ncf", "qos_ms": 5, "config": {"r5n.large": 1}}))
    code, err = run_main(capsys, "serve", "--plan", str(plan), "--model", "rm2")
    assert_one_line_error(code, err, "the plan sets --model")
    assert not no_server
    code, err = run_main(capsys, "serve", "--plan", str(plan), "--qos-ms", "7")
    assert code == 0 and len(no_server) == 1, err


def test_serve_good_hang_and_ahead_values_reach_the_server(capsys, no_server):
    code, err = run_main(capsys, *SERVE, "--hang-factor", "2", "--hang-grace-ms", "0", "--ahead-ms", "0")
    assert code == 0, err
    (((profile, cfg), kw),) = no_server
    assert kw == {} and profile.model == "rm2"
    g = cfg.gateway
    assert (g.hang_factor, g.hang_grace_ms, g.policy_options["ahead_ms"]) == (2.0, 0.0, 0.0)
    assert (g.config, g.qos_ms, g.policy, g.mode) == ({"r5n.large": 1}, 350.0, "kairos", "emulated")
    assert (cfg.port, cfg.backend, cfg.fast_path) == (8000, "local", True)


def _help(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    return " ".join(out.split())  # unwrapped


def test_help_texts(capsys):
    text = _help(capsys, "serve")
    assert "--host TEXT Address the HTTP gateway listens on" in text
    assert "--port INTEGER TCP port of the HTTP gateway" in text
    assert "--seed INTEGER RANGE Random seed of the emulated workers' service times" in text
    text = _help(capsys, "loadgen")
    assert ">= 99% of queries" in text and "%%" not in text
    assert "--seed INTEGER RANGE Random seed of the arrival times and query sizes" in text


# ---- kairos loadgen --------------------------------------------------------------------------


class FakeGateway:
    """A stand-in for the gateway: /v1/info (max size 1000) and 200 answers to every query,
    counting the requests it gets."""

    def __init__(self, max_size: int = 1000):
        self.requests: list[str] = []
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                gw.requests.append("GET " + self.path)
                self._answer(
                    {"qos_ms": 350.0, "max_size": max_size, "in_flight": 0, "fluid_bound_qps_deeprecsys": 20.0}
                )

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                gw.requests.append("POST " + self.path)
                self._answer(
                    {
                        "wait_ms": 0.1,
                        "service_ms": 1.0,
                        "gateway_latency_ms": 1.2,
                        "instance": "i#0",
                        "instance_index": 0,
                        "attempts": 1,
                    }
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def queries(self) -> int:
        return sum(r.startswith("POST") for r in self.requests)


@pytest.fixture
def gateway():
    gw = FakeGateway()
    gw.thread.start()
    policy = asyncio.get_event_loop_policy()
    try:
        yield gw
    finally:
        asyncio.set_event_loop_policy(policy)  # loadgen installs uvloop's
        gw.server.shutdown()
        gw.server.server_close()
        gw.thread.join(5)


RATE = ("--qps", "10", "--duration", "0.3")


@pytest.mark.parametrize(
    "args, words",
    [
        ((*RATE, "--qos-ms", "0"), ["--qos-ms must be a finite number > 0"]),
        ((*RATE, "--qos-ms", "-5"), ["--qos-ms must be a finite number > 0"]),
        ((*RATE, "--drain-timeout", "-1"), ["--drain-timeout must be a finite number >= 0"]),
        ((*RATE, "--drain-timeout", "nan"), ["--drain-timeout must be a finite number >= 0"]),
        (("--max-qps", "--tolerance", "0"), ["--tolerance must be a finite number > 0"]),
        (("--max-qps", "--tolerance", "-1"), ["--tolerance must be a finite number > 0"]),
        (("--max-qps", "--max-probes", "0"), ["--max-probes must be >= 1, got 0"]),
        ((*RATE, "--tolerance", "0.1"), ["--tolerance only applies with --max-qps"]),
        ((*RATE, "--tolerance", "0.02"), ["--tolerance only applies with --max-qps"]),  # the default, but given
        ((*RATE, "--max-probes", "3"), ["--max-probes only applies with --max-qps"]),
    ],
)
def test_loadgen_bad_values_exit_2_before_contacting_the_gateway(capsys, gateway, args, words):
    code, err = run_main(capsys, "loadgen", "--url", gateway.url, *args)
    assert_one_line_error(code, err, *words)
    assert gateway.requests == []


def test_loadgen_defaults_of_max_qps_options_are_not_rejected(capsys, gateway):
    code, err = run_main(capsys, "loadgen", "--url", gateway.url, *RATE, "--json")
    assert code == 0, err
    assert gateway.queries > 0


def test_loadgen_refuses_sizes_above_the_gateways_largest_instead_of_capping(capsys, gateway, tmp_path):
    code, err = run_main(capsys, "loadgen", "--url", gateway.url, "--workload", "fixed:5000", *RATE)
    assert_one_line_error(
        code, err, "--workload: sizes up to 5000 exceed the gateway's largest size 1000", "use sizes <= 1000"
    )
    assert "cannot reach" not in err
    sizes = tmp_path / "sizes.txt"
    sizes.write_text("10\n200\n1500\n")
    code, err = run_main(
        capsys,
        "loadgen",
        "--url",
        gateway.url,
        "--workload",
        str(sizes),
        "--max-qps",
        "--qps",
        "10",
        "--duration",
        "0.3",
        "--max-probes",
        "1",
    )
    assert_one_line_error(code, err, "--workload: sizes up to 1500 exceed the gateway's largest size 1000")
    assert gateway.queries == 0  # nothing sent, capped or otherwise


def test_schedule_raises_instead_of_capping():
    from kairos.errors import KairosInputError
    from kairos.serve.loadgen import schedule
    from kairos.workload.sizes import parse_size_mix

    with pytest.raises(KairosInputError, match="sizes up to 5000 exceed the gateway's largest size 1000"):
        schedule(10.0, 1.0, parse_size_mix("fixed:5000"), 0, max_size=1000)
    _, sizes = schedule(10.0, 1.0, parse_size_mix("fixed:1000"), 0, max_size=1000)
    assert (sizes == 1000).all()


def test_loadgen_max_qps_uses_the_drain_timeout_given(capsys, gateway, monkeypatch):
    import kairos.serve.loadgen as lg

    seen = []

    async def fake_run_load(url, qps, duration_s, mix, seed=0, qos_ms=None, drain_timeout_s=30.0, **kw):
        seen.append(drain_timeout_s)
        return lg.LoadResult(url=url, offered_qps=qps, duration_s=duration_s, qos_ms=350.0)

    monkeypatch.setattr(lg, "run_load", fake_run_load)
    code, err = run_main(
        capsys,
        "loadgen",
        "--url",
        gateway.url,
        "--max-qps",
        "--qps",
        "10",
        "--duration",
        "0.3",
        "--max-probes",
        "1",
        "--drain-timeout",
        "7",
        "--json",
    )
    assert code == 0, err
    assert seen == [7.0]
