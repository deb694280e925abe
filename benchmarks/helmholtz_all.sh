#!/usr/bin/env bash
# Helmholtz numbers in docs/pde.md (about 2.5 hours on one CPU core): train the joint (a, u) prior
# (30 epochs, D4 augmentation), ship it, tune zeta / alpha on 20 validation samples at 50 steps,
# then paired comparisons on 100 test samples at 20, 50 and 100 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EQ=${EQ:-.venv/bin/equireg}
if [ ! -f runs/score_helmholtz64/helmholtz64.safetensors ]; then
  $EQ fit --config configs/fit/score_helmholtz64.yaml --trainer.enable_progress_bar false
fi
cp runs/score_helmholtz64/helmholtz64.safetensors runs/score_helmholtz64/helmholtz64.json equireg_lit/weights/
for d in forward inverse; do
  $PY -m benchmarks.pde_restoration tune --problem helmholtz --direction $d --steps 50 --n 20 --zetas 0.1 0.3 1 3 --alphas 0.01 0.1 1 \
    --residual-weights 0.001 0.003 0.01 0.03 0.1 0.3 1 3
done
$PY -m benchmarks.pde_restoration compare --problem helmholtz --steps 20 50 100 --n 100
