#!/usr/bin/env bash
# 1000-step (full DDPM) paired comparisons for box inpainting and SR x4 on 100 test digits
# (about 2 hours on one CPU core): zeta re-tuned for 1000 steps on 8 validation digits (DPS's
# guidance acts every step, so the 50-step zeta over-guides at 1000), alpha of each f taken from
# its 50-step validation tuning; then DPS vs EquiReg with the denoiser and with the shipped probe.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for task in box_inpainting sr4; do
  $PY -m benchmarks.mnist32_restoration --batch-size 8 tune --task $task --steps 1000 --n 8 --zetas 0.3 1 3 --alphas
done
for variant in denoiser probe; do
  $PY -m benchmarks.mnist32_restoration --variant $variant --batch-size 50 compare --tasks box_inpainting sr4 \
    --steps 1000 --alpha-steps 50 --n 100
done
