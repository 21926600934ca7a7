"""Kairos: cost-efficient ML inference on heterogeneous cloud instances.

Packages, one per concern:
  profiles  latency profiles (service time per model, instance type, query size), prices
  workload  query-size mixes and arrival processes
  dispatch  run-time query dispatch policies (Kairos bipartite matching and baselines)
  sim       the discrete-event simulator and the max-QPS search
  plan      the fluid bound and the configuration planners
  cli       the ``kairos`` command
"""

__version__ = "0.1.0"
