"""Live serving vs the simulator: max QPS meeting the 99% QoS criterion, for the paper's
RM2 and DIEN pools (2 g4dn.xlarge + 9 r5n.large; QoS 350 ms and 35 ms), kairos policy.

- simulator: ``Experiment.max_qps`` (what ``kairos simulate --max-qps`` prints; 20,000
  queries, deeprecsys mix, seed 0);
- live: ``kairos serve`` with emulated workers (service times sampled from the same
  profile, spent in timed sleeps) and the max-QPS search of ``kairos loadgen --max-qps``
  (open-loop Poisson probes of --duration seconds each, pass = >= 99% of sent queries
  within QoS measured by the client from each query's scheduled send time, and nothing
  lost), starting at 0.95 x the simulator's figure and bracketing up or down from there.

    python benchmarks/serve_vs_sim.py [--models rm2,dien] [--duration-rm2 30] [--duration-dien 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _serve_common import ServeProcess, loadavg  # noqa: E402

from kairos.cli.serve import serve_policy_options  # noqa: E402
from kairos.paper import PAPER_CONFIGS, PAPER_QOS_MS  # noqa: E402
from kairos.profiles import builtin_catalogue  # noqa: E402
from kairos.serve.loadgen import max_qps_search, use_uvloop  # noqa: E402
from kairos.sim.experiment import Experiment  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="rm2,dien")
    ap.add_argument("--policy", default="kairos")
    ap.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the policy, for the simulator and the gateway alike (repeatable)",
    )
    ap.add_argument("--duration-rm2", type=float, default=30.0)
    ap.add_argument("--duration-dien", type=float, default=15.0)
    ap.add_argument("--max-probes", type=int, default=6)
    ap.add_argument(
        "--qos-margin-ms",
        type=float,
        default=0.0,
        help="passed to kairos serve (the simulator's figure is for the plain QoS target)",
    )
    ap.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for kairos serve, repeatable (e.g. --serve-arg=--dispatch-per-event)",
    )
    a = ap.parse_args()
    use_uvloop()
    cat = builtin_catalogue()
    mix = parse_size_mix("deeprecsys")
    # what `kairos serve` runs the policy with (its --ahead-ms default included), passed to it
    # explicitly, and simulated with the same options; the policy's defaults are simulated too
    opts = serve_policy_options(a.policy, a.policy_option, None)
    opt_args = [x for k, v in opts.items() for x in ("--policy-option", f"{k}={v}")]
    out = []
    for model in a.models.split(","):
        config, qos = PAPER_CONFIGS[model], PAPER_QOS_MS[model]
        t0 = time.perf_counter()
        exp = Experiment.build(cat, model, config, qos, mix, 20_000, 0)
        sim = exp.max_qps(a.policy, opts or None).max_qps
        # with options, also the policy's defaults: the figure a live option must be judged against
        sim_default = exp.max_qps(a.policy).max_qps if opts else sim
        t_sim = time.perf_counter() - t0
        cfg = ",".join(f"{k}={v}" for k, v in config.items())
        srv = ServeProcess(
            "--model",
            model,
            "--config",
            cfg,
            "--qos-ms",
            str(qos),
            "--policy",
            a.policy,
            *opt_args,
            "--qos-margin-ms",
            str(a.qos_margin_ms),
            *a.serve_arg,
            quiet=True,
            start_timeout=60.0,
        )
        dur = a.duration_rm2 if model == "rm2" else a.duration_dien
        la = loadavg()
        t0 = time.perf_counter()
        try:

            def show(p, model=model):
                print(
                    f"  {model} probe {p['offered_qps']:.1f} q/s: {'pass' if p['passed'] else 'FAIL'} "
                    f"qos_met={p['qos_met_fraction']:.4f} p99={p['p99_ms']} ms sent={p['sent']} lost={p['lost']} "
                    f"errors={p['errors']} | read lag p99={p['read_lag_p99_ms']} ms, "
                    f"qos_met at read={p['qos_met_fraction_at_read']:.4f}",
                    flush=True,
                )

            s = asyncio.run(
                max_qps_search(
                    srv.url,
                    dur,
                    mix,
                    seed=0,
                    start_qps=0.95 * sim,
                    rel_tol=0.02,
                    max_probes=a.max_probes,
                    on_probe=show,
                )
            )
        finally:
            srv.stop()
        row = {
            "model": model,
            "config": config,
            "qos_ms": qos,
            "policy": a.policy,
            "policy_options": opts,
            "qos_margin_ms": a.qos_margin_ms,
            "serve_args": a.serve_arg,
            "sim_max_qps": round(sim, 2),
            "live_max_qps": round(s.max_qps, 2),
            "ratio": round(s.max_qps / sim, 4) if sim else None,
            "sim_default_max_qps": round(sim_default, 2),
            "ratio_to_default": round(s.max_qps / sim_default, 4) if sim_default else None,
            "probes": len(s.probes),
            "probe_duration_s": dur,
            "lost_total": sum(p["lost"] for p in s.probes),
            "errors_total": sum(p["errors"] for p in s.probes),
            "at_max": s.best,
            "loadavg_before": la,
            "sim_s": round(t_sim, 1),
            "live_s": round(time.perf_counter() - t0, 1),
        }
        out.append(row)
        print(
            f"{model}: simulate --max-qps {row['sim_max_qps']}  loadgen --max-qps {row['live_max_qps']}  "
            f"ratio {row['ratio']}"
            + (f" (to the defaults' {row['sim_default_max_qps']}: {row['ratio_to_default']})" if opts else "")
            + f"  lost {row['lost_total']}  (loadavg {la})",
            flush=True,
        )
    print(json.dumps({"benchmark": "serve_vs_sim", "rows": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
