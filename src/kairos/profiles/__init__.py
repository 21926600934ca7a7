"""Latency profiles and prices: load them from CSV, or use the built-in catalogue."""

from kairos.profiles.profile import Profile, QUANTILE_LEVELS
from kairos.profiles.loader import load_profiles, load_prices, parse_config
from kairos.profiles.catalogue import builtin_catalogue, Catalogue, load_catalogue

__all__ = [
    "Profile",
    "QUANTILE_LEVELS",
    "load_profiles",
    "load_prices",
    "parse_config",
    "builtin_catalogue",
    "Catalogue",
    "load_catalogue",
]
