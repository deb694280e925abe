#!/usr/bin/env bash
# Probe numbers in docs/probes.md (about 20 minutes on 2 CPU cores): build the on/off-manifold sets,
# train the separation probe, ship it, rank every candidate f (selection report), then the paired
# comparison of DPS + EquiReg with the probe at 50 steps (zeta as tuned for DPS, alpha tuned on val).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EQ=${EQ:-.venv/bin/equireg}
$EQ fit --config configs/fit/probe_mnist32_separation.yaml --trainer.enable_progress_bar false
cp runs/probe_mnist32_separation/probe.safetensors equireg_lit/weights/mnist32_probe_separation.safetensors
cp runs/probe_mnist32_separation/probe.json equireg_lit/weights/mnist32_probe_separation.json
$EQ test --config configs/test/select_mnist32.yaml --trainer.enable_progress_bar false
for task in box_inpainting sr4; do
  zeta=$($PY -c "import json; print(json.load(open('benchmarks/results/mnist32_tune_${task}_s50.json'))['best_zeta'])")
  $PY -m benchmarks.mnist32_restoration --variant probe tune --task $task --steps 50 --n 32 --zetas $zeta --alphas 0.001 0.01 0.1 1 10
done
$PY -m benchmarks.mnist32_restoration --variant probe compare --tasks box_inpainting sr4 --steps 50 --n 100
