#!/usr/bin/env python3
"""Regenerate the built-in catalogue from the published AWS measurements.

    python scripts/build_catalogue.py [--data ../shared/data]

Reads aws-kairos-hpdc23.csv.gz and aws-prices.csv, and writes
src/kairos/profiles/data/aws-hpdc23.json.gz: per (model, instance type, batch)
the trimmed mean service time and a grid of quantiles (not the raw repetitions),
plus the prices of the catalogued instance types.
"""

import argparse
import gzip
import json
from pathlib import Path

from kairos.profiles.catalogue import BUILTIN_NAME, catalogue_to_json
from kairos.profiles.loader import load_prices, load_profiles

ROOT = Path(__file__).resolve().parent.parent

META = {
    "source": "aws-kairos-hpdc23.csv.gz: latencies measured on AWS EC2 for the Kairos paper (HPDC'23)",
    "licence": "MIT licence, Copyright (c) 2023 Baolin Li",
    "summary": "trimmed mean (largest repetition dropped) and quantiles of infer_ms + load_ms per (model, instance, batch)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder with the published data")
    ap.add_argument("--out", default=str(ROOT / "src/kairos/profiles/data" / f"{BUILTIN_NAME}.json.gz"))
    args = ap.parse_args()
    data = Path(args.data)
    profiles = load_profiles(data / "aws-kairos-hpdc23.csv.gz")
    all_prices = load_prices(data / "aws-prices.csv")
    types = sorted({t for p in profiles.values() for t in p.types})
    prices = {t: all_prices[t] for t in types}
    doc = catalogue_to_json(BUILTIN_NAME, profiles, prices, META)
    raw = json.dumps(doc, separators=(",", ":")).encode()
    Path(args.out).write_bytes(gzip.compress(raw, 9, mtime=0))
    print(f"wrote {args.out}: {len(profiles)} models, {len(types)} types, {len(raw)} bytes json")


if __name__ == "__main__":
    main()
