#!/usr/bin/env bash
# Every MNIST number in docs/, in order (about 30 minutes on 2 CPU cores):
# sample quality of the shipped prior, zeta/alpha tuning on the validation split, and paired
# test-split comparisons (DPS vs DPS + EquiReg with the prior's denoiser as f, 50 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m benchmarks.prior_quality --num-samples 500 --steps 100
$PY -m benchmarks.mnist32_restoration tune --task box_inpainting --steps 50 --n 32 --zetas 1 3 10 30 --alphas 0.01 0.1 1 10
$PY -m benchmarks.mnist32_restoration tune --task sr4 --steps 50 --n 32 --zetas 3 10 30 100 --alphas 0.01 0.1 1 10
$PY -m benchmarks.mnist32_restoration tune --task hdr --steps 50 --n 32 --zetas 0.3 1 3 --alphas 0.01 0.1 1 10
$PY -m benchmarks.mnist32_restoration compare --tasks box_inpainting sr4 hdr --steps 50 --n 100
