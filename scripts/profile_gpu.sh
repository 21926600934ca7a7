#!/usr/bin/env bash
# Profile all five models on this machine's CUDA GPU and build a second built-in catalogue
# named after the GPU (src/kairos/profiles/data/<gpu-name>.json.gz + a README stating how it
# was measured).
#
#   scripts/profile_gpu.sh [--reps 100] [--batches 10:1000:10] [--price USD_PER_HOUR]
#
# Needs: the project installed with the models extra (pip install -e '.[models]') and a
# CUDA build of PyTorch. Every model is profiled as instance type "<gpu-name>" with
# `kairos profile --device cuda` (input transfer to the GPU counted in load_ms, the output
# copied back counted in infer_ms), on the published grid (10..1000 step 10) with 100
# repetitions by default. The raw CSV is kept under out/ (not committed); the catalogue
# stores the summary (trimmed mean + quantiles per size) like the AWS one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REPS=100
BATCHES=10:1000:10
PRICE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --price) PRICE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU visible to PyTorch')"
GPU_NAME=$("$PY" -c "import torch, re; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name(0).lower()).strip('-'))")
mkdir -p out
RAW="out/profile-${GPU_NAME}.csv"
rm -f "$RAW"
START=$(date +%s)
for M in rm2 wnd mtwnd dien ncf; do
  kairos profile --model "$M" --instance "$GPU_NAME" --device cuda --batches "$BATCHES" --reps "$REPS" \
    --out "$RAW" --append --json --quiet | tee -a "out/profile-${GPU_NAME}.summary.jsonl"
done
SECS=$(( $(date +%s) - START ))
"$PY" - "$RAW" "$GPU_NAME" "$SECS" "$REPS" "$BATCHES" "$PRICE" <<'PYEOF'
import gzip, json, platform, sys
from pathlib import Path

import torch

from kairos.profiles.catalogue import catalogue_to_json
from kairos.profiles.loader import load_profiles

raw, name, secs, reps, batches, price = sys.argv[1:7]
profiles = load_profiles(raw)
prices = {name: float(price)} if price else {}
gpu = torch.cuda.get_device_name(0)
meta = {
    "source": f"kairos profile --device cuda on one {gpu} (scripts/profile_gpu.sh)",
    "measured_with": {
        "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "reps": int(reps), "batches": batches, "run_time_s": int(secs),
        "models": "kairos.models defaults (DeepRecSys configs, embedding tables capped at 100,000 rows, seed 0)",
    },
    "summary": "trimmed mean (largest repetition dropped) and quantiles of infer_ms + load_ms per (model, instance, batch)",
}
doc = catalogue_to_json(name, profiles, prices, meta)
out = Path("src/kairos/profiles/data") / f"{name}.json.gz"
out.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), 9, mtime=0))
readme = Path("src/kairos/profiles/data") / f"{name}.md"
readme.write_text(
    f"# Built-in catalogue: `{name}.json.gz`\n\n"
    f"Measured by `scripts/profile_gpu.sh` on one {gpu} (PyTorch {torch.__version__}, CUDA {torch.version.cuda}):\n"
    f"`kairos profile --device cuda` for rm2, wnd, mtwnd, dien, ncf, batches {batches}, {reps} repetitions each,\n"
    f"{secs} s in all. load_ms = synthetic input drawn on the CPU + copy to the GPU; infer_ms = forward pass +\n"
    f"synchronisation + copy of the result to the host. Models: kairos.models defaults (DeepRecSys\n"
    f"configurations, embedding tables capped at 100,000 rows, random weights with seed 0).\n"
    f"Price: {'$' + price + '/h (given with --price)' if price else 'none recorded; give one with --prices when planning'}.\n"
)
print(f"wrote {out} and {readme} ({len(profiles)} models, {secs} s of profiling)")
PYEOF
