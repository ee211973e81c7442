#!/usr/bin/env bash
# GPU check (issue 15): the sd-random SD-1.5-sized UNet on one CUDA device, fp16. Prints one JSON line:
# DCS captions/s at batch 64/128/256 without and with torch.compile, the UNet forwards/s (rows of 4x64x64
# latents through the UNet per second; a DCS batch of B captions is B + 1 rows: the unconditional row is
# shared), and the ratio to the H100/H200 limit (~0.8-0.85 TFLOP per forward at 64x64; 989 dense fp16
# TFLOP/s ~ 1,200 forwards/s). Whole check <= 8 minutes (compile variants are skipped past 6 minutes).
# Usage: scripts/gpu_check.sh [--device cuda:0]   (run from anywhere; needs torch with CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec timeout 480 python - "$@" <<'PY'
import argparse, json, sys, time

import torch

ap = argparse.ArgumentParser(prog="scripts/gpu_check.sh")
ap.add_argument("--device", default="cuda")
ap.add_argument("--batches", default="64,128,256")
ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per configuration (after warm-up)")
a = ap.parse_args()
if not torch.cuda.is_available():
    print(json.dumps({"error": "expected a CUDA device, got none: torch.cuda.is_available() is False "
                               f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"}))
    sys.exit(2)

from attack.scores.dcs import DCSParams, dcs
from attack.models import load_model

LIMIT = 1200.0          # H100/H200 fp16 UNet forwards/s at 64x64 (989 TFLOP/s / ~0.82 TFLOP)
t_start = time.perf_counter()
model = load_model("sd-random", a.device, dtype="float16")
eager_unet = model.unet
results, best = [], 0.0
for compiled in (False, True):
    if compiled:
        model.unet = torch.compile(eager_unet, dynamic=False)
    for b in (int(x) for x in a.batches.split(",")):
        if compiled and time.perf_counter() - t_start > 360:
            results.append({"batch": b, "compile": True, "skipped": "time budget (8 min) nearly spent"})
            continue
        caps = [f"gpu check caption {i} of a photo" for i in range(b)]
        try:
            t0 = time.perf_counter()
            dcs(model, caps, DCSParams(), batch_size=b)           # warm-up (and compilation)
            torch.cuda.synchronize()
            warm = time.perf_counter() - t0
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < a.seconds:
                dcs(model, caps, DCSParams(), batch_size=b)
                n += 1
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        except torch.cuda.OutOfMemoryError as e:
            results.append({"batch": b, "compile": compiled, "error": f"out of memory: {e}"[:200]})
            torch.cuda.empty_cache()
            continue
        caps_s = n * b / dt
        fwd_s = n * (b + 1) / dt
        best = max(best, fwd_s)
        results.append({"batch": b, "compile": compiled, "dcs_captions_per_s": round(caps_s, 1),
                        "unet_forwards_per_s": round(fwd_s, 1), "ratio_to_limit": round(fwd_s / LIMIT, 3),
                        "warmup_s": round(warm, 1)})
print(json.dumps({"device": torch.cuda.get_device_name(torch.device(a.device)), "torch": torch.__version__,
                  "dtype": "float16", "model": "sd-random", "limit_forwards_per_s": LIMIT,
                  "best_unet_forwards_per_s": round(best, 1), "best_ratio_to_limit": round(best / LIMIT, 3),
                  "results": results, "seconds": round(time.perf_counter() - t_start, 1)}))
PY
