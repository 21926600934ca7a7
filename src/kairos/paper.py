"""The published experimental setting of the Kairos paper (HPDC'23), as constants."""

PAPER_TYPES = ("g4dn.xlarge", "c5n.2xlarge", "r5n.large", "t3.xlarge")
PAPER_BUDGET = 2.5  # $/hour
PAPER_QOS_MS = {"rm2": 350.0, "wnd": 25.0, "mtwnd": 25.0, "dien": 35.0, "ncf": 5.0}
# the configurations the paper's dispatcher experiments used
PAPER_CONFIGS = {
    "rm2": {"g4dn.xlarge": 2, "r5n.large": 9},
    "mtwnd": {"g4dn.xlarge": 2, "r5n.large": 9},
    "dien": {"g4dn.xlarge": 2, "r5n.large": 9},
    "wnd": {"g4dn.xlarge": 1, "r5n.large": 13},
    "ncf": {"g4dn.xlarge": 1, "r5n.large": 13},
}
# max_qps the published dispatcher reaches on those configurations in an independent
# re-simulation with 20,000 queries (the floor our `kairos` policy must beat)
PUBLISHED_DISPATCH_QPS = {"rm2": 116.0, "dien": 639.0, "mtwnd": 936.0, "wnd": 1366.0, "ncf": 4067.0}
MODELS = ("rm2", "wnd", "mtwnd", "dien", "ncf")
