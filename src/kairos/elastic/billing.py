"""What an instance costs: per-second billing with a minimum charge per instance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BillingRule:
    """Cloud on-demand billing: per second, at least ``minimum_s`` per instance launched
    (AWS EC2 Linux on-demand: per second, 60 s minimum)."""

    minimum_s: float = 60.0

    def billed_seconds(self, start_s: float, stop_s: float) -> float:
        if stop_s < start_s:
            raise ValueError(f"an instance cannot stop ({stop_s} s) before it starts ({start_s} s)")
        return max(stop_s - start_s, self.minimum_s)


def instance_cost(start_s: float, stop_s: float, price_per_hour: float, rule: BillingRule = BillingRule()) -> float:
    """Dollars for one instance rented from ``start_s`` (launch, not ready) to ``stop_s``."""
    return rule.billed_seconds(start_s, stop_s) * price_per_hour / 3600.0
