"""Latency profiles and prices: load them from CSV, or use the built-in catalogue."""

from kairos.profiles.catalogue import Catalogue, builtin_catalogue, load_catalogue
from kairos.profiles.loader import load_prices, load_profiles, parse_config
from kairos.profiles.profile import QUANTILE_LEVELS, Profile

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
